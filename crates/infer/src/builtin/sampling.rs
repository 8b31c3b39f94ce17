//! Picks the next token from logits, with the controls OpenAI-style requests carry:
//! repetition, presence and frequency penalties, temperature, top-k, top-p (nucleus) and
//! min-p filtering, and a seeded generator so that a run can be replayed exactly.
//!
//! The order of operations follows common practice (llama.cpp, vLLM): penalties adjust the
//! raw logits; greedy decoding (temperature 0) then takes the best adjusted logit; otherwise
//! top-k cuts the candidates, the temperature scales them, and top-p and min-p trim the
//! resulting distribution before one draw.

use ahash::{AHashMap, AHashSet};

/// The sampling controls of one request. [`Default`] is plain sampling at temperature 1.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; `0` picks the most likely token.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; `0` keeps all.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches `top_p`.
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one.
    pub min_p: f32,
    /// Divides positive (multiplies negative) logits of tokens already in the prompt or the
    /// output; `1` is off. Values above 1 discourage repetition.
    pub repetition_penalty: f32,
    /// Subtracted once from the logit of every token already generated.
    pub presence_penalty: f32,
    /// Subtracted from a token's logit once per time it was generated.
    pub frequency_penalty: f32,
    /// Seed of the generator; the same seed, logits and parameters give the same tokens.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: 0,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding with no penalties.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }

    /// Replaces values no sampler can use (NaN, infinities, out-of-range) by neutral ones.
    fn sanitized(mut self) -> Self {
        let finite_or = |v: f32, default: f32| if v.is_finite() { v } else { default };
        self.temperature = finite_or(self.temperature, 0.0).max(0.0);
        self.top_p = finite_or(self.top_p, 1.0).clamp(0.0, 1.0);
        self.min_p = finite_or(self.min_p, 0.0).clamp(0.0, 1.0);
        let rep = finite_or(self.repetition_penalty, 1.0);
        self.repetition_penalty = if rep > 0.0 { rep } else { 1.0 };
        self.presence_penalty = finite_or(self.presence_penalty, 0.0);
        self.frequency_penalty = finite_or(self.frequency_penalty, 0.0);
        self
    }
}

/// Chooses tokens for one sequence and remembers what it chose (for the penalties).
#[derive(Debug, Clone, PartialEq)]
pub struct Sampler {
    params: SamplingParams,
    state: u64,
    /// Prompt tokens, for the repetition penalty.
    prompt: AHashSet<u32>,
    /// How often each token was generated.
    generated: AHashMap<u32, u32>,
}

impl Sampler {
    /// Always the most likely token (ties: the lowest id).
    pub fn greedy() -> Self {
        Self::with_params(SamplingParams::greedy())
    }

    /// Sampling at `temperature` with nucleus `top_p`; `temperature <= 0` is greedy.
    /// `seed` fixes the sequence of draws.
    pub fn new(temperature: f32, top_p: f32, seed: u64) -> Self {
        Self::with_params(SamplingParams {
            temperature,
            top_p,
            seed,
            ..SamplingParams::default()
        })
    }

    /// A sampler with all controls given.
    pub fn with_params(params: SamplingParams) -> Self {
        let params = params.sanitized();
        Self {
            // splitmix64 of the seed, so that small seeds still give well-mixed states.
            state: splitmix(params.seed),
            params,
            prompt: AHashSet::new(),
            generated: AHashMap::new(),
        }
    }

    /// The controls in force.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Whether this sampler is greedy.
    pub fn is_greedy(&self) -> bool {
        self.params.temperature == 0.0
    }

    /// Tells the sampler the prompt, which the repetition penalty also covers.
    pub fn observe_prompt(&mut self, prompt: &[u32]) {
        if self.params.repetition_penalty != 1.0 {
            self.prompt.extend(prompt.iter().copied());
        }
    }

    /// The chosen token id, which is remembered as generated; `None` for empty logits or
    /// logits with no finite value.
    pub fn pick(&mut self, logits: &[f32]) -> Option<u32> {
        let id = if self.has_penalties() {
            let mut adjusted = logits.to_vec();
            self.apply_penalties(&mut adjusted);
            self.choose(&adjusted)
        } else {
            self.choose(logits)
        }?;
        *self.generated.entry(id).or_insert(0) += 1;
        Some(id)
    }

    fn has_penalties(&self) -> bool {
        let p = &self.params;
        p.repetition_penalty != 1.0 || p.presence_penalty != 0.0 || p.frequency_penalty != 0.0
    }

    fn apply_penalties(&self, logits: &mut [f32]) {
        let p = &self.params;
        if p.repetition_penalty != 1.0 {
            let seen = self.prompt.iter().chain(self.generated.keys());
            let mut done = AHashSet::with_capacity(self.prompt.len() + self.generated.len());
            for &id in seen {
                if !done.insert(id) {
                    continue;
                }
                if let Some(l) = logits.get_mut(id as usize) {
                    *l = if *l > 0.0 {
                        *l / p.repetition_penalty
                    } else {
                        *l * p.repetition_penalty
                    };
                }
            }
        }
        for (&id, &count) in &self.generated {
            if let Some(l) = logits.get_mut(id as usize) {
                *l -= p.presence_penalty + p.frequency_penalty * count as f32;
            }
        }
    }

    fn choose(&mut self, logits: &[f32]) -> Option<u32> {
        let best = argmax(logits)?;
        let max = logits[best as usize];
        if self.is_greedy() || !max.is_finite() {
            return Some(best);
        }
        let p = self.params.clone();
        // Candidates as (id, logit), most likely first after the top-k cut.
        let mut cands: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.is_nan() && **l > f32::NEG_INFINITY)
            .map(|(i, &l)| (i as u32, l))
            .collect();
        let by_logit = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if p.top_k > 0 && p.top_k < cands.len() {
            cands.select_nth_unstable_by(p.top_k - 1, by_logit);
            cands.truncate(p.top_k);
        }
        // Probabilities relative to the best token (which has weight 1).
        let mut probs: Vec<(u32, f32)> = cands
            .into_iter()
            .map(|(id, l)| (id, ((l - max) / p.temperature).exp()))
            .filter(|&(_, w)| w > 0.0 && w >= p.min_p)
            .collect();
        if probs.is_empty() {
            return Some(best);
        }
        if p.top_p < 1.0 {
            probs.sort_unstable_by(by_logit);
            let total: f32 = probs.iter().map(|c| c.1).sum();
            let mut kept = 0.0;
            let mut keep = probs.len();
            for (i, c) in probs.iter().enumerate() {
                kept += c.1;
                if kept >= p.top_p * total {
                    keep = i + 1;
                    break;
                }
            }
            probs.truncate(keep.max(1));
        }
        let mass: f32 = probs.iter().map(|c| c.1).sum();
        let mut target = self.next_unit() * mass;
        for &(id, w) in &probs {
            if target < w {
                return Some(id);
            }
            target -= w;
        }
        probs.last().map(|c| c.0)
    }

    /// A uniform draw in `[0, 1)`.
    fn next_unit(&mut self) -> f32 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let bits = splitmix(self.state) >> 40;
        bits as f32 / (1u64 << 24) as f32
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Index of the largest value (the first of equals); NaN never wins.
pub fn argmax(values: &[f32]) -> Option<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in values.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i as u32)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn params(f: impl FnOnce(&mut SamplingParams)) -> SamplingParams {
        let mut p = SamplingParams {
            seed: 9,
            ..SamplingParams::default()
        };
        f(&mut p);
        p
    }

    /// Which ids `draws` picks from `logits` reach, with a fresh sampler per draw so that the
    /// penalties (which remember picks) do not interfere.
    fn reached(p: &SamplingParams, logits: &[f32], draws: u64) -> Vec<bool> {
        let mut seen = vec![false; logits.len()];
        for seed in 0..draws {
            let mut s = Sampler::with_params(SamplingParams { seed, ..p.clone() });
            if let Some(id) = s.pick(logits) {
                seen[id as usize] = true;
            }
        }
        seen
    }

    #[test]
    fn greedy_takes_first_maximum() {
        let mut s = Sampler::greedy();
        assert_eq!(s.pick(&[0.1, 3.0, f32::NAN, 3.0]), Some(1));
        assert_eq!(s.pick(&[]), None);
    }

    #[test]
    fn tiny_top_p_is_greedy() {
        let mut s = Sampler::new(1.0, 0.0, 7);
        for _ in 0..20 {
            assert_eq!(s.pick(&[0.0, 5.0, 1.0]), Some(1));
        }
    }

    #[test]
    fn same_seed_same_draws_other_seed_other_draws() {
        let logits = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        let run = |seed| {
            let mut s = Sampler::with_params(params(|p| p.seed = seed));
            (0..64).map(|_| s.pick(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
        let seen = reached(&params(|_| {}), &logits, 200);
        assert!(seen.iter().all(|&s| s), "uniform logits reach every token");
    }

    #[test]
    fn top_k_limits_candidates_to_the_k_best() {
        let logits = [3.0, 2.9, 2.8, 2.7, 2.6, 2.5];
        let all = reached(&params(|_| {}), &logits, 400);
        assert!(all.iter().all(|&s| s));
        let k2 = reached(&params(|p| p.top_k = 2), &logits, 400);
        assert_eq!(k2, vec![true, true, false, false, false, false]);
    }

    #[test]
    fn min_p_drops_tokens_far_below_the_best() {
        // Probabilities relative to the best: 1, e^-1 = 0.37, e^-3 = 0.05.
        let logits = [5.0, 4.0, 2.0];
        assert_eq!(reached(&params(|_| {}), &logits, 600), vec![true; 3]);
        assert_eq!(
            reached(&params(|p| p.min_p = 0.2), &logits, 600),
            vec![true, true, false]
        );
        assert_eq!(
            reached(&params(|p| p.min_p = 0.5), &logits, 600),
            vec![true, false, false]
        );
    }

    #[test]
    fn top_p_keeps_the_nucleus() {
        let logits = [2.0, 1.0, 0.0, -1.0];
        // Probabilities ~0.64, 0.24, 0.09, 0.03.
        assert_eq!(
            reached(&params(|p| p.top_p = 0.8), &logits, 600),
            vec![true, true, false, false]
        );
    }

    #[test]
    fn temperature_sharpens_and_flattens() {
        let logits = [1.0, 0.0];
        let share_of_best = |t: f32| {
            let mut s = Sampler::with_params(params(|p| p.temperature = t));
            (0..4000).filter(|_| s.pick(&logits) == Some(0)).count() as f32 / 4000.0
        };
        let cold = share_of_best(0.25);
        let warm = share_of_best(1.0);
        let hot = share_of_best(4.0);
        // Exact shares: 0.98, 0.73, 0.56.
        assert!(cold > 0.95, "{cold}");
        assert!((warm - 0.73).abs() < 0.04, "{warm}");
        assert!((hot - 0.56).abs() < 0.04, "{hot}");
    }

    #[test]
    fn repetition_penalty_covers_prompt_and_output() {
        let logits = [2.0, 1.5, -1.0];
        let mut plain = Sampler::greedy();
        plain.observe_prompt(&[0]);
        assert_eq!(plain.pick(&logits), Some(0));

        // Token 0 is in the prompt: 2.0 / 2 = 1.0 < 1.5.
        let mut s = Sampler::with_params(params(|p| {
            p.temperature = 0.0;
            p.repetition_penalty = 2.0;
        }));
        s.observe_prompt(&[0]);
        assert_eq!(s.pick(&logits), Some(1));
        // Token 1 is now generated too: 1.5 / 2 = 0.75 < 1.0.
        assert_eq!(s.pick(&logits), Some(0));
        // Negative logits are pushed further down, not up: -1 * 2 = -2 < -1.5.
        let mut s = Sampler::with_params(params(|p| {
            p.temperature = 0.0;
            p.repetition_penalty = 2.0;
        }));
        s.observe_prompt(&[0]);
        assert_eq!(s.pick(&[-1.0, -1.5]), Some(1));
    }

    #[test]
    fn presence_and_frequency_penalties_subtract_from_generated_tokens() {
        let logits = [3.0, 2.0, 0.0];
        let mut presence = Sampler::with_params(params(|p| {
            p.temperature = 0.0;
            p.presence_penalty = 1.5;
        }));
        presence.observe_prompt(&[1]);
        // First pick is unpenalized (prompt tokens do not count); then token 0 drops to
        // 1.5 < 2.0; once token 1 is generated it drops to 0.5 and token 0 wins for good: the
        // presence penalty does not grow with the count.
        let picks: Vec<_> = (0..4).map(|_| presence.pick(&logits)).collect();
        assert_eq!(picks, vec![Some(0), Some(1), Some(0), Some(0)]);

        // A frequency penalty of 0.6 grows with each pick: the choice alternates.
        let mut frequency = Sampler::with_params(params(|p| {
            p.temperature = 0.0;
            p.frequency_penalty = 0.6;
        }));
        let picks: Vec<_> = (0..5).map(|_| frequency.pick(&logits).unwrap()).collect();
        assert_eq!(picks, vec![0, 0, 1, 0, 1]);
    }

    #[test]
    fn unusable_parameters_fall_back_to_neutral() {
        let mut s = Sampler::with_params(SamplingParams {
            temperature: f32::NAN,
            top_p: f32::INFINITY,
            repetition_penalty: -3.0,
            ..SamplingParams::default()
        });
        assert!(s.is_greedy());
        assert_eq!(s.params().top_p, 1.0);
        assert_eq!(s.params().repetition_penalty, 1.0);
        assert_eq!(s.pick(&[f32::NEG_INFINITY, 0.5]), Some(1));
    }
}

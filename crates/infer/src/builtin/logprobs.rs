//! Log-probabilities of the tokens an answer is made of, as OpenAI returns them: for chat,
//! `logprobs.content` with each token's text, bytes, log-probability and its `top_logprobs`
//! alternatives; for completions, the legacy `tokens` / `token_logprobs` / `top_logprobs` /
//! `text_offset` lists.
//!
//! The figures are the model's own distribution at each step (a log-softmax of its logits),
//! before penalties, temperature, truncation or a `response_format` mask shape the choice.

use serde_json::{Map, Value, json};

use crate::tokenizer::Tokenizer;

/// One chosen token's log-probability and its most likely alternatives.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TokenLogprob {
    pub(crate) id: u32,
    pub(crate) logprob: f32,
    /// The `top` most likely tokens, most likely first.
    pub(crate) top: Vec<(u32, f32)>,
}

/// The log-probability of `id` under `logits`, with the `top` most likely tokens.
pub(crate) fn token_logprob(logits: &[f32], id: u32, top: usize) -> TokenLogprob {
    let max = logits
        .iter()
        .copied()
        .filter(|l| l.is_finite())
        .fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits
        .iter()
        .filter(|l| l.is_finite())
        .map(|&l| f64::from(l - max).exp())
        .sum();
    let lse = max + sum.ln() as f32;
    let at = |i: u32| {
        logits
            .get(i as usize)
            .map_or(f32::NEG_INFINITY, |&l| l - lse)
    };
    if top == 0 {
        return TokenLogprob {
            id,
            logprob: at(id),
            top: Vec::new(),
        };
    }
    let mut best: Vec<u32> = (0..logits.len() as u32)
        .filter(|&i| logits[i as usize].is_finite())
        .collect();
    let order = |a: &u32, b: &u32| {
        logits[*b as usize]
            .total_cmp(&logits[*a as usize])
            .then(a.cmp(b))
    };
    if top > 0 && top < best.len() {
        best.select_nth_unstable_by(top - 1, order);
        best.truncate(top);
    }
    best.sort_unstable_by(order);
    best.truncate(top);
    TokenLogprob {
        id,
        logprob: at(id),
        top: best.into_iter().map(|i| (i, at(i))).collect(),
    }
}

fn text(tokenizer: &Tokenizer, id: u32) -> (String, Vec<u8>) {
    let bytes = tokenizer.token_bytes(id).unwrap_or_default().to_vec();
    (String::from_utf8_lossy(&bytes).into_owned(), bytes)
}

/// A chat `logprobs` object for `tokens`.
pub(crate) fn chat(tokenizer: &Tokenizer, tokens: &[TokenLogprob]) -> Value {
    let entry = |id: u32, logprob: f32| {
        let (token, bytes) = text(tokenizer, id);
        json!({"token": token, "logprob": logprob, "bytes": bytes})
    };
    let content: Vec<Value> = tokens
        .iter()
        .map(|t| {
            let mut e = entry(t.id, t.logprob);
            let top: Vec<Value> = t.top.iter().map(|&(i, l)| entry(i, l)).collect();
            e["top_logprobs"] = Value::Array(top);
            e
        })
        .collect();
    json!({"content": content, "refusal": null})
}

/// A completions `logprobs` object for `tokens`, whose text starts at byte `offset` of the
/// answer's text.
pub(crate) fn completions(tokenizer: &Tokenizer, tokens: &[TokenLogprob], offset: usize) -> Value {
    let mut at = offset;
    let (mut names, mut lps, mut tops, mut offsets) = (vec![], vec![], vec![], vec![]);
    for t in tokens {
        let (token, bytes) = text(tokenizer, t.id);
        offsets.push(at);
        at += bytes.len();
        names.push(token);
        lps.push(t.logprob);
        let top: Map<String, Value> = t
            .top
            .iter()
            .map(|&(i, l)| (text(tokenizer, i).0, json!(l)))
            .collect();
        tops.push(Value::Object(top));
    }
    json!({"tokens": names, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_probabilities_are_a_log_softmax_with_the_best_alternatives_first() {
        let logits = [1.0f32, 3.0, 2.0, f32::NEG_INFINITY];
        let t = token_logprob(&logits, 2, 2);
        let z: f32 = logits.iter().map(|l| l.exp()).sum();
        assert!((t.logprob - (2.0f32.exp() / z).ln()).abs() < 1e-5);
        assert_eq!(t.top.iter().map(|p| p.0).collect::<Vec<_>>(), vec![1, 2]);
        assert!(t.top[0].1 > t.top[1].1 && t.top[0].1 < 0.0);
        let total: f32 = (0..3)
            .map(|i| token_logprob(&logits, i, 0).logprob.exp())
            .sum();
        assert!((total - 1.0).abs() < 1e-5);
        assert!(token_logprob(&logits, 3, 9).top.len() == 3);
        assert_eq!(token_logprob(&logits, 3, 0).logprob, f32::NEG_INFINITY);
    }
}

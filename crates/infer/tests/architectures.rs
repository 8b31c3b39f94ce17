//! Both decoders (quantized CPU kernels and burn tensors) on tiny synthetic `llama` and
//! `qwen2` GGUF files, checked against a naive forward pass written here from the
//! architectures' definitions: QKV biases, the two RoPE layouts, untied output weights, and
//! RoPE theta / RMSNorm epsilon taken from the metadata.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_precision_loss)]

use cocoon_gguf::{GgmlType, Gguf, GgufWriter, WriteValue};
use cocoon_infer::builtin::{CpuBackend, Llama, QuantizedLlama};

const HIDDEN: usize = 64;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = HIDDEN / HEADS;
const FFN: usize = 96;
const VOCAB: usize = 50;
const LAYERS: usize = 2;
const THETA: f32 = 1000.0;
const EPS: f32 = 1e-2;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Arch {
    Llama,
    Qwen2,
}

/// Deterministic values in `[-scale, scale)`.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * scale).collect()
    }
}

/// A weight matrix `[out][in]` (row per output), as GGUF stores it.
struct Linear {
    rows: usize,
    cols: usize,
    w: Vec<f32>,
}

impl Linear {
    fn random(rng: &mut Lcg, rows: usize, cols: usize) -> Self {
        let scale = 1.0 / (cols as f32).sqrt();
        Self {
            rows,
            cols,
            w: rng.vec(rows * cols, scale),
        }
    }

    fn apply(&self, x: &[f32]) -> Vec<f32> {
        (0..self.rows)
            .map(|r| {
                (0..self.cols)
                    .map(|c| f64::from(self.w[r * self.cols + c]) * f64::from(x[c]))
                    .sum::<f64>() as f32
            })
            .collect()
    }
}

struct LayerWeights {
    attn_norm: Vec<f32>,
    q: Linear,
    k: Linear,
    v: Linear,
    biases: Option<[Vec<f32>; 3]>,
    o: Linear,
    ffn_norm: Vec<f32>,
    gate: Linear,
    up: Linear,
    down: Linear,
}

struct Weights {
    arch: Arch,
    embd: Linear,
    layers: Vec<LayerWeights>,
    out_norm: Vec<f32>,
    output: Option<Linear>,
}

impl Weights {
    fn random(arch: Arch, seed: u64) -> Self {
        let mut rng = Lcg(seed);
        let kv = KV_HEADS * HEAD_DIM;
        let norm = |rng: &mut Lcg| rng.vec(HIDDEN, 0.3).iter().map(|v| 1.0 + v).collect();
        let layers = (0..LAYERS)
            .map(|_| LayerWeights {
                attn_norm: norm(&mut rng),
                q: Linear::random(&mut rng, HIDDEN, HIDDEN),
                k: Linear::random(&mut rng, kv, HIDDEN),
                v: Linear::random(&mut rng, kv, HIDDEN),
                biases: (arch == Arch::Qwen2)
                    .then(|| [rng.vec(HIDDEN, 0.5), rng.vec(kv, 0.5), rng.vec(kv, 0.5)]),
                o: Linear::random(&mut rng, HIDDEN, HIDDEN),
                ffn_norm: norm(&mut rng),
                gate: Linear::random(&mut rng, FFN, HIDDEN),
                up: Linear::random(&mut rng, FFN, HIDDEN),
                down: Linear::random(&mut rng, HIDDEN, FFN),
            })
            .collect();
        Self {
            arch,
            embd: Linear {
                rows: VOCAB,
                cols: HIDDEN,
                w: rng.vec(VOCAB * HIDDEN, 1.0),
            },
            layers,
            out_norm: norm(&mut rng),
            output: (arch == Arch::Qwen2).then(|| Linear::random(&mut rng, VOCAB, HIDDEN)),
        }
    }

    /// The GGUF file; matrices as `ty` (F32 or Q8_0).
    fn gguf(&self, ty: GgmlType) -> Vec<u8> {
        let name = match self.arch {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
        };
        let mut w = GgufWriter::new();
        let key = |k: &str| format!("{name}.{k}");
        w.metadata("general.architecture", WriteValue::Str(name.into()))
            .metadata(key("block_count"), WriteValue::U32(LAYERS as u32))
            .metadata(key("embedding_length"), WriteValue::U32(HIDDEN as u32))
            .metadata(key("feed_forward_length"), WriteValue::U32(FFN as u32))
            .metadata(key("attention.head_count"), WriteValue::U32(HEADS as u32))
            .metadata(
                key("attention.head_count_kv"),
                WriteValue::U32(KV_HEADS as u32),
            )
            .metadata(key("rope.freq_base"), WriteValue::F32(THETA))
            .metadata(
                key("attention.layer_norm_rms_epsilon"),
                WriteValue::F32(EPS),
            )
            .metadata(key("context_length"), WriteValue::U32(64))
            .metadata(key("vocab_size"), WriteValue::U32(VOCAB as u32));
        let matrix = |w: &mut GgufWriter, n: &str, m: &Linear| {
            let dims = [m.cols as u64, m.rows as u64];
            match ty {
                GgmlType::F32 => w.tensor_f32(n, &dims, &m.w).map(|_| ()),
                _ => w.tensor(n, GgmlType::Q8_0, &dims, q8_0(&m.w)).map(|_| ()),
            }
            .unwrap();
        };
        let vector = |w: &mut GgufWriter, n: &str, v: &[f32]| {
            w.tensor_f32(n, &[v.len() as u64], v).unwrap();
        };
        matrix(&mut w, "token_embd.weight", &self.embd);
        for (i, l) in self.layers.iter().enumerate() {
            let n = |t: &str| format!("blk.{i}.{t}");
            vector(&mut w, &n("attn_norm.weight"), &l.attn_norm);
            matrix(&mut w, &n("attn_q.weight"), &l.q);
            matrix(&mut w, &n("attn_k.weight"), &l.k);
            matrix(&mut w, &n("attn_v.weight"), &l.v);
            if let Some([bq, bk, bv]) = &l.biases {
                vector(&mut w, &n("attn_q.bias"), bq);
                vector(&mut w, &n("attn_k.bias"), bk);
                vector(&mut w, &n("attn_v.bias"), bv);
            }
            matrix(&mut w, &n("attn_output.weight"), &l.o);
            vector(&mut w, &n("ffn_norm.weight"), &l.ffn_norm);
            matrix(&mut w, &n("ffn_gate.weight"), &l.gate);
            matrix(&mut w, &n("ffn_up.weight"), &l.up);
            matrix(&mut w, &n("ffn_down.weight"), &l.down);
        }
        vector(&mut w, "output_norm.weight", &self.out_norm);
        if let Some(out) = &self.output {
            matrix(&mut w, "output.weight", out);
        }
        w.finish()
    }

    /// These weights as the Q8_0 file holds them.
    fn rounded_to_q8_0(&self) -> Self {
        let round = |m: &Linear| Linear {
            rows: m.rows,
            cols: m.cols,
            w: cocoon_gguf::quant::dequantize_to_vec(GgmlType::Q8_0, &q8_0(&m.w)).unwrap(),
        };
        Self {
            arch: self.arch,
            embd: round(&self.embd),
            layers: self
                .layers
                .iter()
                .map(|l| LayerWeights {
                    attn_norm: l.attn_norm.clone(),
                    q: round(&l.q),
                    k: round(&l.k),
                    v: round(&l.v),
                    biases: l.biases.clone(),
                    o: round(&l.o),
                    ffn_norm: l.ffn_norm.clone(),
                    gate: round(&l.gate),
                    up: round(&l.up),
                    down: round(&l.down),
                })
                .collect(),
            out_norm: self.out_norm.clone(),
            output: self.output.as_ref().map(round),
        }
    }
}

/// Q8_0 blocks with power-of-two scales (exact in f16): `d · q`.
fn q8_0(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for block in values.chunks(32) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let exp = (amax / 127.0).log2().ceil().clamp(-24.0, 15.0) as i32;
        let d = 2f32.powi(exp);
        // f16 bits of 2^exp (normal range: exponent bias 15).
        let bits: u16 = ((exp + 15) as u16) << 10;
        out.extend_from_slice(&bits.to_le_bytes());
        for v in block {
            out.push((v / d).round().clamp(-127.0, 127.0) as i8 as u8);
        }
    }
    out
}

fn rms_norm(x: &[f32], w: &[f32]) -> Vec<f32> {
    let mean = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let inv = 1.0 / (mean + EPS).sqrt();
    x.iter().zip(w).map(|(v, w)| v * inv * w).collect()
}

/// RoPE of one head at `pos`, pairing elements as the layout says.
fn rope(head: &mut [f32], pos: usize, half_split: bool) {
    let half = head.len() / 2;
    for i in 0..half {
        let angle = pos as f64 * f64::from(THETA).powf(-((2 * i) as f64) / head.len() as f64);
        let (c, s) = (angle.cos() as f32, angle.sin() as f32);
        let (a, b) = if half_split {
            (i, i + half)
        } else {
            (2 * i, 2 * i + 1)
        };
        let (x, y) = (head[a], head[b]);
        head[a] = x * c - y * s;
        head[b] = x * s + y * c;
    }
}

/// Logits after every position of `tokens`, without any cache.
fn reference(w: &Weights, tokens: &[u32], half_split: bool) -> Vec<Vec<f32>> {
    let t = tokens.len();
    let mut x: Vec<Vec<f32>> = tokens
        .iter()
        .map(|&id| w.embd.w[id as usize * HIDDEN..(id as usize + 1) * HIDDEN].to_vec())
        .collect();
    for l in &w.layers {
        let mut qs = Vec::new();
        let mut ks = Vec::new();
        let mut vs = Vec::new();
        for (pos, xi) in x.iter().enumerate() {
            let h = rms_norm(xi, &l.attn_norm);
            let (mut q, mut k, mut v) = (l.q.apply(&h), l.k.apply(&h), l.v.apply(&h));
            if let Some([bq, bk, bv]) = &l.biases {
                q.iter_mut().zip(bq).for_each(|(a, b)| *a += b);
                k.iter_mut().zip(bk).for_each(|(a, b)| *a += b);
                v.iter_mut().zip(bv).for_each(|(a, b)| *a += b);
            }
            q.chunks_mut(HEAD_DIM)
                .for_each(|h| rope(h, pos, half_split));
            k.chunks_mut(HEAD_DIM)
                .for_each(|h| rope(h, pos, half_split));
            qs.push(q);
            ks.push(k);
            vs.push(v);
        }
        for i in 0..t {
            let mut attn = vec![0f32; HIDDEN];
            for head in 0..HEADS {
                let g = head / (HEADS / KV_HEADS);
                let q = &qs[i][head * HEAD_DIM..(head + 1) * HEAD_DIM];
                let scores: Vec<f32> = (0..=i)
                    .map(|j| {
                        let k = &ks[j][g * HEAD_DIM..(g + 1) * HEAD_DIM];
                        q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() / (HEAD_DIM as f32).sqrt()
                    })
                    .collect();
                let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let exps: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f32 = exps.iter().sum();
                for (j, e) in exps.iter().enumerate() {
                    for d in 0..HEAD_DIM {
                        attn[head * HEAD_DIM + d] += e / total * vs[j][g * HEAD_DIM + d];
                    }
                }
            }
            let o = l.o.apply(&attn);
            x[i].iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            let h = rms_norm(&x[i], &l.ffn_norm);
            let (g, u) = (l.gate.apply(&h), l.up.apply(&h));
            let act: Vec<f32> = g
                .iter()
                .zip(&u)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let d = l.down.apply(&act);
            x[i].iter_mut().zip(&d).for_each(|(a, b)| *a += b);
        }
    }
    let head = w.output.as_ref().unwrap_or(&w.embd);
    x.iter()
        .map(|xi| head.apply(&rms_norm(xi, &w.out_norm)))
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

const TOKENS: [u32; 7] = [3, 17, 42, 0, 49, 17, 8];

/// Logits after each token from the quantized decoder: a prefill of the first four tokens,
/// then one token at a time.
fn quantized_logits(bytes: Vec<u8>) -> Vec<Vec<f32>> {
    let gguf = Gguf::parse(bytes).unwrap();
    let model = QuantizedLlama::load(&gguf, 2, &mut |_, _| {}).unwrap();
    let mut out = Vec::new();
    for split in [1, 4] {
        let mut cache = model.new_cache();
        let mut logits = vec![model.forward(&TOKENS[..split], &mut cache).unwrap()];
        for &id in &TOKENS[split..] {
            logits.push(model.forward(&[id], &mut cache).unwrap());
        }
        if split == 4 {
            out = logits;
        }
    }
    out
}

fn tensor_logits(bytes: Vec<u8>) -> Vec<Vec<f32>> {
    let gguf = Gguf::parse(bytes).unwrap();
    let model = Llama::<CpuBackend>::load(&gguf, &Default::default()).unwrap();
    let mut cache = model.new_cache();
    let mut logits = vec![model.forward(&TOKENS[..4], &mut cache).unwrap()];
    for &id in &TOKENS[4..] {
        logits.push(model.forward(&[id], &mut cache).unwrap());
    }
    logits
}

fn check_against_reference(arch: Arch) {
    let weights = Weights::random(arch, 11);
    let half_split = arch == Arch::Qwen2;
    let expected = reference(&weights, &TOKENS, half_split);
    // The other layout gives other logits: the comparison below can tell them apart.
    let wrong = reference(&weights, &TOKENS, !half_split);
    assert!(max_diff(&expected[6], &wrong[6]) > 0.05);
    // Positions 3.. (the prefill's last token, then each decoded one).
    let expected_tail = &expected[3..];

    for (name, got) in [
        ("quantized", quantized_logits(weights.gguf(GgmlType::F32))),
        ("tensor", tensor_logits(weights.gguf(GgmlType::F32))),
    ] {
        assert_eq!(got.len(), expected_tail.len());
        for (pos, (g, e)) in got.iter().zip(expected_tail).enumerate() {
            let d = max_diff(g, e);
            assert!(
                d < 2e-3,
                "{arch:?} {name}: position {} differs by {d}",
                pos + 3
            );
        }
    }

    // Q8_0 weights through the integer kernels: against the reference on the same rounded
    // weights, within the error of 8-bit activations.
    let rounded = weights.rounded_to_q8_0();
    let expected = reference(&rounded, &TOKENS, half_split);
    let got = quantized_logits(weights.gguf(GgmlType::Q8_0));
    for (g, e) in got.iter().zip(&expected[3..]) {
        let scale = e.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = max_diff(g, e);
        assert!(
            d < 0.03 * scale,
            "{arch:?} q8_0: differs by {d} (scale {scale})"
        );
    }
}

#[test]
fn llama_matches_naive_reference() {
    check_against_reference(Arch::Llama);
}

#[test]
fn qwen2_matches_naive_reference() {
    check_against_reference(Arch::Qwen2);
}

#[test]
fn batched_steps_equal_separate_ones() {
    use cocoon_infer::builtin::quantized::SequenceStep;
    let weights = Weights::random(Arch::Qwen2, 5);
    let gguf = Gguf::parse(weights.gguf(GgmlType::Q8_0)).unwrap();
    let model = QuantizedLlama::load(&gguf, 2, &mut |_, _| {}).unwrap();
    let prompts: [&[u32]; 3] = [&[1, 2, 3], &[4], &[5, 6, 7, 8, 9]];
    let separate: Vec<Vec<f32>> = prompts
        .iter()
        .map(|p| model.forward(p, &mut model.new_cache()).unwrap())
        .collect();
    let mut caches: Vec<_> = prompts.iter().map(|_| model.new_cache()).collect();
    let mut steps: Vec<SequenceStep<'_>> = prompts
        .iter()
        .zip(caches.iter_mut())
        .enumerate()
        .map(|(i, (p, cache))| SequenceStep {
            tokens: p,
            cache,
            logits: i != 1,
        })
        .collect();
    let batched = model.forward_batch(&mut steps).unwrap();
    assert!(batched[1].is_none());
    for i in [0, 2] {
        let b = batched[i].as_ref().unwrap();
        assert!(max_diff(b, &separate[i]) < 1e-4, "sequence {i}");
    }
    assert_eq!(caches[2].len(), 5);
    // A bad step refuses the whole batch and changes no cache.
    let mut cache = model.new_cache();
    let mut other = model.new_cache();
    let err = model.forward_batch(&mut [
        SequenceStep {
            tokens: &[1],
            cache: &mut cache,
            logits: true,
        },
        SequenceStep {
            tokens: &[VOCAB as u32],
            cache: &mut other,
            logits: true,
        },
    ]);
    assert!(err.is_err());
    assert!(cache.is_empty() && other.is_empty());
}

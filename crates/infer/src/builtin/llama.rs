//! The llama-family decoder (`llama` files such as SmolLM2, and `qwen2`) as burn tensor
//! operations, for any burn backend:
//! grouped-query attention with a KV cache, RoPE, RMSNorm and a SwiGLU feed-forward block.
//!
//! Weights are dequantized to `f32` once at load. GGUF stores a linear layer as `[in, out]`
//! with `in` varying fastest, i.e. one row of `in` weights per output; we transpose to
//! `[in, out]` row-major so that a forward step is `x · W`.
//!
//! llama.cpp's converter permutes the rows of Q and K in `llama` files so that each rotary
//! pair is two adjacent elements, `(x[2i], x[2i+1])`; the rotation here works on adjacent
//! pairs accordingly (the half-split layout would give plausible but degraded text).

use burn::tensor::activation::{silu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use cocoon_gguf::Gguf;

use super::BuiltinError;

/// Decoder families this engine runs. They share the llama block structure and differ in
/// details the loader and forward pass take care of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Architecture {
    /// `llama` (SmolLM2 and others): no attention biases; Q/K rows permuted by the
    /// converter, so rotary pairs are adjacent elements.
    Llama,
    /// `qwen2`: biases on Q, K and V; rotary pairs are the two halves of a head.
    Qwen2,
}

impl Architecture {
    /// The `general.architecture` value, also the prefix of the model's metadata keys.
    pub fn gguf_name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
        }
    }

    /// Which elements of a head RoPE rotates together.
    pub fn rope_layout(self) -> RopeLayout {
        match self {
            Self::Llama => RopeLayout::AdjacentPairs,
            Self::Qwen2 => RopeLayout::HalfSplit,
        }
    }
}

/// How the elements of a head are paired for the rotary embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    /// `(x[2i], x[2i + 1])`: llama.cpp's `llama` files, whose Q/K rows are permuted.
    AdjacentPairs,
    /// `(x[i], x[i + d/2])`: the "NeoX" layout of unpermuted checkpoints (`qwen2`).
    HalfSplit,
}

/// Shape hyper-parameters of a llama-family model, read from GGUF metadata.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LlamaConfig {
    /// The decoder family.
    pub architecture: Architecture,
    /// Decoder blocks.
    pub layers: usize,
    /// Width of the residual stream.
    pub hidden: usize,
    /// Width of the feed-forward block.
    pub ffn: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (fewer than `heads` with grouped-query attention).
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// RoPE base frequency.
    pub rope_theta: f32,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// Context length the model was trained for.
    pub context: usize,
    /// Vocabulary size.
    pub vocab: usize,
}

impl LlamaConfig {
    /// Reads the configuration of a `llama` or `qwen2` file.
    ///
    /// # Errors
    /// [`BuiltinError::UnsupportedModel`] for another architecture or inconsistent shapes;
    /// [`BuiltinError::Gguf`] for missing keys.
    pub fn from_gguf<B: AsRef<[u8]>>(gguf: &Gguf<B>) -> Result<Self, BuiltinError> {
        let architecture = match gguf.get_str("general.architecture")? {
            "llama" => Architecture::Llama,
            "qwen2" => Architecture::Qwen2,
            other => {
                return Err(BuiltinError::UnsupportedModel(format!(
                    "architecture `{other}` (supported: llama, qwen2)"
                )));
            }
        };
        let prefix = architecture.gguf_name();
        let int = |key: &str| -> Result<usize, BuiltinError> {
            let v = gguf.get_u64(&format!("{prefix}.{key}"))?;
            usize::try_from(v).map_err(|_| {
                BuiltinError::UnsupportedModel(format!("{prefix}.{key} = {v} is too large"))
            })
        };
        let hidden = int("embedding_length")?;
        let heads = int("attention.head_count")?;
        let kv_heads = int("attention.head_count_kv")?;
        if heads == 0
            || kv_heads == 0
            || !hidden.is_multiple_of(heads)
            || !heads.is_multiple_of(kv_heads)
        {
            return Err(BuiltinError::UnsupportedModel(format!(
                "{heads} heads, {kv_heads} KV heads, hidden {hidden}"
            )));
        }
        let head_dim = hidden / heads;
        if !head_dim.is_multiple_of(2) {
            return Err(BuiltinError::UnsupportedModel(format!(
                "odd head width {head_dim}"
            )));
        }
        let vocab = match gguf.get_array("tokenizer.ggml.tokens") {
            Ok(tokens) => tokens.len(),
            Err(_) => int("vocab_size")?,
        };
        let config = Self {
            architecture,
            layers: int("block_count")?,
            hidden,
            ffn: int("feed_forward_length")?,
            heads,
            kv_heads,
            head_dim,
            rope_theta: gguf
                .get_f32(&format!("{prefix}.rope.freq_base"))
                .unwrap_or(10_000.0),
            rms_eps: gguf.get_f32(&format!("{prefix}.attention.layer_norm_rms_epsilon"))?,
            context: int("context_length")?,
            vocab,
        };
        if config.layers == 0 || config.ffn == 0 || config.vocab == 0 || config.context == 0 {
            return Err(BuiltinError::UnsupportedModel(format!(
                "empty dimension in {config:?}"
            )));
        }
        Ok(config)
    }

    /// Width of the keys (and values) of one position: `kv_heads · head_dim`.
    pub fn kv_width(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

/// RoPE angles as `(cos, sin)` tables of `[positions, head_dim / 2]`, row-major.
pub(crate) fn rope_table(c: &LlamaConfig, positions: usize) -> (Vec<f32>, Vec<f32>) {
    let half = c.head_dim / 2;
    let mut cos = Vec::with_capacity(positions * half);
    let mut sin = Vec::with_capacity(positions * half);
    for pos in 0..positions {
        for i in 0..half {
            let freq = f64::from(c.rope_theta).powf(-2.0 * i as f64 / c.head_dim as f64);
            let angle = pos as f64 * freq;
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    (cos, sin)
}

struct Block<B: Backend> {
    attn_norm: Tensor<B, 2>,
    wq: Tensor<B, 2>,
    wk: Tensor<B, 2>,
    wv: Tensor<B, 2>,
    /// Q, K and V biases (`qwen2`), each `[1, width]`.
    biases: Option<[Tensor<B, 2>; 3]>,
    wo: Tensor<B, 2>,
    ffn_norm: Tensor<B, 2>,
    gate: Tensor<B, 2>,
    up: Tensor<B, 2>,
    down: Tensor<B, 2>,
}

/// A loaded llama model on backend `B`.
pub struct Llama<B: Backend> {
    config: LlamaConfig,
    device: B::Device,
    /// Token embeddings, `[vocab, hidden]` row-major, kept on the host: a lookup is a copy.
    embeddings: Vec<f32>,
    blocks: Vec<Block<B>>,
    out_norm: Tensor<B, 2>,
    /// `[hidden, vocab]`.
    lm_head: Tensor<B, 2>,
    /// `[context, head_dim / 2]`.
    cos: Tensor<B, 2>,
    sin: Tensor<B, 2>,
}

impl<B: Backend> std::fmt::Debug for Llama<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llama")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Keys and values of the positions seen so far, per block: `[kv_heads, positions, head_dim]`.
#[derive(Debug)]
pub struct KvCache<B: Backend> {
    layers: Vec<Option<(Tensor<B, 3>, Tensor<B, 3>)>>,
    len: usize,
}

impl<B: Backend> KvCache<B> {
    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<B: Backend> Llama<B> {
    /// Dequantizes the model in `gguf` onto `device`.
    ///
    /// # Errors
    /// [`BuiltinError::UnsupportedModel`] for missing or misshapen tensors;
    /// [`BuiltinError::Gguf`] for tensor types that cannot be decoded.
    pub fn load<D: AsRef<[u8]>>(gguf: &Gguf<D>, device: &B::Device) -> Result<Self, BuiltinError> {
        let config = LlamaConfig::from_gguf(gguf)?;
        let c = config;
        let kv_width = c.kv_heads * c.head_dim;
        let embeddings = tensor_values(gguf, "token_embd.weight", &[c.hidden, c.vocab])?;
        let lm_head = match gguf.tensor("output.weight") {
            Some(_) => linear(gguf, "output.weight", c.hidden, c.vocab, device)?,
            None => Tensor::from_data(
                TensorData::new(
                    transpose(&embeddings, c.vocab, c.hidden),
                    [c.hidden, c.vocab],
                ),
                device,
            ),
        };
        let mut blocks = Vec::with_capacity(c.layers);
        for i in 0..c.layers {
            let name = |t: &str| format!("blk.{i}.{t}.weight");
            let biases = match gguf.tensor(&format!("blk.{i}.attn_q.bias")) {
                None => None,
                Some(_) => {
                    let bias =
                        |t: &str, width| norm(gguf, &format!("blk.{i}.{t}.bias"), width, device);
                    Some([
                        bias("attn_q", c.hidden)?,
                        bias("attn_k", kv_width)?,
                        bias("attn_v", kv_width)?,
                    ])
                }
            };
            blocks.push(Block {
                attn_norm: norm(gguf, &name("attn_norm"), c.hidden, device)?,
                wq: linear(gguf, &name("attn_q"), c.hidden, c.hidden, device)?,
                wk: linear(gguf, &name("attn_k"), c.hidden, kv_width, device)?,
                wv: linear(gguf, &name("attn_v"), c.hidden, kv_width, device)?,
                biases,
                wo: linear(gguf, &name("attn_output"), c.hidden, c.hidden, device)?,
                ffn_norm: norm(gguf, &name("ffn_norm"), c.hidden, device)?,
                gate: linear(gguf, &name("ffn_gate"), c.hidden, c.ffn, device)?,
                up: linear(gguf, &name("ffn_up"), c.hidden, c.ffn, device)?,
                down: linear(gguf, &name("ffn_down"), c.ffn, c.hidden, device)?,
            });
        }
        let out_norm = norm(gguf, "output_norm.weight", c.hidden, device)?;
        let (cos, sin) = rope_tables(&c, device);
        Ok(Self {
            config,
            device: device.clone(),
            embeddings,
            blocks,
            out_norm,
            lm_head,
            cos,
            sin,
        })
    }

    /// The model's shape.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// An empty cache for one sequence.
    pub fn new_cache(&self) -> KvCache<B> {
        KvCache {
            layers: (0..self.config.layers).map(|_| None).collect(),
            len: 0,
        }
    }

    /// Runs `tokens` (which follow the positions already in `cache`) through the model,
    /// appends them to the cache and returns the logits of the last one.
    ///
    /// # Errors
    /// [`BuiltinError::ContextOverflow`] past the context length,
    /// [`BuiltinError::UnsupportedModel`] for a token id outside the vocabulary.
    pub fn forward(
        &self,
        tokens: &[u32],
        cache: &mut KvCache<B>,
    ) -> Result<Vec<f32>, BuiltinError> {
        let mut logits = self.forward_batch(&mut [(tokens, cache)])?;
        logits
            .pop()
            .ok_or_else(|| BuiltinError::TensorData("no logits".into()))
    }

    /// Runs several sequences at once: the linear layers see the rows of all of them in one
    /// matrix product, attention stays within each sequence. Returns the logits of the last
    /// token of each, in order.
    ///
    /// # Errors
    /// As [`Llama::forward`], for any of the sequences; then no cache is changed.
    pub fn forward_batch(
        &self,
        batch: &mut [(&[u32], &mut KvCache<B>)],
    ) -> Result<Vec<Vec<f32>>, BuiltinError> {
        let c = &self.config;
        let mut rows = Vec::new();
        for (tokens, cache) in batch.iter() {
            if tokens.is_empty() {
                return Err(BuiltinError::TensorData(
                    "forward pass over no tokens".into(),
                ));
            }
            if cache.len + tokens.len() > c.context {
                return Err(BuiltinError::ContextOverflow {
                    needed: cache.len + tokens.len(),
                    context: c.context,
                });
            }
            for &id in *tokens {
                let start = id as usize * c.hidden;
                let row = self
                    .embeddings
                    .get(start..start + c.hidden)
                    .ok_or_else(|| {
                        BuiltinError::UnsupportedModel(format!(
                            "token id {id} outside the vocabulary"
                        ))
                    })?;
                rows.extend_from_slice(row);
            }
        }
        let total = rows.len() / c.hidden;
        if total == 0 {
            return Ok(Vec::new());
        }
        let mut x =
            Tensor::<B, 2>::from_data(TensorData::new(rows, [total, c.hidden]), &self.device);
        let half = c.head_dim / 2;
        let layout = c.architecture.rope_layout();
        // Per sequence: first row, length, and its RoPE angles and mask.
        let mut spans = Vec::with_capacity(batch.len());
        let mut first = 0;
        for (tokens, cache) in batch.iter() {
            let (t, past) = (tokens.len(), cache.len);
            let angles = |table: &Tensor<B, 2>| table.clone().narrow(0, past, t);
            let mask = (t > 1).then(|| causal_mask::<B>(t, past, &self.device));
            spans.push((first, t, past, angles(&self.cos), angles(&self.sin), mask));
            first += t;
        }
        let group = c.heads / c.kv_heads;
        let scale = 1.0 / (c.head_dim as f32).sqrt();

        for (layer, block) in self.blocks.iter().enumerate() {
            let h = rms_norm(x.clone(), &block.attn_norm, c.rms_eps);
            let mut q = h.clone().matmul(block.wq.clone());
            let mut k = h.clone().matmul(block.wk.clone());
            let mut v = h.matmul(block.wv.clone());
            if let Some([bq, bk, bv]) = &block.biases {
                q = q.add(bq.clone());
                k = k.add(bk.clone());
                v = v.add(bv.clone());
            }
            let mut outputs = Vec::with_capacity(batch.len());
            for ((_, cache), (first, t, past, cos, sin, mask)) in batch.iter_mut().zip(&spans) {
                let (first, t, past) = (*first, *t, *past);
                let q = rotate(
                    q.clone().narrow(0, first, t),
                    c.heads,
                    half,
                    cos,
                    sin,
                    layout,
                )
                .swap_dims(0, 1);
                let k = rotate(
                    k.clone().narrow(0, first, t),
                    c.kv_heads,
                    half,
                    cos,
                    sin,
                    layout,
                )
                .swap_dims(0, 1);
                let v = v
                    .clone()
                    .narrow(0, first, t)
                    .reshape([t, c.kv_heads, c.head_dim])
                    .swap_dims(0, 1);
                let slot = &mut cache.layers[layer];
                let (k, v) = match slot.take() {
                    Some((pk, pv)) => (Tensor::cat(vec![pk, k], 1), Tensor::cat(vec![pv, v], 1)),
                    None => (k, v),
                };
                *slot = Some((k.clone(), v.clone()));
                let s = past + t;
                // Query head h reads KV head h / group: fold each group's queries into one
                // batch row.
                let q = q.reshape([c.kv_heads, group * t, c.head_dim]);
                let mut scores = q.matmul(k.swap_dims(1, 2)).mul_scalar(scale);
                if let Some(mask) = mask {
                    scores = scores
                        .reshape([c.kv_heads, group, t, s])
                        .add(mask.clone())
                        .reshape([c.kv_heads, group * t, s]);
                }
                outputs.push(
                    softmax(scores, 2)
                        .matmul(v)
                        .reshape([c.heads, t, c.head_dim])
                        .swap_dims(0, 1)
                        .reshape([t, c.hidden]),
                );
            }
            let attn = Tensor::cat(outputs, 0);
            x = x.add(attn.matmul(block.wo.clone()));

            let h = rms_norm(x.clone(), &block.ffn_norm, c.rms_eps);
            let gated = silu(h.clone().matmul(block.gate.clone())).mul(h.matmul(block.up.clone()));
            x = x.add(gated.matmul(block.down.clone()));
        }
        let mut lasts = Vec::with_capacity(batch.len());
        for ((tokens, cache), (first, t, ..)) in batch.iter_mut().zip(&spans) {
            cache.len += tokens.len();
            lasts.push(x.clone().narrow(0, first + t - 1, 1));
        }
        let n = lasts.len();
        let logits =
            rms_norm(Tensor::cat(lasts, 0), &self.out_norm, c.rms_eps).matmul(self.lm_head.clone());
        let flat = logits
            .into_data()
            .to_vec::<f32>()
            .map_err(|e| BuiltinError::TensorData(format!("{e:?}")))?;
        if flat.len() != n * c.vocab {
            return Err(BuiltinError::TensorData(format!(
                "{} logits for {n} sequences of vocabulary {}",
                flat.len(),
                c.vocab
            )));
        }
        Ok(flat.chunks(c.vocab).map(<[f32]>::to_vec).collect())
    }
}

fn rms_norm<B: Backend>(x: Tensor<B, 2>, weight: &Tensor<B, 2>, eps: f32) -> Tensor<B, 2> {
    let inv = x
        .clone()
        .square()
        .mean_dim(1)
        .add_scalar(eps)
        .sqrt()
        .recip();
    x.mul(inv).mul(weight.clone())
}

/// Rotates `[t, heads * head_dim]` by position and returns `[t, heads, head_dim]`.
/// `cos` and `sin` are `[t, head_dim / 2]`.
fn rotate<B: Backend>(
    x: Tensor<B, 2>,
    heads: usize,
    half: usize,
    cos: &Tensor<B, 2>,
    sin: &Tensor<B, 2>,
    layout: RopeLayout,
) -> Tensor<B, 3> {
    let [t, _] = x.dims();
    // Pairs along axis 3 (adjacent) or axis 2 (halves).
    let (shape, cs_shape, axis) = match layout {
        RopeLayout::AdjacentPairs => ([t, heads, half, 2], [t, 1, half, 1], 3),
        RopeLayout::HalfSplit => ([t, heads, 2, half], [t, 1, 1, half], 2),
    };
    let (cos, sin) = (cos.clone().reshape(cs_shape), sin.clone().reshape(cs_shape));
    let pairs = x.reshape(shape);
    let a = pairs.clone().narrow(axis, 0, 1);
    let b = pairs.narrow(axis, 1, 1);
    let new_a = a.clone().mul(cos.clone()).sub(b.clone().mul(sin.clone()));
    let new_b = a.mul(sin).add(b.mul(cos));
    Tensor::cat(vec![new_a, new_b], axis).reshape([t, heads, half * 2])
}

/// `[1, 1, t, past + t]`: 0 where query `i` may see key `j`, minus infinity after it.
fn causal_mask<B: Backend>(t: usize, past: usize, device: &B::Device) -> Tensor<B, 4> {
    let s = past + t;
    let mut mask = vec![0.0f32; t * s];
    for i in 0..t {
        for j in past + i + 1..s {
            mask[i * s + j] = f32::NEG_INFINITY;
        }
    }
    Tensor::from_data(TensorData::new(mask, [1, 1, t, s]), device)
}

fn rope_tables<B: Backend>(c: &LlamaConfig, device: &B::Device) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let half = c.head_dim / 2;
    let (cos, sin) = rope_table(c, c.context);
    (
        Tensor::from_data(TensorData::new(cos, [c.context, half]), device),
        Tensor::from_data(TensorData::new(sin, [c.context, half]), device),
    )
}

/// The values of tensor `name`, which must have GGUF dims `dims` (fastest first).
fn tensor_values<D: AsRef<[u8]>>(
    gguf: &Gguf<D>,
    name: &str,
    dims: &[usize],
) -> Result<Vec<f32>, BuiltinError> {
    let view = gguf
        .tensor(name)
        .ok_or_else(|| BuiltinError::UnsupportedModel(format!("tensor {name} is missing")))?;
    let actual: Vec<u64> = view.dims().to_vec();
    if actual.len() != dims.len() || actual.iter().zip(dims).any(|(&a, &d)| a != d as u64) {
        return Err(BuiltinError::UnsupportedModel(format!(
            "tensor {name} has dims {actual:?}, expected {dims:?}"
        )));
    }
    Ok(view.to_f32_vec()?)
}

/// A linear layer as `[input, output]` row-major.
fn linear<B: Backend, D: AsRef<[u8]>>(
    gguf: &Gguf<D>,
    name: &str,
    input: usize,
    output: usize,
    device: &B::Device,
) -> Result<Tensor<B, 2>, BuiltinError> {
    let rows = tensor_values(gguf, name, &[input, output])?;
    Ok(Tensor::from_data(
        TensorData::new(transpose(&rows, output, input), [input, output]),
        device,
    ))
}

fn norm<B: Backend, D: AsRef<[u8]>>(
    gguf: &Gguf<D>,
    name: &str,
    width: usize,
    device: &B::Device,
) -> Result<Tensor<B, 2>, BuiltinError> {
    let values = tensor_values(gguf, name, &[width])?;
    Ok(Tensor::from_data(
        TensorData::new(values, [1, width]),
        device,
    ))
}

/// `src` is `[rows, cols]` row-major; returns `[cols, rows]` row-major.
fn transpose(src: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; src.len()];
    // Tiles keep both sides in cache.
    const TILE: usize = 32;
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    out[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_swaps_axes() {
        let src: Vec<f32> = (0..6).map(|v| v as f32).collect();
        // [[0,1,2],[3,4,5]] -> [[0,3],[1,4],[2,5]]
        assert_eq!(transpose(&src, 2, 3), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }
}

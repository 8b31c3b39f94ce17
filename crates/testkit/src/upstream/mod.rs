//! A fake OpenAI-compatible inference engine on loopback, standing in for vLLM, SGLang or
//! llama.cpp server in end-to-end tests and relay benchmarks.
//!
//! Endpoints: `POST /v1/chat/completions`, `POST /v1/completions`, `GET /v1/models`,
//! `GET /health` and `GET /stats` (request counters as JSON). Answers follow the rules of
//! [`answer`]; their size, pace and faults follow an [`AnswerShape`] that each request may
//! override (see [`overrides`]).

pub mod answer;
pub mod overrides;
pub(crate) mod request;
mod service;
mod transcribe;
mod wire;

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

pub use overrides::{AnswerShape, StreamFormat, UsagePolicy};

use crate::TestkitError;

/// The model a fake upstream serves when none is configured: the reference benchmark's.
pub const DEFAULT_MODEL: &str = "Qwen/Qwen3-8B";

/// Largest request body accepted; larger ones get 413.
pub const MAX_REQUEST_BODY: usize = 8 << 20;

/// How a fake upstream is started.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UpstreamConfig {
    /// Where to listen; port 0 picks a free port. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// Models served, listed by `/v1/models`; others get an OpenAI-shaped 404.
    /// A request without `model` gets the first. Default: [`DEFAULT_MODEL`].
    pub models: Vec<String>,
    /// Serve any model name instead of answering 404 for unknown ones.
    pub any_model: bool,
    /// Default answer shape, overridable per request.
    pub shape: AnswerShape,
    /// Keep the last this many inference requests for [`FakeUpstream::recorded_requests`]
    /// (0, the default, keeps none and costs nothing).
    pub record_requests: usize,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            models: vec![DEFAULT_MODEL.to_owned()],
            any_model: false,
            shape: AnswerShape::default(),
            record_requests: 0,
        }
    }
}

/// Counters of what a fake upstream has done, as returned by [`FakeUpstream::stats`] and
/// `GET /stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct UpstreamStats {
    /// TCP connections accepted.
    pub connections: u64,
    /// Inference requests received (chat and completions, any outcome).
    pub requests: u64,
    /// Inference requests answered with a stream (SSE or NDJSON).
    pub streamed: u64,
    /// Answers aborted on purpose (`fail-after`).
    pub aborted: u64,
    /// Requests answered with an error status (bad body, unknown model, injected status…).
    pub errors: u64,
}

/// Live counters shared by the accept loop, the handlers and the streaming bodies.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connections: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) streamed: AtomicU64,
    pub(crate) aborted: AtomicU64,
    pub(crate) errors: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> UpstreamStats {
        UpstreamStats {
            connections: self.connections.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            streamed: self.streamed.load(Ordering::Relaxed),
            aborted: self.aborted.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

/// One inference request as the fake upstream received it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// The request method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// The request headers.
    pub headers: HeaderMap,
    /// The body, byte for byte.
    pub body: Bytes,
}

/// What every connection of one server shares.
pub(crate) struct Shared {
    pub(crate) config: UpstreamConfig,
    pub(crate) counters: Arc<Counters>,
    pub(crate) next_id: AtomicU64,
    pub(crate) models_document: Bytes,
    pub(crate) recorded: Mutex<VecDeque<RecordedRequest>>,
}

impl Shared {
    pub(crate) fn record(&self, request: RecordedRequest) {
        let cap = self.config.record_requests;
        if cap == 0 {
            return;
        }
        let mut recorded = self.recorded.lock().unwrap_or_else(PoisonError::into_inner);
        while recorded.len() >= cap {
            recorded.pop_front();
        }
        recorded.push_back(request);
    }
}

/// A running fake upstream; dropping it stops the server and closes its connections.
pub struct FakeUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FakeUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeUpstream")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FakeUpstream {
    /// Binds the listener and starts serving on the current tokio runtime.
    ///
    /// # Errors
    /// [`TestkitError::Bind`] when the address cannot be bound, [`TestkitError::InvalidShape`]
    /// when the default shape is out of range.
    pub async fn start(config: UpstreamConfig) -> Result<Self, TestkitError> {
        if let Err(refused) = config.shape.check() {
            return Err(TestkitError::InvalidShape {
                reason: refused.to_string(),
            });
        }
        let listener =
            cocoon_net::listener::bind(config.listen).map_err(|source| TestkitError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| TestkitError::Bind {
            addr: config.listen,
            source,
        })?;
        let models_document = service::models_document(&config.models)?;
        let shared = Arc::new(Shared {
            config,
            counters: Arc::new(Counters::default()),
            next_id: AtomicU64::new(1),
            models_document,
            recorded: Mutex::new(VecDeque::new()),
        });
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), stopped));
        Ok(Self {
            addr,
            shared,
            stop: Some(stop),
            task,
        })
    }

    /// The address the server listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the base URL to give an OpenAI client (add `/v1`).
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Counters so far.
    #[must_use]
    pub fn stats(&self) -> UpstreamStats {
        self.shared.counters.snapshot()
    }

    /// The last inference requests received, oldest first (see
    /// [`UpstreamConfig::record_requests`]).
    #[must_use]
    pub fn recorded_requests(&self) -> Vec<RecordedRequest> {
        let recorded = self
            .shared
            .recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        recorded.iter().cloned().collect()
    }

    /// Stops accepting, closes every connection and waits until the server task has ended.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            // The loop may already have ended; nothing to signal then.
            let _ = stop.send(());
        }
        // The task ends by itself once signalled; a join error only means it was aborted.
        let _ = (&mut self.task).await;
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts connections until told to stop; dropping the `JoinSet` at the end aborts every
/// connection still open.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    shared.counters.connections.fetch_add(1, Ordering::Relaxed);
                    connections.spawn(serve_connection(stream, Arc::clone(&shared)));
                }
                Err(error) => {
                    // Out of file descriptors or a connection reset before accept: back off
                    // briefly instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = &mut stop => break,
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    // Engines answer token by token; small writes must not wait for Nagle.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY");
    }
    let service = hyper::service::service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { service::handle(&shared, request).await }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(error) = served {
        tracing::debug!(%error, "connection ended with an error");
    }
}

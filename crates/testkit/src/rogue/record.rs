//! What the rogue worker saw and did, request by request: the ids and token limit the proxy
//! sent, whether a cancel came, what was reported. Tests read it from `/jsonstats` or from the
//! JSON line printed on stdout when a request ends.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;

use super::TokenCounts;
use crate::TestkitError;

/// Which message carried a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// `proxy.runQueryEx` (or the older `proxy.runQuery`).
    RunQueryEx,
    /// `ext.workerRunQuery`.
    WorkerRunQuery,
    /// `ext.workerRunSealedQuery`.
    WorkerRunSealedQuery,
}

/// How a request ended (or that it has not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum RequestOutcome {
    /// Still being answered, or held open (`--no-final`).
    Running,
    /// The final part was sent.
    Completed,
    /// A cancel was acknowledged with code 499 and the usage so far.
    Cancelled,
    /// Refused with an error code.
    Refused {
        /// The code sent.
        code: i32,
        /// Why.
        message: String,
    },
    /// The connection to the proxy ended first.
    ConnectionLost,
}

/// One request as the worker saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// Which message carried it.
    pub kind: RequestKind,
    /// The proxy's request id, hex.
    pub request_id: String,
    /// The client's request id, hex (`ext.workerRun*Query` only).
    pub client_request_id: Option<String>,
    /// The token limit the proxy reserved (`ext.workerRun*Query` only).
    pub token_limit: Option<i64>,
    /// Bytes of the request body (once the request was read).
    pub body_bytes: Option<usize>,
    /// Whether the answer was streamed (once the body was read).
    pub stream: Option<bool>,
    /// Frames of the answer sent.
    pub frames_sent: usize,
    /// What the answer really used (once planned).
    pub honest: Option<TokenCounts>,
    /// What the worker reported last (final part or cancel acknowledgement).
    pub reported: Option<TokenCounts>,
    /// Whether `ext.cancelQuery` came for it.
    pub cancel_received: bool,
    /// `signed`, `replayed` (the first request's receipt sent again) or absent.
    pub receipt: Option<&'static str>,
    /// How it ended.
    pub outcome: RequestOutcome,
}

impl RequestRecord {
    /// A request just received.
    #[must_use]
    pub fn new(
        kind: RequestKind,
        request_id: String,
        client_request_id: Option<String>,
        token_limit: Option<i64>,
    ) -> Self {
        Self {
            kind,
            request_id,
            client_request_id,
            token_limit,
            body_bytes: None,
            stream: None,
            frames_sent: 0,
            honest: None,
            reported: None,
            cancel_received: false,
            receipt: None,
            outcome: RequestOutcome::Running,
        }
    }
}

/// Everything `/jsonstats` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RogueStats {
    /// The model served.
    pub model: String,
    /// Whether a session with the proxy is up.
    pub connected: bool,
    /// The version the proxy agreed to in the last handshake.
    pub protocol_version: Option<i32>,
    /// Sessions opened so far.
    pub sessions: u64,
    /// `ext.cancelQuery` packets received.
    pub cancels_received: u64,
    /// The committed token total of the last payment status.
    pub committed_tokens: i64,
    /// Every request, in the order received.
    pub requests: Vec<RequestRecord>,
}

/// The worker's records, shared by its tasks.
#[derive(Debug, Default)]
pub struct Records(Mutex<RogueStats>);

impl Records {
    /// Empty records for `model`.
    #[must_use]
    pub fn new(model: &str) -> Self {
        Self(Mutex::new(RogueStats {
            model: model.to_owned(),
            ..RogueStats::default()
        }))
    }

    /// Changes the stats under the lock.
    pub fn update<T>(&self, f: impl FnOnce(&mut RogueStats) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Adds a request; answers its index.
    pub fn begin(&self, record: RequestRecord) -> usize {
        self.update(|s| {
            s.requests.push(record);
            s.requests.len() - 1
        })
    }

    /// Changes one request's record.
    pub fn request(&self, index: usize, f: impl FnOnce(&mut RequestRecord)) {
        self.update(|s| {
            if let Some(r) = s.requests.get_mut(index) {
                f(r);
            }
        });
    }

    /// Counts an `ext.cancelQuery` and marks the request it names.
    pub fn note_cancel(&self, request_id: &str) {
        self.update(|s| {
            s.cancels_received += 1;
            if let Some(r) = s
                .requests
                .iter_mut()
                .rev()
                .find(|r| r.request_id == request_id)
            {
                r.cancel_received = true;
            }
        });
    }

    /// Ends a request with `outcome`; answers its record.
    pub fn finish(&self, index: usize, outcome: RequestOutcome) -> Option<RequestRecord> {
        self.update(|s| {
            let r = s.requests.get_mut(index)?;
            r.outcome = outcome;
            Some(r.clone())
        })
    }

    /// A copy of everything.
    #[must_use]
    pub fn snapshot(&self) -> RogueStats {
        self.update(|s| s.clone())
    }
}

/// Binds `addr` for [`serve_stats`].
///
/// # Errors
/// [`TestkitError::Bind`] when the address cannot be bound.
pub async fn bind_stats(addr: SocketAddr) -> Result<TcpListener, TestkitError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| TestkitError::Bind { addr, source })
}

/// Serves `GET /jsonstats` (the records as JSON) and `GET /health` until the task is dropped.
pub async fn serve_stats(listener: TcpListener, records: Arc<Records>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::debug!("stats listener: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let records = records.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                let records = records.clone();
                async move { Ok::<_, Infallible>(stats_answer(req.uri().path(), &records)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn stats_answer(path: &str, records: &Records) -> hyper::Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/jsonstats" => match serde_json::to_vec(&records.snapshot()) {
            Ok(body) => (200, "application/json", Bytes::from(body)),
            Err(e) => (500, "text/plain", Bytes::from(e.to_string())),
        },
        "/health" => (200, "text/plain", Bytes::from_static(b"ok")),
        _ => (404, "text/plain", Bytes::from_static(b"not found")),
    };
    let mut response = hyper::Response::new(Full::new(body));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

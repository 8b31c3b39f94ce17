//! An HTTP/1.1 load generator for relay benchmarks, in the manner of
//! `hey -m POST -disable-keepalive -c 30`, that reads every answer to its end.
//!
//! A fixed number of workers each send one request at a time. By default every request opens
//! a new TCP connection and asks the server to close it (`Connection: close`), as the
//! reference benchmark did; with keep-alive each worker reuses its own connection. A request
//! counts as served only when its status is 2xx, its whole body has arrived and, for an SSE
//! answer (`text/event-stream`), the body ends with `data: [DONE]`. Latency is measured from
//! before the connection is opened to the last body byte, for served requests only.

pub mod histogram;
mod report;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

pub use histogram::LatencyHistogram;
pub use report::LoadReport;

use crate::TestkitError;

/// Where the load goes: a plain `http://` URL, resolved once before the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadTarget {
    url: String,
    addr: SocketAddr,
    host_header: HeaderValue,
    request_uri: Uri,
}

impl LoadTarget {
    /// Parses `http://host[:port][/path][?query]` and resolves the host.
    ///
    /// # Errors
    /// [`TestkitError::InvalidUrl`] for anything but a plain HTTP URL with a host,
    /// [`TestkitError::Resolve`] when the host does not resolve.
    pub async fn resolve(url: &str) -> Result<Self, TestkitError> {
        let invalid = |reason| TestkitError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let uri = Uri::from_str(url).map_err(|_| invalid("not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => return Err(invalid("https is not supported; use plain http")),
            _ => return Err(invalid("the URL must start with http://")),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| invalid("the URL has no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("credentials in the URL are not supported"));
        }
        let port = authority.port_u16().unwrap_or(80);
        let lookup = format!("{}:{port}", authority.host());
        let mut addrs =
            tokio::net::lookup_host(&lookup)
                .await
                .map_err(|e| TestkitError::Resolve {
                    host: lookup.clone(),
                    reason: e.to_string(),
                })?;
        let addr = addrs.next().ok_or_else(|| TestkitError::Resolve {
            host: lookup.clone(),
            reason: "no address".to_owned(),
        })?;
        let host_header = HeaderValue::from_str(authority.as_str())
            .map_err(|_| invalid("the host is not a valid Host header"))?;
        let request_uri = uri
            .path_and_query()
            .map_or_else(|| Ok(Uri::from_static("/")), |p| Uri::from_str(p.as_str()))
            .map_err(|_| invalid("unusable path"))?;
        Ok(Self {
            url: url.to_owned(),
            addr,
            host_header,
            request_uri,
        })
    }

    /// The URL as given.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address connected to.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// When a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopCondition {
    /// After this many requests in total.
    Requests(u64),
    /// When this much time has passed; requests under way are completed and counted.
    Duration(Duration),
}

/// A load run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoadConfig {
    /// Where requests go.
    pub target: LoadTarget,
    /// Request method. Default GET.
    pub method: Method,
    /// Extra request headers (`Host` is set from the URL).
    pub headers: HeaderMap,
    /// Request body; empty means none.
    pub body: Bytes,
    /// Requests in flight at once (workers). Default 30.
    pub concurrency: usize,
    /// When to stop. Default 200 requests.
    pub stop: StopCondition,
    /// Reuse one connection per worker; when false (the default) every request opens a new
    /// connection and sends `Connection: close`.
    pub keepalive: bool,
    /// Per-request limit, connection included; `None` waits forever. Default 20 s.
    pub timeout: Option<Duration>,
}

impl LoadConfig {
    /// A run against `target` with the defaults above.
    #[must_use]
    pub fn new(target: LoadTarget) -> Self {
        Self {
            target,
            method: Method::GET,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            concurrency: 30,
            stop: StopCondition::Requests(200),
            keepalive: false,
            timeout: Some(Duration::from_secs(20)),
        }
    }
}

/// Why a request did not count as served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// The TCP connection or the HTTP handshake failed.
    Connect,
    /// The request could not be sent or no response head came back.
    Exchange,
    /// The response body broke off before its end.
    Body,
    /// The status was not 2xx (the body was still read to its end).
    Status,
    /// An SSE answer ended without `data: [DONE]`.
    MissingDone,
    /// The per-request timeout passed.
    Timeout,
}

impl FailureKind {
    /// A short stable name, used in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Exchange => "exchange",
            Self::Body => "body",
            Self::Status => "status",
            Self::MissingDone => "missing_done",
            Self::Timeout => "timeout",
        }
    }
}

/// Parses `500ms`, `5s`, `2m`, `1h`, or plain (possibly fractional) seconds.
///
/// # Errors
/// [`TestkitError::InvalidDuration`] for anything else, negative or non-finite values.
pub fn parse_duration(text: &str) -> Result<Duration, TestkitError> {
    let invalid = || TestkitError::InvalidDuration {
        text: text.to_owned(),
    };
    let trimmed = text.trim();
    let (number, scale) = if let Some(n) = trimmed.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = trimmed.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = trimmed.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = trimmed.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (trimmed, 1.0)
    };
    let value: f64 = number.trim().parse().map_err(|_| invalid())?;
    Duration::try_from_secs_f64(value * scale).map_err(|_| invalid())
}

/// Parses a `Name: value` header as given on a command line.
///
/// # Errors
/// [`TestkitError::InvalidHeader`] without a colon or with an invalid name or value.
pub fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), TestkitError> {
    let invalid = || TestkitError::InvalidHeader {
        header: text.to_owned(),
    };
    let (name, value) = text.split_once(':').ok_or_else(invalid)?;
    let name = HeaderName::from_str(name.trim()).map_err(|_| invalid())?;
    let value = HeaderValue::from_str(value.trim()).map_err(|_| invalid())?;
    Ok((name, value))
}

/// What one worker saw.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    latency: LatencyHistogram,
    statuses: BTreeMap<u16, u64>,
    failures: BTreeMap<FailureKind, u64>,
    body_bytes: u64,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.latency.merge(&other.latency);
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        for (kind, n) in other.failures {
            *self.failures.entry(kind).or_default() += n;
        }
        self.body_bytes += other.body_bytes;
    }
}

/// What every worker shares.
struct Run {
    config: LoadConfig,
    /// The headers of every request, `Host` and `Connection` included.
    headers: HeaderMap,
    issued: AtomicU64,
    deadline: Option<Instant>,
}

impl Run {
    /// Takes the right to send one more request.
    fn claim(&self) -> bool {
        match self.config.stop {
            StopCondition::Requests(total) => self.issued.fetch_add(1, Ordering::Relaxed) < total,
            StopCondition::Duration(_) => self.deadline.is_none_or(|d| Instant::now() < d),
        }
    }
}

/// The end of an SSE stream, kept while a body streams past.
#[derive(Default)]
struct Tail {
    bytes: Vec<u8>,
}

impl Tail {
    const KEEP: usize = 32;

    fn push(&mut self, data: &[u8]) {
        if data.len() >= Self::KEEP {
            self.bytes.clear();
            self.bytes
                .extend_from_slice(&data[data.len() - Self::KEEP..]);
        } else {
            self.bytes.extend_from_slice(data);
            if self.bytes.len() > Self::KEEP {
                let excess = self.bytes.len() - Self::KEEP;
                self.bytes.drain(..excess);
            }
        }
    }

    fn ends_with_done(&self) -> bool {
        self.bytes.trim_ascii_end().ends_with(b"data: [DONE]")
    }
}

struct Served {
    status: u16,
    bytes: u64,
}

struct Failed {
    kind: FailureKind,
    status: Option<u16>,
}

impl From<FailureKind> for Failed {
    fn from(kind: FailureKind) -> Self {
        Self { kind, status: None }
    }
}

type Sender = SendRequest<Full<Bytes>>;
type Connection = hyper::client::conn::http1::Connection<TokioIo<TcpStream>, Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<(Sender, Connection), Failed> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|_| FailureKind::Connect)?;
    // Best effort: a request is sent in one write either way.
    let _ = stream.set_nodelay(true);
    hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| FailureKind::Connect.into())
}

/// One request and its whole answer; keeps the connection in `slot` for reuse when allowed.
async fn exchange(run: &Run, slot: &mut Option<Sender>) -> Result<Served, Failed> {
    if run.config.keepalive {
        let reusable = match slot.take() {
            Some(mut sender) if !sender.is_closed() => sender.ready().await.ok().map(|()| sender),
            _ => None,
        };
        let mut sender = match reusable {
            Some(sender) => sender,
            None => {
                let (sender, connection) = connect(run.config.target.addr).await?;
                tokio::spawn(async move {
                    // Its errors surface on the request side.
                    let _ = connection.await;
                });
                sender
            }
        };
        let served = send_and_read(run, &mut sender).await;
        *slot = Some(sender);
        return served;
    }
    // A connection used once is driven by this task itself: no extra task, no hand-over of
    // every body chunk between tasks. It is dropped (closed) as soon as the answer is read.
    let (mut sender, connection) = connect(run.config.target.addr).await?;
    let exchange = send_and_read(run, &mut sender);
    tokio::pin!(exchange, connection);
    let mut connection_open = true;
    loop {
        tokio::select! {
            served = &mut exchange => return served,
            _ = &mut connection, if connection_open => connection_open = false,
        }
    }
}

async fn send_and_read(run: &Run, sender: &mut Sender) -> Result<Served, Failed> {
    let mut request = Request::new(Full::new(run.config.body.clone()));
    *request.method_mut() = run.config.method.clone();
    *request.uri_mut() = run.config.target.request_uri.clone();
    *request.headers_mut() = run.headers.clone();
    let response = sender
        .send_request(request)
        .await
        .map_err(|_| FailureKind::Exchange)?;
    let status = response.status();
    let sse = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let mut body = response.into_body();
    let mut tail = Tail::default();
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| Failed {
            kind: FailureKind::Body,
            status: Some(status.as_u16()),
        })?;
        if let Some(data) = frame.data_ref() {
            bytes += data.len() as u64;
            if sse {
                tail.push(data);
            }
        }
    }
    if !status.is_success() {
        return Err(Failed {
            kind: FailureKind::Status,
            status: Some(status.as_u16()),
        });
    }
    if sse && !tail.ends_with_done() {
        return Err(Failed {
            kind: FailureKind::MissingDone,
            status: Some(status.as_u16()),
        });
    }
    Ok(Served {
        status: status.as_u16(),
        bytes,
    })
}

async fn worker(run: Arc<Run>) -> Tally {
    let mut tally = Tally::default();
    let mut slot = None;
    while run.claim() {
        let started = Instant::now();
        let outcome = match run.config.timeout {
            Some(limit) => tokio::time::timeout(limit, exchange(&run, &mut slot))
                .await
                .unwrap_or_else(|_| Err(FailureKind::Timeout.into())),
            None => exchange(&run, &mut slot).await,
        };
        let elapsed = started.elapsed();
        match outcome {
            Ok(served) => {
                tally.ok += 1;
                tally.body_bytes += served.bytes;
                *tally.statuses.entry(served.status).or_default() += 1;
                tally
                    .latency
                    .record(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
            }
            Err(failed) => {
                // A connection that failed in any way is not trusted for the next request.
                slot = None;
                if let Some(status) = failed.status {
                    *tally.statuses.entry(status).or_default() += 1;
                }
                *tally.failures.entry(failed.kind).or_default() += 1;
            }
        }
    }
    tally
}

/// Runs the load and reports what happened, on the current tokio runtime.
///
/// # Errors
/// [`TestkitError::InvalidLoad`] when concurrency is 0 or the stop condition is empty.
pub async fn run(config: LoadConfig) -> Result<LoadReport, TestkitError> {
    if config.concurrency == 0 {
        return Err(TestkitError::InvalidLoad {
            reason: "concurrency must be at least 1",
        });
    }
    match config.stop {
        StopCondition::Requests(0) => {
            return Err(TestkitError::InvalidLoad {
                reason: "the number of requests must be at least 1",
            });
        }
        StopCondition::Duration(d) if d.is_zero() => {
            return Err(TestkitError::InvalidLoad {
                reason: "the duration must be above zero",
            });
        }
        _ => {}
    }
    let mut headers = config.headers.clone();
    headers.insert(HOST, config.target.host_header.clone());
    if !config.keepalive {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    if !config.body.is_empty() && !headers.contains_key(CONTENT_TYPE) {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    let started = Instant::now();
    let deadline = match config.stop {
        StopCondition::Duration(d) => started.checked_add(d),
        StopCondition::Requests(_) => None,
    };
    let run = Arc::new(Run {
        headers,
        issued: AtomicU64::new(0),
        deadline,
        config,
    });
    let mut workers = JoinSet::new();
    for _ in 0..run.config.concurrency {
        workers.spawn(worker(Arc::clone(&run)));
    }
    let mut total = Tally::default();
    while let Some(joined) = workers.join_next().await {
        // A worker cannot panic on its own; a join error means the runtime is shutting down,
        // and what the other workers saw is still worth reporting.
        if let Ok(tally) = joined {
            total.merge(tally);
        }
    }
    let elapsed = started.elapsed();
    Ok(LoadReport {
        url: run.config.target.url().to_owned(),
        concurrency: run.config.concurrency,
        keepalive: run.config.keepalive,
        elapsed,
        ok: total.ok,
        errors: total.failures.values().sum(),
        latency: total.latency,
        statuses: total.statuses,
        failures: total.failures,
        body_bytes: total.body_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit() {
        let parsed: Vec<_> = ["500ms", "5s", "2m", "1h", "1.5", " 3 s "]
            .iter()
            .map(|t| parse_duration(t).ok())
            .collect();
        assert_eq!(
            parsed,
            [
                Some(Duration::from_millis(500)),
                Some(Duration::from_secs(5)),
                Some(Duration::from_secs(120)),
                Some(Duration::from_secs(3600)),
                Some(Duration::from_millis(1500)),
                Some(Duration::from_secs(3)),
            ]
        );
        for bad in ["", "s", "-1s", "fast", "nan", "1e400"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_split_at_the_first_colon() {
        let (name, value) = parse_header("X-Fake-Chunks: 7").unwrap_or_else(|_| {
            (
                HeaderName::from_static("invalid"),
                HeaderValue::from_static(""),
            )
        });
        assert_eq!(
            (name.as_str(), value.as_bytes()),
            ("x-fake-chunks", &b"7"[..])
        );
        assert!(parse_header("authorization: Bearer a:b").is_ok());
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: v").is_err());
    }

    #[test]
    fn tail_sees_done_across_frames() {
        let mut tail = Tail::default();
        tail.push(b"data: {\"x\":1}\n\ndata: [DO");
        tail.push(b"NE]\n");
        tail.push(b"\n");
        assert!(tail.ends_with_done());
        tail.push(&[b'x'; 100]);
        assert!(!tail.ends_with_done());
    }

    #[tokio::test]
    async fn urls_other_than_plain_http_are_refused() {
        for url in [
            "https://127.0.0.1/",
            "ftp://x/",
            "127.0.0.1:80",
            "http://u:p@127.0.0.1/",
        ] {
            assert!(
                matches!(
                    LoadTarget::resolve(url).await,
                    Err(TestkitError::InvalidUrl { .. })
                ),
                "{url}"
            );
        }
        let target = LoadTarget::resolve("http://127.0.0.1:9/v1/chat/completions?x=1").await;
        assert_eq!(
            target
                .map(|t| (t.addr.port(), t.request_uri.to_string()))
                .ok(),
            Some((9, "/v1/chat/completions?x=1".to_owned()))
        );
    }
}

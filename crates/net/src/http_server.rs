//! The HTTP/1.1 server every role's HTTP port runs (the client's API, the stats ports): a
//! connection cap, a deadline for each request head (which also bounds how long a kept-alive
//! connection may sit idle), a deadline for each request body, a bound on requests per
//! connection and on the read buffer. `axum::serve` has none of these: without a timer hyper
//! waits for a request head forever, so a peer that trickles a header line every few seconds
//! holds a connection, a task and a descriptor for as long as it likes.
//!
//! Every request is first checked against the port's [`AccessRules`] (browser pages, rebound
//! host names, the API key), and refused before the application sees it.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use crate::admission::{Admission, ConnectionLimits, Refusal};
use crate::http_access::{AccessRules, Denial};

/// An error a body may carry.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The limits of one HTTP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections held at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Time a peer has to send a whole request head, counted from the connection's start or
    /// the end of the previous response (so it is also the idle limit of a kept-alive
    /// connection).
    pub header_read_timeout: Duration,
    /// Time a peer has to send a whole request body, counted from the end of its head.
    pub body_read_timeout: Duration,
    /// Requests served on one connection before it is closed (`connection: close` on the
    /// last answer).
    pub max_requests_per_connection: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_requests_per_connection: 1000,
        }
    }
}

/// Largest read buffer of one connection (a request head must fit in it).
const MAX_BUF: usize = 64 * 1024;

/// The error a request body reports when its deadline passes.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body was not received within {0:?}")]
pub struct BodyTimedOut(pub Duration);

impl BodyTimedOut {
    /// Finds a body deadline in `err` or the errors it wraps.
    pub fn find_in(err: &(dyn std::error::Error + 'static)) -> Option<Self> {
        let mut cur = Some(err);
        while let Some(e) = cur {
            if let Some(t) = e.downcast_ref::<Self>() {
                return Some(*t);
            }
            cur = e.source();
        }
        None
    }
}

/// A request body that fails with [`BodyTimedOut`] once its deadline passes.
pub struct DeadlineBody<B> {
    inner: Pin<Box<B>>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl<B> DeadlineBody<B> {
    /// `inner`, to be received within `limit` from now.
    pub fn new(inner: B, limit: Duration) -> Self {
        Self {
            inner: Box::pin(inner),
            deadline: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = this.inner.as_mut().poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut(this.limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The path answered without the API key, for health probes.
pub const HEALTH_PATH: &str = "/health";

/// Serves `service` on `listener` under `limits` and `access` for as long as the task runs;
/// `port` names the port in logs.
pub async fn serve<S, B>(
    listener: TcpListener,
    port: &'static str,
    limits: HttpLimits,
    access: AccessRules,
    service: S,
) where
    S: tower::Service<Request<DeadlineBody<Incoming>>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let access = Arc::new(access);
    let admission = Admission::new(ConnectionLimits {
        max_connections: limits.max_connections,
        max_per_address: limits.max_connections,
    });
    crate::listener::accept_loop(
        listener,
        port,
        admission,
        move |tcp, peer, place| {
            let service = service.clone();
            let access = access.clone();
            async move {
                serve_connection(tcp, peer, limits, access, service).await;
                drop(place);
            }
        },
        answer_busy,
    )
    .await;
}

async fn serve_connection<S, B>(
    tcp: TcpStream,
    peer: SocketAddr,
    limits: HttpLimits,
    access: Arc<AccessRules>,
    service: S,
) where
    S: tower::Service<Request<DeadlineBody<Incoming>>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let _ = tcp.set_nodelay(true);
    let served = Arc::new(AtomicUsize::new(0));
    let per_request = hyper::service::service_fn(move |req: Request<Incoming>| {
        let service = service.clone();
        let access = access.clone();
        let n = served.fetch_add(1, Ordering::Relaxed) + 1;
        async move {
            let needs_key = req.uri().path() != HEALTH_PATH;
            let mut res = match access.check(req.headers(), needs_key) {
                Ok(()) => {
                    let req = req.map(|b| DeadlineBody::new(b, limits.body_read_timeout));
                    service.oneshot(req).await?.map(Either::Left)
                }
                Err(denial) => {
                    tracing::debug!(%peer, "request refused: {denial}");
                    denied(&denial).map(Either::Right)
                }
            };
            if n >= limits.max_requests_per_connection
                || res.status() == StatusCode::REQUEST_TIMEOUT
            {
                res.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, Infallible>(res)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(MAX_BUF);
    if let Err(e) = builder
        .serve_connection(TokioIo::new(tcp), per_request)
        .await
    {
        tracing::debug!(%peer, "HTTP connection ended: {e}");
    }
}

/// The answer to a refused request, in the OpenAI error shape.
fn denied(denial: &Denial) -> Response<Full<bytes::Bytes>> {
    let mut res = Response::new(Full::new(bytes::Bytes::from(denial.json_body())));
    *res.status_mut() = StatusCode::from_u16(denial.status()).unwrap_or(StatusCode::FORBIDDEN);
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if denial.status() == 401 {
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    res
}

/// The last word to a connection over the cap: a 503 written if the socket takes it at once.
fn answer_busy(tcp: TcpStream, refusal: Refusal) {
    let body = format!(
        "{{\"error\":{{\"message\":\"{refusal}; try again later\",\"type\":\"server_error\",\"code\":\"too_many_connections\"}}}}"
    );
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n",
        body.len()
    );
    let _ = tcp.try_write(format!("{head}{body}").as_bytes());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Echoes the body's length, or 408 when the body's deadline passed.
    async fn start(limits: HttpLimits) -> SocketAddr {
        start_with(limits, AccessRules::new()).await
    }

    async fn start_with(limits: HttpLimits, access: AccessRules) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = tower::service_fn(|req: Request<DeadlineBody<Incoming>>| async move {
            let res = match req.into_body().collect().await {
                Ok(b) => Response::new(http_body_util::Full::new(bytes::Bytes::from(
                    b.to_bytes().len().to_string(),
                ))),
                Err(e) => {
                    let status = match BodyTimedOut::find_in(e.as_ref()) {
                        Some(_) => StatusCode::REQUEST_TIMEOUT,
                        None => StatusCode::BAD_REQUEST,
                    };
                    let mut r = Response::new(http_body_util::Full::new(bytes::Bytes::new()));
                    *r.status_mut() = status;
                    r
                }
            };
            Ok::<_, Infallible>(res)
        });
        tokio::spawn(serve(listener, "test", limits, access, service));
        addr
    }

    async fn read_all(tcp: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn a_trickled_head_is_cut_at_its_deadline() {
        let addr = start(HttpLimits {
            header_read_timeout: Duration::from_millis(300),
            ..HttpLimits::default()
        })
        .await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut rd, mut wr) = tcp.into_split();
        wr.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        // A header line every 100 ms: the head never ends, and the port closes it anyway.
        let trickle = tokio::spawn(async move {
            for _ in 0..50 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if wr.write_all(b"X-Slow: 1\r\n").await.is_err() {
                    break;
                }
            }
        });
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), rd.read_to_end(&mut out)).await;
        trickle.abort();
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn an_idle_connection_is_cut_and_a_slow_body_gets_408() {
        let addr = start(HttpLimits {
            header_read_timeout: Duration::from_millis(300),
            body_read_timeout: Duration::from_millis(300),
            ..HttpLimits::default()
        })
        .await;
        let mut idle = TcpStream::connect(addr).await.unwrap();
        let started = std::time::Instant::now();
        let got = read_all(&mut idle).await;
        assert!(started.elapsed() < Duration::from_secs(2), "{got}");

        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nabc")
            .await
            .unwrap();
        let got = read_all(&mut slow).await;
        assert!(got.starts_with("HTTP/1.1 408"), "{got}");
        assert!(
            got.to_ascii_lowercase().contains("connection: close"),
            "{got}"
        );
    }

    #[tokio::test]
    async fn requests_per_connection_and_connections_are_capped() {
        let addr = start(HttpLimits {
            max_connections: 2,
            max_requests_per_connection: 2,
            ..HttpLimits::default()
        })
        .await;
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let got = read_all(&mut tcp).await;
        assert_eq!(got.matches("HTTP/1.1 200").count(), 2, "{got}");

        let _a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        let got = read_all(&mut c).await;
        assert!(got.starts_with("HTTP/1.1 503"), "{got}");
        assert!(got.contains("too_many_connections"), "{got}");
    }

    #[tokio::test]
    async fn refused_requests_never_reach_the_application() {
        let addr = start_with(
            HttpLimits::default(),
            AccessRules::new().require_key("0123456789abcdef"),
        )
        .await;
        let ask = |req: &'static str| async move {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            tcp.write_all(req.as_bytes()).await.unwrap();
            read_all(&mut tcp).await
        };
        let got = ask("POST /v1/x HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}").await;
        assert!(got.starts_with("HTTP/1.1 403"), "{got}");
        let got =
            ask("GET /v1/x HTTP/1.1\r\nHost: rebound.example:10000\r\nConnection: close\r\n\r\n")
                .await;
        assert!(got.starts_with("HTTP/1.1 421"), "{got}");
        let got = ask("GET /v1/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await;
        assert!(got.starts_with("HTTP/1.1 401"), "{got}");
        assert!(got.contains("missing_api_key"), "{got}");
        let got = ask("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await;
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
        let got = ask("GET /v1/x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer 0123456789abcdef\r\nConnection: close\r\n\r\n").await;
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    }
}

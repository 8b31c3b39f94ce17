//! The accept loop every listening port runs: each connection is admitted by the port's
//! [`Admission`] (or refused at once, costing nothing after the accept), then served in its own
//! task holding its place. An accept that fails for want of descriptors or memory backs off
//! (5 ms doubling to 1 s) instead of spinning; each port has its own loop, so a port that
//! backs off never holds up another.
//!
//! Ports are opened by [`bind`] with a listen backlog of [`LISTEN_BACKLOG`]: the standard
//! library's 128 (which tokio's `TcpListener::bind` also uses) overflows under a burst of
//! connections, and the kernel then drops the SYNs of every peer alike, honest ones
//! included, until they retry a second later.
//!
//! [`PortLimits`] are the settings of one port: its connection caps and the deadlines by which
//! a peer must have finished the gate (proof of work, RA-TLS, `tcp.connect`) and authorized.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Instant;

use crate::NetError;
use crate::admission::{Admission, Admitted, ConnectionLimits, Refusal};

/// Connections the kernel queues on a listening port before the accept loop takes them
/// (capped by the kernel's `net.core.somaxconn`).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Opens a listening port at `addr` (address reuse on, as tokio's own bind) with a backlog of
/// [`LISTEN_BACKLOG`].
///
/// # Errors
/// The socket's error: the address in use, not ours, or no descriptors left.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Caps and deadlines of one listening port.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortLimits {
    /// Connections held at once, from all peers together.
    pub max_connections: usize,
    /// Connections held at once from one address (IPv6: one /64).
    pub max_per_address: usize,
    /// Time from accept to an open session: the proof-of-work answer, the RA-TLS handshake
    /// and `tcp.connect`. A proof of work of difficulty above ~24 takes a client longer than
    /// the 10 s default to solve.
    #[serde(with = "crate::secs")]
    pub handshake_timeout: Duration,
    /// Time from an open session to a successful authorization (clients) or handshake
    /// (workers); the session is closed when it runs out.
    #[serde(with = "crate::secs")]
    pub authorize_timeout: Duration,
}

impl Default for PortLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_per_address: 64,
            handshake_timeout: Duration::from_secs(10),
            authorize_timeout: Duration::from_secs(10),
        }
    }
}

impl PortLimits {
    /// The caps, for an [`Admission`].
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.max_connections,
            max_per_address: self.max_per_address,
        }
    }

    /// The settings of a connection accepted on this port: the acceptor's timers, with the
    /// port's deadline for the gate.
    pub fn acceptor(&self) -> crate::ConnectionConfig {
        crate::ConnectionConfig {
            open_timeout: self.handshake_timeout,
            ..crate::ConnectionConfig::acceptor()
        }
    }

    /// Checks for values a port cannot run with; `port` names it in the error.
    pub fn validate(&self, port: &str) -> Result<(), NetError> {
        if self.max_connections == 0 || self.max_per_address == 0 {
            return Err(NetError::Config(format!(
                "{port}: max_connections and max_per_address must be at least 1"
            )));
        }
        if self.max_per_address > self.max_connections {
            return Err(NetError::Config(format!(
                "{port}: max_per_address ({}) exceeds max_connections ({})",
                self.max_per_address, self.max_connections
            )));
        }
        for (name, d) in [
            ("handshake_timeout", self.handshake_timeout),
            ("authorize_timeout", self.authorize_timeout),
        ] {
            if d.is_zero() || d > Duration::from_secs(3600) {
                return Err(NetError::Config(format!(
                    "{port}: {name} must be between 0 and 3600 seconds, got {d:?}"
                )));
            }
        }
        Ok(())
    }
}

/// What a failed accept says about the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptFailure {
    /// Only that connection failed (reset or aborted before we took it): accept the next.
    Connection,
    /// The process or system is out of descriptors or memory: wait before trying again, or
    /// the loop spins on the same error.
    Resources,
}

impl AcceptFailure {
    /// Classifies an accept error.
    pub fn of(err: &std::io::Error) -> Self {
        use rustix::io::Errno;
        if err.kind() == std::io::ErrorKind::OutOfMemory {
            return Self::Resources;
        }
        match Errno::from_io_error(err) {
            Some(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM) => Self::Resources,
            _ => Self::Connection,
        }
    }
}

/// How long an accept loop waits after failures: nothing after a failed connection, 5 ms
/// doubling to 1 s while resources lack, back to nothing after a successful accept.
#[derive(Debug, Clone)]
pub struct AcceptBackoff {
    next: Duration,
}

impl AcceptBackoff {
    /// First wait when resources lack.
    pub const MIN: Duration = Duration::from_millis(5);
    /// Longest wait.
    pub const MAX: Duration = Duration::from_secs(1);

    /// A loop that has not failed yet.
    pub fn new() -> Self {
        Self { next: Self::MIN }
    }

    /// An accept succeeded.
    pub fn accepted(&mut self) {
        self.next = Self::MIN;
    }

    /// An accept failed: how long to wait before the next.
    pub fn failed(&mut self, failure: AcceptFailure) -> Duration {
        match failure {
            AcceptFailure::Connection => Duration::ZERO,
            AcceptFailure::Resources => {
                let wait = self.next;
                self.next = (self.next * 2).min(Self::MAX);
                wait
            }
        }
    }
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self::new()
    }
}

/// How often a port logs its refusals and accept failures (each line says how many since).
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Accepts connections on `listener` for as long as the task runs. Each admitted connection
/// runs `serve(stream, peer, place)` in a task of its own; a refused one is handed to
/// `refuse` (which may write a last word; the stream closes when it returns).
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    port: &'static str,
    admission: Admission,
    mut serve: F,
    refuse: fn(TcpStream, Refusal),
) where
    F: FnMut(TcpStream, SocketAddr, Admitted) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut backoff = AcceptBackoff::new();
    let mut refused = Quiet::new();
    let mut failed = Quiet::new();
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                backoff.accepted();
                match admission.try_admit(peer.ip()) {
                    Ok(place) => {
                        tokio::spawn(serve(tcp, peer, place));
                    }
                    Err(refusal) => {
                        if let Some(n) = refused.note() {
                            tracing::warn!(
                                port,
                                %peer,
                                refused_since_last_report = n,
                                open = admission.open(),
                                "connection refused: {refusal}"
                            );
                        }
                        refuse(tcp, refusal);
                    }
                }
            }
            Err(e) => {
                let wait = backoff.failed(AcceptFailure::of(&e));
                if let Some(n) = failed.note() {
                    tracing::warn!(
                        port,
                        failures_since_last_report = n,
                        backoff_ms = wait.as_millis() as u64,
                        "accept failed: {e}"
                    );
                }
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// Counts events and says when one should be logged (at most once per [`LOG_EVERY`]).
struct Quiet {
    last: Option<Instant>,
    since: u64,
}

impl Quiet {
    fn new() -> Self {
        Self {
            last: None,
            since: 0,
        }
    }

    fn note(&mut self) -> Option<u64> {
        self.since += 1;
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.since))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn out_of_descriptors_backs_off_and_a_success_resets() {
        let mut b = AcceptBackoff::new();
        let emfile = std::io::Error::from_raw_os_error(24);
        assert_eq!(AcceptFailure::of(&emfile), AcceptFailure::Resources);
        assert_eq!(
            b.failed(AcceptFailure::of(&emfile)),
            Duration::from_millis(5)
        );
        assert_eq!(
            b.failed(AcceptFailure::Resources),
            Duration::from_millis(10)
        );
        for _ in 0..20 {
            b.failed(AcceptFailure::Resources);
        }
        assert_eq!(b.failed(AcceptFailure::Resources), AcceptBackoff::MAX);
        b.accepted();
        assert_eq!(b.failed(AcceptFailure::Resources), AcceptBackoff::MIN);
    }

    /// A burst of connections larger than the standard library's backlog of 128 all complete
    /// while nothing accepts them: none of their SYNs was dropped to be retried a second later.
    #[tokio::test]
    async fn a_burst_beyond_the_standard_backlog_is_queued_not_dropped() {
        const BURST: usize = 512;
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut connects = tokio::task::JoinSet::new();
        for _ in 0..BURST {
            connects.spawn(tokio::time::timeout(
                Duration::from_millis(700),
                TcpStream::connect(addr),
            ));
        }
        let mut streams = Vec::new();
        while let Some(done) = connects.join_next().await {
            if let Ok(Ok(Ok(stream))) = done {
                streams.push(stream);
            }
        }
        assert_eq!(
            streams.len(),
            BURST,
            "connections left waiting for a SYN retry"
        );
        drop(listener);
    }

    #[test]
    fn a_failed_connection_does_not_slow_the_port() {
        let mut b = AcceptBackoff::new();
        let aborted = std::io::Error::from(std::io::ErrorKind::ConnectionAborted);
        assert_eq!(AcceptFailure::of(&aborted), AcceptFailure::Connection);
        assert_eq!(b.failed(AcceptFailure::of(&aborted)), Duration::ZERO);
        let enfile = std::io::Error::from_raw_os_error(23);
        assert_eq!(AcceptFailure::of(&enfile), AcceptFailure::Resources);
    }

    #[test]
    fn limits_are_checked() {
        assert!(PortLimits::default().validate("client port").is_ok());
        let bad = PortLimits {
            max_per_address: 5000,
            ..PortLimits::default()
        };
        assert!(bad.validate("client port").is_err());
        let bad = PortLimits {
            handshake_timeout: Duration::ZERO,
            ..PortLimits::default()
        };
        let err = bad.validate("worker port").err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("handshake_timeout")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_full_port_refuses_and_frees_places_when_connections_end() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let admission = Admission::new(ConnectionLimits {
            max_connections: 2,
            max_per_address: 2,
        });
        let (release_tx, release_rx) = tokio::sync::watch::channel(false);
        let port = admission.clone();
        tokio::spawn(accept_loop(
            listener,
            "test",
            port,
            move |_tcp, _peer, place| {
                let mut rx = release_rx.clone();
                async move {
                    let _ = rx.wait_for(|r| *r).await;
                    drop(place);
                }
            },
            |_, _| {},
        ));
        let _a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        let mut c = TcpStream::connect(addr).await.unwrap();
        // The third is closed by the port: reading sees the end at once.
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read(&mut c, &mut buf),
        )
        .await
        .unwrap();
        assert!(matches!(n, Ok(0) | Err(_)));
        assert_eq!(admission.open(), 2);
        assert_eq!(admission.refused(), 1);
        release_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), async {
            while admission.open() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();
    }
}

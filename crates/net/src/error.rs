//! The transport's error type.

use std::time::Duration;

/// Why a connection or one of its operations failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent bytes that break the protocol.
    #[error("protocol violation: {0}")]
    Protocol(#[from] cocoon_protocol::Error),
    /// The peer did not start the session as the protocol requires.
    #[error("session handshake failed: {0}")]
    Handshake(String),
    /// The connection is closed.
    #[error("connection closed")]
    Closed,
    /// Nothing was received for longer than the idle timeout.
    #[error("connection idle for more than {0:?}")]
    IdleTimeout(Duration),
    /// The peer took nothing of what we sent for this long: the connection was closed.
    #[error("the peer read nothing for {0:?}: connection closed")]
    WriteStalled(Duration),
    /// A query got no answer in time.
    #[error("query timed out after {0:?}")]
    QueryTimeout(Duration),
    /// The peer answered a query with an error.
    #[error("peer returned error {code}: {message}")]
    QueryFailed {
        /// Error code from `tcp.queryError`.
        code: i32,
        /// Message from `tcp.queryError`.
        message: String,
    },
    /// Too many queries are waiting for answers on this connection.
    #[error("too many queries in flight ({0})")]
    TooManyQueries(usize),
    /// The peer did not finish a stage of opening the connection in time (the TCP connect,
    /// the proof of work, the TLS handshake, the session handshake, authorization).
    #[error("{stage} not finished within {after:?}")]
    Deadline {
        /// The stage the peer was in.
        stage: &'static str,
        /// The time it had.
        after: Duration,
    },
    /// The proof-of-work gate failed.
    #[error("proof of work: {0}")]
    Pow(String),
    /// TLS failed for a reason other than the peer's attestation (timeout, alert from the
    /// peer, protocol error).
    #[error("TLS: {0}")]
    Tls(String),
    /// The peer's RA-TLS certificate or evidence does not satisfy our policy; the text says
    /// which check failed.
    #[error("peer refused by attestation policy: {0}")]
    PeerRefused(String),
    /// Our own attestation could not be produced or configured.
    #[error("attestation: {0}")]
    Attestation(#[from] cocoon_attest::AttestError),
    /// A setting is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
}

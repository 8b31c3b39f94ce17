//! Why the proxy ends a worker's or client's session, or refuses one step of it: typed reasons
//! that are logged, and for a refused query also sent to the peer as text. None of these leave
//! the crate as a `Result` error; [`crate::ProxyError`] is what the proxy's callers see.

use std::time::Duration;

use cocoon_attest::AttestError;
use cocoon_ledger_store::StoreError;
use cocoon_net::NetError;

/// Why a worker is refused or disconnected under the attestation policy or the root registry.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WorkerRefusal {
    /// Under a root registry a certificate must name the SHA-256 of the served weights.
    #[error(
        "the worker's certificate names no model weights for {model:?}; the root registry \
         allows models by the SHA-256 of their weights"
    )]
    NoModelHash { model: String },
    /// The weights are not on the root registry's list.
    #[error(
        "the weights of model {model:?} (SHA-256 {}) are not allowed by the root registry",
        hex::encode(hash)
    )]
    ModelNotAllowed { model: String, hash: [u8; 32] },
    /// The worker's image left the root registry's list.
    #[error("its image hash {0} is no longer allowed by the root registry")]
    ImageNotAllowed(String),
    /// A sealing key was announced for a worker that is not connected.
    #[error("the worker is not registered")]
    NotRegistered,
    /// An announced certificate does not verify under the worker policy.
    #[error("{what} does not verify: {source}")]
    Certificate {
        what: &'static str,
        source: AttestError,
    },
    /// An announced certificate carries no sealing key.
    #[error("the certificate's claims carry no sealing key")]
    NoSealingKey,
    /// After a model change no new certificate was announced in time.
    #[error("no certificate naming the weights of {model:?} within {wait:?}")]
    NoNewCertificate { model: String, wait: Duration },
    /// The certificate announced after a model change is another TLS key's.
    #[error("the announced certificate is not this worker's (another TLS key)")]
    ForeignCertificate,
}

/// Why a worker's or client's session ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionEnd {
    /// The transport failed (handshake, proof of work, a lost connection).
    #[error(transparent)]
    Net(#[from] NetError),
    /// The proxy is shutting down.
    #[error("the proxy is stopping")]
    Stopping,
    /// The peer closed the connection (with its reason when it gave one).
    #[error("{}", .0.as_deref().unwrap_or("closed"))]
    Closed(Option<String>),
    /// The peer did not complete its handshake or authorization in time.
    #[error("{what} not completed within {within:?}")]
    Timeout {
        what: &'static str,
        within: Duration,
    },
    /// The peer broke the protocol; the text is what it was told.
    #[error("{0}")]
    Protocol(String),
    /// The worker is refused by policy.
    #[error(transparent)]
    Refused(#[from] WorkerRefusal),
    /// The ledger could not be read.
    #[error("cannot read the worker's account: {0}")]
    Ledger(#[from] StoreError),
}

//! What a COCOON node runs around its transport: the attestation settings every role shares
//! and the identity and endpoints they make ([`attestation`]), which key source seals the
//! node's keys at rest ([`keys`]), the Prometheus text of `/metrics` ([`exposition`]) with its
//! latency [`histogram`], the `/dashboard` sampler ([`dashboard`]), the descriptor limit
//! ([`descriptors`]) and the shutdown signal ([`shutdown_signal`]).
//!
//! `cocoon-net` moves the protocol's bytes; this crate holds the node settings and plumbing a
//! role's binary and library set up once.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod attestation;
pub mod dashboard;
pub mod descriptors;
mod error;
pub mod exposition;
pub mod histogram;
pub mod keys;

pub use attestation::{AttestationClock, AttestationConfig, EvidenceSource, PolicyPreset};
pub use error::NodeError;

/// Resolves on Ctrl-C or SIGTERM: what a role's binary waits for before shutting down.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = ctrl_c.await;
}

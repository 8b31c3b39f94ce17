//! The one error type of the crate: why a node's settings could not be turned into its
//! identity, endpoints or key source.

/// Why a node's plumbing could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A setting is invalid (an unreadable policy file, a key source missing its socket).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A sealed key could not be opened or made: a file sealed under another measurement or
    /// platform, an altered file, an unreachable key source.
    #[error("keys at rest: {0}")]
    Keys(#[from] cocoon_seal::SealError),
    /// The node's evidence, policy or RA-TLS key could not be read or made.
    #[error("attestation: {0}")]
    Attestation(#[from] cocoon_attest::AttestError),
    /// The transport refused (an endpoint could not be built from the identity and policy).
    #[error(transparent)]
    Net(#[from] cocoon_net::NetError),
}

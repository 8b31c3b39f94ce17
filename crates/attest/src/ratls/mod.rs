//! RA-TLS: TLS 1.3 where each side's certificate carries TEE evidence bound to its key, so
//! that a successful handshake proves what code the peer runs.
//!
//! * [`cert`] makes and parses certificates in the reference COCOON layout;
//! * [`checked`] remembers certificates already checked, so a repeated one costs a hash;
//! * [`identity`] holds this node's current certificate and refreshes it before expiry;
//! * [`verifier`] checks a peer certificate (structure, evidence, binding, policy) and
//!   implements rustls' verifier traits;
//! * [`config`] builds the rustls client and server configurations.

pub mod cert;
pub mod checked;
pub mod config;
pub mod identity;
pub mod verifier;

pub use cert::{
    OID_EVIDENCE, OID_USER_CLAIMS, RaTlsCertificate, TlsKeyPair, issue_certificate,
    parse_certificate,
};
pub use config::{client_config, crypto_provider, server_config};
pub use identity::{
    CertificateIssuer, ClaimsFormat, DEFAULT_BACKDATE_SECS, DEFAULT_REFRESH_SECS,
    DEFAULT_VALIDITY_SECS, IssuedCertificate, RaTlsIdentity,
};
pub use verifier::{RaTlsVerifier, VerifiedPeer, verified_peer};

//! TEE evidence, attestation policy and RA-TLS for cocoon-rs.
//!
//! A cocoon node proves what code it runs by presenting, in its TLS certificate, evidence
//! produced by a trusted execution environment. This crate makes and checks that proof.
//!
//! # Design
//!
//! The path from bytes on the wire to "this peer may talk to us" has four stages, each its own
//! module and each testable alone:
//!
//! 1. **Claims** ([`claims`]): what the TEE vouches for besides its code: the TLS key, and in
//!    our extended format a sealing key, a GPU-evidence digest, a model hash and an issue
//!    time. Their canonical encoding is hashed with SHA-512 into the 64-byte report data.
//! 2. **Evidence** ([`evidence`], [`tdx`], [`snp`], [`verifier`]): an Intel TDX quote
//!    (verified with `dcap-qvl` against Intel-signed collateral), an AMD SEV-SNP report
//!    (verified through ARK → ASK → VCEK with `sev`), or SIMULATED evidence for local mode.
//!    Verification yields [`VerifiedEvidence`]: typed [`Measurements`], the report data, and
//!    how long the result may be reused. Results are cached by SHA-256 of the evidence until
//!    the collateral expires.
//! 3. **Policy** ([`policy`]): allow-lists (MRTD, RTMR sets, image hashes, Intel root key
//!    ids, SNP measurements), minimum TCB, collateral freshness; debug TEEs are always
//!    refused and [`Policy::production`] refuses simulated evidence.
//! 4. **RA-TLS** ([`ratls`]): certificates in the reference COCOON layout, rustls verifiers
//!    for both directions, TLS 1.3-only configurations, and [`ratls::verified_peer`] to learn
//!    after the handshake who the peer is.
//!
//! [`receipt`] lets a worker sign what it ran for a request with its attested key, so a client
//! can prove it later.
//!
//! Evidence generation inside a guest goes through configfs-tsm ([`tsm`]) behind the
//! [`Attester`] trait; [`SimulatedAttester`] stands in where there is no TEE.
//!
//! Nothing here reads the wall clock during verification: every check takes `now` (unix
//! seconds) or a [`Clock`], so tests pin time and nodes can use a chain-synced clock.
//!
//! Every refusal is a distinct [`AttestError`] variant; through rustls it arrives as
//! `rustls::Error::InvalidCertificate(CertificateError::Other(..))` wrapping that error, which
//! [`AttestError::find_in`] digs out again.

pub mod attester;
pub mod claims;
pub mod clock;
pub mod digest;
pub mod error;
pub mod evidence;
pub mod measurements;
pub mod policy;
pub mod ratls;
pub mod receipt;
pub mod snp;
pub mod tdx;
pub mod tsm;
pub mod verifier;

pub use attester::{Attester, SimulatedAttester};
pub use claims::{ExtendedClaims, UserClaims};
pub use clock::{Clock, ManualClock, SystemClock};
pub use digest::{Digest, Digest32, Digest48, ImageHash};
pub use error::AttestError;
pub use evidence::{Evidence, EvidenceKind};
pub use measurements::{Measurements, SnpMeasurements, TdxMeasurements};
pub use policy::Policy;
pub use ratls::{RaTlsVerifier, VerifiedPeer, verified_peer};
pub use receipt::{Receipt, ReceiptClaims, VerifiedReceipt};
pub use verifier::{EvidenceVerifier, VerificationCache, VerifiedEvidence};

/// `dcap-qvl`'s collateral type, re-exported so callers need not depend on the exact version.
pub use dcap_qvl::QuoteCollateralV3;

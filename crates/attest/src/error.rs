//! The one error type of this crate: every way evidence, a policy or an RA-TLS certificate can
//! be refused, each with its own variant so callers and tests can tell the reasons apart.

use std::path::PathBuf;

use crate::evidence::EvidenceKind;

/// Everything that can go wrong while producing or checking attestation.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    // ---- user claims ----
    /// The user-claims blob has a length that no claims format allows.
    #[error("user claims are {len} bytes: neither the 32-byte reference form nor a v1 form")]
    ClaimsLength {
        /// Length that was seen.
        len: usize,
    },
    /// The user-claims blob is not in a known format.
    #[error("user claims are malformed: {0}")]
    ClaimsMalformed(&'static str),
    /// The user-claims blob carries a version this build does not know.
    #[error("user claims version {0} is not supported")]
    ClaimsVersion(u8),
    /// The user claims were issued too long ago (or in the future) for the policy.
    #[error(
        "user claims issued at {issued_at} are outside the allowed age at {now} (max {max_age_secs} s)"
    )]
    ClaimsAge {
        /// `issued_at` from the claims.
        issued_at: u64,
        /// Verification time.
        now: u64,
        /// Allowed age.
        max_age_secs: u64,
    },

    // ---- evidence container ----
    /// The evidence bytes are larger than any evidence we accept.
    #[error("evidence is {len} bytes, more than the {max} allowed")]
    EvidenceTooLarge {
        /// Length seen.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The evidence container could not be decoded.
    #[error("evidence is malformed: {0}")]
    EvidenceMalformed(&'static str),
    /// The policy requires evidence and the peer sent none.
    #[error("the policy requires TEE evidence and none was presented")]
    EvidenceMissing,
    /// The policy does not accept this kind of evidence at all.
    #[error("evidence of kind {kind} is not accepted by the policy")]
    EvidenceKindRefused {
        /// The refused kind.
        kind: EvidenceKind,
    },
    /// Simulated (non-TEE) evidence was presented to a policy that refuses it.
    #[error("SIMULATED evidence refused: this policy requires real TEE evidence")]
    SimulatedEvidenceRefused,

    // ---- Intel TDX ----
    /// The TDX quote could not be parsed.
    #[error("TDX quote is malformed: {0}")]
    TdxQuoteMalformed(String),
    /// The quote's signature over its header and TD report does not verify under the
    /// attestation key carried in the quote.
    #[error("TDX quote signature does not verify under its attestation key")]
    TdxQuoteSignature,
    /// DCAP verification (PCK chain, QE report, TCB matching) refused the quote.
    #[error("TDX quote refused by DCAP verification: {0}")]
    TdxQuoteRejected(String),
    /// No collateral was available for the quote.
    #[error("no DCAP collateral available for this quote (FMSPC {fmspc})")]
    CollateralMissing {
        /// Platform FMSPC in hex, or "unknown".
        fmspc: String,
    },
    /// The collateral could not be parsed.
    #[error("DCAP collateral is malformed: {0}")]
    CollateralMalformed(String),
    /// Some part of the collateral is past its next-update / expiry date.
    #[error("DCAP collateral is stale: {what} expired at {expired_at}, now is {now}")]
    CollateralStale {
        /// Which collateral item.
        what: &'static str,
        /// Its expiry (unix seconds).
        expired_at: u64,
        /// Verification time (unix seconds).
        now: u64,
    },
    /// Some part of the collateral is issued after the verification time.
    #[error("DCAP collateral is not yet valid: {what} issued at {issued_at}, now is {now}")]
    CollateralNotYetValid {
        /// Which collateral item.
        what: &'static str,
        /// Its issue date (unix seconds).
        issued_at: u64,
        /// Verification time (unix seconds).
        now: u64,
    },

    // ---- AMD SEV-SNP ----
    /// The SNP attestation report could not be parsed.
    #[error("SEV-SNP report is malformed: {0}")]
    SnpReportMalformed(String),
    /// An AMD certificate (VCEK, ASK, ARK) could not be parsed or is outside its validity.
    #[error("SEV-SNP certificate problem: {0}")]
    SnpCertificate(String),
    /// The VCEK does not chain to a built-in AMD root (ARK -> ASK -> VCEK).
    #[error("SEV-SNP VCEK does not chain to a known AMD root: {0}")]
    SnpChain(String),
    /// The VCEK belongs to another chip or TCB than the report.
    #[error("SEV-SNP VCEK does not match the report: {0}")]
    SnpVcekMismatch(String),
    /// The report signature does not verify under the VCEK.
    #[error("SEV-SNP report signature does not verify under the VCEK")]
    SnpReportSignature,

    // ---- policy ----
    /// The TD runs in debug mode (TUD bits set in TD attributes).
    #[error("debug TD refused (TD attributes {attributes})")]
    DebugTd {
        /// TD attributes in hex.
        attributes: String,
    },
    /// The SNP guest policy allows debugging.
    #[error("debug SEV-SNP guest refused (guest policy {policy:#x})")]
    DebugSnpGuest {
        /// Guest policy.
        policy: u64,
    },
    /// MRTD is not in the allow-list.
    #[error("MRTD {mrtd} is not allowed by the policy")]
    MrtdNotAllowed {
        /// MRTD in hex.
        mrtd: String,
    },
    /// The RTMR set is not in the allow-list.
    #[error("RTMR set is not allowed by the policy")]
    RtmrNotAllowed,
    /// The image hash is not in the allow-list.
    #[error("image hash {image_hash} is not allowed by the policy")]
    ImageHashNotAllowed {
        /// Image hash in hex.
        image_hash: String,
    },
    /// The Intel root key id of the DCAP chain is not allowed.
    #[error("Intel root key id {root_key_id} is not allowed by the policy")]
    RootKeyIdNotAllowed {
        /// Root key id in hex.
        root_key_id: String,
    },
    /// The SNP launch measurement is not in the allow-list.
    #[error("SEV-SNP measurement {measurement} is not allowed by the policy")]
    SnpMeasurementNotAllowed {
        /// Measurement in hex.
        measurement: String,
    },
    /// The platform TCB is below the policy minimum or has a refused status.
    #[error("TCB refused: {0}")]
    TcbRefused(String),

    // ---- RA-TLS binding ----
    /// The evidence's report data is not SHA-512 of the user claims.
    #[error("report data in the evidence is not SHA-512 of the certificate's user claims")]
    ReportDataMismatch,
    /// The certificate key differs from the TLS key named in the user claims.
    #[error("certificate public key differs from the TLS key in the user claims")]
    CertificateKeyMismatch,

    // ---- RA-TLS certificate ----
    /// The certificate could not be parsed as X.509.
    #[error("RA-TLS certificate cannot be parsed: {0}")]
    CertificateParse(String),
    /// The certificate's notAfter is before the verification time.
    #[error("RA-TLS certificate expired at {not_after}, now is {now}")]
    CertificateExpired {
        /// notAfter (unix seconds).
        not_after: i64,
        /// Verification time (unix seconds).
        now: u64,
    },
    /// The certificate's notBefore is after the verification time.
    #[error("RA-TLS certificate not valid before {not_before}, now is {now}")]
    CertificateNotYetValid {
        /// notBefore (unix seconds).
        not_before: i64,
        /// Verification time (unix seconds).
        now: u64,
    },
    /// The certificate carries a critical extension we do not understand.
    #[error("RA-TLS certificate has an unknown critical extension {oid}")]
    UnknownCriticalExtension {
        /// The extension's OID.
        oid: String,
    },
    /// An extension occurs more than once.
    #[error("RA-TLS certificate repeats extension {oid}")]
    DuplicateExtension {
        /// The extension's OID.
        oid: String,
    },
    /// A certificate carries extensions of both the TDX layout (`.1`, `.2`) and the SEV-SNP
    /// layout (`.100`–`.102`).
    #[error("RA-TLS certificate mixes the TDX and SEV-SNP extension layouts")]
    MixedCertificateLayouts,
    /// A required extension is absent.
    #[error("RA-TLS certificate lacks extension {oid}")]
    MissingExtension {
        /// The extension's OID.
        oid: &'static str,
    },
    /// The certificate's key or signature algorithm is not Ed25519.
    #[error("RA-TLS certificate must use Ed25519, found {algorithm}")]
    NotEd25519 {
        /// The algorithm OID seen.
        algorithm: String,
    },
    /// The peer sent intermediate certificates: RA-TLS allows depth 0 only.
    #[error("RA-TLS allows only a self-signed certificate, peer sent a chain of depth {depth}")]
    ChainNotAllowed {
        /// Number of intermediates sent.
        depth: usize,
    },
    /// Issuer and subject differ.
    #[error("RA-TLS certificate is not self-signed")]
    NotSelfSigned,
    /// The certificate's self-signature does not verify.
    #[error("RA-TLS certificate self-signature does not verify")]
    CertificateSignature,
    /// A standard extension has a value RA-TLS forbids (CA:TRUE, no digitalSignature, ...).
    #[error("RA-TLS certificate constraint violated: {0}")]
    CertificateConstraint(&'static str),
    /// The TLS handshake signature does not verify under the certificate key.
    #[error("TLS handshake signature does not verify under the RA-TLS certificate key")]
    HandshakeSignature,
    /// The peer offered no certificate.
    #[error("peer presented no certificate")]
    NoPeerCertificate,
    /// A receipt's bytes are not a receipt.
    #[error("receipt malformed: {0}")]
    ReceiptMalformed(String),
    /// A receipt's signature does not verify with its certificate's key.
    #[error("receipt signature does not verify")]
    ReceiptSignature,
    /// A receipt names another image hash than its certificate's evidence measured.
    #[error("receipt image hash differs from the worker's evidence")]
    ReceiptImageMismatch,
    /// The request or answer body given does not hash to the receipt's value.
    #[error("the {0} body does not match the receipt")]
    ReceiptBodyMismatch(&'static str),
    /// The receipt was issued for another request (its request id or sealed envelope differ):
    /// it is being presented for a request it does not cover.
    #[error("the receipt names another {0}")]
    ReceiptRequestMismatch(&'static str),
    /// A receipt checked live was issued too long ago (or in the future) for the verifier's
    /// clock: an old receipt presented as new.
    #[error("receipt issued at {issued_at} is not fresh at {now} (maximum age {max_age_secs} s)")]
    ReceiptStale {
        /// When the receipt says it was issued (unix seconds).
        issued_at: u64,
        /// The verifier's time.
        now: u64,
        /// The maximum age allowed.
        max_age_secs: u64,
    },
    /// Certificate generation failed.
    #[error("cannot generate RA-TLS certificate: {0}")]
    CertificateGeneration(String),
    /// A TLS configuration could not be built.
    #[error("cannot build TLS configuration: {0}")]
    TlsConfig(String),
    /// The TLS identity key is unusable.
    #[error("TLS identity key is invalid: {0}")]
    IdentityKey(String),

    // ---- evidence generation (configfs-tsm) ----
    /// The configfs-tsm report directory is not there (not a TDX/SNP guest, or configfs not
    /// mounted).
    #[error("configfs-tsm is not available at {path}")]
    TsmUnavailable {
        /// Root that was tried.
        path: PathBuf,
    },
    /// A file operation on configfs-tsm failed.
    #[error("configfs-tsm {op} on {path} failed: {source}")]
    TsmIo {
        /// What was being done.
        op: &'static str,
        /// Path involved.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Another writer touched the report entry while we used it.
    #[error(
        "configfs-tsm generation changed from {before} to {after}: report raced with another writer"
    )]
    TsmGenerationChanged {
        /// Generation read before outblob.
        before: u64,
        /// Generation read after outblob.
        after: u64,
    },
    /// The configfs-tsm entry returned something unexpected.
    #[error("configfs-tsm returned unusable data: {0}")]
    TsmMalformed(String),
    /// The TSM provider is not one we can turn into evidence.
    #[error("configfs-tsm provider {0:?} is not supported")]
    TsmUnknownProvider(String),

    // ---- configuration ----
    /// A policy or other configuration value is invalid.
    #[error("invalid attestation configuration: {0}")]
    Config(String),
}

impl AttestError {
    /// Finds an [`AttestError`] inside a `rustls::Error` produced by our verifiers, for
    /// callers that got the error back from a handshake.
    pub fn from_rustls(err: &rustls::Error) -> Option<&AttestError> {
        match err {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => {
                other.0.downcast_ref::<AttestError>()
            }
            _ => None,
        }
    }

    /// Walks an error's source chain (for example an `io::Error` from tokio-rustls) looking
    /// for an [`AttestError`].
    pub fn find_in<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a AttestError> {
        let mut current: Option<&'a (dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = current {
            if let Some(found) = e.downcast_ref::<AttestError>() {
                return Some(found);
            }
            if let Some(tls) = e.downcast_ref::<rustls::Error>()
                && let Some(found) = Self::from_rustls(tls)
            {
                return Some(found);
            }
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && let Some(inner) = io.get_ref()
            {
                let inner: &(dyn std::error::Error + 'static) = inner;
                if let Some(found) = Self::find_in(inner) {
                    return Some(found);
                }
            }
            current = e.source();
        }
        None
    }
}

impl From<AttestError> for rustls::Error {
    fn from(err: AttestError) -> Self {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
            std::sync::Arc::new(err),
        )))
    }
}

/// Result alias for this crate.
pub type Result<T, E = AttestError> = std::result::Result<T, E>;

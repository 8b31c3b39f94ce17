//! This node's RA-TLS identity: the current certificate and key served to peers, and the
//! issuer that makes a fresh certificate (new claims, new evidence) before the old one
//! expires, without rebuilding TLS configurations.

use std::fmt;
use std::sync::{Arc, RwLock};

use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::attester::Attester;
use crate::claims::{ExtendedClaims, UserClaims};
use crate::digest::Digest32;
use crate::error::AttestError;
use crate::evidence::EvidenceKind;
use crate::ratls::cert::{TlsKeyPair, issue_certificate, self_sign, unattested_certificate_params};

/// Validity of an RA-TLS certificate (reference: 1 day).
pub const DEFAULT_VALIDITY_SECS: u64 = 24 * 3600;
/// How often a fresh certificate is made (reference: hourly).
pub const DEFAULT_REFRESH_SECS: u64 = 3600;
/// notBefore is set this far in the past so that peers with a slightly slow clock accept it.
pub const DEFAULT_BACKDATE_SECS: u64 = 300;

/// A certificate made by a [`CertificateIssuer`].
#[derive(Clone, Debug)]
pub struct IssuedCertificate {
    /// The DER certificate.
    pub der: CertificateDer<'static>,
    /// The claims it carries.
    pub claims: UserClaims,
    /// notBefore, unix seconds.
    pub not_before: u64,
    /// notAfter, unix seconds.
    pub not_after: u64,
    /// When a replacement should be made, unix seconds.
    pub refresh_at: u64,
}

/// The certificate and key currently presented to peers. Implements rustls' server and client
/// certificate resolvers; replacing the certificate affects new handshakes only.
pub struct RaTlsIdentity {
    current: RwLock<(Arc<CertifiedKey>, IssuedCertificate)>,
}

impl fmt::Debug for RaTlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let issued = self.issued();
        f.debug_struct("RaTlsIdentity")
            .field("not_after", &issued.not_after)
            .field("refresh_at", &issued.refresh_at)
            .finish_non_exhaustive()
    }
}

fn certified_key(
    key: &TlsKeyPair,
    cert: CertificateDer<'static>,
) -> Result<Arc<CertifiedKey>, AttestError> {
    let provider = rustls::crypto::ring::default_provider();
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.pkcs8_der().to_vec()));
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|e| AttestError::IdentityKey(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(vec![cert], signing)))
}

impl RaTlsIdentity {
    /// An identity presenting `issued`, signed with `key`.
    pub fn new(key: &TlsKeyPair, issued: IssuedCertificate) -> Result<Self, AttestError> {
        let certified = certified_key(key, issued.der.clone())?;
        Ok(Self {
            current: RwLock::new((certified, issued)),
        })
    }

    /// Presents `issued` from now on.
    pub fn replace(&self, key: &TlsKeyPair, issued: IssuedCertificate) -> Result<(), AttestError> {
        let certified = certified_key(key, issued.der.clone())?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = (certified, issued);
        Ok(())
    }

    /// The certificate presented now.
    pub fn issued(&self) -> IssuedCertificate {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }

    fn certified(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }
}

impl ResolvesServerCert for RaTlsIdentity {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        client_hello
            .signature_schemes()
            .contains(&SignatureScheme::ED25519)
            .then(|| self.certified())
    }
}

impl ResolvesClientCert for RaTlsIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        sigschemes
            .contains(&SignatureScheme::ED25519)
            .then(|| self.certified())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Which claims format certificates carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimsFormat {
    /// Only the TLS key (reference COCOON peers understand exactly this).
    Reference,
    /// v1 claims with an issue time and these optional fields.
    V1 {
        /// X25519 sealing key.
        sealing_public_key: Option<Digest32>,
        /// SHA-256 of the GPU evidence.
        gpu_evidence_digest: Option<Digest32>,
        /// SHA-256 of the model.
        model_hash: Option<Digest32>,
    },
}

/// Makes RA-TLS certificates: claims for the key, evidence from the attester, a self-signed
/// certificate, and says when to make the next one.
#[derive(Debug)]
pub struct CertificateIssuer {
    key: TlsKeyPair,
    attester: Option<Arc<dyn Attester>>,
    /// Behind a lock so that a worker that changes its model can name the new weights in the
    /// certificates issued from then on ([`CertificateIssuer::set_model_hash`]).
    format: std::sync::RwLock<ClaimsFormat>,
    validity_secs: u64,
    refresh_secs: u64,
    backdate_secs: u64,
}

impl CertificateIssuer {
    /// An issuer for `key` using `attester`, with reference-format claims, 1-day validity and
    /// hourly refresh.
    pub fn new(key: TlsKeyPair, attester: Arc<dyn Attester>) -> Self {
        Self::with_attester(key, Some(attester))
    }

    /// An issuer of certificates WITHOUT evidence, for a node that runs in no TEE and whose
    /// peers do not require one (an integrator's client facing a proxy). Its certificates
    /// carry the claims (so the key binding is explicit) but prove nothing about code.
    pub fn unattested(key: TlsKeyPair) -> Self {
        Self::with_attester(key, None)
    }

    fn with_attester(key: TlsKeyPair, attester: Option<Arc<dyn Attester>>) -> Self {
        Self {
            key,
            attester,
            format: std::sync::RwLock::new(ClaimsFormat::Reference),
            validity_secs: DEFAULT_VALIDITY_SECS,
            refresh_secs: DEFAULT_REFRESH_SECS,
            backdate_secs: DEFAULT_BACKDATE_SECS,
        }
    }

    /// Sets the claims format.
    pub fn with_claims_format(mut self, format: ClaimsFormat) -> Self {
        *self
            .format
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = format;
        self
    }

    /// Names `model_hash` in the v1 claims of the certificates issued from now on; returns
    /// `false` (and changes nothing) for reference-format claims, which carry no model.
    pub fn set_model_hash(&self, model_hash: Option<Digest32>) -> bool {
        let mut format = self
            .format
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &mut *format {
            ClaimsFormat::V1 { model_hash: m, .. } => {
                *m = model_hash;
                true
            }
            ClaimsFormat::Reference => false,
        }
    }

    /// Sets the certificate validity (notAfter - notBefore).
    pub fn with_validity_secs(mut self, secs: u64) -> Self {
        self.validity_secs = secs;
        self
    }

    /// Sets the refresh interval; it is capped at half the validity so that a certificate is
    /// always replaced well before it expires.
    pub fn with_refresh_secs(mut self, secs: u64) -> Self {
        self.refresh_secs = secs;
        self
    }

    /// Sets how far notBefore lies before the issue time.
    pub fn with_backdate_secs(mut self, secs: u64) -> Self {
        self.backdate_secs = secs;
        self
    }

    /// The kind of evidence its certificates carry ([`EvidenceKind::Unattested`] for none).
    pub fn evidence_kind(&self) -> EvidenceKind {
        self.attester
            .as_ref()
            .map_or(EvidenceKind::Unattested, |a| a.kind())
    }

    /// The TLS key.
    pub fn key(&self) -> &TlsKeyPair {
        &self.key
    }

    /// Makes a certificate at `now` (unix seconds).
    pub fn issue(&self, now: u64) -> Result<IssuedCertificate, AttestError> {
        let tls_key = self.key.public_key();
        let format = self
            .format
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let claims = match &format {
            ClaimsFormat::Reference => UserClaims::reference(tls_key),
            ClaimsFormat::V1 {
                sealing_public_key,
                gpu_evidence_digest,
                model_hash,
            } => UserClaims::v1(
                tls_key,
                ExtendedClaims {
                    issued_at: now,
                    sealing_public_key: *sealing_public_key,
                    gpu_evidence_digest: *gpu_evidence_digest,
                    model_hash: *model_hash,
                },
            ),
        };
        let claims_bytes = claims.to_bytes();
        let not_before = now.saturating_sub(self.backdate_secs);
        let not_after = not_before.saturating_add(self.validity_secs);
        let der = match &self.attester {
            Some(attester) => {
                let evidence = attester.attest(&claims.report_data())?;
                issue_certificate(&self.key, &evidence, &claims_bytes, not_before, not_after)?
            }
            None => self_sign(
                &unattested_certificate_params(&claims_bytes, not_before, not_after)?,
                &self.key,
            )?,
        };
        let refresh = self.refresh_secs.min(self.validity_secs / 2).max(1);
        Ok(IssuedCertificate {
            der,
            claims,
            not_before,
            not_after,
            refresh_at: now.saturating_add(refresh),
        })
    }

    /// Issues the first certificate and wraps it in an identity for TLS configurations.
    pub fn identity(&self, now: u64) -> Result<Arc<RaTlsIdentity>, AttestError> {
        Ok(Arc::new(RaTlsIdentity::new(&self.key, self.issue(now)?)?))
    }

    /// Whether `identity`'s certificate should be replaced at `now`.
    pub fn refresh_due(&self, identity: &RaTlsIdentity, now: u64) -> bool {
        now >= identity.issued().refresh_at
    }

    /// Replaces `identity`'s certificate now, whatever its refresh time (its claims changed).
    pub fn reissue(&self, identity: &RaTlsIdentity, now: u64) -> Result<(), AttestError> {
        identity.replace(&self.key, self.issue(now)?)
    }

    /// Replaces `identity`'s certificate if due; returns whether it did.
    pub fn refresh_if_due(&self, identity: &RaTlsIdentity, now: u64) -> Result<bool, AttestError> {
        if !self.refresh_due(identity, now) {
            return Ok(false);
        }
        identity.replace(&self.key, self.issue(now)?)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::attester::SimulatedAttester;
    use crate::ratls::cert::parse_certificate;

    fn issuer() -> CertificateIssuer {
        CertificateIssuer::new(
            TlsKeyPair::from_seed(&[1; 32]).unwrap(),
            Arc::new(SimulatedAttester::new()),
        )
    }

    #[test]
    fn issues_one_day_certificates_and_refreshes_hourly() {
        let issuer = issuer();
        let identity = issuer.identity(10_000).unwrap();
        let first = identity.issued();
        assert_eq!(first.not_after - first.not_before, DEFAULT_VALIDITY_SECS);
        assert_eq!(first.not_before, 10_000 - DEFAULT_BACKDATE_SECS);
        assert_eq!(first.refresh_at, 10_000 + DEFAULT_REFRESH_SECS);
        assert!(!issuer.refresh_if_due(&identity, 10_000 + 3599).unwrap());
        assert!(issuer.refresh_if_due(&identity, 10_000 + 3600).unwrap());
        let second = identity.issued();
        assert_ne!(first.der, second.der);
        assert_eq!(second.refresh_at, 10_000 + 7200);
        let parsed = parse_certificate(&second.der, 10_000 + 3600).unwrap();
        assert_eq!(parsed.claims.unwrap(), second.claims.to_bytes());
    }

    #[test]
    fn unattested_certificates_carry_claims_but_no_evidence() {
        let issuer = CertificateIssuer::unattested(TlsKeyPair::from_seed(&[2; 32]).unwrap());
        assert_eq!(issuer.evidence_kind(), EvidenceKind::Unattested);
        let issued = issuer.issue(5_000).unwrap();
        let parsed = parse_certificate(&issued.der, 5_000).unwrap();
        assert!(parsed.evidence.is_none());
        assert_eq!(parsed.claims.unwrap(), issued.claims.to_bytes());
        assert_eq!(parsed.public_key, issuer.key().public_key());
    }

    #[test]
    fn refresh_interval_is_capped_at_half_validity() {
        let issuer = issuer().with_validity_secs(100).with_refresh_secs(1000);
        let issued = issuer.issue(0).unwrap();
        assert_eq!(issued.refresh_at, 50);
    }

    #[test]
    fn v1_claims_carry_issue_time_and_keys() {
        let issuer = issuer().with_claims_format(ClaimsFormat::V1 {
            sealing_public_key: Some(Digest32::from([9; 32])),
            gpu_evidence_digest: None,
            model_hash: None,
        });
        let issued = issuer.issue(77).unwrap();
        let ext = issued.claims.extended.unwrap();
        assert_eq!(ext.issued_at, 77);
        assert_eq!(ext.sealing_public_key, Some(Digest32::from([9; 32])));
    }
}

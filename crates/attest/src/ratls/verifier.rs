//! Verification of a peer's RA-TLS certificate (structure, evidence, binding, policy) and the
//! rustls verifier traits on top of it, for both directions of a mutually attested TLS 1.3
//! connection.

use std::sync::{Arc, PoisonError, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::claims::{UserClaims, report_data_for};
use crate::digest::ImageHash;
use crate::error::AttestError;
use crate::evidence::{Evidence, EvidenceKind};
use crate::measurements::Measurements;
use crate::policy::Policy;
use crate::ratls::cert::{OID_EVIDENCE_STR, OID_USER_CLAIMS_STR, certificate_public_key};
use crate::verifier::EvidenceVerifier;

/// What a verified RA-TLS peer is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedPeer {
    /// The peer's Ed25519 TLS key.
    pub public_key: [u8; 32],
    /// Technology of the evidence, or [`EvidenceKind::Unattested`] under a policy that does
    /// not require evidence.
    pub evidence_kind: EvidenceKind,
    /// Measured identity (absent when unattested).
    pub measurements: Option<Measurements>,
    /// Image hash of the measurements (absent when unattested).
    pub image_hash: Option<ImageHash>,
    /// User claims bound by the evidence (absent when unattested).
    pub claims: Option<UserClaims>,
    /// notAfter of the peer certificate, unix seconds.
    pub certificate_not_after: i64,
}

impl VerifiedPeer {
    /// The SHA-256 of the model weights the peer's attested claims name (our extended claims
    /// only): the model identity a registry allows.
    pub fn model_hash(&self) -> Option<[u8; 32]> {
        self.claims
            .as_ref()?
            .extended
            .as_ref()?
            .model_hash
            .map(|h| *h.as_bytes())
    }

    /// True for SIMULATED evidence: such a peer must be shown loudly as not a TEE.
    pub fn is_simulated(&self) -> bool {
        self.evidence_kind == EvidenceKind::Simulated
    }
}

/// Verifies RA-TLS peers against a policy. Implements rustls' server and client certificate
/// verifier traits, so one value serves both sides of a connection.
#[derive(Debug)]
pub struct RaTlsVerifier {
    // Swapped whole when the policy's sources change (the root registry's allow-lists); a
    // handshake uses the policy current when it starts.
    policy: RwLock<Arc<Policy>>,
    evidence: Arc<EvidenceVerifier>,
}

impl RaTlsVerifier {
    /// A verifier applying `policy`, verifying evidence with `evidence` (share one
    /// [`EvidenceVerifier`] between verifiers to share its cache).
    pub fn new(policy: Policy, evidence: Arc<EvidenceVerifier>) -> Self {
        Self {
            policy: RwLock::new(Arc::new(policy)),
            evidence,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the policy: handshakes that start from now on are checked against `policy`.
    /// Connections already established are not affected.
    pub fn set_policy(&self, policy: Policy) {
        *self.policy.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(policy);
    }

    /// The evidence verifier (and its cache).
    pub fn evidence_verifier(&self) -> &Arc<EvidenceVerifier> {
        &self.evidence
    }

    /// Verifies the certificates a peer presented (end entity first) at `now`.
    pub fn verify_peer(
        &self,
        certificates: &[CertificateDer<'_>],
        now: u64,
    ) -> Result<VerifiedPeer, AttestError> {
        verified_peer(certificates, &self.policy(), &self.evidence, now)
    }
}

/// Verifies a peer's certificate list (as returned by `rustls::CommonState::peer_certificates`
/// after a handshake) at `now`. Transport code calls this after the handshake to learn who the
/// peer is; with a shared [`EvidenceVerifier`] the evidence check is a cache hit.
pub fn verified_peer(
    certificates: &[CertificateDer<'_>],
    policy: &Policy,
    evidence_verifier: &EvidenceVerifier,
    now: u64,
) -> Result<VerifiedPeer, AttestError> {
    let (end_entity, intermediates) = certificates
        .split_first()
        .ok_or(AttestError::NoPeerCertificate)?;
    verify_end_entity(
        end_entity,
        intermediates.len(),
        policy,
        evidence_verifier,
        now,
    )
}

fn verify_end_entity(
    end_entity: &CertificateDer<'_>,
    intermediates: usize,
    policy: &Policy,
    evidence_verifier: &EvidenceVerifier,
    now: u64,
) -> Result<VerifiedPeer, AttestError> {
    if intermediates > 0 {
        return Err(AttestError::ChainNotAllowed {
            depth: intermediates,
        });
    }
    let checked = evidence_verifier
        .certificates()
        .check(end_entity.as_ref(), now)?;
    let cert = &checked.certificate;
    if !policy.require_evidence {
        return Ok(VerifiedPeer {
            public_key: cert.public_key,
            evidence_kind: EvidenceKind::Unattested,
            measurements: None,
            image_hash: None,
            claims: None,
            certificate_not_after: cert.not_after,
        });
    }
    let evidence = cert
        .evidence
        .as_deref()
        .ok_or(AttestError::MissingExtension {
            oid: OID_EVIDENCE_STR,
        })?;
    let claims_bytes = cert
        .claims
        .as_deref()
        .ok_or(AttestError::MissingExtension {
            oid: OID_USER_CLAIMS_STR,
        })?;
    let claims = UserClaims::from_bytes(claims_bytes)?;
    // Refuse unwanted kinds before spending time on parsing and verification.
    policy.check_kind(Evidence::peek_kind(evidence)?)?;
    let verified = evidence_verifier.verify(evidence, now)?;
    if verified.report_data != report_data_for(claims_bytes) {
        return Err(AttestError::ReportDataMismatch);
    }
    if claims.tls_public_key.as_bytes() != &cert.public_key {
        return Err(AttestError::CertificateKeyMismatch);
    }
    policy.check(&verified, now)?;
    policy.check_claims(&claims, now)?;
    // Once per certificate: receipts carry the same one for every answer.
    if verified.kind == EvidenceKind::Simulated && checked.first_seen {
        tracing::warn!(
            peer_key = %hex::encode(cert.public_key),
            "accepted a peer with SIMULATED attestation: it runs in no TEE"
        );
    }
    Ok(VerifiedPeer {
        public_key: cert.public_key,
        evidence_kind: verified.kind,
        image_hash: Some(verified.measurements.image_hash()),
        measurements: Some(verified.measurements.clone()),
        claims: Some(claims),
        certificate_not_after: cert.not_after,
    })
}

fn verify_handshake_signature(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    if dss.scheme != SignatureScheme::ED25519 {
        return Err(AttestError::HandshakeSignature.into());
    }
    let key = certificate_public_key(cert.as_ref())?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &key)
        .verify(message, dss.signature())
        .map_err(|_| AttestError::HandshakeSignature)?;
    Ok(HandshakeSignatureValid::assertion())
}

fn unix_secs(now: UnixTime) -> u64 {
    now.as_secs()
}

impl ServerCertVerifier for RaTlsVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The server's identity is its attestation, not a DNS name.
        verify_end_entity(
            end_entity,
            intermediates.len(),
            &self.policy(),
            &self.evidence,
            unix_secs(now),
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("RA-TLS allows TLS 1.3 only".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_handshake_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

impl ClientCertVerifier for RaTlsVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        verify_end_entity(
            end_entity,
            intermediates.len(),
            &self.policy(),
            &self.evidence,
            unix_secs(now),
        )?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("RA-TLS allows TLS 1.3 only".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_handshake_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

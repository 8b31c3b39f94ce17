//! RA-TLS certificates in the reference COCOON format: a self-signed Ed25519 certificate whose
//! critical private extensions carry the TEE evidence and the user claims; generation with
//! rcgen and strict parsing with x509-parser.
//!
//! Two extension layouts exist, as in the reference ([`CertificateLayout`]): the TDX pair
//! (`.1` evidence, `.2` user claims; also used for simulated evidence and, without `.1`, for
//! unattested nodes) and the SEV-SNP triple (`.100` user claims, `.101` the raw SNP report, `.102`
//! the chip's VCEK certificate in DER, so that a peer need not fetch it from AMD). Issuance picks
//! the layout from the evidence; parsing accepts either (never a mix) and hands the verifier the
//! SNP pair as ordinary [`SnpEvidence`], so a VCEK found in a certificate is checked exactly like
//! one that came from the host (ARK → ASK → VCEK, then chip id and TCB against the report).

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, KeyUsagePurpose, SanType,
    SerialNumber,
};
use rustls::pki_types::CertificateDer;
use sha2::{Digest as _, Sha256};
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate, X509Version};
use zeroize::Zeroizing;

use crate::error::AttestError;
use crate::evidence::{Evidence, EvidenceKind, SnpEvidence};

/// OID arc of the evidence extension (`1.3.6.1.4.1.12345.1`, reference name TDX_QUOTE).
pub const OID_EVIDENCE: &[u64] = &[1, 3, 6, 1, 4, 1, 12345, 1];
/// OID arc of the user-claims extension (`1.3.6.1.4.1.12345.2`, reference TDX_USER_CLAIMS).
pub const OID_USER_CLAIMS: &[u64] = &[1, 3, 6, 1, 4, 1, 12345, 2];
/// Dotted form of [`OID_EVIDENCE`].
pub const OID_EVIDENCE_STR: &str = "1.3.6.1.4.1.12345.1";
/// Dotted form of [`OID_USER_CLAIMS`].
pub const OID_USER_CLAIMS_STR: &str = "1.3.6.1.4.1.12345.2";

/// OID arc of the SEV-SNP layout's user-claims extension (`1.3.6.1.4.1.12345.100`).
pub const OID_SNP_CLAIMS: &[u64] = &[1, 3, 6, 1, 4, 1, 12345, 100];
/// OID arc of the SEV-SNP layout's report extension (`1.3.6.1.4.1.12345.101`).
pub const OID_SNP_REPORT: &[u64] = &[1, 3, 6, 1, 4, 1, 12345, 101];
/// OID arc of the SEV-SNP layout's VCEK extension (`1.3.6.1.4.1.12345.102`, DER certificate).
pub const OID_SNP_VCEK: &[u64] = &[1, 3, 6, 1, 4, 1, 12345, 102];
/// Dotted form of [`OID_SNP_CLAIMS`].
pub const OID_SNP_CLAIMS_STR: &str = "1.3.6.1.4.1.12345.100";
/// Dotted form of [`OID_SNP_REPORT`].
pub const OID_SNP_REPORT_STR: &str = "1.3.6.1.4.1.12345.101";
/// Dotted form of [`OID_SNP_VCEK`].
pub const OID_SNP_VCEK_STR: &str = "1.3.6.1.4.1.12345.102";

/// Which set of private extensions a certificate uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertificateLayout {
    /// `.1` evidence and `.2` user claims: TDX quotes, our CCEV envelope, simulated evidence,
    /// and (without `.1`) unattested nodes.
    Tdx,
    /// `.100` user claims, `.101` SEV-SNP report, `.102` VCEK (DER).
    SevSnp,
}

const OID_ED25519: &str = "1.3.101.112";
const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";
const OID_KEY_USAGE: &str = "2.5.29.15";
const OID_EXT_KEY_USAGE: &str = "2.5.29.37";
const OID_SUBJECT_KEY_ID: &str = "2.5.29.14";
const OID_AUTHORITY_KEY_ID: &str = "2.5.29.35";
const OID_SUBJECT_ALT_NAME: &str = "2.5.29.17";
const EXT_KEY_USAGE_ARC: &[u64] = &[2, 5, 29, 37];

/// DER `SEQUENCE { id-kp-serverAuth, id-kp-clientAuth }`.
const EKU_SERVER_AND_CLIENT: [u8; 22] = [
    0x30, 0x14, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01, 0x06, 0x08, 0x2b, 0x06,
    0x01, 0x05, 0x05, 0x07, 0x03, 0x02,
];

/// Ed25519 PKCS#8 v1 prefix (RFC 8410): the 32-byte seed follows.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Largest evidence the reference embeds in a certificate is 32 KiB; ours may add collateral.
pub const MAX_CERTIFICATE_LEN: usize = 256 * 1024;

/// The Ed25519 key of an RA-TLS certificate.
pub struct TlsKeyPair {
    pkcs8: Zeroizing<Vec<u8>>,
    public_key: [u8; 32],
    /// The expanded signing key, made once: expanding a seed costs as much as a signature.
    signer: aws_lc_rs::signature::Ed25519KeyPair,
}

impl fmt::Debug for TlsKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsKeyPair")
            .field("public_key", &hex::encode(self.public_key))
            .finish_non_exhaustive()
    }
}

impl TlsKeyPair {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, AttestError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), seed.as_mut())
            .map_err(|_| AttestError::IdentityKey("system random source failed".into()))?;
        Self::from_seed(&seed)
    }

    /// The key with this 32-byte Ed25519 seed (for sealed persistent keys and tests).
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self, AttestError> {
        let pair = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|e| AttestError::IdentityKey(e.to_string()))?;
        let mut public_key = [0u8; 32];
        public_key.copy_from_slice(aws_lc_rs::signature::KeyPair::public_key(&pair).as_ref());
        let mut pkcs8 = Zeroizing::new(Vec::with_capacity(48));
        pkcs8.extend_from_slice(&PKCS8_ED25519_PREFIX);
        pkcs8.extend_from_slice(seed);
        Ok(Self {
            pkcs8,
            public_key,
            signer: pair,
        })
    }

    /// An Ed25519 signature of `message` with this key.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut signature = [0u8; 64];
        signature.copy_from_slice(self.signer.sign(message).as_ref());
        signature
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    /// The private key as PKCS#8 DER (for rustls).
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    fn rcgen_key(&self) -> Result<rcgen::KeyPair, AttestError> {
        rcgen::KeyPair::try_from(self.pkcs8.as_slice())
            .map_err(|e| AttestError::IdentityKey(e.to_string()))
    }
}

/// rcgen parameters of an RA-TLS certificate in the reference layout. Exposed so that callers
/// (and tests) can inspect or extend them before signing.
pub fn certificate_params(
    evidence: &[u8],
    claims: &[u8],
    not_before: u64,
    not_after: u64,
) -> Result<CertificateParams, AttestError> {
    params_with(Some(evidence), claims, not_before, not_after)
}

/// rcgen parameters of a certificate in the same layout but with no evidence extension: what a
/// node outside any TEE (an integrator's client) presents. Only policies that do not require
/// evidence accept it.
pub fn unattested_certificate_params(
    claims: &[u8],
    not_before: u64,
    not_after: u64,
) -> Result<CertificateParams, AttestError> {
    params_with(None, claims, not_before, not_after)
}

fn params_with(
    evidence: Option<&[u8]>,
    claims: &[u8],
    not_before: u64,
    not_after: u64,
) -> Result<CertificateParams, AttestError> {
    let to_time = |t: u64| {
        i64::try_from(t)
            .ok()
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
            .ok_or_else(|| AttestError::CertificateGeneration(format!("time {t} out of range")))
    };
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "cocoon RA-TLS");
    params.distinguished_name = name;
    params.not_before = to_time(not_before)?;
    params.not_after = to_time(not_after)?;
    // Unique per (key material, evidence, time): a refreshed certificate gets a new serial.
    let mut serial: [u8; 32] = Sha256::new()
        .chain_update(evidence.unwrap_or_default())
        .chain_update(claims)
        .chain_update(not_before.to_be_bytes())
        .finalize()
        .into();
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial[..16]));
    // ExplicitNoCa writes a critical BasicConstraints CA:FALSE and a SubjectKeyIdentifier.
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.subject_alt_names = vec![
        SanType::DnsName(
            "localhost"
                .try_into()
                .map_err(|e: rcgen::Error| AttestError::CertificateGeneration(e.to_string()))?,
        ),
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ];
    // rcgen writes ExtendedKeyUsage as non-critical; the reference marks it critical.
    let mut eku =
        CustomExtension::from_oid_content(EXT_KEY_USAGE_ARC, EKU_SERVER_AND_CLIENT.to_vec());
    eku.set_criticality(true);
    params.custom_extensions = vec![eku];
    let critical = |oid: &[u64], content: &[u8]| {
        let mut ext = CustomExtension::from_oid_content(oid, content.to_vec());
        ext.set_criticality(true);
        ext
    };
    // SEV-SNP evidence goes out in the reference's SNP layout; everything else in the TDX pair.
    let snp = match evidence {
        Some(bytes) if matches!(Evidence::peek_kind(bytes), Ok(EvidenceKind::SevSnp)) => {
            match Evidence::decode(bytes)? {
                Evidence::SevSnp(snp) => Some(snp),
                _ => {
                    return Err(AttestError::EvidenceMalformed(
                        "SEV-SNP kind without a report",
                    ));
                }
            }
        }
        _ => None,
    };
    if let Some(snp) = snp {
        params
            .custom_extensions
            .push(critical(OID_SNP_CLAIMS, claims));
        params
            .custom_extensions
            .push(critical(OID_SNP_REPORT, &snp.report));
        params
            .custom_extensions
            .push(critical(OID_SNP_VCEK, &snp.vcek_der));
        return Ok(params);
    }
    if let Some(evidence) = evidence {
        params
            .custom_extensions
            .push(critical(OID_EVIDENCE, evidence));
    }
    params
        .custom_extensions
        .push(critical(OID_USER_CLAIMS, claims));
    Ok(params)
}

/// rcgen parameters of a certificate in the reference's SEV-SNP layout with these exact
/// extension contents (no checks on them: tests use it to build refused certificates too).
pub fn snp_certificate_params(
    report: &[u8],
    vcek_der: &[u8],
    claims: &[u8],
    not_before: u64,
    not_after: u64,
) -> Result<CertificateParams, AttestError> {
    let mut params = params_with(None, claims, not_before, not_after)?;
    params
        .custom_extensions
        .retain(|e| e.oid_components().collect::<Vec<_>>() != OID_USER_CLAIMS);
    for (oid, content) in [
        (OID_SNP_CLAIMS, claims),
        (OID_SNP_REPORT, report),
        (OID_SNP_VCEK, vcek_der),
    ] {
        let mut ext = CustomExtension::from_oid_content(oid, content.to_vec());
        ext.set_criticality(true);
        params.custom_extensions.push(ext);
    }
    Ok(params)
}

/// Signs `params` with `key` (self-signed).
pub fn self_sign(
    params: &CertificateParams,
    key: &TlsKeyPair,
) -> Result<CertificateDer<'static>, AttestError> {
    let key = key.rcgen_key()?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| AttestError::CertificateGeneration(e.to_string()))?;
    Ok(cert.der().clone())
}

/// Generates an RA-TLS certificate valid from `not_before` to `not_after` (unix seconds).
pub fn issue_certificate(
    key: &TlsKeyPair,
    evidence: &[u8],
    claims: &[u8],
    not_before: u64,
    not_after: u64,
) -> Result<CertificateDer<'static>, AttestError> {
    self_sign(
        &certificate_params(evidence, claims, not_before, not_after)?,
        key,
    )
}

/// The RA-TLS content of a certificate that passed the structural checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaTlsCertificate {
    /// Ed25519 public key of the certificate.
    pub public_key: [u8; 32],
    /// Content of the evidence extension, if present.
    pub evidence: Option<Vec<u8>>,
    /// Content of the user-claims extension, if present.
    pub claims: Option<Vec<u8>>,
    /// Which extension layout the certificate uses. For [`CertificateLayout::SevSnp`],
    /// `evidence` holds the report and VCEK as an encoded [`Evidence::SevSnp`] and `claims` the
    /// `.100` extension.
    pub layout: CertificateLayout,
    /// notBefore, unix seconds.
    pub not_before: i64,
    /// notAfter, unix seconds.
    pub not_after: i64,
}

/// Parses and checks an RA-TLS certificate at time `now`: X.509 v3, Ed25519 key and
/// signature, self-issued and self-signed, within its validity, CA:FALSE, digitalSignature,
/// no repeated extension and no critical extension other than the standard ones and ours.
pub fn parse_certificate(der: &[u8], now: u64) -> Result<RaTlsCertificate, AttestError> {
    if der.len() > MAX_CERTIFICATE_LEN {
        return Err(AttestError::CertificateParse(format!(
            "certificate is {} bytes, limit {MAX_CERTIFICATE_LEN}",
            der.len()
        )));
    }
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| AttestError::CertificateParse(e.to_string()))?;
    if !rest.is_empty() {
        return Err(AttestError::CertificateParse(
            "trailing bytes after the certificate".into(),
        ));
    }
    if cert.version() != X509Version::V3 {
        return Err(AttestError::CertificateParse(
            "not an X.509 v3 certificate".into(),
        ));
    }
    for algorithm in [
        &cert.signature_algorithm.algorithm,
        &cert.tbs_certificate.signature.algorithm,
        &cert.public_key().algorithm.algorithm,
    ] {
        if algorithm.to_id_string() != OID_ED25519 {
            return Err(AttestError::NotEd25519 {
                algorithm: algorithm.to_id_string(),
            });
        }
    }
    let public_key: [u8; 32] = cert
        .public_key()
        .subject_public_key
        .data
        .as_ref()
        .try_into()
        .map_err(|_| AttestError::NotEd25519 {
            algorithm: "Ed25519 OID with a key that is not 32 bytes".into(),
        })?;
    if cert.issuer().as_raw() != cert.subject().as_raw() {
        return Err(AttestError::NotSelfSigned);
    }
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &public_key)
        .verify(
            cert.tbs_certificate.as_ref(),
            cert.signature_value.data.as_ref(),
        )
        .map_err(|_| AttestError::CertificateSignature)?;

    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    let now_i = i64::try_from(now).unwrap_or(i64::MAX);
    if now_i < not_before {
        return Err(AttestError::CertificateNotYetValid { not_before, now });
    }
    if now_i > not_after {
        return Err(AttestError::CertificateExpired { not_after, now });
    }

    let mut seen = HashSet::new();
    let mut evidence = None;
    let mut claims = None;
    let mut snp_claims = None;
    let mut snp_report = None;
    let mut snp_vcek = None;
    for ext in cert.extensions() {
        let oid = ext.oid.to_id_string();
        if !seen.insert(oid.clone()) {
            return Err(AttestError::DuplicateExtension { oid });
        }
        if let ParsedExtension::ParseError { error } = ext.parsed_extension() {
            return Err(AttestError::CertificateParse(format!(
                "extension {oid}: {error}"
            )));
        }
        match oid.as_str() {
            OID_EVIDENCE_STR => evidence = Some(ext.value.to_vec()),
            OID_USER_CLAIMS_STR => claims = Some(ext.value.to_vec()),
            OID_SNP_CLAIMS_STR => snp_claims = Some(ext.value.to_vec()),
            OID_SNP_REPORT_STR => snp_report = Some(ext.value.to_vec()),
            OID_SNP_VCEK_STR => snp_vcek = Some(ext.value.to_vec()),
            OID_BASIC_CONSTRAINTS => match ext.parsed_extension() {
                ParsedExtension::BasicConstraints(bc) if !bc.ca => {}
                ParsedExtension::BasicConstraints(_) => {
                    return Err(AttestError::CertificateConstraint("CA:TRUE"));
                }
                _ => return Err(AttestError::CertificateParse("basicConstraints".into())),
            },
            OID_KEY_USAGE => match ext.parsed_extension() {
                ParsedExtension::KeyUsage(ku) if ku.digital_signature() => {}
                ParsedExtension::KeyUsage(_) => {
                    return Err(AttestError::CertificateConstraint(
                        "keyUsage lacks digitalSignature",
                    ));
                }
                _ => return Err(AttestError::CertificateParse("keyUsage".into())),
            },
            OID_EXT_KEY_USAGE => match ext.parsed_extension() {
                ParsedExtension::ExtendedKeyUsage(eku) if eku.server_auth && eku.client_auth => {}
                ParsedExtension::ExtendedKeyUsage(_) => {
                    return Err(AttestError::CertificateConstraint(
                        "extendedKeyUsage must allow serverAuth and clientAuth",
                    ));
                }
                _ => return Err(AttestError::CertificateParse("extendedKeyUsage".into())),
            },
            OID_SUBJECT_KEY_ID | OID_AUTHORITY_KEY_ID | OID_SUBJECT_ALT_NAME => {}
            _ if ext.critical => return Err(AttestError::UnknownCriticalExtension { oid }),
            _ => {}
        }
    }
    let layout = if snp_claims.is_some() || snp_report.is_some() || snp_vcek.is_some() {
        if evidence.is_some() || claims.is_some() {
            return Err(AttestError::MixedCertificateLayouts);
        }
        let missing = |oid| AttestError::MissingExtension { oid };
        claims = Some(snp_claims.ok_or(missing(OID_SNP_CLAIMS_STR))?);
        let report = snp_report.ok_or(missing(OID_SNP_REPORT_STR))?;
        // The VCEK travels in the certificate: without it the report cannot be checked.
        let vcek_der = snp_vcek.ok_or(missing(OID_SNP_VCEK_STR))?;
        evidence = Some(Evidence::SevSnp(SnpEvidence { report, vcek_der }).encode());
        CertificateLayout::SevSnp
    } else {
        CertificateLayout::Tdx
    };
    Ok(RaTlsCertificate {
        public_key,
        evidence,
        claims,
        layout,
        not_before,
        not_after,
    })
}

/// The Ed25519 key of a certificate, with only the checks needed to verify a handshake
/// signature (the full checks run in certificate verification).
pub(crate) fn certificate_public_key(der: &[u8]) -> Result<[u8; 32], AttestError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| AttestError::CertificateParse(e.to_string()))?;
    let algorithm = cert.public_key().algorithm.algorithm.to_id_string();
    if algorithm != OID_ED25519 {
        return Err(AttestError::NotEd25519 { algorithm });
    }
    cert.public_key()
        .subject_public_key
        .data
        .as_ref()
        .try_into()
        .map_err(|_| AttestError::NotEd25519 {
            algorithm: "Ed25519 OID with a key that is not 32 bytes".into(),
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Ed25519 is deterministic: AWS-LC's signatures are byte for byte ring's, and the key the
    /// TLS stack (ring, from the PKCS#8 document) uses is the same key.
    #[test]
    fn signatures_are_the_same_as_rings() {
        for seed in [[0u8; 32], [7; 32], [0xa5; 32]] {
            let key = TlsKeyPair::from_seed(&seed).unwrap();
            let ring_key =
                ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(key.pkcs8_der())
                    .unwrap();
            assert_eq!(
                ring::signature::KeyPair::public_key(&ring_key).as_ref(),
                key.public_key()
            );
            for message in [&b""[..], b"receipt", &[0x5a; 5000]] {
                assert_eq!(ring_key.sign(message).as_ref(), key.sign(message));
            }
        }
    }

    #[test]
    fn generated_certificate_has_the_reference_layout() {
        let key = TlsKeyPair::from_seed(&[7; 32]).unwrap();
        let der = issue_certificate(&key, b"evidence", b"claims", 1000, 1000 + 86400).unwrap();
        let parsed = parse_certificate(&der, 2000).unwrap();
        assert_eq!(parsed.public_key, key.public_key());
        assert_eq!(parsed.evidence.as_deref(), Some(&b"evidence"[..]));
        assert_eq!(parsed.claims.as_deref(), Some(&b"claims"[..]));
        assert_eq!(parsed.not_after - parsed.not_before, 86400);

        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let crit = |oid: &str| {
            cert.extensions()
                .iter()
                .find(|e| e.oid.to_id_string() == oid)
                .map(|e| e.critical)
        };
        assert_eq!(crit(OID_BASIC_CONSTRAINTS), Some(true));
        assert_eq!(crit(OID_KEY_USAGE), Some(true));
        assert_eq!(crit(OID_EXT_KEY_USAGE), Some(true));
        assert_eq!(crit(OID_EVIDENCE_STR), Some(true));
        assert_eq!(crit(OID_USER_CLAIMS_STR), Some(true));
        assert!(crit(OID_SUBJECT_KEY_ID).is_some());
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(san.value.general_names.len(), 3);
    }

    #[test]
    fn seed_gives_the_rfc8032_public_key() {
        // RFC 8032 section 7.1, test 1.
        let seed: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let key = TlsKeyPair::from_seed(&seed).unwrap();
        assert_eq!(
            hex::encode(key.public_key()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
    }
}

//! RA-TLS certificate verification without a network: every way a peer certificate can be
//! refused gives its own error, and real TDX / SEV-SNP evidence flows through the same path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use cocoon_attest::claims::report_data_for;
use cocoon_attest::digest::{Digest, Digest32};
use cocoon_attest::evidence::{Evidence, SimulatedEvidence, SnpEvidence, TdxEvidence};
use cocoon_attest::measurements::TdAttributes;
use cocoon_attest::policy::RtmrSet;
use cocoon_attest::ratls::cert::{
    OID_EVIDENCE, certificate_params, issue_certificate, parse_certificate, self_sign,
};
use cocoon_attest::ratls::{TlsKeyPair, verified_peer};
use cocoon_attest::{
    AttestError, EvidenceKind, EvidenceVerifier, ExtendedClaims, ImageHash, Policy,
    TdxMeasurements, UserClaims,
};
use rcgen::CustomExtension;
use rustls::pki_types::CertificateDer;
use support::*;

const NOW: u64 = 1_800_000_000;
const DAY: u64 = 86_400;

fn key(seed: u8) -> TlsKeyPair {
    TlsKeyPair::from_seed(&[seed; 32]).unwrap()
}

fn claims_for(key: &TlsKeyPair) -> UserClaims {
    UserClaims::v1(key.public_key(), ExtendedClaims::issued_at(NOW))
}

fn sim_evidence(report_data: [u8; 64], measurements: Option<TdxMeasurements>) -> Vec<u8> {
    let mut sim = SimulatedEvidence::new(report_data);
    if let Some(m) = measurements {
        sim.measurements = m;
    }
    Evidence::Simulated(sim).encode()
}

/// A well-formed certificate with simulated evidence bound to `claims`.
fn sim_cert(key: &TlsKeyPair, claims: &UserClaims) -> CertificateDer<'static> {
    let evidence = sim_evidence(claims.report_data(), None);
    issue_certificate(key, &evidence, &claims.to_bytes(), NOW - 60, NOW - 60 + DAY).unwrap()
}

fn check(
    cert: CertificateDer<'static>,
    policy: &Policy,
) -> Result<cocoon_attest::VerifiedPeer, AttestError> {
    verified_peer(&[cert], policy, &EvidenceVerifier::default(), NOW)
}

#[test]
fn simulated_peer_is_accepted_locally_and_described() {
    let k = key(1);
    let claims = claims_for(&k);
    let peer = check(sim_cert(&k, &claims), &Policy::local_simulated()).unwrap();
    assert_eq!(peer.public_key, k.public_key());
    assert_eq!(peer.evidence_kind, EvidenceKind::Simulated);
    assert!(peer.is_simulated());
    assert_eq!(peer.claims, Some(claims));
    let m = peer.measurements.unwrap();
    assert_eq!(peer.image_hash, Some(m.image_hash()));
}

#[test]
fn reference_formats_are_understood() {
    // 32-byte claims and the reference fake_tdx 64-byte "quote".
    let k = key(2);
    let claims = UserClaims::reference(k.public_key());
    assert_eq!(claims.to_bytes(), k.public_key().to_vec());
    let report_data = claims.report_data();
    let cert = issue_certificate(&k, &report_data, &claims.to_bytes(), NOW - 1, NOW + DAY).unwrap();
    let peer = check(cert.clone(), &Policy::local_simulated()).unwrap();
    assert_eq!(peer.claims, Some(claims));
    assert_eq!(peer.evidence_kind, EvidenceKind::Simulated);
    let err = check(cert, &Policy::production()).unwrap_err();
    assert!(
        matches!(err, AttestError::SimulatedEvidenceRefused),
        "{err}"
    );
}

#[test]
fn simulated_evidence_under_production_policy() {
    let k = key(3);
    let err = check(sim_cert(&k, &claims_for(&k)), &Policy::production()).unwrap_err();
    assert!(
        matches!(err, AttestError::SimulatedEvidenceRefused),
        "{err}"
    );
}

#[test]
fn report_data_not_bound_to_claims() {
    let k = key(4);
    let claims = claims_for(&k);
    let other = UserClaims::v1(k.public_key(), ExtendedClaims::issued_at(NOW + 1));
    let evidence = sim_evidence(other.report_data(), None);
    let cert = issue_certificate(&k, &evidence, &claims.to_bytes(), NOW - 1, NOW + DAY).unwrap();
    let err = check(cert, &Policy::local_simulated()).unwrap_err();
    assert!(matches!(err, AttestError::ReportDataMismatch), "{err}");
}

#[test]
fn certificate_key_differs_from_claims_key() {
    // A stolen (claims, evidence) pair re-attached to another key.
    let victim = key(5);
    let thief = key(6);
    let claims = claims_for(&victim);
    let evidence = sim_evidence(claims.report_data(), None);
    let cert =
        issue_certificate(&thief, &evidence, &claims.to_bytes(), NOW - 1, NOW + DAY).unwrap();
    let err = check(cert, &Policy::local_simulated()).unwrap_err();
    assert!(matches!(err, AttestError::CertificateKeyMismatch), "{err}");
}

fn cert_with(measurements: TdxMeasurements) -> CertificateDer<'static> {
    let k = key(7);
    let claims = claims_for(&k);
    let evidence = sim_evidence(claims.report_data(), Some(measurements));
    issue_certificate(&k, &evidence, &claims.to_bytes(), NOW - 1, NOW + DAY).unwrap()
}

#[test]
fn measurement_allow_lists_apply_through_ra_tls() {
    let m = SimulatedEvidence::new([0; 64]).measurements;
    let err = check(
        cert_with(m.clone()),
        &Policy::local_simulated().with_mrtds([Digest([9; 48])]),
    )
    .unwrap_err();
    assert!(matches!(err, AttestError::MrtdNotAllowed { .. }), "{err}");

    let mut wrong = RtmrSet::exact(&m.rtmrs);
    wrong.rtmr2 = Some(Digest([9; 48]));
    let err = check(
        cert_with(m.clone()),
        &Policy::local_simulated().with_rtmr_sets([wrong]),
    )
    .unwrap_err();
    assert!(matches!(err, AttestError::RtmrNotAllowed), "{err}");

    let err = check(
        cert_with(m.clone()),
        &Policy::local_simulated().with_image_hashes([ImageHash::default()]),
    )
    .unwrap_err();
    assert!(
        matches!(err, AttestError::ImageHashNotAllowed { .. }),
        "{err}"
    );

    check(
        cert_with(m.clone()),
        &Policy::local_simulated()
            .with_mrtds([m.mrtd])
            .with_rtmr_sets([RtmrSet::exact(&m.rtmrs)])
            .with_image_hashes([m.image_hash()]),
    )
    .unwrap();
}

#[test]
fn debug_td_through_ra_tls() {
    let mut m = SimulatedEvidence::new([0; 64]).measurements;
    m.td_attributes = TdAttributes(TdAttributes::DEBUG | TdAttributes::SEPT_VE_DISABLE);
    let err = check(cert_with(m), &Policy::local_simulated()).unwrap_err();
    assert!(matches!(err, AttestError::DebugTd { .. }), "{err}");
}

#[test]
fn expired_and_not_yet_valid_certificates() {
    let k = key(8);
    let claims = claims_for(&k);
    let evidence = sim_evidence(claims.report_data(), None);
    let expired =
        issue_certificate(&k, &evidence, &claims.to_bytes(), NOW - 2 * DAY, NOW - DAY).unwrap();
    let err = check(expired, &Policy::local_simulated()).unwrap_err();
    assert!(
        matches!(err, AttestError::CertificateExpired { .. }),
        "{err}"
    );
    let future =
        issue_certificate(&k, &evidence, &claims.to_bytes(), NOW + 600, NOW + DAY).unwrap();
    let err = check(future, &Policy::local_simulated()).unwrap_err();
    assert!(
        matches!(err, AttestError::CertificateNotYetValid { .. }),
        "{err}"
    );
}

fn params_for(k: &TlsKeyPair) -> rcgen::CertificateParams {
    let claims = claims_for(k);
    let evidence = sim_evidence(claims.report_data(), None);
    certificate_params(&evidence, &claims.to_bytes(), NOW - 1, NOW + DAY).unwrap()
}

#[test]
fn unknown_critical_extension() {
    let k = key(9);
    let mut params = params_for(&k);
    let mut ext = CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 12345, 99], vec![1, 2]);
    ext.set_criticality(true);
    params.custom_extensions.push(ext);
    let err = check(self_sign(&params, &k).unwrap(), &Policy::local_simulated()).unwrap_err();
    match err {
        AttestError::UnknownCriticalExtension { oid } => assert_eq!(oid, "1.3.6.1.4.1.12345.99"),
        other => panic!("{other}"),
    }
    // The same extension as non-critical is ignored.
    let mut params = params_for(&k);
    params
        .custom_extensions
        .push(CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 12345, 99],
            vec![1, 2],
        ));
    check(self_sign(&params, &k).unwrap(), &Policy::local_simulated()).unwrap();
}

#[test]
fn repeated_extension() {
    let k = key(10);
    let mut params = params_for(&k);
    let mut ext = CustomExtension::from_oid_content(OID_EVIDENCE, vec![0; 64]);
    ext.set_criticality(true);
    params.custom_extensions.push(ext);
    let err = check(self_sign(&params, &k).unwrap(), &Policy::local_simulated()).unwrap_err();
    assert!(
        matches!(err, AttestError::DuplicateExtension { .. }),
        "{err}"
    );
}

#[test]
fn missing_evidence_extension() {
    let k = key(11);
    let mut params = params_for(&k);
    params
        .custom_extensions
        .retain(|e| e.oid_components().collect::<Vec<_>>() != OID_EVIDENCE);
    let cert = self_sign(&params, &k).unwrap();
    let err = check(cert.clone(), &Policy::local_simulated()).unwrap_err();
    assert!(matches!(err, AttestError::MissingExtension { .. }), "{err}");
    // The reference `any` policy takes such a peer, unattested.
    let peer = check(cert, &Policy::any()).unwrap();
    assert_eq!(peer.evidence_kind, EvidenceKind::Unattested);
    assert!(peer.measurements.is_none());
}

#[test]
fn non_ed25519_key() {
    let k = key(12);
    let params = params_for(&k);
    let ecdsa = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = params.self_signed(&ecdsa).unwrap().der().clone();
    let err = check(cert, &Policy::local_simulated()).unwrap_err();
    assert!(matches!(err, AttestError::NotEd25519 { .. }), "{err}");
}

#[test]
fn chain_depth_above_zero() {
    let k = key(13);
    let cert = sim_cert(&k, &claims_for(&k));
    let err = verified_peer(
        &[cert.clone(), cert],
        &Policy::local_simulated(),
        &EvidenceVerifier::default(),
        NOW,
    )
    .unwrap_err();
    assert!(
        matches!(err, AttestError::ChainNotAllowed { depth: 1 }),
        "{err}"
    );
    let err = verified_peer(&[], &Policy::any(), &EvidenceVerifier::default(), NOW).unwrap_err();
    assert!(matches!(err, AttestError::NoPeerCertificate), "{err}");
}

#[test]
fn issued_by_someone_else() {
    let k = key(14);
    let params = params_for(&k);
    let ca_key = rcgen::KeyPair::try_from(key(15).pkcs8_der()).unwrap();
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "some CA");
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let subject_key = rcgen::KeyPair::try_from(k.pkcs8_der()).unwrap();
    let cert = params
        .signed_by(&subject_key, &issuer)
        .unwrap()
        .der()
        .clone();
    let err = check(cert, &Policy::local_simulated()).unwrap_err();
    assert!(matches!(err, AttestError::NotSelfSigned), "{err}");

    // Same name as the subject, but signed by another key.
    let other_issuer = rcgen::Issuer::from_params(&params, &ca_key);
    let cert = params
        .signed_by(&subject_key, &other_issuer)
        .unwrap()
        .der()
        .clone();
    let err = check(cert, &Policy::local_simulated()).unwrap_err();
    assert!(matches!(err, AttestError::CertificateSignature), "{err}");
}

#[test]
fn ca_certificates_are_refused() {
    let k = key(16);
    let mut params = params_for(&k);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let err = check(self_sign(&params, &k).unwrap(), &Policy::local_simulated()).unwrap_err();
    assert!(
        matches!(err, AttestError::CertificateConstraint(_)),
        "{err}"
    );
}

#[test]
fn tampered_certificate_bytes() {
    let k = key(17);
    let der = sim_cert(&k, &claims_for(&k)).to_vec();
    // Flip one byte in the middle of the TBS part: either unparsable or a bad signature.
    let mut bad = der.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x01;
    assert!(parse_certificate(&bad, NOW).is_err());
    let mut longer = der;
    longer.push(0);
    assert!(matches!(
        parse_certificate(&longer, NOW),
        Err(AttestError::CertificateParse(_))
    ));
}

#[test]
fn real_tdx_evidence_through_the_certificate_path() {
    // A real quote binds its own report data, not our key: verification of the evidence must
    // succeed (Intel chain, fixed time) and the binding check must then refuse it.
    let (quote, collateral) = tdx_sample();
    let k = key(18);
    let claims = UserClaims::reference(k.public_key());
    let evidence = Evidence::Tdx(TdxEvidence {
        quote,
        collateral: Some(collateral),
    })
    .encode();
    let cert = issue_certificate(
        &k,
        &evidence,
        &claims.to_bytes(),
        TDX_SAMPLE_TIME - 60,
        TDX_SAMPLE_STALE_TIME + DAY,
    )
    .unwrap();
    let verifier = Arc::new(EvidenceVerifier::default());
    let err = verified_peer(
        std::slice::from_ref(&cert),
        &Policy::production(),
        &verifier,
        TDX_SAMPLE_TIME,
    )
    .unwrap_err();
    assert!(matches!(err, AttestError::ReportDataMismatch), "{err}");
    assert_eq!(
        verifier.cache().stats().entries,
        1,
        "evidence itself verified"
    );
    // After the collateral expires it is refused as stale instead.
    let err = verified_peer(
        &[cert],
        &Policy::production(),
        &verifier,
        TDX_SAMPLE_STALE_TIME,
    )
    .unwrap_err();
    assert!(matches!(err, AttestError::CollateralStale { .. }), "{err}");
}

#[test]
fn real_snp_evidence_through_the_certificate_path() {
    let (report, vcek) = snp_sample();
    let k = key(19);
    let claims = UserClaims::reference(k.public_key());
    let evidence = Evidence::SevSnp(SnpEvidence {
        report,
        vcek_der: vcek,
    })
    .encode();
    let cert = issue_certificate(
        &k,
        &evidence,
        &claims.to_bytes(),
        SNP_SAMPLE_TIME - 60,
        SNP_SAMPLE_TIME + DAY,
    )
    .unwrap();
    let err = verified_peer(
        &[cert],
        &Policy::production(),
        &EvidenceVerifier::default(),
        SNP_SAMPLE_TIME,
    )
    .unwrap_err();
    assert!(matches!(err, AttestError::ReportDataMismatch), "{err}");
}

#[test]
fn claims_extension_must_decode() {
    let k = key(20);
    let garbage = vec![0xee; 40];
    let evidence = sim_evidence(report_data_for(&garbage), None);
    let cert = issue_certificate(&k, &evidence, &garbage, NOW - 1, NOW + DAY).unwrap();
    let err = check(cert, &Policy::local_simulated()).unwrap_err();
    assert!(matches!(err, AttestError::ClaimsLength { .. }), "{err}");
}

#[test]
fn sealing_key_travels_in_verified_claims() {
    let k = key(21);
    let claims = UserClaims::v1(
        k.public_key(),
        ExtendedClaims {
            issued_at: NOW,
            sealing_public_key: Some(Digest32::from([0x5a; 32])),
            gpu_evidence_digest: Some(Digest32::from([0x6b; 32])),
            model_hash: Some(Digest32::from([0x7c; 32])),
        },
    );
    let peer = check(sim_cert(&k, &claims), &Policy::local_simulated()).unwrap();
    let ext = peer.claims.unwrap().extended.unwrap();
    assert_eq!(ext.sealing_public_key, Some(Digest32::from([0x5a; 32])));
    assert_eq!(ext.model_hash, Some(Digest32::from([0x7c; 32])));
}

#[test]
fn errors_survive_the_trip_through_rustls() {
    let err: rustls::Error = AttestError::ReportDataMismatch.into();
    assert!(matches!(
        AttestError::from_rustls(&err),
        Some(AttestError::ReportDataMismatch)
    ));
    let io = std::io::Error::new(std::io::ErrorKind::InvalidData, err);
    assert!(matches!(
        AttestError::find_in(&io),
        Some(AttestError::ReportDataMismatch)
    ));
}

// ----- the reference's SEV-SNP layout: .100 claims, .101 report, .102 VCEK -----

mod snp_layout {
    use super::*;
    use cocoon_attest::ratls::cert::{
        CertificateLayout, OID_SNP_CLAIMS_STR, OID_SNP_REPORT_STR, OID_SNP_VCEK_STR,
        OID_USER_CLAIMS, snp_certificate_params,
    };
    use x509_parser::prelude::{FromDer, X509Certificate};

    fn snp_cert_with(report: &[u8], vcek: &[u8], claims: &[u8]) -> CertificateDer<'static> {
        let params = snp_certificate_params(
            report,
            vcek,
            claims,
            SNP_SAMPLE_TIME - 60,
            SNP_SAMPLE_TIME + DAY,
        )
        .unwrap();
        self_sign(&params, &key(40)).unwrap()
    }

    fn good_claims() -> Vec<u8> {
        UserClaims::reference(key(40).public_key()).to_bytes()
    }

    fn verify_at_sample_time(cert: CertificateDer<'static>) -> AttestError {
        verified_peer(
            &[cert],
            &Policy::production(),
            &EvidenceVerifier::default(),
            SNP_SAMPLE_TIME,
        )
        .unwrap_err()
    }

    #[test]
    fn snp_evidence_is_issued_in_the_reference_layout() {
        let (report, vcek) = snp_sample();
        let k = key(41);
        let claims = UserClaims::reference(k.public_key()).to_bytes();
        let evidence = Evidence::SevSnp(SnpEvidence {
            report: report.clone(),
            vcek_der: vcek.clone(),
        })
        .encode();
        let der = issue_certificate(
            &k,
            &evidence,
            &claims,
            SNP_SAMPLE_TIME - 60,
            SNP_SAMPLE_TIME + DAY,
        )
        .unwrap();

        // Three critical extensions with the raw contents; no TDX pair.
        let (_, x509) = X509Certificate::from_der(&der).unwrap();
        let ext = |oid: &str| {
            x509.extensions()
                .iter()
                .find(|e| e.oid.to_id_string() == oid)
                .map(|e| (e.critical, e.value.to_vec()))
        };
        assert_eq!(ext(OID_SNP_CLAIMS_STR), Some((true, claims.clone())));
        assert_eq!(ext(OID_SNP_REPORT_STR), Some((true, report.clone())));
        assert_eq!(ext(OID_SNP_VCEK_STR), Some((true, vcek.clone())));
        assert_eq!(ext("1.3.6.1.4.1.12345.1"), None);
        assert_eq!(ext("1.3.6.1.4.1.12345.2"), None);

        // Parsed back: the pair is handed on as ordinary SEV-SNP evidence.
        let parsed = parse_certificate(&der, SNP_SAMPLE_TIME).unwrap();
        assert_eq!(parsed.layout, CertificateLayout::SevSnp);
        assert_eq!(parsed.claims.as_deref(), Some(&claims[..]));
        let Evidence::SevSnp(snp) = Evidence::decode(parsed.evidence.as_deref().unwrap()).unwrap()
        else {
            panic!("not SEV-SNP evidence");
        };
        assert_eq!(snp.report, report);
        assert_eq!(snp.vcek_der, vcek);

        // The VCEK from .102 passes ARK -> ASK -> VCEK and the report signature.
        let verified = EvidenceVerifier::default()
            .verify(parsed.evidence.as_deref().unwrap(), SNP_SAMPLE_TIME)
            .unwrap();
        assert_eq!(verified.kind, EvidenceKind::SevSnp);
        // The whole peer check gets past the chain to the binding: the recorded report binds
        // another node's claims (a report for our claims needs the real chip).
        assert!(matches!(
            verify_at_sample_time(der),
            AttestError::ReportDataMismatch
        ));
    }

    #[test]
    fn tdx_and_simulated_evidence_keep_the_tdx_pair() {
        let k = key(42);
        let claims = claims_for(&k);
        let der = sim_cert(&k, &claims);
        let parsed = parse_certificate(&der, NOW).unwrap();
        assert_eq!(parsed.layout, CertificateLayout::Tdx);
        assert!(check(der, &Policy::local_simulated()).is_ok());
    }

    #[test]
    fn a_vcek_that_does_not_chain_is_refused() {
        let (report, mut vcek) = snp_sample();
        // Flip a byte inside the VCEK's signature (its last bytes): still DER, no longer AMD's.
        let last = vcek.len() - 2;
        vcek[last] ^= 0x01;
        let err = verify_at_sample_time(snp_cert_with(&report, &vcek, &good_claims()));
        assert!(
            matches!(
                err,
                AttestError::SnpChain(_) | AttestError::SnpCertificate(_)
            ),
            "{err}"
        );
    }

    #[test]
    fn a_vcek_of_another_chip_is_refused() {
        let (report, _) = snp_sample();
        let other = data("vcek_turin.der");
        let err = verify_at_sample_time(snp_cert_with(&report, &other, &good_claims()));
        assert!(matches!(err, AttestError::SnpVcekMismatch(_)), "{err}");
    }

    #[test]
    fn a_vcek_for_another_tcb_is_refused() {
        let (mut report, vcek) = snp_sample();
        // Reported TCB (offset 0x180): the bootloader SVN no longer matches the VCEK's.
        report[0x180] ^= 0x01;
        let err = verify_at_sample_time(snp_cert_with(&report, &vcek, &good_claims()));
        assert!(matches!(err, AttestError::SnpVcekMismatch(_)), "{err}");
    }

    #[test]
    fn incomplete_or_mixed_layouts_are_refused() {
        let (report, vcek) = snp_sample();
        // No VCEK: not fetched behind the peer's back, refused.
        let mut params =
            snp_certificate_params(&report, &vcek, &good_claims(), NOW - 60, NOW + DAY).unwrap();
        params
            .custom_extensions
            .retain(|e| e.oid_components().last() != Some(102));
        let der = self_sign(&params, &key(43)).unwrap();
        assert!(matches!(
            parse_certificate(&der, NOW).unwrap_err(),
            AttestError::MissingExtension { oid } if oid == OID_SNP_VCEK_STR
        ));

        // The SNP triple plus a TDX claims extension.
        let mut params =
            snp_certificate_params(&report, &vcek, &good_claims(), NOW - 60, NOW + DAY).unwrap();
        let mut extra = CustomExtension::from_oid_content(OID_USER_CLAIMS, vec![0; 72]);
        extra.set_criticality(true);
        params.custom_extensions.push(extra);
        let der = self_sign(&params, &key(44)).unwrap();
        assert!(matches!(
            parse_certificate(&der, NOW).unwrap_err(),
            AttestError::MixedCertificateLayouts
        ));

        // A report that is not 1184 bytes fails as malformed evidence, not a panic.
        let der = self_sign(
            &snp_certificate_params(&report[..100], &vcek, &good_claims(), NOW - 60, NOW + DAY)
                .unwrap(),
            &key(45),
        )
        .unwrap();
        let err = check(der, &Policy::production()).unwrap_err();
        assert!(matches!(err, AttestError::EvidenceMalformed(_)), "{err}");
    }
}

//! A real AMD SEV-SNP report (recorded, Milan) verified through ARK -> ASK -> VCEK at a fixed
//! time, and what happens when a byte of it, its signature or its VCEK changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use cocoon_attest::evidence::{Evidence, SnpEvidence};
use cocoon_attest::measurements::Measurements;
use cocoon_attest::snp::{parse_report, verify_report};
use cocoon_attest::{AttestError, EvidenceKind, EvidenceVerifier, Policy};
use support::*;

#[test]
fn real_report_verifies() {
    let (report, vcek) = snp_sample();
    let verified = verify_report(&report, &vcek, SNP_SAMPLE_TIME).expect("verifies");
    assert_eq!(verified.kind, EvidenceKind::SevSnp);
    let Measurements::SevSnp(m) = &verified.measurements else {
        panic!("not SNP");
    };
    assert_eq!(m.report_version, 2);
    assert!(!m.guest_policy.debug_allowed());
    assert_eq!(m.reported_tcb.bootloader, 3);
    assert_eq!(m.reported_tcb.snp, 8);
    assert_eq!(m.reported_tcb.microcode, 0x73);
    assert_eq!(&verified.report_data[..], &report[0x50..0x90]);
    // valid until the VCEK expires (2030-04-03).
    assert_eq!(verified.valid_until, 1_901_474_623);
    Policy::production()
        .with_snp_measurements([m.measurement])
        .check(&verified, SNP_SAMPLE_TIME)
        .unwrap();
}

#[test]
fn mutated_report_body_fails_the_signature() {
    let (report, vcek) = snp_sample();
    // report data, measurement, host data
    for offset in [0x50usize, 0x95, 0xc0] {
        let mut bad = report.clone();
        bad[offset] ^= 0x01;
        let err = verify_report(&bad, &vcek, SNP_SAMPLE_TIME).unwrap_err();
        assert!(
            matches!(err, AttestError::SnpReportSignature),
            "offset {offset:#x}: {err}"
        );
    }
    // A reserved byte the parser skips is still covered: the signature is over raw bytes.
    let mut bad = report.clone();
    bad[0x1f0] ^= 0x01;
    let err = verify_report(&bad, &vcek, SNP_SAMPLE_TIME).unwrap_err();
    assert!(matches!(err, AttestError::SnpReportSignature), "{err}");
}

#[test]
fn mutated_signature_fails() {
    let (report, vcek) = snp_sample();
    for offset in [0x2a0usize, 0x2e8 + 10] {
        let mut bad = report.clone();
        bad[offset] ^= 0x01;
        let err = verify_report(&bad, &vcek, SNP_SAMPLE_TIME).unwrap_err();
        assert!(matches!(err, AttestError::SnpReportSignature), "{err}");
    }
}

#[test]
fn mutated_vcek_breaks_the_chain() {
    let (report, vcek) = snp_sample();
    // A byte of the ASK's signature at the end of the certificate.
    let mut bad = vcek.clone();
    let last = bad.len() - 10;
    bad[last] ^= 0x01;
    let err = verify_report(&report, &bad, SNP_SAMPLE_TIME).unwrap_err();
    assert!(matches!(err, AttestError::SnpChain(_)), "{err}");
    // A byte of the subject public key inside the signed part.
    let mut bad = vcek.clone();
    bad[300] ^= 0x01;
    let err = verify_report(&report, &bad, SNP_SAMPLE_TIME).unwrap_err();
    assert!(
        matches!(
            err,
            AttestError::SnpChain(_) | AttestError::SnpCertificate(_)
        ),
        "{err}"
    );
}

#[test]
fn wrong_vcek_is_refused() {
    let (report, _) = snp_sample();
    // A genuine AMD VCEK (Turin) that chains to AMD's Turin root but belongs to another chip.
    let other = data("vcek_turin.der");
    let err = verify_report(&report, &other, SNP_SAMPLE_TIME).unwrap_err();
    assert!(matches!(err, AttestError::SnpVcekMismatch(_)), "{err}");
}

#[test]
fn vcek_outside_its_validity_is_refused() {
    let (report, vcek) = snp_sample();
    // 2031-01-01, after the VCEK's notAfter.
    let err = verify_report(&report, &vcek, 1_924_992_000).unwrap_err();
    assert!(matches!(err, AttestError::SnpCertificate(_)), "{err}");
}

#[test]
fn debug_guest_policy_is_refused_by_policy() {
    let (report, vcek) = snp_sample();
    let mut verified = verify_report(&report, &vcek, SNP_SAMPLE_TIME).unwrap();
    let Measurements::SevSnp(m) = &mut verified.measurements else {
        panic!("not SNP");
    };
    // What policy would see for a guest launched with DEBUG: a real report with that bit
    // would be signed by the firmware; here we only exercise the policy rule.
    m.guest_policy.0 |= cocoon_attest::measurements::SnpGuestPolicy::DEBUG;
    let err = Policy::local_simulated()
        .check(&verified, SNP_SAMPLE_TIME)
        .unwrap_err();
    assert!(matches!(err, AttestError::DebugSnpGuest { .. }), "{err}");
}

#[test]
fn envelope_round_trip_through_the_evidence_verifier() {
    let (report, vcek) = snp_sample();
    let bytes = Evidence::SevSnp(SnpEvidence {
        report: report.clone(),
        vcek_der: vcek,
    })
    .encode();
    let verified = EvidenceVerifier::default()
        .verify(&bytes, SNP_SAMPLE_TIME)
        .unwrap();
    assert_eq!(verified.kind, EvidenceKind::SevSnp);
    let parsed = parse_report(&report).unwrap();
    assert_eq!(
        verified.measurements,
        Measurements::SevSnp(parsed),
        "verification and plain parsing agree"
    );
}

#[test]
fn snp_policy_rules() {
    let (report, vcek) = snp_sample();
    let verified = verify_report(&report, &vcek, SNP_SAMPLE_TIME).unwrap();
    let err = Policy::production()
        .with_snp_measurements([cocoon_attest::Digest48::ZERO])
        .check(&verified, SNP_SAMPLE_TIME)
        .unwrap_err();
    assert!(
        matches!(err, AttestError::SnpMeasurementNotAllowed { .. }),
        "{err}"
    );
    let mut policy = Policy::production();
    policy.snp.min_tcb = Some(cocoon_attest::measurements::SnpTcb {
        snp: 9,
        ..Default::default()
    });
    let err = policy.check(&verified, SNP_SAMPLE_TIME).unwrap_err();
    assert!(matches!(err, AttestError::TcbRefused(_)), "{err}");
    let mut policy = Policy::production();
    policy.accept_sev_snp = false;
    let err = policy.check(&verified, SNP_SAMPLE_TIME).unwrap_err();
    assert!(
        matches!(err, AttestError::EvidenceKindRefused { .. }),
        "{err}"
    );
}

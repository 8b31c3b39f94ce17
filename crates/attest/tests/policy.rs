//! Policy rules on measurements extracted from quotes: real quotes for the allow-lists, mock
//! quotes (test key, test-only verification path) where chosen fields are needed, such as the
//! debug bit. Also policies built from configuration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use cocoon_attest::digest::{Digest, Digest48, ImageHash};
use cocoon_attest::evidence::SimulatedEvidence;
use cocoon_attest::measurements::Measurements;
use cocoon_attest::policy::{RtmrSet, TdxTcbStatus};
use cocoon_attest::tdx::{INTEL_ROOT_KEY_ID, verify_quote};
use cocoon_attest::{
    AttestError, EvidenceKind, ExtendedClaims, Policy, UserClaims, VerifiedEvidence,
};
use support::mock_quote::{MOCK_ROOT_KEY_ID, MockAttestationKey, MockTdReport, verify_mock_quote};
use support::*;

fn real() -> VerifiedEvidence {
    let (quote, collateral) = tdx_sample();
    verify_quote(&quote, &collateral, TDX_SAMPLE_TIME).unwrap()
}

fn tdx(v: &VerifiedEvidence) -> &cocoon_attest::TdxMeasurements {
    match &v.measurements {
        Measurements::Tdx(m) => m,
        other => panic!("{other:?}"),
    }
}

fn mock(report: &MockTdReport) -> VerifiedEvidence {
    let key = MockAttestationKey::generate();
    verify_mock_quote(&key.quote(report), &key).unwrap()
}

/// Local policy that takes the mock path's made-up root.
fn mock_policy() -> Policy {
    let mut p = Policy::production();
    p.tdx.allowed_root_key_ids = Some(vec![MOCK_ROOT_KEY_ID]);
    p
}

#[test]
fn mrtd_allow_list_on_a_real_quote() {
    let v = real();
    let mrtd = tdx(&v).mrtd;
    Policy::production()
        .with_mrtds([mrtd])
        .check(&v, TDX_SAMPLE_TIME)
        .unwrap();
    let err = Policy::production()
        .with_mrtds([Digest48::ZERO])
        .check(&v, TDX_SAMPLE_TIME)
        .unwrap_err();
    assert!(matches!(err, AttestError::MrtdNotAllowed { .. }), "{err}");
}

#[test]
fn rtmr_allow_list_on_a_real_quote() {
    let v = real();
    let rtmrs = tdx(&v).rtmrs;
    Policy::production()
        .with_rtmr_sets([RtmrSet::exact(&rtmrs)])
        .check(&v, TDX_SAMPLE_TIME)
        .unwrap();
    // RTMR3 left open.
    let mut open3 = RtmrSet::exact(&rtmrs);
    open3.rtmr3 = None;
    Policy::production()
        .with_rtmr_sets([open3])
        .check(&v, TDX_SAMPLE_TIME)
        .unwrap();
    let mut wrong = RtmrSet::exact(&rtmrs);
    wrong.rtmr1 = Some(Digest([0xab; 48]));
    let err = Policy::production()
        .with_rtmr_sets([wrong])
        .check(&v, TDX_SAMPLE_TIME)
        .unwrap_err();
    assert!(matches!(err, AttestError::RtmrNotAllowed), "{err}");
}

#[test]
fn image_hash_allow_list_on_a_real_quote() {
    let v = real();
    let image_hash = v.measurements.image_hash();
    Policy::production()
        .with_image_hashes([image_hash])
        .check(&v, TDX_SAMPLE_TIME)
        .unwrap();
    let err = Policy::production()
        .with_image_hashes([ImageHash::default()])
        .check(&v, TDX_SAMPLE_TIME)
        .unwrap_err();
    assert!(
        matches!(err, AttestError::ImageHashNotAllowed { .. }),
        "{err}"
    );
}

#[test]
fn registry_allow_list_narrows_a_configured_one() {
    let v = real();
    let image_hash = v.measurements.image_hash();
    let other = ImageHash::default();
    // The registry alone decides when the configuration lists no image hash.
    Policy::production()
        .restricted_to_image_hashes([image_hash])
        .check(&v, TDX_SAMPLE_TIME)
        .unwrap();
    // An empty registry list admits nobody.
    let err = Policy::production()
        .restricted_to_image_hashes([])
        .check(&v, TDX_SAMPLE_TIME)
        .unwrap_err();
    assert!(
        matches!(err, AttestError::ImageHashNotAllowed { .. }),
        "{err}"
    );
    // A hash must be in both lists: the registry cannot widen a policy file.
    let err = Policy::production()
        .with_image_hashes([other])
        .restricted_to_image_hashes([image_hash, other])
        .check(&v, TDX_SAMPLE_TIME)
        .unwrap_err();
    assert!(
        matches!(err, AttestError::ImageHashNotAllowed { .. }),
        "{err}"
    );
    Policy::production()
        .with_image_hashes([image_hash, other])
        .restricted_to_image_hashes([image_hash])
        .check(&v, TDX_SAMPLE_TIME)
        .unwrap();
}

#[test]
fn a_policy_file_without_evidence_cannot_escape_the_registry() {
    // `require_evidence = false` in a policy file admits unattested peers...
    let mut file = Policy::production();
    file.require_evidence = false;
    file.check_kind(EvidenceKind::Unattested).unwrap();
    // ...but not once the registry narrowed it: its image hashes need evidence to be checked.
    let narrowed = file.restricted_to_image_hashes([ImageHash::default()]);
    let err = narrowed.check_kind(EvidenceKind::Unattested).unwrap_err();
    assert!(matches!(err, AttestError::EvidenceMissing), "{err}");
    let err = Policy::any()
        .restricted_to_image_hashes([ImageHash::default()])
        .check_kind(EvidenceKind::Unattested)
        .unwrap_err();
    assert!(matches!(err, AttestError::EvidenceMissing), "{err}");
}

#[test]
fn production_bounds_the_age_of_claims() {
    use cocoon_attest::policy::PRODUCTION_MAX_CLAIMS_AGE_SECS;
    let p = Policy::production();
    assert_eq!(p.max_claims_age_secs, Some(PRODUCTION_MAX_CLAIMS_AGE_SECS));
    let claims = UserClaims::v1([0; 32], ExtendedClaims::issued_at(10_000));
    p.check_claims(&claims, 10_000 + PRODUCTION_MAX_CLAIMS_AGE_SECS)
        .unwrap();
    // Evidence from more than a day ago, wrapped in a newer self-issued certificate.
    let err = p
        .check_claims(&claims, 10_001 + PRODUCTION_MAX_CLAIMS_AGE_SECS)
        .unwrap_err();
    assert!(matches!(err, AttestError::ClaimsAge { .. }), "{err}");
    // Local mode keeps the same bound.
    assert_eq!(
        Policy::local_simulated().max_claims_age_secs,
        Some(PRODUCTION_MAX_CLAIMS_AGE_SECS)
    );
}

#[test]
fn intel_root_key_is_pinned() {
    let v = real();
    let mut p = Policy::production();
    p.tdx.allowed_root_key_ids = Some(vec![Digest([1; 48])]);
    let err = p.check(&v, TDX_SAMPLE_TIME).unwrap_err();
    assert!(
        matches!(err, AttestError::RootKeyIdNotAllowed { .. }),
        "{err}"
    );
    // The mock path's root is not Intel's: production refuses mock quotes.
    let err = Policy::production()
        .check(&mock(&MockTdReport::default()), 0)
        .unwrap_err();
    assert!(
        matches!(err, AttestError::RootKeyIdNotAllowed { .. }),
        "{err}"
    );
    assert_eq!(
        Policy::production().tdx.allowed_root_key_ids,
        Some(vec![INTEL_ROOT_KEY_ID])
    );
}

#[test]
fn tcb_status_and_svn_floor() {
    let v = real();
    let mut p = Policy::production();
    p.tdx.allowed_tcb_statuses = Some(vec![TdxTcbStatus::OutOfDate]);
    let err = p.check(&v, TDX_SAMPLE_TIME).unwrap_err();
    assert!(matches!(err, AttestError::TcbRefused(_)), "{err}");
    let mut p = Policy::production();
    p.tdx.min_tee_tcb_svn = Some(Digest([0xff; 16]));
    let err = p.check(&v, TDX_SAMPLE_TIME).unwrap_err();
    assert!(matches!(err, AttestError::TcbRefused(_)), "{err}");
    let mut p = Policy::production();
    p.tdx.min_tee_tcb_svn = Some(tdx(&v).tee_tcb_svn);
    p.check(&v, TDX_SAMPLE_TIME).unwrap();
}

#[test]
fn verdicts_from_collateral_older_than_the_minimum_tcb_evaluation_are_refused() {
    use cocoon_attest::policy::PRODUCTION_MIN_TCB_EVALUATION_DATA_NUMBER;
    let v = real();
    let number = tdx(&v).tcb.as_ref().unwrap().evaluation_data_number;
    assert!(
        number >= PRODUCTION_MIN_TCB_EVALUATION_DATA_NUMBER,
        "{number}"
    );
    Policy::production().check(&v, TDX_SAMPLE_TIME).unwrap();
    let mut p = Policy::production();
    p.tdx.min_tcb_evaluation_data_number = Some(number + 1);
    let err = p.check(&v, TDX_SAMPLE_TIME).unwrap_err();
    assert!(
        matches!(&err, AttestError::TcbRefused(m) if m.contains("evaluation data number")),
        "{err}"
    );
}

#[test]
fn debug_td_is_refused_even_when_everything_else_matches() {
    let report = MockTdReport {
        td_attributes: ((1u64 << 28) | 1).to_le_bytes(),
        ..MockTdReport::default()
    };
    let v = mock(&report);
    assert!(v.measurements.is_debug());
    let image_hash = v.measurements.image_hash();
    let err = mock_policy()
        .with_image_hashes([image_hash])
        .check(&v, 0)
        .unwrap_err();
    assert!(matches!(err, AttestError::DebugTd { .. }), "{err}");
    // Off-TD profiling bits count as debug too.
    let report = MockTdReport {
        td_attributes: ((1u64 << 28) | 0x10).to_le_bytes(),
        ..MockTdReport::default()
    };
    let err = mock_policy().check(&mock(&report), 0).unwrap_err();
    assert!(matches!(err, AttestError::DebugTd { .. }), "{err}");
}

#[test]
fn mock_quotes_carry_chosen_measurements() {
    let mut report = MockTdReport {
        mr_td: [0x42; 48],
        report_data: [7; 64],
        ..MockTdReport::default()
    };
    report.rtmr[2] = [0x99; 48];
    let v = mock(&report);
    assert_eq!(tdx(&v).mrtd, Digest([0x42; 48]));
    assert_eq!(tdx(&v).rtmrs[2], Digest([0x99; 48]));
    assert_eq!(v.report_data, [7; 64]);
    mock_policy()
        .with_mrtds([Digest([0x42; 48])])
        .check(&v, 0)
        .unwrap();
    let err = mock_policy()
        .with_mrtds([Digest([0x43; 48])])
        .check(&v, 0)
        .unwrap_err();
    assert!(matches!(err, AttestError::MrtdNotAllowed { .. }), "{err}");
}

#[test]
fn mock_quote_signature_is_checked() {
    let key = MockAttestationKey::generate();
    let mut quote = key.quote(&MockTdReport::default());
    quote[48 + 200] ^= 1;
    let err = verify_mock_quote(&quote, &key).unwrap_err();
    assert!(matches!(err, AttestError::TdxQuoteSignature), "{err}");
}

fn simulated() -> VerifiedEvidence {
    VerifiedEvidence {
        kind: EvidenceKind::Simulated,
        measurements: Measurements::Tdx(SimulatedEvidence::new([0; 64]).measurements),
        report_data: [0; 64],
        valid_until: u64::MAX,
    }
}

#[test]
fn production_refuses_simulated_local_accepts_it() {
    let err = Policy::production().check(&simulated(), 0).unwrap_err();
    assert!(
        matches!(err, AttestError::SimulatedEvidenceRefused),
        "{err}"
    );
    Policy::local_simulated().check(&simulated(), 0).unwrap();
    // Allow-lists still apply to simulated measurements.
    let err = Policy::local_simulated()
        .with_mrtds([Digest48::ZERO])
        .check(&simulated(), 0)
        .unwrap_err();
    assert!(matches!(err, AttestError::MrtdNotAllowed { .. }), "{err}");
}

#[test]
fn results_past_their_validity_are_stale() {
    let mut v = simulated();
    v.valid_until = 100;
    Policy::local_simulated().check(&v, 100).unwrap();
    let err = Policy::local_simulated().check(&v, 101).unwrap_err();
    assert!(matches!(err, AttestError::CollateralStale { .. }), "{err}");
}

#[test]
fn claims_age_rule() {
    let mut p = Policy::local_simulated();
    p.max_claims_age_secs = Some(3600);
    let claims = |t| UserClaims::v1([0; 32], ExtendedClaims::issued_at(t));
    p.check_claims(&claims(10_000), 10_000 + 3600).unwrap();
    assert!(matches!(
        p.check_claims(&claims(10_000), 10_000 + 3601),
        Err(AttestError::ClaimsAge { .. })
    ));
    assert!(matches!(
        p.check_claims(&claims(20_000), 10_000),
        Err(AttestError::ClaimsAge { .. })
    ));
    p.check_claims(&UserClaims::reference([0; 32]), 10_000)
        .unwrap();
}

#[test]
fn policies_from_config() {
    let mrtd = "11".repeat(48);
    let toml_text = format!(
        r#"
accept_simulated = false
allowed_image_hashes = ["{}"]
max_claims_age_secs = 7200

[tdx]
allowed_mrtd = ["{mrtd}"]
allowed_tcb_statuses = ["UpToDate", "SWHardeningNeeded"]

[[tdx.allowed_rtmrs]]
rtmr0 = "{}"

[snp.min_tcb]
bootloader = 3
tee = 0
snp = 8
microcode = 115
"#,
        "ab".repeat(32),
        "22".repeat(48),
    );
    let p: Policy = toml::from_str(&toml_text).unwrap();
    assert!(p.require_evidence, "missing fields take production values");
    assert!(!p.accept_simulated);
    assert_eq!(p.tdx.allowed_mrtd, Some(vec![Digest([0x11; 48])]));
    assert_eq!(p.tdx.allowed_rtmrs.as_ref().unwrap()[0].rtmr1, None);
    assert_eq!(p.snp.min_tcb.unwrap().microcode, 115);
    assert_eq!(p.max_claims_age_secs, Some(7200));
    // Production rules not mentioned in a [tdx] table stay in place.
    assert_eq!(p.tdx.allowed_root_key_ids, Some(vec![INTEL_ROOT_KEY_ID]));

    // JSON round trip.
    let json = serde_json::to_string(&Policy::production()).unwrap();
    assert_eq!(Policy::from_json(&json).unwrap(), Policy::production());
    assert_eq!(
        Policy::from_json("{}").unwrap(),
        Policy::production(),
        "empty config is production"
    );

    // Typos and bad values are refused, not ignored.
    assert!(toml::from_str::<Policy>("acept_simulated = true").is_err());
    assert!(toml::from_str::<Policy>("[tdx]\nallowed_mrtd = [\"abcd\"]").is_err());
    assert!(toml::from_str::<Policy>("[tdx]\nallowed_tcb_statuses = [\"Fine\"]").is_err());
}

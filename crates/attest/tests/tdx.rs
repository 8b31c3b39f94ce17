//! Real Intel TDX quotes (recorded, with their DCAP collateral) verified at fixed times, and
//! what happens when a byte of them changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use cocoon_attest::evidence::{Evidence, TdxEvidence};
use cocoon_attest::measurements::Measurements;
use cocoon_attest::tdx::{
    CollateralStore, INTEL_ROOT_KEY_ID, UnverifiedTdxQuote, check_collateral_window, verify_quote,
};
use cocoon_attest::{AttestError, EvidenceKind, EvidenceVerifier, Policy};
use support::*;

fn tdx_measurements(m: &Measurements) -> &cocoon_attest::TdxMeasurements {
    match m {
        Measurements::Tdx(m) => m,
        other => panic!("expected TDX measurements, got {other:?}"),
    }
}

#[test]
fn real_quote_verifies_at_a_fixed_time() {
    let (quote, collateral) = tdx_sample();
    let verified = verify_quote(&quote, &collateral, TDX_SAMPLE_TIME).expect("verifies");
    assert_eq!(verified.kind, EvidenceKind::Tdx);
    let m = tdx_measurements(&verified.measurements);
    let tcb = m.tcb.as_ref().expect("TCB verdict");
    assert_eq!(
        tcb.root_key_id, INTEL_ROOT_KEY_ID,
        "Intel's root anchors it"
    );
    assert_eq!(hex::encode(tcb.fmspc.as_bytes()), "b0c06f000000");
    assert!(tcb.collateral_expires_at > TDX_SAMPLE_TIME);
    assert_eq!(verified.valid_until, tcb.collateral_expires_at);

    // The measurements DCAP reports are the ones in the quote body.
    let parsed = UnverifiedTdxQuote::parse(&quote).unwrap();
    let unverified = parsed.measurements();
    assert_eq!(unverified.mrtd, m.mrtd);
    assert_eq!(unverified.rtmrs, m.rtmrs);
    assert_eq!(parsed.report_data(), verified.report_data);
    assert!(!m.td_attributes.is_debug());

    // The image hash is SHA-256 over the 448-byte layout.
    let mut preimage = Vec::new();
    for r in [&m.mrtd, &m.mrconfigid, &m.mrowner, &m.mrownerconfig] {
        preimage.extend_from_slice(r.as_bytes());
    }
    for r in &m.rtmrs {
        preimage.extend_from_slice(r.as_bytes());
    }
    preimage.extend_from_slice(&[0u8; 64]);
    use sha2::Digest as _;
    let expected: [u8; 32] = sha2::Sha256::digest(&preimage).into();
    assert_eq!(verified.measurements.image_hash().as_bytes(), &expected);
}

#[test]
fn production_policy_accepts_the_real_quote() {
    let (quote, collateral) = tdx_sample();
    let verified = verify_quote(&quote, &collateral, TDX_SAMPLE_TIME).unwrap();
    let status = &tdx_measurements(&verified.measurements)
        .tcb
        .as_ref()
        .unwrap()
        .status;
    let result = Policy::production().check(&verified, TDX_SAMPLE_TIME);
    // The sample platform's status decides; say which if this ever changes.
    assert!(result.is_ok(), "status {status}: {result:?}");
    let image_hash = verified.measurements.image_hash();
    Policy::production()
        .with_image_hashes([image_hash])
        .check(&verified, TDX_SAMPLE_TIME)
        .unwrap();
}

#[test]
fn mutated_signed_body_is_a_bad_quote_signature() {
    let (quote, collateral) = tdx_sample();
    // Offsets inside the header (10) and the TD report: MRTD (48 + 136) and report data
    // (48 + 520).
    for offset in [10usize, 48 + 136, 48 + 520] {
        let mut bad = quote.clone();
        bad[offset] ^= 0x01;
        let err = verify_quote(&bad, &collateral, TDX_SAMPLE_TIME).unwrap_err();
        assert!(
            matches!(err, AttestError::TdxQuoteSignature),
            "offset {offset}: {err}"
        );
    }
}

#[test]
fn mutated_signature_is_a_bad_quote_signature() {
    let (quote, collateral) = tdx_sample();
    let signed = UnverifiedTdxQuote::parse(&quote)
        .unwrap()
        .signed_bytes()
        .len();
    let mut bad = quote.clone();
    bad[signed + 4 + 5] ^= 0x80; // inside the ECDSA signature (after the auth-data length)
    let err = verify_quote(&bad, &collateral, TDX_SAMPLE_TIME).unwrap_err();
    assert!(matches!(err, AttestError::TdxQuoteSignature), "{err}");
}

#[test]
fn mutated_attestation_key_or_qe_report_is_rejected_by_dcap() {
    let (quote, collateral) = tdx_sample();
    let signed = UnverifiedTdxQuote::parse(&quote)
        .unwrap()
        .signed_bytes()
        .len();
    let auth = signed + 4;
    // Changing the attestation key breaks the quote signature first.
    let mut bad = quote.clone();
    bad[auth + 64 + 3] ^= 0x01;
    assert!(verify_quote(&bad, &collateral, TDX_SAMPLE_TIME).is_err());
    // Changing the QE report (signed by the PCK key, not by the attestation key) passes our
    // signature pre-check and is caught by DCAP.
    let qe_report = auth + 64 + 64 + 2 + 4;
    let mut bad = quote.clone();
    bad[qe_report + 100] ^= 0x01;
    let err = verify_quote(&bad, &collateral, TDX_SAMPLE_TIME).unwrap_err();
    assert!(matches!(err, AttestError::TdxQuoteRejected(_)), "{err}");
}

#[test]
fn mutated_certificates_in_the_quote_are_rejected() {
    let (quote, collateral) = tdx_sample();
    // The PEM PCK chain sits at the end of the quote; flip a base64 character in the middle
    // of the leaf certificate.
    let text = String::from_utf8_lossy(&quote).to_string();
    let begin = text.find("-----BEGIN CERTIFICATE-----").expect("PEM chain") + 200;
    let mut bad = quote.clone();
    bad[begin] = if bad[begin] == b'A' { b'B' } else { b'A' };
    let err = verify_quote(&bad, &collateral, TDX_SAMPLE_TIME).unwrap_err();
    assert!(matches!(err, AttestError::TdxQuoteRejected(_)), "{err}");
}

#[test]
fn mutated_collateral_is_rejected() {
    let (quote, collateral) = tdx_sample();
    let mut bad = collateral.clone();
    bad.tcb_info_signature[10] ^= 0x01;
    let err = verify_quote(&quote, &bad, TDX_SAMPLE_TIME).unwrap_err();
    assert!(matches!(err, AttestError::TdxQuoteRejected(_)), "{err}");
    let mut bad = collateral;
    bad.tcb_info = bad.tcb_info.replacen("UpToDate", "OutOfDate", 1);
    let err = verify_quote(&quote, &bad, TDX_SAMPLE_TIME).unwrap_err();
    assert!(matches!(err, AttestError::TdxQuoteRejected(_)), "{err}");
}

#[test]
fn stale_collateral_is_refused_as_stale() {
    let (quote, collateral) = tdx_sample();
    let err = verify_quote(&quote, &collateral, TDX_SAMPLE_STALE_TIME).unwrap_err();
    assert!(matches!(err, AttestError::CollateralStale { .. }), "{err}");
    let err = check_collateral_window(&collateral, 1_700_000_000).unwrap_err();
    assert!(
        matches!(err, AttestError::CollateralNotYetValid { .. }),
        "{err}"
    );
    let window = check_collateral_window(&collateral, TDX_SAMPLE_TIME).unwrap();
    assert!(window.earliest_next_update > TDX_SAMPLE_TIME);
}

#[test]
fn sgx_quotes_are_not_td_quotes() {
    let quote = data("sgx_quote");
    let collateral = collateral("sgx_quote_collateral.json");
    let err = verify_quote(&quote, &collateral, TDX_SAMPLE_TIME).unwrap_err();
    assert!(matches!(err, AttestError::TdxQuoteMalformed(_)), "{err}");
}

#[test]
fn td15_extended_quote_verifies() {
    let quote = data("tdx_quote_td15ex");
    let collateral = collateral("tdx_quote_td15ex_collateral.json");
    let verified = verify_quote(&quote, &collateral, TDX_TD15EX_TIME).expect("verifies");
    assert_eq!(UnverifiedTdxQuote::parse(&quote).unwrap().version(), 5);
    assert_eq!(
        verified.report_data,
        UnverifiedTdxQuote::parse(&quote).unwrap().report_data()
    );
}

#[test]
fn platform_below_every_tcb_level_is_refused() {
    // This recorded platform's CPU SVN is below every level of its (genuine) TCB info:
    // DCAP cannot place it, so it is refused before any policy is consulted.
    let quote = data("tdx_quote_outdated");
    let collateral = collateral("tdx_quote_outdated_collateral.json");
    assert!(check_collateral_window(&collateral, TDX_OUTDATED_TIME).is_ok());
    let err = verify_quote(&quote, &collateral, TDX_OUTDATED_TIME).unwrap_err();
    match err {
        AttestError::TdxQuoteRejected(reason) => assert!(reason.contains("TCB level"), "{reason}"),
        other => panic!("{other}"),
    }
}

#[test]
fn evidence_verifier_uses_embedded_or_provided_collateral() {
    let (quote, collateral) = tdx_sample();
    // Raw quote, no provider: collateral missing.
    let bare = EvidenceVerifier::default();
    let err = bare.verify(&quote, TDX_SAMPLE_TIME).unwrap_err();
    assert!(
        matches!(err, AttestError::CollateralMissing { .. }),
        "{err}"
    );

    // Raw quote with a provider keyed by FMSPC.
    let store = Arc::new(CollateralStore::new());
    let fmspc = store
        .insert_json(&data("tdx_quote_collateral.json"))
        .unwrap();
    assert_eq!(hex::encode(fmspc), "b0c06f000000");
    let with_store = EvidenceVerifier::new(store);
    with_store.verify(&quote, TDX_SAMPLE_TIME).unwrap();

    // Envelope carrying the collateral: no provider needed.
    let envelope = Evidence::Tdx(TdxEvidence {
        quote: quote.clone(),
        collateral: Some(collateral),
    })
    .encode();
    let a = bare.verify(&envelope, TDX_SAMPLE_TIME).unwrap();
    let b = bare.verify(&envelope, TDX_SAMPLE_TIME + 10).unwrap();
    assert!(Arc::ptr_eq(&a, &b), "second verification is a cache hit");
    // The cached result expires with the collateral.
    let err = bare.verify(&envelope, TDX_SAMPLE_STALE_TIME).unwrap_err();
    assert!(matches!(err, AttestError::CollateralStale { .. }), "{err}");
}

/// The collateral with the evaluation data numbers of its TCB info and QE identity moved by
/// `delta` (which breaks their signatures: verifying with it fails).
fn with_evaluation_number(
    collateral: &dcap_qvl::QuoteCollateralV3,
    delta: i64,
) -> dcap_qvl::QuoteCollateralV3 {
    let shift = |json: &str| {
        let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
        let n = v["tcbEvaluationDataNumber"].as_i64().unwrap();
        v["tcbEvaluationDataNumber"] = serde_json::json!(n + delta);
        v.to_string()
    };
    let mut c = collateral.clone();
    c.tcb_info = shift(&c.tcb_info);
    c.qe_identity = shift(&c.qe_identity);
    c
}

#[test]
fn the_verifiers_own_collateral_wins_over_an_older_one_from_the_peer() {
    use cocoon_attest::tdx::collateral_freshness;
    let (quote, collateral) = tdx_sample();
    let store = Arc::new(CollateralStore::new());
    store
        .insert_json(&data("tdx_quote_collateral.json"))
        .unwrap();
    let own = collateral_freshness(&collateral).unwrap();
    let older = with_evaluation_number(&collateral, -1);
    let newer = with_evaluation_number(&collateral, 1);
    assert!(collateral_freshness(&older).unwrap() < own);
    assert!(collateral_freshness(&newer).unwrap() > own);
    let envelope = |c: dcap_qvl::QuoteCollateralV3| {
        Evidence::Tdx(TdxEvidence {
            quote: quote.clone(),
            collateral: Some(c),
        })
        .encode()
    };
    // The peer supplies older (here also unsigned) collateral: the verifier's own is used.
    EvidenceVerifier::new(store.clone())
        .verify(&envelope(older.clone()), TDX_SAMPLE_TIME)
        .unwrap();
    // Without collateral of its own the verifier has only the peer's, which fails here.
    assert!(
        EvidenceVerifier::default()
            .verify(&envelope(older), TDX_SAMPLE_TIME)
            .is_err()
    );
    // Collateral at least as fresh as the verifier's is the peer's to choose: a newer one is
    // used (and this tampered one then fails its signature).
    assert!(
        EvidenceVerifier::new(store)
            .verify(&envelope(newer), TDX_SAMPLE_TIME)
            .is_err()
    );
}

#[test]
fn truncated_and_extended_quotes_are_malformed() {
    let (quote, _) = tdx_sample();
    let signed = UnverifiedTdxQuote::parse(&quote)
        .unwrap()
        .signed_bytes()
        .len();
    for len in [0, 47, 48, 600, signed + 4 + 100] {
        assert!(UnverifiedTdxQuote::parse(&quote[..len]).is_err(), "{len}");
    }
    // Zero padding after the quote is what quote generators produce; anything else is not.
    let mut padded = quote.clone();
    padded.extend_from_slice(&[0; 16]);
    UnverifiedTdxQuote::parse(&padded).unwrap();
    let mut longer = quote.clone();
    longer.push(1);
    assert!(matches!(
        UnverifiedTdxQuote::parse(&longer),
        Err(AttestError::TdxQuoteMalformed(_))
    ));
}

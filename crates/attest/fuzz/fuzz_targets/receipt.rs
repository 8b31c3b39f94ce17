//! Fuzzes receipt decoding and checking: any bytes either fail to parse with a typed error or
//! parse into a receipt that encodes back to exactly the same bytes (decoding is strict: no
//! second encoding of one receipt), and whose verification and request check never panic.
#![no_main]

use std::sync::LazyLock;

use cocoon_attest::receipt::{Receipt, check_request};
use cocoon_attest::{EvidenceVerifier, Policy};
use libfuzzer_sys::fuzz_target;

static VERIFIER: LazyLock<EvidenceVerifier> = LazyLock::new(EvidenceVerifier::default);

fuzz_target!(|data: &[u8]| {
    let Ok(receipt) = Receipt::from_bytes(data) else {
        return;
    };
    assert_eq!(receipt.to_bytes(), data, "a receipt has one encoding");
    let _ = check_request(&receipt.claims, &[0; 32], None);
    let _ = check_request(&receipt.claims, &receipt.claims.client_request_id, None);
    let _ = receipt.verify(&Policy::local_simulated(), &VERIFIER);
});

//! Fuzzes RA-TLS certificate parsing and the whole peer verification (structure, evidence,
//! binding, policy) with arbitrary certificate bytes.
#![no_main]

use std::sync::LazyLock;

use cocoon_attest::ratls::{parse_certificate, verified_peer};
use cocoon_attest::{EvidenceVerifier, Policy};
use libfuzzer_sys::fuzz_target;
use rustls_pki_types::CertificateDer;

/// Inside the validity of the seed certificates and of the recorded collateral.
const NOW: u64 = 1_750_377_600;

static VERIFIER: LazyLock<EvidenceVerifier> = LazyLock::new(EvidenceVerifier::default);

fuzz_target!(|data: &[u8]| {
    let _ = parse_certificate(data, NOW);
    let certs = [CertificateDer::from(data.to_vec())];
    let _ = verified_peer(&certs, &Policy::local_simulated(), &VERIFIER, NOW);
    let _ = verified_peer(&certs, &Policy::any(), &VERIFIER, NOW);
});

//! Fuzzes SEV-SNP report parsing and verification with the recorded Milan VCEK.
#![no_main]

use cocoon_attest::snp::{parse_report, verify_report};
use libfuzzer_sys::fuzz_target;

const SAMPLE_TIME: u64 = 1_750_377_600;
const VCEK: &[u8] = include_bytes!("../../tests/data/vcek_milan.der");

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = parse_report(data) {
        let _ = m.image_hash();
        let _ = verify_report(data, VCEK, SAMPLE_TIME);
    }
    // The VCEK side: arbitrary certificate bytes with a fixed report.
    if data.len() > 64 {
        let _ = verify_report(&[0u8; 1184], data, SAMPLE_TIME);
    }
});

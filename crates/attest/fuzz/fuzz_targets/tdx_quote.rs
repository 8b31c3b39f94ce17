//! Fuzzes TDX quote parsing, the signature pre-check and full DCAP verification against the
//! recorded sample collateral.
#![no_main]

use std::sync::LazyLock;

use cocoon_attest::QuoteCollateralV3;
use cocoon_attest::tdx::{UnverifiedTdxQuote, verify_quote};
use libfuzzer_sys::fuzz_target;

const SAMPLE_TIME: u64 = 1_750_377_600;

static COLLATERAL: LazyLock<QuoteCollateralV3> = LazyLock::new(|| {
    serde_json::from_slice(include_bytes!("../../tests/data/tdx_quote_collateral.json"))
        .unwrap_or_else(|e| panic!("sample collateral: {e}"))
});

fuzz_target!(|data: &[u8]| {
    if let Ok(quote) = UnverifiedTdxQuote::parse(data) {
        let _ = quote.measurements().image_hash();
        let _ = quote.report_data();
        let _ = quote.fmspc();
        if quote.verify_signature().is_ok() {
            let _ = verify_quote(data, &COLLATERAL, SAMPLE_TIME);
        }
    }
});

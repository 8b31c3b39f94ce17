//! Shared helpers for the integration tests: the recorded evidence in `tests/data`, the fixed
//! times it is valid at, and a mock TDX quote builder signed with a test key.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

pub mod mock_quote;

use cocoon_attest::QuoteCollateralV3;

/// 2025-06-20T00:00:00Z: inside the validity of `tdx_quote_collateral.json` and of the Milan
/// VCEK.
pub const TDX_SAMPLE_TIME: u64 = 1_750_377_600;
/// 2025-07-20T00:00:00Z: after the PCK CRL / TCB info of the sample collateral expired.
pub const TDX_SAMPLE_STALE_TIME: u64 = 1_752_969_600;
/// 2026-02-20T00:00:00Z: inside the validity of `tdx_quote_outdated_collateral.json`.
pub const TDX_OUTDATED_TIME: u64 = 1_771_545_600;
/// 2026-10-10T00:00:00Z: inside the validity of `tdx_quote_td15ex_collateral.json`.
pub const TDX_TD15EX_TIME: u64 = 1_791_590_400;
/// 2025-06-20T00:00:00Z: the SEV-SNP sample is checked at the same time.
pub const SNP_SAMPLE_TIME: u64 = TDX_SAMPLE_TIME;

pub fn data(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn collateral(name: &str) -> QuoteCollateralV3 {
    serde_json::from_slice(&data(name)).expect("collateral JSON")
}

pub fn tdx_sample() -> (Vec<u8>, QuoteCollateralV3) {
    (data("tdx_quote"), collateral("tdx_quote_collateral.json"))
}

pub fn snp_sample() -> (Vec<u8>, Vec<u8>) {
    let hex_text = String::from_utf8(data("report_milan.hex")).unwrap();
    (
        hex::decode(hex_text.trim()).unwrap(),
        data("vcek_milan.der"),
    )
}

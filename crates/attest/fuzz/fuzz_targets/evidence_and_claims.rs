//! Fuzzes the evidence container and user-claims decoders; whatever decodes must re-encode to
//! the same bytes (claims) or decode again to the same value (evidence).
#![no_main]

use cocoon_attest::{Evidence, UserClaims};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(claims) = UserClaims::from_bytes(data) {
        assert_eq!(claims.to_bytes(), data, "claims encoding is canonical");
    }
    if let Ok(evidence) = Evidence::decode(data) {
        assert_eq!(
            Evidence::peek_kind(data).ok(),
            Some(evidence.kind()),
            "peeking agrees with decoding"
        );
        let again = Evidence::decode(&evidence.encode());
        assert_eq!(again.ok(), Some(evidence), "evidence re-decodes to itself");
    }
});

//! Fuzzes the TDX key-helper codec: requests (what a helper parses) and responses (what a TD
//! parses and opens). The first byte picks which.

#![no_main]

use cocoon_seal::key_source::tdx_helper::{KeyRequest, KeyResponse};
use cocoon_seal::{SealingKeyPair, SealingPublicKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    if selector & 1 == 0 {
        if let Ok(request) = KeyRequest::parse(body) {
            // The encoding is canonical: what parsed re-encodes to the same bytes.
            assert_eq!(request.encode(), body);
            let _ = request.report_data();
        }
    } else if let Ok(response) = KeyResponse::parse(body) {
        assert_eq!(response.encode(), body);
        let reply = SealingKeyPair::from_secret_bytes([5; 32]);
        let helper = SealingPublicKey([9; 32]);
        // Must fail (random bytes do not authenticate) without panicking.
        assert!(response.open(&helper, &reply, b"request").is_err());
    }
});

//! Outside bytes against the reference-v1 opener: as a whole request body (JSON parse, the
//! scheme's fields, every `ENC_` value) and as one raw string ciphertext. Any input must give a
//! value or a typed error, never a panic.

#![no_main]

use cocoon_refv1::{
    Ed25519Seed, SharedSecret, StringCipher, keys::Direction, open_request, parse_body,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let worker = Ed25519Seed::from_bytes([0x42; 32]);
    if let Ok(body) = parse_body(data) {
        let _ = open_request(body, &worker);
    }
    let client = Ed25519Seed::from_bytes([0x17; 32]);
    if let Ok(secret) = SharedSecret::derive(
        &worker,
        &client.public(),
        "AAAA",
        Direction::ClientToWorker,
        "sender",
    ) {
        let _ = StringCipher::new(&secret).decrypt(data);
    }
});

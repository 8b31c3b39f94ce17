//! Fuzzes sealed-blob parsing and opening with a fixed simulated key source.

#![no_main]

use cocoon_seal::{KeyPurpose, SealedBlob, SimulatedKeySource};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(blob) = SealedBlob::from_bytes(data.to_vec()) else {
        return;
    };
    assert_eq!(blob.as_bytes(), data);
    let Ok(source) = SimulatedKeySource::new([3; 32], &[4; 48]) else {
        return;
    };
    // Random bytes must not authenticate; if they ever did, the secret would have to fit.
    if let Ok(secret) = blob.open(&source, KeyPurpose::WALLET_KEY) {
        assert_eq!(secret.len() + 18 + 16, data.len());
    }
});

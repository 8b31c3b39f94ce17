//! Fuzzes sealed-key-file parsing and unsealing with a fixed simulated key source.

#![no_main]

use cocoon_seal::key_file::SECRET_LEN;
use cocoon_seal::{KeyPurpose, SealedKeyFile, SimulatedKeySource};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = SealedKeyFile::parse(data) else {
        return;
    };
    // Parsing keeps the bytes as they are, and every header field it reports is valid.
    assert_eq!(file.as_bytes(), data);
    let Ok(purpose) = KeyPurpose::new(file.purpose()) else {
        panic!("parse accepted an invalid purpose label");
    };
    assert_eq!(data.len(), 72 + purpose.label().len());
    let Ok(source) = SimulatedKeySource::new([3; 32], &[4; 48]) else {
        return;
    };
    // Random bytes must not authenticate; if they ever did, the secret must have its length.
    if let Ok(secret) = file.unseal(&source, purpose, file.secret_kind()) {
        assert_eq!(secret.len(), SECRET_LEN);
    }
});

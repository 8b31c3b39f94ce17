//! Keys at rest: a blob opens only with the same key source, measurement and purpose.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cocoon_seal::key_source::MAX_MEASUREMENT_LEN;
use cocoon_seal::sealed_blob::MAX_BLOB_SECRET;
use cocoon_seal::{
    KeyPurpose, KeySource, KeySourceKind, SealError, SealedBlob, SealingKeyPair, SimulatedKeySource,
};
use common::{FailingRng, TestRng};

const MEASUREMENT: [u8; 48] = [0x11; 48];
const WALLET: &[u8] = b"wallet secret key bytes, 32 long";

fn source(secret: u8, measurement: &[u8]) -> SimulatedKeySource {
    SimulatedKeySource::new([secret; 32], measurement).unwrap()
}

#[test]
fn round_trip_through_stored_bytes() {
    let src = source(1, &MEASUREMENT);
    let blob =
        SealedBlob::seal(&src, KeyPurpose::WALLET_KEY, WALLET, &mut TestRng::new(1)).unwrap();
    assert_eq!(blob.as_bytes().len(), 18 + WALLET.len() + 16);
    let stored = blob.clone().into_bytes();
    let restored = SealedBlob::from_bytes(stored).unwrap();
    assert_eq!(restored, blob);
    // A fresh source object with the same secret and measurement (a restart) opens it.
    let again = source(1, &MEASUREMENT);
    assert_eq!(
        restored
            .open(&again, KeyPurpose::WALLET_KEY)
            .unwrap()
            .as_slice(),
        WALLET
    );
}

#[test]
fn a_different_measurement_cannot_open() {
    let blob = SealedBlob::seal(
        &source(1, &MEASUREMENT),
        KeyPurpose::WALLET_KEY,
        WALLET,
        &mut TestRng::new(2),
    )
    .unwrap();
    let mut other = MEASUREMENT;
    other[47] ^= 1;
    assert_eq!(
        blob.open(&source(1, &other), KeyPurpose::WALLET_KEY)
            .unwrap_err(),
        SealError::BlobAuthentication
    );
    assert_eq!(
        blob.open(&source(1, &MEASUREMENT[..47]), KeyPurpose::WALLET_KEY)
            .unwrap_err(),
        SealError::BlobAuthentication
    );
}

#[test]
fn a_different_platform_secret_or_purpose_cannot_open() {
    let blob = SealedBlob::seal(
        &source(1, &MEASUREMENT),
        KeyPurpose::WALLET_KEY,
        WALLET,
        &mut TestRng::new(3),
    )
    .unwrap();
    assert_eq!(
        blob.open(&source(2, &MEASUREMENT), KeyPurpose::WALLET_KEY)
            .unwrap_err(),
        SealError::BlobAuthentication
    );
    assert_eq!(
        blob.open(&source(1, &MEASUREMENT), KeyPurpose::SEALING_KEY)
            .unwrap_err(),
        SealError::BlobAuthentication
    );
}

#[test]
fn every_altered_byte_is_refused() {
    let src = source(1, &MEASUREMENT);
    let blob =
        SealedBlob::seal(&src, KeyPurpose::WALLET_KEY, WALLET, &mut TestRng::new(4)).unwrap();
    let bytes = blob.into_bytes();
    for i in 0..bytes.len() {
        let mut v = bytes.clone();
        v[i] ^= 0x04;
        let result = SealedBlob::from_bytes(v).and_then(|b| b.open(&src, KeyPurpose::WALLET_KEY));
        let err = result.unwrap_err();
        match i {
            0 => assert!(
                matches!(err, SealError::UnsupportedVersion { .. }),
                "{err:?}"
            ),
            1 => assert_eq!(
                err,
                SealError::KeySourceMismatch {
                    sealed_with: 5,
                    opening_with: 1
                }
            ),
            14..18 => assert!(
                matches!(
                    err,
                    SealError::Truncated { .. }
                        | SealError::TrailingBytes { .. }
                        | SealError::TooLong { .. }
                ),
                "{err:?}"
            ),
            _ => assert_eq!(err, SealError::BlobAuthentication, "byte {i}"),
        }
    }
    for cut in 0..bytes.len() {
        assert!(SealedBlob::from_bytes(bytes[..cut].to_vec()).is_err());
    }
}

#[test]
fn a_worker_sealing_key_survives_a_restart() {
    let src = SimulatedKeySource::generate(&mut TestRng::new(5), &MEASUREMENT).unwrap();
    let worker = SealingKeyPair::generate(&mut TestRng::new(6)).unwrap();
    let blob = SealedBlob::seal(
        &src,
        KeyPurpose::SEALING_KEY,
        worker.secret_bytes().as_slice(),
        &mut TestRng::new(7),
    )
    .unwrap();

    let restarted = SimulatedKeySource::new(*src.local_secret(), src.measurement()).unwrap();
    let secret = blob.open(&restarted, KeyPurpose::SEALING_KEY).unwrap();
    let restored = SealingKeyPair::from_secret_bytes(secret.as_slice().try_into().unwrap());
    assert_eq!(restored.public(), worker.public());
}

#[test]
fn derived_keys_are_per_purpose_and_deterministic() {
    let src = source(9, &MEASUREMENT);
    let a = src.derive_key(KeyPurpose::new("a").unwrap()).unwrap();
    let a2 = source(9, &MEASUREMENT)
        .derive_key(KeyPurpose::new("a").unwrap())
        .unwrap();
    let b = src.derive_key(KeyPurpose::new("b").unwrap()).unwrap();
    assert_eq!(a.as_bytes(), a2.as_bytes());
    assert_ne!(a.as_bytes(), b.as_bytes());
    assert_eq!(format!("{a:?}"), "DerivedKey(<redacted>)");
    assert!(!format!("{src:?}").contains(&hex::encode([9u8; 32])));
}

#[test]
fn the_simulated_source_says_so() {
    let src = source(1, &MEASUREMENT);
    assert!(src.is_simulated());
    assert_eq!(src.kind(), KeySourceKind::Simulated);
    assert_eq!(src.kind().id(), 1);
    assert_eq!(src.kind().to_string(), "simulated");
}

#[test]
fn limits_and_validation() {
    assert!(matches!(
        KeyPurpose::new(""),
        Err(SealError::InvalidKeyPurpose(_))
    ));
    assert!(matches!(
        KeyPurpose::new(&"x".repeat(65)),
        Err(SealError::InvalidKeyPurpose(_))
    ));
    assert!(matches!(
        KeyPurpose::new("wallet key"),
        Err(SealError::InvalidKeyPurpose(_))
    ));
    assert_eq!(
        KeyPurpose::new("cocoon/wallet-key.v1_2").unwrap().label(),
        "cocoon/wallet-key.v1_2"
    );
    assert!(matches!(
        SimulatedKeySource::new([0; 32], &[0; MAX_MEASUREMENT_LEN + 1]),
        Err(SealError::TooLong { .. })
    ));
    let src = source(1, &MEASUREMENT);
    let big = vec![0u8; MAX_BLOB_SECRET + 1];
    assert!(matches!(
        SealedBlob::seal(&src, KeyPurpose::WALLET_KEY, &big, &mut TestRng::new(8)),
        Err(SealError::TooLong { .. })
    ));
    assert_eq!(
        SealedBlob::seal(&src, KeyPurpose::WALLET_KEY, WALLET, &mut FailingRng).unwrap_err(),
        SealError::RandomSource
    );
    let empty = SealedBlob::seal(&src, KeyPurpose::WALLET_KEY, b"", &mut TestRng::new(9)).unwrap();
    assert!(empty.open(&src, KeyPurpose::WALLET_KEY).unwrap().is_empty());
}

#[test]
fn opens_a_blob_built_independently_from_the_documented_layout() {
    // Built by a few lines of Python (stdlib HMAC for HKDF, `cryptography` AES-GCM) following
    // docs/sealing.md, with local secret [3; 32], measurement [4; 48], purpose WALLET_KEY; also a
    // fuzzing seed.
    let bytes = include_bytes!("../fuzz/seeds/sealed_blob_parse/python-wallet").to_vec();
    let blob = SealedBlob::from_bytes(bytes).unwrap();
    let src = SimulatedKeySource::new([3; 32], &[4; 48]).unwrap();
    assert_eq!(
        blob.open(&src, KeyPurpose::WALLET_KEY).unwrap().as_slice(),
        b"python-built wallet secret"
    );
}

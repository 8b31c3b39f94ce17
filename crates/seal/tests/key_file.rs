//! Sealed key files: a node secret survives restarts on the same platform and measurement, and
//! nothing else opens it; the file is 0600, never overwritten, and every alteration is caught.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cocoon_seal::key_file::{KEY_FILE_MAGIC, MAX_KEY_FILE_LEN};
use cocoon_seal::{
    DerivedKey, KeyPurpose, KeySource, KeySourceKind, SealError, SealedKeyFile, SealingKeyPair,
    SecretKind, SimulatedKeySource,
};
use common::TestRng;
use proptest::prelude::*;

const MEASUREMENT: [u8; 48] = [0x11; 48];
const SEED: [u8; 32] = [0x5e; 32];

fn source(secret: u8, measurement: &[u8]) -> SimulatedKeySource {
    SimulatedKeySource::new([secret; 32], measurement).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A source of another kind that derives the very same keys as `inner`, to show that the kind
/// recorded in the file is checked on its own.
struct Relabelled(SimulatedKeySource);

impl KeySource for Relabelled {
    fn kind(&self) -> KeySourceKind {
        KeySourceKind::SevSnp
    }
    fn is_simulated(&self) -> bool {
        true
    }
    fn derive_key(&self, purpose: KeyPurpose<'_>) -> cocoon_seal::Result<DerivedKey> {
        self.0.derive_key(purpose)
    }
}

#[test]
fn create_then_open_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("voucher.key");
    SealedKeyFile::create(
        &path,
        &source(1, &MEASUREMENT),
        KeyPurpose::VOUCHER_KEY,
        SecretKind::Ed25519Seed,
        &SEED,
        &mut TestRng::new(1),
    )
    .unwrap();
    assert_eq!(mode(&path), 0o600);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 72 + "cocoon/voucher-key".len());
    assert_eq!(bytes[..8], KEY_FILE_MAGIC);
    // The secret is not in the file in clear.
    assert!(!bytes.windows(32).any(|w| w == SEED));
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let parsed = SealedKeyFile::parse(&bytes).unwrap();
    assert_eq!(parsed.purpose(), "cocoon/voucher-key");
    assert_eq!(parsed.secret_kind(), SecretKind::Ed25519Seed);
    assert_eq!(parsed.source_kind(), KeySourceKind::Simulated);

    // A new source object with the same platform secret and measurement: a restart.
    let secret = SealedKeyFile::open(
        &path,
        &source(1, &MEASUREMENT),
        KeyPurpose::VOUCHER_KEY,
        SecretKind::Ed25519Seed,
    )
    .unwrap();
    assert_eq!(*secret, SEED);
}

#[test]
fn a_different_measurement_or_platform_cannot_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wallet.key");
    SealedKeyFile::create(
        &path,
        &source(1, &MEASUREMENT),
        KeyPurpose::WALLET_KEY,
        SecretKind::Ed25519Seed,
        &SEED,
        &mut TestRng::new(2),
    )
    .unwrap();
    let mut other = MEASUREMENT;
    other[0] ^= 1;
    for wrong in [source(1, &other), source(2, &MEASUREMENT)] {
        assert_eq!(
            SealedKeyFile::open(
                &path,
                &wrong,
                KeyPurpose::WALLET_KEY,
                SecretKind::Ed25519Seed
            )
            .unwrap_err(),
            SealError::KeyFileAuthentication
        );
    }
}

#[test]
fn purpose_secret_kind_and_source_kind_are_checked_first() {
    let src = source(1, &MEASUREMENT);
    let file = SealedKeyFile::seal(
        &src,
        KeyPurpose::SEALING_KEY,
        SecretKind::X25519Secret,
        &SEED,
        &mut TestRng::new(3),
    )
    .unwrap();
    assert_eq!(
        file.unseal(&src, KeyPurpose::WALLET_KEY, SecretKind::X25519Secret)
            .unwrap_err(),
        SealError::KeyPurposeMismatch {
            found: "cocoon/sealing-key".into(),
            expected: "cocoon/wallet-key".into(),
        }
    );
    assert_eq!(
        file.unseal(&src, KeyPurpose::SEALING_KEY, SecretKind::Ed25519Seed)
            .unwrap_err(),
        SealError::SecretKindMismatch {
            found: SecretKind::X25519Secret,
            expected: SecretKind::Ed25519Seed,
        }
    );
    assert_eq!(
        file.unseal(
            &Relabelled(src.clone()),
            KeyPurpose::SEALING_KEY,
            SecretKind::X25519Secret
        )
        .unwrap_err(),
        SealError::KeySourceMismatch {
            sealed_with: 1,
            opening_with: 2
        }
    );
    // And with everything right, the X25519 key pair comes back.
    let secret = file
        .unseal(&src, KeyPurpose::SEALING_KEY, SecretKind::X25519Secret)
        .unwrap();
    assert_eq!(
        SealingKeyPair::from_secret_bytes(*secret).public(),
        SealingKeyPair::from_secret_bytes(SEED).public()
    );
}

#[test]
fn every_altered_byte_is_refused() {
    let src = source(1, &MEASUREMENT);
    let purpose = KeyPurpose::new("test/alter").unwrap();
    let bytes = SealedKeyFile::seal(
        &src,
        purpose,
        SecretKind::SymmetricKey,
        &SEED,
        &mut TestRng::new(4),
    )
    .unwrap()
    .as_bytes()
    .to_vec();
    for i in 0..bytes.len() {
        let mut altered = bytes.clone();
        altered[i] ^= 0x01;
        let result = SealedKeyFile::parse(&altered)
            .and_then(|f| f.unseal(&src, purpose, SecretKind::SymmetricKey));
        let error = result.expect_err("an altered file must not open");
        // Which error depends on the field; what matters is that none of them opens. Spot-check
        // the field boundaries.
        match i {
            0..=7 => assert!(matches!(error, SealError::BadMagic { .. }), "{i}: {error}"),
            8 => assert!(matches!(error, SealError::UnsupportedVersion { .. })),
            9 => assert!(matches!(
                error,
                SealError::UnknownKeySourceKind(_) | SealError::KeySourceMismatch { .. }
            )),
            10 => assert!(matches!(
                error,
                SealError::UnknownSecretKind(_) | SealError::SecretKindMismatch { .. }
            )),
            11 => assert!(matches!(
                error,
                SealError::Truncated { .. } | SealError::TrailingBytes { .. }
            )),
            _ if i < 12 + 10 => assert!(matches!(
                error,
                SealError::KeyPurposeMismatch { .. } | SealError::InvalidKeyPurpose(_)
            )),
            _ => assert_eq!(error, SealError::KeyFileAuthentication, "byte {i}"),
        }
    }
    assert!(matches!(
        SealedKeyFile::parse(&bytes[..bytes.len() - 1]),
        Err(SealError::Truncated { .. })
    ));
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        SealedKeyFile::parse(&longer),
        Err(SealError::TrailingBytes { extra: 1, .. })
    ));
    assert!(matches!(
        SealedKeyFile::parse(&bytes[..5]),
        Err(SealError::Truncated { .. })
    ));
}

#[test]
fn a_tampered_file_on_disk_fails_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sealing.key");
    let src = source(1, &MEASUREMENT);
    SealedKeyFile::create(
        &path,
        &src,
        KeyPurpose::SEALING_KEY,
        SecretKind::X25519Secret,
        &SEED,
        &mut TestRng::new(5),
    )
    .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x80;
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(
        SealedKeyFile::open(
            &path,
            &src,
            KeyPurpose::SEALING_KEY,
            SecretKind::X25519Secret
        )
        .unwrap_err(),
        SealError::KeyFileAuthentication
    );
    // open_or_create must not "repair" it by making a new key.
    assert_eq!(
        SealedKeyFile::open_or_create(
            &path,
            &src,
            KeyPurpose::SEALING_KEY,
            SecretKind::X25519Secret,
            &mut TestRng::new(6)
        )
        .unwrap_err(),
        SealError::KeyFileAuthentication
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn open_or_create_creates_once_then_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested-name.key");
    let src = source(7, &MEASUREMENT);
    let first = SealedKeyFile::open_or_create(
        &path,
        &src,
        KeyPurpose::WALLET_KEY,
        SecretKind::Ed25519Seed,
        &mut TestRng::new(7),
    )
    .unwrap();
    assert!(first.created);
    assert_eq!(mode(&path), 0o600);
    let second = SealedKeyFile::open_or_create(
        &path,
        &src,
        KeyPurpose::WALLET_KEY,
        SecretKind::Ed25519Seed,
        &mut TestRng::new(8),
    )
    .unwrap();
    assert!(!second.created);
    assert_eq!(*first.secret, *second.secret);

    // A different measurement gets a typed error and leaves the file alone.
    let before = std::fs::read(&path).unwrap();
    assert_eq!(
        SealedKeyFile::open_or_create(
            &path,
            &source(7, &MEASUREMENT[..40]),
            KeyPurpose::WALLET_KEY,
            SecretKind::Ed25519Seed,
            &mut TestRng::new(9),
        )
        .unwrap_err(),
        SealError::KeyFileAuthentication
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn concurrent_open_or_create_agree_on_one_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("race.key");
    let secrets: Vec<[u8; 32]> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let path = path.clone();
                s.spawn(move || {
                    *SealedKeyFile::open_or_create(
                        &path,
                        &source(3, &MEASUREMENT),
                        KeyPurpose::WALLET_KEY,
                        SecretKind::Ed25519Seed,
                        &mut TestRng::new(100 + i),
                    )
                    .unwrap()
                    .secret
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(secrets.iter().all(|s| *s == secrets[0]));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn create_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("existing.key");
    std::fs::write(&path, b"not a key file").unwrap();
    let error = SealedKeyFile::create(
        &path,
        &source(1, &MEASUREMENT),
        KeyPurpose::WALLET_KEY,
        SecretKind::Ed25519Seed,
        &SEED,
        &mut TestRng::new(10),
    )
    .unwrap_err();
    assert!(matches!(
        error,
        SealError::KeyFileIo {
            error: ErrorKind::AlreadyExists,
            ..
        }
    ));
    assert_eq!(std::fs::read(&path).unwrap(), b"not a key file");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn missing_oversized_and_foreign_files_give_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(1, &MEASUREMENT);
    let open = |path: &Path| {
        SealedKeyFile::open(path, &src, KeyPurpose::WALLET_KEY, SecretKind::Ed25519Seed)
            .unwrap_err()
    };
    assert!(matches!(
        open(&dir.path().join("absent.key")),
        SealError::KeyFileIo {
            operation: "open",
            error: ErrorKind::NotFound,
            ..
        }
    ));
    let big = dir.path().join("big.key");
    std::fs::write(&big, vec![0u8; MAX_KEY_FILE_LEN + 1]).unwrap();
    assert!(matches!(open(&big), SealError::TooLong { .. }));
    let foreign = dir.path().join("foreign.key");
    std::fs::write(&foreign, b"-----BEGIN PRIVATE KEY-----\n").unwrap();
    assert!(matches!(open(&foreign), SealError::BadMagic { .. }));
    // A directory where the file should be.
    assert!(matches!(
        open(dir.path()),
        SealError::KeyFileIo {
            error: ErrorKind::IsADirectory,
            ..
        }
    ));
}

#[test]
fn simulated_platform_secret_persists_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("simulated-platform-secret");
    let first =
        SimulatedKeySource::load_or_create(&path, &MEASUREMENT, &mut TestRng::new(11)).unwrap();
    assert_eq!(mode(&path), 0o600);
    let again =
        SimulatedKeySource::load_or_create(&path, &MEASUREMENT, &mut TestRng::new(12)).unwrap();
    assert_eq!(*first.local_secret(), *again.local_secret());
    assert_eq!(
        first.derive_key(KeyPurpose::WALLET_KEY).unwrap().as_bytes(),
        again.derive_key(KeyPurpose::WALLET_KEY).unwrap().as_bytes()
    );
    std::fs::write(&path, [0u8; 31]).unwrap();
    assert!(matches!(
        SimulatedKeySource::load_or_create(&path, &MEASUREMENT, &mut TestRng::new(13)),
        Err(SealError::Truncated { .. })
    ));
}

proptest! {
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = SealedKeyFile::parse(&bytes);
    }

    #[test]
    fn round_trip_any_secret_and_purpose(
        secret in any::<[u8; 32]>(),
        label in "[a-z0-9/._-]{1,64}",
        seed in any::<u64>(),
    ) {
        let src = source(9, &MEASUREMENT);
        let purpose = KeyPurpose::new(&label).unwrap();
        let file = SealedKeyFile::seal(&src, purpose, SecretKind::SymmetricKey, &secret, &mut TestRng::new(seed)).unwrap();
        let parsed = SealedKeyFile::parse(file.as_bytes()).unwrap();
        prop_assert_eq!(parsed.purpose(), label.as_str());
        prop_assert_eq!(*parsed.unseal(&src, purpose, SecretKind::SymmetricKey).unwrap(), secret);
    }
}

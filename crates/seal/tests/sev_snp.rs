//! The SEV-SNP key source on whatever machine runs the tests: outside an SNP guest it must report
//! a typed absence (or, where a device exists but this user may not open it, a typed I/O error);
//! inside one it must derive stable, purpose-separated keys that seal and reopen a key file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::ErrorKind;

use cocoon_seal::key_source::sev_snp::SEV_GUEST_DEVICE;
use cocoon_seal::{
    KeyPurpose, KeySource, KeySourceKind, SealError, SealedKeyFile, SecretKind, SevSnpKeySource,
    SnpKeyPolicy, SystemRng,
};

#[test]
fn derives_stable_keys_or_reports_why_not() {
    let source = match SevSnpKeySource::open(SnpKeyPolicy::default()) {
        Ok(source) => source,
        Err(SealError::KeySourceAbsent { kind, endpoint }) => {
            assert_eq!(kind, KeySourceKind::SevSnp);
            assert_eq!(endpoint, SEV_GUEST_DEVICE);
            assert!(!std::path::Path::new(SEV_GUEST_DEVICE).exists());
            eprintln!(
                "skipping the hardware part: {SEV_GUEST_DEVICE} is absent (not an SNP guest)"
            );
            return;
        }
        Err(SealError::KeySourceIo {
            kind: KeySourceKind::SevSnp,
            error: ErrorKind::PermissionDenied,
            ..
        }) => {
            eprintln!("skipping the hardware part: {SEV_GUEST_DEVICE} exists but is not readable");
            return;
        }
        Err(other) => panic!("unexpected error opening {SEV_GUEST_DEVICE}: {other}"),
    };
    assert_eq!(source.kind(), KeySourceKind::SevSnp);
    assert!(!source.is_simulated());
    let a = source.derive_key(KeyPurpose::WALLET_KEY).unwrap();
    let b = source.derive_key(KeyPurpose::WALLET_KEY).unwrap();
    let c = source.derive_key(KeyPurpose::SEALING_KEY).unwrap();
    assert_eq!(a.as_bytes(), b.as_bytes());
    assert_ne!(a.as_bytes(), c.as_bytes());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wallet.key");
    let created = SealedKeyFile::open_or_create(
        &path,
        &source,
        KeyPurpose::WALLET_KEY,
        SecretKind::Ed25519Seed,
        &mut SystemRng,
    )
    .unwrap();
    let reopened = SealedKeyFile::open(
        &path,
        &source,
        KeyPurpose::WALLET_KEY,
        SecretKind::Ed25519Seed,
    )
    .unwrap();
    assert_eq!(*created.secret, *reopened);
}

#[test]
fn an_invalid_policy_is_refused_before_touching_the_device() {
    let mut policy = SnpKeyPolicy::default();
    policy.vmpl = 9;
    assert!(matches!(
        SevSnpKeySource::open(policy),
        Err(SealError::KeySourceConfig {
            kind: KeySourceKind::SevSnp,
            ..
        })
    ));
}

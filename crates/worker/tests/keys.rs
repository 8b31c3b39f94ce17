//! Keys at rest: the worker's wallet and sealing keys and the proxy's voucher-signing key survive
//! a restart with the same data directory, refuse to open under another measurement, and the
//! worker's sealing key reaches the proxy inside its verified RA-TLS claims.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cocoon_infer::upstream::{UpstreamConfig, UpstreamEngine};
use cocoon_node::AttestationConfig;
use cocoon_proxy::{Proxy, ProxyConfig, ProxyError};
use cocoon_seal::{
    KeyPurpose, SealError, SealedKeyFile, SecretKind, SimulatedKeySource, SystemRng,
};
use cocoon_worker::keys::{SIMULATED_SECRET_FILE, WALLET_KEY_FILE};
use cocoon_worker::{Worker, WorkerConfig, WorkerError};

const MODEL: &str = "test-model";

fn engine() -> Arc<UpstreamEngine> {
    let mut config = UpstreamConfig::new("http://127.0.0.1:9");
    config.models = vec![MODEL.into()];
    Arc::new(UpstreamEngine::new(config).unwrap())
}

fn worker_config(data_dir: Option<&Path>, proxy: &str) -> WorkerConfig {
    let mut config = WorkerConfig {
        proxies: vec![proxy.into()],
        model: Some(MODEL.parse().unwrap()),
        stats_listen: None,
        attestation: AttestationConfig::local_simulated(),
        ..WorkerConfig::default()
    };
    config.keys.data_dir = data_dir.map(Path::to_path_buf);
    config
}

fn proxy_config(data_dir: Option<&Path>) -> ProxyConfig {
    let mut config = ProxyConfig {
        worker_listen: "127.0.0.1:0".parse().unwrap(),
        client_listen: "127.0.0.1:0".parse().unwrap(),
        stats_listen: None,
        worker_pow_difficulty: 4,
        client_pow_difficulty: 4,
        attestation: AttestationConfig::local_simulated(),
        ..ProxyConfig::default()
    };
    config.keys.data_dir = data_dir.map(Path::to_path_buf);
    config
}

/// Seals a wallet key under a simulated source with another measurement, as another build of
/// the worker would have left it.
fn plant_foreign_key(dir: &Path, file: &str, purpose: KeyPurpose<'_>) {
    let other = SimulatedKeySource::load_or_create(
        &dir.join(SIMULATED_SECRET_FILE),
        b"measurement of another build",
        &mut SystemRng,
    )
    .unwrap();
    SealedKeyFile::create(
        &dir.join(file),
        &other,
        purpose,
        SecretKind::Ed25519Seed,
        &[7u8; 32],
        &mut SystemRng,
    )
    .unwrap();
}

#[tokio::test]
async fn worker_keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = Worker::new(worker_config(Some(dir.path()), "127.0.0.1:1"), engine()).unwrap();
    let a = first.handle().snapshot();
    drop(first);
    let second = Worker::new(worker_config(Some(dir.path()), "127.0.0.1:1"), engine()).unwrap();
    let b = second.handle().snapshot();
    assert_eq!(a.key_source, "simulated");
    assert_eq!(a.wallet_public_key.len(), 64);
    assert_eq!(a.sealing_public_key.len(), 64);
    assert_eq!(a.wallet_public_key, b.wallet_public_key);
    assert_eq!(a.sealing_public_key, b.sealing_public_key);
    assert_ne!(a.wallet_public_key, a.sealing_public_key);

    // Another data directory is another worker.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Worker::new(
        worker_config(Some(other_dir.path()), "127.0.0.1:1"),
        engine(),
    )
    .unwrap()
    .handle()
    .snapshot();
    assert_ne!(other.wallet_public_key, a.wallet_public_key);
    assert_ne!(other.sealing_public_key, a.sealing_public_key);
}

#[tokio::test]
async fn worker_without_data_dir_has_ephemeral_keys() {
    let a = Worker::new(worker_config(None, "127.0.0.1:1"), engine())
        .unwrap()
        .handle()
        .snapshot();
    let b = Worker::new(worker_config(None, "127.0.0.1:1"), engine())
        .unwrap()
        .handle()
        .snapshot();
    assert_eq!(a.key_source, "ephemeral");
    assert_ne!(a.sealing_public_key, b.sealing_public_key);
}

#[tokio::test]
async fn worker_refuses_keys_sealed_under_another_measurement() {
    let dir = tempfile::tempdir().unwrap();
    plant_foreign_key(dir.path(), WALLET_KEY_FILE, KeyPurpose::WALLET_KEY);
    let err = Worker::new(worker_config(Some(dir.path()), "127.0.0.1:1"), engine())
        .err()
        .expect("a key sealed under another measurement must not open");
    assert!(
        matches!(err, WorkerError::Keys(SealError::KeyFileAuthentication)),
        "{err}"
    );
    // The foreign file is left alone, never replaced.
    let bytes = std::fs::read(dir.path().join(WALLET_KEY_FILE)).unwrap();
    assert_eq!(
        SealedKeyFile::parse(&bytes).unwrap().purpose(),
        "cocoon/wallet-key"
    );
}

#[tokio::test]
async fn proxy_voucher_key_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = Proxy::bind(proxy_config(Some(dir.path()))).await.unwrap();
    let a = first.handle().public_key();
    drop(first);
    let second = Proxy::bind(proxy_config(Some(dir.path()))).await.unwrap();
    assert_eq!(second.handle().public_key(), a);
    assert!(dir.path().join("voucher-key.sealed").exists());

    let other_dir = tempfile::tempdir().unwrap();
    let other = Proxy::bind(proxy_config(Some(other_dir.path())))
        .await
        .unwrap();
    assert_ne!(other.handle().public_key(), a);
}

#[tokio::test]
async fn proxy_refuses_a_voucher_key_sealed_under_another_measurement() {
    let dir = tempfile::tempdir().unwrap();
    plant_foreign_key(dir.path(), "voucher-key.sealed", KeyPurpose::VOUCHER_KEY);
    let err = Proxy::bind(proxy_config(Some(dir.path())))
        .await
        .err()
        .expect("a key sealed under another measurement must not open");
    assert!(
        matches!(err, ProxyError::Keys(SealError::KeyFileAuthentication)),
        "{err}"
    );
}

#[tokio::test]
async fn proxy_sees_the_worker_sealing_key_in_its_attested_claims() {
    let proxy_dir = tempfile::tempdir().unwrap();
    let worker_dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::bind(proxy_config(Some(proxy_dir.path())))
        .await
        .unwrap();
    let handle = proxy.handle();
    let addr = proxy.worker_addr().unwrap().to_string();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(proxy.run(async {
        let _ = stopped.await;
    }));

    let worker = Worker::new(worker_config(Some(worker_dir.path()), &addr), engine()).unwrap();
    let sealing_key = worker.handle().snapshot().sealing_public_key;
    tokio::spawn(worker.run(std::future::pending::<()>()));

    let mut seen = None;
    for _ in 0..500 {
        if let Some(view) = handle.workers().into_iter().next() {
            seen = Some(view);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let view = seen.expect("worker did not register");
    assert_eq!(view.attestation, "simulated");
    assert_eq!(
        view.sealing_public_key.as_deref(),
        Some(sealing_key.as_str())
    );
}

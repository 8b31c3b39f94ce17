//! Sealing never lapses: a worker whose RA-TLS certificates live a few seconds (instead of a
//! day) renews them every second, announces each renewal to its proxy, the proxy hands out the
//! new certificate, and a client keeps sealing every request across many renewals, long after
//! the certificate it first verified has expired.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use cocoon_client::{Client, ClientConfig, RequestOptions};
use cocoon_infer::upstream::{UpstreamConfig as EngineConfig, UpstreamEngine};
use cocoon_net::AttestationConfig;
use cocoon_proxy::{Proxy, ProxyConfig};
use cocoon_testkit::{FakeUpstream, UpstreamConfig};
use cocoon_worker::{Worker, WorkerConfig};
use serde_json::{Map, Value, json};

const MODEL: &str = "Qwen/Qwen3-8B";
/// Lifetime of the worker's certificates.
const VALIDITY: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_requests_continue_across_certificate_renewals() {
    let proxy = Proxy::bind(ProxyConfig {
        worker_listen: "127.0.0.1:0".parse().unwrap(),
        client_listen: "127.0.0.1:0".parse().unwrap(),
        stats_listen: None,
        worker_pow_difficulty: 4,
        client_pow_difficulty: 4,
        emulated_registration: true,
        emulated_client_deposit: 1_000_000_000_000,
        attestation: AttestationConfig::local_simulated(),
        ..ProxyConfig::default()
    })
    .await
    .unwrap();
    let handle = proxy.handle();
    let worker_addr = proxy.worker_addr().unwrap().to_string();
    let client_addr = proxy.client_addr().unwrap().to_string();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(proxy.run(async {
        let _ = stopped.await;
    }));

    let mut up = UpstreamConfig::default();
    up.models = vec![MODEL.into()];
    let up = FakeUpstream::start(up).await.unwrap();
    let mut engine = EngineConfig::new(up.url());
    engine.models = vec![MODEL.into()];
    // Certificates that live 4 s, renewed every second (checked every 100 ms).
    let attestation = AttestationConfig {
        certificate_validity: VALIDITY,
        certificate_refresh: Duration::from_secs(1),
        certificate_check: Duration::from_millis(100),
        ..AttestationConfig::local_simulated()
    };
    let worker = Worker::new(
        WorkerConfig {
            proxies: vec![worker_addr],
            model: MODEL.into(),
            stats_listen: None,
            attestation,
            ..WorkerConfig::default()
        },
        Arc::new(UpstreamEngine::new(engine).unwrap()),
    )
    .unwrap();
    tokio::spawn(worker.run(std::future::pending::<()>()));
    for _ in 0..500 {
        if handle.snapshot().await.sealing_workers == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(handle.snapshot().await.sealing_workers, 1);

    // A client that may not fall back to unsealed requests, with the usual hourly refresh of
    // its worker lists: only an expired key makes it ask again.
    let client = Client::start(ClientConfig {
        listen: None,
        proxy: client_addr,
        attestation: AttestationConfig::client_local(),
        require_sealed: Some(true),
        ..ClientConfig::default()
    })
    .unwrap();
    client.wait_ready(Duration::from_secs(10)).await.unwrap();

    // Requests for three lifetimes: at least three renewals, and every request sealed.
    let started = Instant::now();
    let mut sealed = 0;
    while started.elapsed() < VALIDITY * 3 {
        let mut body = Map::new();
        body.insert("model".into(), json!(MODEL));
        body.insert(
            "messages".into(),
            json!([{"role": "user", "content": "hi"}]),
        );
        body.insert("max_tokens".into(), json!(4));
        let mut answer = client
            .request("/v1/chat/completions", body, RequestOptions::default())
            .await
            .unwrap_or_else(|e| panic!("after {:?}: {e}", started.elapsed()));
        assert!(answer.sealed, "after {:?}", started.elapsed());
        let text = answer.collect_body().await.unwrap();
        assert!(serde_json::from_slice::<Value>(&text).is_ok());
        sealed += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(sealed >= 20, "{sealed} requests");
    // The proxy saw every one of them sealed.
    assert_eq!(handle.snapshot().await.sealed_requests, sealed);
}

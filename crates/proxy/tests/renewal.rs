//! Sealing never lapses: every node judges time by one injected clock, worker certificates live
//! their production day and are renewed hourly; the test moves the clock ten hours at a time.
//! The worker renews, announces each renewal to its proxy, the proxy hands out the new
//! certificate, and the client's HTTP API answers `X-Cocoon-Sealed: true` across three
//! renewals, long after the certificate it first verified has expired (and refuses to fall
//! back to unsealed requests).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use cocoon_attest::{Clock, ManualClock, SystemClock};
use cocoon_client::{Client, ClientConfig};
use cocoon_infer::upstream::{UpstreamConfig as EngineConfig, UpstreamEngine};
use cocoon_node::{AttestationClock, AttestationConfig};
use cocoon_proxy::{Proxy, ProxyConfig, ProxyHandle};
use cocoon_testkit::{FakeUpstream, UpstreamConfig};
use cocoon_worker::{Worker, WorkerConfig};
use serde_json::{Value, json};

const MODEL: &str = "Qwen/Qwen3-8B";
/// How far the clock moves between requests: less than a certificate's day, more than its
/// hourly renewal period.
const STEP_SECS: u64 = 10 * 3600;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_requests_continue_across_certificate_renewals() {
    let manual = Arc::new(ManualClock::new(SystemClock.now_unix()));
    let clock = AttestationClock(manual.clone());
    // Production lifetimes (a day, renewed hourly), checked every 100 ms of real time.
    let attestation = AttestationConfig {
        certificate_check: Duration::from_millis(100),
        clock: clock.clone(),
        ..AttestationConfig::local_simulated()
    };
    assert_eq!(
        attestation.certificate_validity,
        Duration::from_secs(86_400)
    );

    let proxy = Proxy::bind(ProxyConfig {
        worker_listen: "127.0.0.1:0".parse().unwrap(),
        client_listen: "127.0.0.1:0".parse().unwrap(),
        stats_listen: None,
        worker_pow_difficulty: 4,
        client_pow_difficulty: 4,
        emulated_registration: true,
        emulated_client_deposit: 1_000_000_000_000,
        attestation: attestation.clone(),
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
    let worker = Worker::new(
        WorkerConfig {
            proxies: vec![worker_addr],
            model: Some(MODEL.parse().unwrap()),
            stats_listen: None,
            attestation: attestation.clone(),
            ..WorkerConfig::default()
        },
        Arc::new(UpstreamEngine::new(engine).unwrap()),
    )
    .unwrap();
    tokio::spawn(worker.run(std::future::pending::<()>()));
    wait_for_announcements(&handle, 1).await;
    assert_eq!(handle.snapshot().await.sealing_workers, 1);

    // A client that may not fall back to unsealed requests. The test runs in less real time
    // than the client caches its worker lists: only an expired key makes it ask again.
    let client = Client::start(ClientConfig {
        listen: None,
        proxy: client_addr,
        attestation: AttestationConfig {
            clock,
            ..AttestationConfig::client_local()
        },
        require_sealed: Some(true),
        ..ClientConfig::default()
    })
    .unwrap();
    client.wait_ready(Duration::from_secs(10)).await.unwrap();
    let first_expires = manual.now_unix() + 86_400;

    assert_eq!(sealed_chat(&client).await, "true", "before any renewal");
    for renewal in 1..=3 {
        manual.advance(STEP_SECS);
        wait_for_announcements(&handle, 1 + renewal).await;
        assert_eq!(
            sealed_chat(&client).await,
            "true",
            "after renewal {renewal}, {} h on",
            renewal * STEP_SECS / 3600
        );
    }
    // The last requests went out after the first certificate had expired.
    assert!(manual.now_unix() > first_expires);
    let snapshot = handle.snapshot().await;
    assert_eq!(snapshot.sealed_requests, 4);
    assert_eq!(snapshot.sealing_workers, 1);
}

/// Waits (real time) until the proxy has accepted `count` worker certificates.
async fn wait_for_announcements(handle: &ProxyHandle, count: u64) {
    for _ in 0..1000 {
        if handle.snapshot().await.sealing_announcements >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the proxy accepted {} certificates, expected {count}",
        handle.snapshot().await.sealing_announcements
    );
}

/// One chat request through the client's HTTP API; returns its `X-Cocoon-Sealed` header after
/// checking the answer is a 200 with a JSON body.
async fn sealed_chat(client: &Client) -> String {
    use tower::ServiceExt;
    let body = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4,
    });
    let request = http::Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    let response = cocoon_client::http::router(client.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status().as_u16();
    let sealed = response
        .headers()
        .get("x-cocoon-sealed")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert!(serde_json::from_slice::<Value>(&bytes).is_ok());
    sealed.unwrap_or_default()
}

//! The reference's "v1" request encryption through the three roles, over real loopback sockets:
//! a client configured with a receiver key encrypts, a proxy that holds the receiver's private
//! key hands it to the worker in `proxy.runQueryEx`, the worker opens the request and encrypts
//! the answer, the client opens it. A proxy without the key relays the body untouched.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use cocoon_client::{ChatMessage, ChatRequest, Client, ClientConfig, ClientError, RequestOptions};
use cocoon_infer::upstream::{UpstreamConfig as EngineConfig, UpstreamEngine};
use cocoon_node::AttestationConfig;
use cocoon_proxy::{Proxy, ProxyConfig, ProxyHandle};
use cocoon_refv1::Ed25519Seed;
use cocoon_testkit::upstream::AnswerShape;
use cocoon_testkit::{FakeUpstream, UpstreamConfig};
use cocoon_worker::{Worker, WorkerConfig};
use serde_json::Value;

const MODEL: &str = "Qwen/Qwen3-8B";
const RECEIVER_SEED: [u8; 32] = [0x5c; 32];
const PROMPT: &str = "a question only the worker may read";

struct Net {
    proxy: ProxyHandle,
    worker_addr: String,
    client_addr: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn proxy(holds_key: bool) -> Net {
    let config = ProxyConfig {
        worker_listen: "127.0.0.1:0".parse().unwrap(),
        client_listen: "127.0.0.1:0".parse().unwrap(),
        stats_listen: None,
        worker_pow_difficulty: 4,
        client_pow_difficulty: 4,
        emulated_registration: true,
        emulated_client_deposit: 1_000_000_000_000,
        attestation: AttestationConfig::local_simulated(),
        reference_private_key: holds_key.then(|| hex::encode(RECEIVER_SEED)),
        ..ProxyConfig::default()
    };
    let proxy = Proxy::bind(config).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let net = Net {
        proxy: proxy.handle(),
        worker_addr: proxy.worker_addr().unwrap().to_string(),
        client_addr: proxy.client_addr().unwrap().to_string(),
        _stop: tx,
    };
    tokio::spawn(proxy.run(async {
        let _ = rx.await;
    }));
    net
}

async fn upstream_and_worker(net: &Net) -> FakeUpstream {
    let mut config = UpstreamConfig::default();
    config.models = vec![MODEL.into()];
    let mut shape = AnswerShape::default();
    shape.chunks = 4;
    shape.chunk_bytes = 16;
    config.shape = shape;
    config.record_requests = 8;
    let up = FakeUpstream::start(config).await.unwrap();

    let mut engine = EngineConfig::new(up.url());
    engine.models = vec![MODEL.into()];
    let engine = std::sync::Arc::new(UpstreamEngine::new(engine).unwrap());
    let config = WorkerConfig {
        proxies: vec![net.worker_addr.clone()],
        model: Some(MODEL.parse().unwrap()),
        stats_listen: None,
        attestation: AttestationConfig::local_simulated(),
        ..WorkerConfig::default()
    };
    let w = Worker::new(config, engine).unwrap();
    tokio::spawn(w.run(std::future::pending::<()>()));
    for _ in 0..500 {
        if !net.proxy.workers().is_empty() {
            return up;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("worker did not register");
}

async fn encrypting_client(net: &Net) -> Client {
    let config = ClientConfig {
        listen: None,
        proxy: net.client_addr.clone(),
        models_refresh: Duration::ZERO,
        attestation: AttestationConfig::client_local(),
        reference_receiver_key: Some(Ed25519Seed::from_bytes(RECEIVER_SEED).public().to_hex()),
        ..ClientConfig::default()
    };
    let c = Client::start(config).unwrap();
    c.wait_ready(Duration::from_secs(10)).await.unwrap();
    c
}

fn chat() -> ChatRequest {
    ChatRequest {
        model: MODEL.into(),
        messages: vec![ChatMessage::new("user", PROMPT)],
        max_tokens: Some(8),
        ..ChatRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_requests_go_through_a_key_holding_proxy_and_back() {
    let net = proxy(true).await;
    let up = upstream_and_worker(&net).await;
    let c = encrypting_client(&net).await;

    // Whole answer: the fake engine echoes the prompt, so the text proves both directions.
    let answer = c.chat(chat()).await.unwrap();
    assert!(answer.content.contains(PROMPT), "{}", answer.content);
    assert!(!answer.content.contains("ENC_"), "{}", answer.content);
    let recorded = up.recorded_requests();
    let got: Value = serde_json::from_slice(&recorded.last().unwrap().body).unwrap();
    assert_eq!(got["messages"][0]["content"], PROMPT);
    assert!(got.get("is_encrypted").is_none());

    // Streamed answer: SSE chunks opened one by one.
    let mut body = serde_json::Map::new();
    body.insert("model".into(), MODEL.into());
    body.insert(
        "messages".into(),
        serde_json::json!([{"role": "user", "content": PROMPT}]),
    );
    body.insert("stream".into(), true.into());
    body.insert("max_tokens".into(), 8.into());
    let mut stream = c
        .request("/v1/chat/completions", body, RequestOptions::default())
        .await
        .unwrap();
    assert!(!stream.sealed);
    let raw = stream.collect_body().await.unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(!text.contains("ENC_"), "{text}");
    let content: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|d| {
            d["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(content.contains(PROMPT), "{text}");
    assert!(stream.usage().total_cost > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_without_the_key_relays_the_body_untouched() {
    let net = proxy(false).await;
    let up = upstream_and_worker(&net).await;
    let c = encrypting_client(&net).await;
    // The worker gets the encrypted body and no key: it refuses it before the engine.
    let err = c.chat(chat()).await.unwrap_err();
    match err {
        ClientError::Remote { code, message, .. } => {
            assert_eq!(code, 400, "{message}");
            assert!(message.contains("is_encrypted"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(up.recorded_requests().is_empty());
}

//! Proxy-blind requests end to end: client → proxy → worker with a recording relay on both hops
//! (each terminates RA-TLS with simulated evidence and records every application byte the proxy
//! receives and sends), a fake upstream that echoes a distinctive prompt, and checks that
//! neither the prompt nor any answer text crosses either hop in clear while the request is still
//! metered, charged and answered; then the fallback to, and the refusal of, unsealed requests
//! with a proxy that speaks only the reference protocol (version 2).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cocoon_client::{ChatMessage, ChatRequest, Client, ClientConfig, ClientError, RequestOptions};
use cocoon_infer::upstream::{UpstreamConfig as EngineConfig, UpstreamEngine};
use cocoon_node::AttestationConfig;
use cocoon_protocol::messages::{Message, tcp};
use cocoon_protocol::tl;
use cocoon_proxy::{Proxy, ProxyConfig, ProxyHandle};
use cocoon_testkit::upstream::AnswerShape;
use cocoon_testkit::{FakeUpstream, RecordingRelay, UpstreamConfig};
use cocoon_worker::{Worker, WorkerConfig};
use serde_json::{Map, Value, json};

const MODEL: &str = "Qwen/Qwen3-8B";
/// The weights the worker is pinned to (what its fake upstream stands for).
const WEIGHTS: &[u8] = b"the weights of the sealed test's model";
/// Words that appear nowhere in the protocol: the prompt, echoed back by the fake upstream.
const SECRET_WORDS: [&str; 3] = ["zanzibarquokka", "xylophonemarmalade", "periwinklegazebo"];

struct Net {
    proxy: ProxyHandle,
    worker_relay: RecordingRelay,
    client_relay: RecordingRelay,
    _up: FakeUpstream,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn network(max_protocol_version: i32) -> Net {
    let config = ProxyConfig {
        worker_listen: "127.0.0.1:0".parse().unwrap(),
        client_listen: "127.0.0.1:0".parse().unwrap(),
        stats_listen: None,
        worker_pow_difficulty: 4,
        client_pow_difficulty: 4,
        emulated_registration: true,
        emulated_client_deposit: 1_000_000_000_000,
        attestation: AttestationConfig::local_simulated(),
        max_protocol_version,
        ..ProxyConfig::default()
    };
    let proxy = Proxy::bind(config).await.unwrap();
    let handle = proxy.handle();
    let worker_relay = RecordingRelay::start(proxy.worker_addr().unwrap().to_string())
        .await
        .unwrap();
    let client_relay = RecordingRelay::start(proxy.client_addr().unwrap().to_string())
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(proxy.run(async {
        let _ = rx.await;
    }));

    let mut up = UpstreamConfig::default();
    up.models = vec![MODEL.into()];
    let mut shape = AnswerShape::default();
    shape.chunks = 6;
    shape.chunk_bytes = 24;
    up.shape = shape;
    let up = FakeUpstream::start(up).await.unwrap();
    let mut engine = EngineConfig::new(up.url());
    engine.models = vec![MODEL.into()];
    let worker = Worker::new(
        WorkerConfig {
            proxies: vec![worker_relay.addr().to_owned()],
            model: Some(MODEL.parse().unwrap()),
            model_hash: Some(weights_hex(WEIGHTS)),
            stats_listen: None,
            attestation: AttestationConfig::local_simulated(),
            ..WorkerConfig::default()
        },
        Arc::new(UpstreamEngine::new(engine).unwrap()),
    )
    .unwrap();
    tokio::spawn(worker.run(std::future::pending::<()>()));
    for _ in 0..500 {
        if !handle.workers().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(handle.workers().len(), 1, "the worker did not register");
    Net {
        proxy: handle,
        worker_relay,
        client_relay,
        _up: up,
        _stop: tx,
    }
}

fn weights_hex(weights: &[u8]) -> String {
    cocoon_infer::WeightsDigest::of_bytes(weights).to_hex()
}

async fn client(net: &Net, require_sealed: bool) -> Client {
    client_with(net, require_sealed, Default::default()).await
}

async fn client_with(
    net: &Net,
    require_sealed: bool,
    pinned_weights: std::collections::BTreeMap<String, String>,
) -> Client {
    let c = Client::start(ClientConfig {
        listen: None,
        proxy: net.client_relay.addr().to_owned(),
        models_refresh: Duration::ZERO,
        attestation: AttestationConfig::client_local(),
        require_sealed: Some(require_sealed),
        pinned_weights,
        ..ClientConfig::default()
    })
    .unwrap();
    c.wait_ready(Duration::from_secs(10)).await.unwrap();
    c
}

fn secret_chat() -> ChatRequest {
    ChatRequest {
        model: MODEL.into(),
        messages: vec![ChatMessage::new("user", &SECRET_WORDS.join(" "))],
        max_tokens: Some(32),
        ..ChatRequest::default()
    }
}

/// Waits until the worker's sealing key reached the proxy (announced after the handshake).
async fn until_sealing_key(net: &Net) {
    for _ in 0..500 {
        if net.proxy.snapshot().await.sealing_workers == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the worker's sealing key never reached the proxy");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every message name that crossed a relay, both directions.
fn message_names(relay: &RecordingRelay) -> Vec<String> {
    let r = relay.recording();
    r.to_proxy
        .iter()
        .chain(r.from_proxy.iter())
        .filter_map(|body| {
            let data = match tl::from_bytes::<tcp::AnyPacket>(Bytes::from(body.clone())).ok()? {
                tcp::AnyPacket::Query(q) => q.data,
                tcp::AnyPacket::Packet(p) => p.data,
                tcp::AnyPacket::QueryAnswer(a) => a.data,
                _ => return None,
            };
            tl::from_bytes::<Message>(data)
                .ok()
                .map(|m| m.constructor_name().to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_relays_and_bills_requests_it_cannot_read() {
    let net = network(cocoon_protocol::version::MAX_VERSION).await;
    until_sealing_key(&net).await;
    let c = client(&net, true).await;

    // One whole answer, one streamed answer.
    let answer = c.chat(secret_chat()).await.unwrap();
    for word in SECRET_WORDS {
        assert!(answer.content.contains(word), "{}", answer.content);
    }
    assert!(answer.usage.total_tokens > 0);
    assert!(answer.usage.total_cost > 0);
    let receipt = answer.receipt.expect("a version 3 worker signs a receipt");
    assert_eq!(receipt.verified, Ok(()), "the receipt covers the plaintext");

    let mut body = Map::new();
    body.insert("model".into(), json!(MODEL));
    body.insert(
        "messages".into(),
        json!([{"role": "user", "content": SECRET_WORDS.join(" ")}]),
    );
    body.insert("stream".into(), Value::Bool(true));
    body.insert("max_tokens".into(), json!(32));
    let mut stream = c
        .request("/v1/chat/completions", body, RequestOptions::default())
        .await
        .unwrap();
    assert!(stream.sealed);
    let streamed = String::from_utf8(stream.collect_body().await.unwrap().to_vec()).unwrap();
    assert!(streamed.contains("data: "), "{streamed}");
    let echoed: String = streamed
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    assert!(echoed.contains(SECRET_WORDS[0]), "{echoed}");
    assert_eq!(stream.receipt().map(|r| r.verified), Some(Ok(())));

    // Billing happened, on the proxy's books.
    let s = net.proxy.snapshot().await;
    assert_eq!(s.sealed_requests, 2, "{s:?}");
    assert_eq!(s.succeeded, 2, "{s:?}");
    let totals = s.ledger.unwrap();
    assert_eq!(totals.requests, 2);
    assert!(totals.client_charged > 0);
    assert_eq!(
        totals.client_charged,
        totals.worker_credited + totals.proxy_commission
    );

    // The proxy saw sealed messages only, and none of the words in any byte it received or
    // sent, on either hop.
    let client_hop = message_names(&net.client_relay);
    assert!(
        client_hop.iter().any(|n| n == "ext.runSealedQuery"),
        "{client_hop:?}"
    );
    assert!(
        !client_hop.iter().any(|n| n == "client.runQueryEx"),
        "{client_hop:?}"
    );
    let worker_hop = message_names(&net.worker_relay);
    assert!(
        worker_hop.iter().any(|n| n == "ext.workerRunSealedQuery"),
        "{worker_hop:?}"
    );
    assert!(
        !worker_hop.iter().any(|n| n == "proxy.runQueryEx"),
        "{worker_hop:?}"
    );
    let seen = [
        net.client_relay.recording().all_bytes(),
        net.worker_relay.recording().all_bytes(),
    ];
    for bytes in &seen {
        assert!(bytes.len() > 1000, "the relay recorded the traffic");
        for word in SECRET_WORDS {
            assert!(
                !contains(bytes, word.as_bytes()),
                "`{word}` crossed the proxy in clear"
            );
        }
        // Nor any other piece of the answer text or the request body.
        for piece in answer.content.split_whitespace() {
            assert!(
                !contains(bytes, piece.as_bytes()),
                "`{piece}` crossed in clear"
            );
        }
        assert!(!contains(bytes, b"\"messages\""));
        assert!(!contains(bytes, b"chat.completion"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_proxy_gets_unsealed_requests_or_none() {
    let net = network(2).await;

    // Without require_sealed: the reference path, reported as such.
    let c = client(&net, false).await;
    let mut body = Map::new();
    body.insert("model".into(), json!(MODEL));
    body.insert(
        "messages".into(),
        json!([{"role": "user", "content": SECRET_WORDS.join(" ")}]),
    );
    let mut stream = c
        .request(
            "/v1/chat/completions",
            body.clone(),
            RequestOptions::default(),
        )
        .await
        .unwrap();
    assert!(!stream.sealed);
    let answer = stream.collect_body().await.unwrap();
    assert!(contains(&answer, SECRET_WORDS[0].as_bytes()));
    // ... which the proxy can read: the recording shows what sealing hides.
    assert!(contains(
        &net.client_relay.recording().all_bytes(),
        SECRET_WORDS[0].as_bytes()
    ));
    let app = cocoon_client::http::router(c.clone());
    let response = tower_oneshot(app, body.clone()).await;
    assert_eq!(response.0, 200);
    assert_eq!(response.1.as_deref(), Some("false"));
    let stats = stats_of(&c).await;
    assert_eq!(stats["unsealed_requests"], json!(2), "{stats}");
    assert_eq!(stats["sealed_requests"], json!(0), "{stats}");
    assert!(
        stats["sealing_fallback_reason"]
            .as_str()
            .unwrap()
            .contains("version 2"),
        "{stats}"
    );

    // With require_sealed: refused, with an OpenAI-shaped error, before anything is sent.
    let strict = client(&net, true).await;
    let before = net.proxy.snapshot().await.requests;
    let err = strict.chat(secret_chat()).await.unwrap_err();
    assert!(matches!(err, ClientError::SealingUnavailable(_)), "{err:?}");
    assert_eq!(err.http_status(), 503);
    assert_eq!(err.error_code(), "sealing_unavailable");
    let app = cocoon_client::http::router(strict.clone());
    let (status, sealed, json) = tower_oneshot_json(app, body).await;
    assert_eq!(status, 503);
    assert_eq!(sealed, None);
    assert_eq!(json["error"]["code"], "sealing_unavailable", "{json}");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sealed")
    );
    assert_eq!(net.proxy.snapshot().await.requests, before);
    assert_eq!(stats_of(&strict).await["sealing_refused"], json!(2));
}

async fn tower_oneshot(app: axum::Router, body: Map<String, Value>) -> (u16, Option<String>) {
    let (status, sealed, _) = tower_oneshot_json(app, body).await;
    (status, sealed)
}

async fn tower_oneshot_json(
    app: axum::Router,
    body: Map<String, Value>,
) -> (u16, Option<String>, Value) {
    use tower::ServiceExt;
    let request = http::Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(
            serde_json::to_vec(&Value::Object(body)).unwrap(),
        ))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let sealed = response
        .headers()
        .get("x-cocoon-sealed")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        sealed,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn stats_of(c: &Client) -> Value {
    use tower::ServiceExt;
    let request = http::Request::get("/jsonstats")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = cocoon_client::http::router(c.clone())
        .oneshot(request)
        .await
        .unwrap();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_weights_admit_only_workers_that_serve_them() {
    let net = network(cocoon_protocol::version::MAX_VERSION).await;
    until_sealing_key(&net).await;

    // Pinned to the weights the worker's certificate names: sealed, and the receipt agrees.
    let pinned = [(MODEL.to_owned(), weights_hex(WEIGHTS))].into();
    let c = client_with(&net, true, pinned).await;
    let answer = c.chat(secret_chat()).await.unwrap();
    let receipt = answer.receipt.expect("a receipt");
    assert_eq!(receipt.verified, Ok(()));

    // Pinned to other weights (the same name fronting another model): nothing is sent.
    let other = [(MODEL.to_owned(), weights_hex(b"a cheaper model"))].into();
    let c = client_with(&net, true, other).await;
    let err = c.chat(secret_chat()).await.unwrap_err();
    assert!(err.to_string().contains("pinned"), "{err}");
}

/// A refusal naming its field travels as `{"message","param"}` only between version-3 nodes:
/// on a version-2 path (what the reference speaks) the error string is the message alone, as a
/// reference client expects it, and the client still gets the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_path_carries_refusals_as_plain_messages() {
    let net = network(2).await;
    let c = client(&net, false).await;
    let mut body = Map::new();
    body.insert("model".into(), json!(MODEL));
    body.insert(
        "messages".into(),
        json!([{"role": "user", "content": "hi"}]),
    );
    body.insert("temperature".into(), json!(7));
    let err = match c
        .request("/v1/chat/completions", body, RequestOptions::default())
        .await
    {
        Ok(mut stream) => stream.collect_body().await.unwrap_err(),
        Err(e) => e,
    };
    let ClientError::Remote { code, message, .. } = err else {
        panic!("expected the worker's refusal, got {err:?}");
    };
    assert_eq!(code, 400);
    assert!(message.contains("temperature"), "{message}");
    assert!(!message.contains("\"param\""), "{message}");
    let recorded = net.client_relay.recording().all_bytes();
    assert!(!contains(&recorded, b"\"param\""));
}

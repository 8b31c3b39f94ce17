//! The market as a client's HTTP caller meets it: a real proxy with two workers at different
//! coefficients, the client's axum router driven in process. `worker_preference` in a request
//! body steers selection (and a bad value is refused naming the field), and `/v1/models` shows
//! each model's market figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use cocoon_client::{Client, ClientConfig};
use cocoon_infer::upstream::{UpstreamConfig as EngineConfig, UpstreamEngine};
use cocoon_node::AttestationConfig;
use cocoon_proxy::{Proxy, ProxyConfig, ProxyHandle};
use cocoon_testkit::upstream::AnswerShape;
use cocoon_testkit::{FakeUpstream, UpstreamConfig};
use cocoon_worker::{Worker, WorkerConfig, WorkerHandle};
use serde_json::{Map, Value, json};
use tower::ServiceExt;

const MODEL: &str = "Qwen/Qwen3-8B";

struct Net {
    proxy: ProxyHandle,
    worker_addr: String,
    client_addr: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn proxy() -> Net {
    let config = ProxyConfig {
        worker_listen: "127.0.0.1:0".parse().unwrap(),
        client_listen: "127.0.0.1:0".parse().unwrap(),
        stats_listen: None,
        worker_pow_difficulty: 4,
        client_pow_difficulty: 4,
        emulated_registration: true,
        emulated_client_deposit: 1_000_000_000_000,
        attestation: AttestationConfig::local_simulated(),
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

async fn upstream(delay_ms: u64) -> FakeUpstream {
    let mut shape = AnswerShape::default();
    shape.chunks = 4;
    shape.chunk_bytes = 16;
    shape.delay = Duration::from_millis(delay_ms);
    let mut config = UpstreamConfig::default();
    config.models = vec![MODEL.into()];
    config.shape = shape;
    FakeUpstream::start(config).await.unwrap()
}

async fn worker(net: &Net, up: &FakeUpstream, coefficient: i32) -> WorkerHandle {
    let before = net.proxy.workers().len();
    let mut engine = EngineConfig::new(up.url());
    engine.models = vec![MODEL.into()];
    let engine = std::sync::Arc::new(UpstreamEngine::new(engine).unwrap());
    let config = WorkerConfig {
        proxies: vec![net.worker_addr.clone()],
        model: Some(MODEL.parse().unwrap()),
        coefficient,
        max_active_requests: 4,
        stats_listen: None,
        attestation: AttestationConfig::local_simulated(),
        ..WorkerConfig::default()
    };
    let w = Worker::new(config, engine).unwrap();
    let handle = w.handle();
    tokio::spawn(w.run(std::future::pending::<()>()));
    for _ in 0..500 {
        if net.proxy.workers().len() > before
            && net
                .proxy
                .workers()
                .iter()
                .all(|w| w.stats.as_ref().is_some_and(|s| s.enabled))
        {
            return handle;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("worker did not register");
}

async fn client(net: &Net) -> Client {
    let config = ClientConfig {
        listen: None,
        proxy: net.client_addr.clone(),
        models_refresh: Duration::ZERO,
        attestation: AttestationConfig::client_local(),
        ..ClientConfig::default()
    };
    let c = Client::start(config).unwrap();
    c.wait_ready(Duration::from_secs(10)).await.unwrap();
    c
}

/// Waits until the proxy sees the worker at `coefficient` enabled or disabled.
async fn until_enabled(net: &Net, coefficient: u32, enabled: bool) {
    for _ in 0..500 {
        let seen = net.proxy.workers().iter().any(|w| {
            w.stats
                .as_ref()
                .is_some_and(|s| s.coefficient.get() == coefficient && s.enabled == enabled)
        });
        if seen {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the proxy never saw the worker at {coefficient} become enabled={enabled}");
}

fn body(preference: Value) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("model".into(), MODEL.into());
    body.insert(
        "messages".into(),
        json!([{"role": "user", "content": "which worker is cheapest?"}]),
    );
    body.insert("max_tokens".into(), 16.into());
    body.insert("worker_preference".into(), preference);
    body
}

async fn post(c: &Client, body: Map<String, Value>) -> (u16, Value) {
    let request = http::Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(
            serde_json::to_vec(&Value::Object(body)).unwrap(),
        ))
        .unwrap();
    let response = cocoon_client::http::router(c.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn models(c: &Client) -> Value {
    let request = http::Request::get("/v1/models")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = cocoon_client::http::router(c.clone())
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_price_preference_reaches_the_cheaper_worker_and_models_show_the_market() {
    let net = proxy().await;
    // The dearer worker is the faster one and registers first, so only the price preference
    // sends requests to the cheaper one.
    let fast = upstream(0).await;
    let slow = upstream(40).await;
    let dear = worker(&net, &fast, 2000).await;
    let cheap = worker(&net, &slow, 1000).await;
    let c = client(&net).await;

    let market = models(&c).await;
    let model = market["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == MODEL)
        .unwrap_or_else(|| panic!("{market}"))
        .clone();
    let m = &model["market"];
    assert_eq!(m["workers"], 2, "{model}");
    assert_eq!(m["coefficient_min"], 1000, "{model}");
    assert_eq!(m["coefficient_median"], 1000, "{model}");
    assert_eq!(m["coefficient_max"], 2000, "{model}");
    assert_eq!(m["workers_free"], 2, "{model}");
    assert_eq!(m["capacity"], 8, "{model}");
    assert_eq!(m["coefficient_min_free"], 1000, "{model}");

    // The cheaper worker serves first (ties go to the lower coefficient) and shows it is slow.
    for _ in 0..2 {
        let (status, json) = post(&c, body("latency".into())).await;
        assert_eq!(status, 200, "{json}");
        assert!(
            json["choices"][0]["message"]["content"].is_string(),
            "{json}"
        );
    }
    assert_eq!(cheap.snapshot().requests, 2);
    // With it disabled the dearer one serves, and shows it is fast.
    cheap.disable().await;
    until_enabled(&net, 1000, false).await;
    for _ in 0..2 {
        let (status, json) = post(&c, body("latency".into())).await;
        assert_eq!(status, 200, "{json}");
    }
    assert_eq!(dear.snapshot().requests, 2);
    cheap.enable().await;
    until_enabled(&net, 1000, true).await;

    // `latency` now prefers the fast, dearer worker...
    let (cheap_before, dear_before) = (cheap.snapshot().requests, dear.snapshot().requests);
    for _ in 0..3 {
        let (status, json) = post(&c, body("latency".into())).await;
        assert_eq!(status, 200, "{json}");
    }
    assert_eq!(dear.snapshot().requests - dear_before, 3);
    assert_eq!(cheap.snapshot().requests, cheap_before);

    // ...and `price` sends every request to the cheaper one.
    let (cheap_before, dear_before) = (cheap.snapshot().requests, dear.snapshot().requests);
    for _ in 0..3 {
        let (status, json) = post(&c, body("price".into())).await;
        assert_eq!(status, 200, "{json}");
    }
    assert_eq!(cheap.snapshot().requests - cheap_before, 3);
    assert_eq!(dear.snapshot().requests, dear_before);

    // A weighted mix is accepted too.
    let (status, json) = post(&c, body("mix:50".into())).await;
    assert_eq!(status, 200, "{json}");

    // A bad value is refused before any worker runs, naming the field.
    let served = cheap.snapshot().requests + dear.snapshot().requests;
    for bad in [json!("cheapest"), json!("mix:101"), json!(7)] {
        let (status, json) = post(&c, body(bad.clone())).await;
        assert_eq!(status, 400, "{bad}: {json}");
        let message = json["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("worker_preference"), "{bad}: {json}");
    }
    assert_eq!(cheap.snapshot().requests + dear.snapshot().requests, served);
}

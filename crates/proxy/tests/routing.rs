//! The three roles in one process, over real loopback sockets, with fake OpenAI upstreams as
//! engines: retry on another worker, capacity, enable/disable, coefficients, balance, and
//! cancellation reaching the engine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use cocoon_node::AttestationConfig;

use cocoon_client::{ChatMessage, ChatRequest, Client, ClientConfig, ClientError, RequestOptions};
use cocoon_infer::upstream::{UpstreamConfig as EngineConfig, UpstreamEngine};
use cocoon_proxy::{Proxy, ProxyConfig, ProxyHandle};
use cocoon_testkit::upstream::AnswerShape;
use cocoon_testkit::{FakeUpstream, UpstreamConfig};
use cocoon_worker::{Worker, WorkerConfig, WorkerHandle};

const MODEL: &str = "Qwen/Qwen3-8B";

struct Net {
    proxy: ProxyHandle,
    worker_addr: String,
    client_addr: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn proxy(deposit: u64) -> Net {
    let config = ProxyConfig {
        worker_listen: "127.0.0.1:0".parse().unwrap(),
        client_listen: "127.0.0.1:0".parse().unwrap(),
        stats_listen: None,
        worker_pow_difficulty: 4,
        client_pow_difficulty: 4,
        emulated_registration: true,
        emulated_client_deposit: deposit,
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

async fn upstream(shape: AnswerShape) -> FakeUpstream {
    let mut config = UpstreamConfig::default();
    config.models = vec![MODEL.into()];
    config.shape = shape;
    FakeUpstream::start(config).await.unwrap()
}

async fn worker(net: &Net, up: &FakeUpstream, coefficient: i32, max_active: usize) -> WorkerHandle {
    worker_with_engine(net, up, coefficient, max_active).await.0
}

async fn worker_with_engine(
    net: &Net,
    up: &FakeUpstream,
    coefficient: i32,
    max_active: usize,
) -> (WorkerHandle, Arc<UpstreamEngine>) {
    let config = WorkerConfig {
        coefficient,
        max_active_requests: max_active,
        ..WorkerConfig::default()
    };
    worker_with_config(net, up, config).await
}

async fn worker_with_config(
    net: &Net,
    up: &FakeUpstream,
    config: WorkerConfig,
) -> (WorkerHandle, Arc<UpstreamEngine>) {
    let before = net.proxy.workers().len();
    let mut engine = EngineConfig::new(up.url());
    engine.models = vec![MODEL.into()];
    let engine = Arc::new(UpstreamEngine::new(engine).unwrap());
    let config = WorkerConfig {
        proxies: vec![net.worker_addr.clone()],
        model: Some(MODEL.parse().unwrap()),
        stats_listen: None,
        attestation: AttestationConfig::local_simulated(),
        ..config
    };
    let w = Worker::new(config, engine.clone()).unwrap();
    let handle = w.handle();
    tokio::spawn(w.run(std::future::pending::<()>()));
    for _ in 0..200 {
        if net.proxy.workers().len() > before {
            return (handle, engine);
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

/// Waits until the proxy sees the only worker in the given state.
async fn until_worker(net: &Net, enabled: bool, coefficient: u32) {
    for _ in 0..500 {
        let workers = net.proxy.workers();
        if let Some(st) = workers.first().and_then(|w| w.stats.as_ref())
            && st.enabled == enabled
            && st.coefficient.get() == coefficient
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the proxy never saw the worker become enabled={enabled} coefficient={coefficient}");
}

fn chat(max_tokens: u32) -> ChatRequest {
    ChatRequest {
        model: MODEL.into(),
        messages: vec![ChatMessage::new("user", "route me somewhere good")],
        max_tokens: Some(max_tokens),
        ..ChatRequest::default()
    }
}

/// A streamed chat completion body, as an integrator's HTTP call brings it.
fn streamed_body(content: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut body = serde_json::Map::new();
    body.insert("model".into(), MODEL.into());
    body.insert(
        "messages".into(),
        serde_json::json!([{"role": "user", "content": content}]),
    );
    body.insert("stream".into(), true.into());
    body
}

fn shape(chunks: u32) -> AnswerShape {
    let mut s = AnswerShape::default();
    s.chunks = chunks;
    s.chunk_bytes = 16;
    s
}

fn slow_shape(chunks: u32, delay_ms: u64) -> AnswerShape {
    let mut s = shape(chunks);
    s.delay = Duration::from_millis(delay_ms);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_worker_is_retried_elsewhere_then_avoided() {
    let net = proxy(1_000_000_000_000).await;
    let mut failing = shape(4);
    failing.fail_status = Some(http::StatusCode::SERVICE_UNAVAILABLE);
    let bad = upstream(failing).await;
    let good = upstream(shape(4)).await;
    worker(&net, &bad, 1000, 10).await; // registered first: tried first
    worker(&net, &good, 1000, 10).await;
    let c = client(&net).await;
    for _ in 0..6 {
        let answer = c.chat(chat(4)).await.unwrap();
        assert!(
            answer.content.contains("route me somewhere good"),
            "{}",
            answer.content
        );
        assert!(answer.usage.total_cost > 0);
    }
    let s = net.proxy.snapshot().await;
    assert_eq!(s.succeeded, 6);
    assert!(s.retried >= 1, "{s:?}");
    assert!(good.stats().requests >= 6);
    assert!(
        bad.stats().requests < 6,
        "the failing worker kept being chosen: {}",
        bad.stats().requests
    );
    let totals = s.ledger.unwrap();
    assert_eq!(totals.requests, 6);
    assert_eq!(
        totals.client_charged,
        totals.worker_credited + totals.proxy_commission
    );
    // Both workers pay into one owner's account: credited once per request, retries included.
    let records = net.proxy.ledger().charged_requests(0, 100).await.unwrap();
    assert_eq!(records.len(), 6);
    let workers = net.proxy.ledger().workers().await.unwrap();
    assert_eq!(workers.len(), 1, "{workers:?}");
    assert_eq!(workers[0].requests, 6);
    assert_eq!(net.proxy.ledger().audit().await.unwrap(), totals);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_disable_and_coefficient_limits() {
    let net = proxy(1_000_000_000_000).await;
    let slow = upstream(slow_shape(40, 50)).await;
    let w = worker(&net, &slow, 1000, 1).await;
    let c = client(&net).await;

    // One slot: a second request while the first streams finds no capacity.
    let mut body = serde_json::Map::new();
    body.insert("model".into(), MODEL.into());
    body.insert(
        "messages".into(),
        serde_json::json!([{"role": "user", "content": "slow"}]),
    );
    body.insert("stream".into(), true.into());
    let first = c
        .request("/v1/chat/completions", body, RequestOptions::default())
        .await
        .unwrap();
    match c.chat(chat(2)).await {
        Err(ClientError::Remote { code: 429, .. }) => {}
        other => panic!("expected 429, got {other:?}"),
    }
    drop(first);

    // Disabled: nothing is routed to it; enabled again: it serves.
    w.disable().await;
    until_worker(&net, false, 1000).await;
    assert!(matches!(
        c.chat(chat(2)).await,
        Err(ClientError::Remote { code: 429, .. })
    ));
    w.enable().await;
    until_worker(&net, true, 1000).await;
    c.chat(chat(2)).await.unwrap();

    // Dearer than the client's maximum: refused; cheaper again: served, and priced by it.
    w.set_coefficient(5000).await.unwrap();
    until_worker(&net, true, 5000).await;
    let mut req = chat(2);
    req.options.max_coefficient = Some(4000);
    assert!(matches!(
        c.chat(req.clone()).await,
        Err(ClientError::Remote { code: 429, .. })
    ));
    w.set_coefficient(1000).await.unwrap();
    until_worker(&net, true, 1000).await;
    let cheap = c.chat(req.clone()).await.unwrap();
    w.set_coefficient(2000).await.unwrap();
    until_worker(&net, true, 2000).await;
    let dear = c.chat(req).await.unwrap();
    assert_eq!(cheap.usage.total_tokens, dear.usage.total_tokens);
    assert!(
        dear.usage.total_cost > cheap.usage.total_cost,
        "{:?} vs {:?}",
        dear.usage,
        cheap.usage
    );
}

/// Waits until the proxy sees the only worker's coefficient satisfy `ok`; answers it.
async fn until_coefficient(net: &Net, ok: impl Fn(u32) -> bool, what: &str) -> u32 {
    for _ in 0..1000 {
        let workers = net.proxy.workers();
        if let Some(st) = workers.first().and_then(|w| w.stats.as_ref())
            && ok(st.coefficient.get())
        {
            return st.coefficient.get();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the proxy never saw the coefficient {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_policy_reprices_the_worker_and_the_proxy_sees_it() {
    let net = proxy(1_000_000_000_000).await;
    let slow = upstream(slow_shape(200, 20)).await;
    let config = WorkerConfig {
        coefficient: 1000,
        max_active_requests: 1,
        pricing: cocoon_market::PricePolicy {
            policy: cocoon_market::PolicyKind::Load,
            floor: 600,
            ceiling: 1500,
            target_utilisation: 0.5,
            dead_band: 0.1,
            gain: 1000.0,
            max_step: 200,
            min_interval_secs: 0,
            smoothing: 1.0,
            ..cocoon_market::PricePolicy::default()
        },
        pricing_tick: Duration::from_millis(20),
        ..WorkerConfig::default()
    };
    let (w, _) = worker_with_config(&net, &slow, config).await;
    let c = client(&net).await;

    // Idle: the price falls to the floor, and the proxy hears of each step.
    until_coefficient(&net, |c| c == 600, "fall to the floor 600").await;
    assert_eq!(w.snapshot().pricing, "load");

    // Its one slot busy: the price climbs toward the ceiling.
    let mut body = streamed_body("slow");
    body.insert("max_tokens".into(), 500.into());
    let busy = c
        .request("/v1/chat/completions", body, RequestOptions::default())
        .await
        .unwrap();
    let risen = until_coefficient(&net, |c| c > 600, "rise above the floor").await;
    assert!(risen <= 1500);
    drop(busy);

    // The operator's price pins it (even above the ceiling) until pricing resumes.
    w.set_coefficient(3000).await.unwrap();
    until_coefficient(&net, |c| c == 3000, "pinned at 3000").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(w.snapshot().coefficient, 3000);
    assert_eq!(w.snapshot().pricing, "pinned");
    assert_eq!(w.resume_pricing().await, 1500);
    until_coefficient(&net, |c| c < 1500, "fall again after resuming").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_answer_cancels_at_the_engine() {
    let net = proxy(1_000_000_000_000).await;
    let slow = upstream(slow_shape(100, 100)).await;
    let (w, engine) = worker_with_engine(&net, &slow, 1000, 10).await;
    let c = client(&net).await;
    let mut answer = c
        .request(
            "/v1/chat/completions",
            streamed_body("long answer"),
            RequestOptions::default(),
        )
        .await
        .unwrap();
    answer.next_chunk().await.unwrap();
    drop(answer);
    // Up to 10 s on a loaded machine; on an idle one the cancel lands in milliseconds.
    for _ in 0..500 {
        if w.snapshot().cancelled == 1 && engine.stats().cancelled >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(w.snapshot().cancelled, 1, "{:?}", w.snapshot());
    let stats = engine.stats();
    assert_eq!(
        (stats.cancelled, stats.active),
        (1, 0),
        "the upstream request was not abandoned: {stats:?}"
    );
    assert_eq!(net.proxy.snapshot().await.cancelled, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_balance_is_refused_before_any_worker_runs() {
    let net = proxy(1000).await;
    let up = upstream(shape(4)).await;
    worker(&net, &up, 1000, 10).await;
    let c = client(&net).await;
    match c.chat(chat(1000)).await {
        Err(e @ ClientError::Remote { code: 402, .. }) => assert_eq!(e.http_status(), 402),
        other => panic!("expected 402, got {other:?}"),
    }
    assert_eq!(up.stats().requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_freezes_the_account_and_is_refused_while_requests_run() {
    use cocoon_client::RefundOutcome;
    use cocoon_market::ClientId;

    let net = proxy(1_000_000_000_000).await;
    let slow = upstream(slow_shape(40, 50)).await;
    worker(&net, &slow, 1000, 10).await;
    let c = client(&net).await;
    let me = ClientId(c.config().owner_address.clone());

    // A request running: refused, nothing frozen.
    let mut answer = c
        .request(
            "/v1/chat/completions",
            streamed_body("long answer"),
            RequestOptions::default(),
        )
        .await
        .unwrap();
    answer.next_chunk().await.unwrap();
    match c.request_refund().await.unwrap() {
        RefundOutcome::Busy { active_queries } => assert!(active_queries >= 1),
        other => panic!("expected a refusal while a request runs, got {other:?}"),
    }
    while answer.next_chunk().await.unwrap().is_some() {}
    // The client has the whole answer; the proxy ends the request (charging it) just after.
    for _ in 0..500 {
        if net.proxy.snapshot().await.succeeded == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(net.proxy.snapshot().await.succeeded, 1);
    let account = net.proxy.ledger().client(&me).await.unwrap().unwrap();
    assert!(account.refund.is_none(), "{account:?}");
    assert!(account.tokens_used > 0);

    // Nothing running: granted (no chain, so no voucher) and the count frozen at what was used.
    // The request's slot is released just after its charge; it must be free within seconds.
    let mut outcome = c.request_refund().await.unwrap();
    for _ in 0..100 {
        if !matches!(outcome, RefundOutcome::Busy { .. }) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        outcome = c.request_refund().await.unwrap();
    }
    assert_eq!(outcome, RefundOutcome::Granted { voucher: None });
    let frozen = net.proxy.ledger().client(&me).await.unwrap().unwrap();
    let grant = frozen.refund.clone().expect("the ledger records the grant");
    assert_eq!(grant.tokens_used, account.tokens_used);
    // Asking again answers the same grant.
    assert_eq!(
        c.request_refund().await.unwrap(),
        RefundOutcome::Granted { voucher: None }
    );

    // A frozen account takes no more requests, and says why.
    match c.chat(chat(50)).await {
        Err(e @ ClientError::Remote { .. }) => {
            assert!(e.to_string().contains("refund"), "{e}");
        }
        other => panic!("expected a refusal after the refund, got {other:?}"),
    }
    let after = net.proxy.ledger().client(&me).await.unwrap().unwrap();
    assert_eq!(after.tokens_used, account.tokens_used);
}

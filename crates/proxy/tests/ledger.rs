//! The proxy's books in its ledger store, with the three roles in one process over loopback:
//! the books and the emulated deposits survive a restart on the same store (an SQLite file,
//! and a PostgreSQL database when a server is given), every usage a client sees is booked once,
//! and an answer whose charge cannot be booked is withheld.
//!
//! PostgreSQL cases read `COCOON_TEST_POSTGRES_URL` (a server where the user may create
//! databases); without it they print a skip line and pass, unless
//! `COCOON_TEST_POSTGRES=required`. `scripts/with-postgres` provides both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cocoon_client::{ChatMessage, ChatRequest, Client, ClientConfig, ClientError, RequestOptions};
use cocoon_infer::upstream::{UpstreamConfig as EngineConfig, UpstreamEngine};
use cocoon_market::{ClientId, WorkerAccountId};
use cocoon_node::AttestationConfig;
use cocoon_proxy::{Proxy, ProxyConfig, ProxyHandle};
use cocoon_testkit::upstream::AnswerShape;
use cocoon_testkit::{FakeUpstream, UpstreamConfig};
use cocoon_worker::{Worker, WorkerConfig};
use sqlx::Connection as _;

const MODEL: &str = "Qwen/Qwen3-8B";
const CLIENT_OWNER: &str = "ledger-test-client";
const WORKER_OWNER: &str = "ledger-test-worker";
const DEPOSIT: u64 = 1_000_000_000;

/// A proxy running in a task.
struct Running {
    handle: ProxyHandle,
    worker_addr: SocketAddr,
    client_addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn start_proxy(
    ledger_url: &str,
    worker_addr: SocketAddr,
    client_addr: SocketAddr,
) -> Running {
    let config = ProxyConfig {
        worker_listen: worker_addr,
        client_listen: client_addr,
        stats_listen: None,
        worker_pow_difficulty: 4,
        client_pow_difficulty: 4,
        emulated_registration: true,
        emulated_client_deposit: DEPOSIT,
        ledger_url: Some(ledger_url.to_owned()),
        attestation: AttestationConfig::local_simulated(),
        ..ProxyConfig::default()
    };
    // The previous proxy's ports may take a moment to be free again.
    let mut tries = 0;
    let proxy = loop {
        match Proxy::bind(config.clone()).await {
            Ok(p) => break p,
            Err(e) if tries < 50 => {
                tries += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("proxy did not start: {e}"),
        }
    };
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    Running {
        handle: proxy.handle(),
        worker_addr: proxy.worker_addr().unwrap(),
        client_addr: proxy.client_addr().unwrap(),
        stop,
        task: tokio::spawn(async move {
            proxy
                .run(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        }),
    }
}

impl Running {
    async fn stop(self) -> ProxyHandle {
        let _ = self.stop.send(());
        self.task.await.unwrap();
        self.handle
    }
}

async fn upstream(chunks: u32, delay_ms: u64) -> FakeUpstream {
    let mut config = UpstreamConfig::default();
    config.models = vec![MODEL.into()];
    let mut shape = AnswerShape::default();
    shape.chunks = chunks;
    shape.chunk_bytes = 16;
    shape.delay = Duration::from_millis(delay_ms);
    config.shape = shape;
    FakeUpstream::start(config).await.unwrap()
}

/// A worker that keeps (re)connecting to `proxy`.
async fn worker(proxy: SocketAddr, up: &FakeUpstream) {
    let mut engine = EngineConfig::new(up.url());
    engine.models = vec![MODEL.into()];
    let engine = Arc::new(UpstreamEngine::new(engine).unwrap());
    let config = WorkerConfig {
        proxies: vec![proxy.to_string()],
        model: Some(MODEL.parse().unwrap()),
        owner_address: WORKER_OWNER.into(),
        stats_listen: None,
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(200),
        attestation: AttestationConfig::local_simulated(),
        ..WorkerConfig::default()
    };
    let w = Worker::new(config, engine).unwrap();
    tokio::spawn(w.run(std::future::pending::<()>()));
}

async fn client(proxy: SocketAddr) -> Client {
    let config = ClientConfig {
        listen: None,
        proxy: proxy.to_string(),
        owner_address: CLIENT_OWNER.into(),
        models_refresh: Duration::ZERO,
        reconnect_min: Duration::from_millis(50),
        attestation: AttestationConfig::client_local(),
        ..ClientConfig::default()
    };
    let c = Client::start(config).unwrap();
    c.wait_ready(Duration::from_secs(10)).await.unwrap();
    c
}

async fn until_worker(proxy: &ProxyHandle) {
    for _ in 0..500 {
        if !proxy.workers().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the worker never registered");
}

fn chat(words: usize, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        model: MODEL.into(),
        messages: vec![ChatMessage::new("user", &vec!["word"; words].join(" "))],
        max_tokens: Some(max_tokens),
        ..ChatRequest::default()
    }
}

/// Chats until one succeeds (the client may still be reconnecting), up to 10 s.
async fn chat_when_ready(c: &Client, request: ChatRequest) -> cocoon_client::ChatAnswer {
    for _ in 0..100 {
        match c.chat(request.clone()).await {
            Ok(answer) => return answer,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("no answer after the restart");
}

// ----- stores -----

/// One case's ledger: a temporary SQLite file, or a fresh PostgreSQL database.
struct Store {
    url: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

static DATABASES: AtomicU64 = AtomicU64::new(0);

impl Store {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            url: dir
                .path()
                .join("ledger.sqlite")
                .to_string_lossy()
                .into_owned(),
            _dir: Some(dir),
            postgres: None,
        }
    }

    async fn postgres(case: &str) -> Option<Self> {
        let Ok(admin) = std::env::var("COCOON_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var("COCOON_TEST_POSTGRES").as_deref() != Ok("required"),
                "COCOON_TEST_POSTGRES=required but COCOON_TEST_POSTGRES_URL is not set"
            );
            let _ = writeln!(
                std::io::stderr(),
                "skipping PostgreSQL case {case}: COCOON_TEST_POSTGRES_URL is not set \
                 (run under scripts/with-postgres)"
            );
            return None;
        };
        let name = format!(
            "cocoon_proxy_{case}_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let (base, params) = match admin.split_once('?') {
            Some((b, p)) => (b, format!("?{p}")),
            None => (admin.as_str(), String::new()),
        };
        let (server, _) = base.rsplit_once('/').unwrap();
        Some(Self {
            url: format!("{server}/{name}{params}"),
            _dir: None,
            postgres: Some((admin.clone(), name)),
        })
    }

    async fn finish(self) {
        if let Some((admin, name)) = &self.postgres {
            let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        }
    }
}

// ----- cases -----

async fn books_and_deposits_survive_a_restart(store: Store) {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let first = start_proxy(&store.url, any, any).await;
    let (worker_addr, client_addr) = (first.worker_addr, first.client_addr);
    let up = upstream(6, 0).await;
    worker(worker_addr, &up).await;
    until_worker(&first.handle).await;
    let c = client(client_addr).await;

    let mut seen_cost = 0i64;
    for n in 1..=5 {
        let answer = c.chat(chat(n, 6)).await.unwrap();
        assert_eq!(answer.usage.completion_tokens, 6);
        seen_cost += answer.usage.total_cost;
    }
    let before = first.handle.snapshot().await.ledger.unwrap();
    assert_eq!(before.requests, 5);
    assert_eq!(before.client_charged, u128::try_from(seen_cost).unwrap());
    let ledger = first.handle.ledger();
    let alice = ledger
        .client(&ClientId(CLIENT_OWNER.into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alice.deposited_nanoton, DEPOSIT);
    assert_eq!(alice.requests, 5);
    let earned = ledger
        .worker(&WorkerAccountId(WORKER_OWNER.into()))
        .await
        .unwrap()
        .unwrap()
        .tokens_earned;
    assert_eq!(u128::from(earned), before.adjusted_tokens);
    first.stop().await;

    // The same store and ports: the worker and the client reconnect by themselves.
    let second = start_proxy(&store.url, worker_addr, client_addr).await;
    assert_eq!(second.handle.ledger_totals().await.unwrap(), before);
    until_worker(&second.handle).await;
    let answer = chat_when_ready(&c, chat(7, 6)).await;
    seen_cost += answer.usage.total_cost;
    for n in 8..=9 {
        seen_cost += c.chat(chat(n, 6)).await.unwrap().usage.total_cost;
    }
    let after = second.handle.ledger().audit().await.unwrap();
    assert_eq!(after.requests, 8);
    assert_eq!(after.client_charged, u128::try_from(seen_cost).unwrap());
    assert_eq!(
        after.client_charged,
        after.worker_credited + after.proxy_commission
    );
    let ledger = second.handle.ledger();
    let alice = ledger
        .client(&ClientId(CLIENT_OWNER.into()))
        .await
        .unwrap()
        .unwrap();
    // Authorizing again after the restart deposited nothing more.
    assert_eq!(alice.deposited_nanoton, DEPOSIT);
    assert_eq!(alice.balance, DEPOSIT);
    assert_eq!(u128::from(alice.charged_nanoton), after.client_charged);
    assert_eq!(alice.reserved_tokens, 0);
    let records = ledger.charged_requests(0, 100).await.unwrap();
    assert_eq!(records.len(), 8);
    // One record per request: the prompts had 1..=9 words (6 skipped), each booked once.
    let mut prompts: Vec<u64> = records
        .iter()
        .map(|r| r.record.tokens.prompt + r.record.tokens.cached)
        .collect();
    prompts.sort_unstable();
    let distinct = prompts.windows(2).all(|w| w[0] < w[1]);
    assert!(distinct, "a request was booked twice: {prompts:?}");
    second.stop().await;
    store.finish().await;
}

async fn an_unbookable_charge_withholds_the_answer(store: Store) {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let proxy = start_proxy(&store.url, any, any).await;
    let up = upstream(30, 30).await;
    worker(proxy.worker_addr, &up).await;
    until_worker(&proxy.handle).await;
    let c = client(proxy.client_addr).await;
    c.chat(chat(3, 4)).await.unwrap();

    // A streamed answer is running when the ledger goes away.
    let mut body = serde_json::Map::new();
    body.insert("model".into(), MODEL.into());
    body.insert(
        "messages".into(),
        serde_json::json!([{"role": "user", "content": "stream while the books close"}]),
    );
    body.insert("stream".into(), true.into());
    body.insert(
        "stream_options".into(),
        serde_json::json!({"include_usage": true}),
    );
    let mut answer = c
        .request("/v1/chat/completions", body, RequestOptions::default())
        .await
        .unwrap();
    answer.next_chunk().await.unwrap();
    proxy.handle.ledger().close().await;
    let mut ended = None;
    for _ in 0..200 {
        match answer.next_chunk().await {
            Ok(Some(_)) => {}
            Ok(None) => {
                ended = Some(Ok(()));
                break;
            }
            Err(e) => {
                ended = Some(Err(e));
                break;
            }
        }
    }
    match ended {
        Some(Err(ClientError::Remote { code: 503, .. })) => {}
        other => panic!("the answer's end was not withheld: {other:?}"),
    }
    assert_eq!(answer.usage().total_cost, 0, "{:?}", answer.usage());
    let totals = proxy.handle.snapshot().await;
    assert!(totals.ledger.is_none() && totals.ledger_error.is_some());

    // New requests are refused while the books are unreadable.
    match c.chat(chat(3, 4)).await {
        Err(ClientError::Remote { code: 503, .. }) => {}
        other => panic!("expected 503, got {other:?}"),
    }
    proxy.stop().await;

    // The books hold the first request only.
    let reopened = cocoon_ledger_store::LedgerStore::inspect(&store.url)
        .await
        .unwrap();
    let totals = reopened.audit().await.unwrap();
    assert_eq!(totals.requests, 1);
    assert!(reopened.reservations().await.unwrap().len() <= 1);
    reopened.close().await;
    store.finish().await;
}

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Store::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(store) = super::Store::postgres(stringify!($case)).await {
                        super::$case(store).await;
                    }
                }
            )*
        }
    };
}

on_both_backends!(
    books_and_deposits_survive_a_restart,
    an_unbookable_charge_withholds_the_answer,
);

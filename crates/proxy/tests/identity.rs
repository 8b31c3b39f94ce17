//! Client and worker identities in local mode (no chain, emulated registration), the three
//! roles in one process over loopback: every spelling of an owner address reaches the one
//! account (funded once, charged for all), a worker's owner is booked under its raw address,
//! a secret configured under one spelling authorizes every spelling and is the only way in for
//! that owner, and an owner that is neither an address nor a local name is refused at connect.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use cocoon_client::{ChatMessage, ChatRequest, Client, ClientConfig, ClientSecret};
use cocoon_infer::upstream::{UpstreamConfig as EngineConfig, UpstreamEngine};
use cocoon_market::ClientId;
use cocoon_node::AttestationConfig;
use cocoon_proxy::{Proxy, ProxyConfig};
use cocoon_testkit::{FakeUpstream, UpstreamConfig};
use cocoon_ton::{Address, FriendlyFlags};
use cocoon_worker::{Worker, WorkerConfig};

const MODEL: &str = "Qwen/Qwen3-8B";
const DEPOSIT: u64 = 1_000_000_000;
const SECRET: &str = "identity test secret, 32 bytes.";

fn spellings(a: &Address) -> Vec<String> {
    let flags = |bounceable| FriendlyFlags {
        bounceable,
        testnet: false,
    };
    vec![
        format!(" {}", a.to_raw().to_uppercase()),
        a.to_friendly(flags(true)),
        a.to_friendly(flags(false)),
    ]
}

fn client_config(proxy: &str, owner: &str) -> ClientConfig {
    ClientConfig {
        listen: None,
        proxy: proxy.to_owned(),
        owner_address: owner.to_owned(),
        models_refresh: Duration::ZERO,
        reconnect_min: Duration::from_millis(50),
        attestation: AttestationConfig::client_local(),
        ..ClientConfig::default()
    }
}

fn chat(words: usize) -> ChatRequest {
    ChatRequest {
        model: MODEL.into(),
        messages: vec![ChatMessage::new("user", &"word ".repeat(words))],
        max_tokens: Some(4),
        ..ChatRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_per_owner_whatever_the_spelling() {
    let owner = Address::new(0, [0x3c; 32]);
    let secret_owner = Address::new(0, [0x4d; 32]);
    let worker_owner = Address::new(0, [0x5e; 32]);
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(SECRET.as_bytes()))
    };
    let config = ProxyConfig {
        worker_listen: "127.0.0.1:0".parse().unwrap(),
        client_listen: "127.0.0.1:0".parse().unwrap(),
        stats_listen: None,
        worker_pow_difficulty: 4,
        client_pow_difficulty: 4,
        emulated_registration: true,
        emulated_client_deposit: DEPOSIT,
        client_secret_hashes: [(secret_owner.to_friendly(FriendlyFlags::default()), hash)]
            .into_iter()
            .collect(),
        attestation: AttestationConfig::local_simulated(),
        ..ProxyConfig::default()
    };
    let proxy = Proxy::bind(config).await.unwrap();
    let handle = proxy.handle();
    let (worker_port, client_port) = (
        proxy.worker_addr().unwrap(),
        proxy.client_addr().unwrap().to_string(),
    );
    tokio::spawn(proxy.run(std::future::pending::<()>()));

    let mut up = UpstreamConfig::default();
    up.models = vec![MODEL.into()];
    let up = FakeUpstream::start(up).await.unwrap();
    let mut engine = EngineConfig::new(up.url());
    engine.models = vec![MODEL.into()];
    let worker = Worker::new(
        WorkerConfig {
            proxies: vec![worker_port.to_string()],
            model: Some(MODEL.parse().unwrap()),
            owner_address: worker_owner.to_friendly(FriendlyFlags {
                bounceable: false,
                testnet: true,
            }),
            stats_listen: None,
            attestation: AttestationConfig::local_simulated(),
            ..WorkerConfig::default()
        },
        Arc::new(UpstreamEngine::new(engine).unwrap()),
    )
    .unwrap();
    tokio::spawn(worker.run(std::future::pending::<()>()));

    // Three spellings, three sessions, one account: deposited once, charged for all.
    for (i, spelling) in spellings(&owner).iter().enumerate() {
        let c = Client::start(client_config(&client_port, spelling)).unwrap();
        c.wait_ready(Duration::from_secs(10)).await.unwrap();
        let mut answer = None;
        for _ in 0..100 {
            match c.chat(chat(3 + i)).await {
                Ok(a) => {
                    answer = Some(a);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        assert!(answer.unwrap().usage.total_cost > 0);
        c.shutdown();
    }
    let ledger = handle.ledger();
    let clients = ledger.clients().await.unwrap();
    assert_eq!(clients.len(), 1, "{clients:?}");
    let account = &clients[0];
    assert_eq!(account.client, ClientId(owner.to_raw()));
    assert_eq!(account.deposited_nanoton, DEPOSIT);
    assert!(account.tokens_used > 0 && account.charged_nanoton > 0);
    let records = ledger.charged_requests(0, 100).await.unwrap();
    assert_eq!(records.len(), 3);
    let workers = ledger.workers().await.unwrap();
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].worker.0, worker_owner.to_raw());
    assert_eq!(handle.workers()[0].owner, worker_owner.to_raw());

    // The secret configured under the friendly form authorizes the raw upper-case spelling;
    // without it the same owner gets no session.
    let mut with_secret = client_config(&client_port, &spellings(&secret_owner)[0]);
    with_secret.secret = Some(ClientSecret::new(SECRET).unwrap());
    let c = Client::start(with_secret).unwrap();
    c.wait_ready(Duration::from_secs(10)).await.unwrap();
    c.shutdown();
    let without = Client::start(client_config(&client_port, &secret_owner.to_raw())).unwrap();
    let refused = without
        .wait_ready(Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("secret"), "{refused}");
    without.shutdown();

    // Neither an address nor a local name: refused at connect.
    let bad = Client::start(client_config(&client_port, "0:not-hex")).unwrap();
    let refused = bad.wait_ready(Duration::from_secs(2)).await.unwrap_err();
    assert!(
        refused.to_string().contains("neither a TON address"),
        "{refused}"
    );
    bad.shutdown();
    let clients = ledger.clients().await.unwrap();
    assert_eq!(
        clients.len(),
        2,
        "the owner and the secret owner: {clients:?}"
    );
}

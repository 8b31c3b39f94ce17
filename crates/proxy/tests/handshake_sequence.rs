//! Our worker and client open their sessions with the same message sequence as the reference
//! implementation's recorded transcripts. A recording relay sits between each node and the
//! proxy (terminating RA-TLS with simulated evidence, which local-mode nodes accept) and
//! decodes every frame the node sends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cocoon_client::{Client, ClientConfig};
use cocoon_infer::upstream::{UpstreamConfig as EngineConfig, UpstreamEngine};
use cocoon_node::AttestationConfig;
use cocoon_protocol::messages::{Message, tcp};
use cocoon_protocol::tl;
use cocoon_proxy::{Proxy, ProxyConfig};
use cocoon_testkit::{FakeUpstream, RecordingRelay, UpstreamConfig};
use cocoon_worker::{Worker, WorkerConfig};

const MODEL: &str = "Qwen/Qwen3-8B";

/// The first messages of each recorded node → proxy stream (see
/// `crates/protocol/tests/data/interop/streams.txt`).
fn recorded(file: &str, n: usize) -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../protocol/tests/data/interop/streams.txt"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let line = text.lines().find(|l| l.starts_with(file)).unwrap();
    line.split(' ')
        .nth(3)
        .unwrap()
        .split(',')
        .take(n)
        .map(str::to_owned)
        .collect()
}

/// The names of the messages a node sent through `relay`, in order.
fn names(relay: &RecordingRelay) -> Vec<String> {
    relay
        .recording()
        .to_proxy
        .into_iter()
        .map(|body| {
            let packet: tcp::AnyPacket = tl::from_bytes(Bytes::from(body)).unwrap();
            match packet {
                tcp::AnyPacket::Query(q) => tl::from_bytes::<Message>(q.data)
                    .unwrap()
                    .constructor_name()
                    .to_owned(),
                tcp::AnyPacket::Packet(p) => tl::from_bytes::<Message>(p.data)
                    .unwrap()
                    .constructor_name()
                    .to_owned(),
                other => other.constructor_name().to_owned(),
            }
        })
        .collect()
}

async fn wait_for(relay: &RecordingRelay, n: usize) -> Vec<String> {
    for _ in 0..500 {
        if relay.recording().to_proxy.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    names(relay).into_iter().take(n).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_and_client_handshakes_match_the_reference() {
    let secret = "handshake test secret 0123456789";
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(secret.as_bytes()))
    };
    let config = ProxyConfig {
        worker_listen: "127.0.0.1:0".parse().unwrap(),
        client_listen: "127.0.0.1:0".parse().unwrap(),
        stats_listen: None,
        worker_pow_difficulty: 4,
        client_pow_difficulty: 4,
        emulated_client_deposit: 1_000_000_000,
        client_secret_hashes: [("e2e-owner".to_owned(), hash)].into_iter().collect(),
        attestation: AttestationConfig::local_simulated(),
        ..ProxyConfig::default()
    };
    let proxy = Proxy::bind(config).await.unwrap();
    let (worker_port, client_port) = (proxy.worker_addr().unwrap(), proxy.client_addr().unwrap());
    tokio::spawn(proxy.run(std::future::pending::<()>()));

    let mut up = UpstreamConfig::default();
    up.models = vec![MODEL.into()];
    let up = FakeUpstream::start(up).await.unwrap();
    let worker_relay = RecordingRelay::start(worker_port.to_string())
        .await
        .unwrap();
    let mut engine = EngineConfig::new(up.url());
    engine.models = vec![MODEL.into()];
    let worker = Worker::new(
        WorkerConfig {
            proxies: vec![worker_relay.addr().to_owned()],
            model: Some(MODEL.parse().unwrap()),
            stats_listen: None,
            attestation: AttestationConfig::local_simulated(),
            ..WorkerConfig::default()
        },
        Arc::new(UpstreamEngine::new(engine).unwrap()),
    )
    .unwrap();
    tokio::spawn(worker.run(std::future::pending::<()>()));
    let expected = recorded("worker-proxy.worker_to_proxy.bin", 4);
    assert_eq!(wait_for(&worker_relay, 4).await, expected);

    let client_relay = RecordingRelay::start(client_port.to_string())
        .await
        .unwrap();
    let client = Client::start(ClientConfig {
        listen: None,
        proxy: client_relay.addr().to_owned(),
        attestation: AttestationConfig::client_local(),
        owner_address: "e2e-owner".into(),
        secret: Some(cocoon_client::ClientSecret::new(secret).unwrap()),
        ..ClientConfig::default()
    })
    .unwrap();
    client.wait_ready(Duration::from_secs(10)).await.unwrap();
    let models = client.models().await.unwrap();
    assert_eq!(models[0].id, MODEL);
    let expected = recorded("client-proxy.client_to_proxy.bin", 4);
    assert_eq!(wait_for(&client_relay, 4).await, expected);
}

//! Our worker and client open their sessions with the same message sequence as the reference
//! implementation's recorded transcripts. A recording relay sits between each node and the
//! proxy and decodes every frame the node sends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use cocoon_client::{Client, ClientConfig};
use cocoon_infer::upstream::{UpstreamConfig as EngineConfig, UpstreamEngine};
use cocoon_protocol::messages::{Message, tcp};
use cocoon_protocol::{FrameDecoder, tl};
use cocoon_proxy::{Proxy, ProxyConfig};
use cocoon_testkit::{FakeUpstream, UpstreamConfig};
use cocoon_worker::{Worker, WorkerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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

/// Accepts one connection, forwards it to `target`, and records the names of the messages the
/// node sends once the 12-byte proof-of-work answer has passed.
async fn recording_relay(target: String) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let names = Arc::new(Mutex::new(Vec::new()));
    let out = names.clone();
    tokio::spawn(async move {
        let (mut node, _) = listener.accept().await.unwrap();
        let mut proxy = TcpStream::connect(target).await.unwrap();
        let (mut node_rd, mut node_wr) = node.split();
        let (mut proxy_rd, mut proxy_wr) = proxy.split();
        let upstream = async {
            let mut seen = BytesMut::new();
            let mut pow_left = cocoon_protocol::pow::ANSWER_LEN;
            let mut decoder = FrameDecoder::default();
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = node_rd.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                proxy_wr.write_all(&buf[..n]).await.unwrap();
                let skip = pow_left.min(n);
                pow_left -= skip;
                seen.extend_from_slice(&buf[skip..n]);
                while let Some(frame) = decoder.decode(&mut seen).unwrap() {
                    let packet: tcp::AnyPacket = tl::from_bytes(frame.body).unwrap();
                    let name = match packet {
                        tcp::AnyPacket::Query(q) => tl::from_bytes::<Message>(q.data)
                            .unwrap()
                            .constructor_name()
                            .to_owned(),
                        tcp::AnyPacket::Packet(p) => tl::from_bytes::<Message>(p.data)
                            .unwrap()
                            .constructor_name()
                            .to_owned(),
                        other => other.constructor_name().to_owned(),
                    };
                    out.lock().unwrap().push(name);
                }
            }
        };
        let downstream = tokio::io::copy(&mut proxy_rd, &mut node_wr);
        let _ = tokio::join!(upstream, downstream);
    });
    (addr, names)
}

async fn wait_for(names: &Arc<Mutex<Vec<String>>>, n: usize) -> Vec<String> {
    for _ in 0..500 {
        if names.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    names.lock().unwrap().iter().take(n).cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_and_client_handshakes_match_the_reference() {
    let secret = "client secret";
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
        ..ProxyConfig::default()
    };
    let proxy = Proxy::bind(config).await.unwrap();
    let (worker_port, client_port) = (proxy.worker_addr().unwrap(), proxy.client_addr().unwrap());
    tokio::spawn(proxy.run(std::future::pending::<()>()));

    let mut up = UpstreamConfig::default();
    up.models = vec![MODEL.into()];
    let up = FakeUpstream::start(up).await.unwrap();
    let (worker_relay, worker_names) = recording_relay(worker_port.to_string()).await;
    let mut engine = EngineConfig::new(up.url());
    engine.models = vec![MODEL.into()];
    let worker = Worker::new(
        WorkerConfig {
            proxies: vec![worker_relay],
            model: MODEL.into(),
            stats_listen: None,
            ..WorkerConfig::default()
        },
        Arc::new(UpstreamEngine::new(engine).unwrap()),
    )
    .unwrap();
    tokio::spawn(worker.run(std::future::pending::<()>()));
    let expected = recorded("worker-proxy.worker_to_proxy.bin", 4);
    assert_eq!(wait_for(&worker_names, 4).await, expected);

    let (client_relay, client_names) = recording_relay(client_port.to_string()).await;
    let client = Client::start(ClientConfig {
        listen: None,
        proxy: client_relay,
        owner_address: "e2e-owner".into(),
        secret: Some(secret.into()),
        ..ClientConfig::default()
    })
    .unwrap();
    client.wait_ready(Duration::from_secs(10)).await.unwrap();
    let models = client.models().await.unwrap();
    assert_eq!(models[0].id, MODEL);
    let expected = recorded("client-proxy.client_to_proxy.bin", 4);
    assert_eq!(wait_for(&client_names, 4).await, expected);
}

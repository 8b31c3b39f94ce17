//! The proxy's ports against peers that connect and then stall: a connection that never
//! answers the proof of work, a client session that never authorizes, a worker session that
//! never completes its handshake, and one address opening more than its share. Each is cut at
//! its deadline or refused, while a genuine client stays connected.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use cocoon_attest::ratls::ClaimsFormat;
use cocoon_client::{Client, ClientConfig};
use cocoon_net::{ConnectionConfig, PortLimits, TlsEndpoint};
use cocoon_node::AttestationConfig;
use cocoon_protocol::messages::client;
use cocoon_protocol::tl::TlConstructor;
use cocoon_proxy::{Proxy, ProxyConfig, ProxyHandle};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

struct Net {
    proxy: ProxyHandle,
    worker_addr: String,
    client_addr: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

const GATE: Duration = Duration::from_millis(400);
const AUTHORIZE: Duration = Duration::from_millis(600);

async fn proxy(max_per_address: usize) -> Net {
    let limits = PortLimits {
        max_connections: 64,
        max_per_address,
        handshake_timeout: GATE,
        authorize_timeout: AUTHORIZE,
    };
    let config = ProxyConfig {
        worker_listen: "127.0.0.1:0".parse().unwrap(),
        client_listen: "127.0.0.1:0".parse().unwrap(),
        stats_listen: None,
        worker_pow_difficulty: 4,
        client_pow_difficulty: 4,
        emulated_registration: true,
        emulated_client_deposit: 1_000_000_000,
        attestation: AttestationConfig::local_simulated(),
        client_port: limits,
        worker_port: limits,
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

fn endpoint(attestation: AttestationConfig) -> TlsEndpoint {
    let identity = attestation.identity(ClaimsFormat::Reference).unwrap();
    attestation.endpoint(identity).unwrap()
}

/// How long the proxy took to close `conn`.
async fn closed_after(conn: &cocoon_net::Connection, started: Instant) -> Duration {
    tokio::time::timeout(Duration::from_secs(10), conn.closed())
        .await
        .expect("the proxy kept the session open");
    started.elapsed()
}

#[tokio::test]
async fn a_client_session_that_never_authorizes_is_closed() {
    let net = proxy(8).await;
    // A genuine client connects and authorizes; it outlives the deadline.
    let genuine = Client::start(ClientConfig {
        listen: None,
        proxy: net.client_addr.clone(),
        attestation: AttestationConfig::client_local(),
        ..ClientConfig::default()
    })
    .unwrap();

    // One session opens and says nothing.
    let started = Instant::now();
    let silent = cocoon_net::dial(
        &net.client_addr,
        28,
        &endpoint(AttestationConfig::client_local()),
        ConnectionConfig::dialer(),
    )
    .await
    .unwrap();
    // Another says hello and never authorizes.
    let hello = cocoon_net::dial(
        &net.client_addr,
        28,
        &endpoint(AttestationConfig::client_local()),
        ConnectionConfig::dialer(),
    )
    .await
    .unwrap();
    let connect = client::ConnectToProxy {
        params: client::Params {
            flags: 0b11,
            client_owner_address: "never-authorizes".into(),
            is_test: Some(true),
            min_proto_version: Some(1),
            max_proto_version: Some(3),
        },
        min_config_version: 0,
    };
    hello
        .conn
        .query(Bytes::from(connect.to_boxed_bytes()))
        .await
        .unwrap();

    let took = closed_after(&silent.conn, started).await;
    assert!(took >= AUTHORIZE && took < AUTHORIZE * 4, "{took:?}");
    let took = closed_after(&hello.conn, started).await;
    assert!(took >= AUTHORIZE && took < AUTHORIZE * 4, "{took:?}");

    // The authorized client is still connected well past the deadline.
    tokio::time::sleep(AUTHORIZE).await;
    assert!(genuine.is_connected());
    assert!(net.proxy.snapshot().await.clients_connected >= 1);
    genuine.shutdown();
}

#[tokio::test]
async fn a_worker_that_never_completes_its_handshake_is_dropped() {
    let net = proxy(8).await;
    let started = Instant::now();
    let worker = cocoon_net::dial(
        &net.worker_addr,
        28,
        &endpoint(AttestationConfig::local_simulated()),
        ConnectionConfig::dialer(),
    )
    .await
    .unwrap();
    let took = closed_after(&worker.conn, started).await;
    assert!(took >= AUTHORIZE && took < AUTHORIZE * 4, "{took:?}");
    assert!(net.proxy.workers().is_empty());
}

#[tokio::test]
async fn silent_connections_are_cut_at_the_gate_and_one_address_gets_its_share() {
    let net = proxy(2).await;
    let started = Instant::now();
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut tcp = TcpStream::connect(&net.client_addr).await.unwrap();
        let mut challenge = [0u8; cocoon_protocol::pow::CHALLENGE_LEN];
        tcp.read_exact(&mut challenge).await.unwrap();
        held.push(tcp);
    }
    // The third from the same address is closed at once, without a challenge.
    let mut third = TcpStream::connect(&net.client_addr).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), third.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    let ports = net.proxy.snapshot().await.client_port;
    assert_eq!(ports.open, 2);
    assert_eq!(ports.refused, 1);

    // The two admitted ones never answer: the gate's deadline closes them.
    for mut tcp in held {
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .unwrap();
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    }
    let took = started.elapsed();
    assert!(took >= GATE && took < GATE * 5, "{took:?}");
    // Their places are given back.
    tokio::time::timeout(Duration::from_secs(2), async {
        while net.proxy.snapshot().await.client_port.open > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
}

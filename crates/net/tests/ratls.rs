//! The transport stack with RA-TLS: proof of work first, then mutually attested TLS 1.3, then
//! the session; peers that fail policy never get a session, and each side learns why.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cocoon_attest::ratls::{CertificateIssuer, TlsKeyPair};
use cocoon_attest::{
    Clock, EvidenceKind, EvidenceVerifier, ManualClock, Policy, SimulatedAttester, SystemClock,
};
use cocoon_net::{
    ConnectionConfig, Inbound, LocalIdentity, NetError, Secured, TlsEndpoint, accept_gated, dial,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn simulated_identity() -> Arc<LocalIdentity> {
    let issuer = CertificateIssuer::new(
        TlsKeyPair::generate().unwrap(),
        Arc::new(SimulatedAttester::new()),
    );
    Arc::new(LocalIdentity::new(issuer, Arc::new(SystemClock)).unwrap())
}

fn unattested_identity() -> Arc<LocalIdentity> {
    let issuer = CertificateIssuer::unattested(TlsKeyPair::generate().unwrap());
    Arc::new(LocalIdentity::new(issuer, Arc::new(SystemClock)).unwrap())
}

fn endpoint(identity: Arc<LocalIdentity>, policy: Policy) -> TlsEndpoint {
    TlsEndpoint::new(identity, policy, Arc::new(EvidenceVerifier::default()))
        .unwrap()
        .with_handshake_timeout(Duration::from_secs(5))
}

/// Starts an acceptor on a free port; its result comes back on the returned channel.
async fn acceptor(
    server: TlsEndpoint,
    difficulty: i32,
) -> (
    String,
    tokio::sync::oneshot::Receiver<Result<Secured, NetError>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let config = ConnectionConfig {
            open_timeout: Duration::from_secs(5),
            ..ConnectionConfig::acceptor()
        };
        let result = accept_gated(tcp, difficulty, &server, config).await;
        let _ = tx.send(result);
    });
    (addr, rx)
}

#[tokio::test]
async fn simulated_peers_meet_under_the_local_policy_and_talk() {
    let server = endpoint(simulated_identity(), Policy::local_simulated());
    let server_key = server.identity().public_key();
    let (addr, accepted) = acceptor(server, 4).await;
    let client_identity = simulated_identity();
    let client_key = client_identity.public_key();
    let client = endpoint(client_identity, Policy::local_simulated());

    let dialed = dial(&addr, 28, &client, ConnectionConfig::dialer())
        .await
        .unwrap();
    assert_eq!(dialed.peer.public_key, server_key);
    assert_eq!(dialed.peer.evidence_kind, EvidenceKind::Simulated);
    assert!(dialed.peer.is_simulated());
    assert!(dialed.peer.image_hash.is_some());

    let mut accepted = accepted.await.unwrap().unwrap();
    assert_eq!(accepted.peer.public_key, client_key);
    assert!(accepted.peer.is_simulated());

    // The session runs over the TLS stream.
    let answer = tokio::spawn(async move {
        match accepted.incoming.recv().await.unwrap() {
            Inbound::Query(q) => q.answer(Bytes::from_static(b"pong")).await.unwrap(),
            Inbound::Packet(_) => panic!("expected a query"),
        }
        accepted
    });
    let reply = dialed
        .conn
        .query(Bytes::from_static(b"ping"))
        .await
        .unwrap();
    assert_eq!(&reply[..], b"pong");
    answer.await.unwrap();
}

#[tokio::test]
async fn production_policy_refuses_a_simulated_server_and_says_why() {
    let server = endpoint(simulated_identity(), Policy::local_simulated());
    let (addr, accepted) = acceptor(server, 0).await;
    let client = endpoint(unattested_identity(), Policy::production());

    let err = dial(&addr, 28, &client, ConnectionConfig::dialer())
        .await
        .unwrap_err();
    match &err {
        NetError::PeerRefused(reason) => {
            assert!(reason.to_lowercase().contains("simulated"), "{reason}")
        }
        other => panic!("expected PeerRefused, got {other:?}"),
    }
    // The server never got a session: it sees the client's alert.
    let server_side = accepted.await.unwrap().unwrap_err();
    assert!(
        matches!(server_side, NetError::Tls(_) | NetError::Io(_)),
        "{server_side:?}"
    );
}

#[tokio::test]
async fn the_accepting_side_refuses_a_dialer_without_evidence() {
    // A proxy's worker port: workers must be attested; an unattested node is refused.
    let server = endpoint(simulated_identity(), Policy::local_simulated());
    let (addr, accepted) = acceptor(server, 0).await;
    let client = endpoint(unattested_identity(), Policy::local_simulated());

    let client_side = dial(&addr, 28, &client, ConnectionConfig::dialer()).await;
    let server_side = accepted.await.unwrap().unwrap_err();
    match &server_side {
        NetError::PeerRefused(reason) => assert!(reason.contains("lacks extension"), "{reason}"),
        other => panic!("expected PeerRefused, got {other:?}"),
    }
    // In TLS 1.3 the client may finish its side before the server's verdict arrives; either
    // way it gets no working session.
    if let Ok(secured) = client_side {
        let err = secured
            .conn
            .query_with_timeout(Bytes::from_static(b"x"), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(!matches!(err, NetError::QueryFailed { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn an_unattested_client_is_accepted_where_the_policy_allows_it() {
    // A proxy's client port: integrators' clients run in no TEE.
    let server = endpoint(simulated_identity(), Policy::any());
    let (addr, accepted) = acceptor(server, 0).await;
    let client = endpoint(unattested_identity(), Policy::local_simulated());
    let dialed = dial(&addr, 28, &client, ConnectionConfig::dialer())
        .await
        .unwrap();
    assert!(dialed.peer.is_simulated());
    let accepted = accepted.await.unwrap().unwrap();
    assert_eq!(accepted.peer.evidence_kind, EvidenceKind::Unattested);
}

#[tokio::test]
async fn proof_of_work_comes_before_tls() {
    let server = endpoint(simulated_identity(), Policy::local_simulated());
    let (addr, accepted) = acceptor(server, 30).await;
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // The first bytes are the challenge, not a TLS record.
    let mut challenge = [0u8; cocoon_protocol::pow::CHALLENGE_LEN];
    tcp.read_exact(&mut challenge).await.unwrap();
    assert_eq!(&challenge[..4], &0x418e_1291_u32.to_le_bytes());
    // A TLS ClientHello instead of an answer fails the gate; no handshake is attempted.
    tcp.write_all(&[0x16, 0x03, 0x01, 0x00, 0x10, 1, 2, 3, 4, 5, 6, 7])
        .await
        .unwrap();
    let err = accepted.await.unwrap().unwrap_err();
    assert!(
        matches!(err, NetError::Pow(_) | NetError::Protocol(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_difficulty_above_the_dialers_limit_is_refused_before_tls() {
    let server = endpoint(simulated_identity(), Policy::local_simulated());
    let (addr, _accepted) = acceptor(server, 40).await;
    let client = endpoint(simulated_identity(), Policy::local_simulated());
    let err = dial(&addr, 28, &client, ConnectionConfig::dialer())
        .await
        .unwrap_err();
    assert!(
        matches!(err, NetError::Protocol(_) | NetError::Pow(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn certificates_are_refreshed_and_new_handshakes_use_them() {
    let clock = Arc::new(ManualClock::new(SystemClock.now_unix()));
    let issuer = CertificateIssuer::new(
        TlsKeyPair::generate().unwrap(),
        Arc::new(SimulatedAttester::new()),
    );
    let identity = Arc::new(LocalIdentity::new(issuer, clock.clone()).unwrap());
    let first = identity.certificate();
    assert!(!identity.refresh_if_due().unwrap());
    clock.advance(3600);
    assert!(identity.refresh_if_due().unwrap());
    let second = identity.certificate();
    assert_ne!(first.der, second.der);
    assert!(second.not_after > first.not_after);

    // A peer dialing now sees the new certificate.
    let server = TlsEndpoint::new(
        identity,
        Policy::local_simulated(),
        Arc::new(EvidenceVerifier::default()),
    )
    .unwrap();
    let (addr, _accepted) = acceptor(server, 0).await;
    let client_issuer = CertificateIssuer::new(
        TlsKeyPair::generate().unwrap(),
        Arc::new(SimulatedAttester::new()),
    );
    let client_identity = Arc::new(LocalIdentity::new(client_issuer, clock.clone()).unwrap());
    let client = endpoint(client_identity, Policy::local_simulated());
    let dialed = dial(&addr, 28, &client, ConnectionConfig::dialer())
        .await
        .unwrap();
    assert_eq!(
        dialed.peer.certificate_not_after,
        i64::try_from(second.not_after).unwrap()
    );
}

#[tokio::test]
async fn a_peer_that_answers_the_work_and_stalls_in_tls_is_dropped_at_the_deadline() {
    let server = endpoint(simulated_identity(), Policy::local_simulated());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let config = ConnectionConfig {
            open_timeout: Duration::from_millis(400),
            ..ConnectionConfig::acceptor()
        };
        let started = std::time::Instant::now();
        (
            accept_gated(tcp, 4, &server, config).await,
            started.elapsed(),
        )
    });
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    cocoon_net::pow::solve(&mut tcp, 28, Duration::from_secs(5))
        .await
        .unwrap();
    // Then nothing: no ClientHello.
    let (result, took) = accepted.await.unwrap();
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            NetError::Deadline {
                stage: "TLS handshake",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test]
async fn dialing_a_stalled_proxy_gives_up_within_the_open_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    // Accepts and never sends its challenge.
    let held = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(tcp);
    });
    let client = endpoint(simulated_identity(), Policy::local_simulated());
    let config = ConnectionConfig {
        open_timeout: Duration::from_millis(300),
        ..ConnectionConfig::dialer()
    };
    let started = std::time::Instant::now();
    let err = dial(&addr, 28, &client, config).await.unwrap_err();
    assert!(
        matches!(
            err,
            NetError::Deadline {
                stage: "proof-of-work challenge",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    held.abort();
}

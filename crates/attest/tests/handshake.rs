//! Real mutual TLS 1.3 handshakes over an in-memory duplex pipe (tokio-rustls, ring), with
//! simulated evidence on both sides, and the ways they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use cocoon_attest::digest::Digest;
use cocoon_attest::ratls::{
    CertificateIssuer, ClaimsFormat, RaTlsIdentity, RaTlsVerifier, TlsKeyPair, client_config,
    server_config, verified_peer,
};
use cocoon_attest::{
    AttestError, Clock, EvidenceKind, EvidenceVerifier, ManualClock, Policy, SimulatedAttester,
};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const NOW: u64 = 1_800_000_000;

/// rustls time source pinned at [`NOW`], for hand-built configurations.
#[derive(Debug)]
struct FixedTime;

impl rustls::time_provider::TimeProvider for FixedTime {
    fn current_time(&self) -> Option<rustls::pki_types::UnixTime> {
        Some(rustls::pki_types::UnixTime::since_unix_epoch(
            std::time::Duration::from_secs(NOW),
        ))
    }
}

struct Node {
    issuer: CertificateIssuer,
    identity: Arc<RaTlsIdentity>,
}

fn node(seed: u8, attester: SimulatedAttester, now: u64) -> Node {
    let issuer = CertificateIssuer::new(
        TlsKeyPair::from_seed(&[seed; 32]).unwrap(),
        Arc::new(attester),
    )
    .with_claims_format(ClaimsFormat::V1 {
        sealing_public_key: None,
        gpu_evidence_digest: None,
        model_hash: None,
    });
    let identity = issuer.identity(now).unwrap();
    Node { issuer, identity }
}

fn verifier(policy: Policy) -> Arc<RaTlsVerifier> {
    Arc::new(RaTlsVerifier::new(
        policy,
        Arc::new(EvidenceVerifier::default()),
    ))
}

type Outcome = (
    Result<tokio_rustls::server::TlsStream<tokio::io::DuplexStream>, std::io::Error>,
    Result<tokio_rustls::client::TlsStream<tokio::io::DuplexStream>, std::io::Error>,
);

async fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
) -> Outcome {
    let (c, s) = tokio::io::duplex(256 * 1024);
    let accept = tokio::spawn(async move { TlsAcceptor::from(server).accept(s).await });
    let name = ServerName::try_from("localhost").unwrap();
    let mut connected = TlsConnector::from(client).connect(name, c).await;
    // In TLS 1.3 the client finishes before the server has judged its certificate; a read
    // surfaces the server's verdict.
    if let Ok(stream) = &mut connected {
        let _ = stream.write_all(b"ping").await;
        let _ = stream.flush().await;
    }
    let accepted = accept.await.unwrap();
    (accepted, connected)
}

fn attest_error(err: &std::io::Error) -> &AttestError {
    AttestError::find_in(err).unwrap_or_else(|| panic!("no AttestError in {err:?}"))
}

#[tokio::test]
async fn mutual_handshake_with_simulated_evidence() {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(NOW));
    let server = node(1, SimulatedAttester::new(), NOW);
    let client = node(2, SimulatedAttester::new(), NOW);
    let server_verifier = verifier(Policy::local_simulated());
    let client_verifier = verifier(Policy::local_simulated());
    let (accepted, connected) = handshake(
        server_config(
            server.identity.clone(),
            server_verifier.clone(),
            clock.clone(),
        )
        .unwrap(),
        client_config(
            client.identity.clone(),
            client_verifier.clone(),
            clock.clone(),
        )
        .unwrap(),
    )
    .await;
    let mut server_stream = accepted.expect("server accepted");
    let mut client_stream = connected.expect("client connected");

    let mut buf = [0u8; 4];
    server_stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    server_stream.write_all(b"pong").await.unwrap();
    server_stream.flush().await.unwrap();
    client_stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");

    let (_, client_conn) = client_stream.get_ref();
    assert_eq!(
        client_conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    let suite = client_conn.negotiated_cipher_suite().unwrap().suite();
    assert!(
        [
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
        ]
        .contains(&suite),
        "{suite:?}"
    );
    assert_eq!(
        client_conn.handshake_kind(),
        Some(rustls::HandshakeKind::Full)
    );

    // After the handshake each side learns who the other is (a cache hit).
    let server_seen = verified_peer(
        client_conn.peer_certificates().unwrap(),
        &client_verifier.policy(),
        client_verifier.evidence_verifier(),
        NOW,
    )
    .unwrap();
    assert_eq!(server_seen.public_key, server.issuer.key().public_key());
    assert_eq!(server_seen.evidence_kind, EvidenceKind::Simulated);
    assert!(client_verifier.evidence_verifier().cache().stats().hits >= 1);
    let (_, server_conn) = server_stream.get_ref();
    let client_seen = server_verifier
        .verify_peer(server_conn.peer_certificates().unwrap(), NOW)
        .unwrap();
    assert_eq!(client_seen.public_key, client.issuer.key().public_key());
    let claims = client_seen.claims.unwrap();
    assert_eq!(claims.extended.unwrap().issued_at, NOW);
}

#[tokio::test]
async fn production_client_refuses_a_simulated_server() {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(NOW));
    let server = node(3, SimulatedAttester::new(), NOW);
    let client = node(4, SimulatedAttester::new(), NOW);
    let (accepted, connected) = handshake(
        server_config(
            server.identity,
            verifier(Policy::local_simulated()),
            clock.clone(),
        )
        .unwrap(),
        client_config(client.identity, verifier(Policy::production()), clock).unwrap(),
    )
    .await;
    let err = connected.unwrap_err();
    assert!(
        matches!(attest_error(&err), AttestError::SimulatedEvidenceRefused),
        "{err}"
    );
    assert!(accepted.is_err(), "the server sees the client's alert");
}

#[tokio::test]
async fn server_refuses_a_client_with_unlisted_measurements() {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(NOW));
    let server = node(5, SimulatedAttester::new(), NOW);
    let client = node(6, SimulatedAttester::new(), NOW);
    let strict = Policy::local_simulated().with_mrtds([Digest([0x42; 48])]);
    let (accepted, connected) = handshake(
        server_config(server.identity, verifier(strict), clock.clone()).unwrap(),
        client_config(client.identity, verifier(Policy::local_simulated()), clock).unwrap(),
    )
    .await;
    let err = accepted.unwrap_err();
    assert!(
        matches!(attest_error(&err), AttestError::MrtdNotAllowed { .. }),
        "{err}"
    );
    // The client learns only that the server refused it.
    if let Ok(mut stream) = connected {
        let mut buf = [0u8; 1];
        assert!(stream.read(&mut buf).await.map(|n| n == 0).unwrap_or(true));
    }
}

#[tokio::test]
async fn debug_server_is_refused() {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(NOW));
    let mut m = SimulatedAttester::new().measurements().clone();
    m.td_attributes.0 |= 1;
    let server = node(7, SimulatedAttester::with_measurements(m), NOW);
    let client = node(8, SimulatedAttester::new(), NOW);
    let (_, connected) = handshake(
        server_config(
            server.identity,
            verifier(Policy::local_simulated()),
            clock.clone(),
        )
        .unwrap(),
        client_config(client.identity, verifier(Policy::local_simulated()), clock).unwrap(),
    )
    .await;
    let err = connected.unwrap_err();
    assert!(
        matches!(attest_error(&err), AttestError::DebugTd { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn expired_server_certificate_and_refresh() {
    let server_clock = Arc::new(ManualClock::new(NOW));
    let client_clock = Arc::new(ManualClock::new(NOW + 2 * 86_400));
    let server = node(9, SimulatedAttester::new(), NOW);
    let client = node(10, SimulatedAttester::new(), NOW + 2 * 86_400);
    let server_cfg = server_config(
        server.identity.clone(),
        verifier(Policy::local_simulated()),
        server_clock.clone(),
    )
    .unwrap();
    let client_cfg = client_config(
        client.identity.clone(),
        verifier(Policy::local_simulated()),
        client_clock.clone(),
    )
    .unwrap();
    let (_, connected) = handshake(server_cfg.clone(), client_cfg.clone()).await;
    let err = connected.unwrap_err();
    assert!(
        matches!(attest_error(&err), AttestError::CertificateExpired { .. }),
        "{err}"
    );

    // The server's issuer says a refresh is due and makes a fresh certificate; the same
    // configuration serves it to the next handshake.
    server_clock.set(NOW + 2 * 86_400);
    assert!(
        server
            .issuer
            .refresh_if_due(&server.identity, server_clock.now_unix())
            .unwrap()
    );
    let (accepted, connected) = handshake(server_cfg, client_cfg).await;
    connected.expect("fresh certificate accepted");
    accepted.expect("server accepted");
}

#[tokio::test]
async fn cipher_suites_and_client_auth_are_enforced() {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(NOW));
    let server = node(11, SimulatedAttester::new(), NOW);
    let client = node(12, SimulatedAttester::new(), NOW);
    let server_cfg = server_config(
        server.identity.clone(),
        verifier(Policy::local_simulated()),
        clock.clone(),
    )
    .unwrap();

    // A client offering only ChaCha20-Poly1305 finds no common suite.
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites =
        vec![rustls::crypto::ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256];
    let chacha =
        rustls::ClientConfig::builder_with_details(Arc::new(provider), Arc::new(FixedTime))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(verifier(Policy::local_simulated()))
            .with_client_cert_resolver(client.identity.clone());
    let (accepted, connected) = handshake(server_cfg.clone(), Arc::new(chacha)).await;
    assert!(connected.is_err());
    assert!(accepted.is_err());

    // A client presenting no certificate is refused: authentication is mutual.
    // (Same time source as the server, so that only the missing certificate matters.)
    let anonymous = rustls::ClientConfig::builder_with_details(
        cocoon_attest::ratls::crypto_provider(),
        Arc::new(FixedTime),
    )
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(verifier(Policy::local_simulated()))
    .with_no_client_auth();
    let (accepted, _) = handshake(server_cfg, Arc::new(anonymous)).await;
    let err = accepted.unwrap_err();
    let tls = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .expect("rustls error");
    assert!(
        matches!(tls, rustls::Error::NoCertificatesPresented),
        "{tls:?}"
    );
}

#[tokio::test]
async fn unattested_clients_under_the_any_policy() {
    // The proxy's client port: clients present RA-TLS certificates but need no evidence.
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(NOW));
    let server = node(13, SimulatedAttester::new(), NOW);
    let client = node(14, SimulatedAttester::new(), NOW);
    let server_verifier = verifier(Policy::any());
    let (accepted, connected) = handshake(
        server_config(server.identity, server_verifier.clone(), clock.clone()).unwrap(),
        client_config(client.identity, verifier(Policy::local_simulated()), clock).unwrap(),
    )
    .await;
    connected.unwrap();
    let stream = accepted.unwrap();
    let peer = server_verifier
        .verify_peer(stream.get_ref().1.peer_certificates().unwrap(), NOW)
        .unwrap();
    assert_eq!(peer.evidence_kind, EvidenceKind::Unattested);
}

#[tokio::test]
async fn stolen_certificate_without_its_key_is_refused() {
    // A client replays another node's certificate (valid evidence, bound to that node's key)
    // but can only sign the handshake with its own key.
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(NOW));
    let server = node(15, SimulatedAttester::new(), NOW);
    let victim = node(16, SimulatedAttester::new(), NOW);
    let thief_key = TlsKeyPair::from_seed(&[17; 32]).unwrap();
    let stolen = Arc::new(RaTlsIdentity::new(&thief_key, victim.identity.issued()).unwrap());
    let (accepted, _) = handshake(
        server_config(
            server.identity,
            verifier(Policy::local_simulated()),
            clock.clone(),
        )
        .unwrap(),
        client_config(stolen, verifier(Policy::local_simulated()), clock).unwrap(),
    )
    .await;
    let err = accepted.unwrap_err();
    assert!(
        matches!(attest_error(&err), AttestError::HandshakeSignature),
        "{err}"
    );
}

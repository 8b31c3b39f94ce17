//! The whole transport stack on one TCP stream, in the order the protocol fixes: the accepting
//! side's proof-of-work gate on the raw socket (so an unauthenticated peer pays before we spend
//! a TLS handshake and an evidence check on it), RA-TLS, then the framed session. Roles call
//! [`dial`] and [`accept_gated`] and get a session only with a verified peer.

use cocoon_attest::VerifiedPeer;
use tokio::net::TcpStream;

use crate::connection::{Connection, ConnectionConfig, Incoming};
use crate::ratls::TlsEndpoint;
use crate::{NetError, pow};

/// A session with a peer whose attestation was verified.
#[derive(Debug)]
pub struct Secured {
    /// The session.
    pub conn: Connection,
    /// Its inbound queries and packets.
    pub incoming: Incoming,
    /// Who the peer is, as its RA-TLS certificate proved.
    pub peer: VerifiedPeer,
}

/// Connects to `addr`, solves its proof-of-work challenge (refusing difficulties above
/// `max_pow_difficulty`), runs RA-TLS with `endpoint` and opens the session. Each wait for the
/// peer is bounded: the TCP connect, the challenge and the answer's delivery by
/// `config.open_timeout`, the TLS handshake by the endpoint's handshake timeout, `tcp.connect`
/// by `config.handshake_timeout`; only our own solving (bounded by `max_pow_difficulty`) is not.
pub async fn dial(
    addr: &str,
    max_pow_difficulty: i32,
    endpoint: &TlsEndpoint,
    config: ConnectionConfig,
) -> Result<Secured, NetError> {
    let wait = config.open_timeout;
    let mut tcp = tokio::time::timeout(wait, TcpStream::connect(addr))
        .await
        .map_err(|_| NetError::Deadline {
            stage: "TCP connect",
            after: wait,
        })??;
    let _ = tcp.set_nodelay(true);
    pow::solve(&mut tcp, max_pow_difficulty, wait).await?;
    let (tls, peer) = endpoint.dial(tcp).await?;
    let (conn, incoming) = crate::connect(tls, config).await?;
    Ok(Secured {
        conn,
        incoming,
        peer,
    })
}

/// Accepts the session on `tcp`: a proof of work of `difficulty`, RA-TLS with `endpoint`, then
/// `tcp.connect`, all within `config.open_timeout` of the call; a peer that has not finished
/// by then is dropped with [`NetError::Deadline`] naming the stage it was in.
pub async fn accept_gated(
    mut tcp: TcpStream,
    difficulty: i32,
    endpoint: &TlsEndpoint,
    config: ConnectionConfig,
) -> Result<Secured, NetError> {
    let limit = config.open_timeout;
    let deadline = tokio::time::Instant::now() + limit;
    let late = |stage: &'static str| NetError::Deadline {
        stage,
        after: limit,
    };
    let _ = tcp.set_nodelay(true);
    tokio::time::timeout_at(deadline, pow::challenge(&mut tcp, difficulty, limit))
        .await
        .map_err(|_| late("proof of work"))??;
    let (tls, peer) = tokio::time::timeout_at(deadline, endpoint.accept(tcp))
        .await
        .map_err(|_| late("TLS handshake"))??;
    let (conn, incoming) = tokio::time::timeout_at(deadline, crate::accept(tls, config))
        .await
        .map_err(|_| late("session handshake"))??;
    Ok(Secured {
        conn,
        incoming,
        peer,
    })
}

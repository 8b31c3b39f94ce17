//! The whole transport stack on one TCP stream, in the order the protocol fixes: the accepting
//! side's proof-of-work gate on the raw socket (so an unauthenticated peer pays before we spend
//! a TLS handshake and an evidence check on it), RA-TLS, then the framed session. Roles call
//! [`dial`] and [`accept_gated`] and get a session only with a verified peer.

use std::time::Duration;

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
/// `max_pow_difficulty`), runs RA-TLS with `endpoint` and opens the session.
pub async fn dial(
    addr: &str,
    max_pow_difficulty: i32,
    endpoint: &TlsEndpoint,
    config: ConnectionConfig,
) -> Result<Secured, NetError> {
    let mut tcp = TcpStream::connect(addr).await?;
    let _ = tcp.set_nodelay(true);
    pow::solve(&mut tcp, max_pow_difficulty).await?;
    let (tls, peer) = endpoint.dial(tcp).await?;
    let (conn, incoming) = crate::connect(tls, config).await?;
    Ok(Secured {
        conn,
        incoming,
        peer,
    })
}

/// Accepts the session on `tcp`: proof of work of `difficulty` answered within `pow_timeout`,
/// RA-TLS with `endpoint`, then the session.
pub async fn accept_gated(
    mut tcp: TcpStream,
    difficulty: i32,
    pow_timeout: Duration,
    endpoint: &TlsEndpoint,
    config: ConnectionConfig,
) -> Result<Secured, NetError> {
    let _ = tcp.set_nodelay(true);
    pow::challenge(&mut tcp, difficulty, pow_timeout).await?;
    let (tls, peer) = endpoint.accept(tcp).await?;
    let (conn, incoming) = crate::accept(tls, config).await?;
    Ok(Secured {
        conn,
        incoming,
        peer,
    })
}

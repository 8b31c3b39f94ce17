//! Tokio transport for the COCOON protocol.
//!
//! The stack, outside in: TCP; the proof-of-work gate ([`pow`]) run by the accepting side on
//! the raw stream; RA-TLS ([`ratls`]): mutual TLS 1.3 whose certificates carry TEE evidence,
//! checked against policy before any application byte; then a [`Connection`]: one framed
//! session with the `tcp.connect` / `tcp.connected` exchange, queries with ids and timeouts,
//! one-way packets, ping/pong keepalive and idle timeouts. Queues are bounded in both
//! directions, so a slow peer stalls its own connection instead of growing our memory.
//! [`dial`] and [`accept_gated`] run the whole stack, each within a deadline. The settings
//! all roles share (attestation, key sources, metrics, shutdown) are the crate `cocoon-node`.
//!
//! Listening ports run [`listener::accept_loop`]: every connection is admitted by the port's
//! [`admission`] caps (in total and per address) before it costs more than the accept, and
//! accept errors back off. HTTP ports run [`http_server::serve`], with a connection cap and
//! deadlines for request heads and bodies, and [`http_access`] refuses requests from browser
//! pages, rebound host names and callers without the API key.
//!
//! The protocol rules themselves live in the sans-IO `cocoon-protocol` crate; this crate only
//! moves its bytes.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admission;
mod connection;
mod error;
mod gate;
pub mod http_access;
pub mod http_server;
pub mod listener;
pub mod pow;
pub mod ratls;
pub mod secs;

pub use connection::{
    Connection, ConnectionConfig, DEFAULT_RECV_QUEUE_BYTES, DEFAULT_SEND_QUEUE_BYTES, Inbound,
    InboundQuery, Incoming, Side, accept, connect,
};
pub use error::NetError;
pub use gate::{Secured, accept_gated, dial};
pub use listener::PortLimits;
pub use ratls::{LocalIdentity, TlsEndpoint, TlsStream};

/// Seconds since the Unix epoch, as the protocol's timing fields carry them.
pub fn unix_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

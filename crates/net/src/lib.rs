//! Tokio transport for the COCOON protocol.
//!
//! A [`Connection`] runs one framed session over any `AsyncRead + AsyncWrite` stream (plain TCP
//! today, RA-TLS streams plug in unchanged): the `tcp.connect` / `tcp.connected` exchange,
//! queries with ids and timeouts, one-way packets, ping/pong keepalive and idle timeouts. Queues
//! are bounded in both directions, so a slow peer stalls its own connection instead of growing
//! our memory. The [`pow`] module runs the proof-of-work gate on a raw stream before TLS.
//!
//! The protocol rules themselves live in the sans-IO `cocoon-protocol` crate; this crate only
//! moves its bytes.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod connection;
mod error;
pub mod exposition;
pub mod pow;
pub mod secs;

pub use connection::{
    Connection, ConnectionConfig, Inbound, InboundQuery, Incoming, Side, accept, connect,
};
pub use error::NetError;

/// Seconds since the Unix epoch, as the protocol's timing fields carry them.
pub fn unix_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Resolves on Ctrl-C or SIGTERM: what a role's binary waits for before shutting down.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = ctrl_c.await;
}

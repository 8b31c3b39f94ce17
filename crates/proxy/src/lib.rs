//! The proxy role: the attested middle of the network.
//!
//! A [`Proxy`] accepts workers and clients on separate ports (each behind the proof-of-work
//! gate), runs both handshakes, and routes every `client.runQueryEx` to a worker chosen by the
//! market's [`WorkerSelector`](cocoon_market::selection::WorkerSelector): same base model,
//! enabled, with capacity, priced within the client's maximum, ranked by expected wait and
//! reliability. A worker that fails before its first byte is replaced by another; answers are
//! relayed part by part, never buffered whole. When a request ends the proxy prices the
//! metered tokens, charges the client, credits the worker and tells both.
//!
//! # Money
//!
//! The books live in a [`LedgerStore`](cocoon_ledger_store::LedgerStore): an SQLite file or a
//! PostgreSQL database ([`ProxyConfig::ledger_url`]). Before a request is forwarded, its worst
//! case is reserved from the client's balance; when it ends, the client's charge, the worker's
//! credit and the request's record are written in one transaction, keyed by a ledger request id
//! derived from the client's account and the client's own request id, so a charge made twice is
//! booked once; the writes of requests that end together are committed together (a
//! [`CommitQueue`](cocoon_ledger_store::CommitQueue): one disk sync per batch, each write under its own
//! savepoint). The part of the answer that carries the usage reaches the client only after that
//! transaction committed. A proxy killed at any moment therefore comes back with books in which
//! every request is charged exactly once or not at all, and every usage a client saw is on them;
//! the reservations of the requests it was running are dropped when the store is opened again.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod auth;
pub mod books;
mod clients;
mod config;
mod dashboard;
mod health;
mod machine;
mod model_change;
mod refusal;
mod registry;
mod request;
mod sealed;
mod settle;
mod state;
mod stats;
mod workers;

use std::net::SocketAddr;
use std::sync::Arc;

pub use config::{ProxyConfig, ProxyError};
pub use health::LedgerHealthStats;
pub use settle::{ChainSettings, SettlementStats};
pub use state::{ModelMarket, PortView, ProxyHandle, ProxySnapshot, WorkerView};

/// The public key of the proxy's voucher-signing key (opened, or made on first use, in the
/// configured data directory): what its proxy contract must hold as proxy key.
pub fn voucher_public_key(config: &ProxyConfig) -> Result<[u8; 32], ProxyError> {
    Ok(state::voucher_key(config)?.verifying_key().to_bytes())
}

/// A proxy, bound and ready to run.
pub struct Proxy {
    state: Arc<state::ProxyState>,
    worker_listener: tokio::net::TcpListener,
    client_listener: tokio::net::TcpListener,
    stats_listener: Option<tokio::net::TcpListener>,
}

impl Proxy {
    /// Validates `config`, opens the ledger store and binds the proxy's ports.
    pub async fn bind(config: ProxyConfig) -> Result<Self, ProxyError> {
        config.validate()?;
        let (worker_listen, client_listen, stats_listen) = (
            config.worker_listen,
            config.client_listen,
            config.stats_listen,
        );
        let state = Arc::new(state::ProxyState::open(config).await?);
        let bind = |addr: SocketAddr| async move {
            cocoon_net::listener::bind(addr).map_err(|e| ProxyError::Bind(addr, e))
        };
        let worker_listener = bind(worker_listen).await?;
        let client_listener = bind(client_listen).await?;
        let stats_listener = match stats_listen {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        Ok(Self {
            state,
            worker_listener,
            client_listener,
            stats_listener,
        })
    }

    /// The address workers connect to.
    pub fn worker_addr(&self) -> Option<SocketAddr> {
        self.worker_listener.local_addr().ok()
    }

    /// The address clients connect to.
    pub fn client_addr(&self) -> Option<SocketAddr> {
        self.client_listener.local_addr().ok()
    }

    /// The address of the stats server.
    pub fn stats_addr(&self) -> Option<SocketAddr> {
        self.stats_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// A handle to inspect the proxy while it runs.
    pub fn handle(&self) -> ProxyHandle {
        ProxyHandle::new(self.state.clone())
    }

    /// Serves until `shutdown` resolves.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), ProxyError> {
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(workers::accept_loop(
            self.state.clone(),
            self.worker_listener,
        ));
        tasks.spawn(clients::accept_loop(
            self.state.clone(),
            self.client_listener,
        ));
        if let Some(l) = self.stats_listener {
            tasks.spawn(stats::serve(l, self.state.clone()));
        }
        // Not in `tasks`: at shutdown it tries once more to book what it holds.
        tokio::spawn(health::retry_deferred(self.state.clone()));
        if self.state.registry.is_some() {
            tasks.spawn(registry::follow(self.state.clone()));
        }
        if let Some(settle) = &self.state.settle {
            tasks.spawn(
                settle
                    .clone()
                    .anchor_loop(self.state.ledger.clone(), self.state.shutdown.clone()),
            );
        }
        shutdown.await;
        self.state.shutdown.cancel();
        tasks.abort_all();
        // Sessions see the cancellation and close their connections; requests still running
        // release or charge as usual (every charge is committed when it is made).
        Ok(())
    }
}

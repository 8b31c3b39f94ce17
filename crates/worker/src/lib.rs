//! The worker role: a GPU owner's node that serves inference to COCOON proxies.
//!
//! A [`Worker`] dials each configured proxy (several connections if asked, reconnecting with
//! exponential backoff), runs the worker handshake (`worker.connectToProxy` →
//! `worker.compareBalanceWithProxy`, refusing a proxy whose books went backwards →
//! `worker.proxyHandshakeComplete`), then answers `proxy.runQueryEx` packets from its
//! [`Engine`](cocoon_infer::Engine), streaming `proxy.queryAnswerEx` and parts with exact token
//! usage in the final part. It enforces `max_active_requests`, validates every request body,
//! and can be enabled, disabled or re-priced while running; under a load pricing policy
//! (`[pricing]`) it re-prices itself as its load changes.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod dashboard;
pub mod estimate;
pub mod keys;
mod limits;
pub mod machine;
pub mod market_view;
pub mod model_change;
mod owed;
mod pricing;
mod registry;
mod request;
mod sealed;
mod session;
mod settle;
pub mod speed;
mod state;
mod stats;
mod weights;

use std::sync::Arc;

use cocoon_infer::Engine;
pub use config::{WorkerConfig, WorkerError};
pub use keys::{KeySourceChoice, KeysConfig};
pub use settle::{PayoutChannel, PayoutSettings, PayoutStats, latest_stored_voucher};
pub use state::{ProxyView, WorkerHandle, WorkerSnapshot};

/// A running worker.
pub struct Worker {
    state: Arc<state::WorkerState>,
}

impl Worker {
    /// Builds a worker serving `engine` with `config` (without a configured model, the
    /// engine's first: [`WorkerConfig::choose_model`]).
    pub fn new(mut config: WorkerConfig, engine: Arc<dyn Engine>) -> Result<Self, WorkerError> {
        config.choose_model(engine.as_ref())?;
        config.validate()?;
        Ok(Self {
            state: Arc::new(state::WorkerState::new(config, engine)?),
        })
    }

    /// Lets proxies change this worker's model (`worker.changeModel`) among the configured
    /// `[model_change] models`, loading each with `loader`. Without one, changes are refused.
    pub fn set_model_loader(&self, loader: Arc<dyn model_change::ModelLoader>) {
        let _ = self.state.loader.set(loader);
    }

    /// A handle to inspect and steer the worker while it runs.
    pub fn handle(&self) -> WorkerHandle {
        WorkerHandle::new(self.state.clone())
    }

    /// Starts the stats server (if configured) and the proxy sessions; returns when `shutdown`
    /// resolves.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), WorkerError> {
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(addr) = self.state.config.stats_listen {
            let listener = cocoon_net::listener::bind(addr)
                .map_err(|e| WorkerError::Bind(addr.to_string(), e))?;
            tracing::info!(
                "worker stats on http://{}",
                listener
                    .local_addr()
                    .map_err(|e| WorkerError::Bind(addr.to_string(), e))?
            );
            tasks.spawn(stats::serve(listener, self.state.clone()));
        }
        tasks.spawn(pricing::follow_load(self.state.clone()));
        let identity = self.state.tls.identity().clone();
        let stop = self.state.shutdown.clone();
        tasks.spawn(async move { identity.keep_fresh(stop.cancelled_owned()).await });
        // No proxy is dialled before the registry's allow-lists are known.
        let state = self.state.clone();
        let follower = tokio::select! {
            f = registry::open(&state) => f?,
            () = self.state.shutdown.cancelled() => None,
        };
        if let Some(follower) = follower {
            tasks.spawn(registry::follow(self.state.clone(), follower));
        }
        if self.state.config.describe_machine {
            let attestation = self.state.tls.identity().evidence_kind().as_token();
            let facts = machine::gather(self.state.served().engine.kind(), attestation).await;
            let _ = self
                .state
                .machine_description
                .set(machine::describe(&facts));
        }
        if !self.state.config.proxies_from_registry {
            for proxy in &self.state.config.proxies {
                for slot in 0..self.state.config.connections_per_proxy {
                    tasks.spawn(session::maintain(
                        self.state.clone(),
                        proxy.clone(),
                        slot,
                        self.state.shutdown.child_token(),
                    ));
                }
            }
        }
        shutdown.await;
        self.state.shutdown.cancel();
        tasks.abort_all();
        Ok(())
    }
}

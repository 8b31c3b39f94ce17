//! The root registry as the worker applies it: the proxy image hashes it allows narrow the
//! policy proxies must satisfy before any proxy is dialled, and the worker checks that its own
//! image and model are listed (a proxy that follows the registry refuses it otherwise). With
//! `proxies_from_registry` the proxies served are the ones the root registers. The root is
//! read again every `refresh_secs`; sessions with proxies that no longer qualify are closed,
//! and the next handshake is checked against the new lists.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use cocoon_attest::Policy;
use cocoon_attest::digest::{Digest, ImageHash};
use cocoon_chain::operator::ChainSpec;
use cocoon_chain::{Registry, RegistryFollower};

use crate::config::WorkerError;
use crate::state::{WorkerState, lock};

/// How long to wait between two failed first reads of the root.
const FIRST_READ_RETRY: Duration = Duration::from_secs(2);

/// The follower and the configuration's proxy policy, before the registry narrows it.
pub(crate) struct Follower {
    follower: RegistryFollower,
    current: Registry,
    base: Policy,
    served: Served,
}

/// With `proxies_from_registry`: the registered proxies served now (worker port → the token
/// that stops their sessions).
type Served = Arc<Mutex<HashMap<String, CancellationToken>>>;

/// Reads the configured root (retrying until it answers) and applies it; `None` without a
/// root.
pub(crate) async fn open(state: &Arc<WorkerState>) -> Result<Option<Follower>, WorkerError> {
    let config = &state.config;
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        WorkerError::Config(format!("[registry] {what}: {e}"))
    };
    let Some(root) = config
        .registry
        .root_address()
        .map_err(|e| bad("root", &e))?
    else {
        return Ok(None);
    };
    let (chain_text, api_key) = config.registry_chain();
    let chain_text = chain_text.ok_or_else(|| {
        WorkerError::Config("[registry] root needs a chain to read it from".into())
    })?;
    let spec: ChainSpec = chain_text.parse().map_err(|e| bad("chain", &e))?;
    let chain = spec
        .open(api_key)
        .await
        .map_err(|e| bad("cannot open the chain", &e))?;
    let follower = RegistryFollower::new(chain, root, config.registry.refresh_interval());
    *lock(&state.registry) = Some(follower.status());
    tracing::info!(root = %root.to_raw(), "reading the root registry before dialling proxies");
    let current = follower.first(FIRST_READ_RETRY).await;
    let base = state.tls.policy().as_ref().clone();
    let served = Served::default();
    apply(state, &base, &served, &current);
    Ok(Some(Follower {
        follower,
        current,
        base,
        served,
    }))
}

/// Follows the root for as long as the worker runs.
pub(crate) async fn follow(state: Arc<WorkerState>, follower: Follower) {
    let Follower {
        follower,
        current,
        base,
        served,
    } = follower;
    follower
        .follow(current, move |changed| {
            apply(&state, &base, &served, changed)
        })
        .await;
}

/// Serves exactly the proxies the root registers (their worker ports): new ones are dialled,
/// sessions with ones no longer listed are stopped.
fn serve_registered(state: &Arc<WorkerState>, served: &Served, registry: &Registry) {
    let mut listed = Vec::new();
    for (seqno, addresses) in registry.proxy_endpoints() {
        match addresses.get(1) {
            Some(worker_port) => listed.push((*worker_port).to_owned()),
            None => tracing::warn!(
                seqno,
                "a registered proxy gives no worker address (\"client_addr worker_addr\"): skipped"
            ),
        }
    }
    let mut served = lock(served);
    served.retain(|proxy, stop| {
        let keep = listed.contains(proxy);
        if !keep {
            tracing::info!(%proxy, "the root registry no longer lists this proxy: leaving it");
            stop.cancel();
            for s in lock(&state.sessions).values().filter(|s| &s.proxy == proxy) {
                s.conn.close();
            }
        }
        keep
    });
    for proxy in listed {
        if served.contains_key(&proxy) {
            continue;
        }
        tracing::info!(%proxy, "serving a proxy the root registry lists");
        let stop = state.shutdown.child_token();
        for slot in 0..state.config.connections_per_proxy {
            tokio::spawn(crate::session::maintain(
                state.clone(),
                proxy.clone(),
                slot,
                stop.clone(),
            ));
        }
        served.insert(proxy, stop);
    }
}

fn apply(state: &Arc<WorkerState>, base: &Policy, served: &Served, registry: &Registry) {
    let policy = base.restricted_to_image_hashes(
        registry
            .proxy_image_hashes
            .iter()
            .map(|h| ImageHash(Digest(*h))),
    );
    state.tls.set_policy(policy.clone());
    if state.config.proxies_from_registry {
        serve_registered(state, served, registry);
    }
    if let Some(own) = state.tls.identity().image_hash()
        && !registry.worker_image_hashes.contains(own.as_bytes())
    {
        tracing::warn!(
            image_hash = %own,
            "this worker's image hash is not among the root registry's worker images: proxies \
             that follow the registry refuse it"
        );
    }
    let served = state.served();
    match served.weights {
        Some(weights) if registry.model_hashes.contains(&weights.0) => {}
        weights => tracing::warn!(
            model = %served.model,
            weights = ?weights.map(|w| w.to_hex()),
            "this worker's model weights are not among the root registry's models: proxies \
             that follow the registry refuse it"
        ),
    }
    tracing::info!(
        version = registry.version,
        proxy_images = registry.proxy_image_hashes.len(),
        "root registry applied"
    );
    let Some(allowed) = &policy.allowed_image_hashes else {
        return;
    };
    let stale: Vec<_> = lock(&state.sessions)
        .values()
        .filter(|s| s.peer.image_hash.is_some_and(|h| !allowed.contains(&h)))
        .map(|s| (s.proxy.clone(), s.conn.clone()))
        .collect();
    for (proxy, conn) in stale {
        tracing::warn!(
            %proxy,
            "the proxy's image hash is no longer allowed by the root registry: closing the session"
        );
        conn.close();
    }
}

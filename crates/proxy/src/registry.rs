//! The root registry as the proxy applies it: the worker image hashes it allows narrow the
//! policy of the worker port, the model hashes it allows decide which models workers may
//! announce, and the proxy image hashes tell the operator whether clients will accept this
//! proxy at all.
//!
//! The root is the one the proxy contract names (with a `[chain]` section), or `[registry]
//! root`. It is read before the worker port opens and again every `refresh_secs`; when the
//! owner removes a hash, handshakes from then on are refused and connected workers that no
//! longer qualify are disconnected.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use cocoon_attest::digest::{Digest, ImageHash};
use cocoon_attest::{Policy, VerifiedPeer};
use cocoon_chain::operator::ChainSpec;
use cocoon_chain::{Chain, Registry, RegistryFollower, RegistryStatus};
use cocoon_net::{LocalIdentity, TlsEndpoint};

use crate::config::{ProxyConfig, ProxyError};
use crate::refusal::WorkerRefusal;
use crate::settle::Settlement;
use crate::state::{ProxyState, lock};

/// How long to wait between two failed first reads of the root.
const FIRST_READ_RETRY: Duration = Duration::from_secs(2);

/// The registry's allow-lists in force, and the follower that keeps them current.
pub(crate) struct RegistryPolicy {
    /// The worker-port policy from configuration, before the registry narrows it.
    base: Policy,
    /// Allowed model hashes.
    models: RwLock<Vec<[u8; 32]>>,
    status: Arc<Mutex<RegistryStatus>>,
    follower: Mutex<Option<(RegistryFollower, Registry)>>,
}

impl RegistryPolicy {
    /// Reads the root registry (retrying until it answers) and narrows `worker_tls`'s policy
    /// to it. `None` when no root is configured and the proxy runs without a chain.
    pub(crate) async fn open(
        config: &ProxyConfig,
        settle: Option<&Settlement>,
        worker_tls: &TlsEndpoint,
        identity: &LocalIdentity,
    ) -> Result<Option<Self>, ProxyError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            ProxyError::Config(format!("[registry] {what}: {e}"))
        };
        let configured = config
            .registry
            .root_address()
            .map_err(|e| bad("root", &e))?;
        let (chain, root): (Arc<dyn Chain>, _) = match (settle, configured) {
            (Some(s), Some(root)) => (s.chain.clone(), root),
            (Some(s), None) => (s.chain.clone(), s.root),
            (None, Some(root)) => {
                let (endpoint, api_key) = config.registry.chain_or((
                    config.chain.endpoint.as_deref(),
                    config.chain.api_key.as_deref(),
                ));
                let endpoint = endpoint.ok_or_else(|| {
                    ProxyError::Config(
                        "[registry] root needs a chain to read it from ([registry] chain or \
                         [chain] endpoint)"
                            .into(),
                    )
                })?;
                let spec: ChainSpec = endpoint.parse().map_err(|e| bad("chain", &e))?;
                let chain = spec
                    .open(api_key)
                    .await
                    .map_err(|e| bad("cannot open the chain", &e))?;
                (chain, root)
            }
            (None, None) => return Ok(None),
        };
        let follower = RegistryFollower::new(chain, root, config.registry.refresh_interval());
        tracing::info!(root = %root.to_raw(), "reading the root registry");
        let registry = follower.first(FIRST_READ_RETRY).await;
        let this = Self {
            base: worker_tls.policy().as_ref().clone(),
            models: RwLock::new(Vec::new()),
            status: follower.status(),
            follower: Mutex::new(None),
        };
        this.apply(&registry, worker_tls, identity);
        *lock(&this.follower) = Some((follower, registry));
        Ok(Some(this))
    }

    /// What `/stats` shows.
    pub(crate) fn status(&self) -> RegistryStatus {
        lock(&self.status).clone()
    }

    /// Refuses a worker whose attested weights the registry does not allow, saying which. The
    /// name (`model`) only routes; what is checked is the SHA-256 of the weights in the
    /// worker's certificate claims, so a listed name cannot front other weights.
    pub(crate) fn check_model(
        &self,
        peer: &VerifiedPeer,
        model: &str,
    ) -> Result<(), WorkerRefusal> {
        let Some(hash) = peer.model_hash() else {
            return Err(WorkerRefusal::NoModelHash {
                model: model.to_owned(),
            });
        };
        let allowed = self.models.read().unwrap_or_else(PoisonError::into_inner);
        if allowed.contains(&hash) {
            Ok(())
        } else {
            Err(WorkerRefusal::ModelNotAllowed {
                model: model.to_owned(),
                hash,
            })
        }
    }

    fn apply(&self, registry: &Registry, worker_tls: &TlsEndpoint, identity: &LocalIdentity) {
        worker_tls.set_policy(
            self.base
                .restricted_to_image_hashes(image_hashes(&registry.worker_image_hashes)),
        );
        *self.models.write().unwrap_or_else(PoisonError::into_inner) =
            registry.model_hashes.clone();
        if registry.worker_image_hashes.is_empty() {
            tracing::warn!("the root registry allows no worker image: every worker is refused");
        }
        if let Some(own) = identity.image_hash()
            && !registry.proxy_image_hashes.contains(own.as_bytes())
        {
            tracing::warn!(
                image_hash = %own,
                "this proxy's image hash is not among the root registry's proxy images: \
                 clients and workers that follow the registry refuse it"
            );
        }
        tracing::info!(
            version = registry.version,
            worker_images = registry.worker_image_hashes.len(),
            proxy_images = registry.proxy_image_hashes.len(),
            models = registry.model_hashes.len(),
            "root registry applied"
        );
    }

    /// Disconnects the workers that the registry in force no longer admits (image or model).
    fn evict(&self, state: &ProxyState) {
        let policy = state.worker_tls.policy();
        let evicted: Vec<_> = lock(&state.workers)
            .iter()
            .filter_map(|(id, link)| {
                let reason = admits(&policy, &link.peer)
                    .err()
                    .or_else(|| self.check_model(&link.peer, &link.model).err())?;
                Some((*id, link.conn.clone(), reason))
            })
            .collect();
        for (id, conn, reason) in evicted {
            tracing::warn!(worker = id.0, "disconnecting worker: {reason}");
            conn.close();
        }
    }
}

/// Whether a connected worker still passes the image allow-list of `policy`.
fn admits(policy: &Policy, peer: &VerifiedPeer) -> Result<(), WorkerRefusal> {
    match (&policy.allowed_image_hashes, &peer.image_hash) {
        (Some(allowed), Some(hash)) if !allowed.contains(hash) => {
            Err(WorkerRefusal::ImageNotAllowed(hash.to_string()))
        }
        _ => Ok(()),
    }
}

fn image_hashes(hashes: &[[u8; 32]]) -> impl Iterator<Item = ImageHash> + '_ {
    hashes.iter().map(|h| ImageHash(Digest(*h)))
}

/// Follows the root for as long as the proxy runs, applying each change.
pub(crate) async fn follow(state: Arc<ProxyState>) {
    let Some(registry) = &state.registry else {
        return;
    };
    let Some((follower, current)) = lock(&registry.follower).take() else {
        return;
    };
    let watched = state.clone();
    follower
        .follow(current, move |changed| {
            if let Some(policy) = &watched.registry {
                policy.apply(changed, &watched.worker_tls, &watched.identity);
                policy.evict(&watched);
            }
        })
        .await;
}

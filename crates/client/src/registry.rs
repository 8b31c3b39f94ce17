//! The root registry as the client applies it: before the first byte goes to a proxy, the
//! proxy image hashes it allows narrow the policy the proxy must satisfy, and its worker image
//! hashes narrow the policy for workers' sealing keys and receipts. The root is read again
//! every `refresh_secs`; when the proxy in use no longer qualifies, its session is closed and
//! the next handshake is checked against the new lists.

use std::sync::Arc;
use std::time::Duration;

use cocoon_attest::Policy;
use cocoon_attest::digest::{Digest, ImageHash};
use cocoon_chain::operator::ChainSpec;
use cocoon_chain::{Registry, RegistryFollower};
use tokio::sync::watch;

use crate::link::{ProxyLink, Session, lock};

/// How long to wait between two failed first reads of the root.
const FIRST_READ_RETRY: Duration = Duration::from_secs(2);

/// The configuration's policies, before the registry narrows them.
pub(crate) struct Follower {
    follower: RegistryFollower,
    current: Registry,
    base: Policy,
}

/// Reads the configured root (retrying until it answers; the link waits) and applies it.
/// `None` when no root is configured or the chain cannot be opened (said in the link's error).
pub(crate) async fn open(
    link: &Arc<ProxyLink>,
    tx: &watch::Sender<Option<Arc<Session>>>,
) -> Option<Follower> {
    let config = &link.config;
    // Validated at start: a root comes with a chain.
    let root = config.registry.root_address().ok()??;
    let (chain_text, api_key) = config.registry_chain();
    let chain_text = chain_text?;
    let chain = loop {
        let opened = match chain_text.parse::<ChainSpec>() {
            Ok(spec) => spec.open(api_key).await,
            Err(e) => Err(e),
        };
        match opened {
            Ok(chain) => break chain,
            Err(e) => {
                let message = format!("cannot open the chain to read the root registry: {e}");
                tracing::warn!("{message}");
                link.set_error(message);
                tokio::time::sleep(FIRST_READ_RETRY).await;
            }
        }
    };
    let follower = RegistryFollower::new(chain, root, config.registry.refresh_interval());
    *lock(&link.registry) = Some(follower.status());
    tracing::info!(root = %root.to_raw(), "reading the root registry before connecting");
    let current = follower.first(FIRST_READ_RETRY).await;
    let base = link.tls.policy().as_ref().clone();
    apply(link, tx, &base, &current);
    Some(Follower {
        follower,
        current,
        base,
    })
}

/// Follows the root until the link shuts down.
pub(crate) async fn follow(
    link: Arc<ProxyLink>,
    tx: watch::Sender<Option<Arc<Session>>>,
    follower: Follower,
) {
    let Follower {
        follower,
        current,
        base,
    } = follower;
    follower
        .follow(current, move |changed| apply(&link, &tx, &base, changed))
        .await;
}

fn apply(
    link: &ProxyLink,
    tx: &watch::Sender<Option<Arc<Session>>>,
    base: &Policy,
    registry: &Registry,
) {
    let proxy_policy = base.restricted_to_image_hashes(image_hashes(&registry.proxy_image_hashes));
    let worker_policy =
        base.restricted_to_image_hashes(image_hashes(&registry.worker_image_hashes));
    link.tls.set_policy(proxy_policy.clone());
    link.workers.set_policy(worker_policy);
    link.sealing.forget_verified();
    // A registration is "client_host:port [worker_host:port]": clients take the first.
    let proxies: Vec<String> = registry
        .proxy_endpoints()
        .filter_map(|(_, addresses)| addresses.first().map(|a| (*a).to_owned()))
        .collect();
    let mut registered = lock(&link.registered);
    if registered.0 != proxies {
        *registered = (proxies, 0);
    }
    drop(registered);
    if registry.proxy_image_hashes.is_empty() {
        tracing::warn!("the root registry allows no proxy image: no proxy will be accepted");
    }
    tracing::info!(
        version = registry.version,
        proxy_images = registry.proxy_image_hashes.len(),
        worker_images = registry.worker_image_hashes.len(),
        "root registry applied"
    );
    // A session opened under the previous lists ends if its proxy no longer qualifies.
    if let Some(session) = tx.borrow().clone()
        && let (Some(allowed), Some(hash)) = (
            &proxy_policy.allowed_image_hashes,
            &session.proxy.image_hash,
        )
        && !allowed.contains(hash)
    {
        tracing::warn!(
            image_hash = %hash,
            "the proxy's image hash is no longer allowed by the root registry: closing its session"
        );
        session.conn.close();
    }
    // With proxies from the registry, a session with a proxy the root no longer lists ends.
    if link.config.proxy_from_registry
        && let Some(session) = tx.borrow().clone()
        && !lock(&link.registered).0.contains(&session.address)
    {
        tracing::warn!(
            proxy = %session.address,
            "the root registry no longer lists this proxy: closing its session"
        );
        session.conn.close();
    }
}

fn image_hashes(hashes: &[[u8; 32]]) -> impl Iterator<Item = ImageHash> + '_ {
    hashes.iter().map(|h| ImageHash(Digest(*h)))
}

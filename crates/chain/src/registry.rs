//! The root registry as every role reads it: allowed proxy and worker image hashes, allowed
//! model hashes, registered proxies with their endpoints, and the network parameters (prices,
//! multipliers, delays, stakes and the child contract codes). It is read from the root
//! account's data with `cocoon-ton`'s `RootState` parser (layout in `docs/contracts.md`), one
//! request on any backend. [`RegistryFollower`] keeps reading it, so a node's peer policies
//! follow the root owner's allow-lists while it runs.

use crate::ChainError;
use crate::chain::Chain;
use crate::types::{AccountState, AccountStatus, TransactionId, parse_address};
use cocoon_ton::Address;
use cocoon_ton::contracts::{Params, RootState};
use serde::{Deserialize, Serialize};
use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The root registry at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// The root contract.
    pub root: Address,
    /// Its state: owner, config version, parameters, allowed hashes, registered proxies.
    pub state: RootState,
    /// The root's last transaction when it was read: unchanged means nothing changed.
    pub last_transaction: Option<TransactionId>,
}

impl Deref for Registry {
    type Target = RootState;

    fn deref(&self) -> &RootState {
        &self.state
    }
}

impl Registry {
    /// Parses the registry from the root account's state.
    ///
    /// # Errors
    /// [`ChainError::AccountNotActive`] when the root holds no data,
    /// [`ChainError::Cell`] when the data is not a root registry.
    pub fn from_account(account: &AccountState) -> Result<Self, ChainError> {
        let data = match (&account.status, &account.data) {
            (AccountStatus::Active, Some(data)) => data,
            _ => {
                return Err(ChainError::AccountNotActive {
                    address: account.address.to_raw(),
                });
            }
        };
        Ok(Self {
            root: account.address,
            state: RootState::from_data_cell(data)
                .map_err(ChainError::cell("root registry data"))?,
            last_transaction: account.last_transaction,
        })
    }

    /// The current parameters.
    #[must_use]
    pub fn params(&self) -> &Params {
        &self.state.params
    }

    /// Registered proxies as `(seqno, addresses)`, the endpoint text split at whitespace.
    pub fn proxy_endpoints(&self) -> impl Iterator<Item = (u32, Vec<&str>)> {
        self.state
            .registered_proxies
            .iter()
            .map(|p| (p.seqno, p.endpoint.split_whitespace().collect()))
    }
}

/// Reads the root registry at `root` through any chain backend.
///
/// # Errors
/// The chain's errors, then those of [`Registry::from_account`].
pub async fn read_registry<C: Chain + ?Sized>(
    chain: &C,
    root: &Address,
) -> Result<Registry, ChainError> {
    Registry::from_account(&chain.account(root).await?)
}

/// The `[registry]` section every role's configuration shares: which root registry supplies
/// the allow-lists (image hashes, model hashes) that peers' attestation must satisfy, and how
/// often it is read again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySettings {
    /// The root contract's address. `None`: the proxy takes the root its proxy contract names
    /// (when it runs on a chain); clients and workers take allow-lists from configuration only.
    pub root: Option<String>,
    /// Where to read it: `emulated=HOST:PORT` or `toncenter=URL`; default the chain of the
    /// role's settlement section.
    pub chain: Option<String>,
    /// Toncenter API key for `chain` (default the settlement section's).
    pub api_key: Option<String>,
    /// Seconds between two reads of the root: a hash the owner removes stops being accepted
    /// for new connections at most this long after.
    pub refresh_secs: u64,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            root: None,
            chain: None,
            api_key: None,
            refresh_secs: 60,
        }
    }
}

impl RegistrySettings {
    /// The configured root's address, if any.
    ///
    /// # Errors
    /// [`ChainError::Address`] when `root` is not an address.
    pub fn root_address(&self) -> Result<Option<Address>, ChainError> {
        self.root.as_deref().map(parse_address).transpose()
    }

    /// The chain to read the root from and its API key: this section's, else `fallback` (the
    /// role's settlement chain and key).
    #[must_use]
    pub fn chain_or<'a>(
        &'a self,
        fallback: (Option<&'a str>, Option<&'a str>),
    ) -> (Option<&'a str>, Option<&'a str>) {
        match &self.chain {
            Some(chain) => (Some(chain), self.api_key.as_deref()),
            None => (fallback.0, self.api_key.as_deref().or(fallback.1)),
        }
    }

    /// Checks the section against the role's settlement chain: a root needs a chain to be read
    /// from and must be an address.
    ///
    /// # Errors
    /// [`ChainError::RegistryWithoutChain`] or [`ChainError::RegistryRoot`], whose message
    /// names the setting to fix.
    pub fn check(&self, settlement_chain: Option<&str>) -> Result<(), ChainError> {
        if self.root.is_some() && self.chain_or((settlement_chain, None)).0.is_none() {
            return Err(ChainError::RegistryWithoutChain);
        }
        self.root_address()
            .map(|_| ())
            .map_err(|e| ChainError::RegistryRoot(Box::new(e)))
    }

    /// How often the root is read again (at least one second).
    #[must_use]
    pub fn refresh_interval(&self) -> Duration {
        Duration::from_secs(self.refresh_secs.max(1))
    }
}

/// What `/stats` shows of the root registry a node follows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RegistryStatus {
    /// The root contract.
    pub root: String,
    /// The root's config version when last read (bumped by every accepted update).
    pub version: u32,
    /// Allowed proxy image hashes, hex.
    pub proxy_image_hashes: Vec<String>,
    /// Allowed worker image hashes, hex.
    pub worker_image_hashes: Vec<String>,
    /// Allowed model hashes, hex.
    pub model_hashes: Vec<String>,
    /// Registered proxies: `seqno endpoint`.
    pub registered_proxies: Vec<String>,
    /// nanoTON a worker contract pays per price-adjusted token (the root's
    /// `worker_fee_per_token`, saturating).
    pub worker_fee_per_token: u64,
    /// Unix time of the last successful read.
    pub last_read_unix: u64,
    /// Reads that found a changed registry (the first read included).
    pub changes: u64,
    /// The last failed read's error, cleared by the next success.
    pub last_error: Option<String>,
}

impl RegistryStatus {
    fn record(&mut self, registry: &Registry) {
        let hexes = |v: &[[u8; 32]]| v.iter().map(hex::encode).collect();
        self.root = registry.root.to_raw();
        self.version = registry.version;
        self.proxy_image_hashes = hexes(&registry.proxy_image_hashes);
        self.worker_image_hashes = hexes(&registry.worker_image_hashes);
        self.model_hashes = hexes(&registry.model_hashes);
        self.registered_proxies = registry
            .registered_proxies
            .iter()
            .map(|p| format!("{} {}", p.seqno, p.endpoint))
            .collect();
        self.worker_fee_per_token =
            u64::try_from(registry.params().core().worker_fee_per_token).unwrap_or(u64::MAX);
        self.last_read_unix = unix_now();
        self.changes += 1;
        self.last_error = None;
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Follows one root registry: reads it, and reads it again every interval, handing each
/// changed registry to the node (which turns it into peer policies). A failed read keeps the
/// last registry in force and is reported in [`RegistryStatus::last_error`].
pub struct RegistryFollower {
    chain: Arc<dyn Chain>,
    root: Address,
    interval: Duration,
    status: Arc<Mutex<RegistryStatus>>,
}

impl std::fmt::Debug for RegistryFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryFollower")
            .field("root", &self.root.to_raw())
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl RegistryFollower {
    /// A follower of `root` on `chain`, reading it every `interval`.
    #[must_use]
    pub fn new(chain: Arc<dyn Chain>, root: Address, interval: Duration) -> Self {
        Self {
            chain,
            root,
            interval,
            status: Arc::new(Mutex::new(RegistryStatus {
                root: root.to_raw(),
                ..RegistryStatus::default()
            })),
        }
    }

    /// The followed root.
    #[must_use]
    pub fn root(&self) -> &Address {
        &self.root
    }

    /// What the follower last saw, shared with `/stats`.
    #[must_use]
    pub fn status(&self) -> Arc<Mutex<RegistryStatus>> {
        self.status.clone()
    }

    /// Reads the registry once, recording the outcome in the status.
    ///
    /// # Errors
    /// See [`read_registry`].
    pub async fn read(&self) -> Result<Registry, ChainError> {
        let result = read_registry(self.chain.as_ref(), &self.root).await;
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        match &result {
            Ok(registry) => status.record(registry),
            Err(e) => status.last_error = Some(e.to_string()),
        }
        result
    }

    /// Reads the registry until a read succeeds, waiting `retry` between attempts (a node
    /// must not admit peers before it knows the allow-lists).
    pub async fn first(&self, retry: Duration) -> Registry {
        loop {
            match self.read().await {
                Ok(registry) => return registry,
                Err(e) => {
                    tracing::warn!(
                        root = %self.root.to_raw(),
                        "cannot read the root registry, retrying in {retry:?}: {e}"
                    );
                    tokio::time::sleep(retry).await;
                }
            }
        }
    }

    /// Reads the registry every interval from now on and calls `on_change` with each one that
    /// differs from `current` (by the root's version or parsed state). Runs until the task is
    /// dropped or aborted.
    pub async fn follow(self, mut current: Registry, on_change: impl Fn(&Registry) + Send) {
        loop {
            tokio::time::sleep(self.interval).await;
            match self.read().await {
                Ok(registry) if registry.state != current.state => {
                    tracing::info!(
                        root = %self.root.to_raw(),
                        version = registry.version,
                        "the root registry changed"
                    );
                    on_change(&registry);
                    current = registry;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    root = %self.root.to_raw(),
                    "cannot read the root registry (the last one read stays in force): {e}"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn settings_default_to_the_settlement_chain_and_check_the_root() {
        let mut s = RegistrySettings::default();
        assert_eq!(s.root_address().unwrap(), None);
        assert_eq!(
            s.chain_or((Some("emulated=127.0.0.1:1"), Some("k"))),
            (Some("emulated=127.0.0.1:1"), Some("k"))
        );
        s.chain = Some("toncenter=https://toncenter.com/api".into());
        assert_eq!(
            s.chain_or((Some("emulated=127.0.0.1:1"), Some("k"))),
            (Some("toncenter=https://toncenter.com/api"), None)
        );
        s.root = Some("not an address".into());
        assert!(matches!(s.root_address(), Err(ChainError::Address { .. })));
        s.root = Some(format!("0:{}", "ab".repeat(32)));
        assert!(s.root_address().unwrap().is_some());
        s.refresh_secs = 0;
        assert_eq!(s.refresh_interval(), Duration::from_secs(1));
        // A root needs a chain, from this section or the settlement's.
        assert!(s.check(None).is_ok(), "the section's own chain is set");
        s.chain = None;
        assert!(
            s.check(None)
                .unwrap_err()
                .to_string()
                .contains("needs a chain")
        );
        assert!(s.check(Some("emulated=127.0.0.1:1")).is_ok());
        s.root = Some("nonsense".into());
        assert!(
            s.check(Some("emulated=127.0.0.1:1"))
                .unwrap_err()
                .to_string()
                .contains("[registry] root")
        );
    }
}

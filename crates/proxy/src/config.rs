//! Proxy settings (from a TOML file, environment and flags, merged by the binary) and errors.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cocoon_market::pricing::PricingParams;
use cocoon_node::AttestationConfig;
use cocoon_node::keys::KeysConfig;
use serde::{Deserialize, Serialize};

/// Everything a proxy needs to know.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// Where workers connect.
    pub worker_listen: SocketAddr,
    /// Where clients connect.
    pub client_listen: SocketAddr,
    /// Where `/stats`, `/jsonstats` and `/metrics` are served (`None`: not at all).
    pub stats_listen: Option<SocketAddr>,
    /// Proof-of-work difficulty asked of connecting workers.
    pub worker_pow_difficulty: i32,
    /// Proof-of-work difficulty asked of connecting clients.
    pub client_pow_difficulty: i32,
    /// TON address of the proxy's owner.
    pub owner_address: String,
    /// Address of the proxy's contract.
    pub contract_address: String,
    /// Whether this proxy belongs to a test network (announced to peers).
    pub is_test: bool,
    /// Prices and token weights. A ledger remembers the prices it was created with and refuses
    /// to open with others.
    pub pricing: PricingParams,
    /// Where the books are kept: an SQLite file path (or `sqlite:PATH`), or a
    /// `postgres://user:password@host:port/database` URL. `None` keeps them in memory, lost at
    /// exit (tests and embedding); the `cocoon-proxy` executable fills in a file under
    /// `data_dir` instead.
    pub ledger_url: Option<String>,
    /// The proxy's own files (the default ledger file). The `cocoon-proxy` executable defaults it
    /// to `$XDG_DATA_HOME/cocoon/proxy` (`~/.local/share/cocoon/proxy`).
    pub data_dir: Option<PathBuf>,
    /// Emulated chain: nanoTON credited to a client the first time it authorizes, once for the
    /// life of the ledger (a restart does not credit it again). Local mode only; with 0 clients
    /// need a funded account.
    pub emulated_client_deposit: u64,
    /// Local mode without a chain: long authorization is accepted without proof (emulated
    /// registration). Ignored when the proxy has a chain: there, long authorization always
    /// needs the client contract's `register` log with the session's nonce.
    pub emulated_registration: bool,
    /// How long after connecting a client may take to register its session's nonce on chain
    /// (long authorization); after that it must connect again.
    #[serde(with = "cocoon_net::secs")]
    pub registration_timeout: Duration,
    /// Known clients: owner address (any spelling; one entry per owner) → hex SHA-256 of
    /// their secret. Such an owner authorizes only with its secret (short authorization).
    pub client_secret_hashes: BTreeMap<String, String>,
    /// Attempts per request on distinct workers when a worker fails before its first byte.
    pub max_attempts: usize,
    /// Longest time a request may take, whatever the client asks.
    #[serde(with = "cocoon_net::secs")]
    pub max_request_timeout: Duration,
    /// How long a stopped (cancelled, timed out, abandoned) version-3 worker has to report the
    /// tokens it used, which are charged when answer bytes had reached the client.
    #[serde(with = "cocoon_net::secs")]
    pub cancel_grace: Duration,
    /// Longest wait for a peer to take a message: a client that does not read its answer in
    /// that time loses its request and its session.
    #[serde(with = "cocoon_net::secs")]
    pub client_write_timeout: Duration,
    /// Bytes of answer one request may have queued between its worker and its client; a request
    /// whose client reads slower is cut, never the worker's connection.
    pub request_queue_bytes: usize,
    /// This proxy's evidence and the policy its workers must satisfy. Clients run by
    /// integrators are not in a TEE: the client port accepts them without evidence.
    pub attestation: AttestationConfig,
    /// Where the voucher-signing key is kept (`<data_dir>/voucher-key.sealed`; `keys.data_dir`
    /// unset means the proxy's `data_dir`, and with neither a fresh key is kept in memory and
    /// changes at every start), and what seals it.
    pub keys: KeysConfig,
    /// Settlement on chain (`[chain]`): client balances from their contracts, signed
    /// vouchers, ledger anchors. Without an endpoint the proxy runs without a chain.
    pub chain: crate::settle::ChainSettings,
    /// The root registry whose allow-lists workers must satisfy (`[registry]`): by default the
    /// root the proxy contract names, when the proxy runs on a chain.
    pub registry: cocoon_chain::RegistrySettings,
    /// Highest protocol version offered to clients and workers: 3 (sealed requests, receipts)
    /// by default; 2 makes the proxy speak only the reference protocol.
    pub max_protocol_version: i32,
    /// Caps and deadlines of the client port (`[client_port]`): 4,096 connections, 64 per
    /// address, 10 s from accept to an open session, 10 s more to authorize.
    pub client_port: cocoon_net::PortLimits,
    /// Caps and deadlines of the worker port (`[worker_port]`): the same defaults; a worker
    /// has 10 s after its session opens to complete its handshake.
    pub worker_port: cocoon_net::PortLimits,
    /// Connections held at once by the stats port (`/stats`, `/jsonstats`, `/metrics`).
    pub stats_max_connections: usize,
    /// Host names the stats port answers for besides IP addresses and `localhost` (the name a
    /// monitoring system scrapes it by); any other `Host` is refused, as are browser pages.
    pub stats_allowed_hosts: Vec<String>,
    /// Makes this proxy a key holder of the reference's "v1" request encryption: the receiver's
    /// Ed25519 private key (64 hex digits, the seed the reference's key manager hands proxies).
    /// A request whose `client.runQueryEx` carries `public_key` then goes to its worker as
    /// `proxy.runQueryEx` with this key in `private_key`. Unset (the default), such requests are
    /// relayed untouched. A proxy holding the key can read those requests: it is for
    /// interoperating with reference clients, never for our own sealed requests.
    pub reference_private_key: Option<String>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            worker_listen: SocketAddr::from(([127, 0, 0, 1], 11001)),
            client_listen: SocketAddr::from(([127, 0, 0, 1], 11002)),
            stats_listen: Some(SocketAddr::from(([127, 0, 0, 1], 11000))),
            worker_pow_difficulty: cocoon_protocol::pow::DEFAULT_DIFFICULTY,
            client_pow_difficulty: cocoon_protocol::pow::DEFAULT_DIFFICULTY,
            owner_address: "local-proxy-owner".into(),
            contract_address: "local-proxy-contract".into(),
            is_test: true,
            pricing: PricingParams::default(),
            ledger_url: None,
            data_dir: None,
            emulated_client_deposit: 0,
            emulated_registration: false,
            registration_timeout: Duration::from_secs(300),
            client_secret_hashes: BTreeMap::new(),
            max_attempts: 3,
            max_request_timeout: Duration::from_secs(600),
            cancel_grace: Duration::from_secs(10),
            client_write_timeout: Duration::from_secs(30),
            request_queue_bytes: 8 * 1024 * 1024,
            attestation: AttestationConfig::default(),
            keys: KeysConfig::default(),
            chain: crate::settle::ChainSettings::default(),
            registry: cocoon_chain::RegistrySettings::default(),
            max_protocol_version: cocoon_protocol::version::MAX_VERSION,
            client_port: cocoon_net::PortLimits::default(),
            worker_port: cocoon_net::PortLimits::default(),
            stats_max_connections: cocoon_net::http_server::HttpLimits::default().max_connections,
            stats_allowed_hosts: Vec::new(),
            reference_private_key: None,
        }
    }
}

impl ProxyConfig {
    /// Connections the proxy's ports may hold together (what the descriptor limit must allow).
    pub fn max_open_connections(&self) -> usize {
        self.client_port.max_connections
            + self.worker_port.max_connections
            + self.stats_listen.map_or(0, |_| self.stats_max_connections)
    }

    /// The ledger file used when no `ledger_url` is configured: `ledger.sqlite` in `data_dir`
    /// (else in `default_dir`, the role's data directory), or `local-ledger.sqlite` in local mode,
    /// so that play money never mixes with a real ledger.
    pub fn default_ledger_file(
        &self,
        default_dir: Option<PathBuf>,
        local: bool,
    ) -> Result<String, ProxyError> {
        let dir = self.data_dir.clone().or(default_dir).ok_or_else(|| {
            ProxyError::Config(
                "no data directory: set XDG_DATA_HOME or HOME, or give --data-dir or --ledger-url"
                    .into(),
            )
        })?;
        let name = if local {
            "local-ledger.sqlite"
        } else {
            "ledger.sqlite"
        };
        dir.join(name).into_os_string().into_string().map_err(|p| {
            ProxyError::Config(format!(
                "the ledger path {p:?} is not UTF-8: give --ledger-url"
            ))
        })
    }

    /// The reference-encryption key this proxy holds ([`Self::reference_private_key`]).
    pub fn reference_key(&self) -> Result<Option<[u8; 32]>, ProxyError> {
        let Some(text) = &self.reference_private_key else {
            return Ok(None);
        };
        let mut key = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut key).map_err(|_| {
            ProxyError::Config("reference_private_key must be 64 hex digits".into())
        })?;
        Ok(Some(key))
    }

    /// Checks values that would make the proxy misbehave.
    pub fn validate(&self) -> Result<(), ProxyError> {
        self.reference_key()?;
        self.pricing
            .validate()
            .map_err(|e| ProxyError::Config(e.to_string()))?;
        if !(1..=cocoon_protocol::version::MAX_VERSION).contains(&self.max_protocol_version) {
            return Err(ProxyError::Config(format!(
                "max_protocol_version {} outside 1..={}",
                self.max_protocol_version,
                cocoon_protocol::version::MAX_VERSION
            )));
        }
        if self.request_queue_bytes < 64 * 1024 {
            return Err(ProxyError::Config(
                "request_queue_bytes must be at least 65536".into(),
            ));
        }
        if self.client_write_timeout.is_zero() || self.cancel_grace.is_zero() {
            return Err(ProxyError::Config(
                "client_write_timeout and cancel_grace must be positive".into(),
            ));
        }
        for (name, port) in [
            ("client_port", &self.client_port),
            ("worker_port", &self.worker_port),
        ] {
            port.validate(name).map_err(|e| match e {
                cocoon_net::NetError::Config(m) => ProxyError::Config(m),
                other => ProxyError::Attestation(other),
            })?;
        }
        if self.stats_max_connections == 0 {
            return Err(ProxyError::Config(
                "stats_max_connections must be at least 1".into(),
            ));
        }
        if self.max_attempts == 0 {
            return Err(ProxyError::Config("max_attempts must be at least 1".into()));
        }
        for d in [self.worker_pow_difficulty, self.client_pow_difficulty] {
            if !(0..=64).contains(&d) {
                return Err(ProxyError::Config(format!(
                    "proof-of-work difficulty {d} outside 0..=64"
                )));
            }
        }
        if self
            .ledger_url
            .as_deref()
            .is_some_and(|u| u.trim().is_empty())
        {
            return Err(ProxyError::Config(
                "ledger_url is empty: give a file path or a postgres:// URL".into(),
            ));
        }
        crate::auth::check_secret_owners(&self.client_secret_hashes)
            .map_err(|e| ProxyError::Config(e.to_string()))?;
        if self.registration_timeout.is_zero() {
            return Err(ProxyError::Config(
                "registration_timeout must be positive".into(),
            ));
        }
        for (owner, hash) in &self.client_secret_hashes {
            let ok = hex::decode(hash).map(|b| b.len() == 32).unwrap_or(false);
            if !ok {
                return Err(ProxyError::Config(format!(
                    "secret hash of {owner} is not 32 hex bytes"
                )));
            }
        }
        Ok(())
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// A setting is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A listening socket could not be opened.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// This proxy's attestation could not be set up (no TEE, unreadable policy...).
    #[error("attestation: {0}")]
    Attestation(#[from] cocoon_net::NetError),
    /// This proxy's identity, endpoints or key source could not be set up from its settings
    /// (no TEE, unreadable policy, a key source missing its socket...).
    #[error("attestation: {0}")]
    Node(#[from] cocoon_node::NodeError),
    /// The sealed voucher-signing key could not be opened or made: a file sealed under another
    /// measurement or platform, an altered file, an unreachable key source.
    #[error("keys at rest: {0}")]
    Keys(#[from] cocoon_seal::SealError),
    /// The ledger store could not be opened (unreachable database, prices other than the
    /// store's, failed migration...).
    #[error("ledger: {0}")]
    Ledger(#[from] cocoon_ledger_store::StoreError),
    /// The audit found books that do not add up (`cocoon-proxy ledger audit`).
    #[error("the books do not add up: {0}")]
    Unbalanced(cocoon_ledger_store::StoreError),
    /// No worker with this id is connected.
    #[error("no worker {0} is connected")]
    UnknownWorker(u64),
    /// A model change was refused (by the worker, the registry's allow-list) or failed.
    #[error("worker {worker} did not change to {model}: {reason}")]
    ModelChangeRefused {
        /// The worker's id.
        worker: u64,
        /// The model asked for.
        model: String,
        /// Why.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_default_ledger_file_lives_in_the_data_directory() {
        let role_dir = Some(PathBuf::from("/home/op/.local/share/cocoon/proxy"));
        let mut config = ProxyConfig::default();
        assert_eq!(
            config.default_ledger_file(role_dir.clone(), false).unwrap(),
            "/home/op/.local/share/cocoon/proxy/ledger.sqlite"
        );
        assert_eq!(
            config.default_ledger_file(role_dir.clone(), true).unwrap(),
            "/home/op/.local/share/cocoon/proxy/local-ledger.sqlite",
            "play money keeps a file of its own"
        );
        config.data_dir = Some(PathBuf::from("/srv/proxy"));
        assert_eq!(
            config.default_ledger_file(role_dir, false).unwrap(),
            "/srv/proxy/ledger.sqlite"
        );
        config.data_dir = None;
        assert!(matches!(
            config.default_ledger_file(None, false),
            Err(ProxyError::Config(m)) if m.contains("--ledger-url")
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_data_directory_that_is_not_utf8_asks_for_a_ledger_url() {
        use std::os::unix::ffi::OsStringExt as _;
        let config = ProxyConfig {
            data_dir: Some(PathBuf::from(std::ffi::OsString::from_vec(vec![
                b'/', 0xff,
            ]))),
            ..ProxyConfig::default()
        };
        assert!(matches!(
            config.default_ledger_file(None, false),
            Err(ProxyError::Config(m)) if m.contains("not UTF-8")
        ));
    }
}

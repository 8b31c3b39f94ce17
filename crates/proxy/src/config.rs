//! Proxy settings (from a TOML file, environment and flags, merged by the binary) and errors.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use cocoon_market::pricing::PricingParams;
use cocoon_net::AttestationConfig;
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
    /// Prices and token weights.
    pub pricing: PricingParams,
    /// Emulated chain: nanoTON credited to a client the first time it connects. Local mode
    /// only; with 0 clients need a funded account.
    pub emulated_client_deposit: u64,
    /// Emulated chain: clients may register by long authorization without a chain.
    pub emulated_registration: bool,
    /// Known clients: owner address → hex SHA-256 of their secret (short authorization).
    pub client_secret_hashes: BTreeMap<String, String>,
    /// Attempts per request on distinct workers when a worker fails before its first byte.
    pub max_attempts: usize,
    /// Longest time a request may take, whatever the client asks.
    #[serde(with = "cocoon_net::secs")]
    pub max_request_timeout: Duration,
    /// This proxy's evidence and the policy its workers must satisfy. Clients run by
    /// integrators are not in a TEE: the client port accepts them without evidence.
    pub attestation: AttestationConfig,
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
            emulated_client_deposit: 0,
            emulated_registration: false,
            client_secret_hashes: BTreeMap::new(),
            max_attempts: 3,
            max_request_timeout: Duration::from_secs(600),
            attestation: AttestationConfig::default(),
        }
    }
}

impl ProxyConfig {
    /// Checks values that would make the proxy misbehave.
    pub fn validate(&self) -> Result<(), ProxyError> {
        self.pricing
            .validate()
            .map_err(|e| ProxyError::Config(e.to_string()))?;
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
}

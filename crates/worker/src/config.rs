//! Worker settings (from a TOML file, environment and flags, merged by the binary) and errors.

use std::net::SocketAddr;
use std::time::Duration;

use cocoon_protocol::ModelName;
use serde::{Deserialize, Serialize};

/// Everything a worker needs to know.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Proxies to serve, as `host:port` of their worker port.
    pub proxies: Vec<String>,
    /// Ignore `proxies` and serve the proxies the root registry lists (`[registry] root`),
    /// each registration's second address being its worker port; followed as the root changes.
    pub proxies_from_registry: bool,
    /// Connections kept to each proxy.
    pub connections_per_proxy: usize,
    /// Model name announced to proxies; its base (text before `@`) must match client requests.
    /// Unset: the engine's first model ([`WorkerConfig::choose_model`], which
    /// [`Worker::new`](crate::Worker::new) calls).
    pub model: Option<ModelName>,
    /// The SHA-256 identifying the served weights (64 hex digits), as the operator pins it for
    /// an upstream server's model (`cocoon-worker model-hash PATH` prints it). The built-in
    /// engine's digest is that of its GGUF file; when both are known they must agree.
    pub model_hash: Option<String>,
    /// The upstream server's model file or directory, when this machine can read it: hashed
    /// at start (see `model_hash`), and the worker refuses to start if it differs from a pinned
    /// `model_hash`.
    pub model_files: Option<std::path::PathBuf>,
    /// TON address that receives this worker's earnings.
    pub owner_address: String,
    /// Price coefficient, 1000 = 1.0×: the fixed price, or where a load policy starts.
    pub coefficient: i32,
    /// How the coefficient follows load (`[pricing]`; default: fixed at `coefficient`).
    pub pricing: cocoon_market::PricePolicy,
    /// How often the worker measures its load and applies `[pricing]`.
    #[serde(with = "cocoon_net::secs")]
    pub pricing_tick: Duration,
    /// Requests served at once across all proxies.
    pub max_active_requests: usize,
    /// Whether this is a test worker (announced to proxies).
    pub is_test: bool,
    /// Start disabled (proxies send nothing until enabled).
    pub start_disabled: bool,
    /// Models proxies may switch this worker to at run time, and how (`[model_change]`).
    pub model_change: crate::model_change::ModelChangeConfig,
    /// Send proxies a description of this machine (CPU, memory, GPUs, engine, attestation) in
    /// `worker.params` (flag bit 2, reference 9060ce5). Proxies older than that protocol
    /// (reference b75d444 and ours before it) refuse a `worker.params` with it: set `false`
    /// to serve them.
    pub describe_machine: bool,
    /// Serve only proxies that speak our protocol (version 3), whose coefficients and payments
    /// this worker holds to account. A proxy may answer version 2 to escape that (a reference
    /// proxy does so honestly): with `true` such a session is refused.
    pub require_audited_proxies: bool,
    /// Where to serve `/stats`, `/jsonstats`, `/metrics` and the admin endpoints.
    pub stats_listen: Option<SocketAddr>,
    /// Host names the stats port answers for besides IP addresses and `localhost` (the name a
    /// monitoring system scrapes it by); any other `Host` is refused, as are browser pages.
    pub stats_allowed_hosts: Vec<String>,
    /// Highest proof-of-work difficulty accepted from a proxy.
    pub max_pow_difficulty: i32,
    /// First delay before reconnecting to a proxy; doubles up to `reconnect_max`.
    #[serde(with = "cocoon_net::secs")]
    pub reconnect_min: Duration,
    /// Longest delay between reconnection attempts.
    #[serde(with = "cocoon_net::secs")]
    pub reconnect_max: Duration,
    /// How often to ask each proxy for payment status.
    #[serde(with = "cocoon_net::secs")]
    pub payment_status_interval: Duration,
    /// How long a request this worker completed may stay out of its proxy's committed total
    /// before it counts as unpaid (more than a tenth of the completed work unpaid holds the
    /// proxy, `crate::owed`).
    #[serde(with = "cocoon_net::secs")]
    pub payment_grace: Duration,
    /// Largest request body accepted, in bytes (transcriptions: see `max_audio_bytes`).
    pub max_request_bytes: usize,
    /// Largest audio file of a transcription, in bytes; its form may be up to
    /// [`cocoon_protocol::audio::MAX_TEXT_FIELD_BYTES`] per text field larger.
    pub max_audio_bytes: usize,
    /// Billable units (prompt tokens) per second of transcribed audio; a client that declares
    /// fewer units than this worker measures is refused.
    pub audio_tokens_per_second: u32,
    /// Extra request fields to accept beyond the OpenAI ones the worker knows.
    pub extra_allowed_fields: Vec<String>,
    /// This worker's evidence and the policy its proxies must satisfy.
    pub attestation: cocoon_node::AttestationConfig,
    /// Where the wallet and sealing keys are kept, and what seals them.
    pub keys: crate::keys::KeysConfig,
    /// Payment channel settlement (`[settlement]`): where and when payout vouchers are
    /// submitted.
    pub settlement: crate::settle::PayoutSettings,
    /// The root registry (`[registry]`, read through `[settlement] chain`): the proxy image
    /// hashes it allows narrow the policy proxies must satisfy.
    pub registry: cocoon_chain::RegistrySettings,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            proxies: vec!["127.0.0.1:11001".into()],
            proxies_from_registry: false,
            connections_per_proxy: 1,
            model: None,
            model_hash: None,
            model_files: None,
            owner_address: "local-worker-owner".into(),
            coefficient: 1000,
            pricing: cocoon_market::PricePolicy::default(),
            pricing_tick: Duration::from_secs(1),
            max_active_requests: 60,
            is_test: true,
            start_disabled: false,
            describe_machine: true,
            require_audited_proxies: false,
            model_change: crate::model_change::ModelChangeConfig::default(),
            stats_listen: Some(SocketAddr::from(([127, 0, 0, 1], 12000))),
            stats_allowed_hosts: Vec::new(),
            max_pow_difficulty: cocoon_protocol::pow::MAX_CLIENT_DIFFICULTY,
            reconnect_min: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(30),
            payment_status_interval: Duration::from_secs(10),
            payment_grace: Duration::from_secs(120),
            max_request_bytes: 8 << 20,
            max_audio_bytes: cocoon_protocol::audio::MAX_AUDIO_BYTES,
            audio_tokens_per_second: cocoon_protocol::audio::DEFAULT_AUDIO_TOKENS_PER_SECOND,
            extra_allowed_fields: Vec::new(),
            attestation: cocoon_node::AttestationConfig::default(),
            keys: crate::keys::KeysConfig::default(),
            settlement: crate::settle::PayoutSettings::default(),
            registry: cocoon_chain::RegistrySettings::default(),
        }
    }
}

impl WorkerConfig {
    /// The configured model name, or `""` while none is set (before the executable fills in
    /// the engine's first model).
    pub fn configured_model(&self) -> &str {
        self.model.as_ref().map_or("", ModelName::as_str)
    }

    /// The model this worker serves: the configured one, else the first model `engine`
    /// serves, checked as a configured name is, and kept in [`WorkerConfig::model`].
    pub fn choose_model(
        &mut self,
        engine: &dyn cocoon_infer::Engine,
    ) -> Result<&ModelName, WorkerError> {
        if self.model.is_none() {
            let served = engine.models();
            let first = served
                .first()
                .ok_or_else(|| WorkerError::Config("the engine serves no model".into()))?;
            let name = ModelName::parse(&first.name).map_err(|e| {
                WorkerError::Config(format!("the engine's model {:?}: {e}", first.name))
            })?;
            self.model = Some(name);
        }
        self.model
            .as_ref()
            .ok_or_else(|| WorkerError::Config("model must be set".into()))
    }

    /// The chain (and API key) the root registry is read from.
    pub fn registry_chain(&self) -> (Option<&str>, Option<&str>) {
        self.registry.chain_or((
            self.settlement.chain.as_deref(),
            self.settlement.api_key.as_deref(),
        ))
    }

    /// Checks the settings for mistakes a worker cannot run with.
    pub fn validate(&self) -> Result<(), WorkerError> {
        if self.model.is_none() {
            return Err(WorkerError::Config("model must be set".into()));
        }
        if self.audio_tokens_per_second == 0 {
            return Err(WorkerError::Config(
                "audio_tokens_per_second must be positive".into(),
            ));
        }
        if self.proxies_from_registry {
            if self.registry.root.is_none() {
                return Err(WorkerError::Config(
                    "proxies_from_registry needs [registry] root".into(),
                ));
            }
        } else if self.proxies.is_empty() {
            return Err(WorkerError::Config("at least one proxy is needed".into()));
        }
        self.registry
            .check(self.settlement.chain.as_deref())
            .map_err(|e| WorkerError::Config(e.to_string()))?;
        if self.connections_per_proxy == 0 || self.max_active_requests == 0 {
            return Err(WorkerError::Config(
                "connections_per_proxy and max_active_requests must be > 0".into(),
            ));
        }
        if self.coefficient <= 0 {
            return Err(WorkerError::Config("coefficient must be positive".into()));
        }
        self.pricing.validate()?;
        if self.pricing_tick.is_zero() {
            return Err(WorkerError::Config("pricing_tick must be positive".into()));
        }
        Ok(())
    }

    /// The model name without the `@…` suffix (`""` while none is set).
    pub fn base_model(&self) -> &str {
        self.model.as_ref().map_or("", ModelName::base)
    }
}

/// The text before `@` in a model name.
pub(crate) fn base_model(name: &str) -> &str {
    cocoon_protocol::model_name::base_name(name)
}

/// Why the worker could not start or keep running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// A setting is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The pricing policy (`[pricing]`) is out of range.
    #[error("{0}")]
    Pricing(#[from] cocoon_market::MarketError),
    /// A listening socket could not be opened.
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
    /// A proxy session failed.
    #[error("proxy session: {0}")]
    Session(String),
    /// This worker's attestation could not be set up (no TEE, unreadable policy...).
    #[error("attestation: {0}")]
    Attestation(#[from] cocoon_net::NetError),
    /// This worker's identity, endpoints or key source could not be set up from its settings
    /// (no TEE, unreadable policy, a key source missing its socket...).
    #[error("attestation: {0}")]
    Node(#[from] cocoon_node::NodeError),
    /// A sealed key could not be opened or made: a file sealed under another measurement or
    /// platform, an altered file, an unreachable key source, an unwritable data directory.
    #[error("keys at rest: {0}")]
    Keys(#[from] cocoon_seal::SealError),
    /// The proxy reports fewer committed tokens than we know were committed.
    #[error(
        "proxy {proxy} rolled back: it reports {reported} committed tokens, we know of {known}"
    )]
    Rollback {
        /// The proxy.
        proxy: String,
        /// What it reported.
        reported: i64,
        /// What we know.
        known: i64,
    },
    /// An earnings estimate was asked with figures out of range.
    #[error("estimate figures out of range: {0}")]
    Estimate(&'static str),
    /// The market could not be read from a client's model list (`estimate --market-from`).
    #[error("reading the market from {url}: {detail}")]
    MarketFetch {
        /// The client API asked.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The engine's speed could not be measured.
    #[error("measuring the engine: {0}")]
    Measure(String),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cocoon_infer::upstream::{UpstreamConfig, UpstreamEngine};

    fn engine(models: &[&str]) -> UpstreamEngine {
        let mut config = UpstreamConfig::new("http://127.0.0.1:9");
        config.models = models.iter().map(|m| (*m).to_owned()).collect();
        UpstreamEngine::new(config).unwrap()
    }

    #[tokio::test]
    async fn without_a_configured_model_the_engines_first_is_served() {
        let mut config = WorkerConfig::default();
        let chosen = config
            .choose_model(&engine(&["first@v1", "second"]))
            .unwrap();
        assert_eq!(chosen.as_str(), "first@v1");
        assert_eq!(config.configured_model(), "first@v1");
        // A configured model stays, whatever the engine lists first.
        let mut config = WorkerConfig {
            model: Some("mine".parse().unwrap()),
            ..WorkerConfig::default()
        };
        let chosen = config.choose_model(&engine(&["first"])).unwrap();
        assert_eq!(chosen.as_str(), "mine");
    }

    #[tokio::test]
    async fn an_engine_model_that_is_no_model_name_is_refused() {
        for bad in ["two words", "base@", "@variant", "tab\there"] {
            let mut config = WorkerConfig::default();
            let err = config.choose_model(&engine(&[bad])).unwrap_err();
            assert!(
                matches!(&err, WorkerError::Config(m) if m.contains("the engine's model")),
                "{bad:?}: {err}"
            );
            assert!(config.model.is_none(), "{bad:?} was kept");
        }
    }
}

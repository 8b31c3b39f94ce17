//! Client settings (from a TOML file, environment and flags, merged by the binary) and errors.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cocoon_market::PricingParams;
use serde::{Deserialize, Serialize};

use crate::secret::ClientSecret;

/// Everything a client needs to know.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientConfig {
    /// Where the OpenAI-compatible API listens (`None`: library use only).
    pub listen: Option<SocketAddr>,
    /// The proxy's client port, `host:port`.
    pub proxy: String,
    /// Ignore `proxy` and take the proxies the root registry lists (`[registry] root`), each
    /// registration's first address being its client port.
    pub proxy_from_registry: bool,
    /// TON address of the client's owner (identifies its account at the proxy).
    pub owner_address: String,
    /// File holding the secret for short authorization (mode 0600; its bytes, one trailing
    /// newline dropped); the proxy knows its SHA-256. See [`ClientSecret`] for the strength
    /// rules.
    pub secret_file: Option<PathBuf>,
    /// The secret itself, for library use and the `COCOON_CLIENT_SECRET` environment
    /// variable; never read from or written to a configuration file.
    #[serde(skip)]
    pub secret: Option<ClientSecret>,
    /// Whether this client belongs to a test network.
    pub is_test: bool,
    /// Highest proof-of-work difficulty accepted from the proxy.
    pub max_pow_difficulty: i32,
    /// Prices, used to report costs when the proxy speaks only the reference protocol.
    pub pricing: PricingParams,
    /// `max_coefficient` when a request sends none (1000 = 1.0×).
    pub default_max_coefficient: i32,
    /// `max_tokens` when a request sends none; sizes the balance reservation.
    pub default_max_tokens: i64,
    /// Time a request may take when it sends no `timeout`.
    #[serde(with = "cocoon_net::secs")]
    pub default_timeout: Duration,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// How long the model list from the proxy is trusted.
    #[serde(with = "cocoon_net::secs")]
    pub models_refresh: Duration,
    /// First delay before reconnecting to the proxy; doubles up to 30 s.
    #[serde(with = "cocoon_net::secs")]
    pub reconnect_min: Duration,
    /// The policy the proxy's evidence must satisfy (checked in the TLS handshake, before any
    /// request byte is sent). The client itself runs outside any TEE and presents none.
    pub attestation: cocoon_net::AttestationConfig,
    /// Payment channel settlement (`[settlement]`): where and when charge vouchers are
    /// submitted.
    pub settlement: crate::settle::ChargeSettings,
    /// The root registry (`[registry]`, read through `[settlement] chain`): its proxy image
    /// hashes narrow the policy the proxy must satisfy, its worker image hashes the one
    /// workers' sealing keys and receipts must satisfy.
    pub registry: cocoon_chain::RegistrySettings,
    /// Seal requests to attested workers whenever the proxy and a worker support it (protocol
    /// version 3), so that the proxy cannot read them. `false` sends every request the
    /// reference way, readable by the proxy (for comparison and debugging).
    pub sealing: bool,
    /// How many attested workers a sealed request is addressed to (fewer when fewer serve the
    /// model); the proxy picks one of them.
    pub sealed_candidates: usize,
    /// Refuse a request that cannot be sealed (version 2 proxy, no verified worker key) instead
    /// of sending it unsealed.
    pub require_sealed: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 10000))),
            proxy: "127.0.0.1:11002".into(),
            proxy_from_registry: false,
            owner_address: "local-client-owner".into(),
            secret_file: None,
            secret: None,
            is_test: true,
            max_pow_difficulty: cocoon_protocol::pow::MAX_CLIENT_DIFFICULTY,
            pricing: PricingParams::default(),
            default_max_coefficient: 4000,
            default_max_tokens: 1000,
            default_timeout: Duration::from_secs(120),
            max_body_bytes: 4 << 20,
            models_refresh: Duration::from_secs(2),
            reconnect_min: Duration::from_millis(200),
            attestation: cocoon_net::AttestationConfig::client(),
            settlement: crate::settle::ChargeSettings::default(),
            registry: cocoon_chain::RegistrySettings::default(),
            sealing: true,
            sealed_candidates: 3,
            require_sealed: false,
        }
    }
}

impl ClientConfig {
    /// Checks values that would make the client misbehave.
    /// The chain (and API key) the root registry is read from.
    pub fn registry_chain(&self) -> (Option<&str>, Option<&str>) {
        self.registry.chain_or((
            self.settlement.chain.as_deref(),
            self.settlement.api_key.as_deref(),
        ))
    }

    /// Checks the settings for mistakes a client cannot run with.
    pub fn validate(&self) -> Result<(), ClientError> {
        if self.owner_address.is_empty() {
            return Err(ClientError::Config("owner_address must be set".into()));
        }
        if self.secret.is_some() && self.secret_file.is_some() {
            return Err(ClientError::Config(
                "give the secret once: secret_file or COCOON_CLIENT_SECRET, not both".into(),
            ));
        }
        if self.default_max_coefficient <= 0 || self.default_max_tokens <= 0 {
            return Err(ClientError::Config(
                "default_max_coefficient and default_max_tokens must be positive".into(),
            ));
        }
        if self.require_sealed && !self.sealing {
            return Err(ClientError::Config(
                "require_sealed needs sealing turned on".into(),
            ));
        }
        if self.sealed_candidates == 0 || self.sealed_candidates > 64 {
            return Err(ClientError::Config(
                "sealed_candidates must be between 1 and 64".into(),
            ));
        }
        if self.proxy_from_registry && self.registry.root.is_none() {
            return Err(ClientError::Config(
                "proxy_from_registry needs [registry] root".into(),
            ));
        }
        self.registry
            .check(self.settlement.chain.as_deref())
            .map_err(ClientError::Config)?;
        if self.max_body_bytes == 0 {
            return Err(ClientError::Config(
                "max_body_bytes must be positive".into(),
            ));
        }
        self.pricing
            .validate()
            .map_err(|e| ClientError::Config(e.to_string()))
    }
}

/// Why a client operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A setting is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The request itself is invalid.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// No worker of the network serves the model.
    #[error("model `{0}` is not available")]
    UnknownModel(String),
    /// There is no session with the proxy.
    #[error("proxy unavailable: {0}")]
    ProxyUnavailable(String),
    /// The proxy or worker refused or failed the request.
    #[error("{message} (code {code})")]
    Remote {
        /// HTTP-style code.
        code: i32,
        /// What went wrong.
        message: String,
    },
    /// The request ran out of time.
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    /// The answer broke off.
    #[error("answer interrupted: {0}")]
    Interrupted(String),
    /// A sealed answer did not open: altered, reordered, spliced or cut short on the way, or
    /// not sealed by a worker the request was sealed to.
    #[error("the sealed answer does not open: {0}")]
    SealedAnswer(String),
    /// The short-auth secret is too weak to resist offline guessing (its unsalted SHA-256 is
    /// sent to anyone who names the owner address).
    #[error(
        "the client secret is too weak: {bytes} bytes with {distinct} different values; at \
         least 16 bytes with 8 different values are needed, because its unsalted SHA-256 goes \
         to anyone who names the owner address (make one with `head -c 32 /dev/urandom | \
         base64`)"
    )]
    WeakSecret {
        /// Its length.
        bytes: usize,
        /// How many different byte values it holds.
        distinct: usize,
    },
    /// The proxy needs the owner's on-chain registration (long authorization) and it could
    /// not be made: no wallet configured, a wallet that is not the owner, a refused or
    /// unconfirmed `register`, or no proof seen by the proxy in time.
    #[error("registration with the proxy: {0}")]
    Registration(String),
    /// `require_sealed` is set and the request cannot be sealed.
    #[error("sealed request required, and this request cannot be sealed: {0}")]
    SealingUnavailable(String),
    /// A worker's receipt does not verify: malformed, bad signature, or a certificate or
    /// evidence this client's attestation policy refuses.
    #[error("the worker's receipt does not verify: {0}")]
    ReceiptInvalid(String),
    /// A worker's receipt is valid but was issued for another request: it names another
    /// request id, sealed envelope, request body or answer than this client sent and received.
    #[error("the worker's receipt names another {0}")]
    ReceiptForAnotherRequest(&'static str),
}

impl ClientError {
    /// The HTTP status an API caller should see.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Config(_) | Self::WeakSecret { .. } => 500,
            Self::Registration(_) => 503,
            Self::InvalidRequest(_) => 400,
            Self::UnknownModel(_) => 404,
            Self::ProxyUnavailable(_) => 503,
            Self::Remote { code, .. } => match *code {
                400 | 401 | 402 | 403 | 404 | 405 | 409 | 413 | 422 | 429 | 502 | 503 | 504 => {
                    *code as u16
                }
                c if (400..500).contains(&c) => 400,
                _ => 502,
            },
            Self::Timeout(_) => 504,
            Self::Interrupted(_) => 502,
            Self::SealingUnavailable(_) => 503,
            Self::SealedAnswer(_) => 502,
            Self::ReceiptInvalid(_) | Self::ReceiptForAnotherRequest(_) => 502,
        }
    }

    /// The OpenAI error `type` for this error.
    pub fn error_type(&self) -> &'static str {
        match self.http_status() {
            400 | 404 | 405 | 409 | 413 | 422 => "invalid_request_error",
            401 | 403 => "authentication_error",
            402 => "insufficient_quota",
            429 => "rate_limit_exceeded",
            504 => "timeout",
            _ => "server_error",
        }
    }

    /// The OpenAI error `code` for this error.
    pub fn error_code(&self) -> &'static str {
        match self {
            Self::UnknownModel(_) => "model_not_found",
            Self::Timeout(_) => "timeout",
            Self::ProxyUnavailable(_) => "proxy_unavailable",
            Self::Remote { code: 402, .. } => "insufficient_balance",
            Self::Remote { code: 429, .. } => "no_capacity",
            Self::Remote { code: 502, .. } => "no_worker",
            Self::Interrupted(_) => "answer_interrupted",
            Self::SealingUnavailable(_) => "sealing_unavailable",
            Self::SealedAnswer(_) => "sealed_answer_refused",
            Self::ReceiptInvalid(_) => "receipt_invalid",
            Self::ReceiptForAnotherRequest(_) => "receipt_for_another_request",
            _ => match self.http_status() {
                413 => "request_too_large",
                400 => "invalid_request",
                _ => "error",
            },
        }
    }
}

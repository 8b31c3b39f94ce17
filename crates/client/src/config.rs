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
    /// How the proxy should choose among workers within the maximum coefficient: `latency`,
    /// `price` or `mix:W` (price weight W percent); unset: the proxy's default (latency). A
    /// request's `worker_preference` body field overrides it.
    #[serde(
        default,
        deserialize_with = "preference_from_text",
        serialize_with = "preference_to_text"
    )]
    pub worker_preference: Option<cocoon_market::Preference>,
    /// `max_tokens` when a request sends none; sizes the balance reservation.
    pub default_max_tokens: i64,
    /// Time a request may take when it sends no `timeout`.
    #[serde(with = "cocoon_net::secs")]
    pub default_timeout: Duration,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Largest audio file a transcription (`/v1/audio/transcriptions`) may carry, in bytes: at
    /// most [`cocoon_protocol::audio::MAX_AUDIO_BYTES`] (15 MiB), the default, since a request
    /// travels in one 16 MiB frame.
    pub max_audio_bytes: usize,
    /// Billable units (prompt tokens) per second of audio that this client declares for a
    /// transcription: the most it agrees to be charged. Workers measuring more refuse.
    pub audio_tokens_per_second: u32,
    /// Bytes of answer queued for one request whose caller is not reading (twice that for a
    /// sealed request: before and after opening). Past it the request alone is stopped; the
    /// proxy session and other requests are not held up.
    pub answer_queue_bytes: usize,
    /// How long the model list from the proxy is trusted.
    #[serde(with = "cocoon_net::secs")]
    pub models_refresh: Duration,
    /// First delay before reconnecting to the proxy; doubles up to 30 s.
    #[serde(with = "cocoon_net::secs")]
    pub reconnect_min: Duration,
    /// The policy the proxy's evidence must satisfy (checked in the TLS handshake, before any
    /// request byte is sent). The client itself runs outside any TEE and presents none.
    pub attestation: cocoon_node::AttestationConfig,
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
    /// of sending it unsealed. Unset: refuse under the production attestation policy (a
    /// client that was offered sealing never silently downgrades), send unsealed (logged and
    /// counted) in local mode; see [`ClientConfig::requires_sealing`].
    pub require_sealed: Option<bool>,
    /// Encrypt every request in the reference's "v1" scheme to this receiver's Ed25519 public
    /// key (64 hex digits, as the reference's root config registers it), for a reference proxy
    /// that requires it: the body's strings are encrypted, `client.runQueryEx` carries this
    /// client's `public_key`, and answers are opened here. Unset by default. Such requests are
    /// never sealed, and any proxy holding the receiver's key (the reference's key manager gives
    /// it to proxies) can read them.
    pub reference_receiver_key: Option<String>,
    /// The weights (SHA-256, 64 hex digits, as `cocoon-worker model-hash` prints it) a model
    /// must be served with, by base model name (`[pinned_weights]`). The registry admits a set
    /// of weights, not a name → weights map; with a pin, sealed requests go only to workers
    /// whose attested certificate names these weights, and a receipt naming others is refused.
    pub pinned_weights: std::collections::BTreeMap<String, String>,
    /// The largest answer gathered whole (a non-streamed completion, a transcription, and
    /// [`Client::chat`](crate::Client::chat)): past it the request is stopped and refused with
    /// 502 `answer_too_large`. Streamed answers are not gathered and have no such bound.
    pub max_answer_bytes: usize,
    /// The HTTP API's limits and who may call it (`[http]`).
    pub http: HttpApiConfig,
}

/// The OpenAI-compatible API's limits, and who may call it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpApiConfig {
    /// Connections held at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Seconds a caller has to send a request head, from connecting or from the previous
    /// answer (so also the idle limit of a kept-alive connection).
    #[serde(with = "cocoon_net::secs")]
    pub header_read_timeout: Duration,
    /// Seconds a caller has to send a request body once its head arrived; a late body gets
    /// 408.
    #[serde(with = "cocoon_net::secs")]
    pub body_read_timeout: Duration,
    /// Requests served on one connection before it is closed.
    pub max_requests_per_connection: usize,
    /// Seconds a caller may go without taking the next piece of a streamed answer: past it
    /// the caller loses that request (the proxy is told to stop it; what was relayed is
    /// charged), and nothing else waits on it.
    #[serde(with = "cocoon_net::secs")]
    pub write_timeout: Duration,
    /// Web page origins (`https://app.example`) whose pages may call the API from a browser.
    /// Empty: every request carrying an `Origin` is refused (403).
    pub allowed_origins: Vec<String>,
    /// Host names the API answers for besides IP literals and `localhost` (a name it is
    /// reached by through a reverse proxy or DNS). Any other `Host` is refused (421), which
    /// defeats DNS rebinding.
    pub allowed_hosts: Vec<String>,
    /// File holding the API key callers must send as `Authorization: Bearer <key>` (or set
    /// `COCOON_CLIENT_HTTP_API_KEY`). Without either the API is open to whoever reaches it.
    pub api_key_file: Option<PathBuf>,
}

impl Default for HttpApiConfig {
    fn default() -> Self {
        let limits = cocoon_net::http_server::HttpLimits::default();
        Self {
            max_connections: limits.max_connections,
            header_read_timeout: limits.header_read_timeout,
            body_read_timeout: limits.body_read_timeout,
            max_requests_per_connection: limits.max_requests_per_connection,
            write_timeout: Duration::from_secs(30),
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            api_key_file: None,
        }
    }
}

/// The environment variable an API key may come from instead of `[http] api_key_file`.
pub const API_KEY_ENV: &str = "COCOON_CLIENT_HTTP_API_KEY";

impl HttpApiConfig {
    /// The server's limits.
    pub fn limits(&self) -> cocoon_net::http_server::HttpLimits {
        cocoon_net::http_server::HttpLimits {
            max_connections: self.max_connections,
            header_read_timeout: self.header_read_timeout,
            body_read_timeout: self.body_read_timeout,
            max_requests_per_connection: self.max_requests_per_connection,
        }
    }

    /// Who may call the API: the configured hosts and origins, and the API key read from
    /// `api_key_file` or given as `env_key` (the value of [`API_KEY_ENV`]).
    pub fn access_rules(
        &self,
        env_key: Option<String>,
    ) -> Result<cocoon_net::http_access::AccessRules, ClientError> {
        let rules = cocoon_net::http_access::AccessRules::new()
            .allow_hosts(&self.allowed_hosts)
            .allow_origins(&self.allowed_origins);
        let key = match (&self.api_key_file, env_key) {
            (Some(_), Some(_)) => {
                return Err(ClientError::Config(format!(
                    "an API key is given both by http.api_key_file and by {API_KEY_ENV}; keep one"
                )));
            }
            (Some(path), None) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ClientError::Config(format!(
                        "cannot read the API key file {}: {e}",
                        path.display()
                    ))
                })?;
                Some((text.trim().to_owned(), path.display().to_string()))
            }
            (None, Some(key)) => Some((key.trim().to_owned(), API_KEY_ENV.to_owned())),
            (None, None) => None,
        };
        Ok(match key {
            Some((key, from)) => {
                if key.len() < 16 || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(ClientError::Config(format!(
                        "the API key from {from} must be at least 16 characters without spaces"
                    )));
                }
                rules.require_key(&key)
            }
            None => rules,
        })
    }

    fn validate(&self) -> Result<(), ClientError> {
        if self.max_connections == 0 || self.max_requests_per_connection == 0 {
            return Err(ClientError::Config(
                "http.max_connections and http.max_requests_per_connection must be positive".into(),
            ));
        }
        for (name, d) in [
            ("header_read_timeout", self.header_read_timeout),
            ("body_read_timeout", self.body_read_timeout),
            ("write_timeout", self.write_timeout),
        ] {
            if d.is_zero() || d > Duration::from_secs(3600) {
                return Err(ClientError::Config(format!(
                    "http.{name} must be between 0 and 3600 seconds"
                )));
            }
        }
        for origin in &self.allowed_origins {
            let ok = origin.split_once("://").is_some_and(|(scheme, rest)| {
                matches!(scheme, "http" | "https")
                    && !rest.is_empty()
                    && !rest.trim_end_matches('/').contains('/')
            });
            if !ok {
                return Err(ClientError::Config(format!(
                    "http.allowed_origins: `{origin}` is not an origin (scheme://host[:port])"
                )));
            }
        }
        Ok(())
    }
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
            worker_preference: None,
            default_max_tokens: 1000,
            default_timeout: Duration::from_secs(120),
            max_body_bytes: 4 << 20,
            max_audio_bytes: cocoon_protocol::audio::MAX_AUDIO_BYTES,
            audio_tokens_per_second: cocoon_protocol::audio::DEFAULT_AUDIO_TOKENS_PER_SECOND,
            answer_queue_bytes: 8 << 20,
            models_refresh: Duration::from_secs(2),
            reconnect_min: Duration::from_millis(200),
            attestation: cocoon_node::AttestationConfig::client(),
            settlement: crate::settle::ChargeSettings::default(),
            registry: cocoon_chain::RegistrySettings::default(),
            sealing: true,
            sealed_candidates: 3,
            require_sealed: None,
            reference_receiver_key: None,
            pinned_weights: std::collections::BTreeMap::new(),
            max_answer_bytes: 32 << 20,
            http: HttpApiConfig::default(),
        }
    }
}

impl ClientConfig {
    /// Whether a request that cannot be sealed is refused: `require_sealed` when set, else
    /// whenever sealing is on and peers are held to the production policy.
    pub fn requires_sealing(&self) -> bool {
        self.require_sealed.unwrap_or(
            self.sealing
                && self.attestation.policy == cocoon_node::PolicyPreset::Production
                && self.attestation.policy_file.is_none(),
        )
    }

    /// Checks values that would make the client misbehave.
    /// The chain (and API key) the root registry is read from.
    pub fn registry_chain(&self) -> (Option<&str>, Option<&str>) {
        self.registry.chain_or((
            self.settlement.chain.as_deref(),
            self.settlement.api_key.as_deref(),
        ))
    }

    /// The receiver key of [`Self::reference_receiver_key`], parsed.
    pub fn reference_receiver(&self) -> Result<Option<cocoon_refv1::Ed25519Public>, ClientError> {
        let Some(text) = &self.reference_receiver_key else {
            return Ok(None);
        };
        let key = cocoon_refv1::Ed25519Public::from_hex(text.trim(), "reference_receiver_key")
            .map_err(|e| ClientError::Config(e.to_string()))?;
        key.to_x25519("receiver")
            .map_err(|e| ClientError::Config(e.to_string()))?;
        Ok(Some(key))
    }

    /// The weights pinned for `model`'s base name (before any `@`), if any.
    pub fn pinned_weights_for(&self, model: &str) -> Result<Option<[u8; 32]>, ClientError> {
        let base = cocoon_protocol::model_name::base_name(model);
        let Some(text) = self.pinned_weights.get(base) else {
            return Ok(None);
        };
        let mut out = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut out).map_err(|_| {
            ClientError::Config(format!(
                "pinned_weights.{base:?}: expected 64 hex digits, got {text:?}"
            ))
        })?;
        Ok(Some(out))
    }

    /// Checks the settings for mistakes a client cannot run with.
    pub fn validate(&self) -> Result<(), ClientError> {
        for model in self.pinned_weights.keys() {
            self.pinned_weights_for(model)?;
        }
        if self.reference_receiver()?.is_some() && self.require_sealed == Some(true) {
            return Err(ClientError::Config(
                "reference_receiver_key sends requests unsealed: it excludes require_sealed".into(),
            ));
        }
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
        if self.require_sealed == Some(true) && !self.sealing {
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
            .map_err(|e| ClientError::Config(e.to_string()))?;
        self.http.validate()?;
        if self.max_audio_bytes == 0
            || self.max_audio_bytes > cocoon_protocol::audio::MAX_AUDIO_BYTES
            || self.audio_tokens_per_second == 0
        {
            return Err(ClientError::Config(format!(
                "max_audio_bytes must be from 1 to {} (a request travels in one 16 MiB frame) \
                 and audio_tokens_per_second positive",
                cocoon_protocol::audio::MAX_AUDIO_BYTES
            )));
        }
        if self.max_answer_bytes == 0 {
            return Err(ClientError::Config(
                "max_answer_bytes must be positive".into(),
            ));
        }
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
    /// A transcription form is refused ([`cocoon_protocol::Error::form_field`] names the field).
    #[error("invalid transcription form: {0}")]
    InvalidForm(cocoon_protocol::Error),
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
        /// The request body field at fault, when the refusal names one (OpenAI's `param`).
        param: Option<String>,
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
    /// A sealed answer came without the worker's receipt, which a version-3 worker always
    /// signs: it was dropped on the way.
    #[error("the sealed answer came without the worker's receipt")]
    ReceiptMissing,
    /// An answer gathered whole grew past `max_answer_bytes`; it was stopped at the proxy.
    #[error("the answer exceeds {limit} bytes (max_answer_bytes)")]
    AnswerTooLarge {
        /// The bound, in bytes.
        limit: usize,
    },
    /// The usage the proxy reported for an answer counts more tokens than the worker's receipt
    /// signs (or a negative count): the receipt does not vouch for what the caller is billed.
    #[error("the proxy reported {reported} {tokens} tokens, the worker's receipt signs {signed}")]
    ReceiptBelowUsage {
        /// Which count: prompt, cached, completion, reasoning or total.
        tokens: &'static str,
        /// What the proxy reported.
        reported: i64,
        /// What the receipt signs.
        signed: u64,
    },
    /// The proxy charged a request more than its usage (or, without one, its reservation)
    /// allows at the network's prices: this client sends it nothing more.
    #[error("{0}: this client sends the proxy no more requests; check the prices and restart")]
    ProxyOvercharged(String),
}

impl ClientError {
    /// The HTTP status an API caller should see.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Config(_) | Self::WeakSecret { .. } => 500,
            Self::Registration(_) => 503,
            Self::InvalidRequest(_) => 400,
            Self::InvalidForm(cocoon_protocol::Error::FormFieldTooLarge { .. }) => 413,
            Self::InvalidForm(_) => 400,
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
            Self::Interrupted(_) | Self::AnswerTooLarge { .. } | Self::ProxyOvercharged(_) => 502,
            Self::SealingUnavailable(_) => 503,
            Self::SealedAnswer(_) => 502,
            Self::ReceiptInvalid(_)
            | Self::ReceiptForAnotherRequest(_)
            | Self::ReceiptBelowUsage { .. }
            | Self::ReceiptMissing => 502,
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
            Self::AnswerTooLarge { .. } => "answer_too_large",
            Self::SealingUnavailable(_) => "sealing_unavailable",
            Self::SealedAnswer(_) => "sealed_answer_refused",
            Self::ReceiptInvalid(_) => "receipt_invalid",
            Self::ReceiptForAnotherRequest(_) => "receipt_for_another_request",
            Self::ReceiptBelowUsage { .. } => "receipt_below_usage",
            Self::ReceiptMissing => "receipt_missing",
            Self::ProxyOvercharged(_) => "proxy_overcharged",
            _ => match self.http_status() {
                413 => "request_too_large",
                400 => "invalid_request",
                _ => "error",
            },
        }
    }
}

fn preference_from_text<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<cocoon_market::Preference>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    text.map(|t| t.parse().map_err(serde::de::Error::custom))
        .transpose()
}

fn preference_to_text<S: serde::Serializer>(
    p: &Option<cocoon_market::Preference>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.serialize_some(&p.to_string()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_api_key_comes_from_one_place_and_is_long_enough() {
        let http = HttpApiConfig::default();
        assert!(!http.access_rules(None).unwrap().has_key());
        assert!(
            http.access_rules(Some("0123456789abcdef".into()))
                .unwrap()
                .has_key()
        );
        assert!(http.access_rules(Some("short".into())).is_err());
        assert!(http.access_rules(Some("0123456789 abcdef".into())).is_err());

        let path = std::env::temp_dir().join(format!("cocoon-api-key-{}", std::process::id()));
        std::fs::write(&path, "0123456789abcdef\n").unwrap();
        let from_file = HttpApiConfig {
            api_key_file: Some(path.clone()),
            ..HttpApiConfig::default()
        };
        assert!(from_file.access_rules(None).unwrap().has_key());
        let both = from_file.access_rules(Some("0123456789abcdef".into()));
        assert!(both.is_err_and(|e| e.to_string().contains(API_KEY_ENV)));
        std::fs::remove_file(&path).unwrap();
        assert!(from_file.access_rules(None).is_err());
    }

    #[test]
    fn http_settings_are_checked() {
        let with = |http: HttpApiConfig| ClientConfig {
            http,
            ..ClientConfig::default()
        };
        assert!(with(HttpApiConfig::default()).validate().is_ok());
        for origin in ["evil.example", "ftp://x.example", "https://x.example/path"] {
            let bad = with(HttpApiConfig {
                allowed_origins: vec![origin.into()],
                ..HttpApiConfig::default()
            });
            assert!(bad.validate().is_err(), "{origin}");
        }
        let ok = with(HttpApiConfig {
            allowed_origins: vec!["https://app.example:8443/".into()],
            ..HttpApiConfig::default()
        });
        assert!(ok.validate().is_ok());
        let bad = with(HttpApiConfig {
            header_read_timeout: Duration::ZERO,
            ..HttpApiConfig::default()
        });
        assert!(bad.validate().is_err());
    }

    #[test]
    fn an_answer_bound_of_zero_is_refused() {
        let bad = ClientConfig {
            max_answer_bytes: 0,
            ..ClientConfig::default()
        };
        assert!(
            matches!(bad.validate(), Err(ClientError::Config(m)) if m.contains("max_answer_bytes"))
        );
        let parsed: ClientConfig = serde_json::from_str(r#"{"max_answer_bytes": 1024}"#).unwrap();
        assert_eq!(parsed.max_answer_bytes, 1024);
        assert!(parsed.validate().is_ok());
    }
}

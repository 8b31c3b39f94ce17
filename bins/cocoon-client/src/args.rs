//! The client's command line: flags, subcommands, and how the flags override the
//! configuration file and the environment.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use cocoon_client::ClientConfig;

/// COCOON client: an OpenAI-compatible HTTP API that sends requests through an attested COCOON
/// proxy and pays for them.
///
/// Settings come from the TOML file given with --config (keys as in `ClientConfig`), then from
/// COCOON_CLIENT_* environment variables, then from flags; later sources win.
#[derive(Parser, Debug)]
#[command(name = "cocoon-client", version)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) flags: ClientFlags,
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    #[command(flatten)]
    Chain(crate::chain_ops::ChainOp),
    /// Check a worker's signed receipt offline: its certificate and TEE evidence under a
    /// policy, its signature, and what it names.
    VerifyReceipt(crate::verify_receipt::VerifyReceipt),
    /// Close the client's account through its proxy (`client.requestRefund`), with the
    /// client's own flags and configuration; prints one JSON object.
    Refund {
        #[command(flatten)]
        flags: Box<ClientFlags>,
    },
}

/// The running client's flags, shared by the server and `refund`.
#[derive(clap::Args, Debug)]
pub(crate) struct ClientFlags {
    /// TOML configuration file.
    #[arg(long, env = "COCOON_CLIENT_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Address of the OpenAI-compatible API (default 127.0.0.1:10000).
    #[arg(long, env = "COCOON_CLIENT_LISTEN")]
    pub(crate) listen: Option<SocketAddr>,
    /// The proxy's client port, host:port (default 127.0.0.1:11002).
    #[arg(long, env = "COCOON_CLIENT_PROXY")]
    pub(crate) proxy: Option<String>,
    /// Take the proxies the root registry lists (--registry-root) instead of --proxy, trying
    /// each in turn.
    #[arg(
        long,
        env = "COCOON_CLIENT_PROXY_FROM_REGISTRY",
        conflicts_with = "proxy"
    )]
    pub(crate) proxy_from_registry: bool,
    /// TON address of the client's owner.
    #[arg(long, env = "COCOON_CLIENT_OWNER")]
    pub(crate) owner: Option<String>,
    /// File holding the secret for short authorization with the proxy (mode 0600; at least
    /// 16 bytes). The secret itself may come from the COCOON_CLIENT_SECRET environment
    /// variable instead; it is never taken from a flag, which other users can read.
    #[arg(long, env = "COCOON_CLIENT_SECRET_FILE")]
    pub(crate) secret_file: Option<PathBuf>,
    /// Largest request body accepted, in bytes (default 4 MiB).
    #[arg(long, env = "COCOON_CLIENT_MAX_BODY_BYTES")]
    pub(crate) max_body_bytes: Option<usize>,
    /// Local mode: accept a proxy with SIMULATED attestation (one that runs in no TEE and can
    /// read requests). Never for production.
    #[arg(long, env = "COCOON_CLIENT_LOCAL")]
    pub(crate) local: bool,
    /// JSON attestation policy the proxy must satisfy (e.g. allowed image hashes); replaces
    /// the preset.
    #[arg(long, env = "COCOON_CLIENT_POLICY_FILE")]
    pub(crate) policy_file: Option<PathBuf>,
    /// Where charge vouchers are submitted: emulated=HOST:PORT (local mode) or toncenter=URL.
    #[arg(long, env = "COCOON_CLIENT_CHAIN")]
    pub(crate) chain: Option<String>,
    /// Toncenter API key.
    #[arg(long, env = "COCOON_TONCENTER_API_KEY", hide_env_values = true)]
    pub(crate) api_key: Option<String>,
    /// The wallet key file (hex Ed25519 seed, mode 0600) that pays for submitting vouchers.
    #[arg(long, env = "COCOON_CLIENT_WALLET_KEY_FILE")]
    pub(crate) wallet_key_file: Option<PathBuf>,
    /// Submit the latest charge voucher once the charges it adds reach this fraction of the
    /// stake (default 0.5).
    #[arg(long, env = "COCOON_CLIENT_SUBMIT_STAKE_FRACTION")]
    pub(crate) submit_stake_fraction: Option<f64>,
    /// Seconds between payment status queries (default 10).
    #[arg(long, env = "COCOON_CLIENT_PAYMENT_STATUS_INTERVAL")]
    pub(crate) payment_status_interval: Option<f64>,
    #[command(flatten)]
    pub(crate) registry: cocoon_cli::chain::RegistryFlags,
    /// Refuse requests that cannot be sealed to attested workers (a version 2 proxy, no
    /// verified worker key) instead of sending them readable by the proxy.
    #[arg(long, env = "COCOON_CLIENT_REQUIRE_SEALED")]
    pub(crate) require_sealed: bool,
    /// Never seal requests: send them the reference way, readable by the proxy (for comparison
    /// and debugging).
    #[arg(
        long,
        env = "COCOON_CLIENT_NO_SEALING",
        conflicts_with = "require_sealed"
    )]
    pub(crate) no_sealing: bool,
    /// How many attested workers a sealed request is addressed to (default 3).
    #[arg(long, env = "COCOON_CLIENT_SEALED_CANDIDATES")]
    pub(crate) sealed_candidates: Option<usize>,
    /// Connections the API holds at once (default 1024).
    #[arg(long, env = "COCOON_CLIENT_HTTP_MAX_CONNECTIONS")]
    pub(crate) http_max_connections: Option<usize>,
    /// Seconds a caller has to send a request head, also the idle limit of a kept-alive
    /// connection (default 10).
    #[arg(long, env = "COCOON_CLIENT_HTTP_HEADER_TIMEOUT")]
    pub(crate) http_header_timeout: Option<f64>,
    /// Seconds a caller has to send a request body (default 30).
    #[arg(long, env = "COCOON_CLIENT_HTTP_BODY_TIMEOUT")]
    pub(crate) http_body_timeout: Option<f64>,
    /// A web page origin (scheme://host[:port]) allowed to call the API from a browser;
    /// repeatable. By default every browser page is refused.
    #[arg(
        long = "allowed-origin",
        env = "COCOON_CLIENT_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub(crate) allowed_origins: Vec<String>,
    /// A host name the API answers for besides IP addresses and localhost; repeatable.
    #[arg(
        long = "allowed-host",
        env = "COCOON_CLIENT_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub(crate) allowed_hosts: Vec<String>,
    /// File holding the API key callers must send as `Authorization: Bearer <key>` (or set
    /// COCOON_CLIENT_HTTP_API_KEY; never a flag value, which other users could read).
    #[arg(long, env = "COCOON_CLIENT_HTTP_API_KEY_FILE")]
    pub(crate) http_api_key_file: Option<PathBuf>,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "COCOON_LOG_JSON")]
    pub(crate) log_json: bool,
}

/// The environment variable that may hold the short-auth secret itself.
const SECRET_ENV: &str = "COCOON_CLIENT_SECRET";

pub(crate) fn load(args: &ClientFlags) -> Result<ClientConfig, String> {
    let mut config: ClientConfig =
        cocoon_cli::read_config(args.config.as_deref()).map_err(|e| e.to_string())?;
    if let Some(v) = args.listen {
        config.listen = Some(v);
    }
    if let Some(v) = &args.proxy {
        config.proxy = v.clone();
    }
    if args.proxy_from_registry {
        config.proxy_from_registry = true;
    }
    if let Some(v) = &args.owner {
        config.owner_address = v.clone();
    }
    if let Some(v) = &args.secret_file {
        config.secret_file = Some(v.clone());
    }
    if let Some(v) = std::env::var_os(SECRET_ENV) {
        let secret = cocoon_client::ClientSecret::new(v.into_encoded_bytes())
            .map_err(|e| format!("{SECRET_ENV}: {e}"))?;
        config.secret = Some(secret);
    }
    if let Some(v) = args.max_body_bytes {
        config.max_body_bytes = v;
    }
    if args.local {
        config.attestation.policy = cocoon_node::PolicyPreset::LocalSimulated;
    }
    if args.require_sealed {
        config.require_sealed = Some(true);
    }
    if args.no_sealing {
        config.sealing = false;
    }
    if let Some(v) = args.sealed_candidates {
        config.sealed_candidates = v;
    }
    if let Some(v) = &args.policy_file {
        config.attestation.policy_file = Some(v.clone());
    }
    if let Some(v) = &args.chain {
        config.settlement.chain = Some(v.clone());
    }
    if let Some(v) = &args.api_key {
        config.settlement.api_key = Some(v.clone());
    }
    if let Some(v) = &args.wallet_key_file {
        config.settlement.wallet_key_file = Some(v.clone());
    }
    if let Some(v) = args.submit_stake_fraction {
        config.settlement.submit_stake_fraction = v;
    }
    if let Some(v) = args.payment_status_interval {
        config.settlement.payment_status_interval = std::time::Duration::try_from_secs_f64(v)
            .map_err(|e| format!("--payment-status-interval: {e}"))?;
    }
    if let Some(v) = args.http_max_connections {
        config.http.max_connections = v;
    }
    let secs = |flag: &str, v: f64| {
        std::time::Duration::try_from_secs_f64(v).map_err(|e| format!("--{flag}: {e}"))
    };
    if let Some(v) = args.http_header_timeout {
        config.http.header_read_timeout = secs("http-header-timeout", v)?;
    }
    if let Some(v) = args.http_body_timeout {
        config.http.body_read_timeout = secs("http-body-timeout", v)?;
    }
    config
        .http
        .allowed_origins
        .extend(args.allowed_origins.iter().cloned());
    config
        .http
        .allowed_hosts
        .extend(args.allowed_hosts.iter().cloned());
    if let Some(v) = &args.http_api_key_file {
        config.http.api_key_file = Some(v.clone());
    }
    args.registry.apply(&mut config.registry);
    Ok(config)
}

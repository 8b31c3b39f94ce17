//! The client's command line: its flags, each serializing to the configuration key it sets,
//! and the subcommands; and the steps `cocoon_cli::ConfigLayers` cannot take alone (lists that
//! add to the file's, the secret from its environment variable).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use cocoon_cli::{ConfigLayers, Role};
use cocoon_client::ClientConfig;
use serde::Serialize;

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
#[derive(clap::Args, Debug, Serialize)]
pub(crate) struct ClientFlags {
    /// TOML configuration file.
    #[arg(long, env = "COCOON_CLIENT_CONFIG")]
    #[serde(skip)]
    pub(crate) config: Option<PathBuf>,
    /// Address of the OpenAI-compatible API (default 127.0.0.1:10000).
    #[arg(long, env = "COCOON_CLIENT_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) listen: Option<SocketAddr>,
    /// The proxy's client port, host:port (default 127.0.0.1:11002).
    #[arg(long, env = "COCOON_CLIENT_PROXY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) proxy: Option<String>,
    /// Take the proxies the root registry lists (--registry-root) instead of --proxy, trying
    /// each in turn.
    #[arg(
        long,
        env = "COCOON_CLIENT_PROXY_FROM_REGISTRY",
        conflicts_with = "proxy"
    )]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) proxy_from_registry: bool,
    /// TON address of the client's owner.
    #[arg(long, env = "COCOON_CLIENT_OWNER")]
    #[serde(rename = "owner_address", skip_serializing_if = "Option::is_none")]
    pub(crate) owner: Option<String>,
    /// File holding the secret for short authorization with the proxy (mode 0600; at least
    /// 16 bytes). The secret itself may come from the COCOON_CLIENT_SECRET environment
    /// variable instead; it is never taken from a flag, which other users can read.
    #[arg(long, env = "COCOON_CLIENT_SECRET_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) secret_file: Option<PathBuf>,
    /// Largest request body accepted, in bytes (default 4 MiB).
    #[arg(long, env = "COCOON_CLIENT_MAX_BODY_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_body_bytes: Option<usize>,
    /// Local mode: accept a proxy with SIMULATED attestation (one that runs in no TEE and can
    /// read requests). Never for production.
    #[arg(long, env = "COCOON_CLIENT_LOCAL")]
    #[serde(skip)]
    pub(crate) local: bool,
    /// JSON attestation policy the proxy must satisfy (e.g. allowed image hashes); replaces
    /// the preset.
    #[arg(long, env = "COCOON_CLIENT_POLICY_FILE")]
    #[serde(
        rename = "attestation.policy_file",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) policy_file: Option<PathBuf>,
    /// Where charge vouchers are submitted: emulated=HOST:PORT (local mode) or toncenter=URL.
    #[arg(long, env = "COCOON_CLIENT_CHAIN")]
    #[serde(rename = "settlement.chain", skip_serializing_if = "Option::is_none")]
    pub(crate) chain: Option<String>,
    /// Toncenter API key.
    #[arg(long, env = "COCOON_TONCENTER_API_KEY", hide_env_values = true)]
    #[serde(rename = "settlement.api_key", skip_serializing_if = "Option::is_none")]
    pub(crate) api_key: Option<String>,
    /// The wallet key file (hex Ed25519 seed, mode 0600) that pays for submitting vouchers.
    #[arg(long, env = "COCOON_CLIENT_WALLET_KEY_FILE")]
    #[serde(
        rename = "settlement.wallet_key_file",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) wallet_key_file: Option<PathBuf>,
    /// Submit the latest charge voucher once the charges it adds reach this fraction of the
    /// stake (default 0.5).
    #[arg(long, env = "COCOON_CLIENT_SUBMIT_STAKE_FRACTION")]
    #[serde(
        rename = "settlement.submit_stake_fraction",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) submit_stake_fraction: Option<f64>,
    /// Seconds between payment status queries (default 10).
    #[arg(long, env = "COCOON_CLIENT_PAYMENT_STATUS_INTERVAL")]
    #[serde(
        rename = "settlement.payment_status_interval",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) payment_status_interval: Option<f64>,
    #[command(flatten)]
    #[serde(flatten)]
    pub(crate) registry: cocoon_cli::chain::RegistryFlags,
    /// Refuse requests that cannot be sealed to attested workers (a version 2 proxy, no
    /// verified worker key) instead of sending them readable by the proxy.
    #[arg(long, env = "COCOON_CLIENT_REQUIRE_SEALED")]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) require_sealed: bool,
    /// Never seal requests: send them the reference way, readable by the proxy (for comparison
    /// and debugging).
    #[arg(
        long,
        env = "COCOON_CLIENT_NO_SEALING",
        conflicts_with = "require_sealed"
    )]
    #[serde(skip)]
    pub(crate) no_sealing: bool,
    /// How many attested workers a sealed request is addressed to (default 3).
    #[arg(long, env = "COCOON_CLIENT_SEALED_CANDIDATES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sealed_candidates: Option<usize>,
    /// Connections the API holds at once (default 1024).
    #[arg(long, env = "COCOON_CLIENT_HTTP_MAX_CONNECTIONS")]
    #[serde(
        rename = "http.max_connections",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) http_max_connections: Option<usize>,
    /// Seconds a caller has to send a request head, also the idle limit of a kept-alive
    /// connection (default 10).
    #[arg(long, env = "COCOON_CLIENT_HTTP_HEADER_TIMEOUT")]
    #[serde(
        rename = "http.header_read_timeout",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) http_header_timeout: Option<f64>,
    /// Seconds a caller has to send a request body (default 30).
    #[arg(long, env = "COCOON_CLIENT_HTTP_BODY_TIMEOUT")]
    #[serde(
        rename = "http.body_read_timeout",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) http_body_timeout: Option<f64>,
    /// A web page origin (scheme://host[:port]) allowed to call the API from a browser;
    /// repeatable. By default every browser page is refused.
    #[arg(
        long = "allowed-origin",
        env = "COCOON_CLIENT_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    #[serde(skip)]
    pub(crate) allowed_origins: Vec<String>,
    /// A host name the API answers for besides IP addresses and localhost; repeatable.
    #[arg(
        long = "allowed-host",
        env = "COCOON_CLIENT_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    #[serde(skip)]
    pub(crate) allowed_hosts: Vec<String>,
    /// File holding the API key callers must send as `Authorization: Bearer <key>` (or set
    /// COCOON_CLIENT_HTTP_API_KEY; never a flag value, which other users could read).
    #[arg(long, env = "COCOON_CLIENT_HTTP_API_KEY_FILE")]
    #[serde(rename = "http.api_key_file", skip_serializing_if = "Option::is_none")]
    pub(crate) http_api_key_file: Option<PathBuf>,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "COCOON_LOG_JSON")]
    #[serde(skip)]
    pub(crate) log_json: bool,
}

/// The environment variable that may hold the short-auth secret itself.
const SECRET_ENV: &str = "COCOON_CLIENT_SECRET";

/// The client's configuration: the file, `--local`'s policy preset and `--no-sealing`, then
/// the flags (with their environment variables); the allowed origins and hosts given add to
/// the file's, and the secret may come from `COCOON_CLIENT_SECRET`.
pub(crate) fn load(args: &ClientFlags) -> Result<ClientConfig, String> {
    let mut config: ClientConfig = layers(args)
        .and_then(|layers| layers.load())
        .map_err(|e| e.to_string())?;
    if let Some(v) = std::env::var_os(SECRET_ENV) {
        let secret = cocoon_client::ClientSecret::new(v.into_encoded_bytes())
            .map_err(|e| format!("{SECRET_ENV}: {e}"))?;
        config.secret = Some(secret);
    }
    config
        .http
        .allowed_origins
        .extend(args.allowed_origins.iter().cloned());
    config
        .http
        .allowed_hosts
        .extend(args.allowed_hosts.iter().cloned());
    Ok(config)
}

/// The file, the switches that set a fixed value, and the flags over them.
fn layers(args: &ClientFlags) -> Result<ConfigLayers, cocoon_cli::CliError> {
    let mut layers = ConfigLayers::read(Role::Client, args.config.as_deref())?;
    if args.local {
        layers.set(
            "attestation.policy",
            &cocoon_node::PolicyPreset::LocalSimulated,
        )?;
    }
    if args.no_sealing {
        layers.set("sealing", &false)?;
    }
    layers.flags(args)?;
    Ok(layers)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;
    use std::time::Duration;

    use super::*;

    fn parse(args: &[&str]) -> ClientFlags {
        Args::try_parse_from(std::iter::once("cocoon-client").chain(args.iter().copied()))
            .unwrap()
            .flags
    }

    #[test]
    fn every_flag_reaches_its_setting() {
        let c = load(&parse(&[
            "--listen",
            "127.0.0.1:1",
            "--proxy",
            "10.0.0.1:2",
            "--owner",
            "owner",
            "--secret-file",
            "/secret",
            "--max-body-bytes",
            "100",
            "--local",
            "--policy-file",
            "/policy.json",
            "--chain",
            "emulated=127.0.0.1:9",
            "--api-key",
            "key",
            "--wallet-key-file",
            "/wallet",
            "--submit-stake-fraction",
            "0.25",
            "--payment-status-interval",
            "0.5",
            "--registry-root",
            "root",
            "--registry-chain",
            "chain",
            "--registry-refresh-secs",
            "7",
            "--require-sealed",
            "--sealed-candidates",
            "2",
            "--http-max-connections",
            "5",
            "--http-header-timeout",
            "1.5",
            "--http-body-timeout",
            "2.5",
            "--allowed-origin",
            "https://a.example",
            "--allowed-host",
            "api.example",
            "--http-api-key-file",
            "/api-key",
        ]))
        .unwrap();
        assert_eq!(c.listen, Some(SocketAddr::from(([127, 0, 0, 1], 1))));
        assert_eq!(c.proxy, "10.0.0.1:2");
        assert_eq!(c.owner_address, "owner");
        assert_eq!(c.secret_file.as_deref(), Some(Path::new("/secret")));
        assert_eq!(c.max_body_bytes, 100);
        assert_eq!(
            c.attestation.policy,
            cocoon_node::PolicyPreset::LocalSimulated
        );
        assert_eq!(
            c.attestation.evidence,
            ClientConfig::default().attestation.evidence,
            "the rest of [attestation] is the client's default"
        );
        assert_eq!(
            c.attestation.policy_file.as_deref(),
            Some(Path::new("/policy.json"))
        );
        assert_eq!(c.settlement.chain.as_deref(), Some("emulated=127.0.0.1:9"));
        assert_eq!(c.settlement.api_key.as_deref(), Some("key"));
        assert_eq!(
            c.settlement.wallet_key_file.as_deref(),
            Some(Path::new("/wallet"))
        );
        assert!((c.settlement.submit_stake_fraction - 0.25).abs() < f64::EPSILON);
        assert_eq!(
            c.settlement.payment_status_interval,
            Duration::from_millis(500)
        );
        assert_eq!(c.registry.root.as_deref(), Some("root"));
        assert_eq!(c.registry.chain.as_deref(), Some("chain"));
        assert_eq!(c.registry.refresh_secs, 7);
        assert_eq!(c.require_sealed, Some(true));
        assert!(c.sealing);
        assert_eq!(c.sealed_candidates, 2);
        assert_eq!(c.http.max_connections, 5);
        assert_eq!(c.http.header_read_timeout, Duration::from_millis(1500));
        assert_eq!(c.http.body_read_timeout, Duration::from_millis(2500));
        assert_eq!(c.http.allowed_origins, ["https://a.example"]);
        assert_eq!(c.http.allowed_hosts, ["api.example"]);
        assert_eq!(c.http.api_key_file.as_deref(), Some(Path::new("/api-key")));
        let c = load(&parse(&["--proxy-from-registry", "--no-sealing"])).unwrap();
        assert!(c.proxy_from_registry && !c.sealing);
    }

    #[test]
    fn flags_win_over_the_file_and_lists_add_to_it() {
        let dir = std::env::temp_dir().join(format!("cocoon-client-args-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("client.toml");
        std::fs::write(
            &file,
            "proxy = \"10.0.0.9:9\"\nsealing = false\nrequire_sealed = false\n\
             [http]\nallowed_origins = [\"https://file.example\"]\nmax_connections = 3\n",
        )
        .unwrap();
        let config = file.to_str().unwrap();
        let c = load(&parse(&[
            "--config",
            config,
            "--http-max-connections",
            "4",
            "--allowed-origin",
            "https://flag.example",
        ]))
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(c.proxy, "10.0.0.9:9");
        assert!(!c.sealing, "a switch not given keeps the file's value");
        assert_eq!(c.require_sealed, Some(false));
        assert_eq!(c.http.max_connections, 4);
        assert_eq!(
            c.http.allowed_origins,
            ["https://file.example", "https://flag.example"]
        );
    }

    #[test]
    fn a_partial_attestation_table_keeps_the_clients_defaults() {
        let dir = std::env::temp_dir().join(format!("cocoon-client-att-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("client.toml");
        std::fs::write(&file, "[attestation]\npolicy = \"local-simulated\"\n").unwrap();
        let c = load(&parse(&["--config", file.to_str().unwrap()])).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            c.attestation.policy,
            cocoon_node::PolicyPreset::LocalSimulated
        );
        assert_eq!(
            c.attestation.evidence,
            cocoon_client::ClientConfig::default().attestation.evidence,
            "the evidence the file leaves out is the client's default, not the table type's"
        );
        assert_eq!(c.attestation.evidence, cocoon_node::EvidenceSource::None);
    }
}

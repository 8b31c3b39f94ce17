//! The proxy's command line: its flags, each serializing to the configuration key it sets,
//! and the subcommands; and the steps `cocoon_cli::ConfigLayers` cannot take alone (`--local`'s
//! preset, flags that set two keys, the default ledger file).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use cocoon_cli::{ConfigLayers, Role};
use cocoon_proxy::ProxyConfig;
use serde::Serialize;

use crate::ledger;

/// COCOON proxy: accepts workers and clients, routes requests, meters and prices them.
///
/// Settings come from the TOML file given with --config (keys as in `ProxyConfig`), then from
/// COCOON_PROXY_* environment variables, then from flags; later sources win.
#[derive(Parser, Debug, Serialize)]
#[command(name = "cocoon-proxy", version)]
pub(crate) struct Args {
    /// TOML configuration file.
    #[arg(long, env = "COCOON_PROXY_CONFIG", global = true)]
    #[serde(skip)]
    pub(crate) config: Option<PathBuf>,
    /// Address workers connect to (default 127.0.0.1:11001).
    #[arg(long, env = "COCOON_PROXY_WORKER_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) worker_listen: Option<SocketAddr>,
    /// Address clients connect to (default 127.0.0.1:11002).
    #[arg(long, env = "COCOON_PROXY_CLIENT_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client_listen: Option<SocketAddr>,
    /// Address of /stats, /jsonstats and /metrics (default 127.0.0.1:11000).
    #[arg(long, env = "COCOON_PROXY_STATS_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stats_listen: Option<SocketAddr>,
    /// Proof-of-work difficulty (leading zero bits) asked of workers and clients (default 20).
    #[arg(long, env = "COCOON_PROXY_POW_DIFFICULTY")]
    #[serde(skip)]
    pub(crate) pow_difficulty: Option<i32>,
    /// Local mode: SIMULATED attestation (no TEE; simulated workers accepted), emulated chain
    /// (clients register without a chain and get --local-deposit once), test network, low
    /// proof-of-work difficulty, books in DATA_DIR/local-ledger.sqlite. Never for production.
    #[arg(long, env = "COCOON_PROXY_LOCAL", global = true)]
    #[serde(skip)]
    pub(crate) local: bool,
    /// NanoTON credited to each new client in local mode (default 1000 TON).
    #[arg(long, env = "COCOON_PROXY_LOCAL_DEPOSIT")]
    #[serde(
        rename = "emulated_client_deposit",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) local_deposit: Option<u64>,
    /// The ledger: an SQLite file path (or sqlite:PATH) or postgres://user:pass@host:port/db
    /// (default: DATA_DIR/ledger.sqlite).
    #[arg(long, env = "COCOON_PROXY_LEDGER_URL", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ledger_url: Option<String>,
    /// Directory of the proxy's files (default: $XDG_DATA_HOME/cocoon/proxy, else
    /// ~/.local/share/cocoon/proxy).
    #[arg(long, env = "COCOON_PROXY_DATA_DIR", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) data_dir: Option<PathBuf>,
    /// JSON attestation policy workers must satisfy (allow-lists of image hashes, MRTD, RTMRs,
    /// SNP measurements, minimum TCB); replaces the preset.
    #[arg(long, env = "COCOON_PROXY_POLICY_FILE")]
    #[serde(
        rename = "attestation.policy_file",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) policy_file: Option<PathBuf>,
    /// Settlement chain: emulated=HOST:PORT (local mode, a cocoon-chain-emulator) or
    /// toncenter=URL (the `[chain]` endpoint).
    #[arg(long, env = "COCOON_PROXY_CHAIN")]
    #[serde(rename = "chain.endpoint", skip_serializing_if = "Option::is_none")]
    pub(crate) chain: Option<String>,
    /// Toncenter API key.
    #[arg(long, env = "COCOON_TONCENTER_API_KEY", hide_env_values = true)]
    #[serde(rename = "chain.api_key", skip_serializing_if = "Option::is_none")]
    pub(crate) api_key: Option<String>,
    /// The proxy contract's address (its proxy key must be this proxy's voucher key; see
    /// `cocoon-proxy voucher-key`).
    #[arg(long, env = "COCOON_PROXY_CONTRACT")]
    #[serde(
        rename = "chain.proxy_contract",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) proxy_contract: Option<String>,
    /// The wallet key file (hex Ed25519 seed, mode 0600) that pays for ledger anchors.
    #[arg(long, env = "COCOON_PROXY_WALLET_KEY_FILE")]
    #[serde(
        rename = "chain.wallet_key_file",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) wallet_key_file: Option<PathBuf>,
    /// Seconds between ledger anchors on chain (default 60).
    #[arg(long, env = "COCOON_PROXY_ANCHOR_INTERVAL")]
    #[serde(
        rename = "chain.anchor_interval",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) anchor_interval: Option<f64>,
    /// Connections each of the client and worker ports holds at once (default 4096; per port
    /// in the config file: `[client_port]`, `[worker_port]` `max_connections`).
    #[arg(long, env = "COCOON_PROXY_MAX_CONNECTIONS")]
    #[serde(skip)]
    pub(crate) max_connections: Option<usize>,
    /// Connections one address (IPv6: one /64) holds at once on each port (default 64).
    #[arg(long, env = "COCOON_PROXY_MAX_CONNECTIONS_PER_ADDRESS")]
    #[serde(skip)]
    pub(crate) max_connections_per_address: Option<usize>,
    /// Seconds a peer has from connecting to an open session: proof of work, RA-TLS and
    /// `tcp.connect` (default 10).
    #[arg(long, env = "COCOON_PROXY_HANDSHAKE_TIMEOUT")]
    #[serde(skip)]
    pub(crate) handshake_timeout: Option<f64>,
    /// Seconds a client has from its open session to a successful authorization, and a worker
    /// to complete its handshake (default 10).
    #[arg(long, env = "COCOON_PROXY_AUTHORIZE_TIMEOUT")]
    #[serde(skip)]
    pub(crate) authorize_timeout: Option<f64>,
    #[command(flatten)]
    #[serde(flatten)]
    pub(crate) registry: cocoon_cli::chain::RegistryFlags,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "COCOON_LOG_JSON", global = true)]
    #[serde(skip)]
    pub(crate) log_json: bool,
    #[command(subcommand)]
    #[serde(skip)]
    pub(crate) command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Start (or, after the delay, complete) the close of the proxy contract (signed with the
    /// owner's wallet key).
    Close(crate::chain_ops::Close),
    /// Reads the books (the same ledger the proxy would open), beside a running proxy or not;
    /// never writes.
    Ledger {
        #[command(subcommand)]
        action: ledger::Action,
    },
    /// Prints the public key of the proxy's voucher-signing key (made on first use, sealed in
    /// the data directory): the proxy key its proxy contract must hold.
    VoucherKey,
    /// Asks a running proxy (through its stats port) to switch a worker to another of the
    /// models its operator configured; waits until the worker serves it.
    ChangeModel {
        /// The worker's id, as `/stats` and `/jsonstats` show it.
        #[arg(long)]
        worker: u64,
        /// The model to serve.
        #[arg(long)]
        model: String,
        /// The proxy's stats port (default: `stats_listen` of the configuration).
        #[arg(long, value_name = "HOST:PORT")]
        stats: Option<SocketAddr>,
    },
}

/// The proxy's configuration: the file, `--local`'s preset, then the flags (with their
/// environment variables); and the default ledger file when none is configured.
pub(crate) fn load(args: &Args) -> Result<ProxyConfig, String> {
    let layers = layers(args).map_err(|e| e.to_string())?;
    let mut config: ProxyConfig = layers.load().map_err(|e| e.to_string())?;
    if config.ledger_url.is_none() {
        config.ledger_url = Some(
            config
                .default_ledger_file(Role::Proxy.default_data_dir(), args.local)
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(config)
}

/// The file, `--local`'s preset (lowering the file's proof-of-work difficulties), and the
/// flags over them, in that order.
fn layers(args: &Args) -> Result<ConfigLayers, cocoon_cli::CliError> {
    let mut layers = ConfigLayers::read(Role::Proxy, args.config.as_deref())?;
    if args.local {
        let file: ProxyConfig = layers.file_config()?;
        layers
            .set("emulated_registration", &true)?
            .set("emulated_client_deposit", &1_000_000_000_000_u64)?
            .set("is_test", &true)?
            .set("worker_pow_difficulty", &file.worker_pow_difficulty.min(12))?
            .set("client_pow_difficulty", &file.client_pow_difficulty.min(12))?
            .set(
                "attestation.evidence",
                &cocoon_node::EvidenceSource::Simulated,
            )?
            .set(
                "attestation.policy",
                &cocoon_node::PolicyPreset::LocalSimulated,
            )?;
    }
    // Flags that set the same value in two places.
    if let Some(v) = args.pow_difficulty {
        layers
            .set("worker_pow_difficulty", &v)?
            .set("client_pow_difficulty", &v)?;
    }
    for port in ["client_port", "worker_port"] {
        if let Some(v) = args.max_connections {
            layers.set(&format!("{port}.max_connections"), &v)?;
        }
        if let Some(v) = args.max_connections_per_address {
            layers.set(&format!("{port}.max_per_address"), &v)?;
        }
        if let Some(v) = args.handshake_timeout {
            layers.set(&format!("{port}.handshake_timeout"), &v)?;
        }
        if let Some(v) = args.authorize_timeout {
            layers.set(&format!("{port}.authorize_timeout"), &v)?;
        }
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

    fn parse(args: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("cocoon-proxy").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn every_flag_reaches_its_setting() {
        let c = load(&parse(&[
            "--worker-listen",
            "127.0.0.1:1",
            "--client-listen",
            "127.0.0.1:2",
            "--stats-listen",
            "127.0.0.1:3",
            "--pow-difficulty",
            "16",
            "--local-deposit",
            "5",
            "--ledger-url",
            "/books.sqlite",
            "--data-dir",
            "/data",
            "--policy-file",
            "/policy.json",
            "--chain",
            "emulated=127.0.0.1:9",
            "--api-key",
            "key",
            "--proxy-contract",
            "contract",
            "--wallet-key-file",
            "/wallet",
            "--anchor-interval",
            "0.5",
            "--max-connections",
            "10",
            "--max-connections-per-address",
            "2",
            "--handshake-timeout",
            "1.5",
            "--authorize-timeout",
            "2.5",
            "--registry-root",
            "root",
            "--registry-chain",
            "chain",
            "--registry-refresh-secs",
            "7",
        ]))
        .unwrap();
        let addr = |port| Some(SocketAddr::from(([127, 0, 0, 1], port)));
        assert_eq!(Some(c.worker_listen), addr(1));
        assert_eq!(Some(c.client_listen), addr(2));
        assert_eq!(c.stats_listen, addr(3));
        assert_eq!((c.worker_pow_difficulty, c.client_pow_difficulty), (16, 16));
        assert_eq!(c.emulated_client_deposit, 5);
        assert_eq!(c.ledger_url.as_deref(), Some("/books.sqlite"));
        assert_eq!(c.data_dir.as_deref(), Some(Path::new("/data")));
        assert_eq!(
            c.attestation.policy_file.as_deref(),
            Some(Path::new("/policy.json"))
        );
        assert_eq!(c.chain.endpoint.as_deref(), Some("emulated=127.0.0.1:9"));
        assert_eq!(c.chain.api_key.as_deref(), Some("key"));
        assert_eq!(c.chain.proxy_contract.as_deref(), Some("contract"));
        assert_eq!(
            c.chain.wallet_key_file.as_deref(),
            Some(Path::new("/wallet"))
        );
        assert_eq!(c.chain.anchor_interval, Duration::from_millis(500));
        for port in [&c.client_port, &c.worker_port] {
            assert_eq!((port.max_connections, port.max_per_address), (10, 2));
            assert_eq!(port.handshake_timeout, Duration::from_millis(1500));
            assert_eq!(port.authorize_timeout, Duration::from_millis(2500));
        }
        assert_eq!(c.registry.root.as_deref(), Some("root"));
        assert_eq!(c.registry.chain.as_deref(), Some("chain"));
        assert_eq!(c.registry.refresh_secs, 7);
    }

    #[test]
    fn local_mode_presets_sit_between_the_file_and_the_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("proxy.toml");
        std::fs::write(
            &file,
            "worker_pow_difficulty = 20\nclient_pow_difficulty = 8\n[worker_port]\nmax_connections = 3\n",
        )
        .unwrap();
        let config = file.to_str().unwrap();
        let data = dir.path().to_str().unwrap();
        let c = load(&parse(&["--config", config, "--local", "--data-dir", data])).unwrap();
        assert_eq!((c.worker_pow_difficulty, c.client_pow_difficulty), (12, 8));
        assert!(c.emulated_registration && c.is_test);
        assert_eq!(c.emulated_client_deposit, 1_000_000_000_000);
        assert_eq!(
            c.attestation.evidence,
            cocoon_node::EvidenceSource::Simulated
        );
        assert_eq!(c.worker_port.max_connections, 3);
        assert_eq!(
            c.ledger_url,
            Some(format!("{data}/local-ledger.sqlite")),
            "local mode keeps its own ledger file"
        );
        let c = load(&parse(&[
            "--config",
            config,
            "--local",
            "--pow-difficulty",
            "18",
            "--local-deposit",
            "7",
            "--data-dir",
            data,
        ]))
        .unwrap();
        assert_eq!((c.worker_pow_difficulty, c.client_pow_difficulty), (18, 18));
        assert_eq!(c.emulated_client_deposit, 7);
        let c = load(&parse(&["--config", config, "--data-dir", data])).unwrap();
        assert_eq!((c.worker_pow_difficulty, c.client_pow_difficulty), (20, 8));
        assert!(!c.emulated_registration);
        assert_eq!(c.ledger_url, Some(format!("{data}/ledger.sqlite")));
        assert_eq!(c.data_dir.as_deref(), Some(dir.path()));
    }

    #[test]
    fn a_bad_timeout_names_its_setting() {
        let err = layers(&parse(&["--handshake-timeout=-1"]))
            .unwrap()
            .load::<ProxyConfig>()
            .unwrap_err();
        assert!(
            matches!(&err, cocoon_cli::CliError::Setting { key, .. } if key == "client_port.handshake_timeout"),
            "{err:?}"
        );
    }
}

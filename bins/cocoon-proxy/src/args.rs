//! The proxy's command line: flags, subcommands, and how they override the configuration file
//! and the environment.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use cocoon_proxy::ProxyConfig;

use crate::ledger;

/// COCOON proxy: accepts workers and clients, routes requests, meters and prices them.
///
/// Settings come from the TOML file given with --config (keys as in `ProxyConfig`), then from
/// COCOON_PROXY_* environment variables, then from flags; later sources win.
#[derive(Parser, Debug)]
#[command(name = "cocoon-proxy", version)]
pub(crate) struct Args {
    /// TOML configuration file.
    #[arg(long, env = "COCOON_PROXY_CONFIG", global = true)]
    pub(crate) config: Option<PathBuf>,
    /// Address workers connect to (default 127.0.0.1:11001).
    #[arg(long, env = "COCOON_PROXY_WORKER_LISTEN")]
    pub(crate) worker_listen: Option<SocketAddr>,
    /// Address clients connect to (default 127.0.0.1:11002).
    #[arg(long, env = "COCOON_PROXY_CLIENT_LISTEN")]
    pub(crate) client_listen: Option<SocketAddr>,
    /// Address of /stats, /jsonstats and /metrics (default 127.0.0.1:11000).
    #[arg(long, env = "COCOON_PROXY_STATS_LISTEN")]
    pub(crate) stats_listen: Option<SocketAddr>,
    /// Proof-of-work difficulty (leading zero bits) asked of workers and clients (default 20).
    #[arg(long, env = "COCOON_PROXY_POW_DIFFICULTY")]
    pub(crate) pow_difficulty: Option<i32>,
    /// Local mode: SIMULATED attestation (no TEE; simulated workers accepted), emulated chain
    /// (clients register without a chain and get --local-deposit once), test network, low
    /// proof-of-work difficulty, books in DATA_DIR/local-ledger.sqlite. Never for production.
    #[arg(long, env = "COCOON_PROXY_LOCAL", global = true)]
    pub(crate) local: bool,
    /// NanoTON credited to each new client in local mode (default 1000 TON).
    #[arg(long, env = "COCOON_PROXY_LOCAL_DEPOSIT")]
    pub(crate) local_deposit: Option<u64>,
    /// The ledger: an SQLite file path (or sqlite:PATH) or postgres://user:pass@host:port/db
    /// (default: DATA_DIR/ledger.sqlite).
    #[arg(long, env = "COCOON_PROXY_LEDGER_URL", global = true)]
    pub(crate) ledger_url: Option<String>,
    /// Directory of the proxy's files (default: $XDG_DATA_HOME/cocoon/proxy, else
    /// ~/.local/share/cocoon/proxy).
    #[arg(long, env = "COCOON_PROXY_DATA_DIR", global = true)]
    pub(crate) data_dir: Option<PathBuf>,
    /// JSON attestation policy workers must satisfy (allow-lists of image hashes, MRTD, RTMRs,
    /// SNP measurements, minimum TCB); replaces the preset.
    #[arg(long, env = "COCOON_PROXY_POLICY_FILE")]
    pub(crate) policy_file: Option<PathBuf>,
    /// Settlement chain: emulated=HOST:PORT (local mode, a cocoon-chain-emulator) or
    /// toncenter=URL (the `[chain]` endpoint).
    #[arg(long, env = "COCOON_PROXY_CHAIN")]
    pub(crate) chain: Option<String>,
    /// Toncenter API key.
    #[arg(long, env = "COCOON_TONCENTER_API_KEY", hide_env_values = true)]
    pub(crate) api_key: Option<String>,
    /// The proxy contract's address (its proxy key must be this proxy's voucher key; see
    /// `cocoon-proxy voucher-key`).
    #[arg(long, env = "COCOON_PROXY_CONTRACT")]
    pub(crate) proxy_contract: Option<String>,
    /// The wallet key file (hex Ed25519 seed, mode 0600) that pays for ledger anchors.
    #[arg(long, env = "COCOON_PROXY_WALLET_KEY_FILE")]
    pub(crate) wallet_key_file: Option<PathBuf>,
    /// Seconds between ledger anchors on chain (default 60).
    #[arg(long, env = "COCOON_PROXY_ANCHOR_INTERVAL")]
    pub(crate) anchor_interval: Option<f64>,
    /// Connections each of the client and worker ports holds at once (default 4096; per port
    /// in the config file: `[client_port]`, `[worker_port]` `max_connections`).
    #[arg(long, env = "COCOON_PROXY_MAX_CONNECTIONS")]
    pub(crate) max_connections: Option<usize>,
    /// Connections one address (IPv6: one /64) holds at once on each port (default 64).
    #[arg(long, env = "COCOON_PROXY_MAX_CONNECTIONS_PER_ADDRESS")]
    pub(crate) max_connections_per_address: Option<usize>,
    /// Seconds a peer has from connecting to an open session: proof of work, RA-TLS and
    /// `tcp.connect` (default 10).
    #[arg(long, env = "COCOON_PROXY_HANDSHAKE_TIMEOUT")]
    pub(crate) handshake_timeout: Option<f64>,
    /// Seconds a client has from its open session to a successful authorization, and a worker
    /// to complete its handshake (default 10).
    #[arg(long, env = "COCOON_PROXY_AUTHORIZE_TIMEOUT")]
    pub(crate) authorize_timeout: Option<f64>,
    #[command(flatten)]
    pub(crate) registry: cocoon_cli::chain::RegistryFlags,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "COCOON_LOG_JSON", global = true)]
    pub(crate) log_json: bool,
    #[command(subcommand)]
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

pub(crate) fn load(args: &Args) -> Result<ProxyConfig, String> {
    let mut config: ProxyConfig =
        cocoon_cli::read_config(args.config.as_deref()).map_err(|e| e.to_string())?;
    if args.local {
        config.emulated_registration = true;
        config.emulated_client_deposit = 1_000_000_000_000;
        config.is_test = true;
        config.worker_pow_difficulty = config.worker_pow_difficulty.min(12);
        config.client_pow_difficulty = config.client_pow_difficulty.min(12);
        config.attestation.evidence = cocoon_node::EvidenceSource::Simulated;
        config.attestation.policy = cocoon_node::PolicyPreset::LocalSimulated;
    }
    if let Some(v) = &args.policy_file {
        config.attestation.policy_file = Some(v.clone());
    }
    if let Some(v) = args.local_deposit {
        config.emulated_client_deposit = v;
    }
    if let Some(v) = args.worker_listen {
        config.worker_listen = v;
    }
    if let Some(v) = args.client_listen {
        config.client_listen = v;
    }
    if let Some(v) = args.stats_listen {
        config.stats_listen = Some(v);
    }
    if let Some(v) = args.pow_difficulty {
        config.worker_pow_difficulty = v;
        config.client_pow_difficulty = v;
    }
    if let Some(v) = &args.data_dir {
        config.data_dir = Some(v.clone());
    }
    if let Some(v) = &args.ledger_url {
        config.ledger_url = Some(v.clone());
    }
    if config.ledger_url.is_none() {
        config.ledger_url = Some(ledger::default_file(&config, args.local)?);
    }
    if let Some(v) = &args.chain {
        config.chain.endpoint = Some(v.clone());
    }
    if let Some(v) = &args.api_key {
        config.chain.api_key = Some(v.clone());
    }
    if let Some(v) = &args.proxy_contract {
        config.chain.proxy_contract = Some(v.clone());
    }
    if let Some(v) = &args.wallet_key_file {
        config.chain.wallet_key_file = Some(v.clone());
    }
    if let Some(v) = args.anchor_interval {
        config.chain.anchor_interval = std::time::Duration::try_from_secs_f64(v)
            .map_err(|e| format!("--anchor-interval: {e}"))?;
    }
    for port in [&mut config.client_port, &mut config.worker_port] {
        if let Some(v) = args.max_connections {
            port.max_connections = v;
        }
        if let Some(v) = args.max_connections_per_address {
            port.max_per_address = v;
        }
        if let Some(v) = args.handshake_timeout {
            port.handshake_timeout = std::time::Duration::try_from_secs_f64(v)
                .map_err(|e| format!("--handshake-timeout: {e}"))?;
        }
        if let Some(v) = args.authorize_timeout {
            port.authorize_timeout = std::time::Duration::try_from_secs_f64(v)
                .map_err(|e| format!("--authorize-timeout: {e}"))?;
        }
    }
    args.registry.apply(&mut config.registry);
    Ok(config)
}

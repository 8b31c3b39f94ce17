//! The chain flags the three executables share: the operator commands' (`--chain`,
//! `--wallet-key-file`, `--json`...) with how their report is printed, and the root registry's.
//! They live here, beside the rest of the command-line layer, so that `cocoon-chain` stays a
//! library without clap.

use std::time::Duration;

use cocoon_chain::ChainError;
use cocoon_chain::operator::{ChainSpec, OperationReport, Operator, read_wallet_key};

/// The flags every operator command takes, the same in `cocoon-client`, `cocoon-worker` and
/// `cocoon-proxy`.
#[derive(Debug, Clone, clap::Args)]
pub struct OperatorFlags {
    /// The chain: `emulated=HOST:PORT` (see cocoon-chain-emulator) or `toncenter=URL`.
    #[arg(long, env = "COCOON_CHAIN")]
    pub chain: ChainSpec,
    /// Toncenter API key.
    #[arg(long, env = "COCOON_TONCENTER_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// The owner's wallet key: a file holding the 32-byte Ed25519 seed in hex, mode 0600.
    /// Commands sign from the V5R1 wallet of this key.
    #[arg(long, env = "COCOON_WALLET_KEY_FILE")]
    pub wallet_key_file: std::path::PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for the change to show on chain, in seconds (default 10 on the
    /// emulated chain, 120 on toncenter).
    #[arg(long)]
    pub timeout_secs: Option<u64>,
}

impl OperatorFlags {
    /// Opens the chain and loads the wallet key.
    ///
    /// # Errors
    /// [`ChainError::WalletKey`] and connection failures.
    pub async fn operator(&self) -> Result<Operator, ChainError> {
        let key = read_wallet_key(&self.wallet_key_file)?;
        let chain = self.chain.open(self.api_key.as_deref()).await?;
        let timeout = self
            .timeout_secs
            .map_or_else(|| self.chain.default_confirm_timeout(), Duration::from_secs);
        Operator::new(chain, key, timeout)
    }

    /// Prints the outcome (text or JSON on stdout; errors on stderr, as JSON
    /// `{"error": ...}` on stdout too with `--json`) and gives the exit status.
    pub fn finish(
        &self,
        program: &str,
        outcome: Result<OperationReport, ChainError>,
    ) -> std::process::ExitCode {
        match outcome.and_then(|r| {
            if self.json {
                r.to_json()
            } else {
                Ok(r.to_string())
            }
        }) {
            Ok(text) => {
                println!("{text}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                if self.json {
                    println!("{}", serde_json::json!({ "error": e.to_string() }));
                }
                eprintln!("{program}: {e}");
                std::process::ExitCode::FAILURE
            }
        }
    }
}

/// The `[registry]` settings as command-line flags, the same in the three binaries (flattened
/// into each one's arguments). They serialize to their configuration keys
/// (`registry.root`...), so that [`crate::ConfigLayers::flags`] sets those given over the
/// configuration file.
#[derive(Debug, Clone, Default, clap::Args, serde::Serialize)]
pub struct RegistryFlags {
    /// The root registry whose allow-lists peers must satisfy (its address). The proxy
    /// defaults to the root its proxy contract names.
    #[arg(long, env = "COCOON_REGISTRY_ROOT")]
    #[serde(rename = "registry.root", skip_serializing_if = "Option::is_none")]
    pub registry_root: Option<String>,
    /// Chain to read the root registry from, emulated=HOST:PORT or toncenter=URL (default the
    /// settlement chain).
    #[arg(long, env = "COCOON_REGISTRY_CHAIN")]
    #[serde(rename = "registry.chain", skip_serializing_if = "Option::is_none")]
    pub registry_chain: Option<String>,
    /// Seconds between reads of the root registry (default 60).
    #[arg(long, env = "COCOON_REGISTRY_REFRESH_SECS")]
    #[serde(
        rename = "registry.refresh_secs",
        skip_serializing_if = "Option::is_none"
    )]
    pub registry_refresh_secs: Option<u64>,
}

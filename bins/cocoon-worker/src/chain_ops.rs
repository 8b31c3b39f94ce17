//! The worker owner's on-chain command (`payout`): submits a payout voucher the proxy signed
//! (a file holding `cocoon_ton::Voucher`'s JSON; by default the latest one the worker stored
//! under its data directory) to the worker contract, signed with the owner's wallet key. The
//! logic and the checks live in `cocoon_chain::operator`.

use cocoon_chain::operator::{OperationReport, read_voucher_file};
use cocoon_chain::{ChainError, parse_address};
use cocoon_cli::chain::OperatorFlags;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Submit a payout voucher (payout_signed or last_payout_signed) to the worker contract.
#[derive(clap::Args, Debug)]
pub(crate) struct Payout {
    #[command(flatten)]
    flags: OperatorFlags,
    /// The voucher file (the voucher's JSON: a hex string). Default: the latest voucher
    /// the worker stored under --data-dir (vouchers/payout-*.json).
    #[arg(long)]
    voucher: Option<PathBuf>,
    /// The worker's data directory (where it stores the vouchers proxies hand over).
    #[arg(long, env = "COCOON_WORKER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The proxy contract; needed when the worker contract is not deployed yet.
    #[arg(long)]
    proxy_contract: Option<String>,
}

/// Runs `payout`.
pub(crate) async fn run(args: Payout) -> ExitCode {
    let Payout {
        flags,
        voucher,
        data_dir,
        proxy_contract,
    } = args;
    let voucher = voucher.or_else(|| {
        data_dir
            .or_else(|| cocoon_cli::Role::Worker.default_data_dir())
            .and_then(|d| cocoon_worker::latest_stored_voucher(&d))
    });
    let outcome = match voucher {
        Some(voucher) => payout(&flags, &voucher, proxy_contract.as_deref()).await,
        None => Err(ChainError::Voucher {
            detail: "no --voucher given and no stored voucher under the data directory".into(),
        }),
    };
    flags.finish("cocoon-worker", outcome)
}

async fn payout(
    flags: &OperatorFlags,
    voucher: &Path,
    proxy_contract: Option<&str>,
) -> Result<OperationReport, ChainError> {
    let voucher = read_voucher_file(voucher)?;
    let proxy = proxy_contract.map(parse_address).transpose()?;
    flags
        .operator()
        .await?
        .worker_payout(&voucher, proxy.as_ref())
        .await
}

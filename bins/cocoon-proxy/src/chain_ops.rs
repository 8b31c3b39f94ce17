//! The proxy owner's on-chain command (`close`): `owner_close` on the proxy contract, signed
//! with the owner's wallet key. The first call starts the close; after the proxy delay, with
//! every client refunded and every worker paid, a second call completes it. The logic and the
//! checks live in `cocoon_chain::operator`.

use cocoon_chain::operator::OperationReport;
use cocoon_chain::{ChainError, parse_address};
use cocoon_cli::chain::OperatorFlags;
use std::process::ExitCode;

/// Start (or, after the delay, complete) the close of the proxy contract.
#[derive(clap::Args, Debug)]
pub(crate) struct Close {
    #[command(flatten)]
    flags: OperatorFlags,
    /// The proxy contract's address.
    #[arg(long)]
    proxy_contract: String,
}

/// Runs `close`.
pub(crate) async fn run(args: Close) -> ExitCode {
    let outcome = close(&args.flags, &args.proxy_contract).await;
    args.flags.finish("cocoon-proxy", outcome)
}

async fn close(flags: &OperatorFlags, proxy_contract: &str) -> Result<OperationReport, ChainError> {
    let proxy = parse_address(proxy_contract)?;
    flags.operator().await?.proxy_close(&proxy).await
}

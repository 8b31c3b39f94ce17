//! The proxy owner's on-chain command (`close`): `owner_close` on the proxy contract, signed
//! with the owner's wallet key. The first call starts the close; after the proxy delay, with
//! every client refunded and every worker paid, a second call completes it. The logic and the
//! checks live in `cocoon_chain::operator`.

use clap::{Parser, Subcommand};
use cocoon_chain::operator::OperationReport;
use cocoon_chain::{ChainError, parse_address};
use cocoon_cli::chain::OperatorFlags;
use std::process::ExitCode;

/// cocoon-proxy chain commands.
#[derive(Parser, Debug)]
#[command(name = "cocoon-proxy")]
struct Ops {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start (or, after the delay, complete) the close of the proxy contract.
    Close {
        #[command(flatten)]
        flags: OperatorFlags,
        /// The proxy contract's address.
        #[arg(long)]
        proxy_contract: String,
    },
}

/// Runs a chain subcommand when the first argument names one; `None` otherwise.
pub(crate) async fn dispatch() -> Option<ExitCode> {
    if std::env::args().nth(1)? != "close" {
        return None;
    }
    let Command::Close {
        flags,
        proxy_contract,
    } = Ops::parse().command;
    let outcome = close(&flags, &proxy_contract).await;
    Some(flags.finish("cocoon-proxy", outcome))
}

async fn close(flags: &OperatorFlags, proxy_contract: &str) -> Result<OperationReport, ChainError> {
    let proxy = parse_address(proxy_contract)?;
    flags.operator().await?.proxy_close(&proxy).await
}

//! The client owner's on-chain commands (`topup`, `withdraw`, `close`): money in and out of
//! the client contract at a proxy, signed with the owner's wallet key. The logic and the
//! checks live in `cocoon_chain::operator`; this module holds their flags and runs them.

use clap::Subcommand;
use cocoon_chain::operator::parse_ton;
use cocoon_chain::{ChainError, parse_address};
use cocoon_cli::chain::OperatorFlags;
use std::process::ExitCode;

/// The client owner's chain commands, flattened into the client's subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum ChainOp {
    /// Add TON to the client balance at a proxy contract (deploys the client contract the
    /// first time).
    Topup {
        #[command(flatten)]
        flags: OperatorFlags,
        /// The proxy contract's address.
        #[arg(long)]
        proxy_contract: String,
        /// How much, in TON (e.g. 2.5).
        #[arg(long)]
        amount: String,
    },
    /// Take the balance above the stake back to the wallet.
    Withdraw {
        #[command(flatten)]
        flags: OperatorFlags,
        /// The proxy contract's address.
        #[arg(long)]
        proxy_contract: String,
    },
    /// Close the client contract (request_refund): the first call starts the close and
    /// returns what is above the stake; after the delay a second call returns the rest.
    Close {
        #[command(flatten)]
        flags: OperatorFlags,
        /// The proxy contract's address.
        #[arg(long)]
        proxy_contract: String,
    },
}

/// Runs one chain command and reports its outcome.
pub(crate) async fn run(op: &ChainOp) -> ExitCode {
    let (flags, outcome) = match op {
        ChainOp::Topup {
            flags,
            proxy_contract,
            amount,
        } => (flags, topup(flags, proxy_contract, amount).await),
        ChainOp::Withdraw {
            flags,
            proxy_contract,
        } => (flags, withdraw(flags, proxy_contract, false).await),
        ChainOp::Close {
            flags,
            proxy_contract,
        } => (flags, withdraw(flags, proxy_contract, true).await),
    };
    flags.finish("cocoon-client", outcome)
}

async fn topup(
    flags: &OperatorFlags,
    proxy_contract: &str,
    amount: &str,
) -> Result<cocoon_chain::operator::OperationReport, ChainError> {
    let proxy = parse_address(proxy_contract)?;
    let amount = parse_ton(amount)?;
    flags.operator().await?.client_top_up(&proxy, amount).await
}

async fn withdraw(
    flags: &OperatorFlags,
    proxy_contract: &str,
    close: bool,
) -> Result<cocoon_chain::operator::OperationReport, ChainError> {
    let proxy = parse_address(proxy_contract)?;
    let operator = flags.operator().await?;
    if close {
        operator.client_close(&proxy).await
    } else {
        operator.client_withdraw(&proxy).await
    }
}

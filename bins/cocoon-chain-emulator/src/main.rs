//! `cocoon-chain-emulator`: one emulated TON chain that several local processes share. It
//! starts the `@ton/sandbox` sidecar serving the JSON-lines protocol on a loopback TCP port,
//! deploys the root registry with local parameters (and optionally a staked proxy contract),
//! funds wallets, prints what it set up as one JSON object on stdout and serves until
//! interrupted. Other processes use `--chain emulated=ADDR` (or `EmulatedChain::connect`).
//! The `root` subcommand sends a root-owner update to a running emulator. The flags and the
//! logic are `cocoon_cli::emulator`.

use clap::Parser;
use cocoon_cli::CliError;
use cocoon_cli::emulator::{self, Args, Command};
use std::process::ExitCode;

async fn run(args: Args) -> Result<(), CliError> {
    if let Some(Command::Root {
        connect,
        root,
        owner,
        update,
    }) = &args.command
    {
        let registry = emulator::update_root(connect, root, owner, update).await?;
        println!("{registry}");
        return Ok(());
    }
    let (chain, network) = emulator::start(&args).await?;
    println!("{network}");
    eprintln!(
        "cocoon-chain-emulator: serving on {}; Ctrl-C stops it",
        network["listen"].as_str().unwrap_or("?")
    );
    let _ = tokio::signal::ctrl_c().await;
    Ok(chain.shutdown().await?)
}

#[tokio::main]
async fn main() -> ExitCode {
    cocoon_cli::exit_status("cocoon-chain-emulator", run(Args::parse()).await)
}

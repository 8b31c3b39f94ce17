//! `cocoon-chain-emulator`: one emulated TON chain that several local processes share. It
//! starts the `@ton/sandbox` sidecar serving the JSON-lines protocol on a loopback TCP port,
//! deploys the root registry with local parameters (and optionally a staked proxy contract),
//! funds wallets, prints what it set up as one JSON object on stdout and serves until
//! interrupted. Other processes use `--chain emulated=ADDR` (or `EmulatedChain::connect`).

use clap::Parser;
use cocoon_chain::emulator::{LocalNetwork, LocalNetworkSpec, ProxySpec, v5r1_address};
use cocoon_chain::operator::{parse_ton, read_wallet_key};
use cocoon_chain::{Address, ChainError, EmulatedChain, SidecarOptions, parse_address};
use std::path::PathBuf;
use std::process::ExitCode;

/// Runs a shared emulated TON chain for local mode.
#[derive(Parser, Debug)]
#[command(name = "cocoon-chain-emulator", version)]
struct Args {
    /// TCP address to serve on (port 0 picks a free one; the chosen one is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Deploy and stake a proxy contract for this proxy public key (64 hex digits).
    #[arg(long)]
    proxy_public_key: Option<String>,
    /// Owner of that proxy contract (default: the local wallet `proxy-owner`).
    #[arg(long, conflicts_with = "proxy_owner_key_file")]
    proxy_owner: Option<String>,
    /// Owner of that proxy contract: the V5R1 wallet of this key file (hex seed, 0600).
    #[arg(long)]
    proxy_owner_key_file: Option<PathBuf>,
    /// Create a named local wallet: NAME=TON (repeatable).
    #[arg(long = "wallet", value_name = "NAME=TON")]
    wallets: Vec<String>,
    /// Send TON to an address: ADDR=TON (repeatable).
    #[arg(long = "fund", value_name = "ADDR=TON")]
    fund: Vec<String>,
    /// Send TON to the V5R1 wallet of a key file: FILE=TON (repeatable).
    #[arg(long = "fund-key-file", value_name = "FILE=TON")]
    fund_key_files: Vec<String>,
    /// Start the chain's clock at this unix time (default: now).
    #[arg(long)]
    start_time: Option<u64>,
}

fn split<'a>(text: &'a str, what: &str) -> Result<(&'a str, u128), String> {
    let (name, amount) = text
        .rsplit_once('=')
        .ok_or_else(|| format!("{what} {text:?}: expected X=TON"))?;
    Ok((name, parse_ton(amount).map_err(|e| e.to_string())?))
}

fn spec(args: &Args) -> Result<LocalNetworkSpec, String> {
    let mut spec = LocalNetworkSpec::default();
    for w in &args.wallets {
        let (name, amount) = split(w, "--wallet")?;
        spec.named_wallets.push((name.to_owned(), amount));
    }
    for f in &args.fund {
        let (addr, amount) = split(f, "--fund")?;
        spec.fund
            .push((parse_address(addr).map_err(|e| e.to_string())?, amount));
    }
    for f in &args.fund_key_files {
        let (file, amount) = split(f, "--fund-key-file")?;
        let key = read_wallet_key(file.as_ref()).map_err(|e| e.to_string())?;
        let address = v5r1_address(key.verifying_key().to_bytes()).map_err(|e| e.to_string())?;
        spec.fund.push((address, amount));
    }
    if let Some(hex_key) = &args.proxy_public_key {
        let mut public_key = [0u8; 32];
        hex::decode_to_slice(hex_key.trim(), &mut public_key)
            .map_err(|_| "--proxy-public-key: expected 64 hex digits".to_owned())?;
        let owner: Option<Address> = match (&args.proxy_owner, &args.proxy_owner_key_file) {
            (Some(a), _) => Some(parse_address(a).map_err(|e| e.to_string())?),
            (None, Some(file)) => {
                let key = read_wallet_key(file).map_err(|e| e.to_string())?;
                Some(v5r1_address(key.verifying_key().to_bytes()).map_err(|e| e.to_string())?)
            }
            (None, None) => None,
        };
        spec.proxy = Some(ProxySpec { public_key, owner });
    }
    Ok(spec)
}

async fn run(args: Args) -> Result<(), String> {
    let spec = spec(&args)?;
    let chain = EmulatedChain::spawn_with(SidecarOptions {
        listen: Some(args.listen.clone()),
        start_time: args.start_time,
        ..SidecarOptions::default()
    })
    .await
    .map_err(|e: ChainError| e.to_string())?;
    let network = LocalNetwork::setup(&chain, &spec)
        .await
        .map_err(|e| e.to_string())?;
    let mut json = serde_json::to_value(&network).map_err(|e| e.to_string())?;
    // The wallet address of every funded key file, so that callers need not derive it.
    let mut key_files = serde_json::Map::new();
    for f in &args.fund_key_files {
        let (file, _) = split(f, "--fund-key-file")?;
        let key = read_wallet_key(file.as_ref()).map_err(|e| e.to_string())?;
        let address = v5r1_address(key.verifying_key().to_bytes()).map_err(|e| e.to_string())?;
        key_files.insert(file.to_owned(), address.to_raw().into());
    }
    json["key_files"] = key_files.into();
    let json = json.to_string();
    println!("{json}");
    eprintln!(
        "cocoon-chain-emulator: serving on {}; Ctrl-C stops it",
        network.listen.as_deref().unwrap_or("?")
    );
    let _ = tokio::signal::ctrl_c().await;
    chain.shutdown().await.map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cocoon-chain-emulator: {e}");
            ExitCode::FAILURE
        }
    }
}

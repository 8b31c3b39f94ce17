//! `cocoon-chain-emulator`: one emulated TON chain that several local processes share. It
//! starts the `@ton/sandbox` sidecar serving the JSON-lines protocol on a loopback TCP port,
//! deploys the root registry with local parameters (and optionally a staked proxy contract),
//! funds wallets, prints what it set up as one JSON object on stdout and serves until
//! interrupted. Other processes use `--chain emulated=ADDR` (or `EmulatedChain::connect`).
//!
//! The root owner of a local network is a wallet inside the emulator, so the owner's updates
//! to the registry (allowed images and models, registered proxies) are made here too: at
//! start with `--allow-*` / `--register-proxy`, and later with the `root` subcommand against
//! the running emulator.

use clap::{Parser, Subcommand};
use cocoon_chain::emulator::{LocalNetwork, LocalNetworkSpec, ProxySpec, v5r1_address};
use cocoon_chain::operator::{parse_ton, read_wallet_key};
use cocoon_chain::{
    Address, Chain, ChainError, EmulatedChain, SidecarOptions, TON, parse_address, read_registry,
};
use cocoon_ton::InternalMessage;
use cocoon_ton::messages::RootMessage;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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
    /// Allow a proxy image hash in the root (64 hex digits; repeatable).
    #[arg(long = "allow-proxy-image", value_name = "HEX")]
    proxy_images: Vec<String>,
    /// Allow a worker image hash in the root (64 hex digits; repeatable).
    #[arg(long = "allow-worker-image", value_name = "HEX")]
    worker_images: Vec<String>,
    /// Allow a model in the root, by the SHA-256 of its weights (64 hex digits, as
    /// `cocoon-worker model-hash` prints it; repeatable).
    #[arg(long = "allow-model", value_name = "SHA256")]
    models: Vec<String>,
    /// Register a proxy endpoint in the root: "CLIENT_HOST:PORT WORKER_HOST:PORT" (repeatable).
    #[arg(long = "register-proxy", value_name = "ENDPOINT")]
    proxies: Vec<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Sends one root-owner update to the root of a running emulator and prints the registry
    /// after it as JSON.
    Root {
        /// The running emulator (`listen` in its JSON).
        #[arg(long)]
        connect: String,
        /// The root registry (`root` in its JSON).
        #[arg(long)]
        root: String,
        /// The root's owner, a wallet of the emulator (`root_owner` in its JSON).
        #[arg(long)]
        owner: String,
        #[command(subcommand)]
        update: RootUpdate,
    },
}

#[derive(Subcommand, Debug)]
enum RootUpdate {
    /// Allow a proxy image hash.
    AllowProxyImage { hash: String },
    /// Remove a proxy image hash.
    DisallowProxyImage { hash: String },
    /// Allow a worker image hash.
    AllowWorkerImage { hash: String },
    /// Remove a worker image hash.
    DisallowWorkerImage { hash: String },
    /// Allow a model, by the SHA-256 of its weights.
    AllowModel { hash: String },
    /// Remove a model, by the SHA-256 of its weights.
    DisallowModel { hash: String },
    /// Register a proxy endpoint.
    RegisterProxy { endpoint: String },
    /// Remove a registered proxy.
    RemoveProxy { seqno: u32 },
}

fn hash32(text: &str) -> Result<[u8; 32], String> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out)
        .map_err(|_| format!("{text:?}: expected 64 hex digits"))?;
    Ok(out)
}

fn root_message(update: &RootUpdate) -> Result<RootMessage, String> {
    let query_id = 0;
    Ok(match update {
        RootUpdate::AllowProxyImage { hash } => RootMessage::AddProxyImage {
            query_id,
            hash: hash32(hash)?,
        },
        RootUpdate::DisallowProxyImage { hash } => RootMessage::RemoveProxyImage {
            query_id,
            hash: hash32(hash)?,
        },
        RootUpdate::AllowWorkerImage { hash } => RootMessage::AddWorkerImage {
            query_id,
            hash: hash32(hash)?,
        },
        RootUpdate::DisallowWorkerImage { hash } => RootMessage::RemoveWorkerImage {
            query_id,
            hash: hash32(hash)?,
        },
        RootUpdate::AllowModel { hash } => RootMessage::AddModel {
            query_id,
            hash: hash32(hash)?,
        },
        RootUpdate::DisallowModel { hash } => RootMessage::RemoveModel {
            query_id,
            hash: hash32(hash)?,
        },
        RootUpdate::RegisterProxy { endpoint } => RootMessage::RegisterProxy {
            query_id,
            endpoint: endpoint.clone(),
        },
        RootUpdate::RemoveProxy { seqno } => RootMessage::RemoveProxy {
            query_id,
            seqno: *seqno,
        },
    })
}

async fn update_root(
    connect: &str,
    root: &str,
    owner: &str,
    update: &RootUpdate,
) -> Result<(), String> {
    let root = parse_address(root).map_err(|e| e.to_string())?;
    let owner = parse_address(owner).map_err(|e| e.to_string())?;
    let body = root_message(update)?
        .to_cell()
        .map_err(|e| format!("root update: {e}"))?;
    let chain = EmulatedChain::connect(connect, Duration::from_secs(60))
        .await
        .map_err(|e| e.to_string())?;
    let sent = chain
        .send_internal(
            &owner,
            &InternalMessage {
                dest: root,
                value: TON / 20,
                bounce: true,
                state_init: None,
                body: Some(body),
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    if !sent.all_succeeded() {
        return Err(format!(
            "the root refused {update:?} (is {} its owner?)",
            owner.to_raw()
        ));
    }
    let registry = read_registry(&chain as &dyn Chain, &root)
        .await
        .map_err(|e| e.to_string())?;
    let hexes = |v: &[[u8; 32]]| v.iter().map(hex::encode).collect::<Vec<_>>();
    println!(
        "{}",
        serde_json::json!({
            "root": root.to_raw(),
            "version": registry.version,
            "proxy_image_hashes": hexes(&registry.proxy_image_hashes),
            "worker_image_hashes": hexes(&registry.worker_image_hashes),
            "model_hashes": hexes(&registry.model_hashes),
            "registered_proxies": registry
                .registered_proxies
                .iter()
                .map(|p| serde_json::json!({"seqno": p.seqno, "endpoint": p.endpoint}))
                .collect::<Vec<_>>(),
        })
    );
    Ok(())
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
    let updates = args
        .proxy_images
        .iter()
        .map(|h| RootUpdate::AllowProxyImage { hash: h.clone() })
        .chain(
            args.worker_images
                .iter()
                .map(|h| RootUpdate::AllowWorkerImage { hash: h.clone() }),
        )
        .chain(
            args.models
                .iter()
                .map(|m| RootUpdate::AllowModel { hash: m.clone() }),
        )
        .chain(args.proxies.iter().map(|e| RootUpdate::RegisterProxy {
            endpoint: e.clone(),
        }));
    for update in updates {
        spec.root_updates.push(root_message(&update)?);
    }
    Ok(spec)
}

async fn run(args: Args) -> Result<(), String> {
    if let Some(Command::Root {
        connect,
        root,
        owner,
        update,
    }) = &args.command
    {
        return update_root(connect, root, owner, update).await;
    }
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

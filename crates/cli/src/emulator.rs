//! The `cocoon-chain-emulator` command: its flags, the local network they describe, and the
//! root-owner updates sent to a running emulator. The executable only parses, prints and waits
//! for Ctrl-C; what it sets up and sends is here, typed and testable.
//!
//! The root owner of a local network is a wallet inside the emulator, so the owner's updates
//! to the registry (allowed images and models, registered proxies) are made here too: at
//! start with `--allow-*` / `--register-proxy`, and later with the `root` subcommand against
//! the running emulator.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use cocoon_chain::emulator::{LocalNetwork, LocalNetworkSpec, ProxySpec, v5r1_address};
use cocoon_chain::operator::{parse_ton, read_wallet_key};
use cocoon_chain::{
    Address, Chain, EmulatedChain, SidecarOptions, TON, parse_address, read_registry,
};
use cocoon_ton::InternalMessage;
use cocoon_ton::messages::RootMessage;
use serde_json::{Value, json};

use crate::CliError;

/// Runs a shared emulated TON chain for local mode.
#[derive(Parser, Debug)]
#[command(name = "cocoon-chain-emulator", version)]
pub struct Args {
    /// TCP address to serve on (port 0 picks a free one; the chosen one is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Deploy and stake a proxy contract for this proxy public key (64 hex digits).
    #[arg(long)]
    pub proxy_public_key: Option<String>,
    /// Owner of that proxy contract (default: the local wallet `proxy-owner`).
    #[arg(long, conflicts_with = "proxy_owner_key_file")]
    pub proxy_owner: Option<String>,
    /// Owner of that proxy contract: the V5R1 wallet of this key file (hex seed, 0600).
    #[arg(long)]
    pub proxy_owner_key_file: Option<PathBuf>,
    /// Create a named local wallet: NAME=TON (repeatable).
    #[arg(long = "wallet", value_name = "NAME=TON")]
    pub wallets: Vec<String>,
    /// Send TON to an address: ADDR=TON (repeatable).
    #[arg(long = "fund", value_name = "ADDR=TON")]
    pub fund: Vec<String>,
    /// Send TON to the V5R1 wallet of a key file: FILE=TON (repeatable).
    #[arg(long = "fund-key-file", value_name = "FILE=TON")]
    pub fund_key_files: Vec<String>,
    /// Start the chain's clock at this unix time (default: now).
    #[arg(long)]
    pub start_time: Option<u64>,
    /// Allow a proxy image hash in the root (64 hex digits; repeatable).
    #[arg(long = "allow-proxy-image", value_name = "HEX")]
    pub proxy_images: Vec<String>,
    /// Allow a worker image hash in the root (64 hex digits; repeatable).
    #[arg(long = "allow-worker-image", value_name = "HEX")]
    pub worker_images: Vec<String>,
    /// Allow a model in the root, by the SHA-256 of its weights (64 hex digits, as
    /// `cocoon-worker model-hash` prints it; repeatable).
    #[arg(long = "allow-model", value_name = "SHA256")]
    pub models: Vec<String>,
    /// Register a proxy endpoint in the root: "CLIENT_HOST:PORT WORKER_HOST:PORT" (repeatable).
    #[arg(long = "register-proxy", value_name = "ENDPOINT")]
    pub proxies: Vec<String>,
    /// A command against a running emulator instead of starting one.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What `cocoon-chain-emulator` does instead of starting an emulator.
#[derive(Subcommand, Debug)]
#[non_exhaustive]
pub enum Command {
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
        /// The update.
        #[command(subcommand)]
        update: RootUpdate,
    },
}

/// One change the root's owner makes to the root registry.
#[derive(Subcommand, Debug)]
#[non_exhaustive]
pub enum RootUpdate {
    /// Allow a proxy image hash.
    AllowProxyImage {
        /// 64 hex digits.
        hash: String,
    },
    /// Remove a proxy image hash.
    DisallowProxyImage {
        /// 64 hex digits.
        hash: String,
    },
    /// Allow a worker image hash.
    AllowWorkerImage {
        /// 64 hex digits.
        hash: String,
    },
    /// Remove a worker image hash.
    DisallowWorkerImage {
        /// 64 hex digits.
        hash: String,
    },
    /// Allow a model, by the SHA-256 of its weights.
    AllowModel {
        /// 64 hex digits.
        hash: String,
    },
    /// Remove a model, by the SHA-256 of its weights.
    DisallowModel {
        /// 64 hex digits.
        hash: String,
    },
    /// Register a proxy endpoint.
    RegisterProxy {
        /// "CLIENT_HOST:PORT WORKER_HOST:PORT".
        endpoint: String,
    },
    /// Remove a registered proxy.
    RemoveProxy {
        /// The registration's number, as the registry lists it.
        seqno: u32,
    },
}

fn hash32(what: &'static str, text: &str) -> Result<[u8; 32], CliError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out).map_err(|_| CliError::BadValue {
        what,
        text: text.to_owned(),
        expected: "64 hex digits",
    })?;
    Ok(out)
}

/// The root message that makes `update`.
///
/// # Errors
/// [`CliError::BadValue`] for a hash that is not 64 hex digits.
pub fn root_message(update: &RootUpdate) -> Result<RootMessage, CliError> {
    let query_id = 0;
    Ok(match update {
        RootUpdate::AllowProxyImage { hash } => RootMessage::AddProxyImage {
            query_id,
            hash: hash32("proxy image hash", hash)?,
        },
        RootUpdate::DisallowProxyImage { hash } => RootMessage::RemoveProxyImage {
            query_id,
            hash: hash32("proxy image hash", hash)?,
        },
        RootUpdate::AllowWorkerImage { hash } => RootMessage::AddWorkerImage {
            query_id,
            hash: hash32("worker image hash", hash)?,
        },
        RootUpdate::DisallowWorkerImage { hash } => RootMessage::RemoveWorkerImage {
            query_id,
            hash: hash32("worker image hash", hash)?,
        },
        RootUpdate::AllowModel { hash } => RootMessage::AddModel {
            query_id,
            hash: hash32("model hash", hash)?,
        },
        RootUpdate::DisallowModel { hash } => RootMessage::RemoveModel {
            query_id,
            hash: hash32("model hash", hash)?,
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

/// Sends `update` from the root's `owner` (a wallet of the emulator at `connect`) and answers
/// the registry after it, as JSON.
///
/// # Errors
/// [`CliError::Chain`] when the emulator or an address fails, [`CliError::RootRefused`] when
/// the root bounces the update.
pub async fn update_root(
    connect: &str,
    root: &str,
    owner: &str,
    update: &RootUpdate,
) -> Result<Value, CliError> {
    let root = parse_address(root)?;
    let owner = parse_address(owner)?;
    let body = root_message(update)?
        .to_cell()
        .map_err(CliError::RootUpdate)?;
    let chain = EmulatedChain::connect(connect, Duration::from_secs(60)).await?;
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
        .await?;
    if !sent.all_succeeded() {
        return Err(CliError::RootRefused {
            update: format!("{update:?}"),
            owner: owner.to_raw(),
        });
    }
    let registry = read_registry(&chain as &dyn Chain, &root).await?;
    let hexes = |v: &[[u8; 32]]| v.iter().map(hex::encode).collect::<Vec<_>>();
    Ok(json!({
        "root": root.to_raw(),
        "version": registry.version,
        "proxy_image_hashes": hexes(&registry.proxy_image_hashes),
        "worker_image_hashes": hexes(&registry.worker_image_hashes),
        "model_hashes": hexes(&registry.model_hashes),
        "registered_proxies": registry
            .registered_proxies
            .iter()
            .map(|p| json!({"seqno": p.seqno, "endpoint": p.endpoint}))
            .collect::<Vec<_>>(),
    }))
}

fn split<'a>(text: &'a str, what: &'static str) -> Result<(&'a str, u128), CliError> {
    let (name, amount) = text.rsplit_once('=').ok_or_else(|| CliError::BadValue {
        what,
        text: text.to_owned(),
        expected: "X=TON",
    })?;
    Ok((name, parse_ton(amount)?))
}

fn key_file_wallet(file: &std::path::Path) -> Result<Address, CliError> {
    let key = read_wallet_key(file)?;
    Ok(v5r1_address(key.verifying_key().to_bytes())?)
}

/// The local network `args` describe.
///
/// # Errors
/// [`CliError::BadValue`] or [`CliError::Chain`] naming the flag whose value is unusable.
pub fn spec(args: &Args) -> Result<LocalNetworkSpec, CliError> {
    let mut spec = LocalNetworkSpec::default();
    for w in &args.wallets {
        let (name, amount) = split(w, "--wallet")?;
        spec.named_wallets.push((name.to_owned(), amount));
    }
    for f in &args.fund {
        let (addr, amount) = split(f, "--fund")?;
        spec.fund.push((parse_address(addr)?, amount));
    }
    for f in &args.fund_key_files {
        let (file, amount) = split(f, "--fund-key-file")?;
        spec.fund.push((key_file_wallet(file.as_ref())?, amount));
    }
    if let Some(hex_key) = &args.proxy_public_key {
        let public_key = hash32("--proxy-public-key", hex_key)?;
        let owner: Option<Address> = match (&args.proxy_owner, &args.proxy_owner_key_file) {
            (Some(a), _) => Some(parse_address(a)?),
            (None, Some(file)) => Some(key_file_wallet(file)?),
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

/// Starts the emulator `args` describe and sets its network up; answers the chain (to shut
/// down when done) and what was set up, as JSON, with the wallet address of every funded key
/// file under `key_files` so that callers need not derive it.
///
/// # Errors
/// [`CliError::BadValue`] or [`CliError::Chain`] for an unusable flag, [`CliError::Chain`]
/// when the sidecar does not start or the setup fails.
pub async fn start(args: &Args) -> Result<(EmulatedChain, Value), CliError> {
    let spec = spec(args)?;
    let chain = EmulatedChain::spawn_with(SidecarOptions {
        listen: Some(args.listen.clone()),
        start_time: args.start_time,
        ..SidecarOptions::default()
    })
    .await?;
    let network = LocalNetwork::setup(&chain, &spec).await?;
    let mut json = serde_json::to_value(&network)?;
    let mut key_files = serde_json::Map::new();
    for f in &args.fund_key_files {
        let (file, _) = split(f, "--fund-key-file")?;
        key_files.insert(
            file.to_owned(),
            key_file_wallet(file.as_ref())?.to_raw().into(),
        );
    }
    json["key_files"] = key_files.into();
    Ok((chain, json))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn flags_describe_the_network() {
        let args = Args::parse_from([
            "cocoon-chain-emulator",
            "--wallet",
            "alice=2.5",
            "--allow-model",
            &"ab".repeat(32),
            "--register-proxy",
            "127.0.0.1:1 127.0.0.1:2",
        ]);
        let network = spec(&args).unwrap();
        assert_eq!(
            network.named_wallets,
            vec![("alice".to_owned(), 2_500_000_000)]
        );
        assert_eq!(network.root_updates.len(), 2);
        let bad = Args::parse_from(["cocoon-chain-emulator", "--wallet", "alice"]);
        let why = spec(&bad).unwrap_err().to_string();
        assert!(why.contains("expected X=TON"), "{why}");
        let bad = Args::parse_from(["cocoon-chain-emulator", "--allow-model", "00"]);
        let why = spec(&bad).unwrap_err().to_string();
        assert!(why.contains("64 hex digits"), "{why}");
    }
}

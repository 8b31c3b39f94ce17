//! The `cocoon-proxy` executable: flags and config file in, a running proxy out; and
//! `cocoon-proxy ledger …` to audit and list the books of a proxy, running or not.

mod admin;
mod args;
mod chain_ops;

mod ledger;

use std::net::SocketAddr;

use args::{Args, Command, load};
use clap::Parser;
use cocoon_proxy::{Proxy, ProxyConfig};

async fn serve(args: &Args, config: ProxyConfig) -> Result<(), String> {
    cocoon_node::descriptors::raise_and_report("cocoon-proxy", config.max_open_connections());
    let has_chain = config.chain.endpoint.is_some() && config.chain.proxy_contract.is_some();
    let proxy = Proxy::bind(config).await.map_err(|e| e.to_string())?;
    if args.local {
        if has_chain {
            tracing::warn!(
                "LOCAL MODE: emulated chain (balances from client contracts); not for production"
            );
        } else {
            tracing::warn!("LOCAL MODE: no chain, free client deposits; not for production");
        }
    }
    let addr = |a: Option<SocketAddr>| a.map_or("-".into(), |a| a.to_string());
    println!(
        "cocoon-proxy: workers on {}, clients on {}, stats on http://{}",
        addr(proxy.worker_addr()),
        addr(proxy.client_addr()),
        addr(proxy.stats_addr())
    );
    proxy
        .run(cocoon_node::shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut args = Args::parse();
    if let Some(Command::Close(_)) = &args.command
        && let Some(Command::Close(close)) = args.command.take()
    {
        return chain_ops::run(close).await;
    }
    cocoon_cli::init_logging(args.log_json);
    let result: Result<(), String> = async {
        let config = load(&args)?;
        match &args.command {
            None => serve(&args, config).await,
            Some(Command::Ledger { action }) => {
                let url = config.ledger_url.as_deref().unwrap_or_default();
                ledger::run(url, action).await
            }
            Some(Command::ChangeModel {
                worker,
                model,
                stats,
            }) => {
                let stats = stats
                    .or(config.stats_listen)
                    .ok_or("no stats port: give --stats or set stats_listen")?;
                admin::change_model(stats, *worker, model).await
            }
            Some(Command::Close(_)) => Err("close runs before the configuration is read".into()),
            Some(Command::VoucherKey) => {
                let key = cocoon_proxy::voucher_public_key(&config).map_err(|e| e.to_string())?;
                println!("{}", hex::encode(key));
                Ok(())
            }
        }
    }
    .await;
    cocoon_cli::exit_status("cocoon-proxy", result)
}

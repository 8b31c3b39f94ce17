//! The `cocoon-client` executable: flags and config file in, an OpenAI-compatible API out; or
//! one of its subcommands (chain operations, `verify-receipt`, `refund`).

use args::{Args, ClientFlags, Command, load};
use clap::Parser;

mod args;
mod chain_ops;
mod refund;
mod verify_receipt;
use cocoon_client::Client;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match &args.command {
        None => {
            cocoon_cli::init_logging(args.flags.log_json);
            cocoon_cli::exit_status("cocoon-client", serve(&args.flags).await)
        }
        Some(Command::Chain(op)) => chain_ops::run(op).await,
        Some(Command::VerifyReceipt(receipt)) => {
            cocoon_cli::exit_status("cocoon-client verify-receipt", verify_receipt::run(receipt))
        }
        Some(Command::Refund { flags }) => {
            // The running client's flags and config file, then the refund through its proxy.
            cocoon_cli::init_logging(flags.log_json);
            let result = async {
                let report = refund::run(load(flags)?).await?;
                println!("{report}");
                Ok::<(), String>(())
            }
            .await;
            cocoon_cli::exit_status("cocoon-client refund", result)
        }
    }
}

/// Serves the OpenAI-compatible API until a shutdown signal.
async fn serve(flags: &ClientFlags) -> Result<(), String> {
    let config = load(flags)?;
    let listen = config.listen.ok_or("no listen address configured")?;
    let access = config
        .http
        .access_rules(std::env::var(cocoon_client::API_KEY_ENV).ok())
        .map_err(|e| e.to_string())?;
    if !listen.ip().is_loopback() && !access.has_key() {
        tracing::warn!(
            %listen,
            "the API listens beyond loopback without an API key: whoever reaches it spends \
             this client's balance (set http.api_key_file or {})",
            cocoon_client::API_KEY_ENV
        );
    }
    cocoon_node::descriptors::raise_and_report("cocoon-client", config.http.max_connections);
    let listener = cocoon_net::listener::bind(listen)
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let client = Client::start(config).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("cocoon-client: OpenAI-compatible API at http://{addr}/v1");
    tokio::select! {
        () = cocoon_client::http::serve(client.clone(), listener, access) => Ok(()),
        () = cocoon_node::shutdown_signal() => {
            client.shutdown();
            Ok(())
        }
    }
}

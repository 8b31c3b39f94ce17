//! The `cocoon-client` executable: flags and config file in, an OpenAI-compatible API out.

use args::{Args, load};
use clap::Parser;

mod args;
mod chain_ops;
mod refund;
mod verify_receipt;
use cocoon_client::Client;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    if let Some(code) = chain_ops::dispatch().await {
        return code;
    }
    if std::env::args().nth(1).as_deref() == Some("verify-receipt") {
        let result = verify_receipt::run(std::env::args().skip(2));
        return cocoon_cli::exit_status("cocoon-client verify-receipt", result);
    }
    if std::env::args().nth(1).as_deref() == Some("refund") {
        // The running client's flags and config file, then the refund through its proxy.
        let args = Args::parse_from(
            std::env::args()
                .enumerate()
                .filter(|(i, _)| *i != 1)
                .map(|(_, a)| a),
        );
        cocoon_cli::init_logging(args.log_json);
        let result: Result<(), String> = async {
            let report = refund::run(load(&args)?).await?;
            println!("{report}");
            Ok::<(), String>(())
        }
        .await;
        return cocoon_cli::exit_status("cocoon-client refund", result);
    }
    let args = Args::parse();
    cocoon_cli::init_logging(args.log_json);
    let result: Result<(), String> = async {
        let config = load(&args)?;
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
        let listener = tokio::net::TcpListener::bind(listen)
            .await
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
    .await;
    cocoon_cli::exit_status("cocoon-client", result)
}

//! The `cocoon-client` executable: flags and config file in, an OpenAI-compatible API out.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use cocoon_client::{Client, ClientConfig};

/// COCOON client: an OpenAI-compatible HTTP API that sends requests through an attested COCOON
/// proxy and pays for them.
///
/// Settings come from the TOML file given with --config (keys as in `ClientConfig`), then from
/// COCOON_CLIENT_* environment variables, then from flags; later sources win.
#[derive(Parser, Debug)]
#[command(name = "cocoon-client", version)]
struct Args {
    /// TOML configuration file.
    #[arg(long, env = "COCOON_CLIENT_CONFIG")]
    config: Option<PathBuf>,
    /// Address of the OpenAI-compatible API (default 127.0.0.1:10000).
    #[arg(long, env = "COCOON_CLIENT_LISTEN")]
    listen: Option<SocketAddr>,
    /// The proxy's client port, host:port (default 127.0.0.1:11002).
    #[arg(long, env = "COCOON_CLIENT_PROXY")]
    proxy: Option<String>,
    /// TON address of the client's owner.
    #[arg(long, env = "COCOON_CLIENT_OWNER")]
    owner: Option<String>,
    /// Secret for short authorization with the proxy.
    #[arg(long, env = "COCOON_CLIENT_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Largest request body accepted, in bytes (default 4 MiB).
    #[arg(long, env = "COCOON_CLIENT_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "COCOON_LOG_JSON")]
    log_json: bool,
}

fn load(args: &Args) -> Result<ClientConfig, String> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => ClientConfig::default(),
    };
    if let Some(v) = args.listen {
        config.listen = Some(v);
    }
    if let Some(v) = &args.proxy {
        config.proxy = v.clone();
    }
    if let Some(v) = &args.owner {
        config.owner_address = v.clone();
    }
    if let Some(v) = &args.secret {
        config.secret = Some(v.clone());
    }
    if let Some(v) = args.max_body_bytes {
        config.max_body_bytes = v;
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if args.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let result = async {
        let config = load(&args)?;
        let listen = config.listen.ok_or("no listen address configured")?;
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let client = Client::start(config).map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        println!("cocoon-client: OpenAI-compatible API at http://{addr}/v1");
        tokio::select! {
            r = cocoon_client::http::serve(client.clone(), listener) => r.map_err(|e| e.to_string()),
            () = cocoon_net::shutdown_signal() => {
                client.shutdown();
                Ok(())
            }
        }
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cocoon-client: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

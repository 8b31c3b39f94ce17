//! `cocoon-rogue-proxy`: a proxy for attack tests that cheats only as told: a real proxy behind
//! relays that rewrite what it sends (see `cocoon_testkit::tamper`). Clients and workers connect
//! to it as to a proxy, with simulated evidence (workers only with `--worker-listen`). Prints
//! one line `listening clients=ADDR workers=ADDR` on stdout once ready, then one JSON line per
//! message rewritten; logs go to stderr.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use cocoon_attest::digest::Digest32;
use cocoon_attest::ratls::ClaimsFormat;
use cocoon_testkit::Relay;
use cocoon_testkit::tamper::{Tamper, TamperConfig};

#[derive(Debug, Parser)]
#[command(
    name = "cocoon-rogue-proxy",
    about = "A proxy that cheats as told (attack tests only)"
)]
struct Args {
    /// Where clients connect.
    #[arg(long)]
    client_listen: SocketAddr,
    /// Where workers connect (none: workers connect to the real proxy, and receipts stay
    /// signed by the key the proxy sees).
    #[arg(long, requires = "proxy_workers")]
    worker_listen: Option<SocketAddr>,
    /// The real proxy's client port.
    #[arg(long)]
    proxy_clients: String,
    /// The real proxy's worker port.
    #[arg(long)]
    proxy_workers: Option<String>,
    /// What to rewrite.
    #[command(flatten)]
    tamper: TamperConfig,
    /// The SHA-256 of the workers' model weights (64 hex digits), named in the certificate the
    /// workers' relay presents to a proxy whose root lists models.
    #[arg(long, value_name = "HEX", value_parser = Digest32::from_hex)]
    worker_model_hash: Option<Digest32>,
}

async fn run(args: Args) -> Result<(), cocoon_testkit::TestkitError> {
    let (tamper, mut rewrites) = Tamper::new(args.tamper);
    let tamper = Arc::new(tamper);
    let clients = Relay::start(args.client_listen, args.proxy_clients, tamper.clone()).await?;
    let workers = match (args.worker_listen, args.proxy_workers) {
        (Some(listen), Some(target)) => {
            let format = match args.worker_model_hash {
                Some(hash) => ClaimsFormat::V1 {
                    sealing_public_key: None,
                    gpu_evidence_digest: None,
                    model_hash: Some(hash),
                },
                None => ClaimsFormat::Reference,
            };
            Some(Relay::start_with_claims(listen, target, tamper, format).await?)
        }
        _ => None,
    };
    print_line(&format!(
        "listening clients={} workers={}",
        clients.addr(),
        workers.as_ref().map_or("-", |w| w.addr())
    ));
    let printer = tokio::spawn(async move {
        while let Some(rewrite) = rewrites.recv().await {
            match serde_json::to_string(&rewrite) {
                Ok(line) => print_line(&line),
                Err(e) => tracing::warn!("cannot print a rewrite: {e}"),
            }
        }
    });
    cocoon_node::shutdown_signal().await;
    printer.abort();
    Ok(())
}

fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    cocoon_testkit::run_tool("cocoon-rogue-proxy", run(args))
}

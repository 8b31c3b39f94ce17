//! `cocoon-rogue-worker`: a worker for attack tests that connects to a real proxy and cheats
//! only as told (see `cocoon_testkit::rogue`). Prints one JSON line per request on stdout when
//! the request ends; logs go to stderr.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;
use cocoon_testkit::rogue::record::{bind_stats, serve_stats};
use cocoon_testkit::rogue::{RogueArgs, RogueWorker};
use tokio_util::sync::CancellationToken;

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
}

async fn run(args: RogueArgs) -> Result<(), cocoon_testkit::TestkitError> {
    let config = args.config()?;
    let stats = match config.stats_listen {
        Some(addr) => Some(bind_stats(addr).await?),
        None => None,
    };
    let (worker, mut finished) = RogueWorker::new(config)?;
    if let Some(listener) = stats {
        tokio::spawn(serve_stats(listener, worker.records()));
    }
    let stop = CancellationToken::new();
    let running = tokio::spawn(worker.run(stop.clone()));
    let printer = tokio::spawn(async move {
        while let Some(record) = finished.recv().await {
            match serde_json::to_string(&record) {
                Ok(line) => {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
                }
                Err(e) => tracing::warn!("cannot print a request record: {e}"),
            }
        }
    });
    cocoon_node::shutdown_signal().await;
    stop.cancel();
    let _ = running.await;
    printer.abort();
    Ok(())
}

fn main() -> ExitCode {
    let args = RogueArgs::parse();
    init_logs(args.log_json);
    cocoon_testkit::run_tool("cocoon-rogue-worker", run(args))
}

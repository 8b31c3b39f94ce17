//! The `cocoon-worker` executable: flags and config file in, a worker serving proxies out.

use args::{Args, Command, load};
use clap::Parser;
use cocoon_worker::Worker;

mod args;
mod chain_ops;
mod engine;
mod estimate;
#[cfg(feature = "builtin")]
mod loading;
mod model_hash;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match args.command {
        Some(Command::ModelHash(ref a)) => return model_hash::run(a),
        Some(Command::Estimate(ref a)) => return estimate::command(a),
        Some(Command::Payout(a)) => return chain_ops::run(a).await,
        None => {}
    }
    cocoon_cli::init_logging(args.log_json);
    let result: Result<(), String> = async {
        let mut config = load(&args).map_err(|e| e.to_string())?;
        let (engine, source, loader) = engine::start(&args.engine, &config).await?;
        let model = config
            .choose_model(engine.as_ref())
            .map_err(|e| e.to_string())?
            .clone();
        println!(
            "cocoon-worker: serving {model} from {} to {}",
            source,
            config.proxies.join(", ")
        );
        cocoon_node::descriptors::raise_and_report(
            "cocoon-worker",
            cocoon_net::http_server::HttpLimits::default().max_connections,
        );
        let worker = Worker::new(config, engine).map_err(|e| e.to_string())?;
        if let Some(loader) = loader {
            worker.set_model_loader(loader);
        }
        worker
            .run(cocoon_node::shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    cocoon_cli::exit_status("cocoon-worker", result)
}

//! `cocoon-worker estimate`: prints the tokens/s and nanoTON per hour a worker can expect from
//! figures its operator gives (engine speed, utilisation, market, network prices), under the
//! model and price policy of its configuration; with `--measure` the speed is measured on the
//! engine the worker would serve from. The rules live in `cocoon_worker::estimate`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cocoon_worker::WorkerConfig;
use cocoon_worker::estimate::{
    self, EstimateCoefficient as Coefficient, EstimateInput, EstimatePricing,
};

/// Estimate a worker's coefficient and earnings per hour.
#[derive(clap::Args, Debug)]
pub(crate) struct Estimate {
    /// The worker's TOML configuration (model, coefficient, [pricing], pricing_tick).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The model, replacing the configuration's.
    #[arg(long)]
    model: Option<String>,
    /// Completion tokens per second the engine sustains with every slot busy.
    #[arg(long, required_unless_present = "measure")]
    tokens_per_sec: Option<f64>,
    /// Measure the speed instead: start the engine (as the worker would, from the flags below)
    /// and run a batch of completions on it.
    #[arg(long, conflicts_with = "tokens_per_sec")]
    measure: bool,
    /// Requests run at once while measuring.
    #[arg(long, default_value_t = 4)]
    measure_concurrency: usize,
    /// Tokens each measured request generates.
    #[arg(long, default_value_t = 64)]
    measure_tokens: u64,
    #[command(flatten)]
    engine: crate::engine::EngineArgs,
    /// Prompt tokens per second the engine takes in with every slot busy.
    #[arg(long, default_value_t = 0.0)]
    prompt_tokens_per_sec: f64,
    /// Expected share of time the worker is busy, 0 to 1 (default: the market's load with
    /// --market-from, else 0.5).
    #[arg(long)]
    utilisation: Option<f64>,
    /// The coefficient (1000 = 1.0x), replacing the configuration's.
    #[arg(long)]
    coefficient: Option<i64>,
    /// Coefficients of the other workers serving the model (as in /v1/models), comma-separated.
    #[arg(long, value_delimiter = ',', conflicts_with = "market_from")]
    market: Vec<i64>,
    /// Read the current market instead from a client's API (http://HOST:PORT): the model's
    /// workers' coefficients in its /v1/models, and their load unless --utilisation is given.
    #[arg(long)]
    market_from: Option<String>,
    /// NanoTON a client pays per adjusted token (the root contract's price).
    #[arg(long, default_value_t = EstimatePricing::default().price_per_token)]
    price_per_token: u64,
    /// NanoTON the worker earns per adjusted token (the rest is the proxy's commission).
    #[arg(long, default_value_t = EstimatePricing::default().worker_fee_per_token)]
    worker_fee_per_token: u64,
    /// Hours of simulated time a load policy runs before its price is read.
    #[arg(long, default_value_t = 24)]
    hours: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `estimate`.
pub(crate) fn command(args: &Estimate) -> ExitCode {
    cocoon_cli::exit_status("cocoon-worker estimate", run(args))
}

/// [`cocoon_worker::market_view::fetch_market`] (on the binary's runtime).
fn fetch_market(url: &str, model: &str) -> Result<(Vec<Coefficient>, Option<f64>), String> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|e| e.to_string())?;
    tokio::task::block_in_place(|| {
        runtime.block_on(cocoon_worker::market_view::fetch_market(url, model))
    })
    .map_err(|e| e.to_string())
}

/// Starts the engine and measures it (on the binary's runtime, which `estimate` runs inside).
fn measure(args: &Estimate, config: &WorkerConfig) -> Result<cocoon_worker::speed::Speed, String> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|e| e.to_string())?;
    tokio::task::block_in_place(|| {
        runtime.block_on(async {
            let (engine, source, _) = crate::engine::start(&args.engine, config).await?;
            eprintln!("measuring {source}");
            let model = engine
                .models()
                .first()
                .map(|m| m.name.clone())
                .unwrap_or_else(|| config.configured_model().to_owned());
            let deadline = Duration::from_secs(600);
            cocoon_worker::speed::measure(
                engine.as_ref(),
                &model,
                args.measure_concurrency,
                args.measure_tokens,
                deadline,
            )
            .await
            .map_err(|e| e.to_string())
        })
    })
}

fn run(args: &Estimate) -> Result<(), String> {
    let config: WorkerConfig =
        cocoon_cli::read_config(args.config.as_deref()).map_err(|e| e.to_string())?;
    let coefficient = |v: i64| Coefficient::try_from(v).map_err(|e| e.to_string());
    let mut input = EstimateInput::for_worker(&config).map_err(|e| e.to_string())?;
    if let Some(m) = &args.model {
        input.model = m.clone();
    }
    if let Some(c) = args.coefficient {
        input.coefficient = coefficient(c)?;
    }
    input.market = args
        .market
        .iter()
        .map(|c| coefficient(*c))
        .collect::<Result<_, _>>()?;
    input.prompt_tokens_per_sec = args.prompt_tokens_per_sec;
    match args.tokens_per_sec {
        Some(t) => input.completion_tokens_per_sec = t,
        None => {
            let speed = measure(args, &config)?;
            eprintln!(
                "measured: {:.1} completion tokens/s and {:.1} prompt tokens/s with {} requests at once",
                speed.completion_tokens_per_sec, speed.prompt_tokens_per_sec, speed.concurrency
            );
            input.completion_tokens_per_sec = speed.completion_tokens_per_sec;
            input.prompt_tokens_per_sec = speed.prompt_tokens_per_sec;
        }
    }
    input.utilisation = args.utilisation.unwrap_or(0.5);
    if let Some(url) = &args.market_from {
        let (market, load) = fetch_market(url, &input.model)?;
        eprintln!(
            "market from {url}: {} workers serve {}",
            market.len(),
            input.model
        );
        input.market = market;
        if let (None, Some(load)) = (args.utilisation, load) {
            input.utilisation = load;
        }
    }
    input.horizon = Duration::from_secs(args.hours.saturating_mul(3600));
    input.pricing.price_per_token = args.price_per_token;
    input.pricing.worker_fee_per_token = args.worker_fee_per_token;
    let e = estimate::estimate(&input).map_err(|e| e.to_string())?;
    if args.json {
        println!("{}", estimate::to_json(&e).map_err(|e| e.to_string())?);
    } else {
        print!("{}", estimate::render(&e));
    }
    Ok(())
}

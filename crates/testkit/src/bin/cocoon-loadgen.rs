//! `cocoon-loadgen`: an HTTP load generator for relay benchmarks (see
//! `cocoon_testkit::loadgen`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use cocoon_testkit::loadgen::{self, LoadConfig, LoadTarget, StopCondition, parse_duration};
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method};

/// The reference COCOON relay benchmark's request: a streaming chat completion.
const REFERENCE_BODY: &str = r#"{"model":"Qwen/Qwen3-8B","messages":[{"role":"user","content":"Hello, how are you today?"}],"stream":true,"max_tokens":8000}"#;

const AFTER_HELP: &str = "\
A request counts as served only when its status is 2xx, its whole body has arrived and, for
an SSE answer (text/event-stream), the body ends with `data: [DONE]`. Latency runs from before
the connection is opened to the last body byte, over served requests.

Example (the reference relay benchmark, 5 seconds):
  cocoon-loadgen --url http://127.0.0.1:10000/v1/chat/completions --reference-body -c 30 -z 5s";

/// HTTP load generator: like `hey -m POST -disable-keepalive -c 30`, reading every answer to
/// its end.
#[derive(Debug, Parser)]
#[command(name = "cocoon-loadgen", version, after_help = AFTER_HELP)]
struct Args {
    /// Plain http:// URL to load.
    #[arg(long)]
    url: String,
    /// Request method; default POST when a body is given, else GET.
    #[arg(short = 'm', long)]
    method: Option<String>,
    /// Request body.
    #[arg(long, conflicts_with_all = ["body_file", "reference_body"])]
    body: Option<String>,
    /// Read the request body from a file.
    #[arg(long, value_name = "PATH", conflicts_with = "reference_body")]
    body_file: Option<PathBuf>,
    /// Send the reference benchmark's request body: a streaming chat completion for
    /// Qwen/Qwen3-8B with max_tokens 8000.
    #[arg(long)]
    reference_body: bool,
    /// Extra request header `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Content-Type of the body (default application/json when there is a body).
    #[arg(short = 'T', long, value_name = "TYPE")]
    content_type: Option<String>,
    /// Requests in flight at once.
    #[arg(short = 'c', long, default_value_t = 30)]
    concurrency: usize,
    /// Total requests to send (default 200 unless -z is given).
    #[arg(short = 'n', long, conflicts_with = "duration")]
    requests: Option<u64>,
    /// Send requests for this long, e.g. 5s, 500ms, 2m.
    #[arg(short = 'z', long, value_parser = parse_duration, value_name = "DURATION")]
    duration: Option<Duration>,
    /// Reuse one connection per worker.
    #[arg(long, overrides_with = "no_keepalive")]
    keepalive: bool,
    /// Open a new TCP connection for every request and send `Connection: close` (the default,
    /// as in the reference benchmark).
    #[arg(long, overrides_with = "keepalive")]
    no_keepalive: bool,
    /// Per-request time limit, connection included; 0 disables it.
    #[arg(short = 't', long, default_value = "20s", value_parser = parse_duration, value_name = "DURATION")]
    timeout: Duration,
    /// Runtime threads; 1 (the default) runs everything on one thread to leave the CPU to the
    /// system under test.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print one JSON line instead of the human summary.
    #[arg(long)]
    json: bool,
    /// Exit with status 1 when any request failed.
    #[arg(long)]
    fail_on_errors: bool,
}

impl Args {
    fn body(&self) -> Result<Bytes, String> {
        if self.reference_body {
            return Ok(Bytes::from_static(REFERENCE_BODY.as_bytes()));
        }
        if let Some(body) = &self.body {
            return Ok(Bytes::from(body.clone()));
        }
        match &self.body_file {
            Some(path) => std::fs::read(path).map(Bytes::from).map_err(|source| {
                cocoon_testkit::TestkitError::ReadFile {
                    path: path.clone(),
                    source,
                }
                .to_string()
            }),
            None => Ok(Bytes::new()),
        }
    }

    async fn config(&self) -> Result<LoadConfig, String> {
        let target = LoadTarget::resolve(&self.url)
            .await
            .map_err(|e| e.to_string())?;
        let mut config = LoadConfig::new(target);
        config.body = self.body()?;
        config.method = match &self.method {
            Some(method) => Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                .map_err(|_| format!("invalid method {method:?}"))?,
            None if config.body.is_empty() => Method::GET,
            None => Method::POST,
        };
        for header in &self.headers {
            let (name, value) = loadgen::parse_header(header).map_err(|e| e.to_string())?;
            config.headers.append(name, value);
        }
        if let Some(content_type) = &self.content_type {
            let value = HeaderValue::from_str(content_type)
                .map_err(|_| format!("invalid content type {content_type:?}"))?;
            config.headers.insert(CONTENT_TYPE, value);
        }
        config.concurrency = self.concurrency;
        config.stop = match (self.duration, self.requests) {
            (Some(duration), _) => StopCondition::Duration(duration),
            (None, Some(n)) => StopCondition::Requests(n),
            (None, None) => StopCondition::Requests(200),
        };
        config.keepalive = self.keepalive && !self.no_keepalive;
        config.timeout = (!self.timeout.is_zero()).then_some(self.timeout);
        Ok(config)
    }
}

async fn load(args: &Args) -> Result<cocoon_testkit::LoadReport, String> {
    let config = args.config().await?;
    let amount = match config.stop {
        StopCondition::Duration(d) => format!("for {:.1} s", d.as_secs_f64()),
        StopCondition::Requests(n) => format!("{n} requests"),
        _ => String::new(),
    };
    eprintln!(
        "cocoon-loadgen: {} {} {amount} with {} workers…",
        config.method,
        config.target.url(),
        config.concurrency
    );
    loadgen::run(config).await.map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cocoon-loadgen: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let report = match runtime.block_on(load(&args)) {
        Ok(report) => report,
        Err(message) => {
            eprintln!("cocoon-loadgen: {message}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        match report.to_json_line() {
            Ok(line) => println!("{line}"),
            Err(error) => {
                eprintln!("cocoon-loadgen: {error}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        println!("{report}");
    }
    if args.fail_on_errors && report.errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

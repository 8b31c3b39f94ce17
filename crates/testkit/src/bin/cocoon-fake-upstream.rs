//! `cocoon-fake-upstream`: a fake OpenAI-compatible inference engine for end-to-end tests and
//! relay benchmarks (see `cocoon_testkit::upstream`).

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use cocoon_testkit::upstream::{
    AnswerShape, FakeUpstream, StreamFormat, UpstreamConfig, UsagePolicy,
};

const AFTER_HELP: &str = "\
Endpoints:
  POST /v1/chat/completions   chat answers, streamed as SSE when \"stream\": true
  POST /v1/completions        text completions, same rules
  GET  /v1/models             the --model list
  GET  /health                200 once ready
  GET  /stats                 request counters as JSON

Answers are deterministic: the content echoes the words of the last user message (or the
completion prompt), cycling, cut into chunks of exactly --chunk-bytes bytes. Usage is
consistent: completion_tokens = chunks sent (capped by max_tokens / max_completion_tokens,
finish_reason \"length\" then), prompt_tokens = whitespace-separated words of the whole prompt,
total_tokens = their sum, cached and reasoning tokens as configured (capped by those totals).

Per-request headers (override the flags above for one request):
  x-fake-chunks: N             content chunks
  x-fake-chunk-bytes: N        bytes of content per chunk
  x-fake-delay-ms: N           pause before each chunk after the first
  x-fake-ttft-ms: N            pause before the first chunk
  x-fake-fail-after: N|none    abort the TCP connection after N chunks
  x-fake-format: sse|ndjson    streaming format
  x-fake-usage: requested|always   when a streamed SSE answer ends with a usage chunk
  x-fake-cached-tokens: N      prompt_tokens_details.cached_tokens
  x-fake-reasoning-tokens: N   completion_tokens_details.reasoning_tokens
  x-fake-status: 400-599       answer with this status and an OpenAI error body

Prints `listening on http://ADDR` on stdout once it accepts connections.

Example (the reference relay benchmark's upstream):
  cocoon-fake-upstream --port 0 --ndjson";

/// A fake OpenAI-compatible inference engine (vLLM / SGLang / llama.cpp server stand-in) on
/// loopback, for end-to-end tests and relay benchmarks.
#[derive(Debug, Parser)]
#[command(name = "cocoon-fake-upstream", version, after_help = AFTER_HELP)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on; 0 picks a free port.
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// A model to serve (repeatable); requests for other models get an OpenAI-shaped 404.
    /// Default: Qwen/Qwen3-8B.
    #[arg(long = "model", value_name = "NAME")]
    models: Vec<String>,
    /// Serve any model name instead of answering 404.
    #[arg(long)]
    any_model: bool,
    /// Content chunks per answer (= completion tokens).
    #[arg(long, default_value_t = 50)]
    chunks: u32,
    /// Bytes of content per chunk.
    #[arg(long, default_value_t = 128)]
    chunk_bytes: u32,
    /// Pause before each chunk after the first, in milliseconds.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    delay_ms: u64,
    /// Pause before the first chunk (time to first token), in milliseconds.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    ttft_ms: u64,
    /// Abort the TCP connection after N content chunks, like a crashed engine (a non-streamed
    /// answer is then never sent).
    #[arg(long, value_name = "N")]
    fail_after: Option<u32>,
    /// Stream in the reference benchmark's NDJSON format ({"delta":…,"i":N} lines and a
    /// {"usage":…} line), whether or not the request asks for a stream.
    #[arg(long)]
    ndjson: bool,
    /// End every streamed SSE answer with a usage chunk, not only when the request sets
    /// stream_options.include_usage.
    #[arg(long)]
    always_usage: bool,
    /// prompt_tokens_details.cached_tokens to report (capped by prompt tokens).
    #[arg(long, default_value_t = 0, value_name = "N")]
    cached_tokens: u64,
    /// completion_tokens_details.reasoning_tokens to report (capped by completion tokens).
    #[arg(long, default_value_t = 0, value_name = "N")]
    reasoning_tokens: u64,
    /// Answer every inference request with this status (400-599) and an OpenAI error body.
    #[arg(long, value_name = "STATUS")]
    fail_status: Option<u16>,
    /// Worker threads; 0 means one per CPU core, 1 a single-threaded server.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Log as JSON lines instead of human-readable text (logs go to stderr; RUST_LOG filters).
    #[arg(long)]
    log_json: bool,
}

impl Args {
    fn config(&self) -> Result<UpstreamConfig, String> {
        let mut shape = AnswerShape::default();
        shape.chunks = self.chunks;
        shape.chunk_bytes = self.chunk_bytes;
        shape.delay = Duration::from_millis(self.delay_ms);
        shape.first_chunk_delay = Duration::from_millis(self.ttft_ms);
        shape.fail_after = self.fail_after;
        shape.format = if self.ndjson {
            StreamFormat::Ndjson
        } else {
            StreamFormat::Sse
        };
        shape.usage = if self.always_usage {
            UsagePolicy::Always
        } else {
            UsagePolicy::Requested
        };
        shape.cached_tokens = self.cached_tokens;
        shape.reasoning_tokens = self.reasoning_tokens;
        shape.fail_status = match self.fail_status {
            None => None,
            Some(code) => Some(
                http::StatusCode::from_u16(code)
                    .map_err(|_| format!("--fail-status {code} is not an HTTP status"))?,
            ),
        };
        let mut config = UpstreamConfig::default();
        config.listen = SocketAddr::new(self.host, self.port);
        if !self.models.is_empty() {
            config.models.clone_from(&self.models);
        }
        config.any_model = self.any_model;
        config.shape = shape;
        Ok(config)
    }
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
}

async fn serve(config: UpstreamConfig) -> Result<(), String> {
    let upstream = FakeUpstream::start(config)
        .await
        .map_err(|e| e.to_string())?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", upstream.url())
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))?;
    wait_for_stop_signal().await;
    upstream.shutdown().await;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGTERM; stopping on Ctrl-C only");
            // If Ctrl-C cannot be watched either, serve until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_stop_signal() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logs(args.log_json);
    let config = match args.config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("cocoon-fake-upstream: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if args.threads > 1 {
            builder.worker_threads(args.threads);
        }
        builder.enable_all().build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cocoon-fake-upstream: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("cocoon-fake-upstream: {message}");
            ExitCode::FAILURE
        }
    }
}

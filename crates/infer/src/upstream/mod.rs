//! An [`Engine`] that forwards requests to an OpenAI-compatible inference server (vLLM, SGLang,
//! llama.cpp server) and meters its answers, so a worker can sell any engine it can run.
//!
//! # Design
//!
//! - One hyper 1 HTTP/1.1 client per engine, with a keep-alive pool, so steady traffic reuses
//!   connections instead of paying a TCP handshake per request. No TLS: the upstream is
//!   expected on loopback or a private link inside the confidential VM.
//! - The request body is forwarded as the worker validated it, except that streamed requests get
//!   `stream_options.include_usage = true` (with [`UpstreamConfig::force_include_usage`]), so the
//!   upstream reports exact usage at the end of every stream. The usage-only final chunk this
//!   adds is kept in what is relayed: it is valid OpenAI SSE (an empty `choices` array) that
//!   clients already handle, and stripping it would mean buffering and rewriting events.
//! - A llama.cpp server (its model list says `"owned_by": "llamacpp"`) reports usage only at
//!   the end of a stream, so streamed requests to it also get `timings_per_token = true`: every
//!   chunk then carries llama.cpp's running token counts (`timings`, relayed too, as llama.cpp
//!   already puts in its last chunk), and a stream stopped early is billed by them instead of
//!   by an estimate that cannot see the chat template's tokens.
//! - The answer body is relayed chunk by chunk as [`BodyEvent::Data`](crate::BodyEvent::Data) as it arrives, never
//!   buffered whole, and fed to a [`UsageMeter`] on the way; the stream ends with
//!   [`BodyEvent::End`](crate::BodyEvent::End) carrying the metered usage, or [`BodyEvent::Failed`](crate::BodyEvent::Failed) with the usage so
//!   far when the upstream connection breaks, goes silent, or sends too much.
//! - When the upstream reports no usage, the meter's estimate is used (see
//!   [`crate::usage`]), its prompt count filled in from the request text at
//!   [`ESTIMATE_BYTES_PER_TOKEN`] bytes per token; [`UpstreamStats::estimated_usage`] counts
//!   such answers and the first one is logged as a warning.
//! - Answers with a non-2xx status are relayed with their status and body and zero usage: the
//!   upstream did no billable work.
//! - Dropping the [`EngineResponse`] (or its body receiver) drops the upstream response, which
//!   closes that upstream connection at once; dropping the future returned by
//!   [`Engine::run`] before the head arrived does the same.
//! - [`EngineResponse::stop`] abandons the upstream request the same way, but first ends the
//!   body with [`BodyEvent::Stopped`](crate::BodyEvent::Stopped) and the usage of what was
//!   relayed so far (the upstream's running usage if it reports one, else the estimate), so a
//!   cancelled request is still metered.
//!
//! # Errors and timeouts
//!
//! A refused or failed connection (including one that exceeds
//! [`UpstreamConfig::connect_timeout`]) is [`EngineError::Unavailable`]; an upstream that stays
//! silent longer than [`UpstreamConfig::request_timeout`] before its response head is
//! [`EngineError::Timeout`], and one that goes silent that long mid-body fails the stream.
//! The timeout bounds silence, not the length of an answer: a long generation that keeps
//! streaming is never cut; the worker bounds total time by dropping the response.

mod relay;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::usage::{BodyFormat, ESTIMATE_BYTES_PER_TOKEN, UsageMeter};
use crate::{
    Endpoint, Engine, EngineError, EngineFuture, EngineResponse, InferenceRequest, ModelInfo,
    StopHandle, TokenUsage, TranscriptionRequest,
};

/// Body events buffered between the relay task and the worker: enough to absorb scheduling
/// jitter, small enough that a slow reader pushes back on the upstream.
const BODY_CHANNEL_CAPACITY: usize = 32;

/// How long an idle pooled connection to the upstream is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Response headers relayed to the worker; others (server identity, hop-by-hop, lengths that
/// the relay's framing replaces) stay behind.
const RELAYED_HEADERS: [header::HeaderName; 2] = [header::CONTENT_TYPE, header::CACHE_CONTROL];

/// Why an [`UpstreamEngine`] could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// The base URL is not a plain `http://host[:port][/prefix]` URL.
    #[error("unusable upstream base URL {url:?}: {reason}")]
    InvalidBaseUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The API key cannot be sent in an HTTP header.
    #[error("the upstream API key contains characters not allowed in an HTTP header")]
    InvalidApiKey,
    /// No model names were configured and none could be discovered.
    #[error("the upstream serves no models")]
    NoModels,
    /// `GET /v1/models` could not be fetched.
    #[error("cannot list the upstream's models at {url}: {reason}")]
    ModelsUnreachable {
        /// The URL asked.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// `GET /v1/models` answered with an error status.
    #[error("the upstream answered {status} to {url}")]
    ModelsStatus {
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// `GET /v1/models` answered with something that is not an OpenAI model list.
    #[error("the upstream's model list at {url} is not valid: {reason}")]
    ModelsInvalid {
        /// The URL asked.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// How to reach and use an upstream OpenAI-compatible server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpstreamConfig {
    /// The server's root, e.g. `http://127.0.0.1:8000`; a trailing `/v1` (as OpenAI SDKs are
    /// configured) is accepted and dropped, since endpoint paths include it.
    pub base_url: String,
    /// The model names served, as clients ask for them. Empty: discover them with
    /// `GET /v1/models` in [`UpstreamEngine::start`].
    pub models: Vec<String>,
    /// Longest time to establish a TCP connection.
    pub connect_timeout: Duration,
    /// Longest silence from the upstream: before its response head, and between body chunks.
    pub request_timeout: Duration,
    /// Largest answer body relayed; a longer one fails the stream (also caps the model list).
    pub max_body_bytes: u64,
    /// Sent as `Authorization: Bearer …` when set.
    pub api_key: Option<String>,
    /// Ask for usage in every streamed answer (`stream_options.include_usage = true`).
    pub force_include_usage: bool,
}

impl UpstreamConfig {
    /// A configuration for the server at `base_url` with default limits: connect within 5 s,
    /// at most 300 s of silence, answers up to 64 MiB, usage always requested, models
    /// discovered.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            models: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(300),
            max_body_bytes: 64 << 20,
            api_key: None,
            force_include_usage: true,
        }
    }
}

/// Counters of an [`UpstreamEngine`], for stats and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct UpstreamStats {
    /// Requests sent upstream.
    pub requests: u64,
    /// Answers whose body is being relayed now.
    pub active: u64,
    /// Answers the upstream refused with a non-2xx status.
    pub error_statuses: u64,
    /// Answers that ended with [`crate::BodyEvent::Failed`].
    pub failed: u64,
    /// Answers abandoned because the worker dropped or stopped them.
    pub cancelled: u64,
    /// Successful answers whose usage had to be estimated.
    pub estimated_usage: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    active: AtomicU64,
    error_statuses: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicU64,
    estimated_usage: AtomicU64,
    warned_estimate: AtomicBool,
}

/// The parts of the base URL every request needs.
#[derive(Debug, Clone)]
struct Target {
    /// `http://host:port` plus the path prefix, for messages.
    display: String,
    chat: Uri,
    completions: Uri,
    transcriptions: Uri,
    models: Uri,
}

impl Target {
    fn parse(url: &str) -> Result<Self, UpstreamError> {
        let invalid = |reason| UpstreamError::InvalidBaseUrl {
            url: url.to_owned(),
            reason,
        };
        let uri: Uri = url
            .parse()
            .map_err(|_| invalid("not a URL (expected http://host:port)"))?;
        match uri.scheme() {
            Some(scheme) if *scheme == Scheme::HTTP => {}
            Some(_) => return Err(invalid("only http:// is supported (no TLS to upstreams)")),
            None => return Err(invalid("missing http:// scheme")),
        }
        let authority: Authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| invalid("missing host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid(
                "credentials in the URL are not supported; use api_key",
            ));
        }
        if uri.query().is_some() {
            return Err(invalid("a query string is not supported"));
        }
        let mut prefix = uri.path().trim_end_matches('/');
        prefix = prefix.strip_suffix("/v1").unwrap_or(prefix);
        let at = |path: &str| -> Result<Uri, UpstreamError> {
            let path_and_query = PathAndQuery::try_from(format!("{prefix}{path}"))
                .map_err(|_| invalid("the path prefix is not a valid URL path"))?;
            Uri::builder()
                .scheme(Scheme::HTTP)
                .authority(authority.clone())
                .path_and_query(path_and_query)
                .build()
                .map_err(|_| invalid("the path prefix is not a valid URL path"))
        };
        Ok(Self {
            display: format!("http://{authority}{prefix}"),
            chat: at(Endpoint::ChatCompletions.path())?,
            completions: at(Endpoint::Completions.path())?,
            transcriptions: at(cocoon_protocol::audio::TRANSCRIPTIONS_PATH)?,
            models: at("/v1/models")?,
        })
    }

    fn uri(&self, endpoint: Endpoint) -> &Uri {
        match endpoint {
            Endpoint::ChatCompletions => &self.chat,
            Endpoint::Completions => &self.completions,
        }
    }
}

/// The client, its pool and the request targets of one engine.
#[derive(Debug)]
struct Connection {
    client: Client<HttpConnector, Full<Bytes>>,
    target: Target,
    authorization: Option<HeaderValue>,
}

impl Connection {
    fn new(config: &UpstreamConfig) -> Result<Self, UpstreamError> {
        let target = Target::parse(&config.base_url)?;
        let authorization = match &config.api_key {
            None => None,
            Some(key) => {
                let mut value = HeaderValue::try_from(format!("Bearer {key}"))
                    .map_err(|_| UpstreamError::InvalidApiKey)?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        // Answers stream token by token: small writes must not wait for Nagle.
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Ok(Self {
            client,
            target,
            authorization,
        })
    }

    /// Fetches and reads `GET /v1/models`: the models, and whether the server is llama.cpp.
    async fn discover_models(
        &self,
        config: &UpstreamConfig,
    ) -> Result<(Vec<ModelInfo>, bool), UpstreamError> {
        let url = self.target.models.to_string();
        let unreachable = |reason: String| UpstreamError::ModelsUnreachable {
            url: url.clone(),
            reason,
        };
        let mut request = Request::builder()
            .method(Method::GET)
            .uri(self.target.models.clone())
            .header(header::ACCEPT, "application/json");
        if let Some(authorization) = &self.authorization {
            request = request.header(header::AUTHORIZATION, authorization.clone());
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|error| unreachable(error.to_string()))?;
        let timeout = config.request_timeout;
        let response = tokio::time::timeout(timeout, self.client.request(request))
            .await
            .map_err(|_| unreachable(format!("no answer within {timeout:?}")))?
            .map_err(|error| unreachable(error_chain(&error)))?;
        if !response.status().is_success() {
            return Err(UpstreamError::ModelsStatus {
                url,
                status: response.status().as_u16(),
            });
        }
        let limit = usize::try_from(config.max_body_bytes).unwrap_or(usize::MAX);
        let body =
            tokio::time::timeout(timeout, Limited::new(response.into_body(), limit).collect())
                .await
                .map_err(|_| unreachable(format!("model list not complete within {timeout:?}")))?
                .map_err(|error| unreachable(error.to_string()))?
                .to_bytes();
        parse_model_list(&url, &body)
    }
}

/// What every request of one engine shares.
#[derive(Debug)]
struct Shared {
    connection: Connection,
    config: UpstreamConfig,
    models: Vec<ModelInfo>,
    /// The upstream is a llama.cpp server (discovered from its model list).
    llama_cpp: bool,
    counters: Counters,
}

/// An engine that forwards to an OpenAI-compatible server. Cheap to clone; clones share the
/// connection pool and counters.
#[derive(Debug, Clone)]
pub struct UpstreamEngine {
    shared: Arc<Shared>,
}

impl UpstreamEngine {
    /// An engine serving exactly `config.models`, without contacting the upstream.
    ///
    /// # Errors
    /// [`UpstreamError::InvalidBaseUrl`], [`UpstreamError::InvalidApiKey`], or
    /// [`UpstreamError::NoModels`] when `config.models` is empty (use [`Self::start`] to
    /// discover them).
    pub fn new(config: UpstreamConfig) -> Result<Self, UpstreamError> {
        if config.models.is_empty() {
            return Err(UpstreamError::NoModels);
        }
        let models = config
            .models
            .iter()
            .map(|name| ModelInfo {
                name: name.clone(),
                context_length: None,
                weights: None,
            })
            .collect();
        let connection = Connection::new(&config)?;
        Ok(Self::assemble(connection, config, models, false))
    }

    /// An engine for `config`; when `config.models` is empty, the models are discovered with
    /// `GET /v1/models` (with context lengths where the server tells them, as vLLM's
    /// `max_model_len` does).
    ///
    /// # Errors
    /// As [`Self::new`], and [`UpstreamError::ModelsUnreachable`],
    /// [`UpstreamError::ModelsStatus`], [`UpstreamError::ModelsInvalid`] or
    /// [`UpstreamError::NoModels`] when discovery fails.
    pub async fn start(config: UpstreamConfig) -> Result<Self, UpstreamError> {
        if !config.models.is_empty() {
            return Self::new(config);
        }
        let connection = Connection::new(&config)?;
        let (models, llama_cpp) = connection.discover_models(&config).await?;
        if models.is_empty() {
            return Err(UpstreamError::NoModels);
        }
        Ok(Self::assemble(connection, config, models, llama_cpp))
    }

    fn assemble(
        connection: Connection,
        config: UpstreamConfig,
        models: Vec<ModelInfo>,
        llama_cpp: bool,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                connection,
                config,
                models,
                llama_cpp,
                counters: Counters::default(),
            }),
        }
    }

    /// The engine's counters so far.
    #[must_use]
    pub fn stats(&self) -> UpstreamStats {
        let c = &self.shared.counters;
        UpstreamStats {
            requests: c.requests.load(Ordering::Relaxed),
            active: c.active.load(Ordering::Relaxed),
            error_statuses: c.error_statuses.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            cancelled: c.cancelled.load(Ordering::Relaxed),
            estimated_usage: c.estimated_usage.load(Ordering::Relaxed),
        }
    }

    async fn forward(&self, request: InferenceRequest) -> Result<EngineResponse, EngineError> {
        let shared = &self.shared;
        let InferenceRequest { endpoint, request } = request;
        if !shared.models.iter().any(|m| m.name == request.model) {
            return Err(EngineError::InvalidRequest(format!(
                "model {:?} is not served by this engine",
                request.model
            )));
        }
        let stream = request.stream;
        let mut body = request.into_body();
        if stream && shared.config.force_include_usage {
            ask_for_usage(&mut body);
            if shared.llama_cpp {
                body.insert("timings_per_token".to_owned(), Value::Bool(true));
            }
        }
        let prompt_estimate = estimate_prompt_tokens(endpoint, &body);
        let payload = serde_json::to_vec(&body)
            .map_err(|error| EngineError::InvalidRequest(format!("cannot encode body: {error}")))?;
        let accept = if stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(shared.connection.target.uri(endpoint).clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, accept);
        if let Some(authorization) = &shared.connection.authorization {
            builder = builder.header(header::AUTHORIZATION, authorization.clone());
        }
        let upstream_request = builder
            .body(Full::new(Bytes::from(payload)))
            .map_err(|error| {
                EngineError::InvalidRequest(format!("cannot build request: {error}"))
            })?;

        self.exchange(upstream_request, Metering::Measured(prompt_estimate))
            .await
    }

    /// Forwards a transcription's form, written anew from what the worker checked, to the
    /// upstream's `/v1/audio/transcriptions`; the answer is relayed as it comes and billed at
    /// the worker's measure of the audio.
    async fn forward_transcription(
        &self,
        request: TranscriptionRequest,
    ) -> Result<EngineResponse, EngineError> {
        let shared = &self.shared;
        let TranscriptionRequest { form, usage, .. } = request;
        if !shared.models.iter().any(|m| m.name == form.model) {
            return Err(EngineError::InvalidRequest(format!(
                "model {:?} is not served by this engine",
                form.model
            )));
        }
        let seed = shared.counters.requests.load(Ordering::Relaxed);
        let (content_type, payload) = form.to_multipart(&form.boundary_for(seed));
        let accept = form.response_format.content_type();
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(shared.connection.target.transcriptions.clone())
            .header(header::CONTENT_TYPE, content_type)
            .header(header::ACCEPT, accept);
        if let Some(authorization) = &shared.connection.authorization {
            builder = builder.header(header::AUTHORIZATION, authorization.clone());
        }
        let upstream_request = builder.body(Full::new(payload)).map_err(|error| {
            EngineError::InvalidRequest(format!("cannot build request: {error}"))
        })?;
        self.exchange(upstream_request, Metering::Fixed(usage))
            .await
    }

    /// Sends `upstream_request` and relays its answer, metered as `metering` says.
    async fn exchange(
        &self,
        upstream_request: Request<Full<Bytes>>,
        metering: Metering,
    ) -> Result<EngineResponse, EngineError> {
        let shared = &self.shared;
        shared.counters.requests.fetch_add(1, Ordering::Relaxed);
        let timeout = shared.config.request_timeout;
        let response =
            match tokio::time::timeout(timeout, shared.connection.client.request(upstream_request))
                .await
            {
                Err(_) => {
                    return Err(EngineError::Timeout(format!(
                        "upstream {} sent no response head within {timeout:?}",
                        shared.connection.target.display
                    )));
                }
                Ok(Err(error)) if error.is_connect() => {
                    return Err(EngineError::Unavailable(format!(
                        "cannot connect to upstream {}: {}",
                        shared.connection.target.display,
                        error_chain(&error)
                    )));
                }
                Ok(Err(error)) => {
                    return Err(EngineError::Unavailable(format!(
                        "upstream {} failed before answering: {}",
                        shared.connection.target.display,
                        error_chain(&error)
                    )));
                }
                Ok(Ok(response)) => response,
            };

        let (parts, incoming) = response.into_parts();
        let headers: Vec<(String, String)> = RELAYED_HEADERS
            .iter()
            .filter_map(|name| {
                let value = parts.headers.get(name)?.to_str().ok()?;
                Some((name.as_str().to_owned(), value.to_owned()))
            })
            .collect();
        let metered = parts.status.is_success();
        if !metered {
            shared
                .counters
                .error_statuses
                .fetch_add(1, Ordering::Relaxed);
        }
        let (meter, prompt_estimate) = match metering {
            _ if !metered => (relay::Usage::None, 0),
            Metering::Fixed(usage) => (relay::Usage::Fixed(usage), 0),
            Metering::Measured(prompt_estimate) => {
                let content_type = parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok());
                let meter = UsageMeter::new(BodyFormat::from_content_type(content_type));
                (relay::Usage::Metered(Box::new(meter)), prompt_estimate)
            }
        };
        let (sender, receiver) = mpsc::channel(BODY_CHANNEL_CAPACITY);
        let stop = StopHandle::new();
        let relay = relay::Relay {
            shared: Arc::clone(&self.shared),
            meter,
            prompt_estimate,
            stop: stop.clone(),
        };
        shared.counters.active.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(relay.run(incoming, sender));
        Ok(EngineResponse {
            status: parts.status.as_u16(),
            headers,
            body: receiver,
            stop,
        })
    }
}

impl Engine for UpstreamEngine {
    fn kind(&self) -> &'static str {
        "upstream"
    }

    fn models(&self) -> Vec<ModelInfo> {
        self.shared.models.clone()
    }

    fn run(
        &self,
        request: InferenceRequest,
    ) -> EngineFuture<'_, Result<EngineResponse, EngineError>> {
        Box::pin(self.forward(request))
    }

    fn transcribe(
        &self,
        request: TranscriptionRequest,
    ) -> EngineFuture<'_, Result<EngineResponse, EngineError>> {
        Box::pin(self.forward_transcription(request))
    }
}

/// How an answer's usage is known.
enum Metering {
    /// Read from the answer (reported, or estimated with this prompt size).
    Measured(u64),
    /// Known before the answer: a transcription's audio, as the worker measured it.
    Fixed(TokenUsage),
}

/// Sets `stream_options.include_usage = true`, keeping any other stream options.
fn ask_for_usage(body: &mut Map<String, Value>) {
    let options = body
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Map::new()));
    if !options.is_object() {
        *options = Value::Object(Map::new());
    }
    if let Value::Object(options) = options {
        options.insert("include_usage".to_owned(), Value::Bool(true));
    }
}

/// A rough prompt size for when the upstream reports no usage: the prompt text at
/// [`ESTIMATE_BYTES_PER_TOKEN`] bytes per token, or the exact count of a token-array prompt.
fn estimate_prompt_tokens(endpoint: Endpoint, body: &Map<String, Value>) -> u64 {
    fn text_bytes(value: &Value) -> (u64, u64) {
        // (bytes of text, tokens given as ids)
        match value {
            Value::String(text) => (text.len() as u64, 0),
            Value::Number(_) => (0, 1),
            Value::Array(items) => items
                .iter()
                .map(text_bytes)
                .fold((0, 0), |(b, t), (ib, it)| {
                    (b.saturating_add(ib), t.saturating_add(it))
                }),
            Value::Object(part) => part.get("text").map_or((0, 0), text_bytes),
            Value::Null | Value::Bool(_) => (0, 0),
        }
    }
    let (bytes, tokens) = match endpoint {
        Endpoint::ChatCompletions => match body.get("messages") {
            Some(Value::Array(messages)) => messages
                .iter()
                .filter_map(|m| m.get("content"))
                .map(text_bytes)
                .fold((0u64, 0u64), |(b, t), (mb, mt)| {
                    (b.saturating_add(mb), t.saturating_add(mt))
                }),
            _ => (0, 0),
        },
        Endpoint::Completions => body.get("prompt").map_or((0, 0), text_bytes),
    };
    bytes
        .div_ceil(ESTIMATE_BYTES_PER_TOKEN)
        .saturating_add(tokens)
}

/// Reads an OpenAI model list: `{"data":[{"id":…, "max_model_len"?:…, "owned_by"?:…}, …]}`;
/// answers the models and whether one is `owned_by` llama.cpp's server. `url` is where it came
/// from, for [`UpstreamError::ModelsInvalid`].
fn parse_model_list(url: &str, body: &[u8]) -> Result<(Vec<ModelInfo>, bool), UpstreamError> {
    #[derive(serde::Deserialize)]
    struct Entry {
        id: String,
        #[serde(default)]
        max_model_len: Option<u64>,
        #[serde(default)]
        context_length: Option<u64>,
        #[serde(default)]
        owned_by: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct List {
        data: Vec<Entry>,
    }
    let list: List =
        serde_json::from_slice(body).map_err(|error| UpstreamError::ModelsInvalid {
            url: url.to_owned(),
            reason: error.to_string(),
        })?;
    let llama_cpp = list
        .data
        .iter()
        .any(|entry| entry.owned_by.as_deref() == Some("llamacpp"));
    let models = list
        .data
        .into_iter()
        .map(|entry| ModelInfo {
            name: entry.id,
            context_length: entry.max_model_len.or(entry.context_length),
            weights: None,
        })
        .collect();
    Ok((models, llama_cpp))
}

/// An error and its sources, as one line: hyper's own messages are terse ("client error
/// (Connect)") and the cause is further down.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests;

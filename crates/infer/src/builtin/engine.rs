//! [`BuiltinEngine`]: the [`Engine`] trait on an in-process [`TextModel`], answering OpenAI
//! chat and text completions (whole or streamed as SSE) with exact token usage.
//!
//! Requests are batched continuously by the [`scheduler`](super::scheduler): up to
//! [`BuiltinEngineConfig::max_batch`] run together, sharing each forward pass; a bounded
//! number more may wait, and beyond that requests are refused as overloaded. Dropping the
//! response stops generation at the next step: the body channel is closed and the scheduler
//! frees the request's slot. [`EngineResponse::stop`] stops it at the next step too, but the
//! body then ends with [`crate::BodyEvent::Stopped`] and the tokens used so far.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::{SystemTime, UNIX_EPOCH};

use burn::tensor::backend::Backend;
use serde_json::{Map, Value, json};
use tokio::sync::{Semaphore, mpsc};

use super::json_constraint::JsonConstraint;
use super::scheduler::{self, Admission, Limits};
use super::{BuiltinError, Sampler, SamplingParams, TextModel};
use crate::request::{Input, Params, Prompt, Real, Seed};
use crate::tokenizer::{ChatMessage, Role};
use crate::{
    Endpoint, Engine, EngineError, EngineFuture, EngineResponse, InferenceRequest, ModelInfo,
    StopHandle, TranscriptionRequest,
};

/// Body events buffered between generation and the worker.
const BODY_BUFFER: usize = 64;

/// Settings of a [`BuiltinEngine`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltinEngineConfig {
    /// The model name clients use.
    pub model_name: String,
    /// Completion tokens when a request sets no limit.
    pub default_max_tokens: usize,
    /// Requests that may wait while a full batch runs; beyond that, requests are refused.
    pub max_waiting: usize,
    /// Requests decoded together in one batch.
    pub max_batch: usize,
    /// Prompt tokens one request feeds into one step, so that a long prompt does not stall
    /// the others' decoding for long.
    pub prefill_chunk: usize,
}

impl Default for BuiltinEngineConfig {
    fn default() -> Self {
        Self {
            model_name: "SmolLM2-135M-Instruct".to_owned(),
            default_max_tokens: 512,
            max_waiting: 16,
            max_batch: 8,
            prefill_chunk: 256,
        }
    }
}

/// An engine running a [`TextModel`] in this process.
pub struct BuiltinEngine<B: Backend> {
    model: Arc<TextModel<B>>,
    config: BuiltinEngineConfig,
    /// Admission: running plus waiting requests.
    admitted: Arc<Semaphore>,
    /// Requests for the scheduler thread.
    scheduler: std_mpsc::Sender<Admission>,
    next_id: AtomicU64,
}

impl<B: Backend> std::fmt::Debug for BuiltinEngine<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltinEngine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> BuiltinEngine<B> {
    /// An engine serving `model`, with its scheduler thread started.
    pub fn new(model: TextModel<B>, config: BuiltinEngineConfig) -> Self {
        let max_batch = config.max_batch.max(1);
        let admitted = Arc::new(Semaphore::new(config.max_waiting.saturating_add(max_batch)));
        let model = Arc::new(model);
        let (scheduler, inbox) = std_mpsc::channel();
        let limits = Limits {
            max_batch,
            prefill_chunk: config.prefill_chunk.max(1),
        };
        let for_thread = Arc::clone(&model);
        // If the thread cannot start, `run` reports the engine unavailable (the inbox is
        // dropped with the closure).
        let _ = std::thread::Builder::new()
            .name("cocoon-scheduler".into())
            .spawn(move || scheduler::run(for_thread, limits, inbox));
        Self {
            model,
            config,
            admitted,
            scheduler,
            next_id: AtomicU64::new(0),
        }
    }
}

/// What a request asks for, parsed from its OpenAI body.
#[derive(Debug)]
pub(super) struct Job {
    pub(super) endpoint: Endpoint,
    pub(super) prompt: Vec<u32>,
    pub(super) max_tokens: usize,
    pub(super) sampler: Sampler,
    pub(super) stop: Vec<String>,
    pub(super) stream: bool,
    pub(super) include_usage: bool,
    pub(super) echo_prompt: Option<String>,
    /// The `response_format` the answer is held to.
    pub(super) constraint: Option<JsonConstraint>,
    /// Alternatives per token when log-probabilities are asked for.
    pub(super) logprobs: Option<usize>,
}

impl<B: Backend> Engine for BuiltinEngine<B> {
    fn kind(&self) -> &'static str {
        "builtin"
    }

    fn models(&self) -> Vec<ModelInfo> {
        vec![ModelInfo {
            name: self.config.model_name.clone(),
            context_length: Some(self.model.config().context as u64),
            weights: Some(self.model.weights()),
        }]
    }

    fn run(
        &self,
        request: InferenceRequest,
    ) -> EngineFuture<'_, Result<EngineResponse, EngineError>> {
        Box::pin(async move {
            let job = parse_job(&self.model, &self.config, &request)?;
            let admitted = Arc::clone(&self.admitted)
                .try_acquire_owned()
                .map_err(|_| EngineError::Overloaded("too many requests waiting".into()))?;
            let (tx, rx) = mpsc::channel(BODY_BUFFER);
            let serial = self.next_id.fetch_add(1, Ordering::Relaxed);
            let meta = ResponseMeta {
                id: format!(
                    "{}-{serial:x}{:x}",
                    match job.endpoint {
                        Endpoint::ChatCompletions => "chatcmpl",
                        Endpoint::Completions => "cmpl",
                    },
                    unix_time()
                ),
                created: unix_time(),
                model: self.config.model_name.clone(),
            };
            let content_type = if job.stream {
                "text/event-stream"
            } else {
                "application/json"
            };
            let stop = StopHandle::new();
            self.scheduler
                .send(Admission {
                    job,
                    meta,
                    tx,
                    stop: stop.clone(),
                    permit: admitted,
                })
                .map_err(|_| {
                    EngineError::Unavailable("the scheduler thread is not running".into())
                })?;
            Ok(EngineResponse {
                status: 200,
                headers: vec![("content-type".to_owned(), content_type.to_owned())],
                body: rx,
                stop,
            })
        })
    }

    /// The built-in engine's one hook for speech: its models are text models, so every
    /// transcription is refused naming the model. A speech model (`builtin::whisper`) answers
    /// here once it is wired in.
    fn transcribe(
        &self,
        request: TranscriptionRequest,
    ) -> EngineFuture<'_, Result<EngineResponse, EngineError>> {
        let _ = request;
        let model = self.config.model_name.clone();
        Box::pin(async move { Err(EngineError::DoesNotTranscribe(model)) })
    }
}

fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn invalid(msg: impl Into<String>) -> EngineError {
    EngineError::InvalidRequest(msg.into())
}

/// A refusal of what the body field `param` asks for.
fn unsupported(param: &str, msg: impl Into<String>) -> EngineError {
    EngineError::Unsupported {
        param: param.to_owned(),
        message: msg.into(),
    }
}

fn parse_job<B: Backend>(
    model: &TextModel<B>,
    config: &BuiltinEngineConfig,
    request: &InferenceRequest,
) -> Result<Job, EngineError> {
    let InferenceRequest { endpoint, request } = request;
    let params = &request.params;
    if let Some((param, why)) = super::unhonoured::unhonoured_field(&request.rest) {
        return Err(unsupported(param, why));
    }
    let tokenizer_err = |e: BuiltinError| invalid(e.to_string());
    let (prompt, echo_prompt) = match &request.input {
        Input::Messages(messages) => {
            let messages = parse_messages(messages)?;
            (model.encode_chat(&messages).map_err(tokenizer_err)?, None)
        }
        Input::Prompt(prompt) => {
            let text = match prompt {
                Prompt::Text(text) => text,
                Prompt::Texts(texts) if texts.len() == 1 => &texts[0],
                _ => {
                    return Err(unsupported(
                        "prompt",
                        "this worker's built-in engine takes one text `prompt`, not a list of \
                         several or token ids",
                    ));
                }
            };
            (
                model.encode_text(text).map_err(tokenizer_err)?,
                (params.echo == Some(true)).then(|| text.clone()),
            )
        }
    };
    let input = match request.input {
        Input::Messages(_) => "messages",
        Input::Prompt(_) => "prompt",
    };
    if prompt.is_empty() {
        return Err(unsupported(input, "the prompt is empty"));
    }
    let context = model.config().context;
    if prompt.len() >= context {
        return Err(unsupported(
            input,
            format!(
                "the prompt has {} tokens; the context holds {context}",
                prompt.len()
            ),
        ));
    }
    if params.n.is_some_and(|n| n != 1) || params.best_of.is_some_and(|n| n != 1) {
        let param = if params.n.is_some_and(|n| n != 1) {
            "n"
        } else {
            "best_of"
        };
        return Err(unsupported(
            param,
            "only one choice (`n = 1`) is generated by this worker's built-in engine",
        ));
    }
    let max_tokens = params
        .max_completion()
        .map_or(config.default_max_tokens, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        })
        .min(context - prompt.len());
    let stop: Vec<String> = params
        .stop
        .as_ref()
        .map(|s| s.strings())
        .unwrap_or_default()
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let format = params.response_format.clone().map(Value::Object);
    let constraint = JsonConstraint::from_response_format(format.as_ref())
        .map_err(|e| unsupported("response_format", e.to_string()))?;
    if constraint.is_some() && !stop.is_empty() {
        // A stop string would cut the value short and still report `stop`.
        return Err(unsupported(
            "stop",
            "`stop` cannot be combined with a JSON `response_format` (the value would be cut)",
        ));
    }
    let logprobs = params.top_logprobs_wanted();
    if logprobs.is_some() && echo_prompt.is_some() {
        return Err(unsupported(
            "echo",
            "`echo` with `logprobs` (log-probabilities of the prompt) is not supported by this \
             worker's built-in engine",
        ));
    }
    Ok(Job {
        endpoint: *endpoint,
        prompt,
        max_tokens,
        sampler: Sampler::with_params(sampling(params)),
        stop,
        stream: request.stream,
        include_usage: params.include_usage(),
        echo_prompt,
        constraint,
        logprobs: logprobs.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
    })
}

/// The sampling controls of a request, its defaults where it names none. Besides OpenAI's own
/// fields the engine honours the common extensions `top_k`, `min_p` and `repetition_penalty`
/// (as vLLM and llama.cpp do); their ranges are checked where the request is parsed.
fn sampling(params: &Params) -> SamplingParams {
    let real = |r: &Option<Real>, default: f64| r.as_ref().map_or(default, Real::get) as f32;
    SamplingParams {
        temperature: real(&params.temperature, 1.0),
        // vLLM's -1 is "no limit", as 0 is.
        top_k: params
            .top_k
            .and_then(|k| usize::try_from(k).ok())
            .unwrap_or(0),
        top_p: real(&params.top_p, 1.0),
        min_p: real(&params.min_p, 0.0),
        repetition_penalty: real(&params.repetition_penalty, 1.0),
        presence_penalty: real(&params.presence_penalty, 0.0),
        frequency_penalty: real(&params.frequency_penalty, 0.0),
        seed: params.seed.as_ref().map_or_else(
            || {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64)
            },
            Seed::bits,
        ),
    }
}

fn parse_messages(items: &[Value]) -> Result<Vec<ChatMessage>, EngineError> {
    if items.is_empty() {
        return Err(unsupported("messages", "`messages` is empty"));
    }
    items
        .iter()
        .map(|item| {
            let role = match item.get("role").and_then(Value::as_str) {
                Some("system" | "developer") => Role::System,
                Some("user") => Role::User,
                Some("assistant") => Role::Assistant,
                Some(other) => {
                    return Err(unsupported(
                        "messages",
                        format!("unsupported role `{other}`"),
                    ));
                }
                None => return Err(unsupported("messages", "a message has no `role`")),
            };
            let content = match item.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(Value::Array(parts)) => {
                    let mut text = String::new();
                    for part in parts {
                        match (
                            part.get("type").and_then(Value::as_str),
                            part.get("text").and_then(Value::as_str),
                        ) {
                            (Some("text"), Some(t)) => text.push_str(t),
                            _ => {
                                return Err(unsupported(
                                    "messages",
                                    "only text content parts are supported",
                                ));
                            }
                        }
                    }
                    text
                }
                Some(_) => {
                    return Err(unsupported(
                        "messages",
                        "message `content` must be a string",
                    ));
                }
            };
            Ok(ChatMessage::new(role, content))
        })
        .collect()
}

pub(super) struct ResponseMeta {
    pub(super) id: String,
    pub(super) created: u64,
    pub(super) model: String,
}

/// Holds back text that may be the start of a stop string, and finds stop strings, also
/// when they span several tokens. The stop string itself is never released.
pub(super) struct StopScanner {
    stop: Vec<String>,
    /// Text generated and not yet released.
    held: String,
    stopped: bool,
}

impl StopScanner {
    pub(super) fn new(stop: Vec<String>) -> Self {
        Self {
            stop,
            held: String::new(),
            stopped: false,
        }
    }

    /// Whether a stop string was found.
    pub(super) fn stopped(&self) -> bool {
        self.stopped
    }

    /// The text held back (when generation ends without a stop string).
    pub(super) fn take_held(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Adds `piece`; returns the text safe to release and whether a stop string ended it.
    /// After a stop string, everything is swallowed.
    pub(super) fn push(&mut self, piece: &str) -> (String, bool) {
        if self.stopped {
            return (String::new(), true);
        }
        self.held.push_str(piece);
        if self.stop.is_empty() {
            return (std::mem::take(&mut self.held), false);
        }
        if let Some(at) = self
            .stop
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min()
        {
            let out = self.held[..at].to_owned();
            self.held.clear();
            self.stopped = true;
            return (out, true);
        }
        // Keep the longest tail that is a proper prefix of a stop string.
        let mut keep = 0;
        for s in &self.stop {
            for (i, _) in s.char_indices().skip(1) {
                if i > keep && self.held.ends_with(&s[..i]) {
                    keep = i;
                }
            }
        }
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_owned();
        self.held.drain(..cut);
        (out, false)
    }
}

pub(super) fn stream_chunk(
    meta: &ResponseMeta,
    chat: bool,
    delta: Value,
    finish: Option<&str>,
) -> String {
    stream_chunk_with(meta, chat, delta, finish, Value::Null)
}

/// A streamed chunk carrying `logprobs` for the tokens of its text.
pub(super) fn stream_chunk_with(
    meta: &ResponseMeta,
    chat: bool,
    delta: Value,
    finish: Option<&str>,
    logprobs: Value,
) -> String {
    let mut choice = Map::new();
    choice.insert("index".into(), json!(0));
    if chat {
        choice.insert("delta".into(), delta);
    } else {
        choice.insert("text".into(), delta);
    }
    choice.insert("logprobs".into(), logprobs);
    choice.insert("finish_reason".into(), json!(finish));
    let chunk = json!({
        "id": meta.id,
        "object": if chat { "chat.completion.chunk" } else { "text_completion" },
        "created": meta.created,
        "model": meta.model,
        "choices": [Value::Object(choice)],
    });
    format!("data: {chunk}\n\n")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn scan(stop: &[&str], pieces: &[&str]) -> (Vec<String>, bool, String) {
        let mut s = StopScanner::new(stop.iter().map(|s| (*s).to_owned()).collect());
        let mut out = Vec::new();
        for p in pieces {
            let (release, stopped) = s.push(p);
            out.push(release);
            if stopped {
                return (out, true, s.held);
            }
        }
        (out, false, s.held)
    }

    #[test]
    fn stop_string_split_across_pieces_is_held_then_cut() {
        let (out, stopped, held) = scan(&["\n\n"], &["Hello", " world\n", "\nmore"]);
        assert_eq!(out, vec!["Hello", " world", ""]);
        assert!(stopped);
        assert_eq!(held, "");
    }

    #[test]
    fn false_alarm_is_released_later() {
        let (out, stopped, held) = scan(&["END"], &["a E", "N", "x", "y"]);
        assert_eq!(out.concat(), "a ENxy");
        assert_eq!(out[0], "a ");
        assert!(!stopped);
        assert_eq!(held, "");
    }

    fn sampling_of(mut body: Value) -> Result<SamplingParams, crate::request::RequestError> {
        body["model"] = json!("m");
        body["prompt"] = json!("p");
        let request = crate::request::OpenAiRequest::from_value(Endpoint::Completions, body, &[])?;
        Ok(sampling(&request.params))
    }

    #[test]
    fn request_fields_map_to_sampling_params() {
        let p = sampling_of(json!({
            "temperature": 0.5, "top_p": 0.9, "top_k": 40, "min_p": 0.05,
            "repetition_penalty": 1.1, "presence_penalty": 0.5, "frequency_penalty": -0.25,
            "seed": 1234,
        }))
        .unwrap();
        assert_eq!(
            p,
            SamplingParams {
                temperature: 0.5,
                top_k: 40,
                top_p: 0.9,
                min_p: 0.05,
                repetition_penalty: 1.1,
                presence_penalty: 0.5,
                frequency_penalty: -0.25,
                seed: 1234,
            }
        );
        let defaults = sampling_of(json!({"seed": 1, "top_k": -1})).unwrap();
        assert_eq!(
            defaults,
            SamplingParams {
                seed: 1,
                ..SamplingParams::default()
            }
        );
        // A negative seed is a valid 64-bit pattern.
        assert_eq!(sampling_of(json!({"seed": -1})).unwrap().seed, u64::MAX);
    }

    #[test]
    fn no_stop_strings_release_everything() {
        let (out, stopped, _) = scan(&[], &["a", "b"]);
        assert_eq!(out, vec!["a", "b"]);
        assert!(!stopped);
    }
}

//! Serving one request (`proxy.runQueryEx`, `ext.workerRunQuery`, or the inside of an
//! `ext.workerRunSealedQuery`): capacity check, body validation with the token limit the proxy
//! reserved, the engine call, and the answer stream (`proxy.queryAnswerEx`, parts, and a final
//! part with token usage). A cancel (`ext.cancelQuery`) or a lost connection stops the engine;
//! a cancel is then acknowledged with error [`ext::CANCELLED_ERROR_CODE`] and the tokens used
//! until the engine stopped, which the proxy bills. A transcription's form is parsed and its
//! WAV audio measured here, and billed at that measure (see [`validate_transcription`]).
//!
//! A reference proxy that hands over a `private_key` (`proxy.runQueryEx` flag bit 1) may send a
//! body in the reference's own encryption (`"is_encrypted": "v1"`): it is opened before
//! validation, and the answer is encrypted back (the "w" direction) as it streams out; see
//! `cocoon_refv1` for which parts of an answer that covers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cocoon_attest::ReceiptClaims;
use cocoon_infer::{
    BodyEvent, Endpoint, EngineError, EngineResponse, InferenceRequest, TokenUsage,
    TranscriptionRequest,
};
use cocoon_net::Connection;
use cocoon_net::LocalIdentity;
use cocoon_protocol::audio::{FormLimits, TRANSCRIPTIONS_PATH, TranscriptionForm, WavAudio};
use cocoon_protocol::messages::{TokensUsed, ext, http, proxy};
use cocoon_protocol::tl::{Int256, TlConstructor};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;

use cocoon_refv1::{AnswerCipher, AnswerEncryptor, AnswerFraming, Ed25519Seed};
use cocoon_seal::SystemRng;

use crate::config::base_model;
use crate::limits;
use crate::state::{Served, WorkerState, lock};

/// How long a stopped engine has to report the tokens it used before the worker reports zero.
const STOP_DEADLINE: Duration = Duration::from_secs(5);

/// What a version 3 proxy says about a request beyond its body: the completion tokens its
/// reservation covers, and the client's request id and sealed envelope that the receipt names.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Binding {
    /// Most completion tokens over all choices; `None` from version 2 proxies.
    pub(crate) token_limit: Option<i64>,
    /// The client's id of the request; `None` from version 2 proxies (then no receipt).
    pub(crate) client_request_id: Option<Int256>,
    /// SHA-256 of the sealed envelope as received, for sealed requests.
    pub(crate) envelope_sha256: Option<[u8; 32]>,
    /// The proxy says the client declared a transcription (`AUDIO_UNITS_FLAG`): it will be
    /// charged as audio, so it must be one, and a transcription must be declared.
    pub(crate) audio: bool,
}

/// Request fields the worker passes to engines; anything else is refused.
const ALLOWED_FIELDS: &[&str] = &[
    "model",
    "messages",
    "prompt",
    "suffix",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "n",
    "stream",
    "stream_options",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "user",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning_effort",
    "echo",
    "best_of",
    "ignore_eos",
    "min_tokens",
    "chat_template_kwargs",
    "metadata",
    "store",
    "service_tier",
    "modalities",
    "prediction",
    "audio",
    "web_search_options",
];

/// A refusal, with the HTTP-style code the client will turn into a status.
#[derive(Debug)]
struct Refusal {
    code: i32,
    message: String,
}

fn refuse(code: i32, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

pub(crate) async fn serve(
    state: Arc<WorkerState>,
    conn: Connection,
    version: i32,
    q: proxy::RunQueryEx,
    binding: Binding,
    sealer: Option<crate::sealed::AnswerSealer>,
) {
    let start = cocoon_net::unix_time();
    let started = Instant::now();
    state.counters.requests.fetch_add(1, Ordering::Relaxed);
    // The model and engine of this request, whatever model changes happen while it runs.
    let served = state.served();
    let request_id = q.request_id;
    let debug = q.enable_debug.unwrap_or(false);
    let mut reply = Reply {
        conn: &conn,
        version,
        request_id,
        start,
        debug,
        receipt: None,
        identity: state.tls.identity(),
        model: served.model.clone(),
        weights: served.weights.map_or([0; 32], |w| w.0),
        sealer,
        refv1: None,
    };

    if !state.enabled.load(Ordering::Acquire) {
        state.counters.rejected.fetch_add(1, Ordering::Relaxed);
        reply
            .fail(refuse(503, "worker is disabled"), TokenUsage::default())
            .await;
        return;
    }
    let Some(_slot) = state.try_acquire() else {
        state.counters.rejected.fetch_add(1, Ordering::Relaxed);
        state.counters.busy_refusals.fetch_add(1, Ordering::Relaxed);
        reply
            .fail(
                refuse(429, "worker is at max_active_requests"),
                TokenUsage::default(),
            )
            .await;
        return;
    };
    let query = match open_reference_encrypted(&q) {
        Ok((query, cipher)) => {
            reply.refv1 = cipher.map(|cipher| RefV1Answer {
                cipher,
                encryptor: std::sync::Mutex::new(None),
            });
            query
        }
        Err(refusal) => {
            state.counters.rejected.fetch_add(1, Ordering::Relaxed);
            reply.fail(refusal, TokenUsage::default()).await;
            return;
        }
    };
    let request = match validate(&state, &served, &query, binding) {
        Ok((r, request_hash)) => {
            if version >= cocoon_protocol::version::SEALED_VERSION
                && let Some(client_request_id) = binding.client_request_id
            {
                reply.receipt = Some(ReceiptBasis {
                    request_hash,
                    client_request_id: client_request_id.0,
                    envelope_hash: binding.envelope_sha256,
                });
            }
            r
        }
        Err(refusal) => {
            state.counters.rejected.fetch_add(1, Ordering::Relaxed);
            reply.fail(refusal, TokenUsage::default()).await;
            return;
        }
    };

    let cancel = CancellationToken::new();
    lock(&state.in_flight).insert(request_id, cancel.clone());
    let watch = Watch {
        cancel: &cancel,
        conn: &conn,
    };
    let outcome = answer(&served, &reply, request, &watch).await;
    lock(&state.in_flight).remove(&request_id);
    let c = &state.counters;
    match outcome {
        Outcome::Done { usage, upstream } => {
            c.succeeded.fetch_add(1, Ordering::Relaxed);
            // What this worker added: its whole time on the request less the engine's.
            c.overhead
                .observe(started.elapsed().saturating_sub(upstream));
            c.prompt_tokens
                .fetch_add(usage.prompt_tokens, Ordering::Relaxed);
            c.completion_tokens
                .fetch_add(usage.completion_tokens, Ordering::Relaxed);
        }
        Outcome::Failed => {
            c.failed.fetch_add(1, Ordering::Relaxed);
        }
        Outcome::Cancelled(usage) => {
            // Reported to the proxy, which bills them like any other tokens.
            c.cancelled.fetch_add(1, Ordering::Relaxed);
            c.prompt_tokens
                .fetch_add(usage.prompt_tokens, Ordering::Relaxed);
            c.completion_tokens
                .fetch_add(usage.completion_tokens, Ordering::Relaxed);
        }
        Outcome::Lost => {
            c.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

enum Outcome {
    Done {
        usage: TokenUsage,
        /// From asking the engine to the end of its answer reaching this task.
        upstream: Duration,
    },
    Failed,
    /// Stopped on the proxy's cancel, and acknowledged with this usage.
    Cancelled(TokenUsage),
    /// The connection went away: nobody is left to tell.
    Lost,
}

/// Why the worker stops an answer before the engine ends it.
enum Interrupt {
    /// `ext.cancelQuery`.
    Cancel,
    /// The proxy connection closed.
    ConnectionLost,
}

/// What can interrupt a running request.
struct Watch<'a> {
    cancel: &'a CancellationToken,
    conn: &'a Connection,
}

impl Watch<'_> {
    /// Resolves when the request is cancelled or its connection closes.
    async fn fired(&self) -> Interrupt {
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => Interrupt::Cancel,
            () = self.conn.closed() => Interrupt::ConnectionLost,
        }
    }
}

/// With a `private_key` from the proxy and a body in the reference's encryption: the request
/// with its body opened, and the cipher for the answer. Otherwise the query as it came.
fn open_reference_encrypted(
    q: &proxy::RunQueryEx,
) -> Result<(Bytes, Option<AnswerCipher>), Refusal> {
    let Some(key) = q.private_key else {
        return Ok((q.query.clone(), None));
    };
    let mut req = http::Request::from_boxed_bytes(q.query.clone())
        .map_err(|e| refuse(400, format!("bad http.request: {e}")))?;
    let Ok(body) = cocoon_refv1::parse_body(&req.payload) else {
        // Not a JSON object: validation refuses it with its own message.
        return Ok((q.query.clone(), None));
    };
    if !cocoon_refv1::is_encrypted(&body) {
        return Ok((q.query.clone(), None));
    }
    let opened = cocoon_refv1::open_request(body, &Ed25519Seed::from_bytes(key.0))
        .map_err(|e| refuse(400, format!("cannot open the encrypted request: {e}")))?;
    req.payload = Bytes::from(serde_json::to_vec(&opened.body).unwrap_or_default());
    for header in &mut req.headers {
        if header.name.eq_ignore_ascii_case("content-length") {
            header.value = req.payload.len().to_string();
        }
    }
    Ok((Bytes::from(req.to_boxed_bytes()), Some(opened.answers)))
}

/// Decodes and checks the `http.request`, returning what the engine should run. With a
/// `token_limit` (version 3 proxies) the body is made to ask for no more completion tokens than
/// the proxy's reservation covers (see [`limits`]).
fn validate(
    state: &WorkerState,
    served: &Served,
    query: &Bytes,
    binding: Binding,
) -> Result<(Job, [u8; 32]), Refusal> {
    let token_limit = binding.token_limit;
    let req = http::Request::from_boxed_bytes(query.clone())
        .map_err(|e| refuse(400, format!("bad http.request: {e}")))?;
    if !req.method.eq_ignore_ascii_case("POST") {
        return Err(refuse(405, format!("method {} not allowed", req.method)));
    }
    let transcription = req.url.split('?').next() == Some(TRANSCRIPTIONS_PATH);
    // A version 3 proxy charges a declared transcription as audio only (no completion
    // tokens): what is declared must be what runs, both ways.
    if token_limit.is_some() && transcription != binding.audio {
        return Err(refuse(
            400,
            if binding.audio {
                "declared a transcription, but it is not one".to_owned()
            } else {
                "a transcription must be declared as one (its audio units)".to_owned()
            },
        ));
    }
    if transcription {
        let transcription = validate_transcription(state, served, &req, token_limit)?;
        return Ok((
            Job::Transcribe(transcription),
            cocoon_attest::receipt::body_hash(&req.payload),
        ));
    }
    let endpoint = Endpoint::from_path(&req.url)
        .ok_or_else(|| refuse(404, format!("unknown endpoint {}", req.url)))?;
    if req.payload.len() > state.config.max_request_bytes {
        return Err(refuse(
            413,
            format!(
                "request body of {} bytes exceeds {}",
                req.payload.len(),
                state.config.max_request_bytes
            ),
        ));
    }
    let body: Value = serde_json::from_slice(&req.payload)
        .map_err(|e| refuse(400, format!("request body is not JSON: {e}")))?;
    let Value::Object(mut body) = body else {
        return Err(refuse(400, "request body must be a JSON object"));
    };
    for key in body.keys() {
        if !ALLOWED_FIELDS.contains(&key.as_str())
            && !state.config.extra_allowed_fields.iter().any(|f| f == key)
        {
            return Err(refuse(400, format!("field `{key}` is not accepted")));
        }
    }
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| refuse(400, "`model` must be a string"))?;
    if base_model(model) != base_model(&served.model) {
        return Err(refuse(404, format!("model `{model}` is not served here")));
    }
    match endpoint {
        Endpoint::ChatCompletions if !body.get("messages").is_some_and(Value::is_array) => {
            return Err(refuse(400, "`messages` must be an array"));
        }
        Endpoint::Completions if body.get("prompt").is_none() => {
            return Err(refuse(400, "`prompt` is required"));
        }
        _ => {}
    }
    match limits::enforce(&mut body, token_limit, limits::SUPPORTED_CHOICES) {
        Ok(budget) if budget.clamped => tracing::debug!(
            per_choice = budget.per_choice,
            "completion tokens clamped to the proxy's reservation"
        ),
        Ok(_) => {}
        Err(e) => return Err(refuse(400, e.to_string())),
    }
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(refuse(400, "`stream` must be a boolean")),
    };
    if let Some(engine_model) = served.engine.models().first() {
        body.insert("model".into(), Value::String(engine_model.name.clone()));
    }
    Ok((
        Job::Infer(InferenceRequest {
            endpoint,
            body: Map::from_iter(body),
            stream,
        }),
        cocoon_attest::receipt::body_hash(&req.payload),
    ))
}

/// What the engine is asked to do.
enum Job {
    /// A chat or text completion.
    Infer(InferenceRequest),
    /// A transcription.
    Transcribe(TranscriptionRequest),
}

/// Checks a transcription's form again (the client's check is not trusted), measures its audio
/// and bills it at this worker's `audio_tokens_per_second`. With a token limit (version 3
/// proxies) the limit is the audio's units as the client declared them, which bound the charge
/// at the proxy: audio this worker measures longer is refused rather than served at a loss.
fn validate_transcription(
    state: &WorkerState,
    served: &Served,
    req: &http::Request,
    token_limit: Option<i64>,
) -> Result<TranscriptionRequest, Refusal> {
    let max_audio = state.config.max_audio_bytes;
    let form_limit = max_audio.saturating_add(FORM_ALLOWANCE);
    if req.payload.len() > form_limit {
        return Err(refuse(
            413,
            format!(
                "transcription form of {} bytes exceeds {form_limit}",
                req.payload.len()
            ),
        ));
    }
    let content_type = req.header("content-type").ok_or_else(|| {
        refuse(
            400,
            "a transcription needs a multipart/form-data content type",
        )
    })?;
    let limits = FormLimits {
        max_file_bytes: max_audio,
    };
    let mut form = TranscriptionForm::parse(content_type, &req.payload, limits).map_err(|e| {
        let code = if matches!(e, cocoon_protocol::Error::FormFieldTooLarge { .. }) {
            413
        } else {
            400
        };
        refuse(code, e.to_string())
    })?;
    if base_model(&form.model) != base_model(&served.model) {
        return Err(refuse(
            404,
            format!("model `{}` is not served here", form.model),
        ));
    }
    let audio = WavAudio::parse(&form.file.data).map_err(|e| refuse(400, e.to_string()))?;
    let rate = state.config.audio_tokens_per_second;
    let units = audio.units(rate);
    if let Some(limit) = token_limit
        && i64::try_from(units).unwrap_or(i64::MAX) > limit
    {
        return Err(refuse(
            400,
            format!(
                "the audio lasts {:.3} s, {units} units at {rate} a second, more than the \
                 {limit} units the request declared",
                audio.seconds()
            ),
        ));
    }
    if let Some(engine_model) = served.engine.models().first() {
        form.model.clone_from(&engine_model.name);
    }
    Ok(TranscriptionRequest {
        form,
        audio,
        usage: TokenUsage {
            prompt_tokens: units,
            ..TokenUsage::default()
        },
    })
}

/// Bytes a transcription form may have beyond its audio: its text fields and part headers.
const FORM_ALLOWANCE: usize = 1 << 20;

async fn answer(served: &Served, reply: &Reply<'_>, job: Job, watch: &Watch<'_>) -> Outcome {
    let asked = Instant::now();
    let run = match job {
        Job::Infer(request) => served.engine.run(request),
        Job::Transcribe(request) => served.engine.transcribe(request),
    };
    let started = tokio::select! {
        r = run => r,
        // No answer head yet: dropping the engine's future abandons the request, and nothing
        // was generated that could be reported.
        interrupt = watch.fired() => {
            return interrupted(reply, interrupt, None).await;
        }
    };
    let mut response = match started {
        Ok(r) => r,
        Err(e) => {
            let code = match &e {
                EngineError::InvalidRequest(_) | EngineError::DoesNotTranscribe(_) => 400,
                EngineError::Overloaded(_) => 429,
                EngineError::Timeout(_) => 504,
                _ => 502,
            };
            reply
                .fail(refuse(code, e.to_string()), TokenUsage::default())
                .await;
            return Outcome::Failed;
        }
    };
    // An engine that fails on its side (5xx) did not answer: report an error, so the proxy can
    // try another worker. Client errors (4xx) are answers and go through as they are.
    if response.status >= 500 {
        let message = engine_error_message(&mut response).await;
        let code = match response.status {
            503 | 504 => i32::from(response.status),
            _ => 502,
        };
        reply
            .fail(refuse(code, message), TokenUsage::default())
            .await;
        return Outcome::Failed;
    }
    // The first answer carries the response head and the first body bytes.
    let (payload, tail) = tokio::select! {
        batch = next_batch(&mut response.body) => batch,
        interrupt = watch.fired() => return interrupted(reply, interrupt, Some(response)).await,
    };
    // Updated at each batch: when the end comes, the time the engine took to give all of it.
    let mut upstream_time = asked.elapsed();
    if payload.is_empty() {
        match tail {
            Tail::Failed(error, usage) => {
                reply.fail(refuse(502, error), usage).await;
                return Outcome::Failed;
            }
            Tail::Closed => {
                let refusal = refuse(502, "engine ended without an answer");
                reply.fail(refusal, TokenUsage::default()).await;
                return Outcome::Failed;
            }
            Tail::Stopped(usage) => return unasked_stop(reply, usage).await,
            Tail::More | Tail::End(_) => {}
        }
    }
    let mut answer_hash = Sha256::new();
    answer_hash.update(&payload);
    let mut headers = response.headers.clone();
    if let Some(refv1) = &reply.refv1 {
        refv1.start(&mut headers);
    }
    let payload = match reply.encrypt_for_reference(payload, tail.is_end()) {
        Ok(p) => p,
        Err(refusal) => {
            reply.fail(refusal, TokenUsage::default()).await;
            return Outcome::Failed;
        }
    };
    if let Tail::End(usage) = &tail {
        reply.send_receipt(*usage, answer_hash.clone()).await;
    }
    let head = http::Response {
        http_version: "HTTP/1.1".into(),
        status_code: i32::from(response.status),
        reason: reason_phrase(response.status).into(),
        headers: headers
            .iter()
            .map(|(n, v)| http::Header {
                name: n.clone(),
                value: v.clone(),
            })
            .collect(),
        payload,
    };
    let Some(answer) = reply.outgoing(Bytes::from(head.to_boxed_bytes()), tail.is_end()) else {
        return Outcome::Failed;
    };
    let first = proxy::QueryAnswerEx {
        request_id: reply.request_id,
        answer,
        flags: 0,
        final_info: match &tail {
            Tail::End(u) => Some(reply.final_info(*u)),
            _ => None,
        },
    };
    if reply
        .conn
        .send_packet(Bytes::from(first.to_boxed_bytes()))
        .await
        .is_err()
    {
        return Outcome::Lost;
    }
    let mut tail = tail;
    loop {
        match tail {
            Tail::End(usage) => {
                return Outcome::Done {
                    usage,
                    upstream: upstream_time,
                };
            }
            Tail::Failed(error, usage) => {
                reply.fail(refuse(502, error), usage).await;
                return Outcome::Failed;
            }
            Tail::Closed => {
                let refusal = refuse(502, "engine stopped mid-answer");
                reply.fail(refusal, TokenUsage::default()).await;
                return Outcome::Failed;
            }
            Tail::Stopped(usage) => return unasked_stop(reply, usage).await,
            Tail::More => {}
        }
        let (data, next) = tokio::select! {
            batch = next_batch(&mut response.body) => batch,
            interrupt = watch.fired() => {
                return interrupted(reply, interrupt, Some(response)).await;
            }
        };
        upstream_time = asked.elapsed();
        answer_hash.update(&data);
        let data = match reply.encrypt_for_reference(data, next.is_end()) {
            Ok(d) => d,
            Err(refusal) => {
                reply.fail(refusal, TokenUsage::default()).await;
                return Outcome::Failed;
            }
        };
        if let Tail::End(usage) = &next {
            reply.send_receipt(*usage, answer_hash.clone()).await;
        }
        let fin = match &next {
            Tail::End(u) => Some(reply.final_info(*u)),
            _ => None,
        };
        if !data.is_empty() || fin.is_some() {
            let Some(data) = reply.outgoing(data, fin.is_some()) else {
                return Outcome::Failed;
            };
            let part = proxy::QueryAnswerPartEx {
                request_id: reply.request_id,
                answer: data,
                flags: 0,
                final_info: fin,
            };
            if reply
                .conn
                .send_packet(Bytes::from(part.to_boxed_bytes()))
                .await
                .is_err()
            {
                return Outcome::Lost;
            }
        }
        tail = next;
    }
}

/// Stops the engine's answer (when it has one), learns the tokens it used, and acknowledges a
/// cancel with [`ext::CANCELLED_ERROR_CODE`] and that usage. After a lost connection the engine
/// is stopped all the same, but nobody is left to tell.
async fn interrupted(
    reply: &Reply<'_>,
    interrupt: Interrupt,
    response: Option<EngineResponse>,
) -> Outcome {
    let usage = match response {
        Some(response) => stopped_usage(response).await,
        None => TokenUsage::default(),
    };
    match interrupt {
        Interrupt::ConnectionLost => Outcome::Lost,
        Interrupt::Cancel => {
            if reply.conn.is_closed() {
                return Outcome::Lost;
            }
            let refusal = refuse(ext::CANCELLED_ERROR_CODE, "the request was cancelled");
            reply.fail(refusal, usage).await;
            Outcome::Cancelled(usage)
        }
    }
}

/// Asks the engine to stop and waits, at most [`STOP_DEADLINE`], for the usage that ends its
/// body; body bytes still queued are discarded. An engine that does not say reports zero (and
/// is logged): the worker has no count of its own it could trust more.
async fn stopped_usage(mut response: EngineResponse) -> TokenUsage {
    response.stop.stop();
    let wait = async {
        while let Some(event) = response.body.recv().await {
            match event {
                BodyEvent::Data(_) => {}
                // An answer that ended (or failed) just before the stop reports its usage too.
                BodyEvent::Stopped(usage)
                | BodyEvent::End(usage)
                | BodyEvent::Failed { usage, .. } => return Some(usage),
            }
        }
        None
    };
    match tokio::time::timeout(STOP_DEADLINE, wait).await {
        Ok(Some(usage)) => usage,
        Ok(None) => {
            tracing::warn!("the engine ended a stopped answer without its usage; reporting 0");
            TokenUsage::default()
        }
        Err(_) => {
            tracing::warn!(
                "the engine did not report the usage of a stopped answer within {STOP_DEADLINE:?}; \
                 reporting 0"
            );
            TokenUsage::default()
        }
    }
}

/// The engine stopped although nobody asked it to: an engine fault, reported as a failure with
/// the usage it gave.
async fn unasked_stop(reply: &Reply<'_>, usage: TokenUsage) -> Outcome {
    reply
        .fail(refuse(502, "the engine stopped the answer unasked"), usage)
        .await;
    Outcome::Failed
}

/// What ended a batch of body bytes.
enum Tail {
    /// More may come.
    More,
    /// The answer is complete.
    End(TokenUsage),
    /// The engine failed.
    Failed(String, TokenUsage),
    /// The engine dropped the stream without saying how it ended.
    Closed,
    /// The engine stopped early.
    Stopped(TokenUsage),
}

impl Tail {
    fn is_end(&self) -> bool {
        matches!(self, Self::End(_))
    }
}

/// Largest batch of body bytes sent as one part.
const MAX_BATCH: usize = 256 * 1024;

/// Waits for the next body event, then takes every data event already queued behind it, so a
/// burst from the engine travels as one packet instead of many; never waits for more.
async fn next_batch(rx: &mut tokio::sync::mpsc::Receiver<BodyEvent>) -> (Bytes, Tail) {
    let first = match rx.recv().await {
        Some(BodyEvent::Data(d)) => d,
        Some(BodyEvent::End(u)) => return (Bytes::new(), Tail::End(u)),
        Some(BodyEvent::Failed { error, usage }) => {
            return (Bytes::new(), Tail::Failed(error, usage));
        }
        Some(BodyEvent::Stopped(usage)) => return (Bytes::new(), Tail::Stopped(usage)),
        None => return (Bytes::new(), Tail::Closed),
    };
    let mut joined: Option<bytes::BytesMut> = None;
    let mut tail = Tail::More;
    while joined.as_ref().map_or(first.len(), |j| j.len()) < MAX_BATCH {
        match rx.try_recv() {
            Ok(BodyEvent::Data(d)) => joined
                .get_or_insert_with(|| bytes::BytesMut::from(&first[..]))
                .extend_from_slice(&d),
            Ok(BodyEvent::End(u)) => {
                tail = Tail::End(u);
                break;
            }
            Ok(BodyEvent::Failed { error, usage }) => {
                tail = Tail::Failed(error, usage);
                break;
            }
            Ok(BodyEvent::Stopped(usage)) => {
                tail = Tail::Stopped(usage);
                break;
            }
            Err(_) => break,
        }
    }
    (joined.map_or(first, bytes::BytesMut::freeze), tail)
}

/// The error message of a failed engine answer (OpenAI's `error.message` when present).
async fn engine_error_message(response: &mut cocoon_infer::EngineResponse) -> String {
    const LIMIT: usize = 16 * 1024;
    let mut body = Vec::new();
    while let Some(event) = response.body.recv().await {
        match event {
            BodyEvent::Data(d) => {
                body.extend_from_slice(&d[..d.len().min(LIMIT.saturating_sub(body.len()))]);
                if body.len() >= LIMIT {
                    break;
                }
            }
            BodyEvent::End(_) | BodyEvent::Failed { .. } | BodyEvent::Stopped(_) => break,
        }
    }
    let from_json = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        v.pointer("/error/message")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let text = from_json.unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
    format!(
        "engine answered {}: {}",
        response.status,
        if text.is_empty() { "no details" } else { &text }
    )
}

fn final_info(version: i32, usage: TokenUsage, start: f64, debug: bool) -> proxy::QueryFinalInfo {
    let timings = version >= 2;
    let end = cocoon_net::unix_time();
    proxy::QueryFinalInfo {
        flags: 0,
        tokens_used: tokens_used(usage),
        worker_debug: debug.then(|| format!("worker end {end:.6}")),
        worker_start_time: timings.then_some(start),
        worker_end_time: timings.then_some(end),
    }
}

/// Converts engine usage to the protocol's token categories.
pub(crate) fn tokens_used(u: TokenUsage) -> TokensUsed {
    let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    TokensUsed {
        prompt_tokens_used: i(u.prompt_tokens),
        cached_tokens_used: i(u.cached_tokens),
        completion_tokens_used: i(u.completion_tokens),
        reasoning_tokens_used: i(u.reasoning_tokens),
        total_tokens_used: i(u.total()),
    }
}

/// What a receipt names of its request, known before the answer.
#[derive(Debug, Clone, Copy)]
struct ReceiptBasis {
    /// SHA-256 of the request body.
    request_hash: [u8; 32],
    /// The client's request id.
    client_request_id: [u8; 32],
    /// SHA-256 of the sealed envelope, for sealed requests.
    envelope_hash: Option<[u8; 32]>,
}

/// Where and how a request's answers and errors go.
struct Reply<'a> {
    conn: &'a Connection,
    version: i32,
    request_id: Int256,
    start: f64,
    debug: bool,
    /// What the receipt binds, when the proxy takes receipts (version 3).
    receipt: Option<ReceiptBasis>,
    identity: &'a Arc<LocalIdentity>,
    /// The model announced, named in receipts.
    model: String,
    /// The weights served, named in receipts (zeros: unpinned, local mode only).
    weights: [u8; 32],
    /// The answer stream's sealer, for a sealed request (version 3).
    sealer: Option<crate::sealed::AnswerSealer>,
    /// The answer's encryption, for a request in the reference's encryption.
    refv1: Option<RefV1Answer>,
}

/// The reference-encryption state of one answer: the cipher, then (once the head tells the
/// framing) the streaming encryptor.
struct RefV1Answer {
    cipher: AnswerCipher,
    encryptor: std::sync::Mutex<Option<AnswerEncryptor>>,
}

impl RefV1Answer {
    /// Picks the framing from the answer's headers; the body's length changes, so any
    /// `Content-Length` goes.
    fn start(&self, headers: &mut Vec<(String, String)>) {
        let content_type = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.as_str());
        let framing = AnswerFraming::from_content_type(content_type);
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case("content-length"));
        *lock(&self.encryptor) = Some(AnswerEncryptor::new(self.cipher.clone(), framing));
    }
}

impl Reply<'_> {
    /// Final info for `usage`, with times when the version carries them.
    fn final_info(&self, usage: TokenUsage) -> proxy::QueryFinalInfo {
        final_info(self.version, usage, self.start, self.debug)
    }

    /// Signs and sends the receipt for a completed answer, before its final part, so the
    /// client holds it when the answer ends. A node without verifiable evidence sends none.
    async fn send_receipt(&self, usage: TokenUsage, answer_hash: Sha256) {
        let Some(basis) = self.receipt else {
            return;
        };
        let model = self.model.clone();
        let claims = ReceiptClaims {
            request_hash: basis.request_hash,
            client_request_id: basis.client_request_id,
            envelope_hash: basis.envelope_hash,
            answer_hash: answer_hash.finalize().into(),
            model_hash: self.weights,
            model,
            prompt_tokens: usage.prompt_tokens,
            cached_tokens: usage.cached_tokens,
            completion_tokens: usage.completion_tokens,
            reasoning_tokens: usage.reasoning_tokens,
            worker_image_hash: [0; 32],
            issued_at: self.identity.clock().now_unix(),
        };
        let receipt = match self.identity.sign_receipt(claims) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("no receipt: {e}");
                return;
            }
        };
        let msg = ext::QueryReceipt {
            request_id: self.request_id,
            receipt: Bytes::from(receipt.to_bytes()),
        };
        let _ = self
            .conn
            .send_packet(Bytes::from(msg.to_boxed_bytes()))
            .await;
    }

    /// Answer body bytes encrypted for a reference-encrypted request (unchanged otherwise);
    /// `last` flushes what the encryptor still holds.
    fn encrypt_for_reference(&self, data: Bytes, last: bool) -> Result<Bytes, Refusal> {
        let Some(refv1) = &self.refv1 else {
            return Ok(data);
        };
        let mut guard = lock(&refv1.encryptor);
        let Some(encryptor) = guard.as_mut() else {
            return Ok(data);
        };
        let mut out = encryptor
            .push(&data, &mut SystemRng)
            .map_err(|e| refuse(502, format!("cannot encrypt the answer: {e}")))?;
        if last {
            out.extend(
                encryptor
                    .finish(&mut SystemRng)
                    .map_err(|e| refuse(502, format!("cannot encrypt the answer: {e}")))?,
            );
        }
        Ok(Bytes::from(out))
    }

    /// Answer bytes as they go to the proxy: sealed as the next chunk of a sealed request's
    /// stream, as they are otherwise. `None` (after telling the proxy) when sealing failed.
    fn outgoing(&self, plaintext: Bytes, is_final: bool) -> Option<Bytes> {
        let Some(sealer) = &self.sealer else {
            return Some(plaintext);
        };
        match sealer.seal(&plaintext, is_final) {
            Ok(chunk) => Some(chunk),
            Err(e) => {
                tracing::error!("cannot seal an answer chunk: {e}");
                let msg = proxy::QueryAnswerErrorEx {
                    request_id: self.request_id,
                    error_code: 500,
                    error: "the worker cannot seal its answer".into(),
                    flags: 0,
                    final_info: Some(self.final_info(TokenUsage::default())),
                };
                let conn = self.conn.clone();
                tokio::spawn(async move {
                    let _ = conn.send_packet(Bytes::from(msg.to_boxed_bytes())).await;
                });
                None
            }
        }
    }

    /// Ends the request with `proxy.queryAnswerErrorEx`, reporting the tokens used so far.
    async fn fail(&self, refusal: Refusal, usage: TokenUsage) {
        tracing::debug!(code = refusal.code, "request refused: {}", refusal.message);
        let error = match &self.sealer {
            None => refusal.message,
            Some(sealer) => sealer.seal_error(&refusal.message).unwrap_or_else(|e| {
                tracing::error!("cannot seal an error message: {e}");
                "the worker failed and cannot seal why".into()
            }),
        };
        let msg = proxy::QueryAnswerErrorEx {
            request_id: self.request_id,
            error_code: refusal.code,
            error,
            flags: 0,
            final_info: Some(self.final_info(usage)),
        };
        let _ = self
            .conn
            .send_packet(Bytes::from(msg.to_boxed_bytes()))
            .await;
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

//! Serving one `proxy.runQueryEx`: capacity check, body validation, the engine call, and the
//! answer stream (`proxy.queryAnswerEx`, parts, and a final part with token usage).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use cocoon_attest::ReceiptClaims;
use cocoon_infer::{BodyEvent, Endpoint, EngineError, InferenceRequest, TokenUsage};
use cocoon_net::Connection;
use cocoon_net::LocalIdentity;
use cocoon_protocol::messages::{TokensUsed, ext, http, proxy};
use cocoon_protocol::tl::{Int256, TlConstructor};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;

use crate::config::base_model;
use crate::state::{WorkerState, lock};

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
    sealer: Option<crate::sealed::AnswerSealer>,
) {
    let start = cocoon_net::unix_time();
    state.counters.requests.fetch_add(1, Ordering::Relaxed);
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
        model: state.config.model.clone(),
        sealer,
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
        reply
            .fail(
                refuse(429, "worker is at max_active_requests"),
                TokenUsage::default(),
            )
            .await;
        return;
    };
    let request = match validate(&state, &q.query) {
        Ok((r, request_hash)) => {
            if version >= cocoon_protocol::version::SEALED_VERSION {
                reply.receipt = Some(request_hash);
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
    let outcome = tokio::select! {
        o = answer(&state, &reply, request) => o,
        () = cancel.cancelled() => Outcome::Cancelled,
        () = conn.closed() => Outcome::Cancelled,
    };
    lock(&state.in_flight).remove(&request_id);
    let c = &state.counters;
    match outcome {
        Outcome::Done(usage) => {
            c.succeeded.fetch_add(1, Ordering::Relaxed);
            c.prompt_tokens
                .fetch_add(usage.prompt_tokens, Ordering::Relaxed);
            c.completion_tokens
                .fetch_add(usage.completion_tokens, Ordering::Relaxed);
        }
        Outcome::Failed => {
            c.failed.fetch_add(1, Ordering::Relaxed);
        }
        Outcome::Cancelled => {
            c.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

enum Outcome {
    Done(TokenUsage),
    Failed,
    Cancelled,
}

/// Decodes and checks the `http.request`, returning what the engine should run.
fn validate(state: &WorkerState, query: &Bytes) -> Result<(InferenceRequest, [u8; 32]), Refusal> {
    let req = http::Request::from_boxed_bytes(query.clone())
        .map_err(|e| refuse(400, format!("bad http.request: {e}")))?;
    if !req.method.eq_ignore_ascii_case("POST") {
        return Err(refuse(405, format!("method {} not allowed", req.method)));
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
    if base_model(model) != state.config.base_model() {
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
    if body
        .get("n")
        .and_then(Value::as_u64)
        .is_some_and(|n| n != 1)
    {
        return Err(refuse(400, "only n = 1 is supported"));
    }
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(refuse(400, "`stream` must be a boolean")),
    };
    if let Some(engine_model) = state.engine.models().first() {
        body.insert("model".into(), Value::String(engine_model.name.clone()));
    }
    Ok((
        InferenceRequest {
            endpoint,
            body: Map::from_iter(body),
            stream,
        },
        cocoon_attest::receipt::body_hash(&req.payload),
    ))
}

async fn answer(state: &WorkerState, reply: &Reply<'_>, request: InferenceRequest) -> Outcome {
    let mut response = match state.engine.run(request).await {
        Ok(r) => r,
        Err(e) => {
            let code = match &e {
                EngineError::InvalidRequest(_) => 400,
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
    let (payload, tail) = next_batch(&mut response.body).await;
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
            Tail::More | Tail::End(_) => {}
        }
    }
    let mut answer_hash = Sha256::new();
    answer_hash.update(&payload);
    if let Tail::End(usage) = &tail {
        reply.send_receipt(*usage, answer_hash.clone()).await;
    }
    let head = http::Response {
        http_version: "HTTP/1.1".into(),
        status_code: i32::from(response.status),
        reason: reason_phrase(response.status).into(),
        headers: response
            .headers
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
        return Outcome::Cancelled;
    }
    let mut tail = tail;
    loop {
        match tail {
            Tail::End(usage) => return Outcome::Done(usage),
            Tail::Failed(error, usage) => {
                reply.fail(refuse(502, error), usage).await;
                return Outcome::Failed;
            }
            Tail::Closed => {
                let refusal = refuse(502, "engine stopped mid-answer");
                reply.fail(refusal, TokenUsage::default()).await;
                return Outcome::Failed;
            }
            Tail::More => {}
        }
        let (data, next) = next_batch(&mut response.body).await;
        answer_hash.update(&data);
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
                return Outcome::Cancelled;
            }
        }
        tail = next;
    }
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
            BodyEvent::End(_) | BodyEvent::Failed { .. } => break,
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

/// Where and how a request's answers and errors go.
struct Reply<'a> {
    conn: &'a Connection,
    version: i32,
    request_id: Int256,
    start: f64,
    debug: bool,
    /// Hash of the request body, when the proxy takes receipts (version 3).
    receipt: Option<[u8; 32]>,
    identity: &'a Arc<LocalIdentity>,
    /// The model announced, named in receipts.
    model: String,
    /// The answer stream's sealer, for a sealed request (version 3).
    sealer: Option<crate::sealed::AnswerSealer>,
}

impl Reply<'_> {
    /// Final info for `usage`, with times when the version carries them.
    fn final_info(&self, usage: TokenUsage) -> proxy::QueryFinalInfo {
        final_info(self.version, usage, self.start, self.debug)
    }

    /// Signs and sends the receipt for a completed answer, before its final part, so the
    /// client holds it when the answer ends. A node without verifiable evidence sends none.
    async fn send_receipt(&self, usage: TokenUsage, answer_hash: Sha256) {
        let Some(request_hash) = self.receipt else {
            return;
        };
        let model = self.model.clone();
        let claims = ReceiptClaims {
            request_hash,
            answer_hash: answer_hash.finalize().into(),
            model_hash: cocoon_attest::receipt::model_hash(&model),
            model,
            prompt_tokens: usage.prompt_tokens,
            cached_tokens: usage.cached_tokens,
            completion_tokens: usage.completion_tokens,
            reasoning_tokens: usage.reasoning_tokens,
            worker_image_hash: [0; 32],
            issued_at: cocoon_net::unix_time() as u64,
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

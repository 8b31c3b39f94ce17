//! The OpenAI-compatible HTTP API: `/v1/chat/completions`, `/v1/completions` (streamed as SSE
//! or as one JSON body), `/v1/models`, plus `/stats`, `/dashboard`, `/jsonstats`, `/metrics` and
//! `/health`.
//! Errors have OpenAI's shape, `{"error":{"message","type","code"}}`.
//!
//! [`serve`] runs it as a well-behaved server: a connection cap and deadlines for request heads
//! and bodies ([`cocoon_net::http_server`]), and [`AccessRules`] that refuse browser pages,
//! rebound host names and, when an API key is configured, callers without it; `/health` stays
//! open without the key, for probes.
//!
//! `/v1/audio/transcriptions` takes OpenAI's multipart form; [`Client::transcribe`] checks it,
//! measures its audio and declares the units the request may be charged.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use cocoon_net::http_access::AccessRules;
use cocoon_node::exposition::{MetricKind, MetricsText};
use http_body_util::BodyExt;
use serde_json::{Map, Value, json};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use cocoon_protocol::audio::TRANSCRIPTIONS_PATH;

use crate::api::{AnswerReceipt, AnswerStream, Client, HopTimes, RequestOptions};
use crate::config::ClientError;
use crate::sse::{SsePatcher, add_costs};

/// Builds the HTTP application of `client`. Call within a tokio runtime: the dashboard's
/// history is sampled by a task that ends with the router.
pub fn router(client: Client) -> Router {
    let sampled = client.clone();
    let history = cocoon_node::dashboard::LiveHistory::spawn(
        cocoon_node::dashboard::SAMPLE_INTERVAL,
        move || {
            let samples = crate::dashboard::sample(&snapshot(&sampled));
            async move { samples }
        },
    );
    Router::new()
        .route("/v1/chat/completions", post(completions))
        .route("/v1/completions", post(completions))
        .route(TRANSCRIPTIONS_PATH, post(transcriptions))
        .route("/v1/models", get(models))
        .route("/stats", get(stats))
        .route(
            "/dashboard",
            get(move |State(client): State<Client>| async move {
                let s = snapshot(&client);
                Html(history.read(|hist, now| crate::dashboard::render(&s, hist, now)))
            }),
        )
        .route("/jsonstats", get(jsonstats))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .fallback(not_found)
        .layer(axum::middleware::map_response_with_state(
            client.clone(),
            attestation_header,
        ))
        .with_state(client)
}

/// `X-Cocoon-Attestation` on every answer: the kind of evidence the proxy proved
/// (`tdx`, `sev-snp`, or `simulated`, which means no TEE protects the request).
async fn attestation_header(State(client): State<Client>, mut res: Response) -> Response {
    if let Some(kind) = client.proxy_attestation()
        && let Ok(value) = HeaderValue::from_str(kind.as_token())
    {
        res.headers_mut().insert("x-cocoon-attestation", value);
    }
    res
}

/// Serves the API on `listener` under the limits of the client's `[http]` settings and
/// `access`, until the task is dropped.
pub async fn serve(client: Client, listener: tokio::net::TcpListener, access: AccessRules) {
    let limits = client.config().http.limits();
    cocoon_net::http_server::serve(listener, "http api", limits, access, router(client)).await;
}

fn error_response(status: u16, message: &str, kind: &str, code: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({ "error": { "message": message, "type": kind, "code": code } });
    (status, Json(body)).into_response()
}

/// OpenAI's error object for `e`, naming the field at fault in `param` (`null` when the error is
/// about none).
fn error_object(e: &ClientError) -> Value {
    let param = match e {
        ClientError::InvalidForm(form) => form.form_field(),
        ClientError::Remote { param, .. } => param.as_deref(),
        _ => None,
    };
    json!({
        "message": e.to_string(),
        "type": e.error_type(),
        "code": e.error_code(),
        "param": param,
    })
}

fn client_error(e: &ClientError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(json!({ "error": error_object(e) }))).into_response()
}

async fn not_found() -> Response {
    error_response(
        404,
        "no such endpoint",
        "invalid_request_error",
        "unknown_url",
    )
}

/// `cocoon_receipt`: the receipt (standard base64) and the client's own check of it.
fn receipt_json(r: &AnswerReceipt) -> Value {
    json!({
        "receipt": BASE64.encode(&r.encoded),
        "verified": r.verified.is_ok(),
        "error": r.verified.as_ref().err().map(ToString::to_string),
        "error_code": r.verified.as_ref().err().map(ClientError::error_code),
        "request_id": hex::encode(r.request_id),
        "envelope_sha256": r.envelope_sha256.map(hex::encode),
    })
}

fn unix_header(v: f64) -> HeaderValue {
    HeaderValue::from_str(&format!("{v:.6}")).unwrap_or(HeaderValue::from_static("0"))
}

/// Most bytes read and thrown away from a refused oversized body, so that the caller (still
/// sending) gets to read the 413 instead of a reset connection.
const DRAIN_LIMIT: usize = 64 << 20;

/// Reads the body, refusing more than `limit` bytes.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Response> {
    let too_large = || {
        error_response(
            413,
            &format!("request body exceeds {limit} bytes"),
            "invalid_request_error",
            "request_too_large",
        )
    };
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = body;
    let mut out = bytes::BytesMut::new();
    let mut seen: usize = 0;
    let mut oversized = announced.is_some_and(|len| len > limit as u64);
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                let e = e.into_inner();
                if let Some(late) = cocoon_net::http_server::BodyTimedOut::find_in(e.as_ref()) {
                    return Err(error_response(
                        408,
                        &late.to_string(),
                        "invalid_request_error",
                        "request_timeout",
                    ));
                }
                return Err(error_response(
                    400,
                    &format!("cannot read request body: {e}"),
                    "invalid_request_error",
                    "bad_body",
                ));
            }
        };
        if let Ok(data) = frame.into_data() {
            seen = seen.saturating_add(data.len());
            if seen > limit {
                oversized = true;
            }
            if oversized {
                if seen > DRAIN_LIMIT {
                    break;
                }
            } else {
                out.extend_from_slice(&data);
            }
        }
    }
    if oversized {
        Err(too_large())
    } else {
        Ok(out.freeze())
    }
}

async fn completions(State(client): State<Client>, request: Request) -> Response {
    let client_start = cocoon_net::unix_time();
    let path = request.uri().path().to_owned();
    let (parts, body) = request.into_parts();
    let bytes = match read_body(&parts.headers, body, client.config().max_body_bytes).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut body: Map<String, Value> = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(o)) => o,
        Ok(_) => {
            return error_response(
                400,
                "request body must be a JSON object",
                "invalid_request_error",
                "invalid_json",
            );
        }
        Err(e) => {
            return error_response(
                400,
                &format!("request body is not valid JSON: {e}"),
                "invalid_request_error",
                "invalid_json",
            );
        }
    };
    let options = match take_options(&mut body) {
        Ok(o) => o,
        Err(BadOption(message)) => {
            return error_response(400, message, "invalid_request_error", "invalid_request");
        }
    };
    let Some(model) = body.get("model").and_then(Value::as_str).map(str::to_owned) else {
        return error_response(
            400,
            "`model` must be a string",
            "invalid_request_error",
            "invalid_request",
        );
    };
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return error_response(
                400,
                "`stream` must be a boolean",
                "invalid_request_error",
                "invalid_request",
            );
        }
    };
    match client.has_model(&model).await {
        Ok(true) => {}
        Ok(false) => return client_error(&ClientError::UnknownModel(model)),
        Err(e) => return client_error(&e),
    }
    let mut answer = match client.request(&path, body, options).await {
        Ok(a) => a,
        Err(e) => return client_error(&e),
    };
    answer.times.client_start = client_start;
    let is_sse = answer
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("content-type") && v.starts_with("text/event-stream"));
    if stream {
        streamed(answer, is_sse, client.config().http.write_timeout)
    } else {
        whole(answer).await
    }
}

/// Bytes a transcription form may have beyond its audio (text fields, part headers).
const FORM_ALLOWANCE: usize = 1 << 20;

/// `POST /v1/audio/transcriptions`: the form is checked and its audio measured by
/// [`Client::transcribe`], then it travels as it came; the answer is in the requested
/// `response_format` (JSON formats get the usage and cost added, like completions).
async fn transcriptions(State(client): State<Client>, request: Request) -> Response {
    let client_start = cocoon_net::unix_time();
    let (parts, body) = request.into_parts();
    let limit = client
        .config()
        .max_audio_bytes
        .saturating_add(FORM_ALLOWANCE);
    let bytes = match read_body(&parts.headers, body, limit).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut answer = match client
        .transcribe(&content_type, bytes, RequestOptions::default())
        .await
    {
        Ok(a) => a,
        Err(e) => return client_error(&e),
    };
    answer.times.client_start = client_start;
    whole(answer).await
}

/// A client option of the request body with a value of the wrong kind: what it must be.
#[derive(Debug)]
struct BadOption(&'static str);

/// Takes the fields the client consumes out of the body.
fn take_options(body: &mut Map<String, Value>) -> Result<RequestOptions, BadOption> {
    let bad = BadOption;
    let mut o = RequestOptions::default();
    if let Some(v) = body.remove("max_coefficient") {
        let c = v
            .as_i64()
            .filter(|c| *c > 0 && *c <= i64::from(i32::MAX))
            .ok_or_else(|| bad("`max_coefficient` must be a positive integer"))?;
        o.max_coefficient = Some(c as i32);
    }
    if let Some(v) = body.remove("worker_preference") {
        o.preference = Some(v.as_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
            bad("`worker_preference` must be \"latency\", \"price\" or \"mix:W\" (W from 0 to 100)")
        })?);
    }
    if let Some(v) = body.remove("timeout") {
        let t = v
            .as_f64()
            .filter(|t| t.is_finite() && *t > 0.0 && *t <= 86_400.0)
            .ok_or_else(|| bad("`timeout` must be a positive number of seconds"))?;
        o.timeout = Some(Duration::from_secs_f64(t));
    }
    if let Some(v) = body.remove("enable_debug") {
        o.enable_debug = v
            .as_bool()
            .ok_or_else(|| bad("`enable_debug` must be a boolean"))?;
    }
    body.remove("request_guid");
    Ok(o)
}

fn head_headers(
    answer: &AnswerStream,
    builder: axum::http::response::Builder,
    times: &HopTimes,
) -> axum::http::response::Builder {
    let mut b = builder
        .header("x-cocoon-client-start", unix_header(times.client_start))
        .header(
            "x-cocoon-sealed",
            if answer.sealed { "true" } else { "false" },
        );
    for (name, value) in &answer.headers {
        if name.eq_ignore_ascii_case("content-type")
            && let Ok(v) = HeaderValue::from_str(value)
        {
            b = b.header(header::CONTENT_TYPE, v);
        }
    }
    b
}

/// Pieces of a streamed answer waiting for the caller to take them.
const STREAM_QUEUE: usize = 8;

fn streamed(answer: AnswerStream, is_sse: bool, write_timeout: Duration) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let times = answer.times;
    let builder = head_headers(&answer, Response::builder().status(status), &times)
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no");
    // The answer is read by its own task into a short queue that the caller drains: a caller
    // that takes nothing for `write_timeout` loses the request (dropping the answer stops it at
    // the proxy), and holds up nothing else meanwhile.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(STREAM_QUEUE);
    tokio::spawn(async move {
        let (mut answer, mut patcher) = (answer, SsePatcher::default());
        loop {
            let (out, last) = match answer.next_chunk().await {
                Ok(Some(chunk)) => (if is_sse { patcher.push(&chunk) } else { chunk }, false),
                Ok(None) => {
                    let out = if is_sse {
                        if let Some(r) = answer.receipt() {
                            patcher.set_receipt(receipt_json(&r));
                        }
                        patcher.finish(&answer.usage(), &answer.times)
                    } else {
                        Bytes::new()
                    };
                    (out, true)
                }
                Err(e) => {
                    let event = json!({ "error": error_object(&e) });
                    (Bytes::from(format!("data: {event}\n\n")), true)
                }
            };
            match tx.send_timeout(out, write_timeout).await {
                Ok(()) if !last => {}
                Ok(()) => return,
                Err(tokio::sync::mpsc::error::SendTimeoutError::Timeout(_)) => {
                    tracing::warn!(
                        "the caller took nothing of its streamed answer for {write_timeout:?}: \
                         request stopped"
                    );
                    return;
                }
                Err(tokio::sync::mpsc::error::SendTimeoutError::Closed(_)) => return,
            }
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<Bytes, std::io::Error>(chunk), rx))
    });
    builder
        .body(Body::from_stream(body))
        .unwrap_or_else(|e| error_response(500, &e.to_string(), "server_error", "error"))
}

async fn whole(mut answer: AnswerStream) -> Response {
    let body = match answer.collect_body().await {
        Ok(b) => b,
        Err(e) => return client_error(&e),
    };
    let usage = answer.usage();
    let times = answer.times;
    let receipt = answer.receipt();
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let body = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(mut o)) if status.is_success() => {
            add_costs(&mut o, &usage, &times);
            if let Some(r) = &receipt {
                o.insert("cocoon_receipt".into(), receipt_json(r));
            }
            Bytes::from(Value::Object(o).to_string())
        }
        _ => body,
    };
    let mut b = head_headers(&answer, Response::builder().status(status), &times)
        .header("x-cocoon-client-end", unix_header(times.client_end));
    if let Some(r) = &receipt
        && let Ok(v) = HeaderValue::from_str(&BASE64.encode(&r.encoded))
    {
        b = b.header("x-cocoon-receipt", v).header(
            "x-cocoon-receipt-verified",
            if r.verified.is_ok() { "true" } else { "false" },
        );
    }
    for (name, v) in [
        ("x-cocoon-proxy-start", times.proxy_start),
        ("x-cocoon-proxy-end", times.proxy_end),
        ("x-cocoon-worker-start", times.worker_start),
        ("x-cocoon-worker-end", times.worker_end),
    ] {
        if let Some(v) = v {
            b = b.header(name, unix_header(v));
        }
    }
    b.body(Body::from(body))
        .unwrap_or_else(|e| error_response(500, &e.to_string(), "server_error", "error"))
}

async fn models(State(client): State<Client>) -> Response {
    match client.models().await {
        Ok(models) => {
            let data: Vec<Value> = models
                .into_iter()
                .map(|m| json!({ "id": m.id, "object": "model", "created": 0, "owned_by": "cocoon", "workers": m.workers, "market": m.market, "weights_sha256": m.weights }))
                .collect();
            Json(json!({ "object": "list", "data": data })).into_response()
        }
        Err(e) => client_error(&e),
    }
}

async fn health(State(client): State<Client>) -> Response {
    if client.is_connected() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not connected to the proxy\n",
        )
            .into_response()
    }
}

fn snapshot(client: &Client) -> Value {
    let c = &client.counters;
    json!({
        "proxy": client.link.current_proxy(),
        "connected": client.is_connected(),
        "proxy_attestation": client.proxy_attestation().map(|k| k.as_token()),
        "owner_address": client.config().owner_address,
        "requests": c.requests.load(Ordering::Relaxed),
        "sealed_requests": client.sealing.sealed.load(Ordering::Relaxed),
        "unsealed_requests": client.sealing.unsealed.load(Ordering::Relaxed),
        "sealing_refused": client.sealing.refused.load(Ordering::Relaxed),
        "sealing_downgrades": client.sealing.downgraded.load(Ordering::Relaxed),
        "sealing_fallback_reason": crate::link::lock(&client.sealing.last_reason).clone(),
        "require_sealed": client.config().requires_sealing(),
        "succeeded": c.succeeded.load(Ordering::Relaxed),
        "failed": c.failed.load(Ordering::Relaxed),
        "cancelled": c.cancelled.load(Ordering::Relaxed),
        "receipts_refused": c.receipts_refused.load(Ordering::Relaxed),
        "receipts_verified": c.receipts_verified.load(Ordering::Relaxed),
        "tokens": c.tokens.load(Ordering::Relaxed),
        "spent_nanoton": c.spent_nanoton.load(Ordering::Relaxed),
        "uptime_secs": client.started.elapsed().as_secs_f64(),
        "settlement": client.settlement(),
        "registry": client.registry(),
    })
}

async fn jsonstats(State(client): State<Client>) -> Response {
    Json(snapshot(&client)).into_response()
}

async fn stats(State(client): State<Client>) -> Response {
    let s = snapshot(&client);
    let mut out = String::from("cocoon-client\n");
    if let Value::Object(o) = s {
        for (k, v) in o {
            out.push_str(&format!("{k}: {v}\n"));
        }
    }
    out.into_response()
}

async fn metrics(State(client): State<Client>) -> Response {
    let c = &client.counters;
    let f = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
    let mut m = MetricsText::new();
    m.metric(
        "cocoon_client_requests_total",
        MetricKind::Counter,
        "Requests sent.",
        f(&c.requests),
    )
    .metric(
        "cocoon_client_requests_succeeded_total",
        MetricKind::Counter,
        "Requests answered.",
        f(&c.succeeded),
    )
    .metric(
        "cocoon_client_requests_failed_total",
        MetricKind::Counter,
        "Requests failed.",
        f(&c.failed),
    )
    .metric(
        "cocoon_client_receipts_refused_total",
        MetricKind::Counter,
        "Worker receipts refused: not verifying, or issued for another request.",
        f(&c.receipts_refused),
    )
    .metric(
        "cocoon_client_receipts_verified_total",
        MetricKind::Counter,
        "Worker receipts whose signature and request binding checked out.",
        f(&c.receipts_verified),
    )
    .metric(
        "cocoon_client_tokens_total",
        MetricKind::Counter,
        "Tokens used.",
        f(&c.tokens),
    )
    .metric(
        "cocoon_client_spent_nanoton_total",
        MetricKind::Counter,
        "NanoTON spent.",
        f(&c.spent_nanoton),
    )
    .metric(
        "cocoon_client_connected",
        MetricKind::Gauge,
        "1 when the proxy session is up.",
        f64::from(u8::from(client.is_connected())),
    )
    .histogram(
        "cocoon_client_overhead_seconds",
        "Time an answered request spent in this client (from the API call to the end of the answer), less the time its proxy reported.",
        &c.overhead.snapshot(),
    );
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m.finish(),
    )
        .into_response()
}

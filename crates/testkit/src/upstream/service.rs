//! Routing and request handling of the fake upstream: turns one HTTP request into a planned
//! answer, or into an OpenAI-shaped error (`{"error":{"message","type","param","code"}}`).

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde::Serialize;

use super::answer::{AnswerText, Usage};
use super::overrides::StreamFormat;
use super::request::{Endpoint, InferenceRequest};
use super::wire::{AnswerBody, AnswerPlan, AnswerStream};
use super::{DEFAULT_MODEL, MAX_REQUEST_BODY, RecordedRequest, Shared};
use crate::TestkitError;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");
const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");

#[derive(Serialize)]
struct ModelEntry<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<ModelEntry<'a>>,
}

/// The `GET /v1/models` document, rendered once at start.
pub(crate) fn models_document(models: &[String]) -> Result<Bytes, TestkitError> {
    let list = ModelList {
        object: "list",
        data: models
            .iter()
            .map(|id| ModelEntry {
                id,
                object: "model",
                created: 0,
                owned_by: "cocoon-testkit",
            })
            .collect(),
    };
    Ok(Bytes::from(serde_json::to_vec(&list)?))
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    param: Option<&'static str>,
    code: Option<&'static str>,
}

#[derive(Serialize)]
struct ErrorDocument<'a> {
    error: ErrorDetail<'a>,
}

/// An OpenAI-shaped error answer.
struct ApiError {
    status: StatusCode,
    message: String,
    param: Option<&'static str>,
    code: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            param: None,
            code: None,
        }
    }

    fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    fn param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    fn into_response(self, shared: &Shared) -> Result<Response<AnswerBody>, TestkitError> {
        shared.counters.errors.fetch_add(1, Ordering::Relaxed);
        let kind = match self.status {
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            s if s.is_server_error() => "server_error",
            _ => "invalid_request_error",
        };
        let body = serde_json::to_vec(&ErrorDocument {
            error: ErrorDetail {
                message: &self.message,
                kind,
                param: self.param,
                code: self.code,
            },
        })?;
        Ok(response(self.status, JSON, AnswerBody::whole(body)))
    }
}

fn response(
    status: StatusCode,
    content_type: HeaderValue,
    body: AnswerBody,
) -> Response<AnswerBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    response
}

/// Answers one request. An `Err` makes hyper close the connection without an answer, which is
/// how an injected crash of a non-streamed answer looks to the client.
pub(crate) async fn handle(
    shared: &Shared,
    request: Request<Incoming>,
) -> Result<Response<AnswerBody>, TestkitError> {
    const ROUTES: [&str; 6] = [
        "/v1/audio/transcriptions",
        "/health",
        "/stats",
        "/v1/models",
        "/v1/chat/completions",
        "/v1/completions",
    ];
    let path = request.uri().path();
    match (request.method(), path) {
        (&Method::GET, "/health") => Ok(response(
            StatusCode::OK,
            JSON,
            AnswerBody::whole(Bytes::from_static(br#"{"status":"ok"}"#)),
        )),
        (&Method::GET, "/v1/models") => Ok(response(
            StatusCode::OK,
            JSON,
            AnswerBody::whole(shared.models_document.clone()),
        )),
        (&Method::GET, "/stats") => {
            let stats = serde_json::to_vec(&shared.counters.snapshot())?;
            Ok(response(StatusCode::OK, JSON, AnswerBody::whole(stats)))
        }
        (&Method::POST, "/v1/chat/completions") => infer(shared, Endpoint::Chat, request).await,
        (&Method::POST, "/v1/completions") => infer(shared, Endpoint::Completion, request).await,
        (&Method::POST, "/v1/audio/transcriptions") => transcription(shared, request).await,
        (method, path) if ROUTES.contains(&path) => ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {method} is not allowed on {path}"),
        )
        .code("method_not_allowed")
        .into_response(shared),
        (_, path) => ApiError::new(StatusCode::NOT_FOUND, format!("no route for {path}"))
            .code("not_found")
            .into_response(shared),
    }
}

/// `POST /v1/audio/transcriptions`: a simulated transcript of the form's WAV audio.
async fn transcription(
    shared: &Shared,
    request: Request<Incoming>,
) -> Result<Response<AnswerBody>, TestkitError> {
    shared.counters.requests.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, super::transcribe::MAX_AUDIO_BYTES + (1 << 20))
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("cannot read request body: {error}"),
            )
            .into_response(shared);
        }
    };
    if shared.config.record_requests > 0 {
        shared.record(RecordedRequest {
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            headers: parts.headers.clone(),
            body: body.clone(),
        });
    }
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match super::transcribe::transcribe(content_type, &body) {
        Ok(t) => Ok(response(
            StatusCode::OK,
            HeaderValue::from_static(t.content_type),
            AnswerBody::whole(t.body),
        )),
        Err(refusal) => {
            let mut error = ApiError::new(StatusCode::BAD_REQUEST, refusal.message);
            if let Some(param) = refusal.param {
                error = error.param(param);
            }
            error.into_response(shared)
        }
    }
}

async fn infer(
    shared: &Shared,
    endpoint: Endpoint,
    request: Request<Incoming>,
) -> Result<Response<AnswerBody>, TestkitError> {
    shared.counters.requests.fetch_add(1, Ordering::Relaxed);
    let shape = match shared.config.shape.overridden_by(request.headers()) {
        Ok(shape) => shape,
        Err(refused) => {
            return ApiError::new(StatusCode::BAD_REQUEST, refused.to_string())
                .code("invalid_fake_header")
                .into_response(shared);
        }
    };
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body exceeds {MAX_REQUEST_BODY} bytes"),
            )
            .code("request_too_large")
            .into_response(shared);
        }
        Err(error) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("cannot read request body: {error}"),
            )
            .into_response(shared);
        }
    };
    if shared.config.record_requests > 0 {
        shared.record(RecordedRequest {
            method: parts.method.clone(),
            path: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned()),
            headers: parts.headers.clone(),
            body: body.clone(),
        });
    }
    if let Some(status) = shape.fail_status {
        return ApiError::new(status, format!("injected failure with status {status}"))
            .code("injected_failure")
            .into_response(shared);
    }
    let inference = match InferenceRequest::parse(endpoint, &body) {
        Ok(inference) => inference,
        Err(message) => {
            return ApiError::new(StatusCode::BAD_REQUEST, message.to_string())
                .into_response(shared);
        }
    };
    let model = match inference.model {
        None => shared
            .config
            .models
            .first()
            .map_or_else(|| DEFAULT_MODEL.to_owned(), Clone::clone),
        Some(model) if shared.config.any_model || shared.config.models.contains(&model) => model,
        Some(model) => {
            return ApiError::new(
                StatusCode::NOT_FOUND,
                format!("The model `{model}` does not exist."),
            )
            .param("model")
            .code("model_not_found")
            .into_response(shared);
        }
    };

    let cap = inference.max_tokens.unwrap_or(u64::MAX);
    let chunks = u64::from(shape.chunks).min(cap);
    // `chunks` is at most `shape.chunks`, a u32.
    let chunks = u32::try_from(chunks).unwrap_or(shape.chunks);
    let finish_reason = if u64::from(shape.chunks) > cap {
        "length"
    } else {
        "stop"
    };
    let sequence = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let id = match endpoint {
        Endpoint::Chat => format!("chatcmpl-fake-{sequence}"),
        Endpoint::Completion => format!("cmpl-fake-{sequence}"),
    };
    let streamed = inference.stream || shape.format == StreamFormat::Ndjson;
    let plan = AnswerPlan {
        endpoint,
        format: shape.format,
        id,
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        model,
        chunks,
        chunk_bytes: shape.chunk_bytes as usize,
        finish_reason,
        usage: Usage::new(
            inference.prompt_tokens,
            u64::from(chunks),
            shape.cached_tokens,
            shape.reasoning_tokens,
        ),
        usage_chunk: inference.include_usage
            || shape.usage == super::overrides::UsagePolicy::Always,
        delay: shape.delay,
        first_chunk_delay: shape.first_chunk_delay,
        fail_after: shape.fail_after.filter(|k| *k <= chunks),
    };
    if streamed {
        shared.counters.streamed.fetch_add(1, Ordering::Relaxed);
        let content_type = match shape.format {
            StreamFormat::Sse => EVENT_STREAM,
            StreamFormat::Ndjson => JSON,
        };
        let text = AnswerText::from_prompt(&inference.echo);
        let stream = AnswerStream::new(plan, text, std::sync::Arc::clone(&shared.counters));
        let mut response = response(
            StatusCode::OK,
            content_type,
            AnswerBody::Stream(Box::new(stream)),
        );
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, NO_CACHE);
        return Ok(response);
    }

    if let Some(k) = plan.fail_after {
        pause(plan.time_until_chunk(k)).await;
        shared.counters.aborted.fetch_add(1, Ordering::Relaxed);
        return Err(TestkitError::InjectedFailure { chunks: k });
    }
    pause(plan.time_until_chunk(plan.chunks)).await;
    let text = AnswerText::full_text(&inference.echo, plan.chunks, plan.chunk_bytes);
    let document = plan.whole_document(&text)?;
    Ok(response(StatusCode::OK, JSON, AnswerBody::whole(document)))
}

async fn pause(duration: Duration) {
    if !duration.is_zero() {
        tokio::time::sleep(duration).await;
    }
}

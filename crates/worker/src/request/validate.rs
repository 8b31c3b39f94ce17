//! What the worker checks of a request before any engine sees it: the `http.request` decoded,
//! the reference's v1 encryption opened, the endpoint, model and body fields checked, the
//! completion tokens clamped to the proxy's reservation, and a transcription's form and audio
//! measured. Pure functions of the request, the configuration and the model served.

use bytes::Bytes;
use cocoon_infer::request::OpenAiRequest;
use cocoon_infer::{Endpoint, InferenceRequest, TokenUsage, TranscriptionRequest};
use cocoon_protocol::audio::{FormLimits, TRANSCRIPTIONS_PATH, TranscriptionForm, WavAudio};
use cocoon_protocol::messages::{http, proxy};
use cocoon_protocol::tl::TlConstructor;
use cocoon_refv1::{AnswerCipher, Ed25519Seed};

use super::Binding;
use super::machine::{Refusal, refuse, refuse_param};
use crate::config::base_model;
use crate::limits;
use crate::state::{Served, WorkerState};

/// With a `private_key` from the proxy and a body in the reference's encryption: the request
/// with its body opened, and the cipher for the answer. Otherwise the query as it came.
pub(super) fn open_reference_encrypted(
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
pub(super) fn validate(
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
    // One parse, one set of messages; the served model is checked after the body's shape.
    let mut request =
        OpenAiRequest::parse(endpoint, &req.payload, &state.config.extra_allowed_fields)
            .map_err(|e| refuse_param(400, e.to_string(), e.param()))?;
    if base_model(&request.model) != served.model.base() {
        return Err(refuse_param(
            404,
            format!("model `{}` is not served here", request.model),
            Some("model"),
        ));
    }
    match limits::enforce(&mut request, token_limit, limits::SUPPORTED_CHOICES) {
        Ok(budget) if budget.clamped => tracing::debug!(
            per_choice = budget.per_choice,
            "completion tokens clamped to the proxy's reservation"
        ),
        Ok(_) => {}
        Err(e) => return Err(refuse_param(400, e.to_string(), e.param())),
    }
    if let Some(engine_model) = served.engine.models().first() {
        request.model.clone_from(&engine_model.name);
    }
    Ok((
        Job::Infer(InferenceRequest { endpoint, request }),
        cocoon_attest::receipt::body_hash(&req.payload),
    ))
}

/// What the engine is asked to do (one per request, moved once: its size does not matter).
#[allow(clippy::large_enum_variant)]
pub(super) enum Job {
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
    if base_model(&form.model) != served.model.base() {
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

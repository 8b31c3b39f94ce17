//! The contract between a worker and whatever produces its answers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use cocoon_protocol::audio::{TranscriptionForm, WavAudio};
use tokio::sync::{Notify, mpsc};

use crate::request::{OpenAiRequest, RequestError};

/// Which OpenAI endpoint a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`
    ChatCompletions,
    /// `POST /v1/completions`
    Completions,
}

impl Endpoint {
    /// The URL path of the endpoint.
    pub fn path(self) -> &'static str {
        match self {
            Self::ChatCompletions => "/v1/chat/completions",
            Self::Completions => "/v1/completions",
        }
    }

    /// The endpoint of a URL path (query string ignored), if it is one we serve.
    pub fn from_path(path: &str) -> Option<Self> {
        let path = path.split('?').next().unwrap_or(path);
        match path {
            "/v1/chat/completions" => Some(Self::ChatCompletions),
            "/v1/completions" => Some(Self::Completions),
            _ => None,
        }
    }
}

/// A request the worker has validated and hands to its engine.
#[derive(Debug, Clone)]
pub struct InferenceRequest {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The OpenAI request, checked once by the worker (allowed fields, each typed field's
    /// rule); its `model` is the engine's name for the model.
    pub request: OpenAiRequest,
}

impl InferenceRequest {
    /// A request to `endpoint` from a JSON body (every field accepted by default), checked as
    /// the worker checks one.
    pub fn from_json(endpoint: Endpoint, body: serde_json::Value) -> Result<Self, RequestError> {
        Ok(Self {
            endpoint,
            request: OpenAiRequest::from_value(endpoint, body, &[])?,
        })
    }

    /// Whether the client asked for a stream (`"stream": true`).
    pub fn stream(&self) -> bool {
        self.request.stream
    }
}

/// A transcription (`POST /v1/audio/transcriptions`) the worker has checked and measured.
///
/// The worker parsed the form itself ([`TranscriptionForm::parse`]) and measured the audio
/// ([`WavAudio`]); `usage` is what the request costs, its audio's billable units as prompt
/// tokens. An engine reports exactly that usage when it answers (and none for an error status),
/// whatever its own server says: the duration is the worker's measure, not the engine's.
#[derive(Debug, Clone)]
pub struct TranscriptionRequest {
    /// The form, its `model` already the engine's name for the model.
    pub form: TranscriptionForm,
    /// What the WAV header says about the audio.
    pub audio: WavAudio,
    /// The billable usage of the audio.
    pub usage: TokenUsage,
}

/// Token counts of one request, in the categories billing distinguishes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// Prompt tokens, cached ones included.
    pub prompt_tokens: u64,
    /// Prompt tokens served from a cache.
    pub cached_tokens: u64,
    /// Completion tokens, reasoning ones included.
    pub completion_tokens: u64,
    /// Completion tokens spent on reasoning.
    pub reasoning_tokens: u64,
}

impl TokenUsage {
    /// All tokens.
    pub fn total(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// One item of a response body stream.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyEvent {
    /// Body bytes, forwarded as they are.
    Data(Bytes),
    /// The body is complete; usage is final.
    End(TokenUsage),
    /// The engine failed mid-answer; usage covers what was produced.
    Failed {
        /// What went wrong.
        error: String,
        /// Tokens produced before the failure.
        usage: TokenUsage,
    },
    /// The engine stopped early because its [`StopHandle`] asked it to; usage covers what was
    /// produced (and processed of the prompt) until it stopped.
    Stopped(TokenUsage),
}

/// An engine's answer: a head, then body events. Dropping it cancels the request without a
/// word; [`EngineResponse::stop`] cancels it and still learns the usage so far.
#[derive(Debug)]
pub struct EngineResponse {
    /// HTTP status the engine answered with.
    pub status: u16,
    /// Response headers worth forwarding (content type at least).
    pub headers: Vec<(String, String)>,
    /// Body events; the last one is [`BodyEvent::End`], [`BodyEvent::Failed`] or, after a
    /// stop, [`BodyEvent::Stopped`].
    pub body: mpsc::Receiver<BodyEvent>,
    /// Asks the engine to stop generating this answer; the engine then ends the body with
    /// [`BodyEvent::Stopped`] (or with the end it had already reached).
    pub stop: StopHandle,
}

/// A request to stop one answer early, shared between the worker that asks and the engine that
/// generates: the worker must still report (and be paid for) the tokens of a cancelled request,
/// so dropping the answer, which tells the engine nothing back, is not enough.
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<StopState>);

#[derive(Debug, Default)]
struct StopState {
    requested: AtomicBool,
    notify: Notify,
}

impl StopHandle {
    /// A handle nobody has stopped yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the engine to stop; asking again changes nothing.
    pub fn stop(&self) {
        self.0.requested.store(true, Ordering::Release);
        self.0.notify.notify_waiters();
    }

    /// Whether a stop was asked for (engines that poll between steps check this).
    pub fn is_stopped(&self) -> bool {
        self.0.requested.load(Ordering::Acquire)
    }

    /// Resolves once a stop is asked for (at once if it already was).
    pub async fn stopped(&self) {
        let notified = self.0.notify.notified();
        tokio::pin!(notified);
        // Registered before the flag is read, so a stop in between is not missed.
        notified.as_mut().enable();
        if self.is_stopped() {
            return;
        }
        notified.await;
    }
}

/// A model an engine serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// The model name clients use.
    pub name: String,
    /// Context length, if known.
    pub context_length: Option<u64>,
    /// The digest of the weights the engine loaded, when it loaded them itself (the built-in
    /// engine); an upstream server's weights are pinned in the worker's configuration instead.
    pub weights: Option<crate::WeightsDigest>,
}

/// Why an engine could not start answering.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The request is not acceptable to this engine.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The request asks, in the body field `param`, for what this engine cannot do.
    #[error("invalid request: {message}")]
    Unsupported {
        /// The body field (OpenAI's `param`).
        param: String,
        /// What is refused, and why.
        message: String,
    },
    /// The engine is at capacity.
    #[error("engine overloaded: {0}")]
    Overloaded(String),
    /// The engine (or its upstream server) is unreachable or broken.
    #[error("engine unavailable: {0}")]
    Unavailable(String),
    /// The engine did not answer in time.
    #[error("engine timed out: {0}")]
    Timeout(String),
    /// The model does not turn speech into text.
    #[error("model `{0}` does not transcribe audio")]
    DoesNotTranscribe(String),
}

impl EngineError {
    /// The request body field the error is about, when it is about one (OpenAI's `param`).
    pub fn param(&self) -> Option<&str> {
        match self {
            Self::Unsupported { param, .. } => Some(param),
            _ => None,
        }
    }
}

/// A boxed future, so engines can be used as trait objects.
pub type EngineFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that answers OpenAI-style requests.
pub trait Engine: Send + Sync + 'static {
    /// The models this engine serves.
    fn models(&self) -> Vec<ModelInfo>;

    /// What kind of engine this is (`builtin`, `upstream`), for the worker's self-description.
    fn kind(&self) -> &'static str {
        "other"
    }

    /// Starts answering `request`. Returns once the response head is known.
    fn run(
        &self,
        request: InferenceRequest,
    ) -> EngineFuture<'_, Result<EngineResponse, EngineError>>;

    /// Starts transcribing `request`'s audio; the answer's body is in the form's
    /// `response_format` and ends with `request.usage`. Engines without a speech model keep
    /// this default, which refuses with [`EngineError::DoesNotTranscribe`].
    fn transcribe(
        &self,
        request: TranscriptionRequest,
    ) -> EngineFuture<'_, Result<EngineResponse, EngineError>> {
        Box::pin(async move { Err(EngineError::DoesNotTranscribe(request.form.model)) })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_stop_wakes_a_waiter_and_one_asked_earlier_is_seen_at_once() {
        let handle = StopHandle::new();
        assert!(!handle.is_stopped());
        let waiter = tokio::spawn({
            let handle = handle.clone();
            async move { handle.stopped().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        handle.stop();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(handle.is_stopped());
        // Already stopped: resolves without waiting.
        tokio::time::timeout(Duration::from_secs(1), handle.stopped())
            .await
            .unwrap();
    }
}

//! The rogue worker's rules, free of I/O: which requests it takes, the answer it gives and how
//! that answer is cut into the frames it sends, and the honest token counts behind each frame.
//!
//! Rules:
//! - Only `POST …/chat/completions` for the configured model (its base name, before any `@`)
//!   is served; other requests are refused with an HTTP-style code, as a worker refuses them.
//! - Prompt tokens are the whitespace-separated words of every message (as the fake upstream
//!   counts them); completion tokens are the words of the answer text actually sent.
//! - The answer is the configured text, cut to the request's `max_completion_tokens` /
//!   `max_tokens` and to the token limit the proxy sent (`finish_reason` is then `length`).
//! - `stream: true` answers are SSE: one `chat.completion.chunk` event per part carrying its
//!   share of the words; the last part adds the chunk with the finish reason, a usage chunk when
//!   `stream_options.include_usage` is set, and `data: [DONE]`. Other answers are one
//!   `chat.completion` JSON document cut into `parts` byte ranges.
//! - A streamed answer has produced, after part `i`, the words sent so far; a JSON answer is
//!   generated whole before its first byte, so every part stands for all of it.

use bytes::Bytes;
use cocoon_protocol::messages::http;
use serde::Serialize;
use serde_json::{Value, json};

use super::{RogueConfig, UsageReport};
use crate::upstream::request::{Endpoint, InferenceRequest};

/// Token counts of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TokenCounts {
    /// Prompt tokens.
    pub prompt: u64,
    /// Completion tokens.
    pub completion: u64,
}

impl TokenCounts {
    /// Both together.
    #[must_use]
    pub fn total(self) -> u64 {
        self.prompt.saturating_add(self.completion)
    }
}

/// A request the worker will not serve, with the HTTP-style code it answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The code (400, 404, 405...).
    pub code: i32,
    /// Why.
    pub message: String,
}

fn refuse(code: i32, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

/// What the worker reads of a chat completion request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatView {
    /// `stream`.
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
    /// `max_completion_tokens`, else `max_tokens`.
    pub max_tokens: Option<u64>,
    /// Prompt tokens, counted as words.
    pub prompt_tokens: u64,
}

impl ChatView {
    /// Reads an `http.request` for `model`: method, path and body.
    ///
    /// # Errors
    /// A [`Refusal`] for another method (405), another endpoint or model (404) or a body that
    /// is no chat completion request (400).
    pub fn from_request(request: &http::Request, model: &str) -> Result<Self, Refusal> {
        if !request.method.eq_ignore_ascii_case("POST") {
            return Err(refuse(
                405,
                format!("method {} not allowed", request.method),
            ));
        }
        let path = request.url.split('?').next().unwrap_or_default();
        if !path.ends_with("/chat/completions") {
            return Err(refuse(404, format!("unknown endpoint {}", request.url)));
        }
        Self::from_body(&request.payload, model)
    }

    /// Reads a chat completion body for `model`.
    ///
    /// # Errors
    /// A [`Refusal`]: 400 for a body that is not a chat completion request, 404 for another
    /// model.
    pub fn from_body(body: &[u8], model: &str) -> Result<Self, Refusal> {
        let parsed = InferenceRequest::parse(Endpoint::Chat, body)
            .map_err(|e| refuse(400, e.to_string()))?;
        let asked = parsed.model.as_deref().unwrap_or(model);
        let served = cocoon_market::selection::base_model(model);
        if cocoon_market::selection::base_model(asked) != served {
            return Err(refuse(404, format!("model `{asked}` is not served here")));
        }
        Ok(Self {
            stream: parsed.stream,
            include_usage: parsed.include_usage,
            max_tokens: parsed.max_tokens,
            prompt_tokens: parsed.prompt_tokens,
        })
    }
}

/// One request's answer, cut into the frames the worker sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerPlan {
    /// The `content-type` of the answer.
    pub content_type: &'static str,
    /// The body bytes of each frame, in order (never empty as a list).
    pub parts: Vec<Bytes>,
    /// Honest completion tokens produced once frame `i` is sent.
    pub completion_after: Vec<u64>,
    /// What the whole answer really used.
    pub honest: TokenCounts,
    /// What the worker reports for the whole answer.
    pub reported: TokenCounts,
    /// `stop`, or `length` when the answer was cut to a limit.
    pub finish_reason: &'static str,
    /// The answer's text as sent.
    pub content: String,
}

impl AnswerPlan {
    /// Plans the answer to `view` under `config`, with the proxy's `token_limit` (none from a
    /// `proxy.runQueryEx`) and the `created` time every answer of this worker carries.
    #[must_use]
    pub fn new(
        config: &RogueConfig,
        view: &ChatView,
        token_limit: Option<u64>,
        created: u64,
    ) -> Self {
        let words: Vec<&str> = config.answer_text.split_whitespace().collect();
        let limit = [view.max_tokens, token_limit]
            .into_iter()
            .flatten()
            .min()
            .map_or(words.len(), |l| usize::try_from(l).unwrap_or(usize::MAX));
        let sent = &words[..words.len().min(limit)];
        let finish_reason = if sent.len() < words.len() {
            "length"
        } else {
            "stop"
        };
        let honest = TokenCounts {
            prompt: view.prompt_tokens,
            completion: sent.len() as u64,
        };
        let reported = config.usage.apply(honest);
        let frame = Frame {
            id: format!("chatcmpl-rogue-{created}"),
            created,
            model: &config.model,
            finish_reason,
            reported,
        };
        let parts = config.parts.max(1) as usize;
        let content = sent.join(" ");
        let (content_type, parts, completion_after) = if view.stream {
            let (bytes, after) = frame.sse(sent, parts, view.include_usage);
            ("text/event-stream", bytes, after)
        } else {
            let bytes = frame.json(&content, parts);
            let after = vec![honest.completion; bytes.len()];
            ("application/json", bytes, after)
        };
        Self {
            content_type,
            parts,
            completion_after,
            honest,
            reported,
            finish_reason,
            content,
        }
    }

    /// What the worker reports after sending `frames_sent` frames of this answer (for the
    /// acknowledgement of a cancel), under `report`.
    #[must_use]
    pub fn reported_after(&self, frames_sent: usize, report: UsageReport) -> TokenCounts {
        let completion = frames_sent
            .checked_sub(1)
            .and_then(|i| self.completion_after.get(i))
            .copied()
            .unwrap_or(0);
        report.apply(TokenCounts {
            prompt: self.honest.prompt,
            completion,
        })
    }

    /// The whole answer body, every frame in order.
    #[must_use]
    pub fn body(&self) -> Vec<u8> {
        self.parts.concat()
    }
}

/// What every frame of one answer repeats.
struct Frame<'a> {
    id: String,
    created: u64,
    model: &'a str,
    finish_reason: &'static str,
    reported: TokenCounts,
}

impl Frame<'_> {
    fn usage(&self) -> Value {
        json!({
            "prompt_tokens": self.reported.prompt,
            "completion_tokens": self.reported.completion,
            "total_tokens": self.reported.total(),
        })
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish_reason }],
        })
    }

    /// SSE frames: the words shared out over `parts` events, the end events in the last.
    fn sse(&self, words: &[&str], parts: usize, include_usage: bool) -> (Vec<Bytes>, Vec<u64>) {
        let mut frames = Vec::with_capacity(parts);
        let mut after = Vec::with_capacity(parts);
        for i in 0..parts {
            let (from, to) = (i * words.len() / parts, (i + 1) * words.len() / parts);
            let mut text = words[from..to].join(" ");
            if from > 0 && to > from {
                text.insert(0, ' ');
            }
            let delta = if i == 0 {
                json!({ "role": "assistant", "content": text })
            } else {
                json!({ "content": text })
            };
            let mut frame = event(&self.chunk(delta, None));
            if i + 1 == parts {
                frame.push_str(&event(&self.chunk(json!({}), Some(self.finish_reason))));
                if include_usage {
                    let mut usage = self.chunk(json!({}), None);
                    usage["choices"] = json!([]);
                    usage["usage"] = self.usage();
                    frame.push_str(&event(&usage));
                }
                frame.push_str("data: [DONE]\n\n");
            }
            frames.push(Bytes::from(frame));
            after.push(to as u64);
        }
        (frames, after)
    }

    /// One JSON document cut into `parts` byte ranges (fewer when it is shorter).
    fn json(&self, content: &str, parts: usize) -> Vec<Bytes> {
        let document = json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": content },
                "finish_reason": self.finish_reason,
            }],
            "usage": self.usage(),
        });
        let bytes = Bytes::from(document.to_string());
        let parts = parts.min(bytes.len()).max(1);
        (0..parts)
            .map(|i| bytes.slice(i * bytes.len() / parts..(i + 1) * bytes.len() / parts))
            .collect()
    }
}

fn event(value: &Value) -> String {
    format!("data: {value}\n\n")
}

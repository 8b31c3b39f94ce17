//! Rendering of a planned answer on the wire: OpenAI SSE chunks, the reference benchmark's
//! NDJSON lines, or one whole JSON document.
//!
//! [`AnswerStream`] is an `http_body::Body` that renders each frame when hyper asks for it, so
//! a streamed answer needs no channel, no extra task and no buffering of the whole answer, and
//! pauses and injected crashes happen exactly between two chunks.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use serde::Serialize;
use tokio::time::Sleep;

use super::Counters;
use super::answer::{AnswerText, Usage};
use super::overrides::StreamFormat;
use super::request::Endpoint;
use crate::TestkitError;

/// Everything about one answer except its text source.
#[derive(Debug, Clone)]
pub(crate) struct AnswerPlan {
    pub(crate) endpoint: Endpoint,
    pub(crate) format: StreamFormat,
    pub(crate) id: String,
    pub(crate) created: u64,
    pub(crate) model: String,
    /// Content chunks after the `max_tokens` cap.
    pub(crate) chunks: u32,
    pub(crate) chunk_bytes: usize,
    /// `"stop"`, or `"length"` when `max_tokens` cut the answer short.
    pub(crate) finish_reason: &'static str,
    pub(crate) usage: Usage,
    /// Whether a streamed SSE answer ends with a usage chunk (NDJSON always has its usage line).
    pub(crate) usage_chunk: bool,
    pub(crate) delay: Duration,
    pub(crate) first_chunk_delay: Duration,
    /// Abort after this many chunks; only set when it is at most `chunks`.
    pub(crate) fail_after: Option<u32>,
}

impl AnswerPlan {
    /// The pauses a stream makes before it has sent `n` chunks: what a non-streamed answer
    /// waits before it is complete (or crashes).
    pub(crate) fn time_until_chunk(&self, n: u32) -> Duration {
        if n == 0 {
            return Duration::ZERO;
        }
        self.first_chunk_delay
            .saturating_add(self.delay.saturating_mul(n - 1))
    }
}

#[derive(Serialize)]
struct ChatDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    content: &'a str,
}

#[derive(Serialize)]
struct ChatChunkChoice<'a> {
    index: u32,
    delta: ChatDelta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct TextChoice<'a> {
    index: u32,
    text: &'a str,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct ChatChoice<'a> {
    index: u32,
    message: ChatMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

/// The envelope shared by every OpenAI chunk and completion object.
#[derive(Serialize)]
struct Envelope<'a, C> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [C],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<&'a Usage>,
}

#[derive(Serialize)]
struct NdjsonDelta<'a> {
    delta: &'a str,
    i: u32,
}

#[derive(Serialize)]
struct NdjsonUsage<'a> {
    usage: &'a Usage,
}

fn sse_event(payload: &impl Serialize) -> Result<Bytes, TestkitError> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"data: ");
    serde_json::to_writer(&mut out, payload)?;
    out.extend_from_slice(b"\n\n");
    Ok(Bytes::from(out))
}

fn ndjson_line(payload: &impl Serialize) -> Result<Bytes, TestkitError> {
    let mut out = Vec::with_capacity(192);
    serde_json::to_writer(&mut out, payload)?;
    out.push(b'\n');
    Ok(Bytes::from(out))
}

/// The SSE end marker every OpenAI stream finishes with.
const SSE_DONE: &[u8] = b"data: [DONE]\n\n";

impl AnswerPlan {
    fn chunk_object(&self) -> &'static str {
        match self.endpoint {
            Endpoint::Chat => "chat.completion.chunk",
            Endpoint::Completion => "text_completion",
        }
    }

    /// One content event: chunk `index` carrying `content`; the last one carries the finish
    /// reason, as vLLM does.
    fn content_frame(&self, index: u32, content: &str) -> Result<Bytes, TestkitError> {
        let last = index + 1 >= self.chunks;
        let finish_reason = last.then_some(self.finish_reason);
        match (self.format, self.endpoint) {
            (StreamFormat::Ndjson, _) => ndjson_line(&NdjsonDelta {
                delta: content,
                i: index,
            }),
            (StreamFormat::Sse, Endpoint::Chat) => sse_event(&Envelope {
                id: &self.id,
                object: self.chunk_object(),
                created: self.created,
                model: &self.model,
                choices: &[ChatChunkChoice {
                    index: 0,
                    delta: ChatDelta {
                        role: (index == 0).then_some("assistant"),
                        content,
                    },
                    logprobs: None,
                    finish_reason,
                }],
                usage: None,
            }),
            (StreamFormat::Sse, Endpoint::Completion) => sse_event(&Envelope {
                id: &self.id,
                object: self.chunk_object(),
                created: self.created,
                model: &self.model,
                choices: &[TextChoice {
                    index: 0,
                    text: content,
                    logprobs: None,
                    finish_reason,
                }],
                usage: None,
            }),
        }
    }

    fn usage_frame(&self) -> Result<Bytes, TestkitError> {
        match self.format {
            StreamFormat::Ndjson => ndjson_line(&NdjsonUsage { usage: &self.usage }),
            StreamFormat::Sse => sse_event(&Envelope::<TextChoice<'_>> {
                id: &self.id,
                object: self.chunk_object(),
                created: self.created,
                model: &self.model,
                choices: &[],
                usage: Some(&self.usage),
            }),
        }
    }

    /// The whole non-streamed answer: one `chat.completion` or `text_completion` document.
    pub(crate) fn whole_document(&self, text: &str) -> Result<Bytes, TestkitError> {
        let bytes = match self.endpoint {
            Endpoint::Chat => serde_json::to_vec(&Envelope {
                id: &self.id,
                object: "chat.completion",
                created: self.created,
                model: &self.model,
                choices: &[ChatChoice {
                    index: 0,
                    message: ChatMessage {
                        role: "assistant",
                        content: text,
                    },
                    logprobs: None,
                    finish_reason: self.finish_reason,
                }],
                usage: Some(&self.usage),
            })?,
            Endpoint::Completion => serde_json::to_vec(&Envelope {
                id: &self.id,
                object: "text_completion",
                created: self.created,
                model: &self.model,
                choices: &[TextChoice {
                    index: 0,
                    text,
                    logprobs: None,
                    finish_reason: Some(self.finish_reason),
                }],
                usage: Some(&self.usage),
            })?,
        };
        Ok(Bytes::from(bytes))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Content,
    Usage,
    Done,
    Finished,
}

/// A streamed answer, rendered frame by frame as hyper asks for it.
pub(crate) struct AnswerStream {
    plan: AnswerPlan,
    text: AnswerText,
    scratch: String,
    stage: Stage,
    /// Content events sent so far.
    sent: u32,
    /// Whether the finish-only event of a zero-chunk SSE answer was sent.
    sent_empty_finish: bool,
    /// The pause before the next chunk, while it runs.
    pause: Option<Pin<Box<Sleep>>>,
    /// The chunk whose pause has elapsed.
    paused_for: Option<u32>,
    /// Set once the stream has let hyper flush before an injected abort.
    abort_flushed: bool,
    counters: Arc<Counters>,
}

impl AnswerStream {
    pub(crate) fn new(plan: AnswerPlan, text: AnswerText, counters: Arc<Counters>) -> Self {
        Self {
            scratch: String::with_capacity(plan.chunk_bytes),
            plan,
            text,
            stage: Stage::Content,
            sent: 0,
            sent_empty_finish: false,
            pause: None,
            paused_for: None,
            abort_flushed: false,
            counters,
        }
    }

    /// Waits out the pause owed before chunk `self.sent`, if any.
    fn poll_pause(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.paused_for == Some(self.sent) {
            return Poll::Ready(());
        }
        let owed = if self.sent == 0 {
            self.plan.first_chunk_delay
        } else {
            self.plan.delay
        };
        if owed.is_zero() {
            return Poll::Ready(());
        }
        let pause = self
            .pause
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(owed)));
        match pause.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                self.pause = None;
                self.paused_for = Some(self.sent);
                Poll::Ready(())
            }
        }
    }

    fn next_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, TestkitError>>> {
        loop {
            match self.stage {
                Stage::Content => {
                    if self.plan.fail_after == Some(self.sent) {
                        // Hand control back once so hyper flushes the chunks already written;
                        // the client then sees exactly `sent` chunks before the connection dies.
                        if !self.abort_flushed {
                            self.abort_flushed = true;
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                        self.stage = Stage::Finished;
                        self.counters.aborted.fetch_add(1, RELAXED);
                        return Poll::Ready(Some(Err(TestkitError::InjectedFailure {
                            chunks: self.sent,
                        })));
                    }
                    if self.sent < self.plan.chunks {
                        if self.poll_pause(cx).is_pending() {
                            return Poll::Pending;
                        }
                        self.scratch.clear();
                        self.text
                            .next_chunk_into(self.plan.chunk_bytes, &mut self.scratch);
                        let frame = self.plan.content_frame(self.sent, &self.scratch);
                        self.sent += 1;
                        return Poll::Ready(Some(frame));
                    }
                    self.stage = Stage::Usage;
                    if self.plan.chunks == 0
                        && self.plan.format == StreamFormat::Sse
                        && !self.sent_empty_finish
                    {
                        self.sent_empty_finish = true;
                        return Poll::Ready(Some(self.plan.content_frame(0, "")));
                    }
                }
                Stage::Usage => {
                    self.stage = Stage::Done;
                    if self.plan.format == StreamFormat::Ndjson || self.plan.usage_chunk {
                        return Poll::Ready(Some(self.plan.usage_frame()));
                    }
                }
                Stage::Done => {
                    self.stage = Stage::Finished;
                    if self.plan.format == StreamFormat::Sse {
                        return Poll::Ready(Some(Ok(Bytes::from_static(SSE_DONE))));
                    }
                }
                Stage::Finished => return Poll::Ready(None),
            }
        }
    }
}

const RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;

/// A response body: a whole document, or a stream rendered on demand.
pub(crate) enum AnswerBody {
    /// Sent at once; `None` once taken.
    Whole(Option<Bytes>),
    /// Rendered chunk by chunk.
    Stream(Box<AnswerStream>),
}

impl AnswerBody {
    pub(crate) fn whole(bytes: impl Into<Bytes>) -> Self {
        Self::Whole(Some(bytes.into()))
    }
}

impl Body for AnswerBody {
    type Data = Bytes;
    type Error = TestkitError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, TestkitError>>> {
        match self.get_mut() {
            Self::Whole(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Stream(stream) => stream
                .next_frame(cx)
                .map(|frame| frame.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Whole(bytes) => bytes.is_none(),
            Self::Stream(stream) => stream.stage == Stage::Finished,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Whole(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Self::Whole(None) => SizeHint::with_exact(0),
            Self::Stream(_) => SizeHint::default(),
        }
    }
}

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

fn sse_event(out: &mut Vec<u8>, payload: &impl Serialize) -> Result<(), TestkitError> {
    out.extend_from_slice(b"data: ");
    serde_json::to_writer(&mut *out, payload)?;
    out.extend_from_slice(b"\n\n");
    Ok(())
}

fn ndjson_line(out: &mut Vec<u8>, payload: &impl Serialize) -> Result<(), TestkitError> {
    serde_json::to_writer(&mut *out, payload)?;
    out.push(b'\n');
    Ok(())
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
    fn content_event(
        &self,
        out: &mut Vec<u8>,
        index: u32,
        content: &str,
    ) -> Result<(), TestkitError> {
        let last = index + 1 >= self.chunks;
        let finish_reason = last.then_some(self.finish_reason);
        match (self.format, self.endpoint) {
            (StreamFormat::Ndjson, _) => ndjson_line(
                out,
                &NdjsonDelta {
                    delta: content,
                    i: index,
                },
            ),
            (StreamFormat::Sse, Endpoint::Chat) => sse_event(
                out,
                &Envelope {
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
                },
            ),
            (StreamFormat::Sse, Endpoint::Completion) => sse_event(
                out,
                &Envelope {
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
                },
            ),
        }
    }

    fn usage_event(&self, out: &mut Vec<u8>) -> Result<(), TestkitError> {
        match self.format {
            StreamFormat::Ndjson => ndjson_line(out, &NdjsonUsage { usage: &self.usage }),
            StreamFormat::Sse => sse_event(
                out,
                &Envelope::<TextChoice<'_>> {
                    id: &self.id,
                    object: self.chunk_object(),
                    created: self.created,
                    model: &self.model,
                    choices: &[],
                    usage: Some(&self.usage),
                },
            ),
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
            pause: None,
            paused_for: None,
            abort_flushed: false,
            counters,
        }
    }

    /// Whether a pause is owed before chunk `self.sent` and has not yet been waited out.
    fn owes_pause(&self) -> bool {
        let owed = if self.sent == 0 {
            self.plan.first_chunk_delay
        } else {
            self.plan.delay
        };
        !owed.is_zero() && self.paused_for != Some(self.sent)
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

    /// Renders as much of the answer as can go out now into one frame: consecutive chunks
    /// that owe no pause are batched (up to [`BATCH_BYTES`]), as an engine's HTTP server
    /// buffers what it writes between flushes; a pause or an injected abort ends the batch.
    fn next_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, TestkitError>>> {
        let mut out = Vec::new();
        let ready = |out: Vec<u8>| Poll::Ready(Some(Ok(Bytes::from(out))));
        loop {
            match self.stage {
                Stage::Content => {
                    if self.plan.fail_after == Some(self.sent) {
                        if !out.is_empty() {
                            return ready(out);
                        }
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
                        if self.owes_pause() {
                            if !out.is_empty() {
                                return ready(out);
                            }
                            if self.poll_pause(cx).is_pending() {
                                return Poll::Pending;
                            }
                        }
                        if out.capacity() == 0 {
                            out.reserve(
                                BATCH_BYTES.min(
                                    (self.plan.chunk_bytes + 256).saturating_mul(
                                        (self.plan.chunks - self.sent) as usize + 1,
                                    ),
                                ),
                            );
                        }
                        self.scratch.clear();
                        self.text
                            .next_chunk_into(self.plan.chunk_bytes, &mut self.scratch);
                        if let Err(error) =
                            self.plan.content_event(&mut out, self.sent, &self.scratch)
                        {
                            self.stage = Stage::Finished;
                            return Poll::Ready(Some(Err(error)));
                        }
                        self.sent += 1;
                        if out.len() >= BATCH_BYTES {
                            return ready(out);
                        }
                        continue;
                    }
                    self.stage = Stage::Usage;
                    if self.plan.chunks == 0
                        && self.plan.format == StreamFormat::Sse
                        && let Err(error) = self.plan.content_event(&mut out, 0, "")
                    {
                        self.stage = Stage::Finished;
                        return Poll::Ready(Some(Err(error)));
                    }
                }
                Stage::Usage => {
                    self.stage = Stage::Done;
                    if (self.plan.format == StreamFormat::Ndjson || self.plan.usage_chunk)
                        && let Err(error) = self.plan.usage_event(&mut out)
                    {
                        self.stage = Stage::Finished;
                        return Poll::Ready(Some(Err(error)));
                    }
                }
                Stage::Done => {
                    self.stage = Stage::Finished;
                    if self.plan.format == StreamFormat::Sse {
                        out.extend_from_slice(SSE_DONE);
                    }
                }
                Stage::Finished => {
                    return if out.is_empty() {
                        Poll::Ready(None)
                    } else {
                        ready(out)
                    };
                }
            }
        }
    }
}

/// Bytes of consecutive unpaused chunks rendered into one frame.
const BATCH_BYTES: usize = 16 * 1024;

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

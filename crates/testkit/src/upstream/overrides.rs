//! The shape of a fake answer (size, pacing, format, injected faults) and its per-request
//! overrides through `x-fake-*` request headers.
//!
//! The server is started with default [`AnswerShape`]; any request may override each knob with
//! the header of the same meaning, so one running engine can serve every case of a test suite.
//!
//! | header | value | meaning |
//! | --- | --- | --- |
//! | `x-fake-chunks` | integer | content chunks (= completion tokens) before `max_tokens` caps them |
//! | `x-fake-chunk-bytes` | integer | bytes of content per chunk |
//! | `x-fake-delay-ms` | integer | pause before each chunk after the first |
//! | `x-fake-ttft-ms` | integer | pause before the first chunk (time to first token) |
//! | `x-fake-fail-after` | integer or `none` | abort the connection after that many chunks |
//! | `x-fake-format` | `sse` or `ndjson` | streaming format (`ndjson` is the reference benchmark's) |
//! | `x-fake-usage` | `requested` or `always` | when a streamed answer ends with a usage chunk |
//! | `x-fake-cached-tokens` | integer | `prompt_tokens_details.cached_tokens` (capped by prompt tokens) |
//! | `x-fake-reasoning-tokens` | integer | `completion_tokens_details.reasoning_tokens` (capped) |
//! | `x-fake-status` | 400–599 | answer with this status and an OpenAI error body instead |

use std::time::Duration;

use http::HeaderMap;

/// Header overriding [`AnswerShape::chunks`].
pub const HEADER_CHUNKS: &str = "x-fake-chunks";
/// Header overriding [`AnswerShape::chunk_bytes`].
pub const HEADER_CHUNK_BYTES: &str = "x-fake-chunk-bytes";
/// Header overriding [`AnswerShape::delay`], in milliseconds.
pub const HEADER_DELAY_MS: &str = "x-fake-delay-ms";
/// Header overriding [`AnswerShape::first_chunk_delay`], in milliseconds.
pub const HEADER_TTFT_MS: &str = "x-fake-ttft-ms";
/// Header overriding [`AnswerShape::fail_after`]; `none` disables a server-wide setting.
pub const HEADER_FAIL_AFTER: &str = "x-fake-fail-after";
/// Header overriding [`AnswerShape::format`]: `sse` or `ndjson`.
pub const HEADER_FORMAT: &str = "x-fake-format";
/// Header overriding [`AnswerShape::usage`]: `requested` or `always`.
pub const HEADER_USAGE: &str = "x-fake-usage";
/// Header overriding [`AnswerShape::cached_tokens`].
pub const HEADER_CACHED_TOKENS: &str = "x-fake-cached-tokens";
/// Header overriding [`AnswerShape::reasoning_tokens`].
pub const HEADER_REASONING_TOKENS: &str = "x-fake-reasoning-tokens";
/// Header overriding [`AnswerShape::fail_status`].
pub const HEADER_STATUS: &str = "x-fake-status";

/// Most chunks one answer may have, so a typo cannot make the engine stream for hours.
pub const MAX_CHUNKS: u32 = 1_000_000;
/// Most bytes one chunk may carry.
pub const MAX_CHUNK_BYTES: u32 = 1 << 20;
/// Longest pause that may be asked for.
pub const MAX_DELAY: Duration = Duration::from_secs(600);

/// How a streamed answer is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StreamFormat {
    /// OpenAI server-sent events: `data: {chunk}\n\n` … `data: [DONE]\n\n`
    /// (`text/event-stream`).
    #[default]
    Sse,
    /// The reference COCOON benchmark's upstream: one `{"delta":…,"i":N}` line per chunk and a
    /// final `{"usage":…}` line, sent whether or not `stream` was asked for
    /// (`application/json`, as the reference relayed it).
    Ndjson,
}

/// When a streamed SSE answer ends with a usage chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UsagePolicy {
    /// Only when the request sets `stream_options.include_usage` (what vLLM and OpenAI do).
    #[default]
    Requested,
    /// On every streamed answer.
    Always,
}

/// Everything that decides the size, pace and fate of an answer, apart from the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AnswerShape {
    /// Content chunks, each one completion token; capped by the request's `max_tokens`.
    pub chunks: u32,
    /// Bytes of content per chunk.
    pub chunk_bytes: u32,
    /// Pause before each chunk after the first.
    pub delay: Duration,
    /// Pause before the first chunk.
    pub first_chunk_delay: Duration,
    /// Abort the TCP connection after this many content chunks (a crashed engine). A value
    /// above the answer's chunk count never fires; for a non-streamed answer, any value that
    /// fires closes the connection before a response is sent.
    pub fail_after: Option<u32>,
    /// Framing of streamed answers.
    pub format: StreamFormat,
    /// When streamed SSE answers carry a usage chunk.
    pub usage: UsagePolicy,
    /// Cached prompt tokens to report.
    pub cached_tokens: u64,
    /// Reasoning tokens to report.
    pub reasoning_tokens: u64,
    /// Answer every request with this HTTP status and an OpenAI error body.
    pub fail_status: Option<http::StatusCode>,
}

impl Default for AnswerShape {
    /// The reference benchmark's answer: 50 chunks of 128 bytes, no pauses, no faults.
    fn default() -> Self {
        Self {
            chunks: 50,
            chunk_bytes: 128,
            delay: Duration::ZERO,
            first_chunk_delay: Duration::ZERO,
            fail_after: None,
            format: StreamFormat::Sse,
            usage: UsagePolicy::Requested,
            cached_tokens: 0,
            reasoning_tokens: 0,
            fail_status: None,
        }
    }
}

/// Why a request's `x-fake-*` header was refused; becomes a 400 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefusedOverride {
    pub(crate) header: &'static str,
    pub(crate) expected: &'static str,
}

impl std::fmt::Display for RefusedOverride {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "header {} must be {}", self.header, self.expected)
    }
}

impl AnswerShape {
    /// Checks that a shape respects the limits ([`MAX_CHUNKS`], [`MAX_CHUNK_BYTES`],
    /// [`MAX_DELAY`], an error status); used for server-wide settings.
    pub(crate) fn check(&self) -> Result<(), RefusedOverride> {
        let refuse = |header, expected| Err(RefusedOverride { header, expected });
        if self.chunks > MAX_CHUNKS {
            return refuse(HEADER_CHUNKS, "at most 1000000");
        }
        if self.chunk_bytes > MAX_CHUNK_BYTES {
            return refuse(HEADER_CHUNK_BYTES, "at most 1048576");
        }
        if self.delay > MAX_DELAY {
            return refuse(HEADER_DELAY_MS, "at most 600000");
        }
        if self.first_chunk_delay > MAX_DELAY {
            return refuse(HEADER_TTFT_MS, "at most 600000");
        }
        if self
            .fail_status
            .is_some_and(|s| !(s.is_client_error() || s.is_server_error()))
        {
            return refuse(HEADER_STATUS, "a status from 400 to 599");
        }
        Ok(())
    }

    /// This shape with the request's `x-fake-*` headers applied.
    pub(crate) fn overridden_by(&self, headers: &HeaderMap) -> Result<Self, RefusedOverride> {
        let mut shape = self.clone();
        if headers.is_empty() {
            return Ok(shape);
        }
        if let Some(v) = header_u64(headers, HEADER_CHUNKS, "an integer up to 1000000")? {
            shape.chunks = small(v, MAX_CHUNKS, HEADER_CHUNKS, "an integer up to 1000000")?;
        }
        if let Some(v) = header_u64(headers, HEADER_CHUNK_BYTES, "an integer up to 1048576")? {
            shape.chunk_bytes = small(
                v,
                MAX_CHUNK_BYTES,
                HEADER_CHUNK_BYTES,
                "an integer up to 1048576",
            )?;
        }
        if let Some(v) = header_u64(headers, HEADER_DELAY_MS, "milliseconds up to 600000")? {
            shape.delay = Duration::from_millis(v);
        }
        if let Some(v) = header_u64(headers, HEADER_TTFT_MS, "milliseconds up to 600000")? {
            shape.first_chunk_delay = Duration::from_millis(v);
        }
        if let Some(text) = header_str(headers, HEADER_FAIL_AFTER, "an integer or none")? {
            shape.fail_after = if text.eq_ignore_ascii_case("none") {
                None
            } else {
                let v = text.parse::<u32>().map_err(|_| RefusedOverride {
                    header: HEADER_FAIL_AFTER,
                    expected: "an integer or none",
                })?;
                Some(v)
            };
        }
        if let Some(text) = header_str(headers, HEADER_FORMAT, "sse or ndjson")? {
            shape.format = match text.to_ascii_lowercase().as_str() {
                "sse" => StreamFormat::Sse,
                "ndjson" => StreamFormat::Ndjson,
                _ => {
                    return Err(RefusedOverride {
                        header: HEADER_FORMAT,
                        expected: "sse or ndjson",
                    });
                }
            };
        }
        if let Some(text) = header_str(headers, HEADER_USAGE, "requested or always")? {
            shape.usage = match text.to_ascii_lowercase().as_str() {
                "requested" => UsagePolicy::Requested,
                "always" => UsagePolicy::Always,
                _ => {
                    return Err(RefusedOverride {
                        header: HEADER_USAGE,
                        expected: "requested or always",
                    });
                }
            };
        }
        if let Some(v) = header_u64(headers, HEADER_CACHED_TOKENS, "an integer")? {
            shape.cached_tokens = v;
        }
        if let Some(v) = header_u64(headers, HEADER_REASONING_TOKENS, "an integer")? {
            shape.reasoning_tokens = v;
        }
        if let Some(v) = header_u64(headers, HEADER_STATUS, "a status from 400 to 599")? {
            let status = u16::try_from(v)
                .ok()
                .and_then(|v| http::StatusCode::from_u16(v).ok())
                .ok_or(RefusedOverride {
                    header: HEADER_STATUS,
                    expected: "a status from 400 to 599",
                })?;
            shape.fail_status = Some(status);
        }
        shape.check()?;
        Ok(shape)
    }
}

fn header_str<'h>(
    headers: &'h HeaderMap,
    header: &'static str,
    expected: &'static str,
) -> Result<Option<&'h str>, RefusedOverride> {
    match headers.get(header) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| RefusedOverride { header, expected }),
    }
}

fn header_u64(
    headers: &HeaderMap,
    header: &'static str,
    expected: &'static str,
) -> Result<Option<u64>, RefusedOverride> {
    match header_str(headers, header, expected)? {
        None => Ok(None),
        Some(text) => text
            .parse::<u64>()
            .map(Some)
            .map_err(|_| RefusedOverride { header, expected }),
    }
}

fn small(
    v: u64,
    max: u32,
    header: &'static str,
    expected: &'static str,
) -> Result<u32, RefusedOverride> {
    u32::try_from(v)
        .ok()
        .filter(|v| *v <= max)
        .ok_or(RefusedOverride { header, expected })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn headers_override_each_knob() {
        let base = AnswerShape {
            fail_after: Some(3),
            ..AnswerShape::default()
        };
        let shape = base
            .overridden_by(&headers(&[
                (HEADER_CHUNKS, "7"),
                (HEADER_CHUNK_BYTES, "16"),
                (HEADER_DELAY_MS, "5"),
                (HEADER_TTFT_MS, "9"),
                (HEADER_FAIL_AFTER, "none"),
                (HEADER_FORMAT, "NDJSON"),
                (HEADER_USAGE, "always"),
                (HEADER_CACHED_TOKENS, "2"),
                (HEADER_REASONING_TOKENS, "1"),
                (HEADER_STATUS, "503"),
            ]))
            .unwrap_or_default();
        assert_eq!(shape.chunks, 7);
        assert_eq!(shape.chunk_bytes, 16);
        assert_eq!(shape.delay, Duration::from_millis(5));
        assert_eq!(shape.first_chunk_delay, Duration::from_millis(9));
        assert_eq!(shape.fail_after, None);
        assert_eq!(shape.format, StreamFormat::Ndjson);
        assert_eq!(shape.usage, UsagePolicy::Always);
        assert_eq!(shape.cached_tokens, 2);
        assert_eq!(shape.reasoning_tokens, 1);
        assert_eq!(
            shape.fail_status,
            Some(http::StatusCode::SERVICE_UNAVAILABLE)
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_header_name() {
        let base = AnswerShape::default();
        for (name, value) in [
            (HEADER_CHUNKS, "many"),
            (HEADER_CHUNKS, "1000001"),
            (HEADER_CHUNK_BYTES, "-1"),
            (HEADER_DELAY_MS, "600001"),
            (HEADER_FAIL_AFTER, "soon"),
            (HEADER_FORMAT, "xml"),
            (HEADER_USAGE, "sometimes"),
            (HEADER_STATUS, "200"),
            (HEADER_STATUS, "70000"),
        ] {
            let refused = base.overridden_by(&headers(&[(name, value)]));
            assert_eq!(refused.map_err(|r| r.header), Err(name), "{name}: {value}");
        }
    }
}

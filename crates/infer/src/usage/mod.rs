//! Token metering of OpenAI-compatible answers as their bytes stream past: the numbers a worker
//! is paid by, read from SSE streams, single JSON bodies and NDJSON streams alike.
//!
//! # Why incremental
//!
//! The reference worker re-parses the whole accumulated answer to count tokens, about 1 ms of
//! CPU per request, and reads only NDJSON, so SSE answers from vLLM or SGLang go unmetered.
//! [`UsageMeter`] is fed each body chunk once, as it is relayed, with chunk boundaries anywhere
//! (inside an SSE line, a JSON string, an escape or a UTF-8 character), and never looks at a
//! byte twice. It copies nothing but the `usage` object itself, under a fixed cap of
//! [`MAX_USAGE_OBJECT_BYTES`], so memory stays constant whatever an upstream sends.
//!
//! # Formats
//!
//! - **SSE** (`text/event-stream`): `data:` lines are fed to the JSON scanner; other fields and
//!   comments are skipped, `data: [DONE]` is noticed ([`UsageMeter::saw_done`]). With
//!   `stream_options.include_usage`, vLLM, SGLang and llama.cpp server end with a chunk whose
//!   `usage` is set; with vLLM's continuous usage stats every chunk carries the running total.
//! - **JSON**: one document (compact or pretty-printed) with a top-level `usage` object, or a
//!   stream of documents such as NDJSON (the reference benchmark's `{"delta":…}` lines followed
//!   by a `{"usage":…}` line).
//!
//! [`BodyFormat::Auto`] tells them apart by the first non-blank byte: `{` or `[` means JSON,
//! anything else SSE. Only a `usage` key directly inside a top-level object counts; when several
//! values carry one, the last wins (running totals grow).
//!
//! # Which numbers
//!
//! From `usage`: `prompt_tokens`, `completion_tokens`, `total_tokens`,
//! `prompt_tokens_details.cached_tokens`, and `completion_tokens_details.reasoning_tokens` (or
//! `reasoning_tokens` directly in `usage`, where some servers put it). A missing prompt or
//! completion count is derived from `total_tokens`; with only `total_tokens`, all of it counts
//! as prompt tokens, the category that never costs more. Cached and reasoning counts are capped
//! by the totals they are part of. A `usage` object that does not parse, or has none of the
//! three counts, is ignored and counted in [`MeterStats::malformed_usage`].
//!
//! Before any `usage`, llama.cpp's `timings` object (top-level, in every streamed chunk when
//! the request asks for `timings_per_token`) gives the running counts: `prompt_n + cache_n`
//! prompt tokens of which `cache_n` cached, `predicted_n` completion tokens. It is what a
//! stream stopped early is billed by, since llama.cpp sends `usage` only at the end.
//!
//! # The estimate when an upstream reports nothing
//!
//! An upstream that ignores `include_usage` (or dies before its usage chunk) leaves the meter
//! with an estimate, flagged [`UsageSource::Estimated`]: one completion token per streamed
//! value carrying non-empty generated text (`content`, `text`, `delta`, `reasoning_content`,
//! `reasoning` or tool-call `arguments`), which is exact for engines that send one token per
//! chunk, as vLLM, SGLang and llama.cpp do by default; for a single JSON document, one token per
//! [`ESTIMATE_BYTES_PER_TOKEN`] bytes of such text. The meter never sees the prompt, so the
//! estimate's prompt count is 0; the caller, which knows the request, may fill it in.

mod scan;

pub use scan::MAX_USAGE_OBJECT_BYTES;
use scan::{JsonScanner, ScanSink, ValueTally};

use crate::TokenUsage;

/// Bytes of generated text counted as one token when a single JSON document has to be
/// estimated (a common rule of thumb for English text with BPE tokenizers).
pub const ESTIMATE_BYTES_PER_TOKEN: u64 = 4;

/// How the body to meter is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyFormat {
    /// Decide from the first non-blank byte: `{` or `[` is JSON, anything else SSE.
    #[default]
    Auto,
    /// Server-sent events.
    Sse,
    /// One JSON document or a stream of them (NDJSON).
    Json,
}

impl BodyFormat {
    /// The format a `Content-Type` announces: SSE for `text/event-stream`, otherwise
    /// [`BodyFormat::Auto`] (the reference relays NDJSON as `application/json`).
    #[must_use]
    pub fn from_content_type(content_type: Option<&str>) -> Self {
        let essence = content_type
            .and_then(|value| value.split(';').next())
            .map(str::trim);
        match essence {
            Some(media) if media.eq_ignore_ascii_case("text/event-stream") => Self::Sse,
            _ => Self::Auto,
        }
    }
}

/// Where the numbers of a [`MeteredUsage`] come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageSource {
    /// The upstream's own `usage` object.
    Reported,
    /// Counted by the meter because the upstream reported no usage (see the module docs).
    Estimated,
}

/// The usage of an answer as metered so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeteredUsage {
    /// Token counts by billing category.
    pub usage: TokenUsage,
    /// Whether they were reported or estimated.
    pub source: UsageSource,
    /// `total_tokens` as the upstream reported it, for cross-checking; billing uses the
    /// categories, whose sum is [`TokenUsage::total`].
    pub reported_total: Option<u64>,
}

/// Counters of what the meter has seen, for diagnostics and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MeterStats {
    /// Body bytes fed.
    pub bytes: u64,
    /// Top-level JSON values (SSE events, NDJSON lines or documents) that ended.
    pub values: u64,
    /// Those with non-empty generated text.
    pub content_values: u64,
    /// Bytes of generated text, as written in JSON (escapes included).
    pub content_bytes: u64,
    /// `usage` objects that parsed.
    pub usage_objects: u64,
    /// `usage` objects that did not parse or had no counts.
    pub malformed_usage: u64,
    /// `usage` objects dropped for exceeding [`MAX_USAGE_OBJECT_BYTES`].
    pub oversized_usage: u64,
}

/// The shape of an OpenAI `usage` object, as far as billing reads it; other fields (costs,
/// timings) are ignored.
#[derive(Debug, serde::Deserialize)]
struct UsageObject {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    total_tokens: Option<u64>,
    prompt_tokens_details: Option<PromptTokensDetails>,
    completion_tokens_details: Option<CompletionTokensDetails>,
    reasoning_tokens: Option<u64>,
}

#[derive(Debug, serde::Deserialize)]
struct PromptTokensDetails {
    cached_tokens: Option<u64>,
}

#[derive(Debug, serde::Deserialize)]
struct CompletionTokensDetails {
    reasoning_tokens: Option<u64>,
}

impl UsageObject {
    fn to_usage(&self) -> Option<(TokenUsage, Option<u64>)> {
        let (prompt, completion) = match (self.prompt_tokens, self.completion_tokens) {
            (Some(p), Some(c)) => (p, c),
            (Some(p), None) => (p, self.total_tokens.map_or(0, |t| t.saturating_sub(p))),
            (None, Some(c)) => (self.total_tokens.map_or(0, |t| t.saturating_sub(c)), c),
            (None, None) => (self.total_tokens?, 0),
        };
        let cached = self
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0);
        let reasoning = self
            .completion_tokens_details
            .as_ref()
            .and_then(|d| d.reasoning_tokens)
            .or(self.reasoning_tokens)
            .unwrap_or(0);
        let usage = TokenUsage {
            prompt_tokens: prompt,
            cached_tokens: cached.min(prompt),
            completion_tokens: completion,
            reasoning_tokens: reasoning.min(completion),
        };
        Some((usage, self.total_tokens))
    }
}

/// llama.cpp's `timings` object, which it sends in every streamed chunk when asked for
/// `timings_per_token`: running counts of the prompt tokens evaluated (`prompt_n`) and taken from
/// its cache (`cache_n`), and of the tokens generated so far (`predicted_n`).
#[derive(Debug, serde::Deserialize)]
struct TimingsObject {
    prompt_n: u64,
    #[serde(default)]
    cache_n: u64,
    predicted_n: u64,
}

impl TimingsObject {
    fn to_usage(&self) -> TokenUsage {
        let prompt = self.prompt_n.saturating_add(self.cache_n);
        TokenUsage {
            prompt_tokens: prompt,
            cached_tokens: self.cache_n.min(prompt),
            completion_tokens: self.predicted_n,
            reasoning_tokens: 0,
        }
    }
}

/// What the scanner reports, folded into counts.
#[derive(Debug, Default)]
struct Tallies {
    reported: Option<(TokenUsage, Option<u64>)>,
    /// The last llama.cpp `timings` that parsed: the running count before its final `usage`.
    timings: Option<TokenUsage>,
    stats: MeterStats,
}

impl ScanSink for Tallies {
    fn usage_object(&mut self, bytes: &[u8]) {
        match serde_json::from_slice::<UsageObject>(bytes)
            .ok()
            .and_then(|object| object.to_usage())
        {
            Some(reported) => {
                self.reported = Some(reported);
                self.stats.usage_objects += 1;
            }
            None => self.stats.malformed_usage += 1,
        }
    }

    fn timings_object(&mut self, bytes: &[u8]) {
        // Not usage: a malformed one only leaves the meter with its estimate.
        if let Ok(timings) = serde_json::from_slice::<TimingsObject>(bytes) {
            self.timings = Some(timings.to_usage());
        }
    }

    fn usage_oversized(&mut self) {
        self.stats.oversized_usage += 1;
    }

    fn value_end(&mut self, tally: ValueTally) {
        self.stats.values += 1;
        if tally.has_content {
            self.stats.content_values += 1;
        }
        self.stats.content_bytes = self.stats.content_bytes.saturating_add(tally.content_bytes);
    }
}

/// Where the SSE line parser is within a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinePart {
    /// In the field name; `matched` bytes of `data` so far, `still_data` while they all match.
    Field { matched: u8, still_data: bool },
    /// In the value of a field; `skip_space` before its first byte (one space is dropped).
    Value { data: bool, skip_space: bool },
}

const LINE_START: LinePart = LinePart::Field {
    matched: 0,
    still_data: true,
};

/// The SSE end-of-stream marker.
const DONE_MARKER: &[u8] = b"[DONE]";

/// SSE line and event state.
#[derive(Debug)]
struct SseLines {
    part: LinePart,
    /// No byte of the current line consumed yet.
    line_empty: bool,
    /// The last line ended with `\r`; a `\n` right after it belongs to the same line break.
    after_cr: bool,
    /// `data` lines in the current event.
    data_lines: u32,
    /// Data bytes in the current event (line joins included).
    data_len: u64,
    /// The event's data so far could still be `[DONE]`.
    maybe_done: bool,
    /// A `data: [DONE]` event was seen.
    done: bool,
}

impl Default for SseLines {
    fn default() -> Self {
        Self {
            part: LINE_START,
            line_empty: true,
            after_cr: false,
            data_lines: 0,
            data_len: 0,
            maybe_done: true,
            done: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Waiting for the first non-blank byte; `blank_in_line` when blanks were skipped on the
    /// current line (so an SSE field name starting after them cannot be `data`).
    Detecting {
        blank_in_line: bool,
    },
    Sse,
    Json,
}

/// An incremental token-usage meter for one answer body. See the module docs.
#[derive(Debug)]
pub struct UsageMeter {
    mode: Mode,
    sse: SseLines,
    scanner: JsonScanner,
    tallies: Tallies,
}

impl Default for UsageMeter {
    fn default() -> Self {
        Self::new(BodyFormat::Auto)
    }
}

impl UsageMeter {
    /// A meter for a body of the given format.
    #[must_use]
    pub fn new(format: BodyFormat) -> Self {
        let mode = match format {
            BodyFormat::Auto => Mode::Detecting {
                blank_in_line: false,
            },
            BodyFormat::Sse => Mode::Sse,
            BodyFormat::Json => Mode::Json,
        };
        Self {
            mode,
            sse: SseLines::default(),
            scanner: JsonScanner::default(),
            tallies: Tallies::default(),
        }
    }

    /// Meters the next bytes of the body.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        self.tallies.stats.bytes = self.tallies.stats.bytes.saturating_add(bytes.len() as u64);
        if let Mode::Detecting { blank_in_line } = self.mode {
            let Some(first) = bytes
                .iter()
                .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            else {
                let blank_in_line = match bytes.iter().rposition(|b| matches!(b, b'\n' | b'\r')) {
                    Some(end) => end + 1 < bytes.len(),
                    None => blank_in_line || !bytes.is_empty(),
                };
                self.mode = Mode::Detecting { blank_in_line };
                return;
            };
            let blank_in_line = match bytes[..first]
                .iter()
                .rposition(|b| matches!(b, b'\n' | b'\r'))
            {
                Some(end) => end + 1 < first,
                None => blank_in_line || first > 0,
            };
            if matches!(bytes[first], b'{' | b'[') {
                self.mode = Mode::Json;
            } else {
                self.mode = Mode::Sse;
                if blank_in_line {
                    self.sse.line_empty = false;
                    self.sse.part = LinePart::Field {
                        matched: 0,
                        still_data: false,
                    };
                }
            }
            bytes = &bytes[first..];
        }
        match self.mode {
            Mode::Json => self.scanner.scan(bytes, &mut self.tallies),
            Mode::Sse => self.feed_sse(bytes),
            Mode::Detecting { .. } => {}
        }
    }

    fn feed_sse(&mut self, input: &[u8]) {
        let mut i = 0;
        while i < input.len() {
            if self.sse.after_cr {
                self.sse.after_cr = false;
                if input[i] == b'\n' {
                    i += 1;
                    continue;
                }
            }
            let rest = &input[i..];
            match self.sse.part {
                LinePart::Field {
                    mut matched,
                    mut still_data,
                } => {
                    let end = memchr::memchr3(b':', b'\n', b'\r', rest);
                    let name = &rest[..end.unwrap_or(rest.len())];
                    if still_data {
                        for &byte in name {
                            if usize::from(matched) < 4 && byte == b"data"[usize::from(matched)] {
                                matched += 1;
                            } else {
                                still_data = false;
                                break;
                            }
                        }
                    }
                    if !name.is_empty() {
                        self.sse.line_empty = false;
                    }
                    let is_data = still_data && matched == 4;
                    match end {
                        None => {
                            self.sse.part = LinePart::Field {
                                matched,
                                still_data,
                            };
                            i = input.len();
                        }
                        Some(at) if rest[at] == b':' => {
                            if is_data {
                                self.data_line_starts();
                            }
                            self.sse.line_empty = false;
                            self.sse.part = LinePart::Value {
                                data: is_data,
                                skip_space: true,
                            };
                            i += at + 1;
                        }
                        Some(at) => {
                            if self.sse.line_empty {
                                self.dispatch_event();
                            } else if is_data {
                                // `data` alone on a line: an empty data line.
                                self.data_line_starts();
                            }
                            self.line_ends(rest[at]);
                            i += at + 1;
                        }
                    }
                }
                LinePart::Value { data, skip_space } => {
                    let mut rest = rest;
                    if skip_space {
                        self.sse.part = LinePart::Value {
                            data,
                            skip_space: false,
                        };
                        if rest[0] == b' ' {
                            i += 1;
                            continue;
                        }
                    }
                    let end = memchr::memchr2(b'\n', b'\r', rest);
                    if let Some(at) = end {
                        rest = &rest[..at];
                    }
                    if data {
                        self.data_bytes(rest);
                    }
                    match end {
                        None => i = input.len(),
                        Some(at) => {
                            self.line_ends(input[i + at]);
                            i += at + 1;
                        }
                    }
                }
            }
        }
    }

    fn data_line_starts(&mut self) {
        if self.sse.data_lines > 0 {
            // Data lines of one event join with a line feed.
            self.data_bytes(b"\n");
        }
        self.sse.data_lines = self.sse.data_lines.saturating_add(1);
    }

    fn data_bytes(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.sse.maybe_done {
            let seen = usize::try_from(self.sse.data_len).unwrap_or(usize::MAX);
            let fits = seen
                .checked_add(bytes.len())
                .is_some_and(|end| end <= DONE_MARKER.len());
            self.sse.maybe_done = fits && DONE_MARKER[seen..seen + bytes.len()] == *bytes;
        }
        self.sse.data_len = self.sse.data_len.saturating_add(bytes.len() as u64);
        self.scanner.scan(bytes, &mut self.tallies);
    }

    fn line_ends(&mut self, terminator: u8) {
        self.sse.after_cr = terminator == b'\r';
        self.sse.part = LINE_START;
        self.sse.line_empty = true;
    }

    fn dispatch_event(&mut self) {
        if self.sse.data_lines == 0 {
            return;
        }
        if self.sse.maybe_done && self.sse.data_len == DONE_MARKER.len() as u64 {
            self.sse.done = true;
        }
        self.scanner.reset(&mut self.tallies);
        self.sse.data_lines = 0;
        self.sse.data_len = 0;
        self.sse.maybe_done = true;
    }

    /// Whether an SSE `data: [DONE]` event has been seen.
    #[must_use]
    pub fn saw_done(&self) -> bool {
        self.sse.done
    }

    /// What the meter has seen so far.
    #[must_use]
    pub fn stats(&self) -> MeterStats {
        self.tallies.stats
    }

    /// The usage so far: the last reported `usage`, else llama.cpp's last `timings`, else the
    /// estimate (see the module docs). A value still open (a stream cut mid-chunk) counts towards the estimate.
    #[must_use]
    pub fn metered(&self) -> MeteredUsage {
        if let Some((usage, reported_total)) = self.tallies.reported {
            return MeteredUsage {
                usage,
                source: UsageSource::Reported,
                reported_total,
            };
        }
        if let Some(usage) = self.tallies.timings {
            return MeteredUsage {
                usage,
                source: UsageSource::Reported,
                reported_total: None,
            };
        }
        let stats = &self.tallies.stats;
        let open = self.scanner.open_tally().unwrap_or_default();
        let content_values = stats.content_values + u64::from(open.has_content);
        let values = stats.values + u64::from(self.scanner.open_tally().is_some());
        let streamed = self.mode == Mode::Sse || values > 1;
        let completion_tokens = if streamed {
            content_values
        } else {
            stats
                .content_bytes
                .saturating_add(open.content_bytes)
                .div_ceil(ESTIMATE_BYTES_PER_TOKEN)
        };
        MeteredUsage {
            usage: TokenUsage {
                completion_tokens,
                ..TokenUsage::default()
            },
            source: UsageSource::Estimated,
            reported_total: None,
        }
    }
}

#[cfg(test)]
mod tests;

//! A resumable, single-pass scanner of JSON text that finds the top-level `usage` object of
//! each JSON value (and llama.cpp's `timings` object beside it) and notices completion text,
//! without building any document.
//!
//! It tracks only what metering needs: nesting depth, whether the current container is an
//! object, whether a string is a key or a value, the last key seen, and the bytes of a
//! top-level `"usage": {…}` or `"timings": {…}` object (the one thing it copies, under a fixed
//! cap). String contents, the bulk of any answer, are skipped with `memchr`. Input may be cut anywhere,
//! inside a string, an escape or a multi-byte character: all state lives in the struct.
//!
//! It is not a validator: malformed input never fails, it only makes the scanner miss usage
//! (the meter then falls back to its estimate). Containers nested deeper than 64 levels are
//! treated as arrays, which only affects the estimate.

use memchr::memchr2;

/// The largest `usage` object copied for parsing. Real ones are under 400 bytes; a larger one
/// is dropped so that a broken or hostile upstream cannot make the meter grow.
pub const MAX_USAGE_OBJECT_BYTES: usize = 8 * 1024;

/// Keys are compared only when they are this short; every key we look for is shorter.
const KEY_CAPACITY: usize = 24;

/// Keys whose string value is generated text: chat deltas and messages, completion text, the
/// reference's NDJSON `delta`, reasoning text and tool-call arguments.
const CONTENT_KEYS: [&[u8]; 6] = [
    b"content",
    b"text",
    b"delta",
    b"reasoning_content",
    b"reasoning",
    b"arguments",
];

/// What the key before a value announces about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    /// No key applies (array element, top level, or after the value was consumed).
    None,
    /// `usage`: captured when it is an object directly inside a top-level object.
    Usage,
    /// `timings`: llama.cpp's running counts, captured like `usage`.
    Timings,
    /// Generated text, counted for the estimate.
    Content,
    /// Anything else.
    Other,
}

/// What the string being scanned is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StringKind {
    Key,
    Content,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lexer {
    /// Between tokens, or inside a number or literal (their bytes carry no structure).
    Structure,
    /// Inside a string; `escaped` when the previous byte was an unconsumed backslash.
    InString { kind: StringKind, escaped: bool },
}

/// What a top-level value turned out to contain, reported when it ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ValueTally {
    /// A non-empty content string was seen.
    pub(crate) has_content: bool,
    /// Raw bytes of content strings (escapes counted as written).
    pub(crate) content_bytes: u64,
}

/// Events the scanner hands to its owner while scanning.
pub(crate) trait ScanSink {
    /// A complete top-level `usage` object, byte for byte.
    fn usage_object(&mut self, bytes: &[u8]);
    /// A complete top-level `timings` object (llama.cpp's), byte for byte.
    fn timings_object(&mut self, bytes: &[u8]);
    /// A `usage` or `timings` object larger than [`MAX_USAGE_OBJECT_BYTES`] was dropped.
    fn usage_oversized(&mut self);
    /// A top-level value ended (or was cut off by [`JsonScanner::reset`]).
    fn value_end(&mut self, tally: ValueTally);
}

/// The scanner's state between slices.
#[derive(Debug)]
pub(crate) struct JsonScanner {
    lexer: Lexer,
    /// Open containers.
    depth: u32,
    /// Bit `d - 1` is set when the container at depth `d` (≤ 64) is an object.
    objects: u64,
    /// Inside an object, before a key (after `{` or `,`).
    expect_key: bool,
    /// The key that applies to the next value.
    pending: KeyKind,
    key: [u8; KEY_CAPACITY],
    key_len: usize,
    key_too_long: bool,
    /// The tally of the current top-level value.
    tally: ValueTally,
    /// Whether a top-level value is open (some container or scalar started at depth 0).
    in_value: bool,
    /// Whether the current content string has had a byte yet.
    content_started: bool,
    /// Copy of the `usage` or `timings` object being captured; `capturing` says whether one
    /// is, and which.
    usage: Vec<u8>,
    capturing: Option<KeyKind>,
}

impl Default for JsonScanner {
    fn default() -> Self {
        Self {
            lexer: Lexer::Structure,
            depth: 0,
            objects: 0,
            expect_key: false,
            pending: KeyKind::None,
            key: [0; KEY_CAPACITY],
            key_len: 0,
            key_too_long: false,
            tally: ValueTally::default(),
            in_value: false,
            content_started: false,
            usage: Vec::new(),
            capturing: None,
        }
    }
}

impl JsonScanner {
    /// Whether the container at the current depth is an object.
    fn in_object(&self) -> bool {
        self.depth >= 1 && self.depth <= 64 && self.objects & (1u64 << (self.depth - 1)) != 0
    }

    /// The tally of the value still open, if any: what a cut-off stream has produced so far.
    pub(crate) fn open_tally(&self) -> Option<ValueTally> {
        let mut tally = self.tally;
        if let Lexer::InString {
            kind: StringKind::Content,
            ..
        } = self.lexer
        {
            // Text cut off mid-string was still produced.
            tally.has_content |= self.content_started;
        }
        self.in_value.then_some(tally)
    }

    /// Ends whatever value is open and forgets all state: used between SSE events, each of
    /// which holds one JSON value, so a malformed event cannot confuse the next one.
    pub(crate) fn reset(&mut self, sink: &mut impl ScanSink) {
        if let Some(tally) = self.open_tally() {
            sink.value_end(tally);
        }
        let usage = std::mem::take(&mut self.usage);
        *self = Self {
            usage,
            ..Self::default()
        };
        self.usage.clear();
    }

    /// Scans `input`, which continues whatever was scanned before.
    pub(crate) fn scan(&mut self, input: &[u8], sink: &mut impl ScanSink) {
        let mut i = 0;
        // Start of the part of `input` that belongs to a usage object being captured.
        let mut capture_from = 0;
        while i < input.len() {
            match self.lexer {
                Lexer::InString { kind, escaped } => {
                    let start = i;
                    // The byte after a backslash belongs to the string, whatever it is.
                    let mut from = if escaped { i + 1 } else { i };
                    loop {
                        match find_string_stop(&input[from..]) {
                            None => {
                                self.string_part(kind, &input[start..]);
                                self.lexer = Lexer::InString {
                                    kind,
                                    escaped: false,
                                };
                                i = input.len();
                                break;
                            }
                            Some(at) if input[from + at] == b'\\' => {
                                from += at + 2;
                                if from > input.len() {
                                    // The input ends right after the backslash.
                                    self.string_part(kind, &input[start..]);
                                    self.lexer = Lexer::InString {
                                        kind,
                                        escaped: true,
                                    };
                                    i = input.len();
                                    break;
                                }
                            }
                            Some(at) => {
                                let end = from + at;
                                self.string_end(kind, &input[start..end]);
                                self.lexer = Lexer::Structure;
                                i = end + 1;
                                break;
                            }
                        }
                    }
                }
                Lexer::Structure => {
                    let byte = input[i];
                    match byte {
                        b'"' => {
                            self.value_starts();
                            let kind = if self.expect_key && self.in_object() {
                                StringKind::Key
                            } else if self.pending == KeyKind::Content {
                                self.content_started = false;
                                StringKind::Content
                            } else {
                                StringKind::Other
                            };
                            if kind != StringKind::Key {
                                self.pending = KeyKind::None;
                            }
                            self.lexer = Lexer::InString {
                                kind,
                                escaped: false,
                            };
                        }
                        b'{' | b'[' => {
                            self.value_starts();
                            if byte == b'{'
                                && self.depth == 1
                                && matches!(self.pending, KeyKind::Usage | KeyKind::Timings)
                                && self.in_object()
                                && self.capturing.is_none()
                            {
                                self.capturing = Some(self.pending);
                                self.usage.clear();
                                capture_from = i;
                            }
                            self.depth = self.depth.saturating_add(1);
                            if (1..=64).contains(&self.depth) {
                                let bit = 1u64 << (self.depth - 1);
                                if byte == b'{' {
                                    self.objects |= bit;
                                } else {
                                    self.objects &= !bit;
                                }
                            }
                            self.expect_key = byte == b'{';
                            self.pending = KeyKind::None;
                        }
                        b'}' | b']' => {
                            if self.depth > 0 {
                                self.depth -= 1;
                                if let Some(kind) = self.capturing
                                    && self.depth == 1
                                {
                                    self.capturing = None;
                                    if self.append_capture(&input[capture_from..=i], sink) {
                                        if kind == KeyKind::Timings {
                                            sink.timings_object(&self.usage);
                                        } else {
                                            sink.usage_object(&self.usage);
                                        }
                                    }
                                }
                                if self.depth == 0 {
                                    self.value_ends(sink);
                                }
                            }
                            self.expect_key = false;
                            self.pending = KeyKind::None;
                        }
                        b':' => self.expect_key = false,
                        b',' => {
                            self.expect_key = self.in_object();
                            self.pending = KeyKind::None;
                            if self.depth == 0 {
                                // A comma between top-level values: the scalar before it ended.
                                self.value_ends(sink);
                            }
                        }
                        b' ' | b'\t' | b'\n' | b'\r' => {
                            if self.depth == 0 {
                                // Whitespace ends a top-level scalar (`5 6`, NDJSON of numbers).
                                self.value_ends(sink);
                            }
                        }
                        _ => {
                            // A number or literal byte: it is the value, whatever key came before.
                            self.value_starts();
                            self.pending = KeyKind::None;
                        }
                    }
                    i += 1;
                }
            }
        }
        if self.capturing.is_some() {
            let tail = &input[capture_from..];
            if !self.append_capture(tail, sink) {
                self.capturing = None;
            }
        }
    }

    /// Appends captured bytes; drops the capture (and says so) when it outgrows the cap.
    fn append_capture(&mut self, bytes: &[u8], sink: &mut impl ScanSink) -> bool {
        if self.usage.len() + bytes.len() > MAX_USAGE_OBJECT_BYTES {
            self.usage.clear();
            sink.usage_oversized();
            return false;
        }
        self.usage.extend_from_slice(bytes);
        true
    }

    fn value_starts(&mut self) {
        if self.depth == 0 && !self.in_value {
            self.in_value = true;
            self.tally = ValueTally::default();
        }
    }

    fn value_ends(&mut self, sink: &mut impl ScanSink) {
        if self.in_value {
            self.in_value = false;
            sink.value_end(self.tally);
        }
    }

    /// A part of a string that continues in the next input.
    fn string_part(&mut self, kind: StringKind, bytes: &[u8]) {
        match kind {
            StringKind::Key => {
                let room = KEY_CAPACITY - self.key_len;
                if bytes.len() > room {
                    self.key_too_long = true;
                } else {
                    self.key[self.key_len..self.key_len + bytes.len()].copy_from_slice(bytes);
                    self.key_len += bytes.len();
                }
            }
            StringKind::Content => {
                if !bytes.is_empty() {
                    self.content_started = true;
                    self.tally.content_bytes =
                        self.tally.content_bytes.saturating_add(bytes.len() as u64);
                }
            }
            StringKind::Other => {}
        }
    }

    /// The last part of a string (all of it, when it did not span inputs).
    fn string_end(&mut self, kind: StringKind, last: &[u8]) {
        match kind {
            StringKind::Key => {
                // Keys are compared in place; only one cut by an input boundary is copied.
                self.pending = if self.key_len == 0 && !self.key_too_long {
                    classify_key(last)
                } else {
                    self.string_part(kind, last);
                    if self.key_too_long {
                        KeyKind::Other
                    } else {
                        classify_key(&self.key[..self.key_len])
                    }
                };
                self.key_len = 0;
                self.key_too_long = false;
            }
            StringKind::Content => {
                self.string_part(kind, last);
                if self.content_started {
                    self.tally.has_content = true;
                }
            }
            StringKind::Other => {}
        }
        if self.depth == 0 {
            // A top-level string is a whole value.
            self.in_value = true;
        }
    }
}

/// What a key announces about its value.
fn classify_key(key: &[u8]) -> KeyKind {
    // The length decides first, so most keys cost one comparison of lengths.
    let content = match key.len() {
        5 if key == b"usage" => return KeyKind::Usage,
        7 if key == b"timings" => return KeyKind::Timings,
        4 | 5 | 7 | 9 | 17 => CONTENT_KEYS.contains(&key),
        _ => false,
    };
    if content {
        KeyKind::Content
    } else {
        KeyKind::Other
    }
}

/// The first `"` or `\\` in `bytes`. Most strings in an answer (keys, ids, one token of text)
/// are short, where a plain loop beats setting up a vector search.
fn find_string_stop(bytes: &[u8]) -> Option<usize> {
    const SHORT: usize = 16;
    let head = bytes.len().min(SHORT);
    if let Some(at) = bytes[..head].iter().position(|&b| b == b'"' || b == b'\\') {
        return Some(at);
    }
    if bytes.len() > SHORT {
        memchr2(b'"', b'\\', &bytes[SHORT..]).map(|at| at + SHORT)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[derive(Default)]
    struct Record {
        usages: Vec<String>,
        timings: Vec<String>,
        oversized: usize,
        values: Vec<ValueTally>,
    }

    impl ScanSink for Record {
        fn usage_object(&mut self, bytes: &[u8]) {
            self.usages
                .push(String::from_utf8_lossy(bytes).into_owned());
        }
        fn timings_object(&mut self, bytes: &[u8]) {
            self.timings
                .push(String::from_utf8_lossy(bytes).into_owned());
        }
        fn usage_oversized(&mut self) {
            self.oversized += 1;
        }
        fn value_end(&mut self, tally: ValueTally) {
            self.values.push(tally);
        }
    }

    fn scan_in_pieces(text: &str, piece: usize) -> Record {
        let mut scanner = JsonScanner::default();
        let mut record = Record::default();
        for part in text.as_bytes().chunks(piece.max(1)) {
            scanner.scan(part, &mut record);
        }
        record
    }

    #[test]
    fn finds_top_level_usage_only() {
        let text = r#"{"choices":[{"usage":{"prompt_tokens":99}}],"x":{"usage":{"a":1}},"usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
        for piece in 1..=text.len() {
            let record = scan_in_pieces(text, piece);
            assert_eq!(
                record.usages,
                vec![r#"{"prompt_tokens":3,"completion_tokens":4}"#],
                "piece {piece}"
            );
            assert_eq!(record.values.len(), 1);
        }
    }

    #[test]
    fn finds_llama_cpp_timings_beside_usage_split_anywhere() {
        let text = r#"{"choices":[{"timings":{"prompt_n":9}}],"timings":{"cache_n":1,"prompt_n":30,"predicted_n":2},"usage":{"total_tokens":2}}"#;
        for piece in 1..=text.len() {
            let record = scan_in_pieces(text, piece);
            assert_eq!(
                record.timings,
                vec![r#"{"cache_n":1,"prompt_n":30,"predicted_n":2}"#],
                "piece {piece}"
            );
            assert_eq!(
                record.usages,
                vec![r#"{"total_tokens":2}"#],
                "piece {piece}"
            );
        }
    }

    #[test]
    fn usage_as_a_value_or_inside_strings_is_ignored() {
        let text = r#"{"note":"\"usage\":{\"prompt_tokens\":1}","usage":null,"k":"usage"}"#;
        let record = scan_in_pieces(text, 3);
        assert!(record.usages.is_empty());
        assert_eq!(record.values.len(), 1);
    }

    #[test]
    fn escaped_quotes_split_anywhere_stay_in_the_string() {
        let text = r#"{"content":"a\\\"b\"","usage":{"total_tokens":2}}"#;
        for piece in 1..=text.len() {
            let record = scan_in_pieces(text, piece);
            assert_eq!(
                record.usages,
                vec![r#"{"total_tokens":2}"#],
                "piece {piece}"
            );
            assert_eq!(record.values[0].content_bytes, 8, "piece {piece}");
            assert!(record.values[0].has_content);
        }
    }

    #[test]
    fn content_is_noticed_at_any_depth_and_empty_content_is_not() {
        let record = scan_in_pieces(
            concat!(
                r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#,
                "\n",
                r#"{"choices":[{"delta":{"content":"héllo"}}]}"#,
                "\n",
                r#"{"delta":"x","i":0}"#,
                "\n",
                r#"{"delta":{"content":null}}"#,
            ),
            7,
        );
        let flags: Vec<bool> = record.values.iter().map(|t| t.has_content).collect();
        assert_eq!(flags, vec![false, true, true, false]);
        assert_eq!(record.values[1].content_bytes, 6);
    }

    #[test]
    fn oversized_usage_is_dropped() {
        let mut text = String::from(r#"{"usage":{"pad":""#);
        text.push_str(&"x".repeat(MAX_USAGE_OBJECT_BYTES));
        text.push_str(r#""}}{"usage":{"total_tokens":1}}"#);
        let record = scan_in_pieces(&text, 1000);
        assert_eq!(record.oversized, 1);
        assert_eq!(record.usages, vec![r#"{"total_tokens":1}"#]);
        assert_eq!(record.values.len(), 2);
    }

    #[test]
    fn deep_nesting_neither_panics_nor_loses_the_way_back() {
        let mut text = String::from(r#"{"a":"#);
        text.push_str(&"[".repeat(200));
        text.push_str(&"]".repeat(200));
        text.push_str(r#","usage":{"total_tokens":7}}"#);
        let record = scan_in_pieces(&text, 5);
        assert_eq!(record.usages, vec![r#"{"total_tokens":7}"#]);
    }

    #[test]
    fn reset_ends_a_truncated_value() {
        let mut scanner = JsonScanner::default();
        let mut record = Record::default();
        scanner.scan(br#"{"content":"abc","usage":{"total_tok"#, &mut record);
        assert!(scanner.open_tally().is_some_and(|t| t.has_content));
        scanner.reset(&mut record);
        scanner.scan(br#"{"usage":{"total_tokens":1}}"#, &mut record);
        assert_eq!(record.usages, vec![r#"{"total_tokens":1}"#]);
        assert_eq!(record.values.len(), 2);
        assert!(record.values[0].has_content);
    }
}

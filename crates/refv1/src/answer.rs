//! Answers as byte streams: the worker encrypts, and the client opens, the JSON inside an answer
//! body that arrives in arbitrary pieces.
//!
//! Our reading of "answers are encrypted back the same way with the `w` direction": the same
//! value rule as requests ([`crate::body`]) applies to each JSON document of the answer, with
//! the answer secret of the request and no fields added (both ends already know the keys and the
//! nonce). A server-sent-event stream (`text/event-stream`) is a sequence of documents: every
//! `data:` line whose payload is JSON is transformed on its own; `data: [DONE]`, comments,
//! `event:` lines and blank lines pass unchanged. Any other answer is one document: it is
//! collected whole and transformed at its end; an answer body that is not JSON (an engine's plain
//! text error) passes unchanged, as it carries no request content.

use serde_json::Value;

use crate::body::AnswerCipher;
use crate::error::{RefV1Error, Result};

/// Most bytes held while waiting for the end of a line or document.
pub const MAX_PENDING: usize = 16 * 1024 * 1024;

/// How an answer body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerFraming {
    /// Server-sent events: one JSON document per `data:` line.
    EventStream,
    /// One JSON document.
    Document,
}

impl AnswerFraming {
    /// The framing of an answer with this `Content-Type` header value.
    pub fn from_content_type(content_type: Option<&str>) -> Self {
        match content_type {
            Some(ct)
                if ct
                    .trim_start()
                    .to_ascii_lowercase()
                    .starts_with("text/event-stream") =>
            {
                Self::EventStream
            }
            _ => Self::Document,
        }
    }
}

/// Splits a body into lines or one document and rewrites each JSON document with `f`.
#[derive(Debug)]
struct Framer {
    framing: AnswerFraming,
    pending: Vec<u8>,
}

impl Framer {
    fn push(
        &mut self,
        bytes: &[u8],
        f: &mut dyn FnMut(&mut Value) -> Result<()>,
    ) -> Result<Vec<u8>> {
        if self.pending.len() + bytes.len() > MAX_PENDING {
            return Err(RefV1Error::AnswerTooLarge { max: MAX_PENDING });
        }
        let before = self.pending.len();
        self.pending.extend_from_slice(bytes);
        if self.framing == AnswerFraming::Document {
            return Ok(Vec::new());
        }
        // Only the new bytes can hold a new line end: no rescan of a long pending line.
        let Some(last_newline) = self.pending[before..]
            .iter()
            .rposition(|&b| b == b'\n')
            .map(|i| before + i)
        else {
            return Ok(Vec::new());
        };
        let rest = self.pending.split_off(last_newline + 1);
        let complete = std::mem::replace(&mut self.pending, rest);
        let mut out = Vec::with_capacity(complete.len() * 2);
        for line in complete.split_inclusive(|&b| b == b'\n') {
            rewrite_line(line, &mut out, f)?;
        }
        Ok(out)
    }

    fn finish(&mut self, f: &mut dyn FnMut(&mut Value) -> Result<()>) -> Result<Vec<u8>> {
        let rest = std::mem::take(&mut self.pending);
        match self.framing {
            AnswerFraming::EventStream => {
                let mut out = Vec::new();
                if !rest.is_empty() {
                    rewrite_line(&rest, &mut out, f)?;
                }
                Ok(out)
            }
            AnswerFraming::Document => match serde_json::from_slice::<Value>(&rest) {
                Ok(mut doc) if doc.is_object() || doc.is_array() => {
                    f(&mut doc)?;
                    Ok(serde_json::to_vec(&doc).unwrap_or(rest))
                }
                // Fails closed: nothing leaves (or is taken) in clear but an empty body.
                _ if rest.iter().all(u8::is_ascii_whitespace) => Ok(rest),
                _ => Err(RefV1Error::UncoveredAnswer),
            },
        }
    }
}

/// One SSE line (with its line ending, if any): a `data:` line carrying JSON is rewritten.
fn rewrite_line(
    line: &[u8],
    out: &mut Vec<u8>,
    f: &mut dyn FnMut(&mut Value) -> Result<()>,
) -> Result<()> {
    let body_end = line
        .iter()
        .rposition(|&b| b != b'\n' && b != b'\r')
        .map_or(0, |i| i + 1);
    let (content, ending) = line.split_at(body_end);
    if let Some(data) = content.strip_prefix(b"data:") {
        let payload = data.strip_prefix(b" ").unwrap_or(data);
        if let Ok(mut doc) = serde_json::from_slice::<Value>(payload)
            && (doc.is_object() || doc.is_array())
        {
            f(&mut doc)?;
            out.extend_from_slice(b"data: ");
            // Serialising a Value cannot fail.
            out.extend_from_slice(&serde_json::to_vec(&doc).unwrap_or_default());
            out.extend_from_slice(ending);
            return Ok(());
        }
        // Fails closed: the stream's end marker and empty data are the only clear payloads.
        if payload.trim_ascii() != b"[DONE]" && !payload.trim_ascii().is_empty() {
            return Err(RefV1Error::UncoveredAnswer);
        }
    }
    out.extend_from_slice(line);
    Ok(())
}

/// Worker side: encrypts an answer body as it streams out.
#[derive(Debug)]
pub struct AnswerEncryptor {
    cipher: AnswerCipher,
    framer: Framer,
}

impl AnswerEncryptor {
    /// An encryptor for an answer of this framing.
    pub fn new(cipher: AnswerCipher, framing: AnswerFraming) -> Self {
        Self {
            cipher,
            framer: Framer {
                framing,
                pending: Vec::new(),
            },
        }
    }

    /// The encrypted bytes that can go out after `bytes` (possibly none yet).
    pub fn push<R: rand_core::TryCryptoRng + ?Sized>(
        &mut self,
        bytes: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>> {
        let cipher = &self.cipher;
        self.framer
            .push(bytes, &mut |doc| cipher.encrypt_answer(doc, rng))
    }

    /// The rest, at the end of the answer.
    pub fn finish<R: rand_core::TryCryptoRng + ?Sized>(&mut self, rng: &mut R) -> Result<Vec<u8>> {
        let cipher = &self.cipher;
        self.framer
            .finish(&mut |doc| cipher.encrypt_answer(doc, rng))
    }
}

/// Client side: opens an answer body as it streams in.
#[derive(Debug)]
pub struct AnswerDecryptor {
    cipher: AnswerCipher,
    framer: Framer,
}

impl AnswerDecryptor {
    /// A decryptor for an answer of this framing.
    pub fn new(cipher: AnswerCipher, framing: AnswerFraming) -> Self {
        Self {
            cipher,
            framer: Framer {
                framing,
                pending: Vec::new(),
            },
        }
    }

    /// The plain bytes available after `bytes` (possibly none yet).
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<u8>> {
        let cipher = &self.cipher;
        self.framer
            .push(bytes, &mut |doc| cipher.decrypt_answer(doc))
    }

    /// The rest, at the end of the answer.
    pub fn finish(&mut self) -> Result<Vec<u8>> {
        let cipher = &self.cipher;
        self.framer.finish(&mut |doc| cipher.decrypt_answer(doc))
    }
}

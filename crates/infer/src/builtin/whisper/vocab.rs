//! Whisper's vocabulary: GPT-2's byte-level BPE tokens (one per line of the model's
//! `vocabulary.txt`, each byte spelled as a printable character) followed by the special
//! tokens (`<|endoftext|>`, `<|startoftranscript|>`, languages, tasks, timestamps). Only
//! decoding is needed: ids to text, and special tokens by name.

use std::collections::HashMap;

use super::error::WhisperError;

/// The vocabulary of a Whisper model.
#[derive(Debug, Clone)]
pub struct Vocabulary {
    tokens: Vec<String>,
    by_name: HashMap<String, u32>,
    /// GPT-2's printable stand-ins for bytes, mapped back to the bytes.
    byte_of: HashMap<char, u8>,
}

/// GPT-2's table: bytes that are printable stand for themselves, the others are shifted to
/// code points from 256 on, in byte order.
fn byte_table() -> HashMap<char, u8> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut shifted = 0u32;
    (0..=255u8)
        .map(|b| {
            let c = if printable(b) {
                char::from(b)
            } else {
                shifted += 1;
                char::from_u32(255 + shifted).unwrap_or('\u{FFFD}')
            };
            (c, b)
        })
        .collect()
}

impl Vocabulary {
    /// Parses `vocabulary.txt` (one token per line, the line number is the id).
    pub fn parse(text: &str) -> Result<Self, WhisperError> {
        let tokens: Vec<String> = text.lines().map(str::to_owned).collect();
        if tokens.is_empty() || tokens.len() > u32::MAX as usize {
            return Err(WhisperError::Vocabulary("empty vocabulary".into()));
        }
        let by_name = tokens
            .iter()
            .enumerate()
            .rev()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        Ok(Self {
            tokens,
            by_name,
            byte_of: byte_table(),
        })
    }

    /// The number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the vocabulary is empty (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// A token's id by its spelling (`<|en|>`).
    pub fn id(&self, name: &str) -> Result<u32, WhisperError> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| WhisperError::Vocabulary(format!("no token {name}")))
    }

    /// A token's spelling.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The bytes of text tokens (ids below `limit`, the first special token); others are
    /// skipped.
    pub fn bytes(&self, ids: &[u32], limit: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for &id in ids.iter().filter(|&&id| id < limit) {
            if let Some(t) = self.token(id) {
                for c in t.chars() {
                    match self.byte_of.get(&c) {
                        Some(&b) => out.push(b),
                        None => out.extend_from_slice(c.to_string().as_bytes()),
                    }
                }
            }
        }
        out
    }

    /// The text of text tokens (ids below `limit`), invalid UTF-8 replaced.
    pub fn decode(&self, ids: &[u32], limit: u32) -> String {
        String::from_utf8_lossy(&self.bytes(ids, limit)).into_owned()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn byte_level_tokens_decode_to_bytes() {
        let v = Vocabulary::parse("ĠAnd\nĠso\n,\nÃ©\nĊ\n<|endoftext|>").unwrap();
        assert_eq!(v.decode(&[0, 1, 2, 3, 4, 5], 5), " And so,é\n");
        assert_eq!(v.id("<|endoftext|>").unwrap(), 5);
        assert!(matches!(v.id("<|xx|>"), Err(WhisperError::Vocabulary(_))));
    }
}

//! SentencePiece BPE (`tokenizer.ggml.model = llama`, the Llama 2 / Mistral / TinyLlama
//! family): whitespace written as `▁`, pieces merged by their vocabulary score, characters
//! without a piece spelled as `<0xXX>` byte tokens.
//!
//! The procedure is SentencePiece's BPE encoder as llama.cpp runs it: start from the text's
//! characters; repeatedly merge the adjacent pair whose concatenation is a vocabulary entry
//! with the highest score (ties: the leftmost pair); then emit each remaining symbol's id, or
//! its UTF-8 bytes as byte tokens when the symbol is not in the vocabulary.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use ahash::AHashMap;

use super::{TokenKind, TokenizerError};

/// How SentencePiece writes a space.
pub(super) const SPACE: &str = "\u{2581}";

/// A SentencePiece BPE vocabulary.
#[derive(Debug)]
pub(super) struct SentencePiece {
    ids: AHashMap<String, u32>,
    scores: Vec<f32>,
    /// The byte token of each byte value, when the vocabulary has it.
    bytes: [Option<u32>; 256],
    unknown: Option<u32>,
}

/// A candidate merge of the symbols at `left` and `left + 1` (in list order).
#[derive(Debug)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    /// Byte length of the merged text, to detect a candidate made stale by another merge.
    len: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Bigram {}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bigram {
    /// The heap's maximum is the best merge: highest score, then leftmost.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// One symbol of the text being merged: a byte range of it and its neighbours.
#[derive(Debug, Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

impl SentencePiece {
    /// Builds the vocabulary from the GGUF token texts, kinds and scores.
    pub(super) fn new(
        tokens: &[&str],
        kinds: &[TokenKind],
        scores: Vec<f32>,
    ) -> Result<Self, TokenizerError> {
        if scores.len() != tokens.len() {
            return Err(TokenizerError::LengthMismatch {
                what: "tokenizer.ggml.scores",
                expected: tokens.len(),
                actual: scores.len(),
            });
        }
        let mut ids = AHashMap::with_capacity(tokens.len());
        let mut bytes = [None; 256];
        let mut unknown = None;
        for ((text, kind), id) in tokens.iter().zip(kinds).zip(0u32..) {
            // The same text twice: the later id wins, as in llama.cpp.
            ids.insert((*text).to_owned(), id);
            match kind {
                TokenKind::Byte => {
                    if let Some(b) = byte_token_value(text) {
                        bytes[usize::from(b)] = Some(id);
                    }
                }
                TokenKind::Unknown if unknown.is_none() => unknown = Some(id),
                _ => {}
            }
        }
        Ok(Self {
            ids,
            scores,
            bytes,
            unknown,
        })
    }

    /// Encodes `text` (spaces already written as `▁`) and appends the ids to `out`.
    pub(super) fn encode(&self, text: &str, out: &mut Vec<u32>) -> Result<(), TokenizerError> {
        let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
        for (i, (start, c)) in text.char_indices().enumerate() {
            symbols.push(Symbol {
                start,
                len: c.len_utf8(),
                prev: i.checked_sub(1),
                next: Some(i + 1),
            });
        }
        if let Some(last) = symbols.last_mut() {
            last.next = None;
        }
        let mut queue = BinaryHeap::new();
        for left in 1..symbols.len() {
            self.push_bigram(text, &symbols, left - 1, left, &mut queue);
        }
        while let Some(best) = queue.pop() {
            let (l, r) = (symbols[best.left], symbols[best.right]);
            // Skip candidates whose symbols have since been merged into others.
            if l.len == 0 || r.len == 0 || l.len + r.len != best.len {
                continue;
            }
            symbols[best.left].len += r.len;
            symbols[best.left].next = r.next;
            symbols[best.right].len = 0;
            if let Some(next) = r.next {
                symbols[next].prev = Some(best.left);
            }
            if let Some(prev) = l.prev {
                self.push_bigram(text, &symbols, prev, best.left, &mut queue);
            }
            if let Some(next) = r.next {
                self.push_bigram(text, &symbols, best.left, next, &mut queue);
            }
        }
        let mut at = if symbols.is_empty() { None } else { Some(0) };
        while let Some(i) = at {
            let s = symbols[i];
            let piece = &text[s.start..s.start + s.len];
            match self.ids.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    for &b in piece.as_bytes() {
                        let id = self.bytes[usize::from(b)]
                            .or(self.unknown)
                            .ok_or(TokenizerError::UnencodableByte(b))?;
                        out.push(id);
                    }
                }
            }
            at = s.next;
        }
        Ok(())
    }

    fn push_bigram(
        &self,
        text: &str,
        symbols: &[Symbol],
        left: usize,
        right: usize,
        queue: &mut BinaryHeap<Bigram>,
    ) {
        let (l, r) = (symbols[left], symbols[right]);
        let merged = &text[l.start..r.start + r.len];
        if let Some(&id) = self.ids.get(merged) {
            queue.push(Bigram {
                score: self.scores.get(id as usize).copied().unwrap_or(f32::MIN),
                left,
                right,
                len: merged.len(),
            });
        }
    }
}

/// The byte a `<0xXX>` byte token stands for.
pub(super) fn byte_token_value(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(entries: &[(&str, f32)]) -> SentencePiece {
        let mut tokens = vec!["<unk>"];
        let mut kinds = vec![TokenKind::Unknown];
        let mut scores = vec![0.0];
        let byte_names: Vec<String> = (0u8..=255).map(|b| format!("<0x{b:02X}>")).collect();
        for name in &byte_names {
            tokens.push(name);
            kinds.push(TokenKind::Byte);
            scores.push(0.0);
        }
        for (text, score) in entries {
            tokens.push(text);
            kinds.push(TokenKind::Normal);
            scores.push(*score);
        }
        SentencePiece::new(&tokens, &kinds, scores).unwrap_or_else(|e| panic!("{e}"))
    }

    fn encode(v: &SentencePiece, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        v.encode(text, &mut out).unwrap_or_else(|e| panic!("{e}"));
        out
    }

    #[test]
    fn merges_by_score_and_falls_back_to_bytes() {
        // ids: a=257, b=258, c=259, ab=260, bc=261, abc=262
        let v = vocab(&[
            ("a", -1.0),
            ("b", -1.0),
            ("c", -1.0),
            ("ab", -5.0),
            ("bc", -2.0),
            ("abc", -3.0),
        ]);
        // "bc" outscores "ab"; then "a"+"bc" is in the vocabulary as "abc".
        assert_eq!(encode(&v, "abc"), [262]);
        // "ab" then nothing merges with "d"; "d" and "é" have no piece: bytes (byte b is id b+1).
        assert_eq!(encode(&v, "abdé"), [260, 101, 0xC3 + 1, 0xA9 + 1]);
        assert_eq!(encode(&v, ""), Vec::<u32>::new());
    }

    #[test]
    fn equal_scores_merge_leftmost_first() {
        // ids: a=257, aa=258
        let v = vocab(&[("a", -1.0), ("aa", -1.0)]);
        assert_eq!(encode(&v, "aaa"), [258, 257]);
    }

    #[test]
    fn byte_token_names() {
        assert_eq!(byte_token_value("<0x0A>"), Some(10));
        assert_eq!(byte_token_value("<0xff>"), Some(255));
        assert_eq!(byte_token_value("<0x0>"), None);
        assert_eq!(byte_token_value("0x41"), None);
    }
}

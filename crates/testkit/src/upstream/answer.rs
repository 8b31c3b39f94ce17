//! The deterministic parts of a fake answer: its text, its prompt-token count and its `usage`.
//!
//! Everything here is a pure function of the request, so a test on the far side of the network
//! can compute exactly what the engine said and what it billed, and compare.
//!
//! Rules:
//! - The answer text echoes the words of the last user message (or of the completion prompt),
//!   separated by single spaces, cycling as long as needed: `"hi there"` gives
//!   `"hi there hi there hi …"`. A prompt without words echoes the word `empty`.
//! - The text is cut into chunks of exactly `chunk_bytes` bytes of UTF-8. A character that does
//!   not fit in what is left of a chunk starts the next one, and the gap is filled with spaces; a
//!   character wider than a whole chunk is skipped.
//! - One chunk is one completion token; prompt tokens are the whitespace-separated words of the
//!   whole prompt (every message's text for chat, every prompt for completions).

use serde::{Deserialize, Serialize};

/// The word echoed when a prompt has no words at all.
pub const EMPTY_PROMPT_WORD: &str = "empty";

/// Counts the prompt tokens of a text the way the fake upstream does: its whitespace-separated
/// words.
#[must_use]
pub fn prompt_word_count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The endless answer text for one prompt, cut into fixed-size chunks on demand.
#[derive(Debug, Clone)]
pub struct AnswerText {
    /// One cycle of the echo: the prompt's words, each followed by one space.
    cycle: String,
    /// Byte offset of the next character to emit; always on a character boundary.
    cursor: usize,
}

impl AnswerText {
    /// Starts the answer to a prompt (the last user message, or the completion prompt).
    #[must_use]
    pub fn from_prompt(prompt: &str) -> Self {
        let mut cycle = String::with_capacity(prompt.len() + 1);
        for word in prompt.split_whitespace() {
            cycle.push_str(word);
            cycle.push(' ');
        }
        if cycle.is_empty() {
            cycle.push_str(EMPTY_PROMPT_WORD);
            cycle.push(' ');
        }
        Self { cycle, cursor: 0 }
    }

    /// Appends the next chunk of exactly `chunk_bytes` bytes to `out`.
    pub fn next_chunk_into(&mut self, chunk_bytes: usize, out: &mut String) {
        let mut room = chunk_bytes;
        // Each pass copies a run of whole characters, skips one character that can never fit,
        // or stops; skips are bounded by one full turn of the cycle.
        let mut skipped = 0usize;
        while room > 0 {
            let rest = &self.cycle[self.cursor..];
            let mut take = room.min(rest.len());
            while !rest.is_char_boundary(take) {
                take -= 1;
            }
            if take > 0 {
                out.push_str(&rest[..take]);
                room -= take;
                self.advance(take);
                skipped = 0;
                continue;
            }
            // The next character does not fit in what is left of this chunk.
            let width = rest.chars().next().map_or(1, char::len_utf8);
            if width <= chunk_bytes {
                break;
            }
            self.advance(width);
            skipped += 1;
            if skipped >= self.cycle.len() {
                break;
            }
        }
        out.extend(std::iter::repeat_n(' ', room));
    }

    /// The next chunk of exactly `chunk_bytes` bytes.
    #[must_use]
    pub fn next_chunk(&mut self, chunk_bytes: usize) -> String {
        let mut out = String::with_capacity(chunk_bytes);
        self.next_chunk_into(chunk_bytes, &mut out);
        out
    }

    /// The whole text of an answer of `chunks` chunks: what a client should reassemble.
    #[must_use]
    pub fn full_text(prompt: &str, chunks: u32, chunk_bytes: usize) -> String {
        let mut text = Self::from_prompt(prompt);
        let mut out = String::with_capacity(chunk_bytes.saturating_mul(chunks as usize));
        for _ in 0..chunks {
            text.next_chunk_into(chunk_bytes, &mut out);
        }
        out
    }

    fn advance(&mut self, width: usize) {
        self.cursor += width;
        if self.cursor >= self.cycle.len() {
            self.cursor = 0;
        }
    }
}

/// Cached prompt tokens, as in OpenAI's `usage.prompt_tokens_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    /// Prompt tokens served from the engine's prefix cache.
    pub cached_tokens: u64,
}

/// Reasoning tokens, as in OpenAI's `usage.completion_tokens_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletionTokensDetails {
    /// Completion tokens spent on hidden reasoning.
    pub reasoning_tokens: u64,
}

/// An OpenAI `usage` block whose numbers agree with each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
    /// `prompt_tokens + completion_tokens`.
    pub total_tokens: u64,
    /// The cached share of the prompt.
    pub prompt_tokens_details: PromptTokensDetails,
    /// The reasoning share of the completion.
    pub completion_tokens_details: CompletionTokensDetails,
}

impl Usage {
    /// Builds a consistent block; cached and reasoning counts are capped by the totals they are
    /// part of.
    #[must_use]
    pub fn new(prompt_tokens: u64, completion_tokens: u64, cached: u64, reasoning: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: cached.min(prompt_tokens),
            },
            completion_tokens_details: CompletionTokensDetails {
                reasoning_tokens: reasoning.min(completion_tokens),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_words_cyclically_in_exact_chunks() {
        let mut text = AnswerText::from_prompt("  hello\tbig   world\n");
        assert_eq!(text.next_chunk(8), "hello bi");
        assert_eq!(text.next_chunk(8), "g world ");
        assert_eq!(text.next_chunk(8), "hello bi");
        assert_eq!(
            AnswerText::full_text("hello big world", 3, 8),
            "hello big world hello bi"
        );
    }

    #[test]
    fn empty_prompt_echoes_placeholder() {
        assert_eq!(AnswerText::full_text(" \n ", 2, 4), "empty em");
        assert_eq!(AnswerText::full_text("", 1, 12), "empty empty ");
    }

    #[test]
    fn multibyte_characters_never_split() {
        // "é" is 2 bytes: with 3-byte chunks "aé" fits; next comes " a", "é" no longer fits
        // and a space pads the chunk.
        let mut text = AnswerText::from_prompt("aé");
        let first = text.next_chunk(3);
        assert_eq!(first, "aé");
        let second = text.next_chunk(3);
        assert_eq!(second, " a ");
        // A 4-byte character can never fit in 3 bytes: it is skipped, the rest still flows.
        let mut wide = AnswerText::from_prompt("😀");
        assert_eq!(wide.next_chunk(3), "   ");
        let mut mixed = AnswerText::from_prompt("x😀");
        assert_eq!(mixed.next_chunk(3), "x x");
    }

    #[test]
    fn zero_byte_chunks_are_empty() {
        let mut text = AnswerText::from_prompt("abc");
        assert_eq!(text.next_chunk(0), "");
        assert_eq!(text.next_chunk(2), "ab");
    }

    /// The rules of the module docs, one character at a time: the model the fast copy must match.
    fn model_chunks(prompt: &str, chunks: usize, chunk_bytes: usize) -> Vec<String> {
        let words: Vec<&str> = prompt.split_whitespace().collect();
        let words = if words.is_empty() {
            vec![EMPTY_PROMPT_WORD]
        } else {
            words
        };
        let cycle: Vec<char> = words.iter().flat_map(|w| w.chars().chain([' '])).collect();
        let mut at = 0usize;
        let mut out = Vec::new();
        for _ in 0..chunks {
            let mut chunk = String::new();
            let mut turns = 0usize;
            while turns <= cycle.len() {
                let ch = cycle[at % cycle.len()];
                let width = ch.len_utf8();
                if width > chunk_bytes {
                    at += 1;
                    turns += 1;
                } else if chunk.len() + width <= chunk_bytes {
                    chunk.push(ch);
                    at += 1;
                    turns = 0;
                } else {
                    break;
                }
            }
            while chunk.len() < chunk_bytes {
                chunk.push(' ');
            }
            out.push(chunk);
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn chunks_follow_the_character_model(
            prompt in "[a-z é€😀\\t\\n]{0,24}",
            chunk_bytes in 0usize..12,
            chunks in 0usize..12,
        ) {
            let mut text = AnswerText::from_prompt(&prompt);
            let fast: Vec<String> = (0..chunks).map(|_| text.next_chunk(chunk_bytes)).collect();
            proptest::prop_assert_eq!(fast, model_chunks(&prompt, chunks, chunk_bytes));
        }
    }

    #[test]
    fn usage_is_consistent() {
        let usage = Usage::new(7, 50, 100, 3);
        assert_eq!(usage.total_tokens, 57);
        assert_eq!(usage.prompt_tokens_details.cached_tokens, 7);
        assert_eq!(usage.completion_tokens_details.reasoning_tokens, 3);
        assert_eq!(prompt_word_count(" a  b\nc "), 3);
    }
}

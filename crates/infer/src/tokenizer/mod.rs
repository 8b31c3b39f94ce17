//! Text ↔ token ids for the built-in engine, built from a GGUF model's
//! tokenizer metadata, plus chat prompt rendering.
//!
//! # What is supported
//!
//! - Byte-level BPE vocabularies (`tokenizer.ggml.model = gpt2`) with the
//!   pre-tokenizers of the models we run: `smollm` (SmolLM/SmolLM2, also
//!   `starcoder`, `refact`, `codeshell`: digits split one by one, then the
//!   GPT-2 pattern), `qwen2` (also `deepseek-r1-qwen`: the Qwen2 pattern, after
//!   NFC normalization as the model's original tokenizer does), `llama-bpe`
//!   (Llama 3: the Llama 3 pattern, digits in runs of up to three, and a
//!   pre-token that is itself a vocabulary entry is taken whole without
//!   merging), and plain `gpt-2`. The BPE itself runs on the `tokenizers`
//!   crate, configured in memory from the vocabulary and merges in the GGUF.
//! - SentencePiece BPE vocabularies (`tokenizer.ggml.model = llama`: Llama 2,
//!   Mistral, TinyLlama): spaces written as `▁`, a space put before the text
//!   and after each special token (`tokenizer.ggml.add_space_prefix`, on by
//!   default), pieces merged by score, and characters without a piece spelled
//!   as `<0xXX>` byte tokens ([`sentence_piece`]).
//!
//! # Special tokens
//!
//! Control tokens (`<|im_start|>`, `<|im_end|>`, `<|endoftext|>`, …) are
//! atomic: with [`Specials::Parse`] their text in the input becomes their id
//! (leftmost-longest match), as llama.cpp does with `parse_special`; with
//! [`Specials::AsText`] their text is tokenized like any other text.
//! User-defined tokens are always atomic. Untrusted text (chat message
//! contents) must be encoded with `AsText`, which
//! [`Tokenizer::encode_chat`] does.
//!
//! # Bytes without a token
//!
//! A vocabulary may lack tokens for bytes its training text never had
//! (SmolLM2: six control characters and the UTF-8 lead bytes of the
//! unassigned planes 4 to 11). Such bytes are dropped when encoding, exactly
//! as llama.cpp and Hugging Face `tokenizers` do, so the ids match theirs.
//!
//! # Checked against
//!
//! `tests/tokenizer.rs` compares ids with two independent reference
//! implementations on ~300 strings using the real vocabularies of SmolLM2
//! (always) and Qwen2.5-Coder (when the model is cached), and chat rendering
//! with Jinja2 running each GGUF's own template; and, on llama.cpp's Llama 3
//! (`llama-bpe`) and Llama 2 (`llama`, SentencePiece) vocabularies, with the
//! Python `tokenizers` and `sentencepiece` packages on ~250 strings each.

mod byte_level;
pub mod chat;
mod sentence_piece;

use ahash::AHashMap;
use aho_corasick::{AhoCorasick, MatchKind};
use cocoon_gguf::{Gguf, GgufError};
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{PreTokenizerWrapper, SplitDelimiterBehavior};

pub use chat::{ChatMessage, ChatTemplate, Role};

/// Why a tokenizer could not be built, or could not encode or decode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// Required tokenizer metadata is missing or has the wrong type.
    #[error("tokenizer metadata: {0}")]
    Metadata(#[from] GgufError),

    /// `tokenizer.ggml.model` names a tokenizer kind other than byte-level BPE
    /// or SentencePiece.
    #[error("unsupported tokenizer model {0:?} (supported: gpt2, llama)")]
    UnsupportedModel(String),

    /// `tokenizer.ggml.pre` names a pre-tokenizer this module does not implement.
    #[error("unsupported pre-tokenizer {0:?} (supported: smollm, qwen2, llama-bpe, gpt-2)")]
    UnsupportedPreTokenizer(String),

    /// A SentencePiece vocabulary has neither a byte token nor an unknown
    /// token for a byte of the input.
    #[error("no token for byte {0:#04x} (the vocabulary lacks byte and unknown tokens)")]
    UnencodableByte(u8),

    /// Per-token metadata arrays disagree in length with the token list.
    #[error("{what} has {actual} entries for {expected} tokens")]
    LengthMismatch {
        /// Which array.
        what: &'static str,
        /// The number of tokens.
        expected: usize,
        /// Entries found.
        actual: usize,
    },

    /// A token type code is not one GGUF defines.
    #[error("token {id} has unknown type code {code}")]
    UnknownTokenType {
        /// The token.
        id: u32,
        /// The code found.
        code: i64,
    },

    /// A merge rule is not two tokens separated by a space.
    #[error("merge {index} is malformed: {merge:?}")]
    InvalidMerge {
        /// Position in the merge list.
        index: usize,
        /// The rule.
        merge: String,
    },

    /// A token id is outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab_size}")]
    TokenIdOutOfRange {
        /// The id.
        id: u32,
        /// The vocabulary size.
        vocab_size: usize,
    },

    /// The model's chat template is not of a supported family.
    #[error("unsupported chat template (supported: ChatML)")]
    UnsupportedChatTemplate,

    /// The BPE engine rejected the vocabulary or an input.
    #[error("BPE: {0}")]
    Bpe(#[source] tokenizers::Error),
}

/// How the text of special tokens in an input is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Specials {
    /// Control-token text becomes the control token (for trusted prompts).
    Parse,
    /// Control-token text is ordinary text (for untrusted input).
    AsText,
}

/// What a vocabulary entry is, from `tokenizer.ggml.token_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenKind {
    /// Type code 0: not set; treated as normal.
    Undefined,
    /// An ordinary text piece.
    Normal,
    /// The unknown-token marker.
    Unknown,
    /// A control token such as `<|im_start|>`: markup, not text.
    Control,
    /// A token added by the model's authors, matched atomically in text.
    UserDefined,
    /// A reserved slot.
    Unused,
    /// A single-byte token.
    Byte,
}

impl TokenKind {
    fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0 => Self::Undefined,
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => return None,
        })
    }

    /// Whether the token's text is matched atomically in [`Specials::Parse`] mode.
    fn is_special(self) -> bool {
        matches!(self, Self::Control | Self::Unknown | Self::UserDefined)
    }
}

/// Matches special-token text and gives its id.
#[derive(Debug)]
struct SpecialMatcher {
    automaton: AhoCorasick,
    ids: Vec<u32>,
}

impl SpecialMatcher {
    fn new(tokens: Vec<(&str, u32)>) -> Result<Option<Self>, TokenizerError> {
        if tokens.is_empty() {
            return Ok(None);
        }
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(tokens.iter().map(|(text, _)| text))
            .map_err(|e| TokenizerError::Bpe(Box::new(e)))?;
        Ok(Some(Self {
            automaton,
            ids: tokens.into_iter().map(|(_, id)| id).collect(),
        }))
    }
}

/// Pre-tokenization of the supported `tokenizer.ggml.pre` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PreTokenizer {
    /// Digits one by one, then the GPT-2 pattern (SmolLM, StarCoder).
    SmolLm,
    /// The Qwen2 pattern, after NFC normalization.
    Qwen2,
    /// The Llama 3 pattern; pre-tokens found whole in the vocabulary skip merging.
    Llama3,
    /// The GPT-2 pattern.
    Gpt2,
    /// SentencePiece: no splitting, spaces written as `▁` with a leading one.
    SentencePiece,
}

/// The Qwen2 split pattern (contractions case-insensitive, letters with one
/// leading non-letter, single digits, punctuation runs with trailing newlines,
/// newline runs, whitespace).
const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The Llama 3 split pattern: the Qwen2 one with digits in runs of up to three.
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

impl PreTokenizer {
    /// The pre-tokenizer for a `tokenizer.ggml.pre` value.
    ///
    /// # Errors
    /// [`TokenizerError::UnsupportedPreTokenizer`].
    pub fn from_gguf_name(name: &str) -> Result<Self, TokenizerError> {
        Ok(match name {
            "smollm" | "starcoder" | "refact" | "codeshell" => Self::SmolLm,
            "qwen2" | "deepseek-r1-qwen" => Self::Qwen2,
            "llama-bpe" | "llama3" | "llama-v3" => Self::Llama3,
            "gpt-2" | "gpt2" => Self::Gpt2,
            other => return Err(TokenizerError::UnsupportedPreTokenizer(other.to_owned())),
        })
    }

    fn configure(self, bpe: &mut tokenizers::Tokenizer) -> Result<(), TokenizerError> {
        // No prefix space; offsets are not used.
        let byte_level = |use_regex| ByteLevel::new(false, false, use_regex);
        let split_then_bytes = |pattern: &str| -> Result<PreTokenizerWrapper, TokenizerError> {
            let split = Split::new(
                SplitPattern::Regex(pattern.to_owned()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(TokenizerError::Bpe)?;
            Ok(Sequence::new(vec![split.into(), byte_level(false).into()]).into())
        };
        let pre: PreTokenizerWrapper = match self {
            Self::SmolLm => {
                Sequence::new(vec![Digits::new(true).into(), byte_level(true).into()]).into()
            }
            Self::Qwen2 => {
                bpe.with_normalizer(Some(NFC))
                    .map_err(TokenizerError::Bpe)?;
                split_then_bytes(QWEN2_PATTERN)?
            }
            Self::Llama3 => split_then_bytes(LLAMA3_PATTERN)?,
            // Not a byte-level pre-tokenizer: `Tokenizer::build` never gets here.
            Self::Gpt2 | Self::SentencePiece => byte_level(true).into(),
        };
        bpe.with_pre_tokenizer(Some(pre));
        Ok(())
    }
}

/// The piece-splitting algorithm of a vocabulary.
enum Splitter {
    /// Byte-level BPE by merge rank (boxed: the `tokenizers` pipeline is large).
    ByteLevel(Box<tokenizers::Tokenizer>),
    /// SentencePiece BPE by piece score.
    SentencePiece(Box<sentence_piece::SentencePiece>),
}

/// A byte-level BPE or SentencePiece tokenizer with its special tokens.
pub struct Tokenizer {
    splitter: Splitter,
    pre: PreTokenizer,
    /// SentencePiece: put a space before text at the start and after a special token.
    add_space_prefix: bool,
    /// Each token's text as stored in the vocabulary.
    texts: Vec<String>,
    /// Each token's decoded bytes (control tokens: their text).
    bytes: Vec<Box<[u8]>>,
    kinds: Vec<TokenKind>,
    all_specials: Option<SpecialMatcher>,
    user_specials: Option<SpecialMatcher>,
    bos: Option<u32>,
    eos: Option<u32>,
    end_of_generation: Vec<u32>,
    add_bos: bool,
    chat_template: Option<String>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.texts.len())
            .field("pre", &self.pre)
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .finish_non_exhaustive()
    }
}

/// Control tokens that end a generation besides `eos`/`eot`, by text (as
/// llama.cpp recognizes them).
const END_OF_GENERATION_TEXTS: &[&str] = &[
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|end|>",
    "<end_of_turn>",
    "<|end_of_text|>",
];

impl Tokenizer {
    /// Builds the tokenizer described by a GGUF file's `tokenizer.*` metadata.
    ///
    /// # Errors
    /// A [`TokenizerError`] if metadata is missing or malformed, or the
    /// tokenizer kind or pre-tokenizer is not supported.
    pub fn from_gguf<B: AsRef<[u8]>>(gguf: &Gguf<B>) -> Result<Self, TokenizerError> {
        let model = gguf.get_str("tokenizer.ggml.model")?;
        let pre = match model {
            // SentencePiece files carry `pre = default` or nothing: it does not split.
            "llama" => PreTokenizer::SentencePiece,
            // Without `tokenizer.ggml.pre`, llama.cpp falls back to the GPT-2 pattern.
            "gpt2" => match optional(gguf, "tokenizer.ggml.pre", Gguf::get_str)? {
                Some(name) => PreTokenizer::from_gguf_name(name)?,
                None => PreTokenizer::Gpt2,
            },
            other => return Err(TokenizerError::UnsupportedModel(other.to_owned())),
        };
        let tokens = gguf.get_str_array("tokenizer.ggml.tokens")?;
        let (merges, scores) = if pre == PreTokenizer::SentencePiece {
            let array = gguf.get_array("tokenizer.ggml.scores")?;
            let scores = array
                .to_f64_vec()
                .ok_or_else(|| GgufError::WrongValueType {
                    key: "tokenizer.ggml.scores".to_owned(),
                    expected: "array of floats",
                    found: array.elem_type(),
                })?;
            // Stored as f32: the narrowing is exact.
            let scores = scores.into_iter().map(|v| v as f32).collect();
            (Vec::new(), scores)
        } else {
            (gguf.get_str_array("tokenizer.ggml.merges")?, Vec::new())
        };
        let kinds = match gguf.get("tokenizer.ggml.token_type") {
            None => vec![TokenKind::Normal; tokens.len()],
            Some(_) => {
                let array = gguf.get_array("tokenizer.ggml.token_type")?;
                let codes = array
                    .to_i64_vec()
                    .ok_or_else(|| GgufError::WrongValueType {
                        key: "tokenizer.ggml.token_type".to_owned(),
                        expected: "array of integers",
                        found: array.elem_type(),
                    })?;
                if codes.len() != tokens.len() {
                    return Err(TokenizerError::LengthMismatch {
                        what: "tokenizer.ggml.token_type",
                        expected: tokens.len(),
                        actual: codes.len(),
                    });
                }
                codes
                    .iter()
                    .zip(0u32..)
                    .map(|(&code, id)| {
                        TokenKind::from_code(code)
                            .ok_or(TokenizerError::UnknownTokenType { id, code })
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        let id = |key: &str| -> Result<Option<u32>, TokenizerError> {
            let Some(id) = optional(gguf, key, Gguf::get_u64)? else {
                return Ok(None);
            };
            let id = u32::try_from(id).map_err(|_| GgufError::InvalidValue {
                key: key.to_owned(),
                reason: format!("token id {id} does not fit in 32 bits"),
            })?;
            Ok(Some(id))
        };
        let add_bos = optional(gguf, "tokenizer.ggml.add_bos_token", Gguf::get_bool)?;
        let add_space_prefix = optional(gguf, "tokenizer.ggml.add_space_prefix", Gguf::get_bool)?;
        let chat_template = optional(gguf, "tokenizer.chat_template", Gguf::get_str)?;
        let config = TokenizerConfig {
            tokens: &tokens,
            kinds,
            merges: &merges,
            scores,
            pre,
            bos: id("tokenizer.ggml.bos_token_id")?,
            eos: id("tokenizer.ggml.eos_token_id")?,
            eot: id("tokenizer.ggml.eot_token_id")?,
            // llama.cpp's defaults: SentencePiece and Llama 3 want a BOS unless told
            // otherwise, SentencePiece also the space prefix.
            add_bos: add_bos.unwrap_or(matches!(
                pre,
                PreTokenizer::SentencePiece | PreTokenizer::Llama3
            )),
            add_space_prefix: pre == PreTokenizer::SentencePiece
                && add_space_prefix.unwrap_or(true),
            chat_template: chat_template.map(str::to_owned),
        };
        Self::build(config)
    }

    fn build(config: TokenizerConfig<'_>) -> Result<Self, TokenizerError> {
        let vocab_size = config.tokens.len();
        let check = |id: Option<u32>| match id {
            Some(id) if id as usize >= vocab_size => {
                Err(TokenizerError::TokenIdOutOfRange { id, vocab_size })
            }
            _ => Ok(id),
        };
        let bos = check(config.bos)?;
        let eos = check(config.eos)?;
        let eot = check(config.eot)?;

        let kinds = config.kinds;
        let splitter = if config.pre == PreTokenizer::SentencePiece {
            Splitter::SentencePiece(Box::new(sentence_piece::SentencePiece::new(
                config.tokens,
                &kinds,
                config.scores,
            )?))
        } else {
            Splitter::ByteLevel(Box::new(byte_level_bpe(
                config.tokens,
                config.merges,
                config.pre,
            )?))
        };
        let mut all = Vec::new();
        let mut user = Vec::new();
        for ((text, kind), id) in config.tokens.iter().zip(&kinds).zip(0u32..) {
            if kind.is_special() && !text.is_empty() {
                all.push((*text, id));
                if *kind == TokenKind::UserDefined {
                    user.push((*text, id));
                }
            }
        }
        let sentence_piece = config.pre == PreTokenizer::SentencePiece;
        let bytes = config
            .tokens
            .iter()
            .zip(&kinds)
            .map(|(text, kind)| {
                if sentence_piece {
                    sentence_piece_bytes(text, *kind)
                } else {
                    token_bytes(text, *kind)
                }
            })
            .collect();

        let mut end_of_generation: Vec<u32> = [eos, eot].into_iter().flatten().collect();
        for ((text, kind), id) in config.tokens.iter().zip(&kinds).zip(0u32..) {
            if *kind == TokenKind::Control
                && END_OF_GENERATION_TEXTS.contains(text)
                && !end_of_generation.contains(&id)
            {
                end_of_generation.push(id);
            }
        }

        Ok(Self {
            splitter,
            pre: config.pre,
            add_space_prefix: config.add_space_prefix,
            texts: config.tokens.iter().map(|t| (*t).to_owned()).collect(),
            bytes,
            kinds,
            all_specials: SpecialMatcher::new(all)?,
            user_specials: SpecialMatcher::new(user)?,
            bos,
            eos,
            end_of_generation,
            add_bos: config.add_bos,
            chat_template: config.chat_template,
        })
    }

    /// Number of tokens in the vocabulary.
    #[must_use]
    pub fn vocab_size(&self) -> usize {
        self.texts.len()
    }

    /// The pre-tokenizer in use.
    #[must_use]
    pub fn pre_tokenizer(&self) -> PreTokenizer {
        self.pre
    }

    /// The beginning-of-sequence token, if the model has one.
    #[must_use]
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// The end-of-sequence token, if the model has one.
    #[must_use]
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Whether prompts should start with [`Tokenizer::bos`]
    /// (`tokenizer.ggml.add_bos_token`; false when absent).
    #[must_use]
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Tokens that end a generation: eos, eot and the usual end-of-turn
    /// control tokens present in the vocabulary (for SmolLM2: `<|im_end|>`
    /// and `<|endoftext|>`).
    #[must_use]
    pub fn end_of_generation(&self) -> &[u32] {
        &self.end_of_generation
    }

    /// Whether generating `id` ends the generation.
    #[must_use]
    pub fn is_end_of_generation(&self, id: u32) -> bool {
        self.end_of_generation.contains(&id)
    }

    /// The vocabulary entry of a token as stored (byte-level characters).
    #[must_use]
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.texts.get(id as usize).map(String::as_str)
    }

    /// What kind of token `id` is.
    #[must_use]
    pub fn token_kind(&self, id: u32) -> Option<TokenKind> {
        self.kinds.get(id as usize).copied()
    }

    /// The bytes a token stands for (a control token: its text).
    #[must_use]
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.bytes.get(id as usize).map(|b| &b[..])
    }

    /// The model's chat template source (`tokenizer.chat_template`), if any.
    #[must_use]
    pub fn chat_template_source(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// The model's chat template: its own if it ships a ChatML one, plain
    /// ChatML if it ships none (llama.cpp's fallback).
    ///
    /// # Errors
    /// [`TokenizerError::UnsupportedChatTemplate`] for other template families.
    pub fn chat_template(&self) -> Result<ChatTemplate, TokenizerError> {
        match &self.chat_template {
            Some(source) => ChatTemplate::from_source(source),
            None => Ok(ChatTemplate::chatml()),
        }
    }

    /// Encodes `text` to token ids (no BOS added).
    ///
    /// # Errors
    /// [`TokenizerError::Bpe`] if the BPE engine fails.
    pub fn encode(&self, text: &str, specials: Specials) -> Result<Vec<u32>, TokenizerError> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 1);
        self.encode_into(text, specials, &mut ids)?;
        Ok(ids)
    }

    /// Encodes `text` and appends the ids to `out`.
    ///
    /// # Errors
    /// [`TokenizerError::Bpe`] if the BPE engine fails.
    pub fn encode_into(
        &self,
        text: &str,
        specials: Specials,
        out: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        let matcher = match specials {
            Specials::Parse => &self.all_specials,
            Specials::AsText => &self.user_specials,
        };
        let mut plain_start = 0;
        // SentencePiece puts a space before the text and after each special token.
        let mut after_special = true;
        if let Some(matcher) = matcher {
            for found in matcher.automaton.find_iter(text) {
                self.encode_plain(&text[plain_start..found.start()], after_special, out)?;
                if let Some(&id) = matcher.ids.get(found.pattern().as_usize()) {
                    out.push(id);
                }
                after_special = true;
                plain_start = found.end();
            }
        }
        self.encode_plain(&text[plain_start..], after_special, out)
    }

    /// A prompt for plain completion: BOS if the model wants one, then
    /// `text` with special-token text parsed (the prompt is trusted).
    ///
    /// # Errors
    /// [`TokenizerError::Bpe`] if the BPE engine fails.
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 2);
        if let (true, Some(bos)) = (self.add_bos, self.bos) {
            ids.push(bos);
        }
        self.encode_into(text, Specials::Parse, &mut ids)?;
        Ok(ids)
    }

    /// Encodes a conversation with `template`: BOS if the model wants one,
    /// the template's markup with its special tokens, and message contents as
    /// plain text (special-token text inside a message stays text).
    ///
    /// # Errors
    /// [`TokenizerError::Bpe`] if the BPE engine fails.
    pub fn encode_chat(
        &self,
        template: &ChatTemplate,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let mut ids = Vec::new();
        if let (true, Some(bos)) = (self.add_bos, self.bos) {
            ids.push(bos);
        }
        // Consecutive text pieces are encoded together, exactly as if the
        // rendered prompt were tokenized with its markup split out.
        let mut run = String::new();
        for piece in template.pieces(messages, add_generation_prompt) {
            match piece {
                chat::Piece::Special(text) => {
                    self.encode_into(&run, Specials::AsText, &mut ids)?;
                    run.clear();
                    self.encode_into(text, Specials::Parse, &mut ids)?;
                }
                chat::Piece::Markup(text) | chat::Piece::Content(text) => run.push_str(text),
            }
        }
        self.encode_into(&run, Specials::AsText, &mut ids)?;
        Ok(ids)
    }

    fn encode_plain(
        &self,
        text: &str,
        after_special: bool,
        out: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        if text.is_empty() {
            return Ok(());
        }
        match &self.splitter {
            Splitter::ByteLevel(bpe) => {
                let encoding = bpe.encode_fast(text, false).map_err(TokenizerError::Bpe)?;
                out.extend_from_slice(encoding.get_ids());
                Ok(())
            }
            Splitter::SentencePiece(spm) => {
                let mut escaped = String::with_capacity(text.len() * 3 + 3);
                if self.add_space_prefix && after_special {
                    escaped.push_str(sentence_piece::SPACE);
                }
                for piece in text.split(' ').enumerate() {
                    if piece.0 > 0 {
                        escaped.push_str(sentence_piece::SPACE);
                    }
                    escaped.push_str(piece.1);
                }
                spm.encode(&escaped, out)
            }
        }
    }

    /// Decodes ids to text. Control tokens are included as their text when
    /// `with_specials` is set and left out otherwise; byte sequences that are
    /// not valid UTF-8 become U+FFFD.
    ///
    /// # Errors
    /// [`TokenizerError::TokenIdOutOfRange`].
    pub fn decode(&self, ids: &[u32], with_specials: bool) -> Result<String, TokenizerError> {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            bytes.extend_from_slice(self.piece(id, with_specials)?);
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The bytes `id` contributes to decoded text.
    fn piece(&self, id: u32, with_specials: bool) -> Result<&[u8], TokenizerError> {
        let bytes = self
            .bytes
            .get(id as usize)
            .ok_or(TokenizerError::TokenIdOutOfRange {
                id,
                vocab_size: self.texts.len(),
            })?;
        let hidden = !with_specials
            && matches!(
                self.kinds.get(id as usize),
                Some(TokenKind::Control | TokenKind::Unknown | TokenKind::Unused)
            );
        Ok(if hidden { &[] } else { bytes })
    }

    /// A decoder for generated tokens that yields text as soon as it forms
    /// complete UTF-8 characters.
    #[must_use]
    pub fn stream_decoder(&self, with_specials: bool) -> StreamDecoder<'_> {
        StreamDecoder {
            tokenizer: self,
            with_specials,
            pending: Vec::new(),
        }
    }
}

/// Incremental decoding of generated tokens: a character split across tokens
/// (emoji, CJK) is held back until its last byte arrives.
#[derive(Debug)]
pub struct StreamDecoder<'t> {
    tokenizer: &'t Tokenizer,
    with_specials: bool,
    pending: Vec<u8>,
}

impl StreamDecoder<'_> {
    /// Adds one token and returns the text it completes (possibly empty).
    ///
    /// # Errors
    /// [`TokenizerError::TokenIdOutOfRange`].
    pub fn push(&mut self, id: u32) -> Result<String, TokenizerError> {
        let piece = self.tokenizer.piece(id, self.with_specials)?;
        self.pending.extend_from_slice(piece);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(text) => {
                    out.push_str(text);
                    self.pending.clear();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        // Incomplete character at the end: wait for more.
                        None => {
                            self.pending.drain(..valid);
                            break;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Ends the stream: bytes of an unfinished character become U+FFFD.
    #[must_use]
    pub fn finish(self) -> String {
        String::from_utf8_lossy(&self.pending).into_owned()
    }
}

/// Inputs to [`Tokenizer::build`], independent of where they were read from.
struct TokenizerConfig<'a> {
    tokens: &'a [&'a str],
    kinds: Vec<TokenKind>,
    merges: &'a [&'a str],
    /// SentencePiece piece scores (empty for byte-level BPE).
    scores: Vec<f32>,
    pre: PreTokenizer,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    add_bos: bool,
    add_space_prefix: bool,
    chat_template: Option<String>,
}

/// The byte-level BPE of a vocabulary, its merges and pre-tokenizer.
fn byte_level_bpe(
    tokens: &[&str],
    merge_rules: &[&str],
    pre: PreTokenizer,
) -> Result<tokenizers::Tokenizer, TokenizerError> {
    // The same text twice: the later id wins, as in llama.cpp.
    let mut vocab: AHashMap<String, u32> = AHashMap::with_capacity(tokens.len());
    for (text, id) in tokens.iter().zip(0u32..) {
        vocab.insert((*text).to_owned(), id);
    }
    let mut merges = Vec::with_capacity(merge_rules.len());
    for (index, merge) in merge_rules.iter().enumerate() {
        // Split at the first space after the first character.
        let split = merge
            .char_indices()
            .skip(1)
            .find(|&(_, c)| c == ' ')
            .map(|(at, _)| (&merge[..at], &merge[at + 1..]));
        match split {
            Some((a, b)) if !b.is_empty() => merges.push((a.to_owned(), b.to_owned())),
            _ => {
                return Err(TokenizerError::InvalidMerge {
                    index,
                    merge: (*merge).to_owned(),
                });
            }
        }
    }
    let model = BPE::builder()
        .vocab_and_merges(vocab, merges)
        // Llama 3 takes a pre-token that is a vocabulary entry whole (llama.cpp's
        // `ignore_merges`, Hugging Face's too).
        .ignore_merges(pre == PreTokenizer::Llama3)
        .build()
        .map_err(TokenizerError::Bpe)?;
    let mut bpe = tokenizers::Tokenizer::new(model);
    pre.configure(&mut bpe)?;
    Ok(bpe)
}

/// The bytes a SentencePiece vocabulary entry stands for: `▁` is a space,
/// `<0xXX>` byte tokens their byte, control tokens their text.
fn sentence_piece_bytes(text: &str, kind: TokenKind) -> Box<[u8]> {
    match kind {
        TokenKind::Byte => match sentence_piece::byte_token_value(text) {
            Some(b) => Box::new([b]),
            None => text.as_bytes().into(),
        },
        TokenKind::Control | TokenKind::Unknown | TokenKind::UserDefined => text.as_bytes().into(),
        _ => text.replace(sentence_piece::SPACE, " ").into_bytes().into(),
    }
}

/// Reads an optional metadata entry: absent is `None`, present with the
/// wrong type is an error.
fn optional<'g, B: AsRef<[u8]>, T>(
    gguf: &'g Gguf<B>,
    key: &str,
    read: impl FnOnce(&'g Gguf<B>, &str) -> Result<T, GgufError>,
) -> Result<Option<T>, GgufError> {
    if gguf.contains_key(key) {
        read(gguf, key).map(Some)
    } else {
        Ok(None)
    }
}

/// The bytes a vocabulary entry stands for.
fn token_bytes(text: &str, kind: TokenKind) -> Box<[u8]> {
    if kind.is_special() {
        return text.as_bytes().into();
    }
    // Byte-level text maps back char by char; an entry with characters
    // outside the table (not produced by byte-level BPE) is kept as UTF-8.
    let mapped: Option<Vec<u8>> = text.chars().map(byte_level::char_byte).collect();
    mapped.unwrap_or_else(|| text.as_bytes().to_vec()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A metadata value for the GGUF written by [`gguf_with`].
    enum Meta<'a> {
        Str(&'a str),
        U32(u32),
        Strs(Vec<String>),
        I32s(Vec<i32>),
    }

    /// A tensor-less GGUF file holding `entries`.
    fn gguf_with(entries: &[(&str, Meta<'_>)]) -> Vec<u8> {
        fn string(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
        for (key, value) in entries {
            string(&mut out, key);
            match value {
                Meta::Str(s) => {
                    out.extend_from_slice(&8u32.to_le_bytes());
                    string(&mut out, s);
                }
                Meta::U32(v) => {
                    out.extend_from_slice(&4u32.to_le_bytes());
                    out.extend_from_slice(&v.to_le_bytes());
                }
                Meta::Strs(items) => {
                    out.extend_from_slice(&9u32.to_le_bytes());
                    out.extend_from_slice(&8u32.to_le_bytes());
                    out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                    for item in items {
                        string(&mut out, item);
                    }
                }
                Meta::I32s(items) => {
                    out.extend_from_slice(&9u32.to_le_bytes());
                    out.extend_from_slice(&5u32.to_le_bytes());
                    out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                    for item in items {
                        out.extend_from_slice(&item.to_le_bytes());
                    }
                }
            }
        }
        out
    }

    /// A toy byte-level vocabulary: the 256 byte characters, `ab`, `abc`,
    /// and the control token `<|x|>`.
    fn toy_tokens() -> Vec<String> {
        let mut tokens: Vec<String> = (0u8..=255)
            .map(|b| {
                // The inverse of `char_byte`, by search.
                let c = (0..=0x143u32)
                    .filter_map(char::from_u32)
                    .find(|&c| byte_level::char_byte(c) == Some(b));
                c.map(String::from).unwrap_or_default()
            })
            .collect();
        tokens.extend(["ab", "abc", "<|x|>"].map(str::to_owned));
        tokens
    }

    fn toy(entries: Vec<(&str, Meta<'_>)>) -> Result<Tokenizer, TokenizerError> {
        let mut all = vec![
            ("tokenizer.ggml.model", Meta::Str("gpt2")),
            ("tokenizer.ggml.pre", Meta::Str("smollm")),
            ("tokenizer.ggml.tokens", Meta::Strs(toy_tokens())),
            (
                "tokenizer.ggml.merges",
                Meta::Strs(vec!["a b".into(), "ab c".into()]),
            ),
        ];
        for (key, value) in entries {
            all.retain(|(k, _)| *k != key);
            all.push((key, value));
        }
        let gguf = Gguf::parse(gguf_with(&all))?;
        Tokenizer::from_gguf(&gguf)
    }

    fn types(control: usize) -> Meta<'static> {
        let mut codes = vec![1; 259];
        codes[control] = 3;
        Meta::I32s(codes)
    }

    #[test]
    fn toy_vocabulary_encodes_and_decodes() {
        let t =
            toy(vec![("tokenizer.ggml.token_type", types(258))]).unwrap_or_else(|e| panic!("{e}"));
        let ids = t
            .encode("abc ab<|x|>", Specials::Parse)
            .unwrap_or_else(|e| panic!("{e}"));
        // "abc", " ", "ab", "<|x|>": the space is its own pre-token.
        assert_eq!(ids, [257, 32, 256, 258]);
        let as_text = t
            .encode("<|x|>", Specials::AsText)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(as_text.len(), 5);
        assert_eq!(t.decode(&ids, true).ok().as_deref(), Some("abc ab<|x|>"));
        assert_eq!(t.decode(&ids, false).ok().as_deref(), Some("abc ab"));
        assert_eq!(t.pre_tokenizer(), PreTokenizer::SmolLm);
        assert!(t.chat_template().is_ok_and(|c| c == ChatTemplate::chatml()));
    }

    #[test]
    fn rejects_unsupported_or_malformed_metadata() {
        let err = |entries| {
            toy(entries)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(matches!(
            toy(vec![("tokenizer.ggml.model", Meta::Str("bert"))]),
            Err(TokenizerError::UnsupportedModel(m)) if m == "bert"
        ));
        assert!(matches!(
            toy(vec![("tokenizer.ggml.pre", Meta::Str("falcon"))]),
            Err(TokenizerError::UnsupportedPreTokenizer(_))
        ));
        assert!(matches!(
            toy(vec![("tokenizer.ggml.token_type", Meta::I32s(vec![1; 3]))]),
            Err(TokenizerError::LengthMismatch {
                expected: 259,
                actual: 3,
                ..
            })
        ));
        let mut codes = vec![1; 259];
        codes[7] = 9;
        assert!(matches!(
            toy(vec![("tokenizer.ggml.token_type", Meta::I32s(codes))]),
            Err(TokenizerError::UnknownTokenType { id: 7, code: 9 })
        ));
        assert!(matches!(
            toy(vec![(
                "tokenizer.ggml.merges",
                Meta::Strs(vec!["ab".into()])
            )]),
            Err(TokenizerError::InvalidMerge { index: 0, .. })
        ));
        // A merge whose parts are not in the vocabulary.
        assert!(matches!(
            toy(vec![(
                "tokenizer.ggml.merges",
                Meta::Strs(vec!["zz q".into()])
            )]),
            Err(TokenizerError::Bpe(_))
        ));
        assert!(matches!(
            toy(vec![("tokenizer.ggml.bos_token_id", Meta::U32(259))]),
            Err(TokenizerError::TokenIdOutOfRange {
                id: 259,
                vocab_size: 259
            })
        ));
        assert!(matches!(
            toy(vec![("tokenizer.ggml.eos_token_id", Meta::Str("2"))]),
            Err(TokenizerError::Metadata(GgufError::WrongValueType { .. }))
        ));
        assert!(
            err(vec![("tokenizer.ggml.tokens", Meta::U32(1))]).contains("tokenizer.ggml.tokens")
        );
        assert!(matches!(
            toy(vec![("tokenizer.chat_template", Meta::Str("{{ '<s>' }}"))])
                .map(|t| t.chat_template()),
            Ok(Err(TokenizerError::UnsupportedChatTemplate))
        ));
    }
}

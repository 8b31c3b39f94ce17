//! The one error type of the protocol crate: every way outside bytes can be malformed.

/// Why bytes could not be decoded, a frame stream broke, a proof of work failed or versions
/// could not be agreed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ended before the value did.
    #[error("unexpected end of input: needed {needed} bytes, {remaining} left")]
    UnexpectedEof {
        /// Bytes the next item needed.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// Bytes were left after a complete value.
    #[error("{0} trailing bytes after a complete value")]
    TrailingBytes(usize),
    /// A constructor id other than the one required.
    #[error("expected constructor {expected:08x}, found {found:08x}")]
    UnexpectedConstructor {
        /// The id required here.
        expected: u32,
        /// The id found.
        found: u32,
    },
    /// A constructor id that no known type at this position has.
    #[error("unknown constructor {id:08x} for {context}")]
    UnknownConstructor {
        /// The id found.
        id: u32,
        /// The TL type expected here.
        context: &'static str,
    },
    /// A flags word with bits that no field of the constructor uses: a newer peer's field may
    /// follow them, so decoding stops rather than misread the rest.
    #[error("constructor {id:08x}: unknown flag bits {unknown:#x}")]
    UnknownFlagBits {
        /// The constructor whose flags word it is.
        id: u32,
        /// The bits set that are not known.
        unknown: u32,
    },
    /// A `Bool` that is neither `boolTrue` nor `boolFalse`.
    #[error("invalid Bool constructor {0:08x}")]
    InvalidBool(u32),
    /// A `bytes` length prefix of 0xff.
    #[error("invalid bytes length prefix 0xff")]
    InvalidLengthPrefix,
    /// A long-form length for data short enough for the one-byte form.
    #[error("non-canonical long length {0} (< 254)")]
    NonCanonicalLength(usize),
    /// Padding after `bytes` data that is not zero.
    #[error("non-zero padding after bytes value")]
    NonZeroPadding,
    /// A `string` that is not UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A vector with a negative count.
    #[error("negative vector count {0}")]
    NegativeCount(i32),
    /// A vector count the remaining input cannot hold.
    #[error("vector count {count} cannot fit in {remaining} remaining bytes")]
    CountTooLarge {
        /// Items announced.
        count: usize,
        /// Bytes left.
        remaining: usize,
    },
    /// A value too long for TL's 24-bit length.
    #[error("bytes value of {0} bytes exceeds the TL maximum")]
    BytesTooLong(usize),
    /// The length field is outside the accepted range.
    #[error("frame length {len} outside {min}..={max}")]
    BadLength {
        /// Announced body length.
        len: u32,
        /// Smallest accepted.
        min: u32,
        /// Largest accepted.
        max: u32,
    },
    /// The sequence number is not the next one.
    #[error("frame seqno {found}, expected {expected}")]
    BadSeqno {
        /// The seqno required.
        expected: i32,
        /// The seqno received.
        found: i32,
    },
    /// The message does not start with the expected magic.
    #[error("bad proof-of-work magic {found:08x}, expected {expected:08x}")]
    BadMagic {
        /// The magic required.
        expected: u32,
        /// The magic found.
        found: u32,
    },
    /// The server asks for more work than this client accepts.
    #[error("proof-of-work difficulty {difficulty} exceeds the limit {limit}")]
    TooDifficult {
        /// Requested difficulty.
        difficulty: i32,
        /// Highest difficulty accepted.
        limit: i32,
    },
    /// The difficulty is negative or beyond 64 bits.
    #[error("invalid proof-of-work difficulty {0}")]
    InvalidDifficulty(i32),
    /// The nonce does not meet the difficulty.
    #[error("proof-of-work answer does not meet difficulty {0}")]
    Insufficient(i32),
    /// The ranges do not overlap.
    #[error(
        "no common protocol version: ours {own_min}..={own_max}, theirs {remote_min}..={remote_max}"
    )]
    NoOverlap {
        /// Our minimum.
        own_min: i32,
        /// Our maximum.
        own_max: i32,
        /// Their minimum.
        remote_min: i32,
        /// Their maximum.
        remote_max: i32,
    },
    /// A transcription form without a field it needs.
    #[error("the form has no `{0}` field")]
    FormMissingField(&'static str),
    /// A transcription form field with a value that is not accepted.
    #[error("form field `{field}`: {reason}")]
    FormInvalidField {
        /// The field's name.
        field: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A transcription form field larger than allowed.
    #[error("form field `{field}` of {size} bytes exceeds the limit of {limit} bytes")]
    FormFieldTooLarge {
        /// The field's name.
        field: String,
        /// Its size.
        size: usize,
        /// The largest accepted.
        limit: usize,
    },
    /// A body that is not well-formed `multipart/form-data`.
    #[error("malformed multipart/form-data body: {0}")]
    MalformedForm(&'static str),
    /// Audio whose duration cannot be measured from its bytes (only WAV can be).
    #[error("the audio's duration cannot be measured: {0}")]
    UnmeasurableAudio(&'static str),
}

impl Error {
    /// The transcription form field an error is about, for an API answer that names it
    /// (`file` for audio that cannot be measured); `None` for other errors.
    pub fn form_field(&self) -> Option<&str> {
        match self {
            Self::FormMissingField(f) => Some(f),
            Self::FormInvalidField { field, .. } | Self::FormFieldTooLarge { field, .. } => {
                Some(field)
            }
            Self::UnmeasurableAudio(_) => Some("file"),
            _ => None,
        }
    }
}

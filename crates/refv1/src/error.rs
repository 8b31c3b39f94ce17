//! The one error type of this crate: every way a reference-encrypted body or string can be
//! refused, told apart without string matching.

/// Everything that can go wrong while encrypting or decrypting in the reference's "v1" scheme.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefV1Error {
    /// Part of an answer is not a JSON document the scheme can cover (an SSE `data:` line that
    /// is neither JSON nor `[DONE]`, a whole answer that is not JSON): refused rather than
    /// passed in clear.
    #[error("an answer part is not a JSON document the encryption can cover")]
    UncoveredAnswer,
    /// A 32-byte Ed25519 public key is not the encoding of a point on the curve.
    #[error("the {which} public key is not a valid Ed25519 point")]
    InvalidPublicKey {
        /// Which key: `"sender"` or `"receiver"`.
        which: &'static str,
    },
    /// The X25519 exchange gave the all-zero point: the peer's key is of small order.
    #[error("the peer's public key is of small order (all-zero shared point)")]
    SmallOrderKey,
    /// A ciphertext is shorter than its 16-byte `msg_key` plus one block, or its encrypted part
    /// is not a whole number of 16-byte blocks.
    #[error(
        "ciphertext of {len} bytes is not msg_key (16) plus a positive number of 16-byte blocks"
    )]
    CiphertextLength {
        /// The length found.
        len: usize,
    },
    /// The `msg_key` does not authenticate the decrypted data (wrong key, wrong direction or
    /// tampered bytes).
    #[error("message authentication failed")]
    BadMac,
    /// The decrypted prefix length is outside `16..=data length`.
    #[error("prefix length {prefix} outside 16..={data_len}")]
    PrefixLength {
        /// The prefix length read from the first byte.
        prefix: usize,
        /// The length of the decrypted data.
        data_len: usize,
    },
    /// A string value that should be `ENC_` + hex is not valid hex.
    #[error("encrypted value at {path} is not hex")]
    NotHex {
        /// Where in the body (a JSON pointer).
        path: String,
    },
    /// A decrypted string value is not UTF-8.
    #[error("decrypted value at {path} is not UTF-8")]
    NotUtf8 {
        /// Where in the body (a JSON pointer).
        path: String,
    },
    /// A value failed to decrypt; the inner error says why.
    #[error("value at {path}: {source}")]
    Value {
        /// Where in the body (a JSON pointer).
        path: String,
        /// Why it failed.
        source: Box<RefV1Error>,
    },
    /// The body is not a JSON object.
    #[error("the body is not a JSON object: {0}")]
    NotAnObject(String),
    /// A field the scheme requires is missing or not a string.
    #[error("field {field} is missing or not a string")]
    MissingField {
        /// The field's name.
        field: &'static str,
    },
    /// `is_encrypted` names a version other than `"v1"`.
    #[error("unsupported is_encrypted version {0:?}")]
    UnsupportedVersion(String),
    /// A field that must hold a 32-byte key or nonce does not.
    #[error("field {field} is not {encoding} of 32 bytes")]
    BadKeyField {
        /// The field's name.
        field: &'static str,
        /// The encoding it must have (`"hex"` or `"base64"`).
        encoding: &'static str,
    },
    /// The body is addressed to another key than the one this node was given.
    #[error("the body is encrypted for another receiver key")]
    WrongReceiver,
    /// A body to be encrypted already carries one of the scheme's fields.
    #[error("the body already has the field {0}")]
    AlreadyEncrypted(&'static str),
    /// The random number generator failed.
    #[error("random number generator failed")]
    Random,
    /// An answer line or document grew past the limit before it ended.
    #[error("answer piece larger than {max} bytes")]
    AnswerTooLarge {
        /// The limit.
        max: usize,
    },
    /// Nesting deeper than [`crate::MAX_DEPTH`]: refused rather than recursed.
    #[error("JSON nested deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: usize,
    },
}

/// This crate's result type.
pub type Result<T, E = RefV1Error> = std::result::Result<T, E>;

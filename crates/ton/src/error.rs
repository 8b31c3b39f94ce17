//! The crate's single error type: every way bytes from outside (a BOC, an address string, a
//! contract's data cell, a voucher) can be malformed, and every limit a builder can hit.

/// Everything that can go wrong in this crate.
///
/// Parsing never panics: malformed or hostile input always ends up as one of these variants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A builder would exceed the 1023 data bits of a cell.
    #[error("cell overflow: {needed} more bits needed, {available} available")]
    BitOverflow {
        /// Bits the write needed.
        needed: usize,
        /// Bits still free in the builder.
        available: usize,
    },
    /// A builder would exceed the four references of a cell.
    #[error("cell overflow: a cell holds at most 4 references")]
    RefOverflow,
    /// A value does not fit in the number of bits it is stored in.
    #[error("value does not fit in {bits} bits")]
    ValueTooLarge {
        /// The field width.
        bits: usize,
    },
    /// A field width is not supported by the accessor used (for example more than 64 bits
    /// read into a `u64`).
    #[error("unsupported field width: {bits} bits")]
    FieldWidth {
        /// The requested width.
        bits: usize,
    },
    /// A reader needed more data bits than the cell has left.
    #[error("cell underflow: {needed} bits needed, {remaining} remaining")]
    CellUnderflow {
        /// Bits the read needed.
        needed: usize,
        /// Bits left in the slice.
        remaining: usize,
    },
    /// A reader needed a reference the cell does not have.
    #[error("cell underflow: no reference left")]
    RefUnderflow,
    /// A layout was parsed completely but the cell holds more.
    #[error("unexpected trailing data: {bits} bits and {refs} references left")]
    TrailingData {
        /// Data bits left unread.
        bits: usize,
        /// References left unread.
        refs: usize,
    },
    /// A cell tree is deeper than TON allows (1024 levels).
    #[error("cell tree deeper than {max} levels")]
    DepthLimit {
        /// The limit.
        max: u16,
    },
    /// The bytes are not a well-formed bag of cells.
    #[error("malformed BOC: {0}")]
    InvalidBoc(&'static str),
    /// The bag of cells has a CRC32-C and it does not match.
    #[error("BOC checksum mismatch")]
    BocChecksum,
    /// The bag of cells exceeds a configured size limit.
    #[error("BOC exceeds the limit of {max} {what}")]
    BocLimit {
        /// Which quantity is limited.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// The bag of cells has a number of roots other than the one expected.
    #[error("expected one root cell, found {0}")]
    RootCount(usize),
    /// Exotic cells (pruned branches, library cells, Merkle proofs) are not handled here.
    #[error("exotic cells are not supported")]
    ExoticCell,
    /// Text that should be base64 is not.
    #[error("invalid base64")]
    Base64,
    /// Text that should be hexadecimal is not.
    #[error("invalid hex")]
    Hex,
    /// An address string or field is malformed.
    #[error("invalid address: {0}")]
    InvalidAddress(&'static str),
    /// A user-friendly address whose CRC16 does not match.
    #[error("address checksum mismatch")]
    AddressChecksum,
    /// An address of a kind our contracts never use (none, external, variable length, anycast)
    /// where a standard internal address was required.
    #[error("unsupported address kind: {0}")]
    UnsupportedAddress(&'static str),
    /// A message body starts with another op code than the one parsed.
    #[error("unexpected op code {found:#010x} (expected {expected:#010x})")]
    UnexpectedOp {
        /// The op the parser handles.
        expected: u32,
        /// The op found in the body.
        found: u32,
    },
    /// A message body starts with an op code none of our contracts accepts.
    #[error("unknown op code {0:#010x}")]
    UnknownOp(u32),
    /// A field holds a value outside its domain (a state other than 0..=2, a request kind
    /// other than the known ones...).
    #[error("invalid {field}: {value}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// The value found.
        value: u64,
    },
    /// A signature does not verify under the expected key.
    #[error("bad signature")]
    BadSignature,
    /// Thirty-two bytes that are not a valid Ed25519 public key.
    #[error("invalid Ed25519 public key")]
    InvalidPublicKey,
    /// A voucher is for another contract than the one it was checked against.
    #[error("voucher is for another contract")]
    WrongTarget,
    /// Text stored in cells is not valid UTF-8 or not byte aligned.
    #[error("invalid text: {0}")]
    InvalidText(&'static str),
    /// A dictionary holds more entries than the configured limit.
    #[error("dictionary holds more than {max} entries")]
    TooManyEntries {
        /// The limit.
        max: usize,
    },
    /// A dictionary cell is malformed.
    #[error("malformed dictionary: {0}")]
    InvalidDictionary(&'static str),
    /// Network parameters break a rule the root contract enforces.
    #[error("inconsistent parameters: {0}")]
    InvalidParams(&'static str),
    /// A wallet transfer has more messages than the wallet accepts.
    #[error("a {wallet} transfer carries at most {max} messages")]
    TooManyMessages {
        /// The wallet version.
        wallet: &'static str,
        /// The limit.
        max: usize,
    },
    /// A get-method result does not have the expected shape.
    #[error("unexpected get-method result: {0}")]
    InvalidStack(&'static str),
    /// The compiled contract code embedded in this crate could not be loaded.
    #[error("embedded contract code {0} is unusable")]
    EmbeddedCode(&'static str),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;

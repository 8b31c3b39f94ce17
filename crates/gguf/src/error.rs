//! The one error type of this crate: every way a GGUF file can be corrupt or unusable.

use std::path::PathBuf;

use crate::tensor::GgmlType;
use crate::value::ValueType;

/// Why a GGUF file could not be read, or a tensor could not be decoded.
///
/// Offsets are byte positions from the start of the file, so a report can
/// point at the faulty bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    /// The file could not be read from disk.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file that was being read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The file does not start with the four bytes `GGUF`.
    #[error("not a GGUF file: magic bytes are {found:02x?}")]
    BadMagic {
        /// The first four bytes found (fewer if the file is shorter).
        found: Vec<u8>,
    },

    /// The version field names a format revision this reader does not handle.
    #[error("unsupported GGUF version {0} (supported: 2 and 3)")]
    UnsupportedVersion(u32),

    /// The file is a big-endian GGUF; only little-endian files are read.
    #[error("big-endian GGUF files (version {0}) are not supported")]
    BigEndian(u32),

    /// The file ends before a field that the layout says must be there.
    #[error("file truncated at offset {offset}: {what} needs {needed} bytes, {available} left")]
    Truncated {
        /// Where the field starts.
        offset: u64,
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes left in the file from `offset`.
        available: u64,
    },

    /// A count or length is larger than the rest of the file could possibly hold.
    ///
    /// Checked before allocating, so a hostile header cannot make the reader
    /// reserve more memory than the file's own size.
    #[error("{what} of {count} at offset {offset} cannot fit in the {available} bytes left")]
    CountTooLarge {
        /// What was being counted.
        what: &'static str,
        /// The count found in the file.
        count: u64,
        /// Where the count field starts.
        offset: u64,
        /// Bytes left in the file after the count field.
        available: u64,
    },

    /// A string is not valid UTF-8.
    #[error("string at offset {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// Where the string's bytes start.
        offset: u64,
    },

    /// A boolean byte is neither 0 nor 1.
    #[error("boolean at offset {offset} has byte value {value}")]
    InvalidBool {
        /// Where the byte is.
        offset: u64,
        /// The byte found.
        value: u8,
    },

    /// A metadata value type code is unknown.
    #[error("unknown metadata value type {code} at offset {offset}")]
    UnknownValueType {
        /// The code found.
        code: u32,
        /// Where the code is.
        offset: u64,
    },

    /// Metadata arrays are nested deeper than this reader allows.
    #[error("metadata arrays nested deeper than {max} levels at offset {offset}")]
    NestingTooDeep {
        /// The nesting limit.
        max: usize,
        /// Where the too-deep array starts.
        offset: u64,
    },

    /// Two metadata entries share a key.
    #[error("duplicate metadata key {0:?}")]
    DuplicateKey(String),

    /// Two tensors share a name.
    #[error("duplicate tensor name {0:?}")]
    DuplicateTensor(String),

    /// A metadata key that was asked for is absent.
    #[error("metadata key {0:?} is missing")]
    MissingKey(String),

    /// A metadata value has a different type than the caller or the format requires.
    #[error("metadata key {key:?} holds {found}, expected {expected}")]
    WrongValueType {
        /// The key.
        key: String,
        /// What was expected, in words.
        expected: &'static str,
        /// The type found.
        found: ValueType,
    },

    /// A metadata value has the right type but a value outside its allowed range.
    #[error("metadata key {key:?} has invalid value: {reason}")]
    InvalidValue {
        /// The key.
        key: String,
        /// Why the value is not allowed.
        reason: String,
    },

    /// `general.alignment` is zero or not a power of two.
    #[error("alignment {0} is not a non-zero power of two")]
    InvalidAlignment(u64),

    /// A tensor type code is unknown (or names a type removed from GGML).
    #[error("tensor {tensor:?} has unknown type code {code}")]
    UnknownTensorType {
        /// The tensor's name.
        tensor: String,
        /// The code found.
        code: u32,
    },

    /// A tensor has more dimensions than GGML supports.
    #[error("tensor {tensor:?} has {n_dims} dimensions, at most {max} allowed")]
    TooManyDimensions {
        /// The tensor's name.
        tensor: String,
        /// Dimensions found.
        n_dims: u32,
        /// The limit.
        max: usize,
    },

    /// A tensor's shape cannot describe stored data of its type.
    #[error("tensor {tensor:?} has an invalid shape {dims:?}: {reason}")]
    InvalidShape {
        /// The tensor's name.
        tensor: String,
        /// The dimensions, innermost first.
        dims: Vec<u64>,
        /// What is wrong with them.
        reason: &'static str,
    },

    /// A tensor's data offset is not a multiple of the file's alignment.
    #[error(
        "tensor {tensor:?} data offset {offset} is not a multiple of the alignment {alignment}"
    )]
    MisalignedTensor {
        /// The tensor's name.
        tensor: String,
        /// Offset relative to the start of the data section.
        offset: u64,
        /// The file's alignment.
        alignment: u64,
    },

    /// A tensor's data extends past the end of the file.
    #[error(
        "tensor {tensor:?} data [{offset}, +{size}) lies outside the {available}-byte data section"
    )]
    TensorOutOfBounds {
        /// The tensor's name.
        tensor: String,
        /// Offset relative to the start of the data section.
        offset: u64,
        /// Size of the tensor's data in bytes.
        size: u64,
        /// Size of the data section.
        available: u64,
    },

    /// Two tensors' data regions overlap.
    #[error("data of tensors {first:?} and {second:?} overlap")]
    OverlappingTensors {
        /// The tensor starting first.
        first: String,
        /// The tensor starting inside the first one's data.
        second: String,
    },

    /// The data section would start beyond the end of the file.
    #[error("data section starts at {start}, past the end of the {len}-byte file")]
    MissingDataSection {
        /// Where the aligned data section starts.
        start: u64,
        /// The file's length.
        len: u64,
    },

    /// A tensor asked for by name does not exist.
    #[error("tensor {0:?} not found")]
    MissingTensor(String),

    /// Dequantization of this tensor type is not implemented.
    #[error("dequantization of {0} is not supported")]
    UnsupportedType(GgmlType),

    /// Input or output buffer sizes do not match for a decoding call.
    #[error("{what}: expected {expected}, got {actual}")]
    LengthMismatch {
        /// What was being checked.
        what: &'static str,
        /// The size required.
        expected: usize,
        /// The size given.
        actual: usize,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = GgufError> = std::result::Result<T, E>;

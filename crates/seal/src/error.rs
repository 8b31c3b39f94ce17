//! The one error type of this crate, so callers can tell every failure apart without string matching.

use std::path::PathBuf;

use crate::key_file::SecretKind;
use crate::key_source::KeySourceKind;
use crate::keys::KeyId;
use crate::stream::StreamId;

/// Everything that can go wrong while sealing or opening.
///
/// Parsing errors say which field was wrong; authentication errors say which layer refused the
/// bytes (a recipient's key wrap, the body, one chunk), so a caller can log something precise
/// without ever learning anything about the plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    // ----- framing -----
    /// The input ended before a field that the layout requires.
    #[error("input truncated: {field} needs {needed} bytes, {available} available")]
    Truncated {
        /// The field that could not be read.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// Bytes followed the end of a complete structure.
    #[error("{extra} unexpected bytes after the end of the {structure}")]
    TrailingBytes {
        /// What was being parsed.
        structure: &'static str,
        /// How many bytes were left over.
        extra: usize,
    },
    /// The format version byte is not one this build understands.
    #[error("unsupported {structure} version {found}")]
    UnsupportedVersion {
        /// What was being parsed.
        structure: &'static str,
        /// The version byte that was found.
        found: u8,
    },
    /// The envelope names an HPKE suite other than X25519 / HKDF-SHA256 / AES-256-GCM.
    #[error("unsupported HPKE suite kem={kem:#06x} kdf={kdf:#06x} aead={aead:#06x}")]
    UnsupportedSuite {
        /// KEM identifier found.
        kem: u16,
        /// KDF identifier found.
        kdf: u16,
        /// AEAD identifier found.
        aead: u16,
    },
    /// An envelope must name between 1 and [`crate::envelope::MAX_RECIPIENTS`] recipients.
    #[error("recipient count {count} outside 1..={max}")]
    RecipientCount {
        /// Count requested or found.
        count: usize,
        /// The largest count allowed.
        max: usize,
    },
    /// Two recipients of one envelope carry the same key id.
    #[error("key id {0} appears twice in one envelope")]
    DuplicateKeyId(KeyId),
    /// A length does not fit the format (too long to encode, or longer than the limit).
    #[error("{what} is {len} bytes, more than the limit of {max}")]
    TooLong {
        /// What was too long.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A flags byte has bits set that this version does not define.
    #[error("reserved flag bits set: {flags:#04x}")]
    ReservedFlags {
        /// The flags byte found.
        flags: u8,
    },

    // ----- keys and HPKE -----
    /// A Diffie-Hellman result was all zeroes: the peer's public key is a low-order point.
    #[error("X25519 produced the all-zero shared secret (low-order public key)")]
    NonContributoryKey,
    /// PSK inputs are inconsistent (one without the other) or the PSK is shorter than 32 bytes.
    #[error("invalid pre-shared key input: {0}")]
    InvalidPsk(&'static str),
    /// An HPKE context has used up its sequence numbers.
    #[error("HPKE message limit reached")]
    MessageLimitReached,
    /// HPKE decryption failed (wrong key, wrong info, wrong aad, or altered bytes).
    #[error("HPKE ciphertext failed authentication")]
    HpkeOpen,
    /// An exported secret longer than 255 * 32 bytes was requested.
    #[error("export length {requested} exceeds the HKDF limit of {max}")]
    ExportTooLong {
        /// Length requested.
        requested: usize,
        /// The largest length HKDF-SHA256 can produce.
        max: usize,
    },
    /// The AEAD implementation refused a key. Keys always have the length the algorithm needs,
    /// so this means the cryptographic library itself failed.
    #[error("AEAD key setup failed in the cryptographic library")]
    CipherSetup,
    /// The random number generator failed.
    #[error("random number generator failed")]
    RandomSource,

    // ----- envelope -----
    /// No wrapped key in the envelope carries this recipient's key id.
    #[error("envelope has no entry for key id {0}")]
    RecipientNotFound(KeyId),
    /// The entry for this recipient did not decrypt: it was sealed to another key, or altered.
    #[error("key wrap for key id {0} failed authentication")]
    UnwrapFailed(KeyId),
    /// The unwrapped content key does not match the envelope's key commitment.
    #[error("content key does not match the envelope's key commitment")]
    KeyCommitmentMismatch,
    /// The envelope body failed authentication (altered body, header, or associated data).
    #[error("envelope body failed authentication")]
    BodyAuthentication,

    // ----- chunk streams -----
    /// A chunk belongs to another stream (chunks spliced between streams).
    #[error("chunk belongs to stream {found}, expected stream {expected}")]
    StreamMismatch {
        /// The stream this opener reads.
        expected: StreamId,
        /// The stream id the chunk carries.
        found: StreamId,
    },
    /// A chunk whose sequence number was already delivered arrived again.
    #[error("chunk {seq} was already delivered (duplicate)")]
    ChunkReplayed {
        /// The repeated sequence number.
        seq: u64,
    },
    /// A chunk arrived before one of its predecessors (reordered, or a chunk was dropped).
    #[error("chunk {got} arrived while chunk {expected} was due (reordered or dropped)")]
    ChunkOutOfOrder {
        /// The sequence number that was due.
        expected: u64,
        /// The sequence number that arrived.
        got: u64,
    },
    /// A chunk arrived after the chunk marked final.
    #[error("chunk {seq} arrived after the final chunk")]
    ChunkAfterFinal {
        /// Sequence number of the extra chunk.
        seq: u64,
    },
    /// A chunk failed authentication (altered bytes, or a flag or sequence number rewritten).
    #[error("chunk {seq} failed authentication")]
    ChunkAuthentication {
        /// The sequence number the chunk claimed.
        seq: u64,
    },
    /// The transport ended before the chunk marked final arrived.
    #[error("stream truncated: transport ended after {delivered} chunks without a final chunk")]
    StreamTruncated {
        /// Chunks delivered before the end.
        delivered: u64,
    },
    /// The opener refused an earlier chunk and stays closed.
    #[error("stream already failed; no further chunks are accepted")]
    StreamFailed,
    /// The sealer already sealed its final chunk.
    #[error("stream already finished; no further chunks can be sealed")]
    StreamFinished,
    /// The sealer has used every sequence number.
    #[error("stream sequence numbers exhausted")]
    SequenceExhausted,

    // ----- keys at rest -----
    /// A key source could not produce a key.
    #[error("key source unavailable: {0}")]
    KeySourceUnavailable(String),
    /// The platform device or helper service behind a key source is not there (no
    /// `/dev/sev-guest`, no helper listening on the socket): this machine cannot provide that
    /// kind of key.
    #[error("{kind} key source absent: nothing at {endpoint}")]
    KeySourceAbsent {
        /// The kind of source that was asked for.
        kind: KeySourceKind,
        /// The device path or socket address that was tried.
        endpoint: String,
    },
    /// Talking to the device or helper of a key source failed for another reason (permission
    /// denied, timeout, connection reset).
    #[error("{kind} key source at {endpoint}: {operation} failed: {error}")]
    KeySourceIo {
        /// The kind of source.
        kind: KeySourceKind,
        /// The device path or socket address.
        endpoint: String,
        /// What was being done.
        operation: &'static str,
        /// The operating system's error class.
        error: std::io::ErrorKind,
    },
    /// The firmware or helper answered and refused to produce a key.
    #[error("{kind} key source refused: {reason}")]
    KeySourceRefused {
        /// The kind of source.
        kind: KeySourceKind,
        /// The firmware error or the helper's status and message.
        reason: String,
    },
    /// A key source's configuration cannot be used (for example an SEV-SNP request that sets
    /// fields the chosen message version cannot carry).
    #[error("invalid {kind} key source configuration: {reason}")]
    KeySourceConfig {
        /// The kind of source.
        kind: KeySourceKind,
        /// What is wrong.
        reason: &'static str,
    },
    /// The TD quote that binds a TDX key request could not be produced.
    #[error("TD quote for the key request unavailable: {0}")]
    QuoteUnavailable(String),
    /// The key helper's answer does not have the documented layout.
    #[error("malformed key helper response: {0}")]
    KeyHelperProtocol(&'static str),
    /// The key helper's answer did not authenticate under the pinned helper key and this request:
    /// it came from someone else, was meant for another request, or was altered.
    #[error("key helper response failed authentication (not from the pinned helper key)")]
    KeyHelperAuthentication,
    /// A key purpose label is empty, too long, or has a character outside the allowed set.
    #[error("invalid key purpose: {0}")]
    InvalidKeyPurpose(&'static str),
    /// Sealed data was sealed by a different kind of key source than the one opening it.
    #[error("sealed with key source kind {sealed_with}, not {opening_with}")]
    KeySourceMismatch {
        /// Kind id recorded in the sealed data.
        sealed_with: u8,
        /// Kind id of the source trying to open it.
        opening_with: u8,
    },
    /// A sealed blob failed authentication: altered, or sealed under another key or measurement.
    #[error(
        "sealed blob failed authentication (altered, or sealed under another key or measurement)"
    )]
    BlobAuthentication,

    // ----- sealed key files -----
    /// The bytes do not start with the magic of the named structure.
    #[error("not a {structure}: wrong magic bytes")]
    BadMagic {
        /// What was being parsed.
        structure: &'static str,
    },
    /// A sealed key file names a key source kind this build does not know.
    #[error("unknown key source kind id {0}")]
    UnknownKeySourceKind(u8),
    /// A sealed key file names a secret kind this build does not know.
    #[error("unknown secret kind id {0}")]
    UnknownSecretKind(u8),
    /// A sealed key file holds another kind of secret than the caller asked for.
    #[error("sealed key file holds a {found}, not a {expected}")]
    SecretKindMismatch {
        /// Kind recorded in the file.
        found: SecretKind,
        /// Kind the caller asked for.
        expected: SecretKind,
    },
    /// A sealed key file was sealed for another purpose than the caller asked for.
    #[error("sealed key file is for purpose {found:?}, not {expected:?}")]
    KeyPurposeMismatch {
        /// Purpose recorded in the file.
        found: String,
        /// Purpose the caller asked for.
        expected: String,
    },
    /// A sealed key file failed authentication: sealed under another platform key or
    /// measurement, or altered.
    #[error(
        "sealed key file failed authentication (sealed under another platform key or measurement, or altered)"
    )]
    KeyFileAuthentication,
    /// Reading or writing a key file failed.
    #[error("{operation} {path}: {error}")]
    KeyFileIo {
        /// What was being done.
        operation: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error class.
        error: std::io::ErrorKind,
    },
}

/// Result alias for this crate.
pub type Result<T, E = SealError> = core::result::Result<T, E>;

//! Sealed chunk streams for answers: each chunk is AES-256-GCM under a per-stream key, with the
//! stream id, the sequence number and a final-chunk flag authenticated, so that a relay which can
//! only delay, drop, repeat, reorder, cut or splice chunks is caught doing any of it.
//!
//! The stream key comes from a [`ReplyKey`] (32 bytes known only to the two ends of one request;
//! see [`crate::envelope`]) and a random per-stream [`StreamId`]:
//!
//! ```text
//! prk        = HKDF-Extract(salt = stream_id, ikm = reply_key)
//! key        = HKDF-Expand(prk, "cocoon-seal/v1/chunk-key", 32)
//! base_nonce = HKDF-Expand(prk, "cocoon-seal/v1/chunk-nonce", 12)
//! nonce(seq) = base_nonce XOR (0x00000000 || seq as u64 big-endian)
//! ```
//!
//! A fresh random stream id per answer means that even if one request were (maliciously) replayed
//! to the same worker, the second answer is sealed under different keys: no nonce is ever reused.

use core::fmt;

use hkdf::Hkdf;
use rand_core::TryCryptoRng;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::aead::AesGcmKey;
use crate::error::{Result, SealError};
use crate::hpke::{NONCE_LEN, TAG_LEN};
use crate::keys::Hex;

/// Length of a [`StreamId`].
pub const STREAM_ID_LEN: usize = 16;
/// Version byte of the chunk format described in `docs/sealing.md`.
pub const CHUNK_VERSION: u8 = 1;
/// Bytes before the ciphertext: version, flags, stream id, sequence number, ciphertext length.
pub const CHUNK_HEADER_LEN: usize = 1 + 1 + STREAM_ID_LEN + 8 + 4;
/// Bytes a chunk adds to its plaintext (header and tag).
pub const CHUNK_OVERHEAD: usize = CHUNK_HEADER_LEN + TAG_LEN;
/// Largest plaintext one chunk may carry (16 MiB); bounds what a receiver must buffer.
pub const MAX_CHUNK_PLAINTEXT: usize = 1 << 24;
/// Length of a [`ReplyKey`].
pub const REPLY_KEY_LEN: usize = 32;

const FLAG_FINAL: u8 = 0x01;
const KEY_LABEL: &[u8] = b"cocoon-seal/v1/chunk-key";
const NONCE_LABEL: &[u8] = b"cocoon-seal/v1/chunk-nonce";

/// Random identifier of one answer stream, carried in clear in every chunk and authenticated.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamId(pub [u8; STREAM_ID_LEN]);

impl StreamId {
    /// A fresh random stream id.
    ///
    /// # Errors
    /// [`SealError::RandomSource`] if the RNG fails.
    pub fn random<R: TryCryptoRng + ?Sized>(rng: &mut R) -> Result<Self> {
        let mut id = [0u8; STREAM_ID_LEN];
        crate::random::fill(rng, &mut id)?;
        Ok(Self(id))
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({})", Hex(&self.0))
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Hex(&self.0).fmt(f)
    }
}

/// A secret shared by exactly the two ends of one request, from which answer streams are keyed.
///
/// The worker gets it from [`crate::OpenedEnvelope`]; the client keeps one per recipient in
/// [`crate::ReplyKeys`]. Wiped on drop.
#[derive(Clone)]
pub struct ReplyKey(Zeroizing<[u8; REPLY_KEY_LEN]>);

impl ReplyKey {
    /// Wraps 32 secret bytes (for channels keyed some other way than by an envelope).
    #[must_use]
    pub fn from_bytes(bytes: [u8; REPLY_KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A sealer for a new answer stream with a fresh random stream id.
    ///
    /// # Errors
    /// [`SealError::RandomSource`] if the RNG fails.
    pub fn sealer<R: TryCryptoRng + ?Sized>(&self, rng: &mut R) -> Result<ChunkSealer> {
        Ok(self.sealer_with_stream_id(StreamId::random(rng)?))
    }

    /// A sealer for the given stream id. The caller must never use one stream id twice under the
    /// same reply key (it would reuse nonces); [`ReplyKey::sealer`] makes that impossible.
    #[must_use]
    pub fn sealer_with_stream_id(&self, stream_id: StreamId) -> ChunkSealer {
        ChunkSealer {
            keys: StreamKeys::derive(&self.0, stream_id),
            next_seq: 0,
            finished: false,
        }
    }

    /// An opener that learns the stream id from the first authentic chunk and then holds every
    /// later chunk to it.
    #[must_use]
    pub fn opener(&self) -> ChunkOpener {
        ChunkOpener {
            reply_key: self.0.clone(),
            keys: None,
            expected: 0,
            state: OpenerState::Reading,
        }
    }

    /// An opener that accepts only chunks of `stream_id` (when the id was announced out of band).
    #[must_use]
    pub fn opener_for(&self, stream_id: StreamId) -> ChunkOpener {
        ChunkOpener {
            reply_key: self.0.clone(),
            keys: Some(StreamKeys::derive(&self.0, stream_id)),
            expected: 0,
            state: OpenerState::Reading,
        }
    }
}

impl fmt::Debug for ReplyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReplyKey(<redacted>)")
    }
}

/// The per-stream AES-256-GCM key and base nonce.
struct StreamKeys {
    stream_id: StreamId,
    /// `None` only if the cryptographic library refused the key, which it does not do for a
    /// 32-byte key unless it is itself broken; every chunk then fails with
    /// [`SealError::CipherSetup`] (keeping stream construction infallible without a panic path).
    cipher: Option<AesGcmKey>,
    base_nonce: Zeroizing<[u8; NONCE_LEN]>,
}

impl StreamKeys {
    fn derive(reply_key: &[u8; REPLY_KEY_LEN], stream_id: StreamId) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(&stream_id.0), reply_key);
        let mut key = Zeroizing::new([0u8; 32]);
        let mut base_nonce = Zeroizing::new([0u8; NONCE_LEN]);
        // 32 and 12 bytes are far below HKDF-SHA256's 8160-byte limit, so expansion cannot fail;
        // should it ever, the all-zero outputs would make every chunk fail authentication
        // instead of panicking.
        let _ = hkdf.expand(KEY_LABEL, key.as_mut_slice());
        let _ = hkdf.expand(NONCE_LABEL, base_nonce.as_mut_slice());
        Self {
            stream_id,
            cipher: AesGcmKey::aes256(&key).ok(),
            base_nonce,
        }
    }

    fn nonce(&self, seq: u64) -> [u8; NONCE_LEN] {
        let mut nonce = *self.base_nonce;
        for (n, s) in nonce[NONCE_LEN - 8..].iter_mut().zip(seq.to_be_bytes()) {
            *n ^= s;
        }
        nonce
    }
}

fn encode_header(
    stream_id: &StreamId,
    seq: u64,
    is_final: bool,
    ciphertext_len: u32,
) -> [u8; CHUNK_HEADER_LEN] {
    let mut header = [0u8; CHUNK_HEADER_LEN];
    header[0] = CHUNK_VERSION;
    header[1] = if is_final { FLAG_FINAL } else { 0 };
    header[2..2 + STREAM_ID_LEN].copy_from_slice(&stream_id.0);
    header[2 + STREAM_ID_LEN..2 + STREAM_ID_LEN + 8].copy_from_slice(&seq.to_be_bytes());
    header[2 + STREAM_ID_LEN + 8..].copy_from_slice(&ciphertext_len.to_be_bytes());
    header
}

/// The sending end of an answer stream. Chunks must be sent in the order they are sealed.
pub struct ChunkSealer {
    keys: StreamKeys,
    next_seq: u64,
    finished: bool,
}

impl ChunkSealer {
    /// The id of this stream.
    #[must_use]
    pub fn stream_id(&self) -> StreamId {
        self.keys.stream_id
    }

    /// The sequence number the next chunk will carry.
    #[must_use]
    pub fn next_sequence(&self) -> u64 {
        self.next_seq
    }

    /// Whether the final chunk has been sealed.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Seals a chunk that is not the last one.
    ///
    /// # Errors
    /// See [`ChunkSealer::seal_into`].
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(plaintext.len() + CHUNK_OVERHEAD);
        self.seal_into(plaintext, false, &mut out)?;
        Ok(out)
    }

    /// Seals the last chunk of the stream; the sealer refuses further chunks afterwards.
    ///
    /// # Errors
    /// See [`ChunkSealer::seal_into`].
    pub fn seal_final(&mut self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(plaintext.len() + CHUNK_OVERHEAD);
        self.seal_into(plaintext, true, &mut out)?;
        Ok(out)
    }

    /// Appends one sealed chunk to `out` (lets a caller reuse one buffer for a whole stream).
    ///
    /// # Errors
    /// [`SealError::StreamFinished`] after the final chunk, [`SealError::TooLong`] above
    /// [`MAX_CHUNK_PLAINTEXT`], [`SealError::SequenceExhausted`] after 2^64 - 1 chunks.
    pub fn seal_into(&mut self, plaintext: &[u8], is_final: bool, out: &mut Vec<u8>) -> Result<()> {
        if self.finished {
            return Err(SealError::StreamFinished);
        }
        if plaintext.len() > MAX_CHUNK_PLAINTEXT {
            return Err(SealError::TooLong {
                what: "chunk plaintext",
                len: plaintext.len(),
                max: MAX_CHUNK_PLAINTEXT,
            });
        }
        if self.next_seq == u64::MAX {
            return Err(SealError::SequenceExhausted);
        }
        let seq = self.next_seq;
        let ciphertext_len =
            u32::try_from(plaintext.len() + TAG_LEN).map_err(|_| SealError::TooLong {
                what: "chunk plaintext",
                len: plaintext.len(),
                max: MAX_CHUNK_PLAINTEXT,
            })?;
        let header = encode_header(&self.keys.stream_id, seq, is_final, ciphertext_len);
        let start = out.len();
        out.reserve(CHUNK_OVERHEAD + plaintext.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(plaintext);
        let Some(cipher) = &self.keys.cipher else {
            out[start..].zeroize();
            out.truncate(start);
            return Err(SealError::CipherSetup);
        };
        let sealed = cipher.seal_in_place(
            self.keys.nonce(seq),
            &header,
            &mut out[start + CHUNK_HEADER_LEN..],
        );
        match sealed {
            Ok(tag) => out.extend_from_slice(&tag),
            Err(_) => {
                out[start..].zeroize();
                out.truncate(start);
                return Err(SealError::TooLong {
                    what: "chunk plaintext",
                    len: plaintext.len(),
                    max: MAX_CHUNK_PLAINTEXT,
                });
            }
        }
        self.next_seq += 1;
        self.finished = is_final;
        Ok(())
    }
}

impl fmt::Debug for ChunkSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkSealer")
            .field("stream_id", &self.keys.stream_id)
            .field("next_seq", &self.next_seq)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

/// A chunk parsed but not yet authenticated ("parse, don't validate": every field is in range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkView<'a> {
    /// The stream the chunk claims to belong to.
    pub stream_id: StreamId,
    /// The sequence number it claims.
    pub seq: u64,
    /// Whether it claims to be the final chunk.
    pub is_final: bool,
    header: &'a [u8],
    /// Ciphertext followed by the 16-byte tag.
    pub ciphertext: &'a [u8],
}

impl<'a> ChunkView<'a> {
    /// Parses exactly one chunk.
    ///
    /// # Errors
    /// [`SealError::Truncated`], [`SealError::TrailingBytes`], [`SealError::UnsupportedVersion`],
    /// [`SealError::ReservedFlags`] or [`SealError::TooLong`] when the bytes do not have the
    /// chunk layout.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let total = Self::frame_len(bytes)?.ok_or(SealError::Truncated {
            field: "chunk header",
            needed: CHUNK_HEADER_LEN,
            available: bytes.len(),
        })?;
        if bytes.len() < total {
            return Err(SealError::Truncated {
                field: "chunk ciphertext",
                needed: total - CHUNK_HEADER_LEN,
                available: bytes.len() - CHUNK_HEADER_LEN,
            });
        }
        if bytes.len() > total {
            return Err(SealError::TrailingBytes {
                structure: "chunk",
                extra: bytes.len() - total,
            });
        }
        let (header, ciphertext) = bytes.split_at(CHUNK_HEADER_LEN);
        let mut stream_id = [0u8; STREAM_ID_LEN];
        stream_id.copy_from_slice(&header[2..2 + STREAM_ID_LEN]);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&header[2 + STREAM_ID_LEN..2 + STREAM_ID_LEN + 8]);
        Ok(Self {
            stream_id: StreamId(stream_id),
            seq: u64::from_be_bytes(seq),
            is_final: header[1] & FLAG_FINAL != 0,
            header,
            ciphertext,
        })
    }

    /// For transports that concatenate chunks: the total length of the chunk at the start of
    /// `buf`, or `None` while fewer than [`CHUNK_HEADER_LEN`] bytes are available. The header is
    /// checked (version, flags, length limit), so a reader never waits for an impossible length.
    ///
    /// # Errors
    /// [`SealError::UnsupportedVersion`], [`SealError::ReservedFlags`], [`SealError::Truncated`]
    /// (declared length shorter than a tag) or [`SealError::TooLong`].
    pub fn frame_len(buf: &[u8]) -> Result<Option<usize>> {
        let Some(header) = buf.get(..CHUNK_HEADER_LEN) else {
            return Ok(None);
        };
        if header[0] != CHUNK_VERSION {
            return Err(SealError::UnsupportedVersion {
                structure: "chunk",
                found: header[0],
            });
        }
        if header[1] & !FLAG_FINAL != 0 {
            return Err(SealError::ReservedFlags { flags: header[1] });
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&header[CHUNK_HEADER_LEN - 4..]);
        let ciphertext_len =
            usize::try_from(u32::from_be_bytes(len)).map_err(|_| SealError::TooLong {
                what: "chunk ciphertext",
                len: usize::MAX,
                max: MAX_CHUNK_PLAINTEXT + TAG_LEN,
            })?;
        if ciphertext_len < TAG_LEN {
            return Err(SealError::Truncated {
                field: "chunk tag",
                needed: TAG_LEN,
                available: ciphertext_len,
            });
        }
        if ciphertext_len > MAX_CHUNK_PLAINTEXT + TAG_LEN {
            return Err(SealError::TooLong {
                what: "chunk ciphertext",
                len: ciphertext_len,
                max: MAX_CHUNK_PLAINTEXT + TAG_LEN,
            });
        }
        Ok(Some(CHUNK_HEADER_LEN + ciphertext_len))
    }
}

/// Sequence number and finality of a chunk that was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkInfo {
    /// The chunk's sequence number.
    pub seq: u64,
    /// Whether it was the final chunk.
    pub is_final: bool,
}

/// A chunk that was authenticated and delivered in order.
#[derive(Clone, PartialEq, Eq)]
pub struct OpenedChunk {
    /// The chunk's sequence number.
    pub seq: u64,
    /// Whether it was the final chunk.
    pub is_final: bool,
    /// The decrypted bytes.
    pub plaintext: Vec<u8>,
}

impl fmt::Debug for OpenedChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedChunk")
            .field("seq", &self.seq)
            .field("is_final", &self.is_final)
            .field("plaintext_len", &self.plaintext.len())
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpenerState {
    Reading,
    Finished,
    Failed,
}

/// The receiving end of an answer stream: a state machine that delivers chunks strictly in
/// order and fails closed.
///
/// Every chunk is authenticated before its position is judged, so the ordering errors
/// ([`SealError::ChunkReplayed`], [`SealError::ChunkOutOfOrder`], [`SealError::ChunkAfterFinal`])
/// are only reported for genuine chunks of this stream; anything altered is
/// [`SealError::ChunkAuthentication`], and a chunk of another stream is
/// [`SealError::StreamMismatch`]. After any error the opener refuses everything
/// ([`SealError::StreamFailed`]). When the transport ends, call [`ChunkOpener::finish`]: a stream
/// that stopped before its final chunk is [`SealError::StreamTruncated`].
pub struct ChunkOpener {
    reply_key: Zeroizing<[u8; REPLY_KEY_LEN]>,
    keys: Option<StreamKeys>,
    expected: u64,
    state: OpenerState,
}

impl ChunkOpener {
    /// Authenticates and decrypts the next chunk.
    ///
    /// # Errors
    /// Any parsing error of [`ChunkView::parse`], and the stream errors listed on
    /// [`ChunkOpener`].
    pub fn open(&mut self, chunk: &[u8]) -> Result<OpenedChunk> {
        let mut plaintext = Vec::with_capacity(chunk.len().saturating_sub(CHUNK_OVERHEAD));
        let info = self.open_into(chunk, &mut plaintext)?;
        Ok(OpenedChunk {
            seq: info.seq,
            is_final: info.is_final,
            plaintext,
        })
    }

    /// Like [`ChunkOpener::open`], appending the plaintext to `out`; on error `out` is left as
    /// it was.
    ///
    /// # Errors
    /// As [`ChunkOpener::open`].
    pub fn open_into(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<ChunkInfo> {
        if self.state == OpenerState::Failed {
            return Err(SealError::StreamFailed);
        }
        let result = self.open_checked(chunk, out);
        if result.is_err() {
            self.state = OpenerState::Failed;
        }
        result
    }

    fn open_checked(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<ChunkInfo> {
        let view = ChunkView::parse(chunk)?;
        if let Some(keys) = &self.keys
            && keys.stream_id != view.stream_id
        {
            return Err(SealError::StreamMismatch {
                expected: keys.stream_id,
                found: view.stream_id,
            });
        }
        // An opener without a stream id adopts the first authentic chunk's (kept only if that
        // chunk is also in order).
        let learned = match self.keys {
            Some(_) => None,
            None => Some(StreamKeys::derive(&self.reply_key, view.stream_id)),
        };
        let Some(keys) = self.keys.as_ref().or(learned.as_ref()) else {
            return Err(SealError::StreamFailed);
        };

        let Some(cipher) = &keys.cipher else {
            return Err(SealError::CipherSetup);
        };
        let start = out.len();
        let body_len = view.ciphertext.len() - TAG_LEN;
        let (body, tag) = view.ciphertext.split_at(body_len);
        let mut tag_bytes = [0u8; TAG_LEN];
        tag_bytes.copy_from_slice(tag);
        out.extend_from_slice(body);
        let opened = cipher.open_in_place(
            keys.nonce(view.seq),
            view.header,
            &tag_bytes,
            &mut out[start..],
        );
        if opened.is_err() {
            // The library may have left unauthenticated plaintext behind: wipe it.
            out[start..].zeroize();
            out.truncate(start);
            return Err(SealError::ChunkAuthentication { seq: view.seq });
        }

        let order = if self.state == OpenerState::Finished {
            Err(SealError::ChunkAfterFinal { seq: view.seq })
        } else if view.seq < self.expected {
            Err(SealError::ChunkReplayed { seq: view.seq })
        } else if view.seq > self.expected {
            Err(SealError::ChunkOutOfOrder {
                expected: self.expected,
                got: view.seq,
            })
        } else {
            Ok(())
        };
        if let Err(e) = order {
            out[start..].zeroize();
            out.truncate(start);
            return Err(e);
        }

        if learned.is_some() {
            self.keys = learned;
        }
        self.expected += 1;
        if view.is_final {
            self.state = OpenerState::Finished;
        }
        Ok(ChunkInfo {
            seq: view.seq,
            is_final: view.is_final,
        })
    }

    /// The stream this opener reads, once known.
    #[must_use]
    pub fn stream_id(&self) -> Option<StreamId> {
        self.keys.as_ref().map(|k| k.stream_id)
    }

    /// How many chunks were delivered.
    #[must_use]
    pub fn delivered(&self) -> u64 {
        self.expected
    }

    /// Whether the final chunk was delivered (and nothing went wrong since).
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.state == OpenerState::Finished
    }

    /// Tells the opener that the transport ended. Returns the number of chunks delivered.
    ///
    /// # Errors
    /// [`SealError::StreamTruncated`] if the final chunk never arrived, [`SealError::StreamFailed`]
    /// if an earlier chunk was refused.
    pub fn finish(self) -> Result<u64> {
        match self.state {
            OpenerState::Finished => Ok(self.expected),
            OpenerState::Failed => Err(SealError::StreamFailed),
            OpenerState::Reading => Err(SealError::StreamTruncated {
                delivered: self.expected,
            }),
        }
    }
}

impl fmt::Debug for ChunkOpener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkOpener")
            .field("stream_id", &self.stream_id())
            .field("delivered", &self.expected)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

//! Multi-recipient envelopes: a request body sealed once under a random content key, with that key
//! wrapped by HPKE for each of k candidate workers, so the proxy can pick any of them while seeing
//! only routing metadata.
//!
//! Byte layout (version 1; all integers big-endian; also in `docs/sealing.md`):
//!
//! ```text
//! offset        size      field
//! 0             1         version = 0x01
//! 1             2         kem_id  = 0x0020  DHKEM(X25519, HKDF-SHA256)
//! 3             2         kdf_id  = 0x0001  HKDF-SHA256
//! 5             2         aead_id = 0x0002  AES-256-GCM
//! 7             1         n = recipient count, 1..=64
//! 8             32        key commitment
//! 40            88 * n    recipient entries: key_id (8) | enc (32) | wrapped content key (32 + 16)
//! 40 + 88n      4         body length L (ciphertext including tag, >= 16)
//! 44 + 88n      L         body ciphertext | tag
//! ```
//!
//! Key derivation from the 32-byte random content key `ck`:
//!
//! ```text
//! prk        = HKDF-Extract(salt = "cocoon-seal/v1/envelope", ikm = ck)
//! body_key   = HKDF-Expand(prk, "body key", 32)
//! body_nonce = HKDF-Expand(prk, "body nonce", 12)
//! commitment = HKDF-Expand(prk, "key commitment", 32)
//! ```
//!
//! Each wrap is HPKE base mode with `info = "cocoon-seal/v1/wrap" || key_id` and
//! `aad = bytes[0..40]` (version, suite, count, commitment). The body is AES-256-GCM with
//! `aad = bytes[0..44 + 88n] || caller aad`, so the whole header — every recipient entry
//! included — is authenticated by the body tag. The commitment makes the envelope key-committing:
//! a sender cannot wrap different content keys for different recipients that each open the same
//! body. The reply key for recipient i is the HPKE export of its wrap context with
//! `exporter_context = "cocoon-seal/v1/reply" || commitment`, length 32: only the client (who ran
//! the sender side) and recipient i can compute it, not the proxy and not the other candidates.

use hkdf::Hkdf;
use rand_core::TryCryptoRng;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::aead::AesGcmKey;
use crate::error::{Result, SealError};
use crate::hpke::{
    self, ENC_LEN, KDF_HKDF_SHA256, KEM_X25519_HKDF_SHA256, NONCE_LEN, RecipientMode,
    SUITE_X25519_SHA256_AES256GCM, SenderMode, TAG_LEN,
};
use crate::keys::{KEY_ID_LEN, KeyId, SealingKeyPair, SealingPublicKey};
use crate::stream::{REPLY_KEY_LEN, ReplyKey};

/// Version byte of the envelope layout.
pub const ENVELOPE_VERSION: u8 = 1;
/// Most recipients one envelope may name.
pub const MAX_RECIPIENTS: usize = 64;
/// Length of the key commitment.
pub const COMMITMENT_LEN: usize = 32;
/// Length of a wrapped content key (key and HPKE tag).
pub const WRAPPED_KEY_LEN: usize = CONTENT_KEY_LEN + TAG_LEN;
/// Length of one recipient entry.
pub const RECIPIENT_ENTRY_LEN: usize = KEY_ID_LEN + ENC_LEN + WRAPPED_KEY_LEN;
/// Largest body plaintext the 32-bit length field can describe.
pub const MAX_BODY_PLAINTEXT: usize = u32::MAX as usize - TAG_LEN;

const CONTENT_KEY_LEN: usize = 32;
/// version, kem, kdf, aead, count, commitment.
const PREFIX_LEN: usize = 1 + 2 + 2 + 2 + 1 + COMMITMENT_LEN;
const BODY_LEN_LEN: usize = 4;
const ENVELOPE_SALT: &[u8] = b"cocoon-seal/v1/envelope";
const WRAP_INFO_LABEL: &[u8] = b"cocoon-seal/v1/wrap";
const REPLY_LABEL: &[u8] = b"cocoon-seal/v1/reply";

/// Operations on the envelope format (see the module documentation for the layout).
#[derive(Debug)]
pub enum Envelope {}

/// What the sender gets back: the bytes to send and the reply keys to open the answer with.
#[derive(Debug)]
pub struct SealedEnvelope {
    /// The envelope, ready to send.
    pub bytes: Vec<u8>,
    /// One reply key per recipient; keep them until the answer stream has been read.
    pub reply_keys: ReplyKeys,
}

/// The sender's reply keys, one per recipient of an envelope.
#[derive(Debug, Clone)]
pub struct ReplyKeys(Vec<(KeyId, ReplyKey)>);

impl ReplyKeys {
    /// The reply key shared with the recipient holding `key_id`.
    #[must_use]
    pub fn get(&self, key_id: &KeyId) -> Option<&ReplyKey> {
        self.0
            .iter()
            .find(|(id, _)| id == key_id)
            .map(|(_, key)| key)
    }

    /// Recipients and their reply keys, in envelope order.
    pub fn iter(&self) -> impl Iterator<Item = (&KeyId, &ReplyKey)> {
        self.0.iter().map(|(id, key)| (id, key))
    }

    /// Number of recipients.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none (never true for keys returned by [`Envelope::seal`]).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a recipient gets from [`Envelope::open`].
pub struct OpenedEnvelope {
    /// The request body.
    pub plaintext: Vec<u8>,
    /// The key to seal the answer stream with (`reply_key.sealer(rng)`).
    pub reply_key: ReplyKey,
}

impl core::fmt::Debug for OpenedEnvelope {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OpenedEnvelope")
            .field("plaintext_len", &self.plaintext.len())
            .field("reply_key", &self.reply_key)
            .finish()
    }
}

/// One recipient entry of a parsed envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecipientEntry<'a> {
    /// The recipient's key id.
    pub key_id: KeyId,
    /// HPKE encapsulated key.
    pub enc: &'a [u8; ENC_LEN],
    /// The content key sealed to this recipient.
    pub wrapped_key: &'a [u8; WRAPPED_KEY_LEN],
}

/// An envelope parsed but not yet opened: every length and count is known to be consistent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvelopeView<'a> {
    prefix: &'a [u8],
    header: &'a [u8],
    entries: &'a [u8],
    commitment: &'a [u8; COMMITMENT_LEN],
    body: &'a [u8],
}

impl<'a> EnvelopeView<'a> {
    /// Parses an envelope, checking version, suite, recipient count, that key ids are distinct,
    /// and that the body length matches the input exactly.
    ///
    /// # Errors
    /// [`SealError::Truncated`], [`SealError::TrailingBytes`], [`SealError::UnsupportedVersion`],
    /// [`SealError::UnsupportedSuite`], [`SealError::RecipientCount`],
    /// [`SealError::DuplicateKeyId`].
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let mut reader = Reader::new(bytes);
        let version = reader.u8("version")?;
        if version != ENVELOPE_VERSION {
            return Err(SealError::UnsupportedVersion {
                structure: "envelope",
                found: version,
            });
        }
        let kem = reader.u16("kem_id")?;
        let kdf = reader.u16("kdf_id")?;
        let aead = reader.u16("aead_id")?;
        if (kem, kdf, aead)
            != (
                KEM_X25519_HKDF_SHA256,
                KDF_HKDF_SHA256,
                SUITE_X25519_SHA256_AES256GCM.aead().id(),
            )
        {
            return Err(SealError::UnsupportedSuite { kem, kdf, aead });
        }
        let count = usize::from(reader.u8("recipient count")?);
        if count == 0 || count > MAX_RECIPIENTS {
            return Err(SealError::RecipientCount {
                count,
                max: MAX_RECIPIENTS,
            });
        }
        let commitment = reader.array::<COMMITMENT_LEN>("key commitment")?;
        let prefix_end = reader.position();
        let entries = reader.take("recipient entries", count * RECIPIENT_ENTRY_LEN)?;
        let body_len =
            usize::try_from(reader.u32("body length")?).map_err(|_| SealError::TooLong {
                what: "envelope body",
                len: usize::MAX,
                max: MAX_BODY_PLAINTEXT + TAG_LEN,
            })?;
        if body_len < TAG_LEN {
            return Err(SealError::Truncated {
                field: "body tag",
                needed: TAG_LEN,
                available: body_len,
            });
        }
        let header_end = reader.position();
        let body = reader.take("body", body_len)?;
        reader.finish("envelope")?;

        let view = Self {
            prefix: &bytes[..prefix_end],
            header: &bytes[..header_end],
            entries,
            commitment,
            body,
        };
        let mut seen: Vec<KeyId> = Vec::with_capacity(count);
        for entry in view.recipients() {
            if seen.contains(&entry.key_id) {
                return Err(SealError::DuplicateKeyId(entry.key_id));
            }
            seen.push(entry.key_id);
        }
        Ok(view)
    }

    /// The recipient entries in order.
    pub fn recipients(&self) -> impl Iterator<Item = RecipientEntry<'a>> + 'a {
        self.entries
            .chunks_exact(RECIPIENT_ENTRY_LEN)
            .filter_map(|entry| {
                let (key_id, rest) = entry.split_first_chunk::<KEY_ID_LEN>()?;
                let (enc, wrapped_key) = rest.split_first_chunk::<ENC_LEN>()?;
                Some(RecipientEntry {
                    key_id: KeyId(*key_id),
                    enc,
                    wrapped_key: wrapped_key.try_into().ok()?,
                })
            })
    }

    /// Number of recipients.
    #[must_use]
    pub fn recipient_count(&self) -> usize {
        self.entries.len() / RECIPIENT_ENTRY_LEN
    }

    /// The entry for `key_id`, if the envelope has one.
    #[must_use]
    pub fn find(&self, key_id: &KeyId) -> Option<RecipientEntry<'a>> {
        self.recipients().find(|entry| &entry.key_id == key_id)
    }

    /// The key commitment.
    #[must_use]
    pub fn key_commitment(&self) -> &'a [u8; COMMITMENT_LEN] {
        self.commitment
    }

    /// Length of the sealed body (ciphertext and tag).
    #[must_use]
    pub fn body_len(&self) -> usize {
        self.body.len()
    }
}

/// Keys derived from one content key.
struct ContentKeys {
    body_key: Zeroizing<[u8; 32]>,
    body_nonce: [u8; NONCE_LEN],
    commitment: [u8; COMMITMENT_LEN],
}

impl ContentKeys {
    fn derive(content_key: &[u8; CONTENT_KEY_LEN]) -> Result<Self> {
        let hkdf = Hkdf::<Sha256>::new(Some(ENVELOPE_SALT), content_key);
        let mut keys = Self {
            body_key: Zeroizing::new([0u8; 32]),
            body_nonce: [0u8; NONCE_LEN],
            commitment: [0u8; COMMITMENT_LEN],
        };
        let expand = |info: &[u8], out: &mut [u8]| {
            hkdf.expand(info, out)
                .map_err(|_| SealError::ExportTooLong {
                    requested: out.len(),
                    max: hpke::MAX_EXPORT_LEN,
                })
        };
        expand(b"body key", keys.body_key.as_mut_slice())?;
        expand(b"body nonce", &mut keys.body_nonce)?;
        expand(b"key commitment", &mut keys.commitment)?;
        Ok(keys)
    }
}

impl Drop for ContentKeys {
    fn drop(&mut self) {
        self.body_nonce.zeroize();
    }
}

fn wrap_info(key_id: &KeyId) -> [u8; WRAP_INFO_LABEL.len() + KEY_ID_LEN] {
    let mut info = [0u8; WRAP_INFO_LABEL.len() + KEY_ID_LEN];
    info[..WRAP_INFO_LABEL.len()].copy_from_slice(WRAP_INFO_LABEL);
    info[WRAP_INFO_LABEL.len()..].copy_from_slice(&key_id.0);
    info
}

fn reply_context(commitment: &[u8; COMMITMENT_LEN]) -> [u8; REPLY_LABEL.len() + COMMITMENT_LEN] {
    let mut context = [0u8; REPLY_LABEL.len() + COMMITMENT_LEN];
    context[..REPLY_LABEL.len()].copy_from_slice(REPLY_LABEL);
    context[REPLY_LABEL.len()..].copy_from_slice(commitment);
    context
}

fn body_aad(header: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(header.len() + aad.len());
    full.extend_from_slice(header);
    full.extend_from_slice(aad);
    full
}

impl Envelope {
    /// Seals `plaintext` for every recipient, authenticating `aad` (which travels separately).
    ///
    /// # Errors
    /// [`SealError::RecipientCount`], [`SealError::DuplicateKeyId`], [`SealError::TooLong`] for a
    /// body above [`MAX_BODY_PLAINTEXT`], [`SealError::NonContributoryKey`] for a low-order
    /// recipient key, [`SealError::RandomSource`].
    pub fn seal<R: TryCryptoRng + ?Sized>(
        recipients: &[(KeyId, SealingPublicKey)],
        aad: &[u8],
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<SealedEnvelope> {
        if recipients.is_empty() || recipients.len() > MAX_RECIPIENTS {
            return Err(SealError::RecipientCount {
                count: recipients.len(),
                max: MAX_RECIPIENTS,
            });
        }
        for (i, (id, _)) in recipients.iter().enumerate() {
            if recipients[..i].iter().any(|(other, _)| other == id) {
                return Err(SealError::DuplicateKeyId(*id));
            }
        }
        if plaintext.len() > MAX_BODY_PLAINTEXT {
            return Err(SealError::TooLong {
                what: "envelope body",
                len: plaintext.len(),
                max: MAX_BODY_PLAINTEXT,
            });
        }
        let body_len =
            u32::try_from(plaintext.len() + TAG_LEN).map_err(|_| SealError::TooLong {
                what: "envelope body",
                len: plaintext.len(),
                max: MAX_BODY_PLAINTEXT,
            })?;
        let count = u8::try_from(recipients.len()).map_err(|_| SealError::RecipientCount {
            count: recipients.len(),
            max: MAX_RECIPIENTS,
        })?;

        let mut content_key = Zeroizing::new([0u8; CONTENT_KEY_LEN]);
        crate::random::fill(rng, content_key.as_mut_slice())?;
        let keys = ContentKeys::derive(&content_key)?;

        let header_len = PREFIX_LEN + recipients.len() * RECIPIENT_ENTRY_LEN + BODY_LEN_LEN;
        let mut out = Vec::with_capacity(header_len + plaintext.len() + TAG_LEN);
        out.push(ENVELOPE_VERSION);
        out.extend_from_slice(&KEM_X25519_HKDF_SHA256.to_be_bytes());
        out.extend_from_slice(&KDF_HKDF_SHA256.to_be_bytes());
        out.extend_from_slice(&SUITE_X25519_SHA256_AES256GCM.aead().id().to_be_bytes());
        out.push(count);
        out.extend_from_slice(&keys.commitment);

        let mut reply_keys = Vec::with_capacity(recipients.len());
        for (key_id, public) in recipients {
            let (enc, mut context) = SUITE_X25519_SHA256_AES256GCM.setup_sender(
                public,
                &wrap_info(key_id),
                SenderMode::Base,
                rng,
            )?;
            let wrapped = context.seal(&out[..PREFIX_LEN], content_key.as_slice())?;
            let mut reply = Zeroizing::new([0u8; REPLY_KEY_LEN]);
            context.export(&reply_context(&keys.commitment), reply.as_mut_slice())?;
            reply_keys.push((*key_id, ReplyKey::from_bytes(*reply)));
            out.extend_from_slice(&key_id.0);
            out.extend_from_slice(&enc);
            out.extend_from_slice(&wrapped);
        }
        out.extend_from_slice(&body_len.to_be_bytes());

        let aad = body_aad(&out, aad);
        let body_start = out.len();
        out.extend_from_slice(plaintext);
        let cipher = AesGcmKey::aes256(&keys.body_key).map_err(|_| SealError::CipherSetup)?;
        let tag = cipher
            .seal_in_place(keys.body_nonce, &aad, &mut out[body_start..])
            .map_err(|_| SealError::TooLong {
                what: "envelope body",
                len: plaintext.len(),
                max: MAX_BODY_PLAINTEXT,
            })?;
        out.extend_from_slice(&tag);
        Ok(SealedEnvelope {
            bytes: out,
            reply_keys: ReplyKeys(reply_keys),
        })
    }

    /// Opens the envelope as the holder of `key_pair`, whose entry carries `my_key_id`.
    ///
    /// # Errors
    /// Any error of [`EnvelopeView::parse`]; [`SealError::RecipientNotFound`] when no entry has
    /// this key id; [`SealError::UnwrapFailed`] when the entry was not sealed to this key (or was
    /// altered); [`SealError::KeyCommitmentMismatch`]; [`SealError::BodyAuthentication`] when the
    /// body, the header or `aad` were altered.
    pub fn open(
        bytes: &[u8],
        my_key_id: KeyId,
        key_pair: &SealingKeyPair,
        aad: &[u8],
    ) -> Result<OpenedEnvelope> {
        let view = EnvelopeView::parse(bytes)?;
        let entry = view
            .find(&my_key_id)
            .ok_or(SealError::RecipientNotFound(my_key_id))?;

        let mut context = SUITE_X25519_SHA256_AES256GCM.setup_recipient(
            entry.enc,
            key_pair,
            &wrap_info(&my_key_id),
            RecipientMode::Base,
        )?;
        let unwrapped = Zeroizing::new(context.open(view.prefix, entry.wrapped_key).map_err(
            |e| match e {
                SealError::HpkeOpen => SealError::UnwrapFailed(my_key_id),
                other => other,
            },
        )?);
        let content_key: Zeroizing<[u8; CONTENT_KEY_LEN]> = Zeroizing::new(
            unwrapped
                .as_slice()
                .try_into()
                .map_err(|_| SealError::UnwrapFailed(my_key_id))?,
        );
        let keys = ContentKeys::derive(&content_key)?;
        if !constant_time_eq(&keys.commitment, view.commitment) {
            return Err(SealError::KeyCommitmentMismatch);
        }

        let aad = body_aad(view.header, aad);
        let body_len = view.body.len() - TAG_LEN;
        let (body, tag) = view.body.split_at(body_len);
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| SealError::BodyAuthentication)?;
        let mut plaintext = Zeroizing::new(body.to_vec());
        let cipher = AesGcmKey::aes256(&keys.body_key).map_err(|_| SealError::CipherSetup)?;
        cipher
            .open_in_place(keys.body_nonce, &aad, &tag, &mut plaintext)
            .map_err(|_| SealError::BodyAuthentication)?;
        let plaintext = core::mem::take(&mut *plaintext);

        let mut reply = Zeroizing::new([0u8; REPLY_KEY_LEN]);
        context.export(&reply_context(view.commitment), reply.as_mut_slice())?;
        Ok(OpenedEnvelope {
            plaintext,
            reply_key: ReplyKey::from_bytes(*reply),
        })
    }
}

fn constant_time_eq(a: &[u8; COMMITMENT_LEN], b: &[u8; COMMITMENT_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A bounds-checked cursor; every read names its field so errors say what was missing.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, position: 0 }
    }

    fn position(&self) -> usize {
        self.position
    }

    fn take(&mut self, field: &'static str, len: usize) -> Result<&'a [u8]> {
        let available = self.bytes.len() - self.position;
        if len > available {
            return Err(SealError::Truncated {
                field,
                needed: len,
                available,
            });
        }
        let slice = &self.bytes[self.position..self.position + len];
        self.position += len;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<&'a [u8; N]> {
        let slice = self.take(field, N)?;
        slice.try_into().map_err(|_| SealError::Truncated {
            field,
            needed: N,
            available: slice.len(),
        })
    }

    fn u8(&mut self, field: &'static str) -> Result<u8> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16> {
        Ok(u16::from_be_bytes(*self.array::<2>(field)?))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32> {
        Ok(u32::from_be_bytes(*self.array::<4>(field)?))
    }

    fn finish(&self, structure: &'static str) -> Result<()> {
        let extra = self.bytes.len() - self.position;
        if extra != 0 {
            return Err(SealError::TrailingBytes { structure, extra });
        }
        Ok(())
    }
}

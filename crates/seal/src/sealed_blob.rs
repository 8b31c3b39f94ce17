//! Secrets at rest (a wallet key, a worker's sealing key): encrypted under a key from a
//! [`KeySource`], so only the same platform running the same measured code can read them back.
//!
//! Layout (version 1, big-endian; also in `docs/sealing.md`):
//!
//! ```text
//! offset  size  field
//! 0       1     version = 0x01
//! 1       1     key source kind (1 = simulated, 2 = SEV-SNP, 3 = TDX helper)
//! 2       12    nonce (random)
//! 14      4     C = ciphertext length including the tag, 16 ..= 2^20 + 16
//! 18      C     AES-256-GCM ciphertext || tag
//! ```
//!
//! `key = HKDF-Expand(HKDF-Extract(salt = "cocoon-seal/v1/sealed-blob", ikm = derived key),
//! "blob key", 32)` where the derived key is `source.derive_key(purpose)`, and the associated data
//! is `bytes[0..18] || purpose label`: a blob opens only for the purpose it was sealed for.

use hkdf::Hkdf;
use rand_core::TryCryptoRng;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::aead::AesGcmKey;
use crate::error::{Result, SealError};
use crate::hpke::{NONCE_LEN, TAG_LEN};
use crate::key_source::{KeyPurpose, KeySource};

/// Version byte of the sealed-blob layout.
pub const BLOB_VERSION: u8 = 1;
/// Largest secret a blob holds (1 MiB).
pub const MAX_BLOB_SECRET: usize = 1 << 20;
const HEADER_LEN: usize = 1 + 1 + NONCE_LEN + 4;

/// A secret encrypted at rest; store [`SealedBlob::as_bytes`] anywhere.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedBlob {
    bytes: Vec<u8>,
}

fn blob_cipher(source: &(impl KeySource + ?Sized), purpose: KeyPurpose<'_>) -> Result<AesGcmKey> {
    let derived = source.derive_key(purpose)?;
    let hkdf = Hkdf::<Sha256>::new(Some(b"cocoon-seal/v1/sealed-blob"), derived.as_bytes());
    let mut key = Zeroizing::new([0u8; 32]);
    hkdf.expand(b"blob key", key.as_mut_slice())
        .map_err(|_| SealError::KeySourceUnavailable("HKDF expansion failed".into()))?;
    AesGcmKey::aes256(&key).map_err(|_| SealError::CipherSetup)
}

fn blob_aad(header: &[u8], purpose: KeyPurpose<'_>) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + purpose.label().len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(purpose.label().as_bytes());
    aad
}

impl SealedBlob {
    /// Encrypts `secret` under `source`'s key for `purpose`.
    ///
    /// # Errors
    /// [`SealError::TooLong`] above [`MAX_BLOB_SECRET`], [`SealError::RandomSource`], or the
    /// source's error.
    pub fn seal<K, R>(
        source: &K,
        purpose: KeyPurpose<'_>,
        secret: &[u8],
        rng: &mut R,
    ) -> Result<Self>
    where
        K: KeySource + ?Sized,
        R: TryCryptoRng + ?Sized,
    {
        let too_long = || SealError::TooLong {
            what: "sealed blob secret",
            len: secret.len(),
            max: MAX_BLOB_SECRET,
        };
        if secret.len() > MAX_BLOB_SECRET {
            return Err(too_long());
        }
        let ciphertext_len = u32::try_from(secret.len() + TAG_LEN).map_err(|_| too_long())?;
        let mut nonce = [0u8; NONCE_LEN];
        crate::random::fill(rng, &mut nonce)?;
        let cipher = blob_cipher(source, purpose)?;

        let mut bytes = Vec::with_capacity(HEADER_LEN + secret.len() + TAG_LEN);
        bytes.push(BLOB_VERSION);
        bytes.push(source.kind().id());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ciphertext_len.to_be_bytes());
        let aad = blob_aad(&bytes, purpose);
        bytes.extend_from_slice(secret);
        let tag = cipher
            .seal_in_place(nonce, &aad, &mut bytes[HEADER_LEN..])
            .map_err(|_| too_long())?;
        bytes.extend_from_slice(&tag);
        Ok(Self { bytes })
    }

    /// Checks the layout of stored bytes (nothing is decrypted yet).
    ///
    /// # Errors
    /// [`SealError::Truncated`], [`SealError::TrailingBytes`], [`SealError::UnsupportedVersion`],
    /// [`SealError::TooLong`].
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        let Some(header) = bytes.get(..HEADER_LEN) else {
            return Err(SealError::Truncated {
                field: "sealed blob header",
                needed: HEADER_LEN,
                available: bytes.len(),
            });
        };
        if header[0] != BLOB_VERSION {
            return Err(SealError::UnsupportedVersion {
                structure: "sealed blob",
                found: header[0],
            });
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&header[HEADER_LEN - 4..]);
        let declared = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
        if declared < TAG_LEN {
            return Err(SealError::Truncated {
                field: "sealed blob tag",
                needed: TAG_LEN,
                available: declared,
            });
        }
        if declared > MAX_BLOB_SECRET + TAG_LEN {
            return Err(SealError::TooLong {
                what: "sealed blob ciphertext",
                len: declared,
                max: MAX_BLOB_SECRET + TAG_LEN,
            });
        }
        let available = bytes.len() - HEADER_LEN;
        if available < declared {
            return Err(SealError::Truncated {
                field: "sealed blob ciphertext",
                needed: declared,
                available,
            });
        }
        if available > declared {
            return Err(SealError::TrailingBytes {
                structure: "sealed blob",
                extra: available - declared,
            });
        }
        Ok(Self { bytes })
    }

    /// Decrypts the secret with `source`'s key for `purpose`.
    ///
    /// # Errors
    /// [`SealError::KeySourceMismatch`] when the blob was sealed by another kind of source,
    /// [`SealError::BlobAuthentication`] when the key differs (other platform secret, other
    /// measurement, other purpose) or the blob was altered, or the source's error.
    pub fn open<K: KeySource + ?Sized>(
        &self,
        source: &K,
        purpose: KeyPurpose<'_>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let (header, sealed) = self.bytes.split_at(HEADER_LEN);
        if header[1] != source.kind().id() {
            return Err(SealError::KeySourceMismatch {
                sealed_with: header[1],
                opening_with: source.kind().id(),
            });
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&header[2..2 + NONCE_LEN]);
        let body_len = sealed.len() - TAG_LEN;
        let (ciphertext, tag) = sealed.split_at(body_len);
        let mut tag_bytes = [0u8; TAG_LEN];
        tag_bytes.copy_from_slice(tag);
        let cipher = blob_cipher(source, purpose)?;
        let mut secret = Zeroizing::new(ciphertext.to_vec());
        cipher
            .open_in_place(nonce, &blob_aad(header, purpose), &tag_bytes, &mut secret)
            .map_err(|_| SealError::BlobAuthentication)?;
        Ok(secret)
    }

    /// The stored form.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The stored form, by value.
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl core::fmt::Debug for SealedBlob {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SealedBlob")
            .field("len", &self.bytes.len())
            .field("key_source_kind", &self.bytes.get(1))
            .finish()
    }
}

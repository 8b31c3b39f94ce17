//! Long-lived node secrets on disk (a proxy's voucher-signing key, a worker's wallet key and
//! X25519 sealing key), stored only encrypted under a [`KeySource`] key for their purpose, so that
//! the file is useless on another machine or to another build of the node.
//!
//! Layout of a sealed key file (version 1; also in `docs/sealing.md`):
//!
//! ```text
//! offset  size  field
//! 0       8     magic "cocoonSK"
//! 8       1     version = 0x01
//! 9       1     key source kind (1 simulated, 2 SEV-SNP, 3 TDX helper)
//! 10      1     secret kind (1 Ed25519 seed, 2 X25519 secret, 3 symmetric key)
//! 11      1     P = purpose label length, 1 ..= 64
//! 12      P     purpose label
//! 12+P    12    nonce (random)
//! 24+P    48    AES-256-GCM ciphertext of the 32-byte secret || tag
//! ```
//!
//! ```text
//! file_key = HKDF-Expand(HKDF-Extract(salt = "cocoon-seal/v1/sealed-key-file",
//!                                     ikm  = source.derive_key(purpose)), "file key", 32)
//! aad      = bytes[0 .. 24+P]   (the whole header, nonce included)
//! ```
//!
//! Files are written with mode 0600 to a temporary name in the same directory, synced, and then
//! hard-linked into place, which fails if the name exists: a sealed key is never overwritten, and
//! a crash never leaves a half-written key file under the real name.

use core::fmt;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hkdf::Hkdf;
use rand_core::TryCryptoRng;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::aead::AesGcmKey;
use crate::error::{Result, SealError};
use crate::hpke::{NONCE_LEN, TAG_LEN};
use crate::key_source::{KeyPurpose, KeySource, KeySourceKind, MAX_PURPOSE_LEN};
use crate::random::SystemRng;

/// First eight bytes of a sealed key file.
pub const KEY_FILE_MAGIC: [u8; 8] = *b"cocoonSK";
/// Version byte of the layout.
pub const KEY_FILE_VERSION: u8 = 1;
/// Length of the sealed secret.
pub const SECRET_LEN: usize = 32;
/// Largest valid file (with the longest purpose label).
pub const MAX_KEY_FILE_LEN: usize = FIXED_LEN + MAX_PURPOSE_LEN;
/// File mode of sealed key files.
pub const KEY_FILE_MODE: u32 = 0o600;

const PREFIX_LEN: usize = 12;
const FIXED_LEN: usize = PREFIX_LEN + NONCE_LEN + SECRET_LEN + TAG_LEN;

/// What the 32 sealed bytes are, so a file cannot be loaded as the wrong kind of key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SecretKind {
    /// An Ed25519 private key seed (`ed25519_dalek::SigningKey::from_bytes`).
    Ed25519Seed,
    /// An X25519 private key (`crate::SealingKeyPair::from_secret_bytes`).
    X25519Secret,
    /// A 32-byte symmetric key.
    SymmetricKey,
}

impl SecretKind {
    /// The byte that names this kind in a file.
    #[must_use]
    pub const fn id(self) -> u8 {
        match self {
            Self::Ed25519Seed => 1,
            Self::X25519Secret => 2,
            Self::SymmetricKey => 3,
        }
    }

    /// The kind with this id, if any.
    #[must_use]
    pub const fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Self::Ed25519Seed),
            2 => Some(Self::X25519Secret),
            3 => Some(Self::SymmetricKey),
            _ => None,
        }
    }
}

impl fmt::Display for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ed25519Seed => "Ed25519 seed",
            Self::X25519Secret => "X25519 secret",
            Self::SymmetricKey => "symmetric key",
        })
    }
}

/// A secret from [`SealedKeyFile::open_or_create`], and whether it was just made.
pub struct OpenedKey {
    /// The 32 secret bytes; wiped on drop.
    pub secret: Zeroizing<[u8; SECRET_LEN]>,
    /// `true` when the file did not exist and a fresh random secret was sealed into it.
    pub created: bool,
}

impl fmt::Debug for OpenedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedKey")
            .field("secret", &"<redacted>")
            .field("created", &self.created)
            .finish()
    }
}

/// A parsed sealed key file: the header is known, the secret is still encrypted.
///
/// ```
/// use cocoon_seal::{KeyPurpose, SealedKeyFile, SecretKind, SimulatedKeySource, SystemRng};
///
/// # fn main() -> Result<(), cocoon_seal::SealError> {
/// # let dir = tempfile::tempdir().map_err(|_| cocoon_seal::SealError::RandomSource)?;
/// // A development node; a TEE node uses SevSnpKeySource or TdxHelperKeySource instead.
/// let source = SimulatedKeySource::load_or_create(
///     &dir.path().join("simulated-platform-secret"),
///     b"measurement of this build",
///     &mut SystemRng,
/// )?;
/// let path = dir.path().join("voucher-key.sealed");
/// let first = SealedKeyFile::open_or_create(
///     &path, &source, KeyPurpose::VOUCHER_KEY, SecretKind::Ed25519Seed, &mut SystemRng)?;
/// assert!(first.created);
/// // After a restart: the same secret.
/// let again = SealedKeyFile::open(
///     &path, &source, KeyPurpose::VOUCHER_KEY, SecretKind::Ed25519Seed)?;
/// assert_eq!(*first.secret, *again);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SealedKeyFile {
    bytes: Vec<u8>,
    source_kind: KeySourceKind,
    secret_kind: SecretKind,
    purpose_len: usize,
}

fn file_cipher(source: &(impl KeySource + ?Sized), purpose: KeyPurpose<'_>) -> Result<AesGcmKey> {
    let derived = source.derive_key(purpose)?;
    let hkdf = Hkdf::<Sha256>::new(Some(b"cocoon-seal/v1/sealed-key-file"), derived.as_bytes());
    let mut key = Zeroizing::new([0u8; 32]);
    hkdf.expand(b"file key", key.as_mut_slice())
        .map_err(|_| SealError::KeySourceUnavailable("HKDF expansion failed".into()))?;
    AesGcmKey::aes256(&key).map_err(|_| SealError::CipherSetup)
}

impl SealedKeyFile {
    /// Encrypts `secret` under `source`'s key for `purpose`, with a fresh random nonce.
    ///
    /// # Errors
    /// [`SealError::RandomSource`], or the source's error.
    pub fn seal<K, R>(
        source: &K,
        purpose: KeyPurpose<'_>,
        kind: SecretKind,
        secret: &[u8; SECRET_LEN],
        rng: &mut R,
    ) -> Result<Self>
    where
        K: KeySource + ?Sized,
        R: TryCryptoRng + ?Sized,
    {
        let label = purpose.label().as_bytes();
        let mut nonce = [0u8; NONCE_LEN];
        crate::random::fill(rng, &mut nonce)?;
        let cipher = file_cipher(source, purpose)?;

        let mut bytes = Vec::with_capacity(FIXED_LEN + label.len());
        bytes.extend_from_slice(&KEY_FILE_MAGIC);
        bytes.push(KEY_FILE_VERSION);
        bytes.push(source.kind().id());
        bytes.push(kind.id());
        // KeyPurpose guarantees 1 ..= 64 bytes.
        bytes.push(u8::try_from(label.len()).unwrap_or(u8::MAX));
        bytes.extend_from_slice(label);
        bytes.extend_from_slice(&nonce);
        let header_len = bytes.len();
        bytes.extend_from_slice(secret);
        let (header, body) = bytes.split_at_mut(header_len);
        match cipher.seal_in_place(nonce, header, body) {
            Ok(tag) => bytes.extend_from_slice(&tag),
            Err(_) => {
                bytes.zeroize();
                return Err(SealError::CipherSetup);
            }
        }
        Ok(Self {
            bytes,
            source_kind: source.kind(),
            secret_kind: kind,
            purpose_len: label.len(),
        })
    }

    /// Parses stored bytes; checks every header field, decrypts nothing.
    ///
    /// # Errors
    /// [`SealError::BadMagic`], [`SealError::UnsupportedVersion`],
    /// [`SealError::UnknownKeySourceKind`], [`SealError::UnknownSecretKind`],
    /// [`SealError::InvalidKeyPurpose`], [`SealError::Truncated`], [`SealError::TrailingBytes`].
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let Some(prefix) = bytes.get(..PREFIX_LEN) else {
            return Err(SealError::Truncated {
                field: "sealed key file header",
                needed: PREFIX_LEN,
                available: bytes.len(),
            });
        };
        if prefix[..8] != KEY_FILE_MAGIC {
            return Err(SealError::BadMagic {
                structure: "sealed key file",
            });
        }
        if prefix[8] != KEY_FILE_VERSION {
            return Err(SealError::UnsupportedVersion {
                structure: "sealed key file",
                found: prefix[8],
            });
        }
        let source_kind =
            KeySourceKind::from_id(prefix[9]).ok_or(SealError::UnknownKeySourceKind(prefix[9]))?;
        let secret_kind =
            SecretKind::from_id(prefix[10]).ok_or(SealError::UnknownSecretKind(prefix[10]))?;
        let purpose_len = usize::from(prefix[11]);
        let Some(label) = bytes.get(PREFIX_LEN..PREFIX_LEN + purpose_len) else {
            return Err(SealError::Truncated {
                field: "sealed key file purpose",
                needed: purpose_len,
                available: bytes.len() - PREFIX_LEN,
            });
        };
        let label = core::str::from_utf8(label)
            .map_err(|_| SealError::InvalidKeyPurpose("label is not ASCII"))?;
        KeyPurpose::new(label)?;
        let total = FIXED_LEN + purpose_len;
        if bytes.len() < total {
            return Err(SealError::Truncated {
                field: "sealed key file secret",
                needed: total - PREFIX_LEN - purpose_len,
                available: bytes.len() - PREFIX_LEN - purpose_len,
            });
        }
        if bytes.len() > total {
            return Err(SealError::TrailingBytes {
                structure: "sealed key file",
                extra: bytes.len() - total,
            });
        }
        Ok(Self {
            bytes: bytes.to_vec(),
            source_kind,
            secret_kind,
            purpose_len,
        })
    }

    /// Decrypts the secret, after checking that the file is for `purpose`, holds a `kind`, and
    /// was sealed by the same kind of source as `source`.
    ///
    /// # Errors
    /// [`SealError::KeyPurposeMismatch`], [`SealError::SecretKindMismatch`],
    /// [`SealError::KeySourceMismatch`]; [`SealError::KeyFileAuthentication`] when the source
    /// derives another key (other platform, other measurement) or the file was altered; or the
    /// source's own error.
    pub fn unseal<K: KeySource + ?Sized>(
        &self,
        source: &K,
        purpose: KeyPurpose<'_>,
        kind: SecretKind,
    ) -> Result<Zeroizing<[u8; SECRET_LEN]>> {
        if self.purpose() != purpose.label() {
            return Err(SealError::KeyPurposeMismatch {
                found: self.purpose().to_owned(),
                expected: purpose.label().to_owned(),
            });
        }
        if self.secret_kind != kind {
            return Err(SealError::SecretKindMismatch {
                found: self.secret_kind,
                expected: kind,
            });
        }
        if self.source_kind != source.kind() {
            return Err(SealError::KeySourceMismatch {
                sealed_with: self.source_kind.id(),
                opening_with: source.kind().id(),
            });
        }
        let header_len = PREFIX_LEN + self.purpose_len + NONCE_LEN;
        let (header, sealed) = self.bytes.split_at(header_len);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&header[header_len - NONCE_LEN..]);
        let (ciphertext, tag) = sealed.split_at(SECRET_LEN);
        let mut tag_bytes = [0u8; TAG_LEN];
        tag_bytes.copy_from_slice(tag);
        let cipher = file_cipher(source, purpose)?;
        let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
        secret.copy_from_slice(ciphertext);
        cipher
            .open_in_place(nonce, header, &tag_bytes, secret.as_mut_slice())
            .map_err(|_| SealError::KeyFileAuthentication)?;
        Ok(secret)
    }

    /// The kind of source the file was sealed with.
    #[must_use]
    pub fn source_kind(&self) -> KeySourceKind {
        self.source_kind
    }

    /// The kind of secret inside.
    #[must_use]
    pub fn secret_kind(&self) -> SecretKind {
        self.secret_kind
    }

    /// The purpose label the file was sealed for.
    #[must_use]
    pub fn purpose(&self) -> &str {
        // Checked to be ASCII when parsed or sealed.
        core::str::from_utf8(&self.bytes[PREFIX_LEN..PREFIX_LEN + self.purpose_len]).unwrap_or("")
    }

    /// The stored form.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Seals `secret` into a new file at `path` (mode 0600). Refuses to replace an existing file.
    ///
    /// # Errors
    /// [`SealError::KeyFileIo`] (with [`std::io::ErrorKind::AlreadyExists`] when `path` exists),
    /// or as [`SealedKeyFile::seal`].
    pub fn create<K, R>(
        path: &Path,
        source: &K,
        purpose: KeyPurpose<'_>,
        kind: SecretKind,
        secret: &[u8; SECRET_LEN],
        rng: &mut R,
    ) -> Result<()>
    where
        K: KeySource + ?Sized,
        R: TryCryptoRng + ?Sized,
    {
        let sealed = Self::seal(source, purpose, kind, secret, rng)?;
        write_new_private_file(path, sealed.as_bytes())
    }

    /// Reads the file at `path` and unseals its secret.
    ///
    /// # Errors
    /// [`SealError::KeyFileIo`] (with [`std::io::ErrorKind::NotFound`] when there is no file),
    /// [`SealError::TooLong`] for a file larger than [`MAX_KEY_FILE_LEN`], any error of
    /// [`SealedKeyFile::parse`] and [`SealedKeyFile::unseal`].
    pub fn open<K: KeySource + ?Sized>(
        path: &Path,
        source: &K,
        purpose: KeyPurpose<'_>,
        kind: SecretKind,
    ) -> Result<Zeroizing<[u8; SECRET_LEN]>> {
        let bytes = read_private_file(path, MAX_KEY_FILE_LEN)?;
        Self::parse(&bytes)?.unseal(source, purpose, kind)
    }

    /// Opens the file at `path`, or, if there is none, seals a fresh random secret into a new
    /// one. An existing file that cannot be opened (another measurement, altered, another purpose)
    /// is an error and is left alone: a key is never silently replaced. If another process
    /// creates the file at the same moment, its secret is the one returned.
    ///
    /// # Errors
    /// As [`SealedKeyFile::open`] and [`SealedKeyFile::create`].
    pub fn open_or_create<K, R>(
        path: &Path,
        source: &K,
        purpose: KeyPurpose<'_>,
        kind: SecretKind,
        rng: &mut R,
    ) -> Result<OpenedKey>
    where
        K: KeySource + ?Sized,
        R: TryCryptoRng + ?Sized,
    {
        match Self::open(path, source, purpose, kind) {
            Ok(secret) => {
                return Ok(OpenedKey {
                    secret,
                    created: false,
                });
            }
            Err(SealError::KeyFileIo {
                error: ErrorKind::NotFound,
                ..
            }) => {}
            Err(e) => return Err(e),
        }
        let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
        crate::random::fill(rng, secret.as_mut_slice())?;
        match Self::create(path, source, purpose, kind, &secret, rng) {
            Ok(()) => Ok(OpenedKey {
                secret,
                created: true,
            }),
            Err(SealError::KeyFileIo {
                error: ErrorKind::AlreadyExists,
                ..
            }) => Ok(OpenedKey {
                secret: Self::open(path, source, purpose, kind)?,
                created: false,
            }),
            Err(e) => Err(e),
        }
    }
}

impl fmt::Debug for SealedKeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedKeyFile")
            .field("source_kind", &self.source_kind)
            .field("secret_kind", &self.secret_kind)
            .field("purpose", &self.purpose())
            .finish_non_exhaustive()
    }
}

fn io_error(operation: &'static str, path: &Path) -> impl Fn(std::io::Error) -> SealError {
    let path = path.to_path_buf();
    move |e| SealError::KeyFileIo {
        operation,
        path: path.clone(),
        error: e.kind(),
    }
}

/// Reads a whole file of at most `max` bytes into a buffer that is wiped on drop.
pub(crate) fn read_private_file(path: &Path, max: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut file = File::open(path).map_err(io_error("open", path))?;
    let metadata = file.metadata().map_err(io_error("stat", path))?;
    if !metadata.is_file() {
        return Err(SealError::KeyFileIo {
            operation: "open",
            path: path.to_path_buf(),
            error: if metadata.is_dir() {
                ErrorKind::IsADirectory
            } else {
                ErrorKind::InvalidInput
            },
        });
    }
    let len = metadata.len();
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len > max {
        return Err(SealError::TooLong {
            what: "key file",
            len,
            max,
        });
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(len));
    // `take` guards against a file that grows between `stat` and `read`.
    (&mut file)
        .take(u64::try_from(max).unwrap_or(u64::MAX) + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error("read", path))?;
    if bytes.len() > max {
        return Err(SealError::TooLong {
            what: "key file",
            len: bytes.len(),
            max,
        });
    }
    Ok(bytes)
}

/// Creates `path` with `bytes` and mode 0600, atomically, failing with `AlreadyExists` if it is
/// there: write a temporary file beside it, sync it, hard-link it into place, remove the
/// temporary name, sync the directory.
pub(crate) fn write_new_private_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| SealError::KeyFileIo {
            operation: "name",
            path: path.to_path_buf(),
            error: ErrorKind::InvalidInput,
        })?
        .to_string_lossy()
        .into_owned();
    let mut suffix = [0u8; 8];
    crate::random::fill(&mut SystemRng, &mut suffix)?;
    let temp = dir.join(format!(
        ".{name}.tmp-{}",
        u64::from_be_bytes(suffix) & 0xffff_ffff_ffff
    ));

    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(KEY_FILE_MODE)
        .open(&temp)
        .map_err(io_error("create", &temp))?;
    let result = (|| {
        // The umask may have removed bits; set exactly 0600.
        file.set_permissions(Permissions::from_mode(KEY_FILE_MODE))
            .map_err(io_error("chmod", &temp))?;
        file.write_all(bytes).map_err(io_error("write", &temp))?;
        file.sync_all().map_err(io_error("sync", &temp))?;
        fs::hard_link(&temp, path).map_err(io_error("create", path))
    })();
    drop(file);
    // The temporary name goes in every case; if linking worked the data lives on under `path`.
    let removed = fs::remove_file(&temp);
    result?;
    removed.map_err(io_error("remove", &temp))?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("sync", &dir))
}

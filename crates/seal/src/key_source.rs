//! Where keys for data at rest come from: a [`KeySource`] derives a 32-byte key per purpose, bound
//! to the platform and to the measurement of the code that asks, so that a different build (or a
//! different machine) cannot re-derive it.
//!
//! Three sources exist:
//!
//! * [`SevSnpKeySource`] ([`sev_snp`]): on AMD SEV-SNP, `MSG_KEY_REQ` through `/dev/sev-guest`
//!   returns a key derived by the secure processor from the chip's secret and selected guest
//!   fields such as the launch measurement and the guest policy.
//! * [`TdxHelperKeySource`] ([`tdx_helper`]): Intel TDX has no sealing key, so a local key helper
//!   service verifies a TD quote and answers with a key bound to the TD's measurement; this is
//!   the TD's side of that exchange.
//! * [`SimulatedKeySource`]: imitates the derivation in software for development and tests and
//!   says so through [`KeySource::is_simulated`].
//!
//! A platform key carries no label of its own, so the hardware sources turn it into a
//! per-purpose key with HKDF ([`mix_purpose`]); the result is what [`KeySource::derive_key`]
//! returns, and what [`crate::SealedKeyFile`] and [`crate::SealedBlob`] encrypt under.

pub mod sev_snp;
pub mod tdx_helper;

pub use sev_snp::{SevSnpKeySource, SnpKeyFields, SnpKeyPolicy, SnpRootKey};
pub use tdx_helper::{TdQuoteSource, TdxHelperKeySource};

use core::fmt;

use hkdf::Hkdf;
use rand_core::TryCryptoRng;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Result, SealError};

/// Length of a derived key.
pub const DERIVED_KEY_LEN: usize = 32;
/// Longest purpose label.
pub const MAX_PURPOSE_LEN: usize = 64;
/// Longest simulated measurement (SEV-SNP and TDX measurements are 48 bytes).
pub const MAX_MEASUREMENT_LEN: usize = 256;

/// What a key is for. Different purposes give unrelated keys from the same source.
///
/// A label is 1 to 64 bytes of ASCII letters, digits, `-`, `_`, `.` or `/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyPurpose<'a>(&'a str);

impl<'a> KeyPurpose<'a> {
    /// The key that encrypts a node's wallet key at rest.
    pub const WALLET_KEY: KeyPurpose<'static> = KeyPurpose("cocoon/wallet-key");
    /// The key that encrypts a worker's X25519 sealing key at rest.
    pub const SEALING_KEY: KeyPurpose<'static> = KeyPurpose("cocoon/sealing-key");
    /// The key that encrypts a proxy's voucher-signing (Ed25519) key at rest.
    pub const VOUCHER_KEY: KeyPurpose<'static> = KeyPurpose("cocoon/voucher-key");

    /// A purpose with the given label.
    ///
    /// # Errors
    /// [`SealError::InvalidKeyPurpose`] for an empty or over-long label or a disallowed character.
    pub fn new(label: &'a str) -> Result<Self> {
        if label.is_empty() || label.len() > MAX_PURPOSE_LEN {
            return Err(SealError::InvalidKeyPurpose("label must be 1 to 64 bytes"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        {
            return Err(SealError::InvalidKeyPurpose(
                "label may only contain ASCII letters, digits, '-', '_', '.', '/'",
            ));
        }
        Ok(Self(label))
    }

    /// The label.
    #[must_use]
    pub fn label(&self) -> &'a str {
        self.0
    }
}

/// Which kind of source a key came from; recorded in sealed blobs and sealed key files so that
/// they are only ever opened by the same kind of source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeySourceKind {
    /// [`SimulatedKeySource`]: software only, no hardware protection.
    Simulated,
    /// [`SevSnpKeySource`]: AMD SEV-SNP derived key (`MSG_KEY_REQ`).
    SevSnp,
    /// [`TdxHelperKeySource`]: Intel TDX, key from a key helper after quote verification.
    TdxHelper,
}

impl KeySourceKind {
    /// The byte that identifies this kind in sealed data.
    #[must_use]
    pub const fn id(self) -> u8 {
        match self {
            Self::Simulated => 1,
            Self::SevSnp => 2,
            Self::TdxHelper => 3,
        }
    }

    /// The kind with this id, if any.
    #[must_use]
    pub const fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Self::Simulated),
            2 => Some(Self::SevSnp),
            3 => Some(Self::TdxHelper),
            _ => None,
        }
    }
}

impl fmt::Display for KeySourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Simulated => "simulated",
            Self::SevSnp => "sev-snp",
            Self::TdxHelper => "tdx-helper",
        })
    }
}

/// Turns a platform key (which has no label) into the key for one purpose:
///
/// ```text
/// prk = HKDF-Extract(salt = "cocoon-seal/v1/platform-key/" || kind, ikm = platform_key)
/// key = HKDF-Expand(prk, purpose label, 32)
/// ```
///
/// `kind` is the [`KeySourceKind`]'s display name, so the same bytes from two kinds of source
/// never give the same key.
///
/// # Errors
/// Never in practice (32 bytes is far below HKDF-SHA256's limit); the `Result` carries HKDF's
/// length check.
pub fn mix_purpose(
    kind: KeySourceKind,
    platform_key: &[u8; DERIVED_KEY_LEN],
    purpose: KeyPurpose<'_>,
) -> Result<DerivedKey> {
    let mut salt = Vec::with_capacity(40);
    salt.extend_from_slice(b"cocoon-seal/v1/platform-key/");
    salt.extend_from_slice(kind.to_string().as_bytes());
    let hkdf = Hkdf::<Sha256>::new(Some(&salt), platform_key);
    let mut key = Zeroizing::new([0u8; DERIVED_KEY_LEN]);
    hkdf.expand(purpose.label().as_bytes(), key.as_mut_slice())
        .map_err(|_| SealError::KeySourceUnavailable("HKDF expansion failed".into()))?;
    Ok(DerivedKey(key))
}

/// A 32-byte key from a [`KeySource`]; wiped on drop, never printed.
pub struct DerivedKey(Zeroizing<[u8; DERIVED_KEY_LEN]>);

impl DerivedKey {
    /// Wraps key bytes (for [`KeySource`] implementations).
    #[must_use]
    pub fn from_bytes(bytes: [u8; DERIVED_KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The key bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; DERIVED_KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for DerivedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DerivedKey(<redacted>)")
    }
}

/// A platform service that derives keys bound to the platform and the running code's measurement.
///
/// The same source, measurement and purpose always give the same key; anything else gives an
/// unrelated key.
pub trait KeySource {
    /// What kind of source this is.
    fn kind(&self) -> KeySourceKind;

    /// Whether keys come from software rather than TEE hardware. Production policy must refuse a
    /// simulated source; a node using one must say so loudly.
    fn is_simulated(&self) -> bool;

    /// Derives the key for `purpose`.
    ///
    /// # Errors
    /// [`SealError::KeySourceUnavailable`] when the platform cannot produce a key.
    fn derive_key(&self, purpose: KeyPurpose<'_>) -> Result<DerivedKey>;
}

/// **Simulated** key source: derives keys in software from a local 32-byte secret (standing in for
/// the chip's secret) and a simulated launch measurement (standing in for the TEE's measurement of
/// the guest). Offers no protection against anyone who can read the local secret; it exists so
/// that development nodes and tests exercise the same code paths as TEE nodes, and so that tests
/// can show that a different measurement cannot open what another one sealed.
///
/// ```text
/// prk = HKDF-Extract(salt = "cocoon-seal/v1/simulated-key-source", ikm = local_secret)
/// key = HKDF-Expand(prk, u16(len(measurement)) || measurement || purpose label, 32)
/// ```
#[derive(Clone)]
pub struct SimulatedKeySource {
    local_secret: Zeroizing<[u8; 32]>,
    measurement: Vec<u8>,
}

impl SimulatedKeySource {
    /// A source from a stored local secret and the simulated measurement.
    ///
    /// # Errors
    /// [`SealError::TooLong`] for a measurement above [`MAX_MEASUREMENT_LEN`] bytes.
    pub fn new(local_secret: [u8; 32], measurement: &[u8]) -> Result<Self> {
        if measurement.len() > MAX_MEASUREMENT_LEN {
            return Err(SealError::TooLong {
                what: "simulated measurement",
                len: measurement.len(),
                max: MAX_MEASUREMENT_LEN,
            });
        }
        Ok(Self {
            local_secret: Zeroizing::new(local_secret),
            measurement: measurement.to_vec(),
        })
    }

    /// A source with a fresh random local secret.
    ///
    /// # Errors
    /// [`SealError::RandomSource`], or as [`SimulatedKeySource::new`].
    pub fn generate<R: TryCryptoRng + ?Sized>(rng: &mut R, measurement: &[u8]) -> Result<Self> {
        let mut secret = Zeroizing::new([0u8; 32]);
        crate::random::fill(rng, secret.as_mut_slice())?;
        Self::new(*secret, measurement)
    }

    /// Loads the local secret from `path`, or creates the file with a fresh random secret (mode
    /// 0600, written atomically, never overwriting an existing file). The secret is stored **in
    /// clear**: this is the simulated stand-in for a chip secret, for development nodes only.
    ///
    /// # Errors
    /// [`SealError::KeyFileIo`] when the file cannot be read or written,
    /// [`SealError::Truncated`] / [`SealError::TrailingBytes`] when it is not 32 bytes,
    /// [`SealError::RandomSource`], or as [`SimulatedKeySource::new`].
    pub fn load_or_create<R: TryCryptoRng + ?Sized>(
        path: &std::path::Path,
        measurement: &[u8],
        rng: &mut R,
    ) -> Result<Self> {
        let read = |bytes: Zeroizing<Vec<u8>>| -> Result<Self> {
            let secret: [u8; 32] = match bytes.len() {
                32 => {
                    let mut secret = [0u8; 32];
                    secret.copy_from_slice(&bytes);
                    secret
                }
                n if n < 32 => {
                    return Err(SealError::Truncated {
                        field: "simulated platform secret",
                        needed: 32,
                        available: n,
                    });
                }
                n => {
                    return Err(SealError::TrailingBytes {
                        structure: "simulated platform secret",
                        extra: n - 32,
                    });
                }
            };
            Self::new(secret, measurement)
        };
        match crate::key_file::read_private_file(path, 4096) {
            Ok(bytes) => return read(bytes),
            Err(SealError::KeyFileIo {
                error: std::io::ErrorKind::NotFound,
                ..
            }) => {}
            Err(e) => return Err(e),
        }
        let fresh = Self::generate(rng, measurement)?;
        match crate::key_file::write_new_private_file(path, fresh.local_secret.as_slice()) {
            Ok(()) => Ok(fresh),
            // Another process created it first: use theirs.
            Err(SealError::KeyFileIo {
                error: std::io::ErrorKind::AlreadyExists,
                ..
            }) => read(crate::key_file::read_private_file(path, 4096)?),
            Err(e) => Err(e),
        }
    }

    /// The local secret, for storing it between runs.
    #[must_use]
    pub fn local_secret(&self) -> Zeroizing<[u8; 32]> {
        self.local_secret.clone()
    }

    /// The simulated measurement keys are bound to.
    #[must_use]
    pub fn measurement(&self) -> &[u8] {
        &self.measurement
    }
}

impl KeySource for SimulatedKeySource {
    fn kind(&self) -> KeySourceKind {
        KeySourceKind::Simulated
    }

    fn is_simulated(&self) -> bool {
        true
    }

    fn derive_key(&self, purpose: KeyPurpose<'_>) -> Result<DerivedKey> {
        let hkdf = Hkdf::<Sha256>::new(
            Some(b"cocoon-seal/v1/simulated-key-source"),
            self.local_secret.as_slice(),
        );
        let measurement_len = u16::try_from(self.measurement.len())
            .map_err(|_| SealError::KeySourceUnavailable("simulated measurement too long".into()))?
            .to_be_bytes();
        let mut key = Zeroizing::new([0u8; DERIVED_KEY_LEN]);
        hkdf.expand_multi_info(
            &[
                &measurement_len,
                &self.measurement,
                purpose.label().as_bytes(),
            ],
            key.as_mut_slice(),
        )
        .map_err(|_| SealError::KeySourceUnavailable("HKDF expansion failed".into()))?;
        Ok(DerivedKey(key))
    }
}

impl fmt::Debug for SimulatedKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulatedKeySource")
            .field("measurement_len", &self.measurement.len())
            .field("local_secret", &"<redacted>")
            .finish()
    }
}

//! X25519 sealing keys and the short key ids that let a recipient find its entry in an envelope.

use core::fmt;

use rand_core::TryCryptoRng;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::error::{Result, SealError};

/// Length of an X25519 public or private key.
pub const KEY_LEN: usize = 32;
/// Length of a [`KeyId`].
pub const KEY_ID_LEN: usize = 8;

/// An X25519 public key that requests can be sealed to (a worker publishes it in its attestation).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SealingPublicKey(pub [u8; KEY_LEN]);

impl SealingPublicKey {
    /// The 32 raw bytes (RFC 7748 encoding).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The key id derived from this key: see [`KeyId::for_public_key`].
    #[must_use]
    pub fn key_id(&self) -> KeyId {
        KeyId::for_public_key(self)
    }
}

impl From<[u8; KEY_LEN]> for SealingPublicKey {
    fn from(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for SealingPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealingPublicKey({})", Hex(&self.0))
    }
}

impl fmt::Display for SealingPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Hex(&self.0).fmt(f)
    }
}

/// An X25519 key pair whose private half opens envelopes sealed to its public half.
///
/// The private key is wiped from memory when the pair is dropped.
#[derive(Clone)]
pub struct SealingKeyPair {
    secret: StaticSecret,
    public: SealingPublicKey,
}

impl SealingKeyPair {
    /// Generates a fresh key pair from a cryptographically secure RNG
    /// (for example [`crate::SystemRng`]).
    ///
    /// # Errors
    /// [`SealError::RandomSource`] if the RNG fails.
    pub fn generate<R: TryCryptoRng + ?Sized>(rng: &mut R) -> Result<Self> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        crate::random::fill(rng, bytes.as_mut_slice())?;
        Ok(Self::from_secret_bytes(*bytes))
    }

    /// Rebuilds a key pair from its stored 32-byte private key. Any 32 bytes are a valid X25519
    /// private key (clamping happens inside the scalar multiplication). The caller should wipe its
    /// own copy of the bytes.
    #[must_use]
    pub fn from_secret_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let secret = StaticSecret::from(bytes);
        let public = SealingPublicKey(PublicKey::from(&secret).to_bytes());
        Self { secret, public }
    }

    /// The private key bytes, for storing the key (ideally in a [`crate::SealedBlob`]).
    #[must_use]
    pub fn secret_bytes(&self) -> Zeroizing<[u8; KEY_LEN]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    /// The public half.
    #[must_use]
    pub fn public(&self) -> SealingPublicKey {
        self.public
    }

    /// The key id of the public half.
    #[must_use]
    pub fn key_id(&self) -> KeyId {
        self.public.key_id()
    }

    /// X25519 with the peer's public key, refusing the all-zero output that a low-order peer key
    /// produces (RFC 9180 section 7.1.4).
    pub(crate) fn diffie_hellman(
        &self,
        peer: &SealingPublicKey,
    ) -> Result<Zeroizing<[u8; KEY_LEN]>> {
        let shared = self.secret.diffie_hellman(&PublicKey::from(peer.0));
        if !shared.was_contributory() {
            return Err(SealError::NonContributoryKey);
        }
        Ok(Zeroizing::new(shared.to_bytes()))
    }
}

impl fmt::Debug for SealingKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKeyPair")
            .field("public", &self.public)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A short public label for a sealing key, carried in clear in envelopes so that a recipient can
/// find its wrapped key without trial decryption.
///
/// Any 8 bytes work as long as the recipients of one envelope have distinct ids; the usual choice
/// is [`KeyId::for_public_key`], which needs no coordination.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

impl KeyId {
    /// The first 8 bytes of SHA-256("cocoon-seal/v1/key-id" || public key).
    #[must_use]
    pub fn for_public_key(key: &SealingPublicKey) -> Self {
        let digest = Sha256::new()
            .chain_update(b"cocoon-seal/v1/key-id")
            .chain_update(key.0)
            .finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Self(id)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", Hex(&self.0))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Hex(&self.0).fmt(f)
    }
}

/// Lower-case hex rendering without pulling a hex crate into the library.
pub(crate) struct Hex<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

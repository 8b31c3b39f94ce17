//! X25519 sealing keys and the short key ids that let a recipient find its entry in an envelope.
//!
//! The scalar multiplications run in AWS-LC (`aws-lc-rs`, already this crate's AEAD): its
//! X25519 is about twice as fast as `x25519-dalek`'s on our machines, and every sealed request
//! costs the client two of them and the worker one (figures in `docs/sealing.md`).

use core::fmt;

use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use rand_core::TryCryptoRng;
use sha2::{Digest, Sha256};
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
    secret: Zeroizing<[u8; KEY_LEN]>,
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
        let secret = Zeroizing::new(bytes);
        let public = SealingPublicKey(x25519_base(&secret));
        Self { secret, public }
    }

    /// The private key bytes, for storing the key (ideally in a [`crate::SealedBlob`]).
    #[must_use]
    pub fn secret_bytes(&self) -> Zeroizing<[u8; KEY_LEN]> {
        self.secret.clone()
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
        let private = PrivateKey::from_private_key(&X25519, self.secret.as_slice())
            .map_err(|_| SealError::CipherSetup)?;
        // AWS-LC refuses an all-zero shared secret, which is what a low-order key gives; the
        // closure checks again so the rule does not hang on the library's.
        agreement::agree(
            &private,
            UnparsedPublicKey::new(&X25519, &peer.0),
            SealError::NonContributoryKey,
            |shared| {
                if shared.len() != KEY_LEN || shared.iter().all(|b| *b == 0) {
                    return Err(SealError::NonContributoryKey);
                }
                let mut out = Zeroizing::new([0u8; KEY_LEN]);
                out.copy_from_slice(shared);
                Ok(out)
            },
        )
    }
}

/// `secret` × the base point: the public key (RFC 7748 encoding). AWS-LC computes it; were it
/// ever to refuse, `x25519-dalek` does, so key construction stays infallible without a panic.
fn x25519_base(secret: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    let computed = PrivateKey::from_private_key(&X25519, secret)
        .ok()
        .and_then(|k| k.compute_public_key().ok())
        .and_then(|p| <[u8; KEY_LEN]>::try_from(p.as_ref()).ok());
    computed.unwrap_or_else(|| {
        x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*secret)).to_bytes()
    })
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// AWS-LC and `x25519-dalek` compute the same public keys and shared secrets, so keys
        /// stored before the switch and peers on either implementation still agree.
        #[test]
        fn both_implementations_agree(a in any::<[u8; KEY_LEN]>(), b in any::<[u8; KEY_LEN]>()) {
            let ours = SealingKeyPair::from_secret_bytes(a);
            let dalek = x25519_dalek::StaticSecret::from(a);
            prop_assert_eq!(ours.public().0, x25519_dalek::PublicKey::from(&dalek).to_bytes());
            let peer = SealingKeyPair::from_secret_bytes(b);
            let shared = ours.diffie_hellman(&peer.public()).unwrap();
            let expected = dalek.diffie_hellman(&x25519_dalek::PublicKey::from(peer.public().0));
            prop_assert_eq!(*shared, expected.to_bytes());
            prop_assert_eq!(*peer.diffie_hellman(&ours.public()).unwrap(), *shared);
        }
    }

    #[test]
    fn low_order_peer_keys_are_refused() {
        let ours = SealingKeyPair::from_secret_bytes([7; KEY_LEN]);
        // The identity (0) and the point of order 2 (1, encoded little-endian) give all zeros.
        let mut one = [0u8; KEY_LEN];
        one[0] = 1;
        for peer in [[0u8; KEY_LEN], one] {
            assert!(matches!(
                ours.diffie_hellman(&SealingPublicKey(peer)),
                Err(SealError::NonContributoryKey)
            ));
        }
    }

    #[test]
    fn the_secret_round_trips() {
        let pair = SealingKeyPair::from_secret_bytes([9; KEY_LEN]);
        assert_eq!(*pair.secret_bytes(), [9; KEY_LEN]);
        let again = SealingKeyPair::from_secret_bytes(*pair.secret_bytes());
        assert_eq!(again.public(), pair.public());
    }
}

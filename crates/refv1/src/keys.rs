//! Keys of the scheme: Ed25519 key pairs used for an X25519 exchange, and the per-request shared
//! secret derived from it, one per direction.

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::montgomery::MontgomeryPoint;
use sha2::{Digest, Sha256, Sha512};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{RefV1Error, Result};

/// Which way a body travels; it selects the last byte hashed into the shared secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A request, client → worker (`"c"`).
    ClientToWorker,
    /// An answer, worker → client (`"w"`).
    WorkerToClient,
}

impl Direction {
    fn tag(self) -> &'static [u8] {
        match self {
            Direction::ClientToWorker => b"c",
            Direction::WorkerToClient => b"w",
        }
    }
}

/// A 32-byte Ed25519 public key, as carried in `sender_public_key` / `receiver_public_key` and in
/// `client.runQueryEx.public_key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ed25519Public(pub [u8; 32]);

impl Ed25519Public {
    /// The X25519 (Montgomery u) coordinate of this key, by the birational map
    /// u = (1 + y) / (1 − y).
    ///
    /// The encoding must decompress to a curve point: a key that is not one is refused rather than
    /// mapped, since no honest peer sends one.
    pub fn to_x25519(&self, which: &'static str) -> Result<[u8; 32]> {
        let point = CompressedEdwardsY(self.0)
            .decompress()
            .ok_or(RefV1Error::InvalidPublicKey { which })?;
        Ok(point.to_montgomery().to_bytes())
    }

    /// Lower-case hex, as the body's key fields carry it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parse the hex text of a body's key field.
    pub fn from_hex(text: &str, field: &'static str) -> Result<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(|_| RefV1Error::BadKeyField {
            field,
            encoding: "hex",
        })?;
        Ok(Self(out))
    }
}

/// An Ed25519 private key (its 32-byte seed), as a key manager hands it out and as
/// `proxy.runQueryEx.private_key` carries it. Wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Ed25519Seed([u8; 32]);

impl std::fmt::Debug for Ed25519Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ed25519Seed").finish_non_exhaustive()
    }
}

impl Ed25519Seed {
    /// Wrap a seed.
    pub fn from_bytes(seed: [u8; 32]) -> Self {
        Self(seed)
    }

    /// A fresh seed from the caller's random number generator.
    pub fn generate<R: rand_core::TryCryptoRng + ?Sized>(rng: &mut R) -> Result<Self> {
        let mut seed = [0u8; 32];
        rng.try_fill_bytes(&mut seed)
            .map_err(|_| RefV1Error::Random)?;
        Ok(Self(seed))
    }

    /// The seed's bytes (to put into `proxy.runQueryEx.private_key`).
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The scalar as Ed25519 expands it: the lower 32 bytes of SHA-512(seed), clamped. This is
    /// also the X25519 private key.
    fn expanded_scalar(&self) -> [u8; 32] {
        let mut hash: [u8; 64] = Sha512::digest(self.0).into();
        let mut scalar = [0u8; 32];
        scalar.copy_from_slice(&hash[..32]);
        hash.zeroize();
        scalar[0] &= 248;
        scalar[31] &= 127;
        scalar[31] |= 64;
        scalar
    }

    /// The matching Ed25519 public key.
    pub fn public(&self) -> Ed25519Public {
        let mut scalar = self.expanded_scalar();
        let point = EdwardsPoint::mul_base_clamped(scalar);
        scalar.zeroize();
        Ed25519Public(point.compress().to_bytes())
    }

    /// The X25519 shared point with `peer` (both keys converted to Curve25519).
    pub fn x25519_with(&self, peer: &Ed25519Public, which: &'static str) -> Result<[u8; 32]> {
        let peer_u = peer.to_x25519(which)?;
        let mut scalar = self.expanded_scalar();
        let shared = MontgomeryPoint(peer_u).mul_clamped(scalar).to_bytes();
        scalar.zeroize();
        if shared == [0u8; 32] {
            return Err(RefV1Error::SmallOrderKey);
        }
        Ok(shared)
    }
}

/// The per-request, per-direction secret:
/// SHA-256(X25519 point ‖ nonce as its base64 text ‖ `"c"` or `"w"`). Wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SharedSecret([u8; 32]);

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSecret").finish_non_exhaustive()
    }
}

impl SharedSecret {
    /// Derive the secret of one direction from our seed, the peer's public key and the nonce text
    /// exactly as it appears in `encryption_nonce`.
    pub fn derive(
        own: &Ed25519Seed,
        peer: &Ed25519Public,
        nonce_text: &str,
        direction: Direction,
        peer_role: &'static str,
    ) -> Result<Self> {
        let mut point = own.x25519_with(peer, peer_role)?;
        let mut hasher = Sha256::new();
        hasher.update(point);
        hasher.update(nonce_text.as_bytes());
        hasher.update(direction.tag());
        point.zeroize();
        Ok(Self(hasher.finalize().into()))
    }

    /// The secret's bytes (for known-answer tests and the string cipher).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

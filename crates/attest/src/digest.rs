//! Fixed-size measurement values (48-byte SHA-384 registers, 32-byte hashes) that print,
//! parse and serialize as lowercase hex, so policies can be written by hand in config files.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::error::AttestError;

/// `N` raw bytes shown as hex: a measurement register, a key id or a hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest<const N: usize>(pub [u8; N]);

/// A 48-byte register value (TDX MRTD/RTMR/MRCONFIGID, SNP MEASUREMENT, Intel root key id).
pub type Digest48 = Digest<48>;
/// A 32-byte hash value.
pub type Digest32 = Digest<32>;

impl<const N: usize> Digest<N> {
    /// All zero bytes.
    pub const ZERO: Self = Self([0u8; N]);

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; N] {
        &self.0
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses exactly `2 * N` hex digits (an optional `0x` prefix is allowed).
    pub fn from_hex(s: &str) -> Result<Self, AttestError> {
        let s = s.trim();
        let s = s.strip_prefix("0x").unwrap_or(s);
        let mut out = [0u8; N];
        hex::decode_to_slice(s, &mut out).map_err(|e| {
            AttestError::Config(format!("expected {} hex bytes, got {s:?}: {e}", N))
        })?;
        Ok(Self(out))
    }

    /// Copies from a slice of exactly `N` bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; N]>::try_from(bytes).ok().map(Self)
    }
}

impl<const N: usize> Default for Digest<N> {
    fn default() -> Self {
        Self::ZERO
    }
}

impl<const N: usize> From<[u8; N]> for Digest<N> {
    fn from(value: [u8; N]) -> Self {
        Self(value)
    }
}

impl<const N: usize> fmt::Display for Digest<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl<const N: usize> fmt::Debug for Digest<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

impl<const N: usize> FromStr for Digest<N> {
    type Err = AttestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

impl<const N: usize> Serialize for Digest<N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de, const N: usize> Deserialize<'de> for Digest<N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HexVisitor<const M: usize>;
        impl<const M: usize> Visitor<'_> for HexVisitor<M> {
            type Value = Digest<M>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a string of {} hex digits", 2 * M)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Digest::<M>::from_hex(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(HexVisitor::<N>)
    }
}

/// SHA-256 identifying the software image of a TEE, independent of the instance (report data
/// is excluded). For TDX it is defined over `MRTD ‖ MRCONFIGID ‖ MROWNER ‖ MROWNERCONFIG ‖
/// RTMR0..3 ‖ 64 zero bytes`; the root contract lists the allowed ones.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ImageHash(pub Digest32);

impl ImageHash {
    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, AttestError> {
        Digest32::from_hex(s).map(Self)
    }
}

impl fmt::Display for ImageHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for ImageHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageHash({})", self.0)
    }
}

impl FromStr for ImageHash {
    type Err = AttestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_length_check() {
        let d = Digest::<4>([0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(d.to_hex(), "deadbeef");
        assert_eq!(Digest::<4>::from_hex("0xDEADBEEF").unwrap_or_default(), d);
        assert!(Digest::<4>::from_hex("deadbe").is_err());
        assert!(Digest::<4>::from_hex("deadbeefaa").is_err());
        assert!(Digest::<4>::from_hex("zzzzzzzz").is_err());
    }

    #[test]
    fn serde_uses_hex_strings() {
        let d = Digest::<2>([1, 2]);
        let json = serde_json::to_string(&d).unwrap_or_default();
        assert_eq!(json, "\"0102\"");
        let back: Digest<2> = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, d);
        assert!(serde_json::from_str::<Digest<2>>("\"010203\"").is_err());
    }
}

//! User claims: what a TEE vouches for besides its code (its TLS key, and in our extended
//! format a sealing key, GPU evidence digest, model hash and issue time), and the canonical
//! byte form whose SHA-512 becomes the evidence's 64-byte report data.
//!
//! Two encodings exist, told apart by length alone:
//!
//! * **reference** — exactly the 32-byte Ed25519 TLS public key (what reference COCOON nodes
//!   send);
//! * **v1** — `"CCLM" ‖ version=1 ‖ flags ‖ tls_key[32] ‖ issued_at u64 LE ‖ optional fields`,
//!   at least 46 bytes, where each set flag bit adds one 32-byte field in bit order (bit 0
//!   X25519 sealing key, bit 1 GPU evidence digest, bit 2 model hash). Unknown bits, a wrong
//!   magic, a wrong version or any length other than the one the flags imply are refused, so
//!   every claims value has exactly one encoding.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha512};

use crate::digest::Digest32;
use crate::error::AttestError;

/// Magic that starts a v1 claims blob.
pub const CLAIMS_V1_MAGIC: [u8; 4] = *b"CCLM";
/// The v1 format version byte.
pub const CLAIMS_V1_VERSION: u8 = 1;
/// Length of the reference claims form.
pub const REFERENCE_CLAIMS_LEN: usize = 32;
/// Length of a v1 blob without optional fields.
pub const CLAIMS_V1_BASE_LEN: usize = 4 + 1 + 1 + 32 + 8;

const FLAG_SEALING_KEY: u8 = 1 << 0;
const FLAG_GPU_EVIDENCE: u8 = 1 << 1;
const FLAG_MODEL_HASH: u8 = 1 << 2;
const KNOWN_FLAGS: u8 = FLAG_SEALING_KEY | FLAG_GPU_EVIDENCE | FLAG_MODEL_HASH;

/// The claims a TEE binds into its evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserClaims {
    /// Ed25519 public key of the RA-TLS certificate.
    pub tls_public_key: Digest32,
    /// Present in the v1 format only; `None` means the reference format.
    pub extended: Option<ExtendedClaims>,
}

/// Fields carried by the v1 format beyond the TLS key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtendedClaims {
    /// When the claims (and the certificate that carries them) were made, unix seconds.
    pub issued_at: u64,
    /// X25519 public key that clients seal requests to (proxy-blind requests).
    pub sealing_public_key: Option<Digest32>,
    /// SHA-256 of the NVIDIA GPU attestation evidence checked inside the TEE.
    pub gpu_evidence_digest: Option<Digest32>,
    /// SHA-256 identifying the model weights served.
    pub model_hash: Option<Digest32>,
}

impl ExtendedClaims {
    /// Extended claims with only an issue time.
    pub fn issued_at(issued_at: u64) -> Self {
        Self {
            issued_at,
            sealing_public_key: None,
            gpu_evidence_digest: None,
            model_hash: None,
        }
    }
}

impl UserClaims {
    /// Reference-format claims: just the TLS key.
    pub fn reference(tls_public_key: [u8; 32]) -> Self {
        Self {
            tls_public_key: Digest32::from(tls_public_key),
            extended: None,
        }
    }

    /// v1 claims with the given extension fields.
    pub fn v1(tls_public_key: [u8; 32], extended: ExtendedClaims) -> Self {
        Self {
            tls_public_key: Digest32::from(tls_public_key),
            extended: Some(extended),
        }
    }

    /// The canonical encoding (see the module documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        let Some(ext) = &self.extended else {
            return self.tls_public_key.0.to_vec();
        };
        let optional = [
            (FLAG_SEALING_KEY, ext.sealing_public_key),
            (FLAG_GPU_EVIDENCE, ext.gpu_evidence_digest),
            (FLAG_MODEL_HASH, ext.model_hash),
        ];
        let flags = optional
            .iter()
            .filter(|(_, v)| v.is_some())
            .fold(0u8, |acc, (bit, _)| acc | bit);
        let mut out = Vec::with_capacity(CLAIMS_V1_BASE_LEN + 3 * 32);
        out.extend_from_slice(&CLAIMS_V1_MAGIC);
        out.push(CLAIMS_V1_VERSION);
        out.push(flags);
        out.extend_from_slice(self.tls_public_key.as_bytes());
        out.extend_from_slice(&ext.issued_at.to_le_bytes());
        for value in optional.iter().filter_map(|(_, v)| v.as_ref()) {
            out.extend_from_slice(value.as_bytes());
        }
        out
    }

    /// Decodes either format, refusing anything that is not the canonical encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AttestError> {
        if bytes.len() == REFERENCE_CLAIMS_LEN {
            let mut key = [0u8; 32];
            key.copy_from_slice(bytes);
            return Ok(Self::reference(key));
        }
        if bytes.len() < CLAIMS_V1_BASE_LEN {
            return Err(AttestError::ClaimsLength { len: bytes.len() });
        }
        let (magic, rest) = bytes.split_at(4);
        if magic != CLAIMS_V1_MAGIC {
            return Err(AttestError::ClaimsMalformed("bad magic"));
        }
        let (&version, rest) = rest
            .split_first()
            .ok_or(AttestError::ClaimsMalformed("truncated"))?;
        if version != CLAIMS_V1_VERSION {
            return Err(AttestError::ClaimsVersion(version));
        }
        let (&flags, rest) = rest
            .split_first()
            .ok_or(AttestError::ClaimsMalformed("truncated"))?;
        if flags & !KNOWN_FLAGS != 0 {
            return Err(AttestError::ClaimsMalformed("unknown flag bits"));
        }
        let expected = CLAIMS_V1_BASE_LEN + 32 * flags.count_ones() as usize;
        if bytes.len() != expected {
            return Err(AttestError::ClaimsLength { len: bytes.len() });
        }
        let mut reader = FieldReader(rest);
        let tls_public_key = reader.take32()?;
        let issued_at = u64::from_le_bytes(reader.take::<8>()?);
        let mut optional = |bit: u8| -> Result<Option<Digest32>, AttestError> {
            if flags & bit != 0 {
                Ok(Some(reader.take32()?))
            } else {
                Ok(None)
            }
        };
        let sealing_public_key = optional(FLAG_SEALING_KEY)?;
        let gpu_evidence_digest = optional(FLAG_GPU_EVIDENCE)?;
        let model_hash = optional(FLAG_MODEL_HASH)?;
        Ok(Self {
            tls_public_key,
            extended: Some(ExtendedClaims {
                issued_at,
                sealing_public_key,
                gpu_evidence_digest,
                model_hash,
            }),
        })
    }

    /// The 64-byte report data that binds these claims: SHA-512 of the encoding.
    pub fn report_data(&self) -> [u8; 64] {
        report_data_for(&self.to_bytes())
    }

    /// Whether these claims use the reference (key-only) format.
    pub fn is_reference_format(&self) -> bool {
        self.extended.is_none()
    }
}

/// SHA-512 of a claims blob, as placed into the TEE report data.
pub fn report_data_for(claims_bytes: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    out.copy_from_slice(&Sha512::digest(claims_bytes));
    out
}

struct FieldReader<'a>(&'a [u8]);

impl FieldReader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], AttestError> {
        if self.0.len() < N {
            return Err(AttestError::ClaimsMalformed("truncated"));
        }
        let (head, tail) = self.0.split_at(N);
        self.0 = tail;
        let mut out = [0u8; N];
        out.copy_from_slice(head);
        Ok(out)
    }

    fn take32(&mut self) -> Result<Digest32, AttestError> {
        self.take::<32>().map(Digest32::from)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reference_form_is_the_bare_key() {
        let claims = UserClaims::reference([7u8; 32]);
        assert_eq!(claims.to_bytes(), vec![7u8; 32]);
        assert_eq!(UserClaims::from_bytes(&[7u8; 32]).unwrap(), claims);
        assert!(claims.is_reference_format());
    }

    #[test]
    fn report_data_is_sha512_of_encoding() {
        let claims = UserClaims::reference([1u8; 32]);
        let expected: [u8; 64] = Sha512::digest([1u8; 32]).into();
        assert_eq!(claims.report_data(), expected);
    }

    #[test]
    fn v1_layout_is_fixed() {
        let claims = UserClaims::v1(
            [0xaa; 32],
            ExtendedClaims {
                issued_at: 0x0102_0304_0506_0708,
                sealing_public_key: None,
                gpu_evidence_digest: None,
                model_hash: Some(Digest32::from([0xbb; 32])),
            },
        );
        let bytes = claims.to_bytes();
        assert_eq!(&bytes[..4], b"CCLM");
        assert_eq!(bytes[4], 1);
        assert_eq!(bytes[5], 0b100);
        assert_eq!(&bytes[6..38], &[0xaa; 32]);
        assert_eq!(&bytes[38..46], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&bytes[46..], &[0xbb; 32]);
        assert_eq!(UserClaims::from_bytes(&bytes).unwrap(), claims);
    }

    #[test]
    fn refuses_non_canonical_forms() {
        let full = UserClaims::v1(
            [1; 32],
            ExtendedClaims {
                issued_at: 5,
                sealing_public_key: Some(Digest32::from([2; 32])),
                gpu_evidence_digest: Some(Digest32::from([3; 32])),
                model_hash: Some(Digest32::from([4; 32])),
            },
        )
        .to_bytes();
        // trailing byte
        let mut longer = full.clone();
        longer.push(0);
        assert!(matches!(
            UserClaims::from_bytes(&longer),
            Err(AttestError::ClaimsLength { .. })
        ));
        // truncated
        assert!(matches!(
            UserClaims::from_bytes(&full[..full.len() - 1]),
            Err(AttestError::ClaimsLength { .. })
        ));
        // unknown flag
        let mut flagged = full.clone();
        flagged[5] |= 0x80;
        assert!(matches!(
            UserClaims::from_bytes(&flagged),
            Err(AttestError::ClaimsMalformed(_))
        ));
        // version
        let mut version = full.clone();
        version[4] = 2;
        assert!(matches!(
            UserClaims::from_bytes(&version),
            Err(AttestError::ClaimsVersion(2))
        ));
        // magic
        let mut magic = full;
        magic[0] = b'X';
        assert!(matches!(
            UserClaims::from_bytes(&magic),
            Err(AttestError::ClaimsMalformed(_))
        ));
        // lengths between the two forms
        for len in [0usize, 31, 33, 45] {
            assert!(UserClaims::from_bytes(&vec![0u8; len]).is_err(), "{len}");
        }
    }

    fn opt32() -> impl Strategy<Value = Option<Digest32>> {
        proptest::option::of(any::<[u8; 32]>().prop_map(Digest32::from))
    }

    proptest! {
        #[test]
        fn v1_round_trips(
            key in any::<[u8; 32]>(),
            issued_at in any::<u64>(),
            seal in opt32(),
            gpu in opt32(),
            model in opt32(),
        ) {
            let claims = UserClaims::v1(key, ExtendedClaims {
                issued_at,
                sealing_public_key: seal,
                gpu_evidence_digest: gpu,
                model_hash: model,
            });
            let bytes = claims.to_bytes();
            prop_assert_eq!(UserClaims::from_bytes(&bytes).unwrap(), claims.clone());
            prop_assert_eq!(claims.report_data(), report_data_for(&bytes));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics_and_is_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(claims) = UserClaims::from_bytes(&bytes) {
                prop_assert_eq!(claims.to_bytes(), bytes);
            }
        }
    }
}

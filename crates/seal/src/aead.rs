//! The one place where bulk AES-GCM happens, so that HPKE, envelope bodies, answer chunks and
//! blobs at rest share a single implementation that can be swapped without touching the formats.
//!
//! The implementation is `aws-lc-rs`: on x86-64 with VAES and VPCLMULQDQ it runs AWS-LC's fused
//! AES-GCM kernels, which made 64 KiB chunk sealing several times faster than the two-pass
//! `aes-gcm` crate on our machines (figures and the reasoning are in `docs/sealing.md`). AWS-LC
//! keeps the expanded key in memory it allocates itself and wipes that memory when the key is
//! dropped, so keys are still erased after use.

use aws_lc_rs::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

use crate::hpke::{NONCE_LEN, TAG_LEN};

/// The AEAD refused: on sealing, input too long for the algorithm; on opening, authentication
/// failed. Each caller turns it into the precise [`crate::SealError`] for its layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AeadFailure;

/// An AES-GCM key (128- or 256-bit) ready to seal and open with caller-managed nonces.
///
/// Every caller derives its nonces from a base nonce and a counter that never repeats under one
/// key (or uses a key exactly once), which is why the "less safe" nonce-explicit interface is the
/// right one here.
pub(crate) struct AesGcmKey(LessSafeKey);

impl AesGcmKey {
    /// AES-256-GCM with the given key.
    pub(crate) fn aes256(key: &[u8; 32]) -> Result<Self, AeadFailure> {
        UnboundKey::new(&AES_256_GCM, key)
            .map(|k| Self(LessSafeKey::new(k)))
            .map_err(|_| AeadFailure)
    }

    /// AES-128-GCM with the given key (HPKE's AES-128-GCM suite, used for the RFC's vectors).
    pub(crate) fn aes128(key: &[u8; 16]) -> Result<Self, AeadFailure> {
        UnboundKey::new(&AES_128_GCM, key)
            .map(|k| Self(LessSafeKey::new(k)))
            .map_err(|_| AeadFailure)
    }

    /// Encrypts `in_out` in place and returns the tag.
    pub(crate) fn seal_in_place(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], AeadFailure> {
        let tag = self
            .0
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), in_out)
            .map_err(|_| AeadFailure)?;
        <[u8; TAG_LEN]>::try_from(tag.as_ref()).map_err(|_| AeadFailure)
    }

    /// Authenticates and decrypts `in_out` in place. On failure the contents of `in_out` are
    /// unspecified: callers discard (and wipe) the buffer.
    pub(crate) fn open_in_place(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        tag: &[u8; TAG_LEN],
        in_out: &mut [u8],
    ) -> Result<(), AeadFailure> {
        self.0
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                tag,
                in_out,
            )
            .map(|_| ())
            .map_err(|_| AeadFailure)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// Test case 16 of McGrew and Viega, "The Galois/Counter Mode of Operation (GCM)" (AES-256,
    /// 96-bit IV, AAD and a plaintext that is not a whole number of blocks): checks that key,
    /// nonce, AAD and tag are wired to the primitive the right way round.
    #[test]
    fn aes256_gcm_test_case_16() {
        let key: [u8; 32] = hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
            .try_into()
            .unwrap();
        let nonce: [u8; 12] = hex("cafebabefacedbaddecaf888").try_into().unwrap();
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let plaintext = hex(concat!(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72",
            "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
        ));
        let ciphertext = hex(concat!(
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa",
            "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
        ));
        let tag = hex("76fc6ece0f4e1768cddf8853bb2d551b");

        let key = AesGcmKey::aes256(&key).unwrap();
        let mut buf = plaintext.clone();
        let got_tag = key.seal_in_place(nonce, &aad, &mut buf).unwrap();
        assert_eq!(buf, ciphertext);
        assert_eq!(got_tag.to_vec(), tag);

        key.open_in_place(nonce, &aad, &got_tag, &mut buf).unwrap();
        assert_eq!(buf, plaintext);

        let mut bad_tag = got_tag;
        bad_tag[0] ^= 1;
        let mut buf = ciphertext.clone();
        assert_eq!(
            key.open_in_place(nonce, &aad, &bad_tag, &mut buf),
            Err(AeadFailure)
        );
        let mut buf = ciphertext;
        assert_eq!(
            key.open_in_place(nonce, b"other aad", &got_tag, &mut buf),
            Err(AeadFailure)
        );
    }

    fn hex(s: &str) -> Vec<u8> {
        ::hex::decode(s).unwrap()
    }
}

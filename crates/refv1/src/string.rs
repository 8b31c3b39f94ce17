//! The per-string construction: a random prefix that pads the value to whole AES blocks, a
//! MAC-derived `msg_key`, and AES-256-CBC without padding under a key derived from that
//! `msg_key`.

use aes::Aes256;
use aes::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{RefV1Error, Result};
use crate::keys::SharedSecret;

const BLOCK: usize = 16;
/// Bytes of the `msg_key` that starts every ciphertext.
pub const MSG_KEY_LEN: usize = 16;
/// The label HMAC'd under the shared secret to get the encryption and MAC keys.
const KEY_LABEL: &[u8] = b"tde2e_encrypt_data";
/// Most random bytes one string's prefix takes (the rule gives 16..=31).
pub const MAX_PREFIX_LEN: usize = 31;

/// The prefix length for a plaintext of `len` bytes: ((16 + 15 + len) & !15) − len, so that
/// prefix ‖ plaintext is a whole number of blocks and the prefix is 16..=31 bytes.
pub fn prefix_len(len: usize) -> usize {
    ((BLOCK + (BLOCK - 1) + len) & !(BLOCK - 1)) - len
}

/// Encrypts and decrypts single strings under one [`SharedSecret`].
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct StringCipher {
    enc_key: [u8; 32],
    mac_key: [u8; 32],
}

impl std::fmt::Debug for StringCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StringCipher").finish_non_exhaustive()
    }
}

fn hmac512(key: &[u8], parts: &[&[u8]]) -> Zeroizing<[u8; 64]> {
    // HMAC accepts keys of any length: new_from_slice cannot fail for it.
    let mut mac = match Hmac::<Sha512>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    for part in parts {
        mac.update(part);
    }
    Zeroizing::new(mac.finalize().into_bytes().into())
}

impl StringCipher {
    /// K = HMAC-SHA512(secret, "tde2e_encrypt_data"); encryption key K[0..32], MAC key K[32..64].
    pub fn new(secret: &SharedSecret) -> Self {
        let k = hmac512(secret.as_bytes(), &[KEY_LABEL]);
        let mut enc_key = [0u8; 32];
        let mut mac_key = [0u8; 32];
        enc_key.copy_from_slice(&k[..32]);
        mac_key.copy_from_slice(&k[32..]);
        Self { enc_key, mac_key }
    }

    /// msg_key = HMAC-SHA256(MAC key, data ‖ extra ‖ u32 LE len(extra))[0..16]; `extra` is empty
    /// in request bodies.
    fn msg_key(&self, data: &[u8]) -> [u8; MSG_KEY_LEN] {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.mac_key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(data);
        mac.update(&0u32.to_le_bytes());
        let full: [u8; 32] = mac.finalize().into_bytes().into();
        let mut out = [0u8; MSG_KEY_LEN];
        out.copy_from_slice(&full[..MSG_KEY_LEN]);
        out
    }

    /// H = HMAC-SHA512(enc key, msg_key): AES key H[0..32], IV H[32..48].
    fn block_cipher(&self, msg_key: &[u8; MSG_KEY_LEN]) -> (Aes256, [u8; BLOCK]) {
        let h = hmac512(&self.enc_key, &[msg_key]);
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&h[..32]);
        let mut iv = [0u8; BLOCK];
        iv.copy_from_slice(&h[32..48]);
        (Aes256::new(&Array::from(*key)), iv)
    }

    /// Encrypt `plaintext`, taking the prefix's random bytes from `random` (only the first
    /// [`prefix_len`] bytes are used; the first of them is replaced by the length). Returns
    /// msg_key ‖ CBC(prefix ‖ plaintext).
    pub fn encrypt_with(&self, plaintext: &[u8], random: &[u8; MAX_PREFIX_LEN]) -> Vec<u8> {
        let prefix = prefix_len(plaintext.len());
        let mut data = Zeroizing::new(Vec::with_capacity(prefix + plaintext.len()));
        data.extend_from_slice(&random[..prefix]);
        // prefix is at most 31: it fits the byte.
        data[0] = prefix as u8;
        data.extend_from_slice(plaintext);
        self.seal_data(&data)
    }

    /// msg_key ‖ CBC(data) for data that is already prefix ‖ plaintext.
    fn seal_data(&self, data: &[u8]) -> Vec<u8> {
        let msg_key = self.msg_key(data);
        let (cipher, iv) = self.block_cipher(&msg_key);

        let mut out = Vec::with_capacity(MSG_KEY_LEN + data.len());
        out.extend_from_slice(&msg_key);
        let mut chain = iv;
        for chunk in data.chunks_exact(BLOCK) {
            let mut block = [0u8; BLOCK];
            for (b, (p, c)) in block.iter_mut().zip(chunk.iter().zip(chain.iter())) {
                *b = p ^ c;
            }
            let mut block = Array::from(block);
            cipher.encrypt_block(&mut block);
            chain.copy_from_slice(&block);
            out.extend_from_slice(&block);
        }
        out
    }

    /// Encrypt with fresh prefix bytes from `rng`.
    pub fn encrypt<R: rand_core::TryCryptoRng + ?Sized>(
        &self,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>> {
        let mut random = Zeroizing::new([0u8; MAX_PREFIX_LEN]);
        rng.try_fill_bytes(&mut random[..])
            .map_err(|_| RefV1Error::Random)?;
        Ok(self.encrypt_with(plaintext, &random))
    }

    /// Decrypt msg_key ‖ CBC(data): the MAC is checked in constant time before the prefix is
    /// read, then 16 ≤ prefix length ≤ data length.
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>> {
        let len = ciphertext.len();
        if len < MSG_KEY_LEN + BLOCK || !(len - MSG_KEY_LEN).is_multiple_of(BLOCK) {
            return Err(RefV1Error::CiphertextLength { len });
        }
        let (head, body) = ciphertext.split_at(MSG_KEY_LEN);
        let mut msg_key = [0u8; MSG_KEY_LEN];
        msg_key.copy_from_slice(head);
        let (cipher, iv) = self.block_cipher(&msg_key);

        let mut data = Zeroizing::new(Vec::with_capacity(body.len()));
        let mut chain = iv;
        for chunk in body.chunks_exact(BLOCK) {
            let mut block = [0u8; BLOCK];
            block.copy_from_slice(chunk);
            let mut arr = Array::from(block);
            cipher.decrypt_block(&mut arr);
            for (d, c) in arr.iter().zip(chain.iter()) {
                data.push(d ^ c);
            }
            chain = block;
        }
        let expected = self.msg_key(&data);
        if !bool::from(expected.ct_eq(&msg_key)) {
            return Err(RefV1Error::BadMac);
        }
        let prefix = usize::from(data[0]);
        if prefix < 16 || prefix > data.len() {
            return Err(RefV1Error::PrefixLength {
                prefix,
                data_len: data.len(),
            });
        }
        Ok(data[prefix..].to_vec())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::keys::{Direction, Ed25519Seed};

    fn cipher() -> StringCipher {
        let a = Ed25519Seed::from_bytes([1; 32]);
        let b = Ed25519Seed::from_bytes([2; 32]);
        let s = SharedSecret::derive(&a, &b.public(), "bm9uY2U=", Direction::ClientToWorker, "r")
            .expect("secret");
        StringCipher::new(&s)
    }

    #[test]
    fn prefix_rule_pads_to_blocks_with_16_to_31_bytes() {
        for len in 0..200 {
            let p = prefix_len(len);
            assert!((16..=31).contains(&p), "len {len} prefix {p}");
            assert_eq!((p + len) % 16, 0);
        }
    }

    #[test]
    fn tampering_is_refused_as_bad_mac() {
        let c = cipher();
        let mut ct = c.encrypt_with(b"hello world", &[7; 31]);
        assert_eq!(c.decrypt(&ct).expect("opens"), b"hello world");
        let last = ct.len() - 1;
        ct[last] ^= 1;
        assert_eq!(c.decrypt(&ct), Err(RefV1Error::BadMac));
        ct[last] ^= 1;
        ct[0] ^= 1;
        assert_eq!(c.decrypt(&ct), Err(RefV1Error::BadMac));
    }

    #[test]
    fn prefix_lengths_outside_the_rule_are_refused_after_the_mac() {
        let c = cipher();
        let mut data = vec![9u8; 32];
        data[0] = 15;
        assert_eq!(
            c.decrypt(&c.seal_data(&data)),
            Err(RefV1Error::PrefixLength {
                prefix: 15,
                data_len: 32
            })
        );
        data[0] = 33;
        assert_eq!(
            c.decrypt(&c.seal_data(&data)),
            Err(RefV1Error::PrefixLength {
                prefix: 33,
                data_len: 32
            })
        );
        data[0] = 32;
        assert_eq!(c.decrypt(&c.seal_data(&data)).expect("empty value"), b"");
    }

    #[test]
    fn lengths_that_are_not_blocks_are_refused() {
        let c = cipher();
        for len in [0, 15, 16, 17, 31, 33, 47] {
            assert_eq!(
                c.decrypt(&vec![0; len]),
                Err(RefV1Error::CiphertextLength { len })
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_string_round_trips(plain in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
                                  random in proptest::array::uniform31(proptest::num::u8::ANY)) {
            let c = cipher();
            let ct = c.encrypt_with(&plain, &random);
            proptest::prop_assert_eq!(ct.len(), MSG_KEY_LEN + prefix_len(plain.len()) + plain.len());
            proptest::prop_assert_eq!(c.decrypt(&ct).expect("opens"), plain);
        }
    }
}

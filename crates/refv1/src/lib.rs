//! The reference's own request encryption (`"is_encrypted": "v1"`), so that our nodes can
//! interoperate with reference clients and proxies that use it.
//!
//! # Why a crate of its own
//!
//! `cocoon-seal` exists to keep requests from the proxy: a worker's sealing key is bound into its
//! attestation and never leaves the TEE. This scheme is the opposite: its Ed25519 keys come from
//! the reference's key manager, which hands the private keys to workers **and proxies**, so any
//! proxy can read a request. Keeping it out of `seal` keeps that crate's one promise true, and
//! keeps the two key types from ever being confused. Our sealed requests stay the default between
//! our nodes; this one is spoken only when a reference peer asks for it.
//!
//! # The scheme
//!
//! * **Keys** ([`keys`]): Ed25519 seeds and public keys, converted to X25519 (the private key as
//!   Ed25519 expands it: SHA-512 of the seed, lower half clamped; the public key by the
//!   birational map u = (1 + y) / (1 − y)). Per request and direction,
//!   secret = SHA-256(X25519 point ‖ `encryption_nonce` text ‖ `"c"` or `"w"`).
//! * **Strings** ([`string`]): data = prefix ‖ plaintext, prefix of
//!   ((16 + 15 + len) & !15) − len random bytes whose first byte is its length; keys from
//!   HMAC-SHA512(secret, "tde2e_encrypt_data"); msg_key = HMAC-SHA256(MAC key, data ‖ 0u32 LE)
//!   truncated to 16 bytes; AES-256-CBC (no padding) under HMAC-SHA512(enc key, msg_key).
//!   Ciphertext = msg_key ‖ CBC(data). Opening checks the MAC in constant time, then
//!   16 ≤ prefix ≤ data length.
//! * **Bodies** ([`body`]): which JSON values are encrypted and the four fields the scheme adds.
//! * **Answers** ([`answer`]): answer bodies, whole or as server-sent events, in pieces.
//!
//! # Conventions
//!
//! Pure code: no I/O, no clock; every random byte comes from the caller's
//! [`rand_core::TryCryptoRng`]. Secrets are wiped on drop. No input makes it panic: every refusal
//! is a [`RefV1Error`]. Known-answer vectors produced by an independent Python implementation
//! (`scripts/interop/refv1_vectors.py`) are checked in `tests/vectors.rs`.

#![forbid(unsafe_code)]

pub mod answer;
pub mod body;
mod error;
pub mod keys;
pub mod string;

pub use answer::{AnswerDecryptor, AnswerEncryptor, AnswerFraming};
pub use body::{
    AnswerCipher, EncryptedRequest, OpenedRequest, encrypt_request, is_encrypted, open_request,
    parse_body,
};
pub use error::{RefV1Error, Result};
pub use keys::{Direction, Ed25519Public, Ed25519Seed, SharedSecret};
pub use string::StringCipher;

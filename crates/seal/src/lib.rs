//! Sealed-channel cryptography: HPKE envelopes and sealed chunk streams, so that a request can
//! travel client → proxy → worker and its answer back without the proxy reading either.
//!
//! # Where this sits
//!
//! A worker runs in a TEE and publishes an X25519 [`SealingPublicKey`] bound into its attestation
//! (the `attest` crate puts it in the report data). The proxy relays the attested keys of a few
//! candidate workers to the client. The client then:
//!
//! 1. seals the request body into one [`Envelope`] addressed to k candidates
//!    ([`Envelope::seal`]); the proxy sees the recipients' [`KeyId`]s and sizes, nothing else, and
//!    forwards the envelope to whichever candidate it picks;
//! 2. keeps the [`ReplyKeys`] it got back, one per candidate.
//!
//! The chosen worker opens the envelope with its key pair ([`Envelope::open`]), which also gives
//! it a [`ReplyKey`]. It streams the answer back as sealed chunks ([`ChunkSealer`]); the client
//! reads them with a [`ChunkOpener`] made from the reply key of that worker.
//!
//! # Design
//!
//! * **HPKE** ([`hpke`]): RFC 9180 with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and AES-256-GCM,
//!   written here on `hkdf` and `sha2`, with X25519 and AES-GCM from `aws-lc-rs` (chosen for
//!   throughput; measured in `docs/sealing.md`) behind one crate-private seam. All four
//!   modes and secret export are implemented; the same code instantiated with AES-128-GCM passes
//!   the RFC's appendix A.1 vectors, and the AES-256-GCM suite is cross-checked in both
//!   directions against the independent Python implementation `pyhpke` (fixtures under
//!   `tests/fixtures/`, so tests need no Python).
//! * **Envelope** ([`envelope`]): one random content key seals the body once (AES-256-GCM);
//!   the content key is wrapped by HPKE base mode for each recipient. The body's associated data
//!   covers the whole header, so the proxy can neither drop nor add recipients, and a key
//!   commitment in the header makes the envelope key-committing. Layout is versioned and every
//!   length is checked against the input before anything is decrypted.
//! * **Reply keys**: the reply key of recipient i is exported from *that recipient's* HPKE
//!   context, so the client and recipient i share it and nobody else does — not the proxy, and not
//!   the other candidates, which all learn the content key but not each other's HPKE secrets.
//! * **Chunk streams** ([`stream`]): per-stream key from the reply key and a random
//!   [`StreamId`]; nonce = base nonce XOR the 64-bit sequence number; the chunk header (version,
//!   final flag, stream id, sequence number, length) is the AEAD's associated data. The opener is
//!   a fail-closed state machine that tells apart tampering, splicing from another stream,
//!   duplicates, out-of-order chunks, chunks after the final one, and truncation (which it can only
//!   see when told that the transport ended: [`ChunkOpener::finish`]).
//!
//! * **Keys at rest** ([`key_source`], [`key_file`]): a [`KeySource`] derives per-purpose
//!   32-byte keys bound to the platform and the code's measurement — [`SevSnpKeySource`]
//!   (`MSG_KEY_REQ` through `/dev/sev-guest`), [`TdxHelperKeySource`] (a key helper that verifies
//!   a TD quote; this crate is the TD's side) or [`SimulatedKeySource`] (software, reports itself
//!   as simulated). A [`SealedKeyFile`] keeps one 32-byte node secret (the proxy's voucher key, a
//!   worker's wallet and sealing keys) encrypted on disk under such a key, with a header naming
//!   the source kind, the secret kind and the purpose: [`SealedKeyFile::open_or_create`].
//!
//! # Conventions
//!
//! The envelope, stream and HPKE code is sans-IO: it touches no sockets, files or clocks. Only
//! the key sources and the file functions of [`SealedKeyFile`] talk to the operating system.
//! Every random value comes from a caller-supplied RNG (`rand_core` 0.10
//! [`rand_core::TryCryptoRng`]; [`SystemRng`] outside tests), except the one-time reply key and
//! nonce of a TDX key request and temporary file names, which use [`SystemRng`]. All secrets
//! (private keys, content keys, reply keys, stream keys, derived keys) are wiped on drop. No
//! input can make this crate panic: every failure is a [`SealError`] variant. Byte layouts are
//! documented in `docs/sealing.md`.
//!
//! # Example
//!
//! ```
//! use cocoon_seal::{Envelope, SealingKeyPair, SystemRng};
//!
//! # fn main() -> Result<(), cocoon_seal::SealError> {
//! let worker = SealingKeyPair::generate(&mut SystemRng)?;
//! let recipients = [(worker.key_id(), worker.public())];
//!
//! // Client: seal the request, keep the reply keys.
//! let sealed = Envelope::seal(&recipients, b"route metadata", b"prompt", &mut SystemRng)?;
//!
//! // Worker: open it and stream the answer back.
//! let opened = Envelope::open(&sealed.bytes, worker.key_id(), &worker, b"route metadata")?;
//! assert_eq!(opened.plaintext, b"prompt");
//! let mut sealer = opened.reply_key.sealer(&mut SystemRng)?;
//! let chunks = [sealer.seal(b"Hello, ")?, sealer.seal_final(b"world")?];
//!
//! // Client: read the answer with the reply key of the worker that answered.
//! let mut opener = sealed.reply_keys.get(&worker.key_id()).expect("recipient").opener();
//! let mut answer = Vec::new();
//! for chunk in &chunks {
//!     answer.extend(opener.open(chunk)?.plaintext);
//! }
//! opener.finish()?;
//! assert_eq!(answer, b"Hello, world");
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod aead;
pub mod envelope;
pub mod error;
pub mod hpke;
pub mod key_file;
pub mod key_source;
pub mod keys;
mod random;
pub mod sealed_blob;
pub mod stream;

pub use envelope::{
    Envelope, EnvelopeView, OpenedEnvelope, RecipientEntry, ReplyKeys, SealedEnvelope,
};
pub use error::{Result, SealError};
pub use key_file::{OpenedKey, SealedKeyFile, SecretKind};
pub use key_source::{
    DerivedKey, KeyPurpose, KeySource, KeySourceKind, SevSnpKeySource, SimulatedKeySource,
    SnpKeyPolicy, TdQuoteSource, TdxHelperKeySource,
};
pub use keys::{KeyId, SealingKeyPair, SealingPublicKey};
pub use rand_core;
pub use random::SystemRng;
pub use sealed_blob::SealedBlob;
pub use stream::{ChunkInfo, ChunkOpener, ChunkSealer, ChunkView, OpenedChunk, ReplyKey, StreamId};

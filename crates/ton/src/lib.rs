//! TON settlement primitives for cocoon-rs, without any I/O: cells and BOCs, addresses,
//! wallets V4R2/V5R1, every message our contracts accept, typed views of their state, and the
//! signed vouchers that form the payment channel between a proxy and its clients and workers.
//!
//! # Design
//!
//! The crate is a pure codec and signing layer in the style of `quinn-proto`: it never touches
//! the network or a clock. A chain backend (toncenter, a liteserver) fetches account data and
//! get-method results and hands the bytes here; the proxy, client and worker roles build
//! message bodies and vouchers here and hand the signed BOCs to that backend.
//!
//! - [`cell`] and [`boc`]: cells with their representation hash computed once at build time,
//!   and a bag-of-cells codec that checks every byte of untrusted input (typed [`Error`]s,
//!   limits, no panics) and writes BOCs byte for byte like `@ton/core`.
//! - [`address`]: standard addresses, raw and user-friendly forms.
//! - [`message`]: `StateInit` (hash = address), internal and external messages, the TEP-467
//!   normalized hash used to find a sent message's transaction.
//! - [`wallet`]: V4R2 and V5R1 addresses and signed transfers.
//! - [`contracts`]: the embedded compiled code of the root, proxy, client and worker
//!   contracts, parameters, child address derivation, data-cell and get-method views.
//! - [`messages`]: builders and parsers for every body (client, worker, proxy, root,
//!   notifications, the register log).
//! - [`voucher`]: signing and checking vouchers and ledger anchors exactly as the contracts do.
//! - [`dict`]: reading TVM dictionaries (the root's lists).
//!
//! Cross-implementation test vectors generated with `@ton/core` (`contracts/scripts/vectors.mjs`,
//! committed as `tests/data/vectors.json`) pin hashes, addresses, signatures and BOCs.
//!
//! Why not `tlb-ton`: its BOC decoder (0.11) panics on a 14-byte input whose reference index
//! is out of range, hashes shared subtrees once per path (exponential time on hostile DAGs),
//! orders multi-cell BOCs by hash-set iteration and encodes the all-zero basechain address as
//! `addr_none`. It stays a dev-dependency: the tests check our hashes and addresses against it.

pub mod address;
pub mod boc;
pub mod cell;
pub mod contracts;
pub mod dict;
mod error;
pub mod message;
pub mod messages;
pub mod voucher;
pub mod wallet;

pub use address::{Address, FriendlyFlags};
pub use cell::{Cell, CellBuilder, CellSlice};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use error::{Error, Result};
pub use message::{ExternalMessage, InternalMessage, SendMode, StateInit};
pub use voucher::{LedgerAnchor, SignedMessage, Voucher, VoucherKind, VoucherPayload};
pub use wallet::{OutgoingMessage, SignedTransfer, Transfer, WalletV4R2, WalletV5R1};

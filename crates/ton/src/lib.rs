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
//! # Example: a client pays into a proxy, the proxy charges it
//!
//! ```
//! use cocoon_ton::{
//!     contracts::{self, gas, Params, ParamsCore},
//!     messages::ClientMessage,
//!     Address, InternalMessage, OutgoingMessage, SigningKey, Transfer, Voucher, VoucherKind,
//!     VoucherPayload, WalletV5R1,
//! };
//!
//! # fn main() -> cocoon_ton::Result<()> {
//! // the proxy's parameters as read from its contract (here: built locally)
//! let params = Params::with_embedded_codes(ParamsCore {
//!     struct_version: 1, params_version: 1, unique_id: 42, is_test: true,
//!     price_per_token: 1000, worker_fee_per_token: 800,
//!     prompt_multiplier: 10000, cached_multiplier: 1000,
//!     completion_multiplier: 80000, reasoning_multiplier: 80000,
//!     proxy_delay_before_close: 172_800, client_delay_before_close: 86_400,
//!     min_proxy_stake: 10_000_000_000, min_client_stake: 1_000_000_000,
//! })?;
//! let proxy_key = SigningKey::from_bytes(&[7; 32]);
//! let proxy_public = proxy_key.verifying_key().to_bytes();
//! let proxy: Address = "0:551c032a3ea5186213cd26cd909e3d70681a62619d0afe6a6840d845a46ac7a7".parse()?;
//!
//! // the client's wallet and its client contract at that proxy
//! let wallet_key = SigningKey::from_bytes(&[1; 32]);
//! let wallet = WalletV5R1::new(wallet_key.verifying_key().to_bytes());
//! let owner = wallet.address()?;
//! let client_init = contracts::client_state_init(&owner, &proxy, &proxy_public, &params)?;
//! let client = client_init.address(0)?;
//!
//! // top up 5 TON, deploying the client contract with the first message
//! let amount = 5_000_000_000;
//! let body = ClientMessage::TopUp { query_id: 1, amount, send_excesses_to: owner }.to_cell()?;
//! let mut top_up = InternalMessage::new(client, amount + gas::CHAIN_GAS + gas::MIN_CHILD_BALANCE, body);
//! top_up.state_init = Some(client_init);
//! let transfer = Transfer {
//!     seqno: 0,
//!     valid_until: 1_700_000_600,
//!     messages: vec![OutgoingMessage::new(top_up)],
//! };
//! let signed = wallet.sign_transfer(&wallet_key, &transfer)?;
//! let boc: Vec<u8> = signed.to_boc()?; // for sendBoc
//! assert!(!boc.is_empty());
//!
//! // after some requests the proxy signs the cumulative count; the client checks it and may
//! // submit it (anyone may) with the left-over gas coming back to its wallet
//! let voucher = Voucher::sign(
//!     VoucherPayload::new(VoucherKind::ClientCharge, 2, 300_000, client),
//!     &proxy_key,
//! )?;
//! voucher.check(&proxy_public, VoucherKind::ClientCharge, &client)?;
//! let _submit = InternalMessage::new(client, gas::LOCAL_GAS * 5, voucher.to_message_body(&owner)?);
//! # Ok(())
//! # }
//! ```
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

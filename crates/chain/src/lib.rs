//! TON chain access for COCOON roles: one async [`Chain`] trait with two backends, and the read
//! of the root registry that every role needs.
//!
//! # Backends
//!
//! - [`EmulatedChain`] (local mode, tests): a Node.js sidecar runs `@ton/sandbox` with the real
//!   compiled contracts from `contracts/build/*.json`; this crate talks to it over JSON lines.
//!   It adds what only an emulator can do: funded local wallets, deploys, a settable clock,
//!   snapshots. Contract logic is never re-implemented in Rust, so local mode and tests run
//!   exactly the code that runs on chain. `docs/chain.md` explains the choice and its costs
//!   (start time, per-message latency).
//! - [`Toncenter`] (testnet, mainnet): the toncenter HTTP API (v2 for accounts, get-methods and
//!   sending; v3 for transactions and the masterchain head) over reqwest + rustls (ring), with
//!   an API key header, a client-side rate limiter and retries with backoff on 429 and 5xx.
//!
//! # Design
//!
//! - Cells, addresses, messages and stack values are `cocoon-ton`'s ([`Cell`], [`Address`],
//!   [`InternalMessage`], [`StackValue`]): a wallet transfer signed there is what
//!   [`Chain::send_external`] takes, and get-method results go straight to its typed readers
//!   (`ProxyData::from_stack`, ...).
//! - Whatever comes back from another process or the network (JSON, BOCs, stack values) is
//!   parsed into typed values with typed errors ([`ChainError`]); BOCs are decoded by
//!   `cocoon-ton`'s bounded decoder.
//! - [`read_registry`] reads the root account and parses it into a [`Registry`] (`cocoon-ton`'s
//!   `RootState`): allowed image and model hashes, registered proxies and the parameters,
//!   prices included.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cocoon_chain::ChainError> {
//! use cocoon_chain::{Chain, EmulatedChain, TON};
//! let chain = EmulatedChain::spawn().await?;
//! let wallet = chain.create_wallet("owner", 100 * TON).await?;
//! let state = chain.account(&wallet).await?;
//! assert!(state.balance > 0);
//! # Ok(()) }
//! ```

mod chain;
mod contracts;
mod emulated;
pub mod emulator;
mod error;
pub mod operator;
mod prices;
mod registry;
mod stack;
mod toncenter;
mod types;

pub use chain::{Chain, ChainFuture};
pub use contracts::{BUILT_CONTRACTS_DIR, CONTRACTS_DIR_ENV, CompiledContract, ContractsDir};
pub use emulated::{Deployment, EmulatedChain, NODE_ENV, SidecarOptions, SnapshotId};
pub use error::ChainError;
pub use prices::{
    booking_prices, check_pricing, contract_pricing, proxy_contract_pricing, worker_terms,
};
pub use registry::{Registry, RegistryFollower, RegistrySettings, RegistryStatus, read_registry};
pub use stack::{GetMethodResult, StackReader, arg};
pub use toncenter::{Toncenter, ToncenterConfig};
pub use types::{
    AccountState, AccountStatus, ChainStatus, ComputePhase, ExternalLog, MessageKind,
    MessageSummary, Nanotons, SendReceipt, TON, Transaction, TransactionId, parse_address,
};

pub use cocoon_ton::contracts::StackValue;
pub use cocoon_ton::{Address, Cell, InternalMessage, StateInit};

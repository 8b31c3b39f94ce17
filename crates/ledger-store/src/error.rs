//! The one error type of the crate: every way the ledger store can refuse or fail an operation,
//! the market's own refusals included.

use cocoon_market::{MarketError, PricingParams};

/// Why the ledger store refused or failed an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The market's rules refused the operation (an unknown client, an insufficient balance, an
    /// amount that overflows).
    #[error(transparent)]
    Market(#[from] MarketError),

    /// No anchor with this seqno was prepared.
    #[error("no anchor with seqno {0}")]
    UnknownAnchor(u32),

    /// Anchor seqnos are 32-bit on chain and the last one was used.
    #[error("the anchor seqno space is exhausted")]
    AnchorSeqnoExhausted,

    /// The store URL cannot be used.
    #[error("invalid ledger store URL: {0}")]
    InvalidStoreUrl(String),

    /// The database failed (connection, I/O, constraint, migration).
    #[error("ledger store error while {context}: {detail}")]
    Storage {
        /// What the store was doing.
        context: &'static str,
        /// The database's message.
        detail: String,
    },

    /// Opening a store for inspection found no ledger where it was pointed.
    #[error("no ledger store: {0}")]
    StoreNotFound(String),

    /// A write was asked of a store opened for inspection only.
    #[error("the ledger store was opened for inspection: it refuses writes")]
    ReadOnlyStore,

    /// A stored value breaks the schema's rules (a negative amount, a hash of the wrong size).
    #[error("corrupt ledger store: {0}")]
    CorruptStore(String),

    /// An amount does not fit in the store's signed 64-bit columns.
    #[error("{0} exceeds the ledger store's range (2^63 - 1)")]
    StorageRange(&'static str),

    /// The store was opened with other prices than the ones it was created with (a proxy
    /// contract never changes its prices).
    #[error("the ledger store was created with pricing {stored:?}, it is opened with {given:?}")]
    StoredPricingMismatch {
        /// The prices in the store.
        stored: Box<PricingParams>,
        /// The prices given at open.
        given: Box<PricingParams>,
    },

    /// Recomputing the totals from the request records disagrees with the account totals.
    #[error(
        "ledger audit failed: {quantity} is {from_records} by the request records, {from_accounts} by the accounts"
    )]
    AuditMismatch {
        /// Which total.
        quantity: &'static str,
        /// The sum over the request records.
        from_records: u128,
        /// The sum over the accounts.
        from_accounts: u128,
    },
}

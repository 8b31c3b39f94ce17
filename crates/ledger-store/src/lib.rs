//! The proxy's books on disk: the same accounting rules as the in-memory [`Ledger`](cocoon_market::Ledger),
//! kept in SQLite (a file, the default) or PostgreSQL, so that charges, voucher totals and anchors
//! survive a restart.
//!
//! # Opening
//!
//! [`LedgerStore::connect`] takes a file path (the file and its directory are created if
//! missing) or `sqlite:PATH`, put in WAL mode with full syncs; `sqlite::memory:` for a
//! throw-away store; or a
//! `postgres://user:password@host:port/database` URL. The schema migrations of the backend
//! (embedded in the binary, `migrations/sqlite` and `migrations/postgres` in the crate) run at
//! open. A store remembers the prices it was created with and refuses to open with others.
//!
//! One proxy process owns one database: opening it clears every reservation (see below).
//! [`LedgerStore::inspect`] opens it beside that process, for audits and listings: it creates
//! nothing, takes the prices from the store, leaves reservations alone and refuses writes.
//!
//! # Tables
//!
//! - `client_accounts`: one row per client contract. The chain's view (`balance`, `stake`,
//!   `tokens_on_chain`), the cumulative `tokens_used` (the total of the client's next charge
//!   voucher), `reserved_tokens` held by requests in flight, and nanoTON totals deposited,
//!   charged and lost to shortfall.
//! - `worker_accounts`: one row per worker contract: cumulative `tokens_earned` (the total of its
//!   next payout voucher), `tokens_paid` (what its contract already paid out), nanoTON credited,
//!   commission earned on its work, and paid out.
//! - `requests`: one row per request id (unique): a reservation while the request is in flight,
//!   then the charge record (client, worker, token counts per category, adjusted and charged
//!   tokens, client charge, worker credit, proxy commission, the cumulative totals afterwards,
//!   times), which never changes again.
//! - `ledger_anchors`: the seqno and state hash of every anchor (see below).
//!
//! # Guarantees
//!
//! - A charge books the client, the worker and the request record in **one transaction**: all of
//!   it is stored, or none.
//! - Charging is **idempotent by request id**: charging an id again returns the first charge's
//!   record ([`ChargeReceipt::replayed`]) and changes nothing, also when the two charges race
//!   from different tasks or processes.
//! - Money adds up exactly: for every request, and so for the totals,
//!   `client charge + shortfall = worker credit + proxy commission` in nanoTON, checked with
//!   overflow-checked integer arithmetic; [`LedgerStore::audit`] recomputes the totals from the
//!   request records and compares them with the accounts.
//! - Many writes, one sync: [`LedgerStore::write_batch`] applies reservations, releases and
//!   charges in one transaction, each under its own savepoint (a refused write changes nothing,
//!   the rest commit together), and [`CommitQueue`] gathers the writes of concurrent requests
//!   into such batches, so a busy proxy syncs its disk once per batch. An answer is given only
//!   once its batch is committed. A batch holding only reservations and releases is not waited
//!   on to the disk (on an SQLite file; see the next section): it is synced with the next
//!   batch that charges, so a charge is durable when its answer is given.
//! - Amounts are stored as signed 64-bit integers: a value above `2^63 − 1` is refused with
//!   [`StoreError::StorageRange`] rather than wrapped (that is 9.2 billion TON).
//!
//! # Reservations do not survive a restart
//!
//! A reservation holds a client's balance for a request in flight. The connection that request
//! came on dies with the process, so the request can never be charged or released: reservations
//! are dropped ([`LedgerStore::reservations_cleared_at_open`]) and every client's
//! `reserved_tokens` set to zero whenever a store is opened. Their request ids are free again.
//! For the same reason a write of reservations alone need not reach the disk before its answer:
//! losing it in a crash loses nothing the next open would keep.
//!
//! # Anchors and signable totals
//!
//! The proxy anchors its books on chain (`save_state seqno state_hash`) and signs only voucher
//! totals an anchor covers, so a proxy restored from an old backup cannot sign less than it
//! already promised. [`LedgerStore::prepare_anchor`] fixes the next seqno and the state hash
//! (SHA-256 over every account's totals, sorted by id, chained to the previous anchor's hash;
//! layout below) and notes every account's current total as
//! pending; [`LedgerStore::commit_anchor`], called once the chain holds that anchor, makes those
//! totals signable ([`StoredClient::anchored_tokens`], [`StoredWorker::anchored_tokens`]). A
//! later `prepare_anchor` before the commit supersedes the earlier one's pending totals.
//!
//! # State hash
//!
//! SHA-256 over this layout; all integers big-endian, texts UTF-8 preceded by their length in
//! bytes as a `u32`:
//!
//! ```text
//! "cocoon-ledger-state/v1"             22 bytes, domain separation
//! seqno                                u32
//! previous anchor's state hash         32 bytes (zeros for seqno 1)
//! price_per_token, worker_fee_per_token u64, u64
//! client count                         u64
//! per client, ordered by the bytes of its id:
//!     id                               text
//!     state                            u8 (0 open, 1 refund granted)
//!     balance, stake                   u64, u64 (nanoTON)
//!     tokens_on_chain, tokens_used     u64, u64 (adjusted tokens)
//!     shortfall_tokens                 u64
//!     deposited, charged, shortfall    u64 × 3 (nanoTON)
//!     requests                         u64
//! worker count                         u64
//! per worker, ordered by the bytes of its id:
//!     id                               text
//!     tokens_earned, tokens_paid       u64, u64 (adjusted tokens)
//!     credited, commission, paid       u64 × 3 (nanoTON)
//!     requests                         u64
//! ```
//!
//! Reservations are left out (they belong to requests in flight and do not survive a restart),
//! and so are times and the anchor bookkeeping columns: the hash covers money and voucher totals
//! only. Chaining the previous anchor's hash makes a hash commit to the whole anchor history.
//!
//! # Refunds and payouts
//!
//! [`LedgerStore::grant_refund`] answers a client's `request_refund`: it freezes the client's
//! final count (no request may be in flight), returns what the grant voucher carries and refuses
//! any later reservation or charge for that client. [`LedgerStore::record_worker_payout`] takes
//! in a worker contract's paid-out count read from the chain.

mod batch;
mod db;
mod error;
mod hash;
mod native;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub use batch::{CommitQueue, DEFAULT_MAX_BATCH};
pub use db::BackendKind;
pub use error::StoreError;
pub use hash::STATE_HASH_DOMAIN;

use cocoon_market::MarketError;
use cocoon_market::ledger::{ChargeRecord, LedgerTotals};
use cocoon_market::pricing::{CategoryTokens, Charge, Coefficient, PricingParams};
use cocoon_market::reservation::{
    Account, AccountBooks, ChainClientState, Reservation, required_tokens,
};
use cocoon_market::{ClientId, RequestId, WorkerAccountId};
use db::{Arg, DbRow, Pools, Tx, db_error, is_transient, locking, to_db};
use hash::{ClientEntry, WorkerEntry, state_hash};

/// How many times a transaction that lost a race (a serialization failure, a deadlock, a
/// concurrent insert of the same request id) is run again before the error is returned.
const MAX_ATTEMPTS: u32 = 8;

/// The most rows one listing call returns.
pub const MAX_PAGE: u32 = 10_000;

/// `requests.state` of a reservation.
const RESERVED: i64 = 0;
/// `requests.state` of a charged request.
const CHARGED: i64 = 1;

/// Where the store reads the time it writes into records: Unix milliseconds.
pub type UnixMillisClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Whether a client may still use its channel.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum ClientState {
    /// Open: it may reserve and be charged.
    Open,
    /// Its refund was granted: its count is final.
    Closing,
}

/// A client account as stored.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct StoredClient {
    /// The client contract.
    pub client: ClientId,
    /// Open or closing.
    pub state: ClientState,
    /// NanoTON the contract holds, as last read from the chain plus deposits seen since.
    pub balance: u64,
    /// The stake, as last read from the chain.
    pub stake: u64,
    /// Cumulative adjusted tokens the chain has already been charged.
    pub tokens_on_chain: u64,
    /// Cumulative adjusted tokens charged: the total of the client's next charge voucher.
    pub tokens_used: u64,
    /// The part of `tokens_used` a committed anchor covers: what may be signed.
    pub anchored_tokens: u64,
    /// Adjusted tokens held by requests in flight.
    pub reserved_tokens: u64,
    /// The cumulative adjusted-token count the balance covers (`tokens_on_chain + balance /
    /// price`): the most the client's charge voucher may reach.
    pub token_limit: u64,
    /// Adjusted tokens a new request may still reserve.
    pub available_tokens: u64,
    /// Cumulative adjusted tokens the client used but could not pay.
    pub shortfall_tokens: u64,
    /// NanoTON of top-ups seen.
    pub deposited_nanoton: u64,
    /// NanoTON charged by requests.
    pub charged_nanoton: u64,
    /// NanoTON the client used but could not pay (the proxy bore it).
    pub shortfall_nanoton: u64,
    /// Requests charged.
    pub requests: u64,
    /// The refund grant, once given.
    pub refund: Option<RefundGrant>,
    /// When the account last changed (Unix ms).
    pub updated_at_ms: u64,
}

/// What a `grant_refund_signed` voucher carries for a closing client.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RefundGrant {
    /// The client.
    pub client: ClientId,
    /// The final cumulative adjusted-token count.
    pub tokens_used: u64,
    /// NanoTON the client gets back once that count is charged on chain.
    pub refund_nanoton: u64,
}

/// A worker account as stored.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct StoredWorker {
    /// The worker contract.
    pub worker: WorkerAccountId,
    /// Cumulative adjusted tokens earned: the total of the worker's next payout voucher.
    pub tokens_earned: u64,
    /// The part of `tokens_earned` a committed anchor covers: what may be signed.
    pub anchored_tokens: u64,
    /// Cumulative adjusted tokens its contract has paid out.
    pub tokens_paid: u64,
    /// NanoTON credited to the worker.
    pub credited_nanoton: u64,
    /// NanoTON of commission the proxy earned on this worker's requests.
    pub commission_nanoton: u64,
    /// NanoTON paid out to the worker on chain.
    pub paid_nanoton: u64,
    /// Requests charged.
    pub requests: u64,
    /// When the account last changed (Unix ms).
    pub updated_at_ms: u64,
}

impl StoredWorker {
    /// Adjusted tokens earned but not yet paid out.
    pub fn unpaid_tokens(&self) -> u64 {
        self.tokens_earned.saturating_sub(self.tokens_paid)
    }
}

/// A charged request as stored.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct ChargedRequest {
    /// Position in the `requests` table (increasing, with gaps).
    pub seq: u64,
    /// The books of the request, as [`Ledger::charge_request`](cocoon_market::Ledger::charge_request)
    /// computes them.
    pub record: ChargeRecord,
    /// NanoTON the client could not pay (`shortfall_tokens × price`).
    pub shortfall_nanoton: u64,
    /// When it was charged (Unix ms).
    pub charged_at_ms: u64,
}

/// A request in flight holding a reservation.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct ReservedRequest {
    /// Position in the `requests` table.
    pub seq: u64,
    /// The request.
    pub request_id: RequestId,
    /// The client whose balance is held.
    pub client: ClientId,
    /// Adjusted tokens held.
    pub tokens: u64,
    /// When the reservation was made (Unix ms).
    pub reserved_at_ms: u64,
}

/// One row of the `requests` table.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum RequestEntry {
    /// In flight.
    Reserved(ReservedRequest),
    /// Charged.
    Charged(ChargedRequest),
}

/// The answer of [`LedgerStore::charge_request`].
#[derive(Clone, PartialEq, Eq, Debug)]
#[must_use]
pub struct ChargeReceipt {
    /// The request's books.
    pub request: ChargedRequest,
    /// `true` when the request id had been charged before: `request` is that first charge and
    /// nothing changed.
    pub replayed: bool,
}

/// One write of a batch (see [`LedgerStore::write_batch`]).
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum LedgerWrite {
    /// [`LedgerStore::reserve`].
    Reserve {
        /// The client whose balance is held.
        client: ClientId,
        /// The request.
        request_id: RequestId,
        /// Adjusted tokens to hold.
        tokens: u64,
    },
    /// [`LedgerStore::release`].
    Release {
        /// The client.
        client: ClientId,
        /// The hold to give back.
        reservation: Reservation,
    },
    /// [`LedgerStore::charge_request`].
    Charge {
        /// Who pays.
        client: ClientId,
        /// Who is credited.
        worker: WorkerAccountId,
        /// The request.
        request_id: RequestId,
        /// What it cost.
        charge: Charge,
    },
}

/// What one write of a batch did.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum LedgerWritten {
    /// The balance is held.
    Reserved(Reservation),
    /// The hold was given back.
    Released,
    /// The request is charged (or was already: see [`ChargeReceipt::replayed`]).
    Charged(ChargeReceipt),
}

/// One anchor of the books.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct Anchor {
    /// The seqno sent on chain (from 1).
    pub seqno: u32,
    /// The state hash sent on chain.
    pub state_hash: [u8; 32],
    /// The previous anchor's state hash (zeros for the first).
    pub previous_hash: [u8; 32],
    /// Client accounts covered.
    pub clients: u64,
    /// Worker accounts covered.
    pub workers: u64,
    /// Charged requests covered.
    pub requests: u64,
    /// When it was prepared (Unix ms).
    pub prepared_at_ms: u64,
    /// When the chain was seen to hold it (Unix ms), if it was.
    pub committed_at_ms: Option<u64>,
}

/// The persistent ledger: SQLite or PostgreSQL behind one interface. Cheap to clone (the clones
/// share the connection pools); every method is one transaction.
#[derive(Clone)]
pub struct LedgerStore {
    pools: Pools,
    kind: BackendKind,
    pricing: PricingParams,
    clock: UnixMillisClock,
    cleared_at_open: u64,
    /// Opened with [`LedgerStore::inspect`]: every write is refused.
    read_only: bool,
}

impl fmt::Debug for LedgerStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LedgerStore")
            .field("backend", &self.kind)
            .field("pricing", &self.pricing)
            .finish_non_exhaustive()
    }
}

/// Why a transaction body stopped.
enum TxError {
    Db(sqlx::Error),
    Market(StoreError),
    /// Lost an insert race; the whole transaction runs again.
    Retry,
}

impl From<sqlx::Error> for TxError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e)
    }
}

impl From<MarketError> for TxError {
    fn from(e: MarketError) -> Self {
        Self::Market(StoreError::Market(e))
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        Self::Market(e)
    }
}

/// Runs `$body` (which uses the transaction `$tx` and yields `Result<T, TxError>`) in a write
/// transaction, committing on success and running it again after a lost race.
macro_rules! write_tx {
    ($store:expr, $context:literal, |$tx:ident| $body:expr) => {{
        let mut attempt = 1u32;
        loop {
            let mut $tx = $store.begin_write().await?;
            let outcome: Result<_, TxError> = $body;
            match outcome {
                Ok(value) => match $tx.commit().await {
                    Ok(()) => break Ok(value),
                    Err(e) if is_transient(&e) && attempt < MAX_ATTEMPTS => {}
                    Err(e) => break Err(db_error($context)(e)),
                },
                Err(e) => {
                    // A failed rollback leaves nothing behind: the connection drops the
                    // transaction when it goes back to the pool.
                    let _ = $tx.rollback().await;
                    match e {
                        TxError::Retry if attempt < MAX_ATTEMPTS => {}
                        TxError::Db(e) if is_transient(&e) && attempt < MAX_ATTEMPTS => {}
                        TxError::Retry => {
                            break Err(StoreError::Storage {
                                context: $context,
                                detail: "too many concurrent attempts on one request id".into(),
                            });
                        }
                        TxError::Db(e) => break Err(db_error($context)(e)),
                        TxError::Market(e) => break Err(e),
                    }
                }
            }
            attempt += 1;
        }
    }};
}

/// Runs `$body` in a read transaction (one snapshot).
macro_rules! read_tx {
    ($store:expr, $context:literal, |$tx:ident| $body:expr) => {{
        let mut $tx = $store.pools.begin_read().await?;
        let outcome: Result<_, TxError> = $body;
        let _ = $tx.rollback().await;
        match outcome {
            Ok(v) => Ok(v),
            Err(TxError::Db(e)) => Err(db_error($context)(e)),
            Err(TxError::Market(e)) => Err(e),
            Err(TxError::Retry) => Err(StoreError::Storage {
                context: $context,
                detail: "a read cannot be retried".into(),
            }),
        }
    }};
}

macro_rules! client_columns {
    () => {
        "client_id, state, balance_nanoton, stake_nanoton, tokens_on_chain, tokens_used, \
         reserved_tokens, shortfall_tokens, deposited_nanoton, charged_nanoton, \
         shortfall_nanoton, requests, anchored_tokens, refund_tokens, refund_nanoton, \
         updated_at_ms"
    };
}

macro_rules! worker_columns {
    () => {
        "worker_id, tokens_earned, tokens_paid, credited_nanoton, commission_nanoton, \
         paid_nanoton, requests, anchored_tokens, updated_at_ms"
    };
}

macro_rules! request_columns {
    () => {
        "seq, request_id, state, client_id, worker_id, reserved_tokens, coefficient, \
         prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens, adjusted_tokens, \
         charged_tokens, shortfall_tokens, client_charge_nanoton, shortfall_nanoton, \
         worker_credit_nanoton, commission_nanoton, client_tokens_used, worker_tokens_earned, \
         reserved_at_ms, charged_at_ms"
    };
}

macro_rules! anchor_columns {
    () => {
        "seqno, state_hash, previous_hash, clients, workers, requests, prepared_at_ms, \
         committed_at_ms"
    };
}

fn system_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn overflow(what: &'static str) -> StoreError {
    StoreError::Market(MarketError::Overflow(what))
}

impl LedgerStore {
    /// Opens (creating if needed) the store `url` names, runs the migrations, checks the stored
    /// prices against `pricing` (recording them in a new store) and clears the reservations a
    /// previous process left (see the module docs).
    pub async fn connect(url: &str, pricing: PricingParams) -> Result<Self, StoreError> {
        pricing.validate()?;
        let (pools, kind) = Pools::connect(url, true).await?;
        let mut store = Self {
            pools,
            kind,
            pricing,
            clock: Arc::new(system_clock),
            cleared_at_open: 0,
            read_only: false,
        };
        match store.open_books().await {
            Ok(cleared) => store.cleared_at_open = cleared,
            Err(e) => {
                store.close().await;
                return Err(e);
            }
        }
        Ok(store)
    }

    /// Opens an existing store to read it while its proxy may be running: unlike
    /// [`LedgerStore::connect`] it creates nothing (a missing SQLite file is
    /// [`StoreError::StoreNotFound`]), takes the prices from the store, leaves the reservations
    /// of requests in flight alone, and refuses every write with [`StoreError::ReadOnlyStore`].
    /// For audits, listings and backups checks.
    pub async fn inspect(url: &str) -> Result<Self, StoreError> {
        let (pools, kind) = Pools::connect(url, false).await?;
        let mut store = Self {
            pools,
            kind,
            pricing: PricingParams::default(),
            clock: Arc::new(system_clock),
            cleared_at_open: 0,
            read_only: true,
        };
        match store.stored_pricing().await {
            Ok(Some(pricing)) => {
                store.pricing = pricing;
                Ok(store)
            }
            Ok(None) => {
                store.close().await;
                Err(StoreError::StoreNotFound(format!(
                    "{} holds no ledger (never opened by a proxy)",
                    redact_url(url)
                )))
            }
            Err(e) => {
                store.close().await;
                Err(e)
            }
        }
    }

    /// Whether this store was opened with [`LedgerStore::inspect`] and refuses writes.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    async fn begin_write(&self) -> Result<Tx, StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnlyStore);
        }
        self.pools.begin_write().await
    }

    /// [`Self::begin_write`] for a batch; `durable: false` when the batch holds nothing that
    /// must survive a crash ([`Pools::begin_write_unsynced`]).
    async fn begin_batch(&self, durable: bool) -> Result<Tx, StoreError> {
        if !durable && !self.read_only {
            return self.pools.begin_write_unsynced().await;
        }
        self.begin_write().await
    }

    /// The prices recorded when the store was created, if it was.
    async fn stored_pricing(&self) -> Result<Option<PricingParams>, StoreError> {
        read_tx!(self, "reading the stored prices", |tx| {
            async {
                let row = tx
                    .fetch_optional(
                        "SELECT price_per_token, worker_fee_per_token, prompt_multiplier, \
                         cached_multiplier, completion_multiplier, reasoning_multiplier \
                         FROM ledger_meta WHERE id = 1",
                        &[],
                    )
                    .await?;
                Ok(match row {
                    Some(row) => Some(pricing_from_row(&row)?),
                    None => None,
                })
            }
            .await
        })
    }

    /// Uses `clock` (Unix milliseconds) for the times written into records instead of the system
    /// clock.
    pub fn with_clock(mut self, clock: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Which database this store uses.
    pub fn backend(&self) -> BackendKind {
        self.kind
    }

    /// The prices.
    pub fn pricing(&self) -> &PricingParams {
        &self.pricing
    }

    /// How many reservations a previous process left behind and opening this store dropped.
    pub fn reservations_cleared_at_open(&self) -> u64 {
        self.cleared_at_open
    }

    /// Closes every connection (the clones of this store too). Later calls fail.
    pub async fn close(&self) {
        self.pools.close().await;
    }

    fn now(&self) -> Result<i64, StoreError> {
        to_db((self.clock)(), "the clock")
    }

    async fn open_books(&self) -> Result<u64, StoreError> {
        let now = self.now()?;
        let p = self.pricing;
        write_tx!(self, "opening the books", |tx| {
            async {
                tx.execute(
                    "INSERT INTO ledger_meta (id, price_per_token, worker_fee_per_token, \
                     prompt_multiplier, cached_multiplier, completion_multiplier, \
                     reasoning_multiplier, created_at_ms) VALUES (1, $1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (id) DO NOTHING",
                    &[
                        Arg::I64(to_db(p.price_per_token, "price_per_token")?),
                        Arg::I64(to_db(p.worker_fee_per_token, "worker_fee_per_token")?),
                        Arg::I64(i64::from(p.prompt_multiplier)),
                        Arg::I64(i64::from(p.cached_multiplier)),
                        Arg::I64(i64::from(p.completion_multiplier)),
                        Arg::I64(i64::from(p.reasoning_multiplier)),
                        Arg::I64(now),
                    ],
                )
                .await?;
                let row = tx
                    .fetch_optional(
                        "SELECT price_per_token, worker_fee_per_token, prompt_multiplier, \
                         cached_multiplier, completion_multiplier, reasoning_multiplier \
                         FROM ledger_meta WHERE id = 1",
                        &[],
                    )
                    .await?
                    .ok_or_else(|| StoreError::CorruptStore("ledger_meta has no row".into()))?;
                let stored = pricing_from_row(&row)?;
                if stored != p {
                    return Err(StoreError::StoredPricingMismatch {
                        stored: Box::new(stored),
                        given: Box::new(p),
                    }
                    .into());
                }
                let cleared = tx
                    .execute(
                        "DELETE FROM requests WHERE state = $1",
                        &[Arg::I64(RESERVED)],
                    )
                    .await?;
                tx.execute(
                    "UPDATE client_accounts SET reserved_tokens = 0 WHERE reserved_tokens <> 0",
                    &[],
                )
                .await?;
                Ok(cleared)
            }
            .await
        })
    }

    // ----- clients -----

    /// Takes in a client contract's state read from the chain, opening the account if needed
    /// (the rules of [`Account::sync_chain`]).
    pub async fn sync_client(
        &self,
        client: &ClientId,
        state: ChainClientState,
    ) -> Result<StoredClient, StoreError> {
        let now = self.now()?;
        write_tx!(self, "syncing a client", |tx| {
            async {
                let (stored, mut account) = self.open_client(&mut tx, client, now).await?;
                account.sync_chain(state);
                tx.execute(
                    "UPDATE client_accounts SET balance_nanoton = $2, stake_nanoton = $3, \
                     tokens_on_chain = $4, tokens_used = $5, updated_at_ms = $6 \
                     WHERE client_id = $1",
                    &[
                        Arg::Text(&client.0),
                        Arg::I64(to_db(account.balance(), "client balance")?),
                        Arg::I64(to_db(account.stake(), "client stake")?),
                        Arg::I64(to_db(account.tokens_on_chain(), "client tokens on chain")?),
                        Arg::I64(to_db(account.tokens_used(), "client tokens used")?),
                        Arg::I64(now),
                    ],
                )
                .await?;
                Ok(self.with_account(stored, &account, now))
            }
            .await
        })
    }

    /// Adds a top-up seen on chain, opening the account if needed.
    pub async fn deposit(
        &self,
        client: &ClientId,
        nanoton: u64,
    ) -> Result<StoredClient, StoreError> {
        let now = self.now()?;
        write_tx!(self, "depositing", |tx| {
            async {
                let (mut stored, mut account) = self.open_client(&mut tx, client, now).await?;
                account.deposit(nanoton)?;
                stored.deposited_nanoton = stored
                    .deposited_nanoton
                    .checked_add(nanoton)
                    .ok_or(overflow("client deposits"))?;
                tx.execute(
                    "UPDATE client_accounts SET balance_nanoton = $2, deposited_nanoton = $3, \
                     updated_at_ms = $4 WHERE client_id = $1",
                    &[
                        Arg::Text(&client.0),
                        Arg::I64(to_db(account.balance(), "client balance")?),
                        Arg::I64(to_db(stored.deposited_nanoton, "client deposits")?),
                        Arg::I64(now),
                    ],
                )
                .await?;
                Ok(self.with_account(stored, &account, now))
            }
            .await
        })
    }

    /// Opens a client's account with a first deposit of `nanoton` if it has none; an existing
    /// account is left as it is. Answers the account and whether it was opened now. One
    /// transaction, so concurrent first sessions of one client deposit once (an emulated chain
    /// funds each new client this way, once for the life of the store).
    pub async fn fund_new_client(
        &self,
        client: &ClientId,
        nanoton: u64,
    ) -> Result<(StoredClient, bool), StoreError> {
        let now = self.now()?;
        let deposit = to_db(nanoton, "client deposit")?;
        write_tx!(self, "opening a funded client", |tx| {
            async {
                let opened = tx
                    .execute(
                        "INSERT INTO client_accounts (client_id, balance_nanoton, \
                         deposited_nanoton, updated_at_ms) VALUES ($1, $2, $2, $3) \
                         ON CONFLICT (client_id) DO NOTHING",
                        &[Arg::Text(&client.0), Arg::I64(deposit), Arg::I64(now)],
                    )
                    .await?
                    == 1;
                let (stored, _) = self.lock_client(&mut tx, client).await?;
                Ok((stored, opened))
            }
            .await
        })
    }

    /// A client account.
    pub async fn client(&self, client: &ClientId) -> Result<Option<StoredClient>, StoreError> {
        read_tx!(self, "reading a client", |tx| {
            async {
                let row = tx
                    .fetch_optional(
                        concat!(
                            "SELECT ",
                            client_columns!(),
                            " FROM client_accounts WHERE client_id = $1"
                        ),
                        &[Arg::Text(&client.0)],
                    )
                    .await?;
                Ok(match row {
                    Some(row) => Some(self.client_from_row(&row)?.0),
                    None => None,
                })
            }
            .await
        })
    }

    /// Every client account, ordered by the bytes of its id.
    pub async fn clients(&self) -> Result<Vec<StoredClient>, StoreError> {
        read_tx!(self, "listing clients", |tx| {
            async {
                let rows = tx
                    .fetch_all(
                        concat!("SELECT ", client_columns!(), " FROM client_accounts"),
                        &[],
                    )
                    .await?;
                let mut out = rows
                    .iter()
                    .map(|r| self.client_from_row(r).map(|(c, _)| c))
                    .collect::<Result<Vec<_>, _>>()?;
                out.sort_by(|a, b| a.client.0.as_bytes().cmp(b.client.0.as_bytes()));
                Ok(out)
            }
            .await
        })
    }

    /// Freezes a client's count for its refund (`request_refund` seen on chain) and answers what
    /// the `grant_refund_signed` voucher carries. Granting again answers the same grant.
    pub async fn grant_refund(&self, client: &ClientId) -> Result<RefundGrant, StoreError> {
        let now = self.now()?;
        write_tx!(self, "granting a refund", |tx| {
            async {
                let (stored, account) = self.lock_client(&mut tx, client).await?;
                if let Some(grant) = stored.refund {
                    return Ok(grant);
                }
                if stored.reserved_tokens > 0 {
                    return Err(MarketError::ReservationsOpen {
                        client: client.clone(),
                        reserved_tokens: stored.reserved_tokens,
                    }
                    .into());
                }
                let grant = RefundGrant {
                    client: client.clone(),
                    tokens_used: account.tokens_used(),
                    refund_nanoton: account.remaining_balance(),
                };
                tx.execute(
                    "UPDATE client_accounts SET state = 1, refund_tokens = $2, \
                     refund_nanoton = $3, updated_at_ms = $4 WHERE client_id = $1",
                    &[
                        Arg::Text(&client.0),
                        Arg::I64(to_db(grant.tokens_used, "refund tokens")?),
                        Arg::I64(to_db(grant.refund_nanoton, "refund")?),
                        Arg::I64(now),
                    ],
                )
                .await?;
                Ok(grant)
            }
            .await
        })
    }

    // ----- reservations -----

    /// Holds `tokens` adjusted tokens of `client`'s balance for `request_id` (the rules of
    /// [`Account::reserve`]). The hold is dropped if the process restarts.
    pub async fn reserve(
        &self,
        client: &ClientId,
        request_id: RequestId,
        tokens: u64,
    ) -> Result<Reservation, StoreError> {
        let now = self.now()?;
        write_tx!(self, "reserving", |tx| {
            self.reserve_in(&mut tx, client, request_id, tokens, now)
                .await
        })
    }

    async fn reserve_in(
        &self,
        tx: &mut Tx,
        client: &ClientId,
        request_id: RequestId,
        tokens: u64,
        now: i64,
    ) -> Result<Reservation, TxError> {
        let tokens_db = to_db(tokens, "reservation")?;
        let existing = tx
            .fetch_optional(
                "SELECT state FROM requests WHERE request_id = $1",
                &[Arg::Blob(&request_id.0)],
            )
            .await?;
        if let Some(row) = existing {
            return Err(if row.i64("state")? == CHARGED {
                MarketError::RequestAlreadyCharged(request_id)
            } else {
                MarketError::DuplicateReservation(request_id)
            }
            .into());
        }
        let (stored, account) = self.lock_client(tx, client).await?;
        if stored.state != ClientState::Open {
            return Err(MarketError::ClientClosed(client.clone()).into());
        }
        let available = account.available_tokens();
        if tokens > available {
            return Err(MarketError::InsufficientBalance {
                needed_tokens: tokens,
                available_tokens: available,
            }
            .into());
        }
        let inserted = tx
            .fetch_optional(
                "INSERT INTO requests (request_id, state, client_id, reserved_tokens, \
                 reserved_at_ms) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (request_id) DO NOTHING RETURNING seq",
                &[
                    Arg::Blob(&request_id.0),
                    Arg::I64(RESERVED),
                    Arg::Text(&client.0),
                    Arg::I64(tokens_db),
                    Arg::I64(now),
                ],
            )
            .await?;
        if inserted.is_none() {
            return Err(TxError::Retry);
        }
        // tokens ≤ available ≤ limit − used − reserved: the sum cannot overflow.
        let reserved = stored.reserved_tokens.saturating_add(tokens);
        tx.execute(
            "UPDATE client_accounts SET reserved_tokens = $2 WHERE client_id = $1",
            &[
                Arg::Text(&client.0),
                Arg::I64(to_db(reserved, "reserved tokens")?),
            ],
        )
        .await?;
        Ok(Reservation::held(request_id, tokens))
    }

    /// Holds what a request may cost at most (see [`required_tokens`]).
    pub async fn reserve_for_request(
        &self,
        client: &ClientId,
        request_id: RequestId,
        max_coefficient: Coefficient,
        max_tokens: u64,
        body_bytes: u64,
    ) -> Result<Reservation, StoreError> {
        let tokens = required_tokens(&self.pricing, max_coefficient, max_tokens, body_bytes)?;
        self.reserve(client, request_id, tokens).await
    }

    /// Gives a reservation back (the request failed and costs nothing).
    pub async fn release(
        &self,
        client: &ClientId,
        reservation: Reservation,
    ) -> Result<(), StoreError> {
        write_tx!(self, "releasing a reservation", |tx| {
            self.release_in(&mut tx, client, reservation).await
        })
    }

    async fn release_in(
        &self,
        tx: &mut Tx,
        client: &ClientId,
        reservation: Reservation,
    ) -> Result<(), TxError> {
        let request_id = reservation.request_id();
        let row = tx
            .fetch_optional(
                "DELETE FROM requests WHERE request_id = $1 AND state = $2 \
                 AND client_id = $3 RETURNING reserved_tokens",
                &[
                    Arg::Blob(&request_id.0),
                    Arg::I64(RESERVED),
                    Arg::Text(&client.0),
                ],
            )
            .await?
            .ok_or(MarketError::UnknownReservation(request_id))?;
        let tokens = row.u64("reserved_tokens")?;
        let (stored, _) = self.lock_client(tx, client).await?;
        let reserved = stored.reserved_tokens.checked_sub(tokens).ok_or_else(|| {
            StoreError::CorruptStore(format!(
                "client {client} holds {} reserved tokens, request {request_id} {tokens}",
                stored.reserved_tokens
            ))
        })?;
        tx.execute(
            "UPDATE client_accounts SET reserved_tokens = $2 WHERE client_id = $1",
            &[
                Arg::Text(&client.0),
                Arg::I64(to_db(reserved, "reserved tokens")?),
            ],
        )
        .await?;
        Ok(())
    }

    // ----- batches -----

    /// Applies `writes` in order in one transaction, each under its own savepoint, and answers
    /// one result per write.
    ///
    /// A write that is refused (insufficient balance, unknown reservation...) changes nothing and
    /// answers its error; the others are committed together, with one commit — one disk sync —
    /// for the whole batch. Each write sees the ones before it. Every answer holds only once the
    /// batch is committed, so none is returned before: if the commit fails, every write answers
    /// the error. Each write is exactly what the single call of the same name does.
    pub async fn write_batch(
        &self,
        writes: &[LedgerWrite],
    ) -> Vec<Result<LedgerWritten, StoreError>> {
        let fail_all = |e: StoreError| writes.iter().map(|_| Err(e.clone())).collect();
        if writes.is_empty() {
            return Vec::new();
        }
        let now = match self.now() {
            Ok(n) => n,
            Err(e) => return fail_all(e),
        };
        // A batch of reservations and releases alone holds nothing that must survive a crash
        // (see "Reservations do not survive a restart"): it is not waited on to the disk. A
        // batch with a charge is, and with it everything committed before it.
        let durable = writes
            .iter()
            .any(|w| !matches!(w, LedgerWrite::Reserve { .. } | LedgerWrite::Release { .. }));
        let mut attempt = 1u32;
        loop {
            let mut tx = match self.begin_batch(durable).await {
                Ok(tx) => tx,
                Err(e) => return fail_all(e),
            };
            let mut answers = Vec::with_capacity(writes.len());
            // Set when the whole batch must run again (a lost race) or cannot go on.
            let mut rerun = false;
            let mut broken: Option<StoreError> = None;
            for write in writes {
                if let Err(e) = tx.execute("SAVEPOINT ledger_write", &[]).await {
                    broken = Some(db_error("starting a batched write")(e));
                    break;
                }
                let out = match write {
                    LedgerWrite::Reserve {
                        client,
                        request_id,
                        tokens,
                    } => self
                        .reserve_in(&mut tx, client, *request_id, *tokens, now)
                        .await
                        .map(LedgerWritten::Reserved),
                    LedgerWrite::Release {
                        client,
                        reservation,
                    } => self
                        .release_in(&mut tx, client, *reservation)
                        .await
                        .map(|()| LedgerWritten::Released),
                    LedgerWrite::Charge {
                        client,
                        worker,
                        request_id,
                        charge,
                    } => self
                        .charge_in(&mut tx, client, worker, *request_id, charge, now)
                        .await
                        .map(LedgerWritten::Charged),
                };
                let refusal = match out {
                    Ok(written) => {
                        if let Err(e) = tx.execute("RELEASE SAVEPOINT ledger_write", &[]).await {
                            broken = Some(db_error("finishing a batched write")(e));
                            break;
                        }
                        answers.push(Ok(written));
                        continue;
                    }
                    Err(TxError::Retry) => {
                        rerun = true;
                        break;
                    }
                    Err(TxError::Db(e)) if is_transient(&e) => {
                        rerun = true;
                        break;
                    }
                    Err(TxError::Db(e)) => db_error("a batched write")(e),
                    Err(TxError::Market(e)) => e,
                };
                // Undo this write alone; the batch goes on.
                let undone = async {
                    tx.execute("ROLLBACK TO SAVEPOINT ledger_write", &[])
                        .await?;
                    tx.execute("RELEASE SAVEPOINT ledger_write", &[]).await
                }
                .await;
                if let Err(e) = undone {
                    broken = Some(db_error("undoing a refused batched write")(e));
                    break;
                }
                answers.push(Err(refusal));
            }
            if rerun || broken.is_some() {
                let _ = tx.rollback().await;
                match broken {
                    Some(e) => return fail_all(e),
                    None if attempt < MAX_ATTEMPTS => {
                        attempt += 1;
                        continue;
                    }
                    None => {
                        return fail_all(StoreError::Storage {
                            context: "writing a batch",
                            detail: "too many concurrent attempts".into(),
                        });
                    }
                }
            }
            match tx.commit().await {
                Ok(()) => return answers,
                Err(e) if is_transient(&e) && attempt < MAX_ATTEMPTS => attempt += 1,
                Err(e) => return fail_all(db_error("committing a batch")(e)),
            }
        }
    }

    // ----- charging -----

    /// Charges `client` and credits `worker` for one finished request, settling its reservation
    /// if it holds one, in one transaction (the rules of
    /// [`Ledger::charge_request`](cocoon_market::Ledger::charge_request)).
    ///
    /// Idempotent per request id: charging an id again answers the first charge with
    /// [`ChargeReceipt::replayed`] set and changes nothing.
    pub async fn charge_request(
        &self,
        client: &ClientId,
        worker: &WorkerAccountId,
        request_id: RequestId,
        charge: &Charge,
    ) -> Result<ChargeReceipt, StoreError> {
        let now = self.now()?;
        write_tx!(self, "charging a request", |tx| {
            self.charge_in(&mut tx, client, worker, request_id, charge, now)
                .await
        })
    }

    async fn charge_in(
        &self,
        tx: &mut Tx,
        client: &ClientId,
        worker: &WorkerAccountId,
        request_id: RequestId,
        charge: &Charge,
        now: i64,
    ) -> Result<ChargeReceipt, TxError> {
        let price = self.pricing.price_per_token;
        let fee = self.pricing.worker_fee_per_token;
        // 1. The request's row, locked, so that duplicates queue here.
        let existing = tx
            .fetch_locked(
                locking!(
                    "SELECT state, client_id, reserved_tokens FROM requests WHERE request_id = $1"
                ),
                &[Arg::Blob(&request_id.0)],
            )
            .await?;
        let mut reserved_for_request = None;
        if let Some(row) = existing {
            if row.i64("state")? == CHARGED {
                let request = self.charged_request(tx, request_id).await?;
                return Ok(ChargeReceipt {
                    request,
                    replayed: true,
                });
            }
            let holder = row.text("client_id")?;
            if holder != client.0 {
                return Err(MarketError::ReservationClientMismatch {
                    request: request_id,
                    reserved_for: ClientId(holder),
                    charged_to: client.clone(),
                }
                .into());
            }
            reserved_for_request = Some(row.u64("reserved_tokens")?);
        }
        if charge.price_per_token() != price || charge.worker_fee_per_token() != fee {
            return Err(MarketError::PriceMismatch {
                charge_price: charge.price_per_token(),
                charge_fee: charge.worker_fee_per_token(),
                ledger_price: price,
                ledger_fee: fee,
            }
            .into());
        }

        // 2. The client.
        let (stored, mut books) = self.lock_client_books(tx, client).await?;
        if stored.state != ClientState::Open {
            return Err(MarketError::ClientClosed(client.clone()).into());
        }
        if let Some(held) = reserved_for_request {
            books.reserved = books.reserved.checked_sub(held).ok_or_else(|| {
                StoreError::CorruptStore(format!(
                    "client {client} holds {} reserved tokens, request {request_id} {held}",
                    books.reserved
                ))
            })?;
        }
        let mut account = Account::from_books(price, books)?;
        let adjusted = charge.adjusted_total();
        let settlement = account.charge(adjusted);
        let client_cost = settlement
            .charged_tokens
            .checked_mul(price)
            .ok_or(overflow("client cost"))?;
        let shortfall_nanoton = settlement
            .shortfall_tokens
            .checked_mul(price)
            .ok_or(overflow("shortfall"))?;
        let client_charged = stored
            .charged_nanoton
            .checked_add(client_cost)
            .ok_or(overflow("client charged total"))?;
        let client_shortfall = stored
            .shortfall_nanoton
            .checked_add(shortfall_nanoton)
            .ok_or(overflow("client shortfall total"))?;
        let client_requests = stored
            .requests
            .checked_add(1)
            .ok_or(overflow("client requests"))?;
        tx.execute(
            "UPDATE client_accounts SET tokens_used = $2, reserved_tokens = $3, \
             shortfall_tokens = $4, charged_nanoton = $5, shortfall_nanoton = $6, requests = $7, \
             updated_at_ms = $8 WHERE client_id = $1",
            &[
                Arg::Text(&client.0),
                Arg::I64(to_db(settlement.tokens_used, "client tokens used")?),
                Arg::I64(to_db(books.reserved, "reserved tokens")?),
                Arg::I64(to_db(
                    account.shortfall_tokens(),
                    "client shortfall tokens",
                )?),
                Arg::I64(to_db(client_charged, "client charged total")?),
                Arg::I64(to_db(client_shortfall, "client shortfall total")?),
                Arg::I64(to_db(client_requests, "client requests")?),
                Arg::I64(now),
            ],
        )
        .await?;

        // 3. The worker.
        tx.execute(
            "INSERT INTO worker_accounts (worker_id, updated_at_ms) VALUES ($1, $2) \
             ON CONFLICT (worker_id) DO NOTHING",
            &[Arg::Text(&worker.0), Arg::I64(now)],
        )
        .await?;
        let row = tx
            .fetch_locked(
                locking!(
                    "SELECT tokens_earned, credited_nanoton, commission_nanoton, requests \
                     FROM worker_accounts WHERE worker_id = $1"
                ),
                &[Arg::Text(&worker.0)],
            )
            .await?
            .ok_or_else(|| StoreError::CorruptStore(format!("worker {worker} vanished")))?;
        let worker_credit = charge.worker_credit();
        let commission = charge.proxy_commission();
        let tokens_earned = row
            .u64("tokens_earned")?
            .checked_add(adjusted)
            .ok_or(overflow("worker tokens earned"))?;
        let credited = row
            .u64("credited_nanoton")?
            .checked_add(worker_credit)
            .ok_or(overflow("worker credited total"))?;
        let commission_total = row
            .u64("commission_nanoton")?
            .checked_add(commission)
            .ok_or(overflow("commission total"))?;
        let worker_requests = row
            .u64("requests")?
            .checked_add(1)
            .ok_or(overflow("worker requests"))?;
        tx.execute(
            "UPDATE worker_accounts SET tokens_earned = $2, credited_nanoton = $3, \
             commission_nanoton = $4, requests = $5, updated_at_ms = $6 WHERE worker_id = $1",
            &[
                Arg::Text(&worker.0),
                Arg::I64(to_db(tokens_earned, "worker tokens earned")?),
                Arg::I64(to_db(credited, "worker credited total")?),
                Arg::I64(to_db(commission_total, "commission total")?),
                Arg::I64(to_db(worker_requests, "worker requests")?),
                Arg::I64(now),
            ],
        )
        .await?;

        // 4. The request record.
        let record = ChargeRecord {
            request_id,
            client: client.clone(),
            worker: worker.clone(),
            coefficient: charge.coefficient(),
            tokens: charge.billed_tokens(),
            adjusted_tokens: adjusted,
            charged_tokens: settlement.charged_tokens,
            shortfall_tokens: settlement.shortfall_tokens,
            client_cost,
            worker_credit,
            proxy_commission: commission,
            client_tokens_used: settlement.tokens_used,
            worker_tokens_earned: tokens_earned,
        };
        let t = record.tokens;
        let values = [
            Arg::Blob(&request_id.0),
            Arg::I64(CHARGED),
            Arg::Text(&client.0),
            Arg::Text(&worker.0),
            Arg::I64(i64::from(record.coefficient)),
            Arg::I64(to_db(t.prompt, "prompt tokens")?),
            Arg::I64(to_db(t.cached, "cached tokens")?),
            Arg::I64(to_db(t.completion, "completion tokens")?),
            Arg::I64(to_db(t.reasoning, "reasoning tokens")?),
            Arg::I64(to_db(adjusted, "adjusted tokens")?),
            Arg::I64(to_db(record.charged_tokens, "charged tokens")?),
            Arg::I64(to_db(record.shortfall_tokens, "shortfall tokens")?),
            Arg::I64(to_db(client_cost, "client cost")?),
            Arg::I64(to_db(shortfall_nanoton, "shortfall")?),
            Arg::I64(to_db(worker_credit, "worker credit")?),
            Arg::I64(to_db(commission, "proxy commission")?),
            Arg::I64(to_db(record.client_tokens_used, "client tokens used")?),
            Arg::I64(to_db(tokens_earned, "worker tokens earned")?),
            Arg::I64(now),
        ];
        let seq = if reserved_for_request.is_some() {
            tx.fetch_optional(
                "UPDATE requests SET state = $2, client_id = $3, worker_id = $4, \
                 coefficient = $5, prompt_tokens = $6, cached_tokens = $7, \
                 completion_tokens = $8, reasoning_tokens = $9, adjusted_tokens = $10, \
                 charged_tokens = $11, shortfall_tokens = $12, client_charge_nanoton = $13, \
                 shortfall_nanoton = $14, worker_credit_nanoton = $15, commission_nanoton = $16, \
                 client_tokens_used = $17, worker_tokens_earned = $18, charged_at_ms = $19 \
                 WHERE request_id = $1 AND state = 0 RETURNING seq",
                &values,
            )
            .await?
        } else {
            tx.fetch_optional(
                "INSERT INTO requests (request_id, state, client_id, worker_id, coefficient, \
                 prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens, \
                 adjusted_tokens, charged_tokens, shortfall_tokens, client_charge_nanoton, \
                 shortfall_nanoton, worker_credit_nanoton, commission_nanoton, \
                 client_tokens_used, worker_tokens_earned, charged_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                 $17, $18, $19) ON CONFLICT (request_id) DO NOTHING RETURNING seq",
                &values,
            )
            .await?
        };
        // No row: another transaction recorded this request id after step 1 looked. Run again;
        // step 1 then sees it.
        let seq = seq.ok_or(TxError::Retry)?.u64("seq")?;
        Ok(ChargeReceipt {
            request: ChargedRequest {
                seq,
                record,
                shortfall_nanoton,
                charged_at_ms: u64::try_from(now).unwrap_or(0),
            },
            replayed: false,
        })
    }

    async fn charged_request(
        &self,
        tx: &mut Tx,
        request_id: RequestId,
    ) -> Result<ChargedRequest, TxError> {
        let row = tx
            .fetch_optional(
                concat!(
                    "SELECT ",
                    request_columns!(),
                    " FROM requests WHERE request_id = $1"
                ),
                &[Arg::Blob(&request_id.0)],
            )
            .await?
            .ok_or_else(|| StoreError::CorruptStore(format!("request {request_id} vanished")))?;
        match request_from_row(&row)? {
            RequestEntry::Charged(c) => Ok(c),
            RequestEntry::Reserved(_) => {
                Err(StoreError::CorruptStore(format!("request {request_id} changed state")).into())
            }
        }
    }

    /// One request's row: its reservation or its charge.
    pub async fn request(&self, request_id: RequestId) -> Result<Option<RequestEntry>, StoreError> {
        read_tx!(self, "reading a request", |tx| {
            async {
                let row = tx
                    .fetch_optional(
                        concat!(
                            "SELECT ",
                            request_columns!(),
                            " FROM requests WHERE request_id = $1"
                        ),
                        &[Arg::Blob(&request_id.0)],
                    )
                    .await?;
                Ok(match row {
                    Some(r) => Some(request_from_row(&r)?),
                    None => None,
                })
            }
            .await
        })
    }

    /// Charged requests with `seq` above `after_seq`, oldest first, at most `limit` (capped at
    /// [`MAX_PAGE`]). Page by passing the last `seq` seen.
    pub async fn charged_requests(
        &self,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<ChargedRequest>, StoreError> {
        let after = to_db(after_seq, "seq")?;
        let limit = i64::from(limit.min(MAX_PAGE));
        read_tx!(self, "listing requests", |tx| {
            async {
                let rows = tx
                    .fetch_all(
                        concat!(
                            "SELECT ",
                            request_columns!(),
                            " FROM requests WHERE state = 1 AND seq > $1 ORDER BY seq LIMIT $2"
                        ),
                        &[Arg::I64(after), Arg::I64(limit)],
                    )
                    .await?;
                charged_rows(&rows)
            }
            .await
        })
    }

    /// A client's charged requests with `seq` above `after_seq`, oldest first, at most `limit`
    /// (capped at [`MAX_PAGE`]).
    pub async fn client_requests(
        &self,
        client: &ClientId,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<ChargedRequest>, StoreError> {
        let after = to_db(after_seq, "seq")?;
        let limit = i64::from(limit.min(MAX_PAGE));
        read_tx!(self, "listing a client's requests", |tx| {
            async {
                let rows = tx
                    .fetch_all(
                        concat!(
                            "SELECT ",
                            request_columns!(),
                            " FROM requests WHERE client_id = $1 AND state = 1 AND seq > $2 \
                             ORDER BY seq LIMIT $3"
                        ),
                        &[Arg::Text(&client.0), Arg::I64(after), Arg::I64(limit)],
                    )
                    .await?;
                charged_rows(&rows)
            }
            .await
        })
    }

    /// A worker's charged requests with `seq` above `after_seq`, oldest first, at most `limit`
    /// (capped at [`MAX_PAGE`]).
    pub async fn worker_requests(
        &self,
        worker: &WorkerAccountId,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<ChargedRequest>, StoreError> {
        let after = to_db(after_seq, "seq")?;
        let limit = i64::from(limit.min(MAX_PAGE));
        read_tx!(self, "listing a worker's requests", |tx| {
            async {
                let rows = tx
                    .fetch_all(
                        concat!(
                            "SELECT ",
                            request_columns!(),
                            " FROM requests WHERE worker_id = $1 AND state = 1 AND seq > $2 \
                             ORDER BY seq LIMIT $3"
                        ),
                        &[Arg::Text(&worker.0), Arg::I64(after), Arg::I64(limit)],
                    )
                    .await?;
                charged_rows(&rows)
            }
            .await
        })
    }

    /// Every request in flight holding a reservation, oldest first.
    pub async fn reservations(&self) -> Result<Vec<ReservedRequest>, StoreError> {
        read_tx!(self, "listing reservations", |tx| {
            async {
                let rows = tx
                    .fetch_all(
                        concat!(
                            "SELECT ",
                            request_columns!(),
                            " FROM requests WHERE state = 0 ORDER BY seq"
                        ),
                        &[],
                    )
                    .await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    if let RequestEntry::Reserved(r) = request_from_row(row)? {
                        out.push(r);
                    }
                }
                Ok(out)
            }
            .await
        })
    }

    // ----- workers -----

    /// A worker account.
    pub async fn worker(
        &self,
        worker: &WorkerAccountId,
    ) -> Result<Option<StoredWorker>, StoreError> {
        read_tx!(self, "reading a worker", |tx| {
            async {
                let row = tx
                    .fetch_optional(
                        concat!(
                            "SELECT ",
                            worker_columns!(),
                            " FROM worker_accounts WHERE worker_id = $1"
                        ),
                        &[Arg::Text(&worker.0)],
                    )
                    .await?;
                Ok(match row {
                    Some(r) => Some(worker_from_row(&r)?),
                    None => None,
                })
            }
            .await
        })
    }

    /// Every worker account, ordered by the bytes of its id.
    pub async fn workers(&self) -> Result<Vec<StoredWorker>, StoreError> {
        read_tx!(self, "listing workers", |tx| {
            async {
                let rows = tx
                    .fetch_all(
                        concat!("SELECT ", worker_columns!(), " FROM worker_accounts"),
                        &[],
                    )
                    .await?;
                let mut out = rows
                    .iter()
                    .map(worker_from_row)
                    .collect::<Result<Vec<_>, _>>()?;
                out.sort_by(|a, b| a.worker.0.as_bytes().cmp(b.worker.0.as_bytes()));
                Ok(out)
            }
            .await
        })
    }

    /// Takes in a worker contract's cumulative paid-out count read from the chain (after a
    /// payout voucher was submitted). A count at or below the stored one changes nothing (chain
    /// reads may be stale); one above what the worker earned is refused.
    pub async fn record_worker_payout(
        &self,
        worker: &WorkerAccountId,
        paid_tokens: u64,
    ) -> Result<StoredWorker, StoreError> {
        let now = self.now()?;
        let fee = self.pricing.worker_fee_per_token;
        write_tx!(self, "recording a payout", |tx| {
            async {
                let row = tx
                    .fetch_locked(
                        locking!(concat!(
                            "SELECT ",
                            worker_columns!(),
                            " FROM worker_accounts WHERE worker_id = $1"
                        )),
                        &[Arg::Text(&worker.0)],
                    )
                    .await?
                    .ok_or_else(|| MarketError::UnknownWorker(worker.clone()))?;
                let mut stored = worker_from_row(&row)?;
                if paid_tokens > stored.tokens_earned {
                    return Err(MarketError::PayoutExceedsEarnings {
                        worker: worker.clone(),
                        paid_tokens,
                        earned_tokens: stored.tokens_earned,
                    }
                    .into());
                }
                if paid_tokens <= stored.tokens_paid {
                    return Ok(stored);
                }
                let paid_nanoton = paid_tokens
                    .checked_mul(fee)
                    .ok_or(overflow("worker paid out"))?;
                tx.execute(
                    "UPDATE worker_accounts SET tokens_paid = $2, paid_nanoton = $3, \
                     updated_at_ms = $4 WHERE worker_id = $1",
                    &[
                        Arg::Text(&worker.0),
                        Arg::I64(to_db(paid_tokens, "worker tokens paid")?),
                        Arg::I64(to_db(paid_nanoton, "worker paid out")?),
                        Arg::I64(now),
                    ],
                )
                .await?;
                stored.tokens_paid = paid_tokens;
                stored.paid_nanoton = paid_nanoton;
                stored.updated_at_ms = u64::try_from(now).unwrap_or(0);
                Ok(stored)
            }
            .await
        })
    }

    // ----- totals and audit -----

    /// Sums over every charge, from the accounts.
    pub async fn totals(&self) -> Result<LedgerTotals, StoreError> {
        read_tx!(self, "summing the books", |tx| {
            async { self.totals_in(&mut tx).await }.await
        })
    }

    async fn totals_in(&self, tx: &mut Tx) -> Result<LedgerTotals, TxError> {
        let mut t = LedgerTotals::default();
        for row in tx
            .fetch_all(
                "SELECT charged_nanoton, shortfall_nanoton FROM client_accounts",
                &[],
            )
            .await?
        {
            t.client_charged += u128::from(row.u64("charged_nanoton")?);
            t.shortfall += u128::from(row.u64("shortfall_nanoton")?);
        }
        for row in tx
            .fetch_all(
                "SELECT tokens_earned, credited_nanoton, commission_nanoton, requests \
                 FROM worker_accounts",
                &[],
            )
            .await?
        {
            t.adjusted_tokens += u128::from(row.u64("tokens_earned")?);
            t.worker_credited += u128::from(row.u64("credited_nanoton")?);
            t.proxy_commission += u128::from(row.u64("commission_nanoton")?);
            t.requests = t
                .requests
                .checked_add(row.u64("requests")?)
                .ok_or(overflow("requests"))?;
        }
        Ok(t)
    }

    /// Recomputes every total from the request records in one snapshot and checks it against the
    /// accounts: per request (money derived from tokens and prices, `charge + shortfall =
    /// credit + commission`), per client, per worker and overall, plus the reservations. Answers
    /// the totals when everything agrees. Reads every request: for checks and tests, not for
    /// each request.
    pub async fn audit(&self) -> Result<LedgerTotals, StoreError> {
        read_tx!(self, "auditing the books", |tx| {
            async { self.audit_in(&mut tx).await }.await
        })
    }

    async fn audit_in(&self, tx: &mut Tx) -> Result<LedgerTotals, TxError> {
        let price = u128::from(self.pricing.price_per_token);
        let fee = u128::from(self.pricing.worker_fee_per_token);
        let mut t = LedgerTotals::default();
        let mut per_client: BTreeMap<String, (u128, u128, u64, u128)> = BTreeMap::new();
        let mut per_worker: BTreeMap<String, (u128, u128, u128, u64)> = BTreeMap::new();
        let mut after = 0i64;
        loop {
            let rows = tx
                .fetch_all(
                    concat!(
                        "SELECT ",
                        request_columns!(),
                        " FROM requests WHERE seq > $1 ORDER BY seq LIMIT 1000"
                    ),
                    &[Arg::I64(after)],
                )
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.i64("seq")?;
            for row in &rows {
                match request_from_row(row)? {
                    RequestEntry::Reserved(r) => {
                        per_client.entry(r.client.0).or_default().3 += u128::from(r.tokens);
                    }
                    RequestEntry::Charged(c) => {
                        let r = &c.record;
                        let adjusted = u128::from(r.adjusted_tokens);
                        let checks = [
                            (
                                "a request's charged + shortfall tokens",
                                u128::from(r.charged_tokens) + u128::from(r.shortfall_tokens),
                                adjusted,
                            ),
                            (
                                "a request's client charge",
                                u128::from(r.client_cost),
                                u128::from(r.charged_tokens) * price,
                            ),
                            (
                                "a request's shortfall",
                                u128::from(c.shortfall_nanoton),
                                u128::from(r.shortfall_tokens) * price,
                            ),
                            (
                                "a request's worker credit",
                                u128::from(r.worker_credit),
                                adjusted * fee,
                            ),
                            (
                                "a request's proxy commission",
                                u128::from(r.proxy_commission),
                                adjusted * (price - fee),
                            ),
                        ];
                        for (quantity, from_records, expected) in checks {
                            if from_records != expected {
                                return Err(StoreError::AuditMismatch {
                                    quantity,
                                    from_records,
                                    from_accounts: expected,
                                }
                                .into());
                            }
                        }
                        t.requests += 1;
                        t.adjusted_tokens += adjusted;
                        t.client_charged += u128::from(r.client_cost);
                        t.shortfall += u128::from(c.shortfall_nanoton);
                        t.worker_credited += u128::from(r.worker_credit);
                        t.proxy_commission += u128::from(r.proxy_commission);
                        let pc = per_client.entry(r.client.0.clone()).or_default();
                        pc.0 += u128::from(r.client_cost);
                        pc.1 += u128::from(c.shortfall_nanoton);
                        pc.2 += 1;
                        let pw = per_worker.entry(r.worker.0.clone()).or_default();
                        pw.0 += adjusted;
                        pw.1 += u128::from(r.worker_credit);
                        pw.2 += u128::from(r.proxy_commission);
                        pw.3 += 1;
                    }
                }
            }
        }
        let clients = tx
            .fetch_all(
                concat!("SELECT ", client_columns!(), " FROM client_accounts"),
                &[],
            )
            .await?;
        for row in &clients {
            let (c, _) = self.client_from_row(row)?;
            let (charged, shortfall, requests, reserved) =
                per_client.remove(&c.client.0).unwrap_or_default();
            let checks = [
                ("a client's charges", charged, u128::from(c.charged_nanoton)),
                (
                    "a client's shortfall",
                    shortfall,
                    u128::from(c.shortfall_nanoton),
                ),
                (
                    "a client's requests",
                    u128::from(requests),
                    u128::from(c.requests),
                ),
                (
                    "a client's reservations",
                    reserved,
                    u128::from(c.reserved_tokens),
                ),
            ];
            audit_checks(&checks)?;
        }
        let workers = tx
            .fetch_all(
                concat!("SELECT ", worker_columns!(), " FROM worker_accounts"),
                &[],
            )
            .await?;
        for row in &workers {
            let w = worker_from_row(row)?;
            let (earned, credited, commission, requests) =
                per_worker.remove(&w.worker.0).unwrap_or_default();
            let checks = [
                (
                    "a worker's tokens earned",
                    earned,
                    u128::from(w.tokens_earned),
                ),
                (
                    "a worker's credits",
                    credited,
                    u128::from(w.credited_nanoton),
                ),
                (
                    "a worker's commission",
                    commission,
                    u128::from(w.commission_nanoton),
                ),
                (
                    "a worker's requests",
                    u128::from(requests),
                    u128::from(w.requests),
                ),
            ];
            audit_checks(&checks)?;
        }
        if let Some((client, _)) = per_client.into_iter().next() {
            return Err(
                StoreError::CorruptStore(format!("requests of unknown client {client}")).into(),
            );
        }
        if let Some((worker, _)) = per_worker.into_iter().next() {
            return Err(
                StoreError::CorruptStore(format!("requests of unknown worker {worker}")).into(),
            );
        }
        let accounts = self.totals_in(tx).await?;
        audit_checks(&[
            (
                "requests",
                u128::from(t.requests),
                u128::from(accounts.requests),
            ),
            (
                "adjusted tokens",
                t.adjusted_tokens,
                accounts.adjusted_tokens,
            ),
            ("client charges", t.client_charged, accounts.client_charged),
            (
                "worker credits",
                t.worker_credited,
                accounts.worker_credited,
            ),
            (
                "proxy commission",
                t.proxy_commission,
                accounts.proxy_commission,
            ),
            ("shortfall", t.shortfall, accounts.shortfall),
        ])?;
        if !t.is_balanced() {
            return Err(StoreError::AuditMismatch {
                quantity: "client charges + shortfall against worker credits + commission",
                from_records: t.client_charged + t.shortfall,
                from_accounts: t.worker_credited + t.proxy_commission,
            }
            .into());
        }
        Ok(t)
    }

    // ----- anchors -----

    /// Fixes the next anchor: its seqno, the state hash of the books as they are now (layout in
    /// the [module docs](self)), and every account's current total as pending. Send
    /// `save_state seqno state_hash` on chain, then call [`LedgerStore::commit_anchor`].
    pub async fn prepare_anchor(&self) -> Result<Anchor, StoreError> {
        let now = self.now()?;
        write_tx!(self, "preparing an anchor", |tx| {
            async {
                if tx.kind() == BackendKind::Postgres {
                    // Writers wait while the books are hashed, so the hash and the pending totals
                    // describe one state; plain reads go on. EXCLUSIVE (not SHARE) so that a
                    // writer that has locked a row but not yet changed it cannot deadlock with
                    // the pending-total updates below. Tables in the order charges use them.
                    tx.execute(
                        "LOCK TABLE ledger_anchors, client_accounts, worker_accounts \
                         IN EXCLUSIVE MODE",
                        &[],
                    )
                    .await?;
                }
                let last = tx
                    .fetch_optional(
                        "SELECT seqno, state_hash FROM ledger_anchors ORDER BY seqno DESC LIMIT 1",
                        &[],
                    )
                    .await?;
                let (seqno, previous_hash) = match last {
                    Some(row) => {
                        let seqno = u32::try_from(row.i64("seqno")?)
                            .map_err(|_| StoreError::CorruptStore("anchor seqno".into()))?
                            .checked_add(1)
                            .ok_or(StoreError::AnchorSeqnoExhausted)?;
                        (seqno, row.bytes32("state_hash")?)
                    }
                    None => (1, [0; 32]),
                };
                let mut clients = Vec::new();
                for row in tx
                    .fetch_all(
                        concat!("SELECT ", client_columns!(), " FROM client_accounts"),
                        &[],
                    )
                    .await?
                {
                    let (c, _) = self.client_from_row(&row)?;
                    clients.push(ClientEntry {
                        id: c.client.0,
                        state: match c.state {
                            ClientState::Open => 0,
                            ClientState::Closing => 1,
                        },
                        balance: c.balance,
                        stake: c.stake,
                        tokens_on_chain: c.tokens_on_chain,
                        tokens_used: c.tokens_used,
                        shortfall_tokens: c.shortfall_tokens,
                        deposited: c.deposited_nanoton,
                        charged: c.charged_nanoton,
                        shortfall: c.shortfall_nanoton,
                        requests: c.requests,
                    });
                }
                let mut workers = Vec::new();
                let mut requests = 0u64;
                for row in tx
                    .fetch_all(
                        concat!("SELECT ", worker_columns!(), " FROM worker_accounts"),
                        &[],
                    )
                    .await?
                {
                    let w = worker_from_row(&row)?;
                    requests = requests
                        .checked_add(w.requests)
                        .ok_or(overflow("requests"))?;
                    workers.push(WorkerEntry {
                        id: w.worker.0,
                        tokens_earned: w.tokens_earned,
                        tokens_paid: w.tokens_paid,
                        credited: w.credited_nanoton,
                        commission: w.commission_nanoton,
                        paid: w.paid_nanoton,
                        requests: w.requests,
                    });
                }
                let hash = state_hash(
                    seqno,
                    &previous_hash,
                    self.pricing.price_per_token,
                    self.pricing.worker_fee_per_token,
                    &mut clients,
                    &mut workers,
                );
                let anchor = Anchor {
                    seqno,
                    state_hash: hash,
                    previous_hash,
                    clients: clients.len() as u64,
                    workers: workers.len() as u64,
                    requests,
                    prepared_at_ms: u64::try_from(now).unwrap_or(0),
                    committed_at_ms: None,
                };
                tx.execute(
                    "INSERT INTO ledger_anchors (seqno, state_hash, previous_hash, clients, \
                     workers, requests, prepared_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        Arg::I64(i64::from(seqno)),
                        Arg::Blob(&anchor.state_hash),
                        Arg::Blob(&anchor.previous_hash),
                        Arg::I64(to_db(anchor.clients, "clients")?),
                        Arg::I64(to_db(anchor.workers, "workers")?),
                        Arg::I64(to_db(requests, "requests")?),
                        Arg::I64(now),
                    ],
                )
                .await?;
                tx.execute(
                    "UPDATE client_accounts SET pending_anchor_seqno = $1, \
                     pending_anchor_tokens = tokens_used",
                    &[Arg::I64(i64::from(seqno))],
                )
                .await?;
                tx.execute(
                    "UPDATE worker_accounts SET pending_anchor_seqno = $1, \
                     pending_anchor_tokens = tokens_earned",
                    &[Arg::I64(i64::from(seqno))],
                )
                .await?;
                Ok(anchor)
            }
            .await
        })
    }

    /// Records that the chain holds anchor `seqno`: the totals it covers become signable.
    /// Committing again changes nothing.
    pub async fn commit_anchor(&self, seqno: u32) -> Result<Anchor, StoreError> {
        let now = self.now()?;
        write_tx!(self, "committing an anchor", |tx| {
            async {
                let row = tx
                    .fetch_locked(
                        locking!(concat!(
                            "SELECT ",
                            anchor_columns!(),
                            " FROM ledger_anchors WHERE seqno = $1"
                        )),
                        &[Arg::I64(i64::from(seqno))],
                    )
                    .await?
                    .ok_or(StoreError::UnknownAnchor(seqno))?;
                let mut anchor = anchor_from_row(&row)?;
                if anchor.committed_at_ms.is_some() {
                    return Ok(anchor);
                }
                tx.execute(
                    "UPDATE ledger_anchors SET committed_at_ms = $2 WHERE seqno = $1",
                    &[Arg::I64(i64::from(seqno)), Arg::I64(now)],
                )
                .await?;
                for sql in [
                    "UPDATE client_accounts SET anchored_tokens = pending_anchor_tokens \
                     WHERE pending_anchor_seqno = $1 AND pending_anchor_tokens > anchored_tokens",
                    "UPDATE worker_accounts SET anchored_tokens = pending_anchor_tokens \
                     WHERE pending_anchor_seqno = $1 AND pending_anchor_tokens > anchored_tokens",
                ] {
                    tx.execute(sql, &[Arg::I64(i64::from(seqno))]).await?;
                }
                anchor.committed_at_ms = Some(u64::try_from(now).unwrap_or(0));
                Ok(anchor)
            }
            .await
        })
    }

    /// Every anchor, oldest first.
    pub async fn anchors(&self) -> Result<Vec<Anchor>, StoreError> {
        read_tx!(self, "listing anchors", |tx| {
            async {
                let rows = tx
                    .fetch_all(
                        concat!(
                            "SELECT ",
                            anchor_columns!(),
                            " FROM ledger_anchors ORDER BY seqno"
                        ),
                        &[],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(anchor_from_row)
                    .collect::<Result<Vec<_>, _>>()?)
            }
            .await
        })
    }

    /// The newest anchor the chain was seen to hold.
    pub async fn latest_committed_anchor(&self) -> Result<Option<Anchor>, StoreError> {
        read_tx!(self, "reading the latest anchor", |tx| {
            async {
                let row = tx
                    .fetch_optional(
                        concat!(
                            "SELECT ",
                            anchor_columns!(),
                            " FROM ledger_anchors WHERE committed_at_ms IS NOT NULL \
                             ORDER BY seqno DESC LIMIT 1"
                        ),
                        &[],
                    )
                    .await?;
                Ok(match row {
                    Some(r) => Some(anchor_from_row(&r)?),
                    None => None,
                })
            }
            .await
        })
    }

    // ----- helpers -----

    /// Opens the client's account if missing and locks it.
    async fn open_client(
        &self,
        tx: &mut Tx,
        client: &ClientId,
        now: i64,
    ) -> Result<(StoredClient, Account), TxError> {
        tx.execute(
            "INSERT INTO client_accounts (client_id, updated_at_ms) VALUES ($1, $2) \
             ON CONFLICT (client_id) DO NOTHING",
            &[Arg::Text(&client.0), Arg::I64(now)],
        )
        .await?;
        self.lock_client(tx, client).await
    }

    /// Locks an existing client's account.
    async fn lock_client(
        &self,
        tx: &mut Tx,
        client: &ClientId,
    ) -> Result<(StoredClient, Account), TxError> {
        let (stored, books) = self.lock_client_books(tx, client).await?;
        Ok((
            stored,
            Account::from_books(self.pricing.price_per_token, books)?,
        ))
    }

    async fn lock_client_books(
        &self,
        tx: &mut Tx,
        client: &ClientId,
    ) -> Result<(StoredClient, AccountBooks), TxError> {
        let row = tx
            .fetch_locked(
                locking!(concat!(
                    "SELECT ",
                    client_columns!(),
                    " FROM client_accounts WHERE client_id = $1"
                )),
                &[Arg::Text(&client.0)],
            )
            .await?
            .ok_or_else(|| MarketError::UnknownClient(client.clone()))?;
        Ok(self.client_from_row(&row)?)
    }

    fn client_from_row(&self, row: &DbRow) -> Result<(StoredClient, AccountBooks), StoreError> {
        let client = ClientId(row.text("client_id")?);
        let books = AccountBooks {
            balance: row.u64("balance_nanoton")?,
            stake: row.u64("stake_nanoton")?,
            tokens_on_chain: row.u64("tokens_on_chain")?,
            tokens_used: row.u64("tokens_used")?,
            reserved: row.u64("reserved_tokens")?,
            shortfall_tokens: row.u64("shortfall_tokens")?,
        };
        let account = Account::from_books(self.pricing.price_per_token, books)?;
        let state = match row.i64("state")? {
            0 => ClientState::Open,
            1 => ClientState::Closing,
            other => {
                return Err(StoreError::CorruptStore(format!(
                    "client {client} has state {other}"
                )));
            }
        };
        let refund = match (
            row.opt_u64("refund_tokens")?,
            row.opt_u64("refund_nanoton")?,
        ) {
            (Some(tokens_used), Some(refund_nanoton)) => Some(RefundGrant {
                client: client.clone(),
                tokens_used,
                refund_nanoton,
            }),
            _ => None,
        };
        let stored = StoredClient {
            client,
            state,
            balance: books.balance,
            stake: books.stake,
            tokens_on_chain: books.tokens_on_chain,
            tokens_used: books.tokens_used,
            anchored_tokens: row.u64("anchored_tokens")?,
            reserved_tokens: books.reserved,
            token_limit: account.token_limit(),
            available_tokens: account.available_tokens(),
            shortfall_tokens: books.shortfall_tokens,
            deposited_nanoton: row.u64("deposited_nanoton")?,
            charged_nanoton: row.u64("charged_nanoton")?,
            shortfall_nanoton: row.u64("shortfall_nanoton")?,
            requests: row.u64("requests")?,
            refund,
            updated_at_ms: row.u64("updated_at_ms")?,
        };
        Ok((stored, books))
    }

    /// `stored` with the account's new chain view and balance.
    fn with_account(&self, mut stored: StoredClient, account: &Account, now: i64) -> StoredClient {
        stored.balance = account.balance();
        stored.stake = account.stake();
        stored.tokens_on_chain = account.tokens_on_chain();
        stored.tokens_used = account.tokens_used();
        stored.token_limit = account.token_limit();
        stored.available_tokens = account.available_tokens();
        stored.updated_at_ms = u64::try_from(now).unwrap_or(0);
        stored
    }
}

fn audit_checks(checks: &[(&'static str, u128, u128)]) -> Result<(), StoreError> {
    for &(quantity, from_records, from_accounts) in checks {
        if from_records != from_accounts {
            return Err(StoreError::AuditMismatch {
                quantity,
                from_records,
                from_accounts,
            });
        }
    }
    Ok(())
}

fn pricing_from_row(row: &DbRow) -> Result<PricingParams, StoreError> {
    let multiplier = |c| {
        u32::try_from(row.i64(c)?)
            .map_err(|_| StoreError::CorruptStore(format!("{c} out of range")))
    };
    Ok(PricingParams {
        price_per_token: row.u64("price_per_token")?,
        worker_fee_per_token: row.u64("worker_fee_per_token")?,
        prompt_multiplier: multiplier("prompt_multiplier")?,
        cached_multiplier: multiplier("cached_multiplier")?,
        completion_multiplier: multiplier("completion_multiplier")?,
        reasoning_multiplier: multiplier("reasoning_multiplier")?,
    })
}

/// `url` with its password (if any) masked, for logs and messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn worker_from_row(row: &DbRow) -> Result<StoredWorker, StoreError> {
    Ok(StoredWorker {
        worker: WorkerAccountId(row.text("worker_id")?),
        tokens_earned: row.u64("tokens_earned")?,
        anchored_tokens: row.u64("anchored_tokens")?,
        tokens_paid: row.u64("tokens_paid")?,
        credited_nanoton: row.u64("credited_nanoton")?,
        commission_nanoton: row.u64("commission_nanoton")?,
        paid_nanoton: row.u64("paid_nanoton")?,
        requests: row.u64("requests")?,
        updated_at_ms: row.u64("updated_at_ms")?,
    })
}

fn anchor_from_row(row: &DbRow) -> Result<Anchor, StoreError> {
    Ok(Anchor {
        seqno: u32::try_from(row.i64("seqno")?)
            .map_err(|_| StoreError::CorruptStore("anchor seqno out of range".into()))?,
        state_hash: row.bytes32("state_hash")?,
        previous_hash: row.bytes32("previous_hash")?,
        clients: row.u64("clients")?,
        workers: row.u64("workers")?,
        requests: row.u64("requests")?,
        prepared_at_ms: row.u64("prepared_at_ms")?,
        committed_at_ms: row.opt_u64("committed_at_ms")?,
    })
}

fn charged_rows(rows: &[DbRow]) -> Result<Vec<ChargedRequest>, TxError> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        match request_from_row(row)? {
            RequestEntry::Charged(c) => out.push(c),
            RequestEntry::Reserved(r) => {
                return Err(StoreError::CorruptStore(format!(
                    "request {} listed as charged is reserved",
                    r.request_id
                ))
                .into());
            }
        }
    }
    Ok(out)
}

fn request_from_row(row: &DbRow) -> Result<RequestEntry, StoreError> {
    let seq = row.u64("seq")?;
    let request_id = RequestId(row.bytes32("request_id")?);
    let client = ClientId(row.text("client_id")?);
    match row.i64("state")? {
        RESERVED => Ok(RequestEntry::Reserved(ReservedRequest {
            seq,
            request_id,
            client,
            tokens: row.u64("reserved_tokens")?,
            reserved_at_ms: row.opt_u64("reserved_at_ms")?.unwrap_or(0),
        })),
        CHARGED => {
            let worker = row.opt_text("worker_id")?.ok_or_else(|| {
                StoreError::CorruptStore(format!("charged request {request_id} has no worker"))
            })?;
            let coefficient = Coefficient::try_from(row.i64("coefficient")?)
                .map_err(|e| StoreError::CorruptStore(format!("request {request_id}: {e}")))?;
            Ok(RequestEntry::Charged(ChargedRequest {
                seq,
                record: ChargeRecord {
                    request_id,
                    client,
                    worker: WorkerAccountId(worker),
                    coefficient,
                    tokens: CategoryTokens {
                        prompt: row.u64("prompt_tokens")?,
                        cached: row.u64("cached_tokens")?,
                        completion: row.u64("completion_tokens")?,
                        reasoning: row.u64("reasoning_tokens")?,
                    },
                    adjusted_tokens: row.u64("adjusted_tokens")?,
                    charged_tokens: row.u64("charged_tokens")?,
                    shortfall_tokens: row.u64("shortfall_tokens")?,
                    client_cost: row.u64("client_charge_nanoton")?,
                    worker_credit: row.u64("worker_credit_nanoton")?,
                    proxy_commission: row.u64("commission_nanoton")?,
                    client_tokens_used: row.u64("client_tokens_used")?,
                    worker_tokens_earned: row.u64("worker_tokens_earned")?,
                },
                shortfall_nanoton: row.u64("shortfall_nanoton")?,
                charged_at_ms: row.opt_u64("charged_at_ms")?.unwrap_or(0),
            }))
        }
        other => Err(StoreError::CorruptStore(format!(
            "request {request_id} has state {other}"
        ))),
    }
}

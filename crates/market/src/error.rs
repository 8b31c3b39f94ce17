//! The one error type of the crate: every way a pricing, booking or routing decision can be refused.

use crate::ids::{ClientId, RequestId, WorkerAccountId};
use crate::selection::Unavailability;

/// Why the market refused an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MarketError {
    /// The pricing parameters break a rule every parameter set must obey (the same rules the root
    /// contract enforces).
    #[error("invalid pricing parameters: {0}")]
    InvalidPricing(&'static str),

    /// The worker selection configuration is out of range.
    #[error("invalid worker selection configuration: {0}")]
    InvalidSelectionConfig(&'static str),

    /// A worker's pricing policy is out of range.
    #[error("invalid pricing policy: {0}")]
    InvalidPricePolicy(&'static str),

    /// A worker's pricing policy has its floor above its ceiling.
    #[error("invalid pricing policy: floor {floor} is above ceiling {ceiling}")]
    PriceBoundsInverted {
        /// The lowest coefficient asked for.
        floor: u32,
        /// The highest coefficient asked for.
        ceiling: u32,
    },

    /// A selection preference could not be read.
    #[error("invalid worker preference: expected latency, price or mix:W with W from 0 to 100")]
    InvalidPreference,

    /// A peer reported a negative token count.
    #[error("negative {category} token count {value}")]
    NegativeTokenCount {
        /// Which count (`prompt`, `cached`, `completion` or `reasoning`).
        category: &'static str,
        /// The value received.
        value: i64,
    },

    /// A coefficient received from a peer is negative or does not fit in 32 bits.
    #[error("invalid coefficient {0}: must be between 0 and 2147483647 (1000 = 1.0x)")]
    InvalidCoefficient(i64),

    /// A token count or amount of money does not fit in 64 bits (vouchers carry 64-bit counts).
    #[error("{0} overflows 64 bits")]
    Overflow(&'static str),

    /// The client's balance cannot cover a request's reservation.
    #[error(
        "insufficient balance: the request needs {needed_tokens} adjusted tokens, \
         {available_tokens} are available"
    )]
    InsufficientBalance {
        /// Adjusted tokens the request must reserve.
        needed_tokens: u64,
        /// Adjusted tokens the balance still covers after charges and other reservations.
        available_tokens: u64,
    },

    /// A reservation already exists for this request id.
    #[error("request {0} already holds a reservation")]
    DuplicateReservation(RequestId),

    /// No reservation is open for this request id (already settled or released).
    #[error("no open reservation for request {0}")]
    UnknownReservation(RequestId),

    /// The request id was already charged: it cannot reserve again.
    #[error("request {0} was already charged")]
    RequestAlreadyCharged(RequestId),

    /// The ledger has no account for this client (it was never synced from the chain).
    #[error("unknown client {0}")]
    UnknownClient(ClientId),

    /// A charge was priced with other per-token prices than the ledger's.
    #[error(
        "charge priced at {charge_price}/{charge_fee} nanoTON per token (price/worker fee), \
         the ledger at {ledger_price}/{ledger_fee}"
    )]
    PriceMismatch {
        /// Price per adjusted token the charge was computed with.
        charge_price: u64,
        /// Worker fee per adjusted token the charge was computed with.
        charge_fee: u64,
        /// The ledger's price per adjusted token.
        ledger_price: u64,
        /// The ledger's worker fee per adjusted token.
        ledger_fee: u64,
    },

    /// The client granted its refund (its channel is closing): it can no longer reserve or be
    /// charged.
    #[error("client {0} is closing: its refund was granted")]
    ClientClosed(ClientId),

    /// A refund cannot be granted while requests of the client are still in flight.
    #[error(
        "client {client} still has {reserved_tokens} adjusted tokens reserved by requests in flight"
    )]
    ReservationsOpen {
        /// The client.
        client: ClientId,
        /// Adjusted tokens still held.
        reserved_tokens: u64,
    },

    /// A request is charged to another client than the one its reservation was made for.
    #[error("request {request} was reserved for client {reserved_for}, not {charged_to}")]
    ReservationClientMismatch {
        /// The request.
        request: RequestId,
        /// The client holding the reservation.
        reserved_for: ClientId,
        /// The client the charge names.
        charged_to: ClientId,
    },

    /// The ledger has no account for this worker (it never earned anything here).
    #[error("unknown worker account {0}")]
    UnknownWorker(WorkerAccountId),

    /// A worker contract reports more paid out than the worker ever earned here.
    #[error(
        "worker {worker} reports {paid_tokens} adjusted tokens paid out, it earned {earned_tokens}"
    )]
    PayoutExceedsEarnings {
        /// The worker account.
        worker: WorkerAccountId,
        /// The cumulative count paid out on chain.
        paid_tokens: u64,
        /// The cumulative count the ledger credited.
        earned_tokens: u64,
    },

    /// No worker can take the request now.
    #[error("no worker available for model {model:?}: {reason}")]
    NoWorkerAvailable {
        /// The model the client asked for.
        model: String,
        /// Why the closest candidate was refused.
        reason: Unavailability,
    },
}

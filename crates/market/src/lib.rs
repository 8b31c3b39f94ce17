//! Worker selection, pricing, metering and reservations: the market a proxy runs between clients
//! who pay and workers who serve.
//!
//! Everything here is sans-IO: no sockets, no clock, no randomness. Time comes in as
//! [`std::time::Instant`] arguments, money and tokens as integers, and every decision is a pure
//! function of the state and the inputs, so the proxy can test its books without a network.
//!
//! # Modules
//!
//! - [`pricing`]: token counts → adjusted tokens → nanoTON, and who gets what ([`Charge`]).
//! - [`reservation`]: holding a client's balance for a request before it runs ([`Account`]).
//! - [`ledger`]: every client's and worker's books, idempotent per request, as replayable
//!   records for a storage backend ([`Ledger`]).
//! - [`price_policy`]: how a worker sets its own coefficient, fixed or following its load
//!   within bounds ([`PriceController`]).
//! - [`selection`]: which worker gets a request, with reputation and cool-downs
//!   ([`WorkerSelector`]).
//! - [`simulation`]: a seeded, simulated market of the selector and pricing policies (no network,
//!   no clock), for the figures in `docs/market.md` and the tests on them.
//!
//! The same books kept in SQLite or PostgreSQL (idempotent per request id, anchoring, group
//! commit) are the crate `cocoon-ledger-store`, which applies these rules through
//! [`reservation::AccountBooks`] and [`Account::from_books`].
//!
//! # Money rules
//!
//! The unit of account is the *adjusted token*: what vouchers count and contracts multiply by the
//! price. A worker meters four token counts per request the way OpenAI reports them (`prompt`
//! including `cached`, `completion` including `reasoning`); they are split into four disjoint
//! categories: uncached prompt, cached prompt, visible completion, reasoning. Each category is
//! weighted by its multiplier (10000 = 1.0×) and by the serving worker's coefficient
//! (1000 = 1.0×), floored once per category:
//!
//! `adjusted = floor(count × coefficient × multiplier / 10^7)`
//!
//! The client pays `adjusted_total × price_per_token` nanoTON, the worker earns
//! `adjusted_total × worker_fee_per_token`, and the proxy keeps the difference. Because the money
//! is derived from one integer total, `client_cost = worker_credit + proxy_commission` holds to
//! the nanoTON.
//!
//! ## Worked example
//!
//! With the default (local-mode) prices, 20 nanoTON per adjusted token of which 16 go to the
//! worker, and multipliers prompt 1.0×, cached 0.1×, completion and reasoning 4.0×: a request
//! with 1,200 prompt tokens (200 of them cached) and 500 completion tokens (100 of them
//! reasoning), served by a worker at coefficient 1.5×, costs
//!
//! | category | tokens | × coefficient × multiplier | adjusted |
//! | --- | ---: | --- | ---: |
//! | uncached prompt | 1,000 | × 1.5 × 1.0 | 1,500 |
//! | cached prompt | 200 | × 1.5 × 0.1 | 30 |
//! | visible completion | 400 | × 1.5 × 4.0 | 2,400 |
//! | reasoning | 100 | × 1.5 × 4.0 | 600 |
//! | **total** | | | **4,530** |
//!
//! so the client pays 4,530 × 20 = 90,600 nanoTON (`usage` shows `prompt_total_cost` 30,600 and
//! `completion_total_cost` 60,000), the worker earns 4,530 × 16 = 72,480 and the proxy keeps
//! 4,530 × 4 = 18,120:
//!
//! ```
//! use cocoon_market::{Coefficient, PricingParams, TokenCounts};
//!
//! let counts = TokenCounts { prompt: 1200, cached: 200, completion: 500, reasoning: 100 };
//! let charge = PricingParams::default().charge(&counts, Coefficient::new(1500)?)?;
//! assert_eq!(charge.adjusted_total(), 4530);
//! assert_eq!(charge.client_cost(), 90_600);
//! assert_eq!(charge.worker_credit(), 72_480);
//! assert_eq!(charge.proxy_commission(), 18_120);
//! assert_eq!(charge.usage_costs().prompt_total_cost, 30_600);
//! # Ok::<(), cocoon_market::MarketError>(())
//! ```
//!
//! ## Reservations and shortfalls
//!
//! Before a request is forwarded, the client's balance must cover its worst case
//! ([`reservation::required_tokens`]): the body size in bytes at the dearer prompt multiplier
//! plus `max_tokens` at the dearer completion multiplier, both at the client's maximum
//! coefficient. With the defaults, a 2,000-byte body and `max_tokens` 1,000 at a maximum of 4.0×
//! hold 8,000 + 16,000 = 24,000 adjusted tokens (480,000 nanoTON) until the request ends.
//!
//! When it ends the reservation is released and the real cost charged. A worker that produced
//! more than `max_tokens` can cost more than was reserved; the client is then charged what its
//! balance still covers, never more, and the rest is *shortfall*: the worker is still credited
//! in full and the proxy, which admitted the request, bears the loss (just as a client contract
//! caps an over-large voucher at the balance). The [`Ledger`] totals therefore always satisfy
//! `client_charged + shortfall = worker_credited + proxy_commission`.

pub mod audit;
mod error;
mod ids;
pub mod ledger;
pub mod price_policy;
pub mod pricing;
pub mod reservation;
pub mod selection;
pub mod simulation;
pub mod total;

pub use error::MarketError;
pub use ids::{ClientId, RequestId, WorkerAccountId, WorkerId};
pub use ledger::{ChargeOutcome, ChargeRecord, Ledger, LedgerRecord, LedgerTotals};
pub use price_policy::{LoadSample, PolicyKind, PriceController, PricePolicy};
pub use pricing::{Charge, Coefficient, PricingParams, TokenCounts, UsageCosts};
pub use reservation::{Account, AccountBooks, ChainClientState, Reservation, Settlement};
pub use selection::{
    Dispatch, MarketSignals, ModelSummary, Outcome, Preference, SelectionConfig, Unavailability,
    WorkerInfo, WorkerSelector, WorkerStats,
};

//! The proxy's books: every client's account, every worker's earnings and the proxy's commission.
//!
//! Durable changes (chain syncs, deposits, charges) return a [`LedgerRecord`]; a storage backend
//! appends the records and rebuilds the books with [`Ledger::replay`]. Reservations are not
//! records: they belong to requests in flight, which do not survive a restart.

use std::collections::{BTreeMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::MarketError;
use crate::ids::{ClientId, RequestId, WorkerAccountId};
use crate::pricing::{CategoryTokens, Charge, Coefficient, PricingParams};
use crate::reservation::{Account, ChainClientState, Reservation, required_tokens};

/// How many charged request ids the in-memory ledger remembers to refuse a replayed charge.
///
/// A storage backend keeps every id (a unique key), so the window only matters for a ledger
/// without one; 100,000 ids cost a few MiB.
pub const DEFAULT_IDEMPOTENCY_WINDOW: usize = 100_000;

/// A worker account's earnings.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct WorkerAccount {
    /// Cumulative adjusted tokens earned: the value of the worker's next payout voucher.
    pub tokens_earned: u64,
    /// Requests charged for this worker.
    pub requests: u64,
}

/// The books of one charged request.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ChargeRecord {
    /// The request.
    pub request_id: RequestId,
    /// Who paid.
    pub client: ClientId,
    /// Who did the work.
    pub worker: WorkerAccountId,
    /// The worker's coefficient.
    pub coefficient: Coefficient,
    /// Raw token counts per billing category.
    pub tokens: CategoryTokens,
    /// Adjusted tokens the request cost (credited to the worker in full).
    pub adjusted_tokens: u64,
    /// Adjusted tokens charged to the client (less than `adjusted_tokens` only on a shortfall).
    pub charged_tokens: u64,
    /// `adjusted_tokens − charged_tokens`.
    pub shortfall_tokens: u64,
    /// NanoTON charged to the client: `charged_tokens × price`.
    pub client_cost: u64,
    /// NanoTON credited to the worker: `adjusted_tokens × worker_fee`.
    pub worker_credit: u64,
    /// NanoTON the proxy keeps: `adjusted_tokens × (price − worker_fee)`.
    pub proxy_commission: u64,
    /// The client's cumulative charged tokens afterwards (its next charge voucher).
    pub client_tokens_used: u64,
    /// The worker's cumulative earned tokens afterwards (its next payout voucher).
    pub worker_tokens_earned: u64,
}

/// A durable change to the books.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum LedgerRecord {
    /// A client contract's state was read from the chain.
    ClientSynced {
        /// The client.
        client: ClientId,
        /// What the chain says.
        state: ChainClientState,
    },
    /// A top-up was seen on chain.
    Deposited {
        /// The client.
        client: ClientId,
        /// NanoTON added to the balance.
        nanoton: u64,
    },
    /// A request was charged.
    RequestCharged(ChargeRecord),
}

/// The result of [`Ledger::charge_request`].
#[derive(Clone, PartialEq, Eq, Debug)]
#[must_use]
pub enum ChargeOutcome {
    /// The request was charged; persist `LedgerRecord::RequestCharged(record)`.
    Charged(ChargeRecord),
    /// The request id was charged before: nothing changed.
    AlreadyCharged,
}

/// Sums over every charge, in nanoTON (and adjusted tokens).
///
/// They always satisfy `client_charged + shortfall = worker_credited + proxy_commission`; with no
/// shortfall, what clients paid is exactly what workers earned plus the proxy's commission.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct LedgerTotals {
    /// Requests charged.
    pub requests: u64,
    /// Adjusted tokens of all charged requests.
    pub adjusted_tokens: u128,
    /// NanoTON charged to clients.
    pub client_charged: u128,
    /// NanoTON credited to workers.
    pub worker_credited: u128,
    /// NanoTON of commission (before shortfalls).
    pub proxy_commission: u128,
    /// NanoTON clients used but could not pay; the proxy bears it.
    pub shortfall: u128,
}

impl LedgerTotals {
    /// Whether money in equals money out: `client_charged + shortfall = worker_credited +
    /// proxy_commission`.
    pub fn is_balanced(&self) -> bool {
        self.client_charged + self.shortfall == self.worker_credited + self.proxy_commission
    }

    /// The proxy's commission less what it lost to shortfalls (negative when it lost more).
    pub fn proxy_net(&self) -> i128 {
        let commission = i128::try_from(self.proxy_commission).unwrap_or(i128::MAX);
        let shortfall = i128::try_from(self.shortfall).unwrap_or(i128::MAX);
        commission.saturating_sub(shortfall)
    }
}

/// The in-memory books of one proxy contract (one price list).
#[derive(Clone, Debug)]
pub struct Ledger {
    pricing: PricingParams,
    clients: BTreeMap<ClientId, Account>,
    workers: BTreeMap<WorkerAccountId, WorkerAccount>,
    charged: HashSet<RequestId>,
    charged_order: VecDeque<RequestId>,
    idempotency_window: usize,
    totals: LedgerTotals,
}

impl Ledger {
    /// Empty books priced with `pricing`.
    pub fn new(pricing: PricingParams) -> Result<Self, MarketError> {
        pricing.validate()?;
        Ok(Self {
            pricing,
            clients: BTreeMap::new(),
            workers: BTreeMap::new(),
            charged: HashSet::new(),
            charged_order: VecDeque::new(),
            idempotency_window: DEFAULT_IDEMPOTENCY_WINDOW,
            totals: LedgerTotals::default(),
        })
    }

    /// Remembers the last `window` charged request ids (at least one) instead of
    /// [`DEFAULT_IDEMPOTENCY_WINDOW`].
    pub fn with_idempotency_window(mut self, window: usize) -> Self {
        self.idempotency_window = window.max(1);
        self.forget_beyond_window();
        self
    }

    /// Rebuilds the books from stored records, in the order they were produced.
    pub fn replay<'a>(
        pricing: PricingParams,
        records: impl IntoIterator<Item = &'a LedgerRecord>,
    ) -> Result<Self, MarketError> {
        let mut ledger = Self::new(pricing)?;
        for record in records {
            ledger.apply(record)?;
        }
        Ok(ledger)
    }

    /// The prices.
    pub fn pricing(&self) -> &PricingParams {
        &self.pricing
    }

    /// A client's account.
    pub fn client(&self, client: &ClientId) -> Option<&Account> {
        self.clients.get(client)
    }

    /// Every client account, ordered by id.
    pub fn clients(&self) -> impl Iterator<Item = (&ClientId, &Account)> {
        self.clients.iter()
    }

    /// A worker account's earnings.
    pub fn worker(&self, worker: &WorkerAccountId) -> Option<&WorkerAccount> {
        self.workers.get(worker)
    }

    /// Every worker account, ordered by id.
    pub fn workers(&self) -> impl Iterator<Item = (&WorkerAccountId, &WorkerAccount)> {
        self.workers.iter()
    }

    /// Sums over every charge.
    pub fn totals(&self) -> LedgerTotals {
        self.totals
    }

    /// Whether `request_id` was charged (within the idempotency window).
    pub fn is_charged(&self, request_id: &RequestId) -> bool {
        self.charged.contains(request_id)
    }

    /// Takes in a client contract's state read from the chain, opening the account if needed.
    pub fn sync_client(
        &mut self,
        client: &ClientId,
        state: ChainClientState,
    ) -> Result<LedgerRecord, MarketError> {
        let record = LedgerRecord::ClientSynced {
            client: client.clone(),
            state,
        };
        self.apply(&record)?;
        Ok(record)
    }

    /// Adds a top-up seen on chain, opening the account if needed.
    pub fn deposit(
        &mut self,
        client: &ClientId,
        nanoton: u64,
    ) -> Result<LedgerRecord, MarketError> {
        let record = LedgerRecord::Deposited {
            client: client.clone(),
            nanoton,
        };
        self.apply(&record)?;
        Ok(record)
    }

    /// Holds `tokens` adjusted tokens of `client`'s balance for `request_id`.
    pub fn reserve(
        &mut self,
        client: &ClientId,
        request_id: RequestId,
        tokens: u64,
    ) -> Result<Reservation, MarketError> {
        if self.charged.contains(&request_id) {
            return Err(MarketError::RequestAlreadyCharged(request_id));
        }
        self.account_mut(client)?.reserve(request_id, tokens)
    }

    /// Holds what a request may cost at most (see [`required_tokens`]).
    pub fn reserve_for_request(
        &mut self,
        client: &ClientId,
        request_id: RequestId,
        max_coefficient: Coefficient,
        max_tokens: u64,
        body_bytes: u64,
    ) -> Result<Reservation, MarketError> {
        let tokens = required_tokens(&self.pricing, max_coefficient, max_tokens, body_bytes)?;
        self.reserve(client, request_id, tokens)
    }

    /// Gives a reservation back (the request failed and costs nothing).
    pub fn release(
        &mut self,
        client: &ClientId,
        reservation: Reservation,
    ) -> Result<(), MarketError> {
        self.account_mut(client)?.release(reservation)
    }

    /// Charges `client` and credits `worker` for one finished request, settling the request's
    /// reservation if it holds one.
    ///
    /// Idempotent per request id: charging an id again changes nothing and answers
    /// [`ChargeOutcome::AlreadyCharged`]. The worker is credited the full adjusted total; if the
    /// client's balance covers less, the client pays what it has and the rest is shortfall.
    pub fn charge_request(
        &mut self,
        client: &ClientId,
        worker: &WorkerAccountId,
        request_id: RequestId,
        charge: &Charge,
    ) -> Result<ChargeOutcome, MarketError> {
        if self.charged.contains(&request_id) {
            return Ok(ChargeOutcome::AlreadyCharged);
        }
        if charge.price_per_token() != self.pricing.price_per_token
            || charge.worker_fee_per_token() != self.pricing.worker_fee_per_token
        {
            return Err(MarketError::PriceMismatch {
                charge_price: charge.price_per_token(),
                charge_fee: charge.worker_fee_per_token(),
                ledger_price: self.pricing.price_per_token,
                ledger_fee: self.pricing.worker_fee_per_token,
            });
        }
        let adjusted_tokens = charge.adjusted_total();
        let worker_tokens_earned = self
            .workers
            .get(worker)
            .map_or(0, |w| w.tokens_earned)
            .checked_add(adjusted_tokens)
            .ok_or(MarketError::Overflow("worker tokens earned"))?;
        let account = self.account_mut(client)?;
        let settlement = match account.reservation(&request_id) {
            Some(reservation) => account.settle(reservation, adjusted_tokens)?,
            None => account.charge(adjusted_tokens),
        };
        // charged ≤ adjusted and adjusted × price fits (the charge computed it): no overflow.
        let client_cost = settlement.charged_tokens * self.pricing.price_per_token;
        let record = ChargeRecord {
            request_id,
            client: client.clone(),
            worker: worker.clone(),
            coefficient: charge.coefficient(),
            tokens: charge.billed_tokens(),
            adjusted_tokens,
            charged_tokens: settlement.charged_tokens,
            shortfall_tokens: settlement.shortfall_tokens,
            client_cost,
            worker_credit: charge.worker_credit(),
            proxy_commission: charge.proxy_commission(),
            client_tokens_used: settlement.tokens_used,
            worker_tokens_earned,
        };
        self.book_worker_and_totals(&record);
        Ok(ChargeOutcome::Charged(record))
    }

    /// Applies a stored record (used by [`Ledger::replay`]). A charge whose request id is already
    /// booked is skipped.
    pub fn apply(&mut self, record: &LedgerRecord) -> Result<(), MarketError> {
        match record {
            LedgerRecord::ClientSynced { client, state } => {
                self.account_or_open(client)?.sync_chain(*state);
            }
            LedgerRecord::Deposited { client, nanoton } => {
                self.account_or_open(client)?.deposit(*nanoton)?;
            }
            LedgerRecord::RequestCharged(charge) => {
                if self.charged.contains(&charge.request_id) {
                    return Ok(());
                }
                self.account_or_open(&charge.client)?
                    .replay_charge(charge.charged_tokens, charge.shortfall_tokens);
                self.book_worker_and_totals(charge);
            }
        }
        Ok(())
    }

    fn account_mut(&mut self, client: &ClientId) -> Result<&mut Account, MarketError> {
        self.clients
            .get_mut(client)
            .ok_or_else(|| MarketError::UnknownClient(client.clone()))
    }

    fn account_or_open(&mut self, client: &ClientId) -> Result<&mut Account, MarketError> {
        if !self.clients.contains_key(client) {
            self.clients
                .insert(client.clone(), Account::new(self.pricing.price_per_token)?);
        }
        self.account_mut(client)
    }

    /// Books the worker's side of a charge and the totals; the client's side is already done.
    /// Money is derived from the token counts with the ledger's prices.
    fn book_worker_and_totals(&mut self, record: &ChargeRecord) {
        let worker = self.workers.entry(record.worker.clone()).or_default();
        worker.tokens_earned = worker.tokens_earned.saturating_add(record.adjusted_tokens);
        worker.requests = worker.requests.saturating_add(1);

        let price = u128::from(self.pricing.price_per_token);
        let fee = u128::from(self.pricing.worker_fee_per_token);
        let adjusted = u128::from(record.adjusted_tokens);
        let t = &mut self.totals;
        t.requests = t.requests.saturating_add(1);
        t.adjusted_tokens = t.adjusted_tokens.saturating_add(adjusted);
        t.client_charged = t
            .client_charged
            .saturating_add(u128::from(record.charged_tokens) * price);
        t.worker_credited = t.worker_credited.saturating_add(adjusted * fee);
        t.proxy_commission = t.proxy_commission.saturating_add(adjusted * (price - fee));
        t.shortfall = t
            .shortfall
            .saturating_add(u128::from(record.shortfall_tokens) * price);

        self.charged.insert(record.request_id);
        self.charged_order.push_back(record.request_id);
        self.forget_beyond_window();
    }

    fn forget_beyond_window(&mut self) {
        while self.charged_order.len() > self.idempotency_window {
            if let Some(old) = self.charged_order.pop_front() {
                self.charged.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::pricing::TokenCounts;

    fn alice() -> ClientId {
        ClientId("alice".into())
    }

    fn gpu() -> WorkerAccountId {
        WorkerAccountId("gpu".into())
    }

    fn charge(prompt: u64, completion: u64) -> Charge {
        PricingParams::default()
            .charge(
                &TokenCounts {
                    prompt,
                    cached: 0,
                    completion,
                    reasoning: 0,
                },
                Coefficient::ONE,
            )
            .unwrap()
    }

    #[test]
    fn charging_is_idempotent_per_request() {
        let mut ledger = Ledger::new(PricingParams::default()).unwrap();
        ledger
            .sync_client(
                &alice(),
                ChainClientState {
                    balance: 1_000_000,
                    stake: 0,
                    tokens_used: 0,
                },
            )
            .unwrap();
        let id = RequestId([7; 32]);
        let r = ledger
            .reserve_for_request(&alice(), id, Coefficient::ONE, 100, 50)
            .unwrap();
        assert_eq!(r.tokens(), 50 + 400);
        let c = charge(40, 90); // 40 + 360 adjusted tokens = 8000 nanoTON
        let ChargeOutcome::Charged(record) =
            ledger.charge_request(&alice(), &gpu(), id, &c).unwrap()
        else {
            panic!("first charge must book");
        };
        assert_eq!(record.adjusted_tokens, 400);
        assert_eq!(record.client_cost, 8000);
        assert_eq!(record.worker_credit, 6400);
        assert_eq!(record.proxy_commission, 1600);
        assert_eq!(record.client_tokens_used, 400);
        assert_eq!(record.worker_tokens_earned, 400);
        assert_eq!(
            ledger.charge_request(&alice(), &gpu(), id, &c).unwrap(),
            ChargeOutcome::AlreadyCharged
        );
        assert_eq!(ledger.client(&alice()).unwrap().tokens_used(), 400);
        assert_eq!(ledger.client(&alice()).unwrap().reserved(), 0);
        assert_eq!(ledger.worker(&gpu()).unwrap().tokens_earned, 400);
        assert_eq!(
            ledger.reserve(&alice(), id, 1),
            Err(MarketError::RequestAlreadyCharged(id))
        );
        let t = ledger.totals();
        assert_eq!(
            (t.client_charged, t.worker_credited, t.proxy_commission),
            (8000, 6400, 1600)
        );
        assert!(t.is_balanced());
    }

    #[test]
    fn unknown_clients_and_foreign_prices_are_refused() {
        let mut ledger = Ledger::new(PricingParams::default()).unwrap();
        let id = RequestId([1; 32]);
        assert_eq!(
            ledger.reserve(&alice(), id, 1),
            Err(MarketError::UnknownClient(alice()))
        );
        assert_eq!(
            ledger.charge_request(&alice(), &gpu(), id, &charge(1, 1)),
            Err(MarketError::UnknownClient(alice()))
        );
        ledger.deposit(&alice(), 100).unwrap();
        let dear = PricingParams {
            price_per_token: 25,
            ..PricingParams::default()
        }
        .charge(&TokenCounts::default(), Coefficient::ONE)
        .unwrap();
        assert!(matches!(
            ledger.charge_request(&alice(), &gpu(), id, &dear),
            Err(MarketError::PriceMismatch {
                charge_price: 25,
                ledger_price: 20,
                ..
            })
        ));
        assert!(!ledger.is_charged(&id));
    }

    #[test]
    fn shortfall_is_borne_by_the_proxy() {
        let mut ledger = Ledger::new(PricingParams::default()).unwrap();
        ledger.deposit(&alice(), 2000).unwrap(); // 100 tokens
        let c = charge(50, 100); // 450 adjusted tokens
        let ChargeOutcome::Charged(record) = ledger
            .charge_request(&alice(), &gpu(), RequestId([2; 32]), &c)
            .unwrap()
        else {
            panic!("must book");
        };
        assert_eq!(record.charged_tokens, 100);
        assert_eq!(record.shortfall_tokens, 350);
        assert_eq!(record.client_cost, 2000);
        assert_eq!(record.worker_credit, 450 * 16);
        let t = ledger.totals();
        assert_eq!(t.shortfall, 350 * 20);
        assert!(t.is_balanced());
        assert_eq!(t.proxy_net(), 450 * 4 - 350 * 20);
    }

    #[test]
    fn replay_rebuilds_the_same_books() {
        let mut ledger = Ledger::new(PricingParams::default()).unwrap();
        let mut log = vec![
            ledger
                .sync_client(
                    &alice(),
                    ChainClientState {
                        balance: 50_000,
                        stake: 10_000,
                        tokens_used: 0,
                    },
                )
                .unwrap(),
            ledger.deposit(&alice(), 10_000).unwrap(),
        ];
        for n in 0..5u8 {
            let id = RequestId([n; 32]);
            let r = ledger.reserve(&alice(), id, 500).unwrap();
            if n == 3 {
                ledger.release(&alice(), r).unwrap();
                continue;
            }
            if let ChargeOutcome::Charged(rec) = ledger
                .charge_request(&alice(), &gpu(), id, &charge(u64::from(n) * 10, 20))
                .unwrap()
            {
                log.push(LedgerRecord::RequestCharged(rec));
            }
        }
        // A duplicated record in storage is harmless.
        log.push(log[2].clone());
        let json = serde_json::to_string(&log).unwrap();
        let stored: Vec<LedgerRecord> = serde_json::from_str(&json).unwrap();
        let rebuilt = Ledger::replay(PricingParams::default(), &stored).unwrap();
        assert_eq!(rebuilt.totals(), ledger.totals());
        assert_eq!(rebuilt.worker(&gpu()), ledger.worker(&gpu()));
        let (a, b) = (
            rebuilt.client(&alice()).unwrap(),
            ledger.client(&alice()).unwrap(),
        );
        assert_eq!(a.tokens_used(), b.tokens_used());
        assert_eq!(a.balance(), b.balance());
        assert_eq!(a.available_tokens(), b.available_tokens());
    }

    #[test]
    fn the_idempotency_window_is_bounded() {
        let mut ledger = Ledger::new(PricingParams::default())
            .unwrap()
            .with_idempotency_window(2);
        ledger.deposit(&alice(), 1_000_000).unwrap();
        for n in 0..3u8 {
            let out = ledger.charge_request(&alice(), &gpu(), RequestId([n; 32]), &charge(1, 1));
            assert!(matches!(out, Ok(ChargeOutcome::Charged(_))));
        }
        assert!(!ledger.is_charged(&RequestId([0; 32])));
        assert!(ledger.is_charged(&RequestId([1; 32])));
        assert!(ledger.is_charged(&RequestId([2; 32])));
    }
}

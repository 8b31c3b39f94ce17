//! Holds part of a client's balance for each request before it runs, so that concurrent requests
//! cannot spend the same nanoTON twice, and settles the hold against what the request really
//! cost.
//!
//! Amounts are in adjusted tokens, the unit vouchers count: the price per token is fixed for the
//! life of a client contract, so a token count converts to nanoTON exactly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::MarketError;
use crate::ids::RequestId;
use crate::pricing::{Coefficient, PricingParams};

/// Adjusted tokens a request must reserve before it is sent to a worker.
///
/// The reference rule is "`max_tokens` plus the body size in bytes, adjusted with the client's
/// maximum coefficient". Ours prices the two parts separately, each with the dearest multiplier
/// its tokens could be billed at:
///
/// `adjust(body_bytes, max_coefficient, max(prompt, cached multiplier))
///  + adjust(max_tokens, max_coefficient, max(completion, reasoning multiplier))`
///
/// with `adjust` as in [`PricingParams::adjust`]. Since a prompt never has more tokens than its
/// request body has bytes, a worker's coefficient is at most the client's maximum, and flooring
/// per category never rounds up, this bounds the real charge of any request that produces at
/// most `max_tokens` completion tokens, while reserving 4× less for the prompt than pricing the
/// whole sum at the completion multiplier would (with the default multipliers).
pub fn required_tokens(
    pricing: &PricingParams,
    max_coefficient: Coefficient,
    max_tokens: u64,
    body_bytes: u64,
) -> Result<u64, MarketError> {
    let prompt = PricingParams::adjust(
        body_bytes,
        max_coefficient,
        pricing.prompt_multiplier.max(pricing.cached_multiplier),
    );
    let completion = PricingParams::adjust(
        max_tokens,
        max_coefficient,
        pricing
            .completion_multiplier
            .max(pricing.reasoning_multiplier),
    );
    u64::try_from(prompt + completion).map_err(|_| MarketError::Overflow("reservation"))
}

/// A client contract's state as read from the chain.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct ChainClientState {
    /// NanoTON the contract holds for the client, after the charges already submitted.
    pub balance: u64,
    /// The part of the balance the client cannot withdraw while the channel is open.
    pub stake: u64,
    /// Cumulative adjusted tokens the contract has already been charged (its `tokensUsed`).
    pub tokens_used: u64,
}

/// Balance held for one request in flight. It is a receipt: the account keeps the amount, and
/// settling or releasing the same reservation twice is refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Reservation {
    request_id: RequestId,
    tokens: u64,
}

impl Reservation {
    /// A receipt for a reservation a store holds.
    pub fn held(request_id: RequestId, tokens: u64) -> Self {
        Self { request_id, tokens }
    }

    /// The request the balance is held for.
    pub fn request_id(&self) -> RequestId {
        self.request_id
    }

    /// Adjusted tokens held.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }
}

/// The outcome of charging a client for one request.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Settlement {
    /// Adjusted tokens the request cost.
    pub metered_tokens: u64,
    /// Adjusted tokens charged to the client: `metered_tokens`, or what was left of its balance
    /// if that was less.
    pub charged_tokens: u64,
    /// `metered_tokens − charged_tokens`: what the client could not pay. The proxy bears it (it
    /// admitted the request), exactly as the client contract caps an over-large voucher at the
    /// balance.
    pub shortfall_tokens: u64,
    /// The client's cumulative charged tokens afterwards: the value of its next charge voucher.
    pub tokens_used: u64,
}

/// The stored fields of an [`Account`] (everything but the individual reservations), as a
/// ledger store keeps them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccountBooks {
    /// The contract's balance, nanoTON.
    pub balance: u64,
    /// The part of the balance that is stake, nanoTON.
    pub stake: u64,
    /// The cumulative adjusted tokens the chain has seen charged.
    pub tokens_on_chain: u64,
    /// The cumulative adjusted tokens charged here (the next charge voucher's total).
    pub tokens_used: u64,
    /// Adjusted tokens held by requests in flight.
    pub reserved: u64,
    /// Adjusted tokens served beyond what the balance covered.
    pub shortfall_tokens: u64,
}

/// One client's books at this proxy: the chain's view of its contract plus the charges and
/// reservations made since.
///
/// The balance covers `token_limit() = chain tokens_used + balance / price` cumulative adjusted
/// tokens. The stake is part of the balance (it may be spent; it only cannot be withdrawn).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Account {
    price_per_token: u64,
    balance: u64,
    stake: u64,
    tokens_on_chain: u64,
    tokens_used: u64,
    reserved: u64,
    shortfall_tokens: u64,
    open: BTreeMap<RequestId, u64>,
}

impl Account {
    /// An empty account whose contract charges `price_per_token` nanoTON per adjusted token.
    pub fn new(price_per_token: u64) -> Result<Self, MarketError> {
        if price_per_token == 0 {
            return Err(MarketError::InvalidPricing(
                "price_per_token must be positive",
            ));
        }
        Ok(Self {
            price_per_token,
            balance: 0,
            stake: 0,
            tokens_on_chain: 0,
            tokens_used: 0,
            reserved: 0,
            shortfall_tokens: 0,
            open: BTreeMap::new(),
        })
    }

    /// Takes in the contract's state as read from the chain.
    ///
    /// Charges the ledger made that the chain has not seen yet stay charged; a chain count above
    /// the ledger's (charges this ledger does not know, e.g. after a restore from an old backup)
    /// is taken as the new floor, so the client is never charged twice for them.
    pub fn sync_chain(&mut self, state: ChainClientState) {
        self.balance = state.balance;
        self.stake = state.stake;
        self.tokens_on_chain = state.tokens_used;
        self.tokens_used = self.tokens_used.max(state.tokens_used);
    }

    /// Adds a top-up seen on chain before the next full sync.
    pub fn deposit(&mut self, nanoton: u64) -> Result<(), MarketError> {
        self.balance = self
            .balance
            .checked_add(nanoton)
            .ok_or(MarketError::Overflow("client balance"))?;
        Ok(())
    }

    /// NanoTON per adjusted token.
    pub fn price_per_token(&self) -> u64 {
        self.price_per_token
    }

    /// NanoTON the contract holds, as last read from the chain (plus deposits seen since).
    pub fn balance(&self) -> u64 {
        self.balance
    }

    /// The stake, as last read from the chain.
    pub fn stake(&self) -> u64 {
        self.stake
    }

    /// Cumulative adjusted tokens charged: the value of the client's latest charge voucher.
    pub fn tokens_used(&self) -> u64 {
        self.tokens_used
    }

    /// Cumulative adjusted tokens the chain has already been charged.
    pub fn tokens_on_chain(&self) -> u64 {
        self.tokens_on_chain
    }

    /// Adjusted tokens held by requests in flight.
    pub fn reserved(&self) -> u64 {
        self.reserved
    }

    /// Number of requests in flight holding a reservation.
    pub fn open_reservations(&self) -> usize {
        self.open.len()
    }

    /// Cumulative adjusted tokens the client used but could not pay.
    pub fn shortfall_tokens(&self) -> u64 {
        self.shortfall_tokens
    }

    /// The cumulative adjusted-token count the balance covers.
    pub fn token_limit(&self) -> u64 {
        self.tokens_on_chain
            .saturating_add(self.balance / self.price_per_token)
    }

    /// Adjusted tokens a new request may still reserve.
    pub fn available_tokens(&self) -> u64 {
        self.token_limit()
            .saturating_sub(self.tokens_used)
            .saturating_sub(self.reserved)
    }

    /// The balance left once every charge made so far reaches the chain, in nanoTON.
    pub fn remaining_balance(&self) -> u64 {
        let unsubmitted = self.tokens_used.saturating_sub(self.tokens_on_chain);
        self.balance
            .saturating_sub(unsubmitted.saturating_mul(self.price_per_token))
    }

    /// Holds `tokens` adjusted tokens for `request_id`.
    pub fn reserve(
        &mut self,
        request_id: RequestId,
        tokens: u64,
    ) -> Result<Reservation, MarketError> {
        if self.open.contains_key(&request_id) {
            return Err(MarketError::DuplicateReservation(request_id));
        }
        let available = self.available_tokens();
        if tokens > available {
            return Err(MarketError::InsufficientBalance {
                needed_tokens: tokens,
                available_tokens: available,
            });
        }
        // reserved + tokens ≤ token_limit − tokens_used: no overflow.
        self.reserved += tokens;
        self.open.insert(request_id, tokens);
        Ok(Reservation { request_id, tokens })
    }

    /// Gives the held balance back (the request failed and costs nothing).
    pub fn release(&mut self, reservation: Reservation) -> Result<(), MarketError> {
        self.close(reservation.request_id).map(|_| ())
    }

    /// Ends a reservation and charges what the request really cost, which may exceed the
    /// reservation (a worker that produced more tokens than `max_tokens`).
    pub fn settle(
        &mut self,
        reservation: Reservation,
        metered_tokens: u64,
    ) -> Result<Settlement, MarketError> {
        self.close(reservation.request_id)?;
        Ok(self.charge(metered_tokens))
    }

    /// Charges `metered_tokens` without a reservation.
    ///
    /// The charge is capped at what the balance still covers (`token_limit − tokens_used`;
    /// other requests' reservations are estimates and do not protect against a real cost), and
    /// the rest is recorded as shortfall: the balance never goes negative.
    pub fn charge(&mut self, metered_tokens: u64) -> Settlement {
        let payable = self.token_limit().saturating_sub(self.tokens_used);
        let charged_tokens = metered_tokens.min(payable);
        let shortfall_tokens = metered_tokens - charged_tokens;
        self.tokens_used += charged_tokens;
        self.shortfall_tokens = self.shortfall_tokens.saturating_add(shortfall_tokens);
        Settlement {
            metered_tokens,
            charged_tokens,
            shortfall_tokens,
            tokens_used: self.tokens_used,
        }
    }

    /// Whether `request_id` holds a reservation.
    pub fn is_reserved(&self, request_id: &RequestId) -> bool {
        self.open.contains_key(request_id)
    }

    /// The open reservation of `request_id`, if any.
    pub fn reservation(&self, request_id: &RequestId) -> Option<Reservation> {
        self.open.get(request_id).map(|&tokens| Reservation {
            request_id: *request_id,
            tokens,
        })
    }

    /// An account rebuilt from stored books, with `reserved` adjusted tokens held by requests
    /// whose reservations the store keeps itself (so this account knows the sum, not the
    /// requests). Used by the ledger store to apply the same charging rules as the in-memory
    /// ledger.
    pub fn from_books(price_per_token: u64, books: AccountBooks) -> Result<Self, MarketError> {
        let mut account = Self::new(price_per_token)?;
        account.balance = books.balance;
        account.stake = books.stake;
        account.tokens_on_chain = books.tokens_on_chain;
        account.tokens_used = books.tokens_used;
        account.reserved = books.reserved;
        account.shortfall_tokens = books.shortfall_tokens;
        Ok(account)
    }

    /// Records a charge replayed from storage: its outcome is already decided.
    pub(crate) fn replay_charge(&mut self, charged_tokens: u64, shortfall_tokens: u64) {
        self.tokens_used = self.tokens_used.saturating_add(charged_tokens);
        self.shortfall_tokens = self.shortfall_tokens.saturating_add(shortfall_tokens);
    }

    fn close(&mut self, request_id: RequestId) -> Result<u64, MarketError> {
        let tokens = self
            .open
            .remove(&request_id)
            .ok_or(MarketError::UnknownReservation(request_id))?;
        self.reserved -= tokens;
        Ok(tokens)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::pricing::TokenCounts;

    fn id(n: u8) -> RequestId {
        RequestId([n; 32])
    }

    fn funded(balance: u64) -> Account {
        let mut a = Account::new(20).unwrap();
        a.sync_chain(ChainClientState {
            balance,
            stake: balance / 2,
            tokens_used: 0,
        });
        a
    }

    #[test]
    fn reservation_rule_worked_example() {
        // 2000 body bytes at 4.0x × 1.0x, 1000 completion tokens at 4.0x × 4.0x.
        let t = required_tokens(
            &PricingParams::default(),
            Coefficient::DEFAULT_CLIENT_MAX,
            1000,
            2000,
        )
        .unwrap();
        assert_eq!(t, 8000 + 16_000);
    }

    #[test]
    fn reservation_bounds_a_charge_within_its_limits() {
        let params = PricingParams::default();
        let max = Coefficient::new(2000).unwrap();
        let reserved = required_tokens(&params, max, 300, 1000).unwrap();
        let counts = TokenCounts {
            prompt: 1000,
            cached: 1000,
            completion: 300,
            reasoning: 300,
        };
        let charge = params.charge(&counts, max).unwrap();
        assert!(charge.adjusted_total() <= reserved);
    }

    #[test]
    fn reserve_checks_the_available_balance() {
        let mut a = funded(20_000); // 1000 tokens
        assert_eq!(a.token_limit(), 1000);
        let r1 = a.reserve(id(1), 600).unwrap();
        assert_eq!(a.available_tokens(), 400);
        assert_eq!(
            a.reserve(id(2), 401),
            Err(MarketError::InsufficientBalance {
                needed_tokens: 401,
                available_tokens: 400
            })
        );
        assert_eq!(
            a.reserve(id(1), 1),
            Err(MarketError::DuplicateReservation(id(1)))
        );
        let r2 = a.reserve(id(2), 400).unwrap();
        assert_eq!(a.available_tokens(), 0);
        a.release(r1).unwrap();
        assert_eq!(a.release(r1), Err(MarketError::UnknownReservation(id(1))));
        assert_eq!(a.available_tokens(), 600);
        let s = a.settle(r2, 100).unwrap();
        assert_eq!(
            s,
            Settlement {
                metered_tokens: 100,
                charged_tokens: 100,
                shortfall_tokens: 0,
                tokens_used: 100
            }
        );
        assert_eq!(a.available_tokens(), 900);
        assert_eq!(a.remaining_balance(), 18_000);
        assert_eq!(
            a.settle(r2, 100),
            Err(MarketError::UnknownReservation(id(2)))
        );
        assert_eq!(a.open_reservations(), 0);
    }

    #[test]
    fn a_charge_above_the_balance_is_capped_and_recorded() {
        let mut a = funded(20_000);
        let r = a.reserve(id(1), 500).unwrap();
        let _other = a.reserve(id(2), 500).unwrap();
        // The worker produced more than the estimate: the charge takes everything left, even the
        // part reserved by the other request.
        let s = a.settle(r, 1500).unwrap();
        assert_eq!(s.charged_tokens, 1000);
        assert_eq!(s.shortfall_tokens, 500);
        assert_eq!(a.tokens_used(), 1000);
        assert_eq!(a.shortfall_tokens(), 500);
        assert_eq!(a.available_tokens(), 0);
        assert_eq!(a.remaining_balance(), 0);
    }

    #[test]
    fn chain_sync_keeps_unsubmitted_charges() {
        let mut a = funded(20_000);
        assert_eq!(a.charge(300).tokens_used, 300);
        // The client submitted a voucher for 200 tokens: 4000 nanoTON left the balance.
        a.sync_chain(ChainClientState {
            balance: 16_000,
            stake: 10_000,
            tokens_used: 200,
        });
        assert_eq!(a.tokens_used(), 300);
        assert_eq!(a.token_limit(), 1000);
        assert_eq!(a.available_tokens(), 700);
        assert_eq!(a.remaining_balance(), 14_000);
        // A chain count above ours becomes the floor.
        a.sync_chain(ChainClientState {
            balance: 10_000,
            stake: 10_000,
            tokens_used: 500,
        });
        assert_eq!(a.tokens_used(), 500);
        assert_eq!(a.available_tokens(), 500);
        a.deposit(2_000).unwrap();
        assert_eq!(a.available_tokens(), 600);
        assert_eq!(
            a.deposit(u64::MAX),
            Err(MarketError::Overflow("client balance"))
        );
    }

    #[test]
    fn zero_price_is_refused() {
        assert!(matches!(
            Account::new(0),
            Err(MarketError::InvalidPricing(_))
        ));
    }
}

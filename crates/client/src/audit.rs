//! The client's own account of what each request may cost, held against what the proxy charges.
//!
//! A proxy books every request in adjusted tokens (`proxy.clientRequestPayment`'s
//! `request_tokens`) and signs cumulative vouchers the client contract settles; the contract
//! only sees the running total. A proxy that counted a request at a higher multiplier or
//! coefficient than the network's, or charged a request more than its usage, would therefore be
//! paid for it. The client knows enough to bound every charge itself: the usage the answer
//! carried (held against the worker's receipt), the coefficient the proxy reported (which may not
//! exceed the `max_coefficient` sent), the prices, and, for a request that ended without its
//! usage, the most it could cost (what the proxy reserved for it).
//!
//! This module is the rule, sans IO: the request's end says what it may cost
//! ([`ChargeAudit::expect`]), the proxy's notice says what it charged
//! ([`ChargeAudit::charged`]), in either order; when both are known the charge is judged. Both
//! sides are kept for a bounded number of requests ([`MAX_PENDING`]); one whose other half never
//! comes (a request the proxy did not charge) is forgotten, oldest first.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

/// Requests held waiting for their other half.
pub(crate) const MAX_PENDING: usize = 4096;

/// What the client's account says a request may cost at most, in adjusted tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChargeBound {
    /// The most adjusted tokens the request may be charged.
    pub(crate) tokens: u64,
    /// How the bound was found.
    pub(crate) basis: Basis,
}

/// How a [`ChargeBound`] was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Basis {
    /// From the answer's final usage, at the coefficient the proxy reported (no higher than the
    /// request's `max_coefficient`).
    Usage,
    /// The request ended without its usage: the most it could cost, as reserved.
    Reserved,
}

/// A charge above its bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Overcharge {
    /// The client's id of the request.
    pub(crate) request_id: [u8; 32],
    /// Adjusted tokens the proxy charged.
    pub(crate) charged: u64,
    /// The most the request may cost.
    pub(crate) bound: ChargeBound,
}

impl std::fmt::Display for Overcharge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let basis = match self.bound.basis {
            Basis::Usage => "its usage at the network's prices gives",
            Basis::Reserved => "the most it could cost (as reserved) is",
        };
        write!(
            f,
            "the proxy charged {} adjusted tokens for request {}, where {basis} {}",
            self.charged,
            hex::encode(self.request_id),
            self.bound.tokens
        )
    }
}

/// What `/jsonstats` shows of the audit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditStats {
    /// Charges held against the client's own account.
    pub charges_audited: u64,
    /// Charges above it.
    pub overcharged_requests: u64,
    /// Adjusted tokens charged above it, in all.
    pub overcharged_tokens: u64,
    /// The last charge above it, said in words.
    pub last_overcharge: Option<String>,
}

/// The judged charges and the halves still waiting for each other.
#[derive(Debug, Default)]
pub(crate) struct ChargeAudit {
    bounds: HashMap<[u8; 32], ChargeBound>,
    charges: HashMap<[u8; 32], u64>,
    /// Arrival order of the waiting halves, for forgetting the oldest.
    order: VecDeque<[u8; 32]>,
    pub(crate) stats: AuditStats,
}

impl ChargeAudit {
    /// The request `request_id` ended: it may cost at most `bound`.
    pub(crate) fn expect(
        &mut self,
        request_id: [u8; 32],
        bound: ChargeBound,
    ) -> Result<(), Overcharge> {
        match self.charges.remove(&request_id) {
            Some(charged) => self.judge(request_id, charged, bound),
            None => {
                self.hold(request_id);
                self.bounds.insert(request_id, bound);
                Ok(())
            }
        }
    }

    /// The proxy charged `charged` adjusted tokens for `request_id` (a negative count, which no
    /// proxy sends, is taken as zero).
    pub(crate) fn charged(&mut self, request_id: [u8; 32], charged: i64) -> Result<(), Overcharge> {
        let charged = u64::try_from(charged).unwrap_or(0);
        match self.bounds.remove(&request_id) {
            Some(bound) => self.judge(request_id, charged, bound),
            None => {
                self.hold(request_id);
                // A second notice for one request adds to the first: each is a charge.
                let held = self.charges.entry(request_id).or_default();
                *held = held.saturating_add(charged);
                Ok(())
            }
        }
    }

    fn judge(
        &mut self,
        request_id: [u8; 32],
        charged: u64,
        bound: ChargeBound,
    ) -> Result<(), Overcharge> {
        self.stats.charges_audited += 1;
        if charged <= bound.tokens {
            return Ok(());
        }
        let over = Overcharge {
            request_id,
            charged,
            bound,
        };
        self.stats.overcharged_requests += 1;
        self.stats.overcharged_tokens = self
            .stats
            .overcharged_tokens
            .saturating_add(charged - bound.tokens);
        self.stats.last_overcharge = Some(over.to_string());
        Err(over)
    }

    /// Notes a waiting half, forgetting the oldest beyond [`MAX_PENDING`].
    fn hold(&mut self, request_id: [u8; 32]) {
        self.order.push_back(request_id);
        while self.order.len() > MAX_PENDING {
            if let Some(old) = self.order.pop_front() {
                self.bounds.remove(&old);
                self.charges.remove(&old);
            }
        }
    }

    /// Halves waiting for their other half.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.bounds.len() + self.charges.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const USAGE_48: ChargeBound = ChargeBound {
        tokens: 48,
        basis: Basis::Usage,
    };

    fn id(n: u8) -> [u8; 32] {
        [n; 32]
    }

    #[test]
    fn every_order_of_bound_and_charge_is_judged_once() {
        // (charged, bound first?, overcharged?)
        let rows = [
            (48, true, false),
            (48, false, false),
            (47, true, false),
            (0, false, false),
            (-5, true, false),
            (49, true, true),
            (49, false, true),
            (480, false, true),
        ];
        for (charged, bound_first, over) in rows {
            let mut audit = ChargeAudit::default();
            let verdict = if bound_first {
                audit.expect(id(1), USAGE_48).unwrap();
                audit.charged(id(1), charged)
            } else {
                audit.charged(id(1), charged).unwrap();
                audit.expect(id(1), USAGE_48)
            };
            assert_eq!(verdict.is_err(), over, "charged {charged}");
            assert_eq!(audit.stats.charges_audited, 1);
            assert_eq!(audit.stats.overcharged_requests, u64::from(over));
            assert_eq!(audit.waiting(), 0, "both halves are dropped once judged");
        }
    }

    #[test]
    fn an_overcharge_is_counted_and_said() {
        let mut audit = ChargeAudit::default();
        audit.expect(id(7), USAGE_48).unwrap();
        let over = audit.charged(id(7), 480).unwrap_err();
        assert_eq!(over.charged, 480);
        assert_eq!(audit.stats.overcharged_tokens, 432);
        let said = audit.stats.last_overcharge.clone().unwrap();
        assert!(said.starts_with("the proxy charged 480 adjusted tokens for request 0707"));
        assert!(
            said.ends_with("its usage at the network's prices gives 48"),
            "{said}"
        );
    }

    #[test]
    fn two_notices_for_one_request_count_together() {
        let mut audit = ChargeAudit::default();
        audit.charged(id(2), 30).unwrap();
        audit.charged(id(2), 30).unwrap();
        assert!(audit.expect(id(2), USAGE_48).is_err());
    }

    #[test]
    fn halves_that_never_meet_are_forgotten_oldest_first() {
        let mut audit = ChargeAudit::default();
        for i in 0..(MAX_PENDING + 10) {
            let mut rid = [0u8; 32];
            rid[..8].copy_from_slice(&(i as u64).to_le_bytes());
            audit.charged(rid, 1).unwrap();
        }
        assert_eq!(audit.waiting(), MAX_PENDING);
        // The oldest went: its bound now waits alone instead of meeting its charge.
        audit.expect([0u8; 32], USAGE_48).unwrap();
        assert_eq!(audit.stats.charges_audited, 0);
    }
}

//! One's own account of what each request is worth, held against what the proxy booked for it.
//!
//! A proxy books every request in adjusted tokens: it tells the client what it charged
//! (`proxy.clientRequestPayment`) and the worker what it paid (`proxy.workerRequestPayment`),
//! and signs cumulative vouchers that the contracts settle. A contract only sees running totals,
//! so a proxy that charged a client more than a request's usage, or paid a worker less, would
//! get away with it unless the peer keeps its own account. Each peer knows enough to bound every
//! booking itself. The client: what it reserved while the request runs, then the usage its
//! answer carried at the coefficient the proxy reported and no higher than it allowed. The
//! worker: the usage it reported at its own coefficient. A client's bound is a most
//! ([`Direction::AtMost`]), a worker's a least ([`Direction::AtLeast`]).
//!
//! [`PaymentAudit`] is the rule, sans IO (time is an argument). Its owner opens every request
//! it sends or serves ([`PaymentAudit::open`]) and tightens the bound when the request ends
//! ([`PaymentAudit::end`]); the proxy's notices add to what it booked
//! ([`PaymentAudit::booked`]), in any order and any number. What the proxy sends can never push
//! a request out: a booking for a request that was never opened is a discrepancy for a payer
//! and ignored for a payee, never held. A request is kept until [`PaymentAudit::new`]'s
//! `retain` after its end (so late and repeated notices are still judged), and at most
//! [`MAX_TRACKED`] requests are kept in all.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::RequestId;

/// Requests kept at most; beyond, the oldest is forgotten even if it has not ended.
pub const MAX_TRACKED: usize = 65_536;

/// Which side of its bound a booking must fall on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A charge to the payer: at most the bound.
    AtMost,
    /// A payment to the payee: at least the bound, once the request has ended.
    AtLeast,
}

/// What one's own account says a request is worth, in adjusted tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// The adjusted tokens.
    pub tokens: u64,
    /// How they were found.
    pub basis: Basis,
}

/// How a [`Bound`] was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// From the request's final usage at the network's prices.
    Usage,
    /// The most the request could cost, as reserved (it has not ended, or ended without usage).
    Reserved,
    /// No such request was sent: nothing may be charged for it.
    NotSent,
}

/// A booking on the wrong side of its bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discrepancy {
    /// The request.
    pub request_id: RequestId,
    /// Adjusted tokens the proxy booked for it, in all.
    pub booked: u64,
    /// What one's own account gives.
    pub bound: Bound,
    /// Which side the booking had to fall on.
    pub direction: Direction,
}

impl Discrepancy {
    /// Adjusted tokens between the booking and its bound.
    pub fn tokens(&self) -> u64 {
        self.booked.abs_diff(self.bound.tokens)
    }
}

impl fmt::Display for Discrepancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self.direction {
            Direction::AtMost => "charged",
            Direction::AtLeast => "paid",
        };
        let basis = match self.bound.basis {
            Basis::Usage => "its usage at the network's prices gives",
            Basis::Reserved => "the most it could cost (as reserved) is",
            Basis::NotSent => "no such request was sent, so",
        };
        write!(
            f,
            "the proxy {verb} {} adjusted tokens for request {}, where {basis} {}",
            self.booked, self.request_id, self.bound.tokens
        )
    }
}

/// What a node shows of its audit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditCounts {
    /// Requests whose booking was held against one's own account.
    pub audited: u64,
    /// Requests booked on the wrong side of it.
    pub discrepancies: u64,
    /// Adjusted tokens between those bookings and their bounds, in all.
    pub discrepancy_tokens: u64,
    /// The last discrepancy, said in words.
    pub last_discrepancy: Option<String>,
    /// Requests that ended worth something and were forgotten with nothing booked for them.
    /// For a payee, requests never paid: an honest proxy also books nothing for a request
    /// cancelled before its first byte, or while its ledger cannot write.
    pub unbooked: u64,
}

#[derive(Debug)]
struct Entry {
    bound: Bound,
    booked: u64,
    ended_at: Option<Instant>,
    /// Whether a booking notice came, even of nothing.
    notified: bool,
    audited: bool,
    /// Found on the wrong side once: counted once.
    flagged: bool,
}

/// The requests kept and what the proxy booked for them.
#[derive(Debug)]
pub struct PaymentAudit {
    direction: Direction,
    retain: Duration,
    entries: HashMap<RequestId, Entry>,
    /// Opening order, for forgetting the oldest.
    order: VecDeque<RequestId>,
    /// The bounds of every request opened, as they stand (forgotten ones included).
    bounds_total: u64,
    counts: AuditCounts,
}

impl PaymentAudit {
    /// An audit whose bookings must fall `direction` of their bounds, keeping each request
    /// `retain` after its end.
    pub fn new(direction: Direction, retain: Duration) -> Self {
        Self {
            direction,
            retain,
            entries: HashMap::new(),
            order: VecDeque::new(),
            bounds_total: 0,
            counts: AuditCounts::default(),
        }
    }

    /// What the audit found so far.
    pub fn counts(&self) -> &AuditCounts {
        &self.counts
    }

    /// The sum of the bounds of every request opened so far: for a payer, the most all of them
    /// together may be charged (a cumulative voucher beyond what preceded them plus this is
    /// more than its own account allows).
    pub fn bounds_total(&self) -> u64 {
        self.bounds_total
    }

    /// A request was sent (or taken), bounded by `bound` until it ends. Opening an id again
    /// changes nothing.
    pub fn open(&mut self, request_id: RequestId, bound: Bound, now: Instant) {
        self.prune(now);
        if self.entries.contains_key(&request_id) {
            return;
        }
        self.entries.insert(
            request_id,
            Entry {
                bound,
                booked: 0,
                ended_at: None,
                notified: false,
                audited: false,
                flagged: false,
            },
        );
        self.order.push_back(request_id);
        self.bounds_total = self.bounds_total.saturating_add(bound.tokens);
    }

    /// The request ended: its bound is now `bound` (for a payer never above the one it was
    /// opened with). A request never opened (or forgotten) is opened ended.
    ///
    /// # Errors
    /// The [`Discrepancy`], when what was booked for it falls on the wrong side.
    pub fn end(
        &mut self,
        request_id: RequestId,
        bound: Bound,
        now: Instant,
    ) -> Result<(), Discrepancy> {
        if !self.entries.contains_key(&request_id) {
            self.open(request_id, bound, now);
        }
        let direction = self.direction;
        let Some(entry) = self.entries.get_mut(&request_id) else {
            return Ok(());
        };
        let new = match direction {
            Direction::AtMost if bound.tokens > entry.bound.tokens => entry.bound,
            _ => bound,
        };
        self.bounds_total = self
            .bounds_total
            .saturating_sub(entry.bound.tokens)
            .saturating_add(new.tokens);
        entry.bound = new;
        entry.ended_at.get_or_insert(now);
        if entry.notified || direction == Direction::AtMost {
            return self.judge(request_id);
        }
        Ok(())
    }

    /// The proxy booked `booked` more adjusted tokens for `request_id` (a negative count, which
    /// no proxy sends, is taken as zero).
    ///
    /// # Errors
    /// The [`Discrepancy`], when the request's bookings in all fall on the wrong side of its
    /// bound as it stands (for a payee, once the request has ended), or when a payer is charged
    /// for a request it never sent.
    pub fn booked(
        &mut self,
        request_id: RequestId,
        booked: i64,
        now: Instant,
    ) -> Result<(), Discrepancy> {
        self.prune(now);
        let booked = u64::try_from(booked).unwrap_or(0);
        let Some(entry) = self.entries.get_mut(&request_id) else {
            return match self.direction {
                // Paid for nothing: not the payee's loss.
                Direction::AtLeast => Ok(()),
                Direction::AtMost if booked == 0 => Ok(()),
                Direction::AtMost => {
                    let found = Discrepancy {
                        request_id,
                        booked,
                        bound: Bound {
                            tokens: 0,
                            basis: Basis::NotSent,
                        },
                        direction: Direction::AtMost,
                    };
                    self.counts.audited += 1;
                    self.record(&found);
                    Err(found)
                }
            };
        };
        entry.booked = entry.booked.saturating_add(booked);
        entry.notified = true;
        if self.direction == Direction::AtLeast && entry.ended_at.is_none() {
            return Ok(());
        }
        self.judge(request_id)
    }

    fn judge(&mut self, request_id: RequestId) -> Result<(), Discrepancy> {
        let direction = self.direction;
        let Some(entry) = self.entries.get_mut(&request_id) else {
            return Ok(());
        };
        if !entry.audited && (entry.ended_at.is_some() || entry.notified) {
            entry.audited = true;
            self.counts.audited += 1;
        }
        let fair = match direction {
            Direction::AtMost => entry.booked <= entry.bound.tokens,
            Direction::AtLeast => entry.booked >= entry.bound.tokens,
        };
        if fair || entry.flagged {
            return Ok(());
        }
        entry.flagged = true;
        let found = Discrepancy {
            request_id,
            booked: entry.booked,
            bound: entry.bound,
            direction,
        };
        self.record(&found);
        Err(found)
    }

    fn record(&mut self, found: &Discrepancy) {
        self.counts.discrepancies += 1;
        self.counts.discrepancy_tokens = self
            .counts
            .discrepancy_tokens
            .saturating_add(found.tokens());
        self.counts.last_discrepancy = Some(found.to_string());
    }

    /// Forgets requests ended more than `retain` ago, oldest first, and the oldest of all
    /// beyond [`MAX_TRACKED`].
    fn prune(&mut self, now: Instant) {
        while let Some(oldest) = self.order.front() {
            let expired = match self.entries.get(oldest) {
                None => true,
                Some(e) => {
                    self.entries.len() >= MAX_TRACKED
                        || e.ended_at
                            .is_some_and(|t| now.saturating_duration_since(t) >= self.retain)
                }
            };
            if !expired {
                break;
            }
            if let Some(old) = self.order.pop_front()
                && let Some(e) = self.entries.remove(&old)
                && !e.notified
                && e.ended_at.is_some()
                && e.bound.tokens > 0
            {
                self.counts.unbooked += 1;
            }
        }
    }

    /// Whether `request_id` is kept (opened, and not yet forgotten).
    pub fn holds(&self, request_id: RequestId) -> bool {
        self.entries.contains_key(&request_id)
    }

    /// Requests kept.
    pub fn tracked(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const RETAIN: Duration = Duration::from_secs(60);
    const RESERVED: Bound = Bound {
        tokens: 9_999,
        basis: Basis::Reserved,
    };
    const USAGE_48: Bound = Bound {
        tokens: 48,
        basis: Basis::Usage,
    };
    const NOTHING: Bound = Bound {
        tokens: 0,
        basis: Basis::Reserved,
    };

    fn id(n: u8) -> RequestId {
        RequestId([n; 32])
    }

    /// One request's life: opened at `opened`, then the booking and the end (its usage worth
    /// 48) in either order; answers whether a discrepancy was found, and the audit.
    fn life(
        direction: Direction,
        opened: Bound,
        booked: i64,
        booking_first: bool,
    ) -> (bool, PaymentAudit) {
        let t0 = Instant::now();
        let mut audit = PaymentAudit::new(direction, RETAIN);
        audit.open(id(1), opened, t0);
        let found = if booking_first {
            let early = audit.booked(id(1), booked, t0).is_err();
            early | audit.end(id(1), USAGE_48, t0).is_err()
        } else {
            let ended = audit.end(id(1), USAGE_48, t0).is_err();
            ended | audit.booked(id(1), booked, t0).is_err()
        };
        (found, audit)
    }

    /// A payer's request, opened at its reservation.
    fn payer(booked: i64, booking_first: bool) -> (bool, PaymentAudit) {
        life(Direction::AtMost, RESERVED, booked, booking_first)
    }

    /// A payee's request, opened owed nothing until it ends.
    fn payee(booked: i64, booking_first: bool) -> (bool, PaymentAudit) {
        life(Direction::AtLeast, NOTHING, booked, booking_first)
    }

    #[test]
    fn every_order_of_booking_and_end_is_judged_on_its_side_once() {
        // (payer?, booked, booking first?, a discrepancy?)
        let rows = [
            (true, 48, true, false),
            (true, 48, false, false),
            (true, 47, false, false),
            (true, 0, true, false),
            (true, -5, false, false),
            (true, 49, false, true),
            (true, 49, true, true),
            (true, 480, true, true),
            // Above even the reservation, before the end.
            (true, 10_000, true, true),
            (false, 48, true, false),
            (false, 48, false, false),
            (false, 49, false, false),
            (false, 47, false, true),
            (false, 47, true, true),
            (false, -5, false, true),
        ];
        for (is_payer, booked, booking_first, wrong) in rows {
            let (found, audit) = if is_payer {
                payer(booked, booking_first)
            } else {
                payee(booked, booking_first)
            };
            let row = format!("payer {is_payer}, booked {booked}, first {booking_first}");
            assert_eq!(found, wrong, "{row}");
            assert_eq!(audit.counts().audited, 1, "{row}");
            assert_eq!(audit.counts().discrepancies, u64::from(wrong), "{row}");
        }
    }

    /// Attack: a proxy that never sends `proxy.workerRequestPayment` for a request, or sends 0
    /// before its end: a notice of nothing is judged like any other, and a request never paid
    /// is counted when it is forgotten.
    #[test]
    fn a_payee_never_paid_finds_it() {
        let t0 = Instant::now();
        // Paid 0 before the end.
        let (found, audit) = payee(0, true);
        assert!(found, "paid 0 for a request worth 48: {:?}", audit.counts());
        // Never paid at all: found by the time the request is forgotten.
        let mut audit = PaymentAudit::new(Direction::AtLeast, RETAIN);
        audit.open(id(1), NOTHING, t0);
        audit.end(id(1), USAGE_48, t0).unwrap();
        audit.open(id(2), NOTHING, t0 + RETAIN * 2);
        assert_eq!(audit.tracked(), 1, "request 1 forgotten");
        // Not a discrepancy (an honest proxy books nothing for some requests), but counted.
        assert_eq!(audit.counts().unbooked, 1, "{:?}", audit.counts());
    }

    #[test]
    fn a_discrepancy_is_counted_and_said() {
        let (_, audit) = payer(480, false);
        assert_eq!(audit.counts().discrepancy_tokens, 432);
        let said = audit.counts().last_discrepancy.clone().unwrap();
        assert!(
            said.starts_with("the proxy charged 480 adjusted tokens for request 0101"),
            "{said}"
        );
        assert!(
            said.ends_with("its usage at the network's prices gives 48"),
            "{said}"
        );
        let (_, audit) = payee(6, false);
        assert_eq!(audit.counts().discrepancy_tokens, 42);
        let said = audit.counts().last_discrepancy.clone().unwrap();
        assert!(
            said.starts_with("the proxy paid 6 adjusted tokens"),
            "{said}"
        );
    }

    #[test]
    fn later_notices_add_up_and_are_judged_too() {
        for booking_first in [true, false] {
            let (_, mut audit) = payer(48, booking_first);
            let t = Instant::now();
            let found = audit.booked(id(1), 1_000_000, t).unwrap_err();
            assert_eq!(found.booked, 1_000_048, "first {booking_first}");
            // Counted once, however many more come.
            assert!(audit.booked(id(1), 5, t).is_ok());
            assert_eq!(audit.counts().discrepancies, 1);
        }
    }

    #[test]
    fn a_payer_charged_for_a_request_it_never_sent_finds_it_and_a_payee_ignores_it() {
        let t0 = Instant::now();
        let mut payer = PaymentAudit::new(Direction::AtMost, RETAIN);
        let found = payer.booked(id(9), 30, t0).unwrap_err();
        assert_eq!(found.bound.basis, Basis::NotSent);
        assert!(
            payer.booked(id(9), 0, t0).is_ok(),
            "a free notice costs nothing"
        );
        let mut payee = PaymentAudit::new(Direction::AtLeast, RETAIN);
        assert!(payee.booked(id(9), 30, t0).is_ok());
        assert_eq!(payee.tracked(), 0, "nothing the proxy sends is held");
    }

    #[test]
    fn notices_for_requests_never_sent_cannot_push_a_real_one_out() {
        let t0 = Instant::now();
        let mut audit = PaymentAudit::new(Direction::AtMost, RETAIN);
        audit.open(id(4), RESERVED, t0);
        audit.end(id(4), USAGE_48, t0).unwrap();
        for i in 0..(MAX_TRACKED as u64 + 10) {
            let mut fake = [0xF0u8; 32];
            fake[..8].copy_from_slice(&i.to_le_bytes());
            let _ = audit.booked(RequestId(fake), 0, t0);
        }
        assert_eq!(audit.tracked(), 1);
        assert!(audit.booked(id(4), 1_000_000, t0).is_err());
    }

    #[test]
    fn ended_requests_are_kept_for_the_retention_then_forgotten() {
        let t0 = Instant::now();
        let mut audit = PaymentAudit::new(Direction::AtMost, RETAIN);
        audit.open(id(1), RESERVED, t0);
        audit.end(id(1), USAGE_48, t0).unwrap();
        audit.open(id(2), RESERVED, t0);
        // A late notice within the retention is judged as the request's.
        assert!(audit.booked(id(1), 48, t0 + RETAIN / 2).is_ok());
        // Past it the request is forgotten: a charge for it now is for nothing sent. The one
        // still running (2) is kept however old.
        assert!(audit.booked(id(1), 48, t0 + RETAIN * 2).is_err());
        assert_eq!(audit.tracked(), 1);
        assert!(audit.booked(id(2), 9_999, t0 + RETAIN * 100).is_ok());
    }

    #[test]
    fn the_bounds_total_follows_every_request_as_it_stands() {
        let t0 = Instant::now();
        let mut audit = PaymentAudit::new(Direction::AtMost, RETAIN);
        audit.open(id(1), RESERVED, t0);
        audit.open(id(2), RESERVED, t0);
        audit.open(id(2), RESERVED, t0);
        assert_eq!(audit.bounds_total(), 2 * 9_999);
        audit.end(id(1), USAGE_48, t0).unwrap();
        assert_eq!(audit.bounds_total(), 9_999 + 48);
        // A payer's bound never rises at the end.
        audit
            .end(
                id(2),
                Bound {
                    tokens: 1 << 40,
                    basis: Basis::Usage,
                },
                t0,
            )
            .unwrap();
        assert_eq!(audit.bounds_total(), 9_999 + 48);
        // Forgotten requests stay in the total.
        audit.booked(id(1), 0, t0 + RETAIN * 2).unwrap();
        assert_eq!(audit.bounds_total(), 9_999 + 48);
    }
}

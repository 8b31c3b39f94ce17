//! A payee's check that the proxy's running total for it grows by what the proxy says it paid.
//!
//! [`PaymentAudit`](crate::audit::PaymentAudit) judges each payment notice on its own
//! (`proxy.workerRequestPayment`'s `request_tokens`), but the money is in the running total: the
//! proxy's committed count of what the worker earned (`db_tokens`), which its cumulative vouchers
//! sign and the contracts settle. A proxy could notify every request at its full worth and keep
//! the total, and so the vouchers, from growing: every notice would pass, and the worker would
//! be paid nothing. [`TotalAudit`] holds the total to the notices, sans IO.
//!
//! The rule, for one session: the highest total the proxy has shown is at least the total it
//! showed at the session's start plus every payment it notified since. A proxy commits a charge
//! before it sends the notice, and each notice carries the total that commit left, so however
//! concurrent charges interleave, the highest total shown covers every notice received (the
//! charge of the notice received last committed after all those before it, or its total would
//! not be the highest). Totals shown by payment-status answers only raise the highest. A total
//! that includes others' payments (another process under the same owner) only raises it too:
//! the check can only be failed by a total that is short.
//!
//! Notices can be withheld too. [`TotalAudit::served`] records the work the worker completed,
//! at its own account of each request's least worth, and [`TotalAudit::unpaid`] holds the total
//! to it once a grace has passed, notice or none; the larger of a tenth of it and the two
//! largest requests is tolerated (a proxy that gave up on a request the worker still completed
//! does not pay it), and nothing is judged before a few requests are due.
//!
//! A total is owed, not paid: the worker is paid by the vouchers, which sign only what the
//! proxy's last anchor on chain covers, so they lag the total by about the anchor interval.
//! [`VoucherLag`] holds them to it: a total shown must be signed within a limit, or the proxy
//! is making the worker serve on credit it never settles.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

/// A session's running total held against the payments notified during it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotalAudit {
    start: u64,
    notified: u64,
    highest: u64,
    /// Requests completed for the proxy and not yet due: each one's least worth, and when it
    /// ended.
    served: VecDeque<(Instant, u64)>,
    /// The worth of the requests completed at least the grace ago, and how many they are.
    served_due: u64,
    served_due_requests: u64,
    /// The worth of the two largest requests due.
    largest_due: [u64; 2],
}

/// Completed requests' worth missing from the proxy's total, paid or notified or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedUnpaid {
    /// Adjusted tokens the requests completed at least the grace ago are worth at least.
    pub served: u64,
    /// How many requests that is.
    pub requests: u64,
    /// How much of it the total does not hold.
    pub unpaid: u64,
}

impl fmt::Display for ServedUnpaid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the proxy's committed total for this worker holds {} of the {} adjusted tokens its \
             {} completed requests are worth: it does not pay for the work it takes",
            self.served.saturating_sub(self.unpaid),
            self.served,
            self.requests
        )
    }
}

/// Completed requests at most kept waiting for their grace; beyond, one is not recorded (which
/// can only delay a finding).
pub const MAX_SERVED_WAITING: usize = 4_096;

/// Requests that must be due before their worth is judged: one request a proxy abandoned while
/// the worker completed it is not a pattern.
pub const MIN_DUE_REQUESTS: u64 = 4;

/// The share of the completed work's worth that may be missing from the total (a proxy that
/// gave up on a request the worker still completed does not pay it): one part in this many.
pub const UNPAID_TOLERANCE: u64 = 10;

/// The proxy's running total fell short of what it notified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotalShortfall {
    /// The total the proxy showed when the session started.
    pub start: u64,
    /// The payments it notified since, in all.
    pub notified: u64,
    /// The highest total it has shown.
    pub highest: u64,
}

impl TotalShortfall {
    /// Adjusted tokens notified but missing from the total.
    pub fn tokens(&self) -> u64 {
        self.start
            .saturating_add(self.notified)
            .saturating_sub(self.highest)
    }
}

impl fmt::Display for TotalShortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the proxy's committed total for this worker is {} adjusted tokens, {} short of the \
             {} it showed at the session's start plus the {} it notified as paid since: its \
             vouchers would not pay what it notified",
            self.highest,
            self.tokens(),
            self.start,
            self.notified
        )
    }
}

impl TotalAudit {
    /// A session whose proxy showed `start` as its committed total at the handshake.
    pub fn new(start: u64) -> Self {
        Self {
            start,
            notified: 0,
            highest: start,
            served: VecDeque::new(),
            served_due: 0,
            served_due_requests: 0,
            largest_due: [0; 2],
        }
    }

    /// The worker completed a request for the proxy at `ended`, worth at least `tokens` by its
    /// own account: a proxy that takes the answer charges it and credits this worker.
    pub fn served(&mut self, tokens: u64, ended: Instant) {
        if tokens > 0 && self.served.len() < MAX_SERVED_WAITING {
            self.served.push_back((ended, tokens));
        }
    }

    /// Forgets what the work due so far left unpaid: judging starts again from the total as it
    /// is (a proxy held for it gets no work from this worker, so its total could never catch
    /// up on an honest shortfall).
    pub fn forgive(&mut self) {
        self.served_due = self.highest.saturating_sub(self.start);
        self.served_due_requests = 0;
        self.largest_due = [0; 2];
    }

    /// Whether more of what the requests completed at least `grace` before `now` are worth is
    /// missing from the highest total shown than a tenth of it and than the two largest of them
    /// (with at least [`MIN_DUE_REQUESTS`] of them): a proxy that takes the work and neither
    /// notifies nor credits it. An honest proxy leaves out a request it gave up on (the client
    /// left, its deadline passed) that the worker completed anyway; two such are tolerated
    /// whatever the work, a tenth of it beyond.
    pub fn unpaid(&mut self, now: Instant, grace: Duration) -> Option<ServedUnpaid> {
        while let Some(&(ended, tokens)) = self.served.front() {
            if now.saturating_duration_since(ended) < grace {
                break;
            }
            self.served.pop_front();
            self.served_due = self.served_due.saturating_add(tokens);
            self.served_due_requests += 1;
            if tokens > self.largest_due[1] {
                self.largest_due[1] = tokens;
                self.largest_due.sort_unstable_by(|a, b| b.cmp(a));
            }
        }
        let credited = self.highest.saturating_sub(self.start);
        let unpaid = self.served_due.saturating_sub(credited);
        let tolerated = (self.served_due / UNPAID_TOLERANCE)
            .max(self.largest_due[0].saturating_add(self.largest_due[1]));
        (self.served_due_requests >= MIN_DUE_REQUESTS && unpaid > tolerated).then_some(
            ServedUnpaid {
                served: self.served_due,
                requests: self.served_due_requests,
                unpaid,
            },
        )
    }

    /// A payment notice: `request_tokens` paid, leaving the committed total at `total`.
    ///
    /// # Errors
    /// [`TotalShortfall`] when the highest total shown does not cover the notices.
    pub fn notified(&mut self, request_tokens: u64, total: u64) -> Result<(), TotalShortfall> {
        self.notified = self.notified.saturating_add(request_tokens);
        self.shown(total)
    }

    /// A total shown outside a notice (a payment-status answer).
    ///
    /// # Errors
    /// As [`notified`](Self::notified).
    pub fn shown(&mut self, total: u64) -> Result<(), TotalShortfall> {
        self.highest = self.highest.max(total);
        if self.highest >= self.start.saturating_add(self.notified) {
            Ok(())
        } else {
            Err(TotalShortfall {
                start: self.start,
                notified: self.notified,
                highest: self.highest,
            })
        }
    }
}

/// Totals shown at most kept waiting for their voucher; beyond, a new total is not recorded
/// until older ones are signed (which can only delay a finding, never make one).
pub const MAX_WAITING_TOTALS: usize = 4_096;

/// The totals a proxy showed, held against the vouchers that sign them.
#[derive(Debug, Clone)]
pub struct VoucherLag {
    limit: Duration,
    /// Totals not signed yet, each with when it was first shown; rising.
    waiting: VecDeque<(Instant, u64)>,
    /// The largest count a valid voucher signed.
    signed: u64,
}

/// A total shown longer ago than the limit that no voucher signs yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoucherOverdue {
    /// The total.
    pub total: u64,
    /// The largest count signed.
    pub signed: u64,
    /// How long ago it was shown.
    pub waited: Duration,
}

impl fmt::Display for VoucherOverdue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the proxy showed a committed total of {} adjusted tokens for this worker {} s ago, \
             and its vouchers sign {} only: it does not settle what it owes",
            self.total,
            self.waited.as_secs(),
            self.signed
        )
    }
}

impl VoucherLag {
    /// Totals must be signed within `limit` of being shown.
    pub fn new(limit: Duration) -> Self {
        Self {
            limit,
            waiting: VecDeque::new(),
            signed: 0,
        }
    }

    /// The proxy showed `total` at `now`.
    pub fn shown(&mut self, total: u64, now: Instant) {
        let above = self.waiting.back().map_or(self.signed, |&(_, t)| t);
        if total > above && self.waiting.len() < MAX_WAITING_TOTALS {
            self.waiting.push_back((now, total));
        }
    }

    /// A valid voucher signed `tokens`.
    pub fn signed(&mut self, tokens: u64) {
        self.signed = self.signed.max(tokens);
        while self
            .waiting
            .front()
            .is_some_and(|&(_, total)| total <= self.signed)
        {
            self.waiting.pop_front();
        }
    }

    /// Whether every total shown is signed.
    pub fn settled(&self) -> bool {
        self.waiting.is_empty()
    }

    /// The oldest total still unsigned, if it was shown at least the limit before `now`.
    pub fn overdue(&self, now: Instant) -> Option<VoucherOverdue> {
        let &(at, total) = self.waiting.front()?;
        let waited = now.saturating_duration_since(at);
        (waited >= self.limit).then_some(VoucherOverdue {
            total,
            signed: self.signed,
            waited,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn totals_signed_within_the_limit_are_never_overdue() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut lag = VoucherLag::new(s(60));
        lag.shown(100, t0);
        lag.shown(150, t0 + s(30));
        assert_eq!(lag.overdue(t0 + s(59)), None);
        // The anchor covers 100: what is left waits from when 150 was shown.
        lag.signed(100);
        assert_eq!(lag.overdue(t0 + s(80)), None);
        assert!(!lag.settled());
        lag.signed(150);
        assert_eq!(lag.overdue(t0 + s(1000)), None);
        assert!(lag.settled());
    }

    #[test]
    fn a_total_left_unsigned_past_the_limit_is_overdue() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut lag = VoucherLag::new(s(60));
        lag.signed(40);
        lag.shown(40, t0);
        lag.shown(100, t0 + s(1));
        lag.shown(90, t0 + s(2));
        let late = lag.overdue(t0 + s(61)).unwrap();
        assert_eq!((late.total, late.signed, late.waited), (100, 40, s(60)));
        assert!(late.to_string().contains("sign 40 only"), "{late}");
        // A voucher for part of it does not clear it.
        lag.signed(99);
        assert!(lag.overdue(t0 + s(61)).is_some());
    }

    #[test]
    fn waiting_totals_are_bounded() {
        let t0 = Instant::now();
        let mut lag = VoucherLag::new(Duration::from_secs(1));
        for i in 1..=(MAX_WAITING_TOTALS as u64 + 10) {
            lag.shown(i, t0 + Duration::from_millis(i));
        }
        assert_eq!(lag.waiting.len(), MAX_WAITING_TOTALS);
        lag.signed(u64::MAX);
        assert!(lag.waiting.is_empty());
    }

    #[test]
    fn notices_covered_by_the_totals_they_carry_pass() {
        let mut t = TotalAudit::new(100);
        t.notified(10, 110).unwrap();
        t.notified(5, 115).unwrap();
        t.shown(115).unwrap();
    }

    #[test]
    fn concurrent_charges_whose_notices_cross_pass() {
        // A commits (total 110), then B (total 115); B's notice arrives first.
        let mut t = TotalAudit::new(100);
        t.notified(5, 115).unwrap();
        t.notified(10, 110).unwrap();
        // A status read before both commits, answered after both notices.
        t.shown(100).unwrap();
    }

    #[test]
    fn others_payments_in_the_total_only_raise_it() {
        let mut t = TotalAudit::new(100);
        t.notified(10, 150).unwrap();
        t.notified(10, 160).unwrap();
    }

    #[test]
    fn a_total_kept_still_while_payments_are_notified_is_found() {
        let mut t = TotalAudit::new(100);
        let short = t.notified(10, 100).unwrap_err();
        assert_eq!(short.tokens(), 10);
        assert_eq!((short.start, short.notified, short.highest), (100, 10, 100));
        // And stays found until the total catches up.
        assert!(t.shown(105).is_err());
        t.shown(110).unwrap();
    }

    #[test]
    fn a_total_grown_by_less_than_notified_is_found() {
        let mut t = TotalAudit::new(0);
        t.notified(40, 40).unwrap();
        let short = t.notified(40, 60).unwrap_err();
        assert_eq!(short.tokens(), 20);
        assert!(short.to_string().contains("20 short"), "{short}");
    }

    #[test]
    fn completed_work_left_out_of_the_total_is_found_once_due() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(60);
        let mut t = TotalAudit::new(100);
        for i in 0..4 {
            t.served(10, t0 + Duration::from_secs(i));
        }
        // Not due yet.
        assert_eq!(t.unpaid(t0 + Duration::from_secs(62), grace), None);
        let found = t.unpaid(t0 + Duration::from_secs(63), grace).unwrap();
        assert_eq!((found.served, found.requests, found.unpaid), (40, 4, 40));
        assert!(found.to_string().contains("holds 0 of the 40"), "{found}");
        // Credited since (a deferred charge): no longer found.
        t.shown(140).unwrap();
        assert_eq!(t.unpaid(t0 + Duration::from_secs(63), grace), None);
    }

    #[test]
    fn forgiven_work_is_judged_again_from_the_total_as_it_is() {
        let t0 = Instant::now();
        let mut t = TotalAudit::new(0);
        for _ in 0..4 {
            t.served(10, t0);
        }
        assert!(t.unpaid(t0, Duration::ZERO).is_some());
        t.forgive();
        assert_eq!(t.unpaid(t0, Duration::ZERO), None);
        // Four more unpaid requests are found again.
        for _ in 0..4 {
            t.served(10, t0);
        }
        assert!(t.unpaid(t0, Duration::ZERO).is_some());
    }

    #[test]
    fn two_requests_or_a_tenth_left_out_are_tolerated_and_more_is_not() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(1);
        let judged = |n: u64, credited: u64| {
            let mut t = TotalAudit::new(0);
            for i in 0..n {
                t.served(if i == 0 { 30 } else { 10 }, t0);
            }
            t.shown(credited).unwrap();
            t.unpaid(t0 + grace, grace)
        };
        // Ten requests, 120 worth: the two largest (30 + 10) may be missing, not more.
        assert_eq!(judged(10, 80), None);
        assert!(judged(10, 79).is_some());
        // A hundred, 1020 worth: a tenth (102) may be missing, not more.
        assert_eq!(judged(100, 918), None);
        assert!(judged(100, 917).is_some());
    }

    #[test]
    fn three_unpaid_requests_are_not_yet_a_pattern() {
        let t0 = Instant::now();
        let mut t = TotalAudit::new(0);
        for _ in 0..3 {
            t.served(10, t0);
        }
        assert_eq!(t.unpaid(t0, Duration::ZERO), None);
    }

    #[test]
    fn huge_values_saturate_rather_than_wrap() {
        let mut t = TotalAudit::new(u64::MAX - 1);
        assert!(t.notified(u64::MAX, u64::MAX).is_ok());
    }
}

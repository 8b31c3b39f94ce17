//! What a proxy owes this worker over one session, held to account as it is shown.
//!
//! Each payment notice is judged on its own by the payment audit (`state.payments`); this is
//! the running side: the committed total the proxy shows must grow by what it notified
//! ([`TotalAudit`]), and, with a proxy that settles on chain, its vouchers must come to sign
//! that total within `voucher_lag_limit` ([`VoucherLag`]). A proxy failing either is served no
//! more, as one that paid a request less (`WorkerState::note_underpaid`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cocoon_market::total::{TotalAudit, VoucherLag};
use cocoon_net::Connection;

use crate::state::{WorkerState, lock};

/// One session's audit of its proxy's totals and vouchers.
pub(crate) struct SessionAudit {
    /// The prices payments are held to; `None`: the session is not audited (a proxy before
    /// version 3).
    pub(crate) prices: Option<cocoon_market::PricingParams>,
    proxy: Arc<str>,
    conn: Connection,
    totals: Mutex<TotalAudit>,
    /// With a proxy that settles on chain and a limit set.
    lag: Option<Mutex<VoucherLag>>,
    /// A finding was reported (once per session: the proxy is cut off by then).
    found: AtomicBool,
}

impl SessionAudit {
    /// The audit of a session whose handshake showed the committed total `start` and handed
    /// over a voucher for `voucher` (if any), at `now`.
    pub(crate) fn new(
        state: &WorkerState,
        proxy: &str,
        conn: &Connection,
        prices: Option<cocoon_market::PricingParams>,
        (start, voucher): (i64, Option<u64>),
        now: Instant,
    ) -> Self {
        let start = u64::try_from(start).unwrap_or(0);
        let lag = state.payouts.lag_limit(proxy).map(|limit| {
            let mut lag = VoucherLag::new(limit);
            if let Some(v) = voucher {
                lag.signed(v);
            }
            lag.shown(start, now);
            Mutex::new(lag)
        });
        Self {
            prices,
            proxy: Arc::from(proxy),
            conn: conn.clone(),
            totals: Mutex::new(TotalAudit::new(start)),
            lag,
            found: AtomicBool::new(false),
        }
    }

    /// The proxy showed the committed total `total` at `now`, with the payment it notified (a
    /// notice) or without (a status answer), and a voucher whose kept count is `voucher`. A
    /// total short of the notices, or one left unsigned past the limit, cuts the proxy off.
    pub(crate) fn shown(
        &self,
        state: &WorkerState,
        total: i64,
        notified: Option<i64>,
        voucher: Option<u64>,
        now: Instant,
    ) {
        if self.prices.is_none() {
            return;
        }
        let total = u64::try_from(total).unwrap_or(0);
        let short = {
            let mut totals = lock(&self.totals);
            match notified {
                Some(paid) => totals.notified(u64::try_from(paid).unwrap_or(0), total),
                None => totals.shown(total),
            }
        };
        if let Err(short) = short {
            self.found(state, &short);
            return;
        }
        let Some(lag) = &self.lag else {
            return;
        };
        let overdue = {
            let mut lag = lock(lag);
            if let Some(v) = voucher {
                lag.signed(v);
            }
            lag.shown(total, now);
            lag.overdue(now)
        };
        if let Some(overdue) = overdue {
            self.found(state, &overdue);
        }
    }

    fn found(&self, state: &WorkerState, finding: &impl std::fmt::Display) {
        if !self.found.swap(true, Ordering::AcqRel) {
            state.note_underpaid(Some(&self.proxy), &self.conn, finding);
        }
    }
}

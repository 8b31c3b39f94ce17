//! What a proxy owes this worker, held to account as the proxy shows it.
//!
//! Each payment notice is judged on its own by the payment audit (`state.payments`); this is
//! the running side. The committed total the proxy shows (`db_tokens`) must grow by what it
//! notified, over every session with it since this process first met it ([`TotalAudit`], one
//! per proxy in `state.proxy_totals`): a shortfall is proof of underpaying, and cuts the proxy
//! off as a request paid less does (`WorkerState::cut_off`), even when its session audits at
//! fallback prices, since no price enters it. With a proxy that settles
//! on chain, its vouchers must come to sign that total within `voucher_lag_limit`
//! ([`VoucherLag`], per session, also checked when the proxy stops answering). And the work this
//! worker completed for the proxy must show up in its total within `payment_grace`, notice or
//! none (`TotalAudit::unpaid`): a proxy that takes answers and stays silent pays nothing
//! otherwise. Either of these is held, not cut off, since a chain outage, a slow anchor or a
//! request the proxy gave up on while the worker completed it also leave an honest proxy
//! behind; it is served again once its vouchers sign everything it showed and its total holds
//! the work.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use cocoon_market::total::{TotalAudit, VoucherLag};
use cocoon_net::Connection;
use cocoon_protocol::messages::worker;
use cocoon_protocol::tl::TlConstructor;

use crate::state::{WorkerState, lock};

/// How many `payment_grace`s a proxy held for unpaid work stays held before what it left
/// unpaid is forgiven and it is served again (a proxy that pays nothing is held again once four
/// more requests are due: it gets at most that in every such period).
const PROBATION: u32 = 10;

/// One session's audit of its proxy's totals and vouchers.
pub(crate) struct SessionAudit {
    /// The prices payments are held to; `None`: the session is not audited (a proxy before
    /// version 3).
    pub(crate) prices: Option<cocoon_market::PricingParams>,
    proxy: Arc<str>,
    conn: Connection,
    /// Whether the proxy's vouchers are held to the limit (it settles on chain, a limit is
    /// set): its totals wait for them in `state.proxy_lags`, across its sessions.
    lag: bool,
    /// A shortfall was reported (once per session: the proxy is cut off by then).
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
        if prices.is_some() {
            let mut totals = lock(&state.proxy_totals);
            let audit = totals
                .entry(proxy.to_owned())
                .or_insert_with(|| TotalAudit::new(start));
            // A new session's total only raises the highest seen (a lower one was refused as a
            // rollback before this).
            let _ = audit.shown(start);
        }
        let lag = state.payouts.lag_limit(proxy).is_some_and(|limit| {
            let mut lags = lock(&state.proxy_lags);
            // Kept across sessions: a proxy must not restart the clock by reconnecting.
            let lag = lags
                .entry(proxy.to_owned())
                .or_insert_with(|| VoucherLag::new(limit));
            if let Some(v) = voucher {
                lag.signed(v);
            }
            lag.shown(start, now);
            true
        });
        Self {
            prices,
            proxy: Arc::from(proxy),
            conn: conn.clone(),
            lag,
            found: AtomicBool::new(false),
        }
    }

    /// The proxy showed the committed total `total` at `now`, with the payment it notified (a
    /// notice) or without (a status answer), and a voucher whose kept count is `voucher`.
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
            let mut totals = lock(&state.proxy_totals);
            let audit = totals
                .entry(self.proxy.to_string())
                .or_insert_with(|| TotalAudit::new(total));
            match notified {
                Some(paid) => audit.notified(u64::try_from(paid).unwrap_or(0), total),
                None => audit.shown(total),
            }
        };
        if let Err(short) = short
            && !self.found.swap(true, Ordering::AcqRel)
        {
            // Whatever the prices: a total short of the notices does not depend on them.
            state.cut_off(&self.proxy, &self.conn, short.to_string());
        }
        if self.lag
            && let Some(lag) = lock(&state.proxy_lags).get_mut(&*self.proxy)
        {
            if let Some(v) = voucher {
                lag.signed(v);
            }
            lag.shown(total, now);
        }
        self.judge(state, now);
    }

    /// Holds the proxy while a total it showed waits unsigned past the limit, or while more
    /// than a tenth of the work completed for it is missing from its total past the grace, and
    /// serves it again once neither holds and nothing it showed waits unsigned; also when the
    /// proxy shows nothing (a status query that fails).
    pub(crate) fn judge(&self, state: &WorkerState, now: Instant) {
        if self.prices.is_none() {
            return;
        }
        let grace = state.config.payment_grace;
        let unpaid = {
            let mut totals = lock(&state.proxy_totals);
            let audit = totals.get_mut(&*self.proxy);
            let held_since = lock(&state.held_since).get(&*self.proxy).copied();
            match audit {
                Some(audit) => match (audit.unpaid(now, grace), held_since) {
                    // Held long enough: an honest shortfall (requests the proxy gave up on)
                    // could never be made up, since a held proxy gets no work. Judged afresh.
                    (Some(unpaid), Some(since))
                        if now.saturating_duration_since(since) >= grace * PROBATION =>
                    {
                        tracing::warn!(
                            proxy = %self.proxy,
                            "{unpaid}: forgiven after {} s held, and judged afresh",
                            now.saturating_duration_since(since).as_secs()
                        );
                        audit.forgive();
                        None
                    }
                    (unpaid, _) => unpaid,
                },
                None => None,
            }
        };
        let overdue = if self.lag {
            lock(&state.proxy_lags)
                .get(&*self.proxy)
                .and_then(|lag| lag.overdue(now))
        } else {
            None
        };
        let found: Vec<String> = [
            overdue.map(|o| o.to_string()),
            unpaid.map(|u| u.to_string()),
        ]
        .into_iter()
        .flatten()
        .collect();
        if found.is_empty() {
            state.release_settled(&self.proxy);
        } else {
            state.hold_unsettled(&self.proxy, found.join("; "));
        }
    }
}

impl WorkerState {
    /// This worker completed a request for `proxy` worth at least `tokens` at `ended`; held
    /// against the proxy's total when its sessions are audited.
    pub(crate) fn note_served(&self, proxy: &str, tokens: u64, ended: Instant) {
        if let Some(audit) = lock(&self.proxy_totals).get_mut(proxy) {
            audit.served(tokens, ended);
        }
    }

    /// Why `proxy` is not served now, if it is not: cut off for underpaying, or held until
    /// its vouchers sign what it owes.
    pub(crate) fn refusal(&self, proxy: &str) -> Option<String> {
        if let Some(why) = lock(&self.underpaying_proxies).get(proxy) {
            return Some(format!(
                "this worker serves this proxy no more until it restarts: it paid less than it \
                 owes ({why})"
            ));
        }
        lock(&self.unsettled_proxies).get(proxy).map(|why| {
            format!(
                "this worker serves this proxy again once its vouchers sign what it owes ({why})"
            )
        })
    }

    /// Holds `proxy` until what it owes is settled (logged once; every session of it told that
    /// the worker is disabled for it). Not when its session audits at fallback prices.
    fn hold_unsettled(&self, proxy: &str, found: String) {
        if lock(&self.unread_contracts).contains(proxy) {
            tracing::warn!(%proxy, "{found} (its contract's prices could not be read: still served)");
            return;
        }
        let newly = lock(&self.unsettled_proxies)
            .insert(proxy.to_owned(), found.clone())
            .is_none();
        if newly {
            lock(&self.held_since).insert(proxy.to_owned(), Instant::now());
            tracing::error!(%proxy, "{found}: this proxy is not served until it settles");
            self.tell_proxy(proxy, true);
        }
    }

    /// Serves `proxy` again if it was held, and nothing else stops it.
    fn release_settled(&self, proxy: &str) {
        if lock(&self.unsettled_proxies).remove(proxy).is_none() {
            return;
        }
        lock(&self.held_since).remove(proxy);
        tracing::info!(%proxy, "the proxy settles what it owes: served again");
        if self.refusal(proxy).is_none() && self.enabled.load(Ordering::Acquire) {
            self.tell_proxy(proxy, false);
        }
    }

    /// Tells every session of `proxy` whether this worker is disabled for it.
    fn tell_proxy(&self, proxy: &str, disabled: bool) {
        let conns: Vec<Connection> = lock(&self.sessions)
            .values()
            .filter(|s| s.proxy == proxy)
            .map(|s| s.conn.clone())
            .collect();
        for conn in &conns {
            self.tell(conn, disabled);
        }
    }

    /// Tells the proxy on `conn` whether this worker is disabled for it.
    pub(crate) fn tell(&self, conn: &Connection, disabled: bool) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let conn = conn.clone();
            let msg = worker::EnabledDisabled {
                disabled: i32::from(disabled),
            };
            runtime.spawn(async move {
                let _ = conn.send_packet(Bytes::from(msg.to_boxed_bytes())).await;
            });
        }
    }
}

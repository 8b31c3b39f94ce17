//! The worker's `/dashboard`: earnings, load, price over the last hour, model and attestation,
//! drawn from the same [`WorkerSnapshot`] `/jsonstats` shows.

use std::time::Duration;

use cocoon_dashboard::{Chart, History, Page};

use crate::state::WorkerSnapshot;

/// The figures the dashboard charts, as (series, value).
pub(crate) fn sample(s: &WorkerSnapshot) -> Vec<(String, f64)> {
    let (vouchered, _) = voucher_totals(s);
    [
        ("tokens", (s.prompt_tokens + s.completion_tokens) as f64),
        ("paid_tokens", s.paid_tokens as f64),
        ("voucher_tokens", vouchered as f64),
        ("requests", s.requests as f64),
        ("failed", (s.failed + s.rejected) as f64),
        ("utilisation", s.utilisation),
        ("smoothed_load", s.smoothed_load.unwrap_or(0.0)),
        ("coefficient", f64::from(s.coefficient)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Tokens in the latest vouchers and tokens the worker contracts paid, over every proxy.
fn voucher_totals(s: &WorkerSnapshot) -> (u64, u64) {
    s.settlement.channels.iter().fold((0, 0), |(v, p), c| {
        (
            v.saturating_add(c.voucher_tokens),
            p.saturating_add(c.paid_tokens),
        )
    })
}

/// When the next payout goes out, in words.
fn next_payout(s: &WorkerSnapshot) -> String {
    let p = &s.settlement;
    if !p.submits_on_chain {
        return "by hand (cocoon-worker payout)".to_owned();
    }
    let unpaid = p
        .channels
        .iter()
        .map(|c| c.voucher_tokens.saturating_sub(c.paid_tokens))
        .max()
        .unwrap_or(0);
    match p.threshold_tokens.checked_sub(unpaid) {
        Some(0) | None => "due now".to_owned(),
        Some(left) => format!("after {left} more tokens"),
    }
}

/// The page.
pub(crate) fn render(s: &WorkerSnapshot, history: &History, now: Duration) -> String {
    let (vouchered, paid_on_chain) = voucher_totals(s);
    let mut page = Page::new("cocoon-worker", cocoon_node::dashboard::PAGE_REFRESH);
    page.note(&format!(
        "model {}, {} proxies, up {:.0} s",
        s.model,
        s.proxies.len(),
        s.uptime_secs
    ));
    if s.attestation == "simulated" {
        page.warning(
            "SIMULATED attestation: this worker runs in no TEE; production proxies refuse it",
        );
    }
    if let Some(why) = &s.settlement.proxy_rolled_back {
        page.warning(&format!("a proxy rolled its books back: {why}"));
    }
    let served = s.prompt_tokens + s.completion_tokens;
    // What the tokens are worth, where the root registry tells the fee per token.
    let fee = s.registry.as_ref().map(|r| r.worker_fee_per_token);
    let nanoton = |tokens: u64| {
        fee.map_or_else(
            || "- (no root registry followed)".to_owned(),
            |f| (u128::from(tokens) * u128::from(f)).to_string(),
        )
    };
    page.figures(
        "Earnings",
        &[
            ("tokens served", served.to_string()),
            (
                "tokens served last hour",
                history
                    .growth("tokens", now)
                    .map_or("-".to_owned(), |g| format!("{g:.0}")),
            ),
            ("paid tokens (price-adjusted)", s.paid_tokens.to_string()),
            ("tokens in vouchers", vouchered.to_string()),
            ("nanoTON earned (vouchers)", nanoton(vouchered)),
            ("tokens paid on chain", paid_on_chain.to_string()),
            ("nanoTON paid on chain", nanoton(paid_on_chain)),
            ("payouts submitted", s.settlement.payouts.to_string()),
            ("next payout", next_payout(s)),
        ],
    )
    .figures(
        "Load",
        &[
            ("requests served", s.succeeded.to_string()),
            ("requests", s.requests.to_string()),
            ("sealed requests", s.sealed_requests.to_string()),
            (
                "failed / refused / cancelled",
                format!("{} / {} / {}", s.failed, s.rejected, s.cancelled),
            ),
            (
                "running",
                format!("{} of {}", s.active_requests, s.max_active_requests),
            ),
            ("utilisation", format!("{:.0} %", 100.0 * s.utilisation)),
            ("busy refusals", s.busy_refusals.to_string()),
        ],
    )
    .figures(
        "Price",
        &[
            ("coefficient", s.coefficient.to_string()),
            ("pricing", s.pricing.clone()),
            (
                "bounds",
                s.price_bounds
                    .map_or("-".to_owned(), |(f, c)| format!("{f} to {c}")),
            ),
            (
                "load the policy sees",
                s.smoothed_load
                    .map_or("-".to_owned(), |l| format!("{l:.2}")),
            ),
        ],
    )
    .figures(
        "Model and attestation",
        &[
            ("model", s.model.clone()),
            ("weights", s.model_hash.clone().unwrap_or("unpinned".into())),
            ("attestation", s.attestation.clone()),
            ("image", s.image_hash.clone().unwrap_or("-".into())),
            ("keys", s.key_source.clone()),
            ("enabled", s.enabled.to_string()),
            (
                "root registry",
                s.registry
                    .as_ref()
                    .map_or("none".to_owned(), |r| format!("v{}", r.version)),
            ),
        ],
    );
    page.heading("Last hour")
        .chart(
            history,
            now,
            &Chart::new("Tokens")
                .line("tokens", "served")
                .line("paid_tokens", "paid")
                .line("voucher_tokens", "in vouchers"),
        )
        .chart(
            history,
            now,
            &Chart::new("Requests")
                .line("requests", "received")
                .line("failed", "failed or refused"),
        )
        .chart(
            history,
            now,
            &Chart::new("Load")
                .line("utilisation", "slots busy")
                .line("smoothed_load", "load the policy sees"),
        )
        .chart(
            history,
            now,
            &Chart::new("Price coefficient").line("coefficient", "coefficient"),
        );
    let proxies: Vec<Vec<String>> = s
        .proxies
        .iter()
        .map(|p| {
            vec![
                p.address.clone(),
                p.version.to_string(),
                p.attestation.clone(),
            ]
        })
        .collect();
    page.table(
        "Proxies",
        &["address", "protocol", "attestation"],
        &proxies,
        "no proxy connected",
    );
    let channels: Vec<Vec<String>> = s
        .settlement
        .channels
        .iter()
        .map(|c| {
            vec![
                c.proxy.clone(),
                c.voucher_tokens.to_string(),
                c.paid_tokens.to_string(),
                c.payouts.to_string(),
                c.payout_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    page.table(
        "Payout vouchers",
        &[
            "proxy",
            "tokens in voucher",
            "paid on chain",
            "payouts",
            "last error",
        ],
        &channels,
        "no voucher yet",
    );
    page.finish()
}

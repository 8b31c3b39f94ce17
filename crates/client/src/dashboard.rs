//! The client's `/dashboard`: spend, requests, the sealed share and verified workers over the
//! last hour, drawn from the same snapshot `/jsonstats` shows.

use std::time::Duration;

use cocoon_dashboard::{Chart, History, Page};
use serde_json::Value;

fn count(s: &Value, key: &str) -> u64 {
    s.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn text(s: &Value, key: &str) -> String {
    match s.get(key) {
        Some(Value::String(v)) => v.clone(),
        Some(Value::Null) | None => "-".to_owned(),
        Some(v) => v.to_string(),
    }
}

/// Sealed requests as a share of all sent (sealed and not), `None` before the first.
fn sealed_share(s: &Value) -> Option<f64> {
    let sealed = count(s, "sealed_requests");
    let total = sealed + count(s, "unsealed_requests");
    (total > 0).then(|| sealed as f64 / total as f64)
}

/// What the proxy's last payment status leaves this client, or a dash before it has said.
fn tokens_left(settlement: &Value) -> String {
    let field = |k: &str| settlement.get(k).and_then(Value::as_i64);
    match (field("proxy_tokens_allowed"), field("proxy_tokens_used")) {
        (Some(allowed), Some(used)) => allowed.saturating_sub(used).max(0).to_string(),
        _ => "-".to_owned(),
    }
}

/// The figures the dashboard charts, as (series, value).
pub(crate) fn sample(s: &Value) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = [
        "spent_nanoton",
        "tokens",
        "requests",
        "failed",
        "receipts_verified",
        "receipts_refused",
    ]
    .into_iter()
    .map(|k| (k.to_owned(), count(s, k) as f64))
    .collect();
    if let Some(share) = sealed_share(s) {
        out.push(("sealed_share".to_owned(), share));
    }
    out
}

/// The page.
pub(crate) fn render(s: &Value, history: &History, now: Duration) -> String {
    let mut page = Page::new("cocoon-client", cocoon_node::dashboard::PAGE_REFRESH);
    page.note(&format!(
        "proxy {}, {}",
        text(s, "proxy"),
        if s.get("connected").and_then(Value::as_bool) == Some(true) {
            "connected"
        } else {
            "not connected"
        }
    ));
    if s.get("proxy_attestation").and_then(Value::as_str) == Some("simulated") {
        page.warning("SIMULATED attestation: the proxy runs in no TEE; nothing protects requests");
    }
    let settlement = s.get("settlement").cloned().unwrap_or(Value::Null);
    let audit = settlement.get("audit").cloned().unwrap_or(Value::Null);
    if let Some(over) = audit.get("last_discrepancy").and_then(Value::as_str) {
        page.warning(&format!(
            "OVERCHARGED: {over}. No voucher is submitted and no request sent to this proxy."
        ));
    }
    page.figures(
        "Spend",
        &[
            ("spent nanoTON", count(s, "spent_nanoton").to_string()),
            (
                "spent last hour nanoTON",
                history
                    .growth("spent_nanoton", now)
                    .map_or("-".to_owned(), |g| format!("{g:.0}")),
            ),
            ("tokens", count(s, "tokens").to_string()),
            (
                "tokens in latest voucher",
                count(&settlement, "voucher_tokens").to_string(),
            ),
            (
                "tokens charged on chain",
                count(&settlement, "tokens_on_chain").to_string(),
            ),
            (
                "charges submitted",
                count(&settlement, "submissions").to_string(),
            ),
            (
                "charges audited (above the client's own account)",
                format!(
                    "{} ({})",
                    count(&audit, "audited"),
                    count(&audit, "discrepancies")
                ),
            ),
            (
                "balance left (tokens, as the proxy says)",
                tokens_left(&settlement),
            ),
            (
                "stake on chain nanoTON",
                settlement
                    .get("stake_nanoton")
                    .filter(|v| !v.is_null())
                    .map_or_else(|| "- (not read from a chain)".to_owned(), Value::to_string),
            ),
        ],
    )
    .figures(
        "Requests",
        &[
            ("requests", count(s, "requests").to_string()),
            ("requests served", count(s, "succeeded").to_string()),
            ("failed", count(s, "failed").to_string()),
            ("cancelled", count(s, "cancelled").to_string()),
        ],
    )
    .figures(
        "Sealing",
        &[
            (
                "sealed share",
                sealed_share(s).map_or("-".to_owned(), |v| format!("{:.0} %", 100.0 * v)),
            ),
            ("sealed requests", count(s, "sealed_requests").to_string()),
            (
                "unsealed requests",
                count(s, "unsealed_requests").to_string(),
            ),
            ("sealing refused", count(s, "sealing_refused").to_string()),
            ("required", text(s, "require_sealed")),
            ("last fallback", text(s, "sealing_fallback_reason")),
        ],
    )
    .figures(
        "Verification",
        &[
            ("proxy attestation", text(s, "proxy_attestation")),
            (
                "verified receipts",
                count(s, "receipts_verified").to_string(),
            ),
            ("refused receipts", count(s, "receipts_refused").to_string()),
            (
                "root registry",
                s.get("registry")
                    .and_then(|r| r.get("version"))
                    .map_or("none".to_owned(), |v| format!("v{v}")),
            ),
        ],
    );
    page.heading("Last hour")
        .chart(
            history,
            now,
            &Chart::new("Spend (nanoTON)").line("spent_nanoton", "spent"),
        )
        .chart(
            history,
            now,
            &Chart::new("Requests")
                .line("requests", "sent")
                .line("failed", "failed"),
        )
        .chart(
            history,
            now,
            &Chart::new("Worker receipts")
                .line("receipts_verified", "verified")
                .line("receipts_refused", "refused"),
        )
        .chart(
            history,
            now,
            &Chart::new("Sealed share").line("sealed_share", "sealed"),
        );
    page.finish()
}

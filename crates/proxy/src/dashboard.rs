//! The proxy's `/dashboard`: workers and clients, load, prices, books and anchors over the last
//! hour, drawn from the same [`ProxySnapshot`] `/jsonstats` shows.

use std::time::Duration;

use cocoon_dashboard::{Chart, History, Page};

use crate::state::ProxySnapshot;

/// Most models charted one by one (the rest are in the table); model names come from workers.
const CHARTED_MODELS: usize = 4;

fn model_key(kind: &str, model: &str) -> String {
    format!("{kind}/{model}")
}

/// The figures the dashboard charts, as (series, value).
pub(crate) fn sample(s: &ProxySnapshot) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = [
        ("requests", s.requests as f64),
        ("failed", (s.failed + s.no_worker + s.timed_out) as f64),
        ("clients", s.clients_connected as f64),
        ("workers", s.workers.len() as f64),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if let Some(t) = &s.ledger {
        out.push(("charged".into(), t.client_charged as f64));
        out.push(("credited".into(), t.worker_credited as f64));
        out.push(("commission".into(), t.proxy_commission as f64));
    }
    for m in s.models.iter().take(CHARTED_MODELS) {
        out.push((model_key("util", &m.name), m.signals.utilisation));
        out.push((
            model_key("price", &m.name),
            f64::from(m.signals.coefficient_median),
        ));
    }
    out
}

/// The page.
pub(crate) fn render(s: &ProxySnapshot, history: &History, now: Duration) -> String {
    let mut page = Page::new("cocoon-proxy", cocoon_node::dashboard::PAGE_REFRESH);
    page.note(&format!(
        "{} workers, {} clients, ledger {}, up {:.0} s",
        s.workers.len(),
        s.clients_connected,
        s.ledger_backend,
        s.uptime_secs
    ));
    if s.attestation == "simulated" {
        page.warning(
            "SIMULATED attestation: this proxy runs in no TEE; production peers refuse it",
        );
    }
    if !s.ledger_health.writable {
        page.warning(&format!(
            "ledger writes FAILING ({}); {} charge(s) waiting",
            s.ledger_health
                .last_error
                .as_deref()
                .unwrap_or("unknown error"),
            s.ledger_health.deferred_charges
        ));
    }
    if let Some(why) = s.settlement.as_ref().and_then(|c| c.rolled_back.as_deref()) {
        page.warning(&format!("ROLLED BACK: {why}"));
    }
    let books = match (&s.ledger, &s.ledger_error) {
        (Some(t), _) => vec![
            ("requests charged", t.requests.to_string()),
            ("adjusted tokens", t.adjusted_tokens.to_string()),
            ("clients charged nanoTON", t.client_charged.to_string()),
            ("workers credited nanoTON", t.worker_credited.to_string()),
            ("commission nanoTON", t.proxy_commission.to_string()),
            ("shortfall nanoTON", t.shortfall.to_string()),
        ],
        (None, e) => vec![(
            "ledger",
            format!("unreadable: {}", e.as_deref().unwrap_or("unknown error")),
        )],
    };
    page.figures(
        "Traffic",
        &[
            ("workers connected", s.workers.len().to_string()),
            ("clients connected", s.clients_connected.to_string()),
            ("requests", s.requests.to_string()),
            ("requests served", s.succeeded.to_string()),
            ("sealed requests", s.sealed_requests.to_string()),
            (
                "failed / no worker / timed out",
                format!("{} / {} / {}", s.failed, s.no_worker, s.timed_out),
            ),
            ("retried", s.retried.to_string()),
            ("bytes relayed", s.bytes_relayed.to_string()),
        ],
    )
    .figures("Books", &books);
    let anchors = match &s.settlement {
        Some(c) => vec![
            ("chain", c.mode.clone()),
            ("anchor on chain", c.chain_anchor_seqno.to_string()),
            ("ledger anchor", c.ledger_anchor_seqno.to_string()),
            ("anchors sent", c.anchors_sent.to_string()),
            ("vouchers signed", c.vouchers_signed.to_string()),
            (
                "last anchor error",
                c.anchor_error.clone().unwrap_or("-".into()),
            ),
        ],
        None => vec![("chain", "none (local books only)".to_owned())],
    };
    page.figures("Anchors", &anchors).figures(
        "Attestation",
        &[
            ("attestation", s.attestation.clone()),
            ("image", s.image_hash.clone().unwrap_or("-".into())),
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
            &Chart::new("Requests")
                .line("requests", "received")
                .line("failed", "failed, no worker or timed out"),
        )
        .chart(
            history,
            now,
            &Chart::new("Sessions")
                .line("workers", "workers")
                .line("clients", "clients"),
        )
        .chart(
            history,
            now,
            &Chart::new("Books (nanoTON)")
                .line("charged", "charged")
                .line("credited", "credited")
                .line("commission", "commission"),
        );
    let charted = &s.models[..s.models.len().min(CHARTED_MODELS)];
    let mut load = Chart::new("Load per model (busy share of slots)");
    let mut price = Chart::new("Median price coefficient per model");
    for m in charted {
        load = load.line(model_key("util", &m.name), m.name.clone());
        price = price.line(model_key("price", &m.name), m.name.clone());
    }
    page.chart(history, now, &load).chart(history, now, &price);
    let models: Vec<Vec<String>> = s
        .models
        .iter()
        .map(|m| {
            let g = &m.signals;
            vec![
                m.name.clone(),
                format!("{} ({} free)", g.workers, g.workers_free),
                format!(
                    "{}/{} ({:.0} %)",
                    g.running,
                    g.capacity,
                    100.0 * g.utilisation
                ),
                format!(
                    "{} / {} / {}",
                    g.coefficient_min, g.coefficient_median, g.coefficient_max
                ),
            ]
        })
        .collect();
    page.table(
        "Models",
        &[
            "model",
            "workers",
            "running",
            "coefficient min / median / max",
        ],
        &models,
        "no model served",
    );
    let workers: Vec<Vec<String>> = s
        .workers
        .iter()
        .map(|w| {
            let mut row = vec![
                w.id.to_string(),
                w.model.clone(),
                w.owner.clone(),
                w.attestation.clone(),
            ];
            match &w.stats {
                Some(st) => row.extend([
                    i32::from(st.coefficient).to_string(),
                    format!("{}/{}", st.running, st.max),
                    st.enabled.to_string(),
                    format!("{:.3}", st.success_rate),
                    st.completed.to_string(),
                    st.failed.to_string(),
                ]),
                None => row.extend(std::iter::repeat_n("-".to_owned(), 6)),
            }
            row
        })
        .collect();
    page.table(
        "Workers",
        &[
            "id",
            "model",
            "owner",
            "attestation",
            "coefficient",
            "running",
            "enabled",
            "success",
            "done",
            "failed",
        ],
        &workers,
        "no worker connected",
    );
    page.finish()
}

//! The proxy's HTTP side: `/stats` and `/dashboard` for people, `/jsonstats` for programs, `/metrics` for
//! Prometheus, and `POST /admin/change-model` for the operator.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use cocoon_node::exposition::{MetricKind, MetricsText};

use crate::state::{ProxyHandle, ProxyState};

/// Names the kind of this node's TEE evidence on every HTTP answer.
pub(crate) const ATTESTATION_HEADER: &str = "x-cocoon-attestation";

pub(crate) async fn serve(listener: tokio::net::TcpListener, state: Arc<ProxyState>) {
    // Every answer says what this proxy's attestation is; `simulated` must never go unnoticed.
    let attestation = HeaderValue::from_str(state.identity.evidence_kind().as_token())
        .unwrap_or(HeaderValue::from_static("unknown"));
    let state_limit = state.config.stats_max_connections;
    let hosts = state.config.stats_allowed_hosts.clone();
    let handle = ProxyHandle::new(state);
    let sampled = handle.clone();
    let history = cocoon_node::dashboard::LiveHistory::spawn(
        cocoon_node::dashboard::SAMPLE_INTERVAL,
        move || {
            let h = sampled.clone();
            async move { crate::dashboard::sample(&h.snapshot().await) }
        },
    );
    let app = Router::new()
        .route("/stats", get(stats))
        .route(
            "/dashboard",
            get(move |State(h): State<ProxyHandle>| async move {
                let s = h.snapshot().await;
                Html(history.read(|hist, now| crate::dashboard::render(&s, hist, now)))
            }),
        )
        .route("/jsonstats", get(jsonstats))
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok" }))
        .route("/admin/change-model", axum::routing::post(change_model))
        .with_state(handle)
        .layer(axum::middleware::map_response(move |mut res: Response| {
            let value = attestation.clone();
            async move {
                res.headers_mut().insert(ATTESTATION_HEADER, value);
                res
            }
        }));
    let limits = cocoon_net::http_server::HttpLimits {
        max_connections: state_limit,
        ..Default::default()
    };
    // Browser pages and rebound names are refused: the books' totals are not theirs to read.
    cocoon_net::http_server::serve(
        listener,
        "stats",
        limits,
        cocoon_net::http_access::AccessRules::new().allow_hosts(&hosts),
        app,
    )
    .await;
}

#[derive(serde::Deserialize)]
struct ChangeModelQuery {
    worker: u64,
    model: String,
}

/// `POST /admin/change-model?worker=ID&model=NAME`: 200 once the worker serves it, 404 for no
/// such worker, 502 when it was refused or failed.
async fn change_model(
    State(h): State<ProxyHandle>,
    axum::extract::Query(q): axum::extract::Query<ChangeModelQuery>,
) -> impl IntoResponse {
    use axum::http::StatusCode;
    match h.change_model(q.worker, &q.model).await {
        Ok(()) => (
            StatusCode::OK,
            format!("worker {} now serves {}\n", q.worker, q.model),
        ),
        Err(e @ crate::ProxyError::UnknownWorker(_)) => (StatusCode::NOT_FOUND, format!("{e}\n")),
        Err(e) => (StatusCode::BAD_GATEWAY, format!("{e}\n")),
    }
}

async fn jsonstats(State(h): State<ProxyHandle>) -> impl IntoResponse {
    Json(h.snapshot().await)
}

async fn stats(State(h): State<ProxyHandle>) -> impl IntoResponse {
    let s = h.snapshot().await;
    let mut out = String::new();
    if s.attestation == "simulated" {
        out.push_str(
            "WARNING: SIMULATED attestation: this proxy runs in no TEE; production peers refuse it\n",
        );
    }
    out += &format!(
        "cocoon-proxy\nattestation: {}\nclients connected: {}\nrequests: {} (ok {}, failed {}, retried {}, cancelled {}, no worker {}, \
         no balance {}, timed out {})\nsealed requests: {} (workers with sealing keys: {})\nbytes relayed: {}\nledger ({}): {}\nuptime: {:.0} s\nworkers: {}\n",
        s.attestation,
        s.clients_connected,
        s.requests,
        s.succeeded,
        s.failed,
        s.retried,
        s.cancelled,
        s.no_worker,
        s.no_balance,
        s.timed_out,
        s.sealed_requests,
        s.sealing_workers,
        s.bytes_relayed,
        s.ledger_backend,
        match (&s.ledger, &s.ledger_error) {
            (Some(t), _) => format!(
                "{} requests, clients charged {} nanoTON, workers credited {} nanoTON, \
                 commission {} nanoTON, shortfall {} nanoTON",
                t.requests, t.client_charged, t.worker_credited, t.proxy_commission, t.shortfall
            ),
            (None, e) => format!("unreadable: {}", e.as_deref().unwrap_or("unknown error")),
        },
        s.uptime_secs,
        s.workers.len(),
    );
    let h = &s.ledger_health;
    out += &format!(
        "ledger writes: {}\nmetering violations: {}, refused: {}, clients cut for not reading: {}\n",
        if h.writable {
            "ok".to_owned()
        } else {
            format!(
                "FAILING ({}); {} charge(s) waiting{}",
                h.last_error.as_deref().unwrap_or("unknown error"),
                h.deferred_charges,
                if h.deferred_charges > 0 {
                    ": no request is admitted until they are booked"
                } else {
                    ""
                }
            )
        },
        s.metering_violations,
        s.refused,
        s.stalled_clients,
    );
    for (name, p) in [("client", &s.client_port), ("worker", &s.worker_port)] {
        out += &format!(
            "{name} port: {} connections open (cap {}, {} per address), {} refused\n",
            p.open, p.max_connections, p.max_per_address, p.refused
        );
    }
    if let Some(r) = &s.registry {
        out += &format!(
            "root registry {} v{}: {} proxy images, {} worker images, {} models, {} proxies{}\n",
            r.root,
            r.version,
            r.proxy_image_hashes.len(),
            r.worker_image_hashes.len(),
            r.model_hashes.len(),
            r.registered_proxies.len(),
            r.last_error
                .as_deref()
                .map_or(String::new(), |e| format!(", last read failed: {e}")),
        );
    }
    if let Some(c) = &s.settlement {
        out += &format!(
            "chain: {} proxy contract {}, anchor on chain {}, ledger anchor {}, anchors sent {}, \
             vouchers signed {}, client syncs {}{}{}\n",
            c.mode,
            c.proxy_contract,
            c.chain_anchor_seqno,
            c.ledger_anchor_seqno,
            c.anchors_sent,
            c.vouchers_signed,
            c.client_syncs,
            c.anchor_error
                .as_deref()
                .map_or(String::new(), |e| format!(", last anchor failed: {e}")),
            c.rolled_back
                .as_deref()
                .map_or(String::new(), |e| format!("\nROLLED BACK: {e}")),
        );
    }
    for m in &s.models {
        let g = &m.signals;
        out += &format!(
            "model {}: {} workers ({} with a free slot), running {}/{} ({:.0} %), coefficient min {} p25 {} median {} p75 {} max {}\n",
            m.name,
            g.workers,
            g.workers_free,
            g.running,
            g.capacity,
            100.0 * g.utilisation,
            g.coefficient_min,
            g.coefficient_p25,
            g.coefficient_median,
            g.coefficient_p75,
            g.coefficient_max,
        );
    }
    for w in &s.workers {
        let machine = w.machine.as_ref().map_or(String::new(), |m| {
            format!(
                "    machine (self-reported): {}\n",
                serde_json::Value::Object(m.clone())
            )
        });
        match &w.stats {
            Some(st) => out.push_str(&format!(
                "  #{} {} owner {} v{} attestation {} coef {} running {}/{} enabled {} success {:.3} latency {} ms ttfb {} ms done {} failed {} metering violations {}\n",
                w.id,
                w.model,
                w.owner,
                w.version,
                w.attestation,
                st.coefficient,
                st.running,
                st.max,
                st.enabled,
                st.success_rate,
                st.ewma_latency_ms.map_or("-".into(), |v| format!("{v:.1}")),
                st.ewma_ttfb_ms.map_or("-".into(), |v| format!("{v:.1}")),
                st.completed,
                st.failed,
                st.metering_violations,
            )),
            None => out.push_str(&format!("  #{} {} (no stats)\n", w.id, w.model)),
        }
        out.push_str(&machine);
    }
    if s.machine_descriptions_dropped > 0 {
        out.push_str(&format!(
            "machine descriptions dropped (too long or not a JSON object): {}\n",
            s.machine_descriptions_dropped
        ));
    }
    out
}

async fn metrics(State(h): State<ProxyHandle>) -> impl IntoResponse {
    let s = h.snapshot().await;
    let mut m = MetricsText::new();
    let f = |v: u64| v as f64;
    m.metric(
        "cocoon_proxy_requests_total",
        MetricKind::Counter,
        "Requests received.",
        f(s.requests),
    )
    .metric(
        "cocoon_proxy_requests_succeeded_total",
        MetricKind::Counter,
        "Requests answered.",
        f(s.succeeded),
    )
    .metric(
        "cocoon_proxy_requests_failed_total",
        MetricKind::Counter,
        "Requests failed.",
        f(s.failed),
    )
    .metric(
        "cocoon_proxy_requests_retried_total",
        MetricKind::Counter,
        "Attempts moved to another worker.",
        f(s.retried),
    )
    .metric(
        "cocoon_proxy_requests_cancelled_total",
        MetricKind::Counter,
        "Requests cancelled.",
        f(s.cancelled),
    )
    .metric(
        "cocoon_proxy_requests_no_worker_total",
        MetricKind::Counter,
        "Requests without a worker.",
        f(s.no_worker),
    )
    .metric(
        "cocoon_proxy_requests_no_balance_total",
        MetricKind::Counter,
        "Requests without balance.",
        f(s.no_balance),
    )
    .metric(
        "cocoon_proxy_requests_timed_out_total",
        MetricKind::Counter,
        "Requests timed out.",
        f(s.timed_out),
    )
    .metric(
        "cocoon_proxy_metering_violations_total",
        MetricKind::Counter,
        "Worker usages above what their request could use, charged at the bound.",
        f(s.metering_violations),
    )
    .metric(
        "cocoon_proxy_deferred_charges",
        MetricKind::Gauge,
        "Charges waiting for the ledger to write them (no request is admitted meanwhile).",
        f(s.ledger_health.deferred_charges as u64),
    )
    .metric(
        "cocoon_proxy_bytes_relayed_total",
        MetricKind::Counter,
        "Answer bytes relayed.",
        f(s.bytes_relayed),
    )
    .metric(
        "cocoon_proxy_clients_connected",
        MetricKind::Gauge,
        "Client sessions.",
        f(s.clients_connected),
    )
    .metric(
        "cocoon_proxy_workers_connected",
        MetricKind::Gauge,
        "Worker sessions.",
        s.workers.len() as f64,
    )
    .metric(
        "cocoon_proxy_ledger_up",
        MetricKind::Gauge,
        "1 when the ledger store answered.",
        if s.ledger.is_some() { 1.0 } else { 0.0 },
    )
    .histogram(
        "cocoon_proxy_overhead_seconds",
        "Time an answered request spent in this proxy, less the time its worker reported.",
        &h.overhead(),
    )
    .histogram(
        "cocoon_proxy_reserve_wait_seconds",
        "Time a request waited for its reservation to be written to the ledger.",
        &h.reserve_wait(),
    )
    .histogram(
        "cocoon_proxy_charge_wait_seconds",
        "Time an answered request waited for its charge to be durable before its usage was relayed.",
        &h.charge_wait(),
    );
    // Left out while the store does not answer, rather than reported as a reset to zero.
    if let Some(ledger) = &s.ledger {
        m.metric(
            "cocoon_proxy_ledger_requests_total",
            MetricKind::Counter,
            "Requests charged in the ledger.",
            ledger.requests as f64,
        )
        .metric(
            "cocoon_proxy_client_charged_nanoton_total",
            MetricKind::Counter,
            "NanoTON charged.",
            ledger.client_charged as f64,
        )
        .metric(
            "cocoon_proxy_worker_credited_nanoton_total",
            MetricKind::Counter,
            "NanoTON credited.",
            ledger.worker_credited as f64,
        )
        .metric(
            "cocoon_proxy_commission_nanoton_total",
            MetricKind::Counter,
            "NanoTON commission.",
            ledger.proxy_commission as f64,
        )
        .metric(
            "cocoon_proxy_shortfall_nanoton_total",
            MetricKind::Counter,
            "NanoTON clients used but could not pay.",
            ledger.shortfall as f64,
        );
    }
    if let Some(c) = &s.settlement {
        m.metric(
            "cocoon_proxy_chain_anchor_seqno",
            MetricKind::Gauge,
            "The last ledger anchor the proxy contract holds.",
            f64::from(c.chain_anchor_seqno),
        )
        .metric(
            "cocoon_proxy_ledger_anchor_seqno",
            MetricKind::Gauge,
            "The last ledger anchor seen on chain.",
            f64::from(c.ledger_anchor_seqno),
        )
        .metric(
            "cocoon_proxy_anchors_sent_total",
            MetricKind::Counter,
            "Ledger anchors sent on chain.",
            f(c.anchors_sent),
        )
        .metric(
            "cocoon_proxy_vouchers_signed_total",
            MetricKind::Counter,
            "Charge and payout vouchers signed.",
            f(c.vouchers_signed),
        )
        .metric(
            "cocoon_proxy_ledger_rolled_back",
            MetricKind::Gauge,
            "1 when the chain holds a newer anchor than the ledger (no voucher is signed).",
            if c.rolled_back.is_some() { 1.0 } else { 0.0 },
        );
    }
    let ports = |pick: &dyn Fn(&crate::state::PortView) -> f64| {
        vec![
            (vec![("port", "client".to_owned())], pick(&s.client_port)),
            (vec![("port", "worker".to_owned())], pick(&s.worker_port)),
        ]
    };
    m.labeled(
        "cocoon_proxy_connections_open",
        MetricKind::Gauge,
        "Connections held per port (sessions and connections still in the gate).",
        &ports(&|p| p.open as f64),
    )
    .labeled(
        "cocoon_proxy_connections_refused_total",
        MetricKind::Counter,
        "Connections refused by the port's caps.",
        &ports(&|p| p.refused as f64),
    );
    let per_worker = |pick: &dyn Fn(&cocoon_market::selection::WorkerStats) -> f64| {
        s.workers
            .iter()
            .filter_map(|w| {
                w.stats.as_ref().map(|st| {
                    (
                        vec![("worker", w.id.to_string()), ("model", w.model.clone())],
                        pick(st),
                    )
                })
            })
            .collect::<Vec<_>>()
    };
    m.labeled(
        "cocoon_proxy_worker_running",
        MetricKind::Gauge,
        "Requests running per worker.",
        &per_worker(&|st| f64::from(st.running)),
    )
    .labeled(
        "cocoon_proxy_worker_success_rate",
        MetricKind::Gauge,
        "Success rate per worker.",
        &per_worker(&|st| st.success_rate),
    )
    .labeled(
        "cocoon_proxy_worker_coefficient",
        MetricKind::Gauge,
        "Price coefficient per worker (1000 = 1.0x), as the worker last announced it.",
        &per_worker(&|st| f64::from(i32::from(st.coefficient))),
    )
    .labeled(
        "cocoon_proxy_worker_utilisation",
        MetricKind::Gauge,
        "Busy share of each worker's request slots (running / max).",
        &per_worker(&|st| f64::from(st.running) / f64::from(st.max.max(1))),
    )
    .labeled(
        "cocoon_proxy_worker_latency_ms",
        MetricKind::Gauge,
        "Smoothed latency per worker.",
        &per_worker(&|st| st.ewma_latency_ms.unwrap_or(0.0)),
    );
    ([("content-type", "text/plain; version=0.0.4")], m.finish())
}

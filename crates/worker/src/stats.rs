//! The worker's HTTP side: `/stats` and `/dashboard` for people, `/jsonstats` for programs, `/metrics` for
//! Prometheus, and loopback admin endpoints to enable, disable and re-price the worker (a price set by hand
//! pins a load policy until `POST /admin/pricing/resume`).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::{get, post};
use cocoon_node::exposition::{MetricKind, MetricsText};
use serde::Deserialize;

use crate::state::{WorkerHandle, WorkerState};

pub(crate) async fn serve(listener: tokio::net::TcpListener, state: Arc<WorkerState>) {
    // Every answer says what this worker's attestation is; `simulated` must never go unnoticed.
    let attestation = HeaderValue::from_str(state.tls.identity().evidence_kind().as_token())
        .unwrap_or(HeaderValue::from_static("unknown"));
    let access =
        cocoon_net::http_access::AccessRules::new().allow_hosts(&state.config.stats_allowed_hosts);
    let handle = WorkerHandle::new(state);
    let sampled = handle.clone();
    let history = cocoon_node::dashboard::LiveHistory::spawn(
        cocoon_node::dashboard::SAMPLE_INTERVAL,
        move || {
            let samples = crate::dashboard::sample(&sampled.snapshot());
            async move { samples }
        },
    );
    let app = Router::new()
        .route("/stats", get(stats))
        .route(
            "/dashboard",
            get(move |State(h): State<WorkerHandle>| async move {
                let s = h.snapshot();
                Html(history.read(|hist, now| crate::dashboard::render(&s, hist, now)))
            }),
        )
        .route("/jsonstats", get(jsonstats))
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok" }))
        .route("/admin/enable", post(enable))
        .route("/admin/disable", post(disable))
        .route("/admin/coefficient", post(coefficient))
        .route("/admin/pricing/resume", post(resume_pricing))
        .with_state(handle)
        .layer(axum::middleware::map_response(move |mut res: Response| {
            let value = attestation.clone();
            async move {
                res.headers_mut().insert("x-cocoon-attestation", value);
                res
            }
        }));
    // The admin endpoints change what the worker serves: no browser page may reach them.
    cocoon_net::http_server::serve(
        listener,
        "stats",
        cocoon_net::http_server::HttpLimits::default(),
        access,
        app,
    )
    .await;
}

async fn jsonstats(State(h): State<WorkerHandle>) -> impl IntoResponse {
    Json(h.snapshot())
}

async fn stats(State(h): State<WorkerHandle>) -> impl IntoResponse {
    let s = h.snapshot();
    let proxies: Vec<String> = s
        .proxies
        .iter()
        .map(|p| format!("{} (v{}, {})", p.address, p.version, p.attestation))
        .collect();
    let warning = if s.attestation == "simulated" {
        "WARNING: SIMULATED attestation: this worker runs in no TEE; production proxies refuse it\n"
    } else {
        ""
    };
    format!(
        "{warning}cocoon-worker\nattestation: {}\nmodel: {}\nenabled: {}\ncoefficient: {} ({}{})\nutilisation: {:.2}\nactive requests: {}/{}\nproxies: {}\n\
         requests: {} (sealed {}, ok {}, failed {}, rejected {}, cancelled {})\ntokens: prompt {}, completion {}\n\
         paid tokens: {}\npayments audited: {} (paid less than the usage: {})\nproxies served no more: {}\nproxies held until their vouchers sign what they owe: {}\nuptime: {:.0} s\n",
        s.attestation,
        s.model,
        s.enabled,
        s.coefficient,
        s.pricing,
        s.price_bounds
            .map(|(f, c)| format!(", bounds {f}..{c}"))
            .unwrap_or_default(),
        s.utilisation,
        s.active_requests,
        s.max_active_requests,
        if proxies.is_empty() {
            "none".into()
        } else {
            proxies.join(", ")
        },
        s.requests,
        s.sealed_requests,
        s.succeeded,
        s.failed,
        s.rejected,
        s.cancelled,
        s.prompt_tokens,
        s.completion_tokens,
        s.paid_tokens,
        s.payment_audit.audited,
        s.payment_audit.discrepancies,
        if s.underpaying_proxies.is_empty() {
            "none".into()
        } else {
            s.underpaying_proxies
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        },
        if s.unsettled_proxies.is_empty() {
            "none".into()
        } else {
            s.unsettled_proxies
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        },
        s.uptime_secs,
    )
}

async fn metrics(State(h): State<WorkerHandle>) -> impl IntoResponse {
    let s = h.snapshot();
    let mut m = MetricsText::new();
    m.metric(
        "cocoon_worker_requests_total",
        MetricKind::Counter,
        "Requests received.",
        s.requests as f64,
    )
    .metric(
        "cocoon_worker_requests_succeeded_total",
        MetricKind::Counter,
        "Requests answered.",
        s.succeeded as f64,
    )
    .metric(
        "cocoon_worker_requests_failed_total",
        MetricKind::Counter,
        "Requests failed.",
        s.failed as f64,
    )
    .metric(
        "cocoon_worker_requests_rejected_total",
        MetricKind::Counter,
        "Requests refused.",
        s.rejected as f64,
    )
    .metric(
        "cocoon_worker_requests_cancelled_total",
        MetricKind::Counter,
        "Requests cancelled.",
        s.cancelled as f64,
    )
    .metric(
        "cocoon_worker_active_requests",
        MetricKind::Gauge,
        "Requests running.",
        s.active_requests as f64,
    )
    .metric(
        "cocoon_worker_max_active_requests",
        MetricKind::Gauge,
        "Request limit.",
        s.max_active_requests as f64,
    )
    .metric(
        "cocoon_worker_enabled",
        MetricKind::Gauge,
        "1 when enabled.",
        f64::from(u8::from(s.enabled)),
    )
    .metric(
        "cocoon_worker_coefficient",
        MetricKind::Gauge,
        "Price coefficient (1000 = 1.0x).",
        f64::from(s.coefficient),
    )
    .metric(
        "cocoon_worker_utilisation",
        MetricKind::Gauge,
        "Busy share of the request slots (active / max).",
        s.utilisation,
    )
    .metric(
        "cocoon_worker_pricing_load",
        MetricKind::Gauge,
        "Smoothed load the pricing policy steers by (queue included; 0 before the first tick).",
        s.smoothed_load.unwrap_or(0.0),
    )
    .metric(
        "cocoon_worker_pricing_automatic",
        MetricKind::Gauge,
        "1 when a load pricing policy moves the coefficient (not fixed, not pinned).",
        f64::from(u8::from(s.pricing == "load")),
    )
    .metric(
        "cocoon_worker_busy_refusals_total",
        MetricKind::Counter,
        "Requests refused because every slot was busy.",
        s.busy_refusals as f64,
    )
    .metric(
        "cocoon_worker_prompt_tokens_total",
        MetricKind::Counter,
        "Prompt tokens served.",
        s.prompt_tokens as f64,
    )
    .metric(
        "cocoon_worker_completion_tokens_total",
        MetricKind::Counter,
        "Completion tokens served.",
        s.completion_tokens as f64,
    )
    .metric(
        "cocoon_worker_connected_proxies",
        MetricKind::Gauge,
        "Proxy sessions up.",
        s.proxies.len() as f64,
    )
    .histogram(
        "cocoon_worker_overhead_seconds",
        "Time an answered request spent in this worker, less the engine's time (from asking it to the end of its answer).",
        &h.overhead(),
    );
    ([("content-type", "text/plain; version=0.0.4")], m.finish())
}

async fn enable(State(h): State<WorkerHandle>) -> impl IntoResponse {
    h.enable().await;
    "enabled\n"
}

async fn disable(State(h): State<WorkerHandle>) -> impl IntoResponse {
    h.disable().await;
    "disabled\n"
}

#[derive(Deserialize)]
struct CoefficientQuery {
    value: i32,
}

async fn coefficient(
    State(h): State<WorkerHandle>,
    Query(q): Query<CoefficientQuery>,
) -> impl IntoResponse {
    match h.set_coefficient(q.value).await {
        Ok(()) => (StatusCode::OK, format!("coefficient {}\n", q.value)),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")),
    }
}

async fn resume_pricing(State(h): State<WorkerHandle>) -> impl IntoResponse {
    let c = h.resume_pricing().await;
    format!("pricing resumed, coefficient {c}\n")
}

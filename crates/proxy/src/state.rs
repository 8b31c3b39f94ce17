//! State shared by the proxy's sessions, request tasks and stats endpoints.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use cocoon_attest::Policy;
use cocoon_market::WorkerId;
use cocoon_market::ledger::Ledger;
use cocoon_market::selection::{SelectionConfig, WorkerSelector};
use cocoon_net::{Connection, LocalIdentity, TlsEndpoint};
use cocoon_protocol::messages::proxy;
use cocoon_protocol::tl::Int256;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{ProxyConfig, ProxyError};

/// What a worker sent about one request, as the request's task sees it.
#[derive(Debug)]
pub(crate) enum WorkerEvent {
    /// `proxy.queryAnswerEx`: the response head and first bytes.
    Answer {
        answer: Bytes,
        final_info: Option<proxy::QueryFinalInfo>,
    },
    /// `proxy.queryAnswerPartEx`.
    Part {
        answer: Bytes,
        final_info: Option<proxy::QueryFinalInfo>,
    },
    /// `proxy.queryAnswerErrorEx`.
    Error {
        code: i32,
        message: String,
        final_info: Option<proxy::QueryFinalInfo>,
    },
    /// `ext.queryReceipt`: the worker's signed receipt, sent before its final part.
    Receipt(Bytes),
    /// The worker's connection dropped.
    Lost,
}

/// A connected worker.
pub(crate) struct WorkerLink {
    pub(crate) conn: Connection,
    pub(crate) owner: String,
    pub(crate) model: String,
    pub(crate) version: i32,
    /// What its RA-TLS certificate proved.
    pub(crate) peer: cocoon_attest::VerifiedPeer,
    /// Requests routed to it now: proxy-side request id → the request's event channel.
    pub(crate) routes: HashMap<Int256, mpsc::Sender<WorkerEvent>>,
}

pub(crate) struct ProxyState {
    pub(crate) config: ProxyConfig,
    /// This proxy's RA-TLS certificate.
    pub(crate) identity: Arc<LocalIdentity>,
    /// RA-TLS on the worker port: workers must satisfy the configured policy.
    pub(crate) worker_tls: TlsEndpoint,
    /// RA-TLS on the client port: clients present no evidence.
    pub(crate) client_tls: TlsEndpoint,
    pub(crate) public_key: Int256,
    pub(crate) selector: Mutex<WorkerSelector>,
    pub(crate) ledger: Mutex<Ledger>,
    pub(crate) workers: Mutex<HashMap<WorkerId, WorkerLink>>,
    pub(crate) next_worker: AtomicU64,
    pub(crate) clients_connected: AtomicU64,
    pub(crate) counters: Counters,
    pub(crate) shutdown: CancellationToken,
    pub(crate) started: Instant,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) succeeded: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) no_worker: AtomicU64,
    pub(crate) no_balance: AtomicU64,
    pub(crate) timed_out: AtomicU64,
    pub(crate) bytes_relayed: AtomicU64,
}

impl ProxyState {
    pub(crate) fn new(config: ProxyConfig) -> Result<Self, ProxyError> {
        let ledger = Ledger::new(config.pricing).map_err(|e| ProxyError::Config(e.to_string()))?;
        let attestation = &config.attestation;
        let identity = attestation.identity(cocoon_attest::ratls::ClaimsFormat::Reference)?;
        let worker_tls = attestation.endpoint(identity.clone())?;
        let client_tls = attestation.endpoint_with_policy(identity.clone(), Policy::any())?;
        tracing::info!(
            evidence = %identity.evidence_kind(),
            worker_policy = ?attestation.policy,
            "proxy attestation ready"
        );
        Ok(Self {
            identity,
            worker_tls,
            client_tls,
            public_key: Int256(rand::random()),
            selector: Mutex::new(
                WorkerSelector::new(SelectionConfig::default())
                    .map_err(|e| ProxyError::Config(e.to_string()))?,
            ),
            ledger: Mutex::new(ledger),
            workers: Mutex::new(HashMap::new()),
            next_worker: AtomicU64::new(1),
            clients_connected: AtomicU64::new(0),
            counters: Counters::default(),
            shutdown: CancellationToken::new(),
            started: Instant::now(),
            config,
        })
    }
}

/// Accepts connections on `listener` for as long as the proxy runs, serving each in its own
/// task; a failed accept (e.g. out of descriptors) is logged and retried shortly after.
pub(crate) async fn accept_forever<F, Fut>(
    listener: tokio::net::TcpListener,
    role: &'static str,
    serve: F,
) where
    F: Fn(tokio::net::TcpStream) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("{role} accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let session = serve(tcp);
        tokio::spawn(async move {
            if let Err(e) = session.await {
                tracing::info!(%peer, "{role} session ended: {e}");
            }
        });
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reads a running proxy's state.
#[derive(Clone)]
pub struct ProxyHandle {
    state: Arc<ProxyState>,
}

/// One worker as `/jsonstats` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerView {
    /// Proxy-local id.
    pub id: u64,
    /// Model announced.
    pub model: String,
    /// Owner address.
    pub owner: String,
    /// Negotiated protocol version.
    pub version: i32,
    /// Kind of the worker's TEE evidence (`tdx`, `sev-snp`, or `simulated`).
    pub attestation: String,
    /// Image hash its evidence measured.
    pub image_hash: Option<String>,
    /// Selection statistics.
    pub stats: Option<cocoon_market::selection::WorkerStats>,
}

/// A point-in-time view of a proxy.
#[derive(Debug, Clone, Serialize)]
pub struct ProxySnapshot {
    /// Kind of this proxy's own TEE evidence; `simulated` means it runs in no TEE.
    pub attestation: String,
    /// Workers connected.
    pub workers: Vec<WorkerView>,
    /// Client sessions open.
    pub clients_connected: u64,
    /// Requests received.
    pub requests: u64,
    /// Requests answered completely.
    pub succeeded: u64,
    /// Requests that failed.
    pub failed: u64,
    /// Attempts moved to another worker.
    pub retried: u64,
    /// Requests cancelled by the client.
    pub cancelled: u64,
    /// Requests refused for lack of a worker.
    pub no_worker: u64,
    /// Requests refused for lack of balance.
    pub no_balance: u64,
    /// Requests that ran out of time.
    pub timed_out: u64,
    /// Answer bytes relayed.
    pub bytes_relayed: u64,
    /// The books.
    pub ledger: cocoon_market::ledger::LedgerTotals,
    /// Seconds since start.
    pub uptime_secs: f64,
}

impl ProxyHandle {
    pub(crate) fn new(state: Arc<ProxyState>) -> Self {
        Self { state }
    }

    /// The proxy's state now.
    pub fn snapshot(&self) -> ProxySnapshot {
        let s = &self.state;
        let c = &s.counters;
        let selector = lock(&s.selector);
        let now = Instant::now();
        let mut workers: Vec<WorkerView> = lock(&s.workers)
            .iter()
            .map(|(id, w)| WorkerView {
                id: id.0,
                model: w.model.clone(),
                owner: w.owner.clone(),
                version: w.version,
                attestation: w.peer.evidence_kind.as_token().to_owned(),
                image_hash: w.peer.image_hash.map(|h| h.to_string()),
                stats: selector.worker_stats(*id, now),
            })
            .collect();
        workers.sort_by_key(|w| w.id);
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ProxySnapshot {
            attestation: s.identity.evidence_kind().as_token().to_owned(),
            workers,
            clients_connected: r(&s.clients_connected),
            requests: r(&c.requests),
            succeeded: r(&c.succeeded),
            failed: r(&c.failed),
            retried: r(&c.retried),
            cancelled: r(&c.cancelled),
            no_worker: r(&c.no_worker),
            no_balance: r(&c.no_balance),
            timed_out: r(&c.timed_out),
            bytes_relayed: r(&c.bytes_relayed),
            ledger: lock(&s.ledger).totals(),
            uptime_secs: s.started.elapsed().as_secs_f64(),
        }
    }

    /// The ledger's totals.
    pub fn ledger_totals(&self) -> cocoon_market::ledger::LedgerTotals {
        lock(&self.state.ledger).totals()
    }
}

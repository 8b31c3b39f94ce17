//! State shared by the proxy's sessions, request tasks and stats endpoints.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use cocoon_attest::Policy;
use cocoon_ledger_store::{BackendKind, CommitQueue, DEFAULT_MAX_BATCH, LedgerStore, StoreError};
use cocoon_market::WorkerId;
use cocoon_market::ledger::LedgerTotals;
use cocoon_market::selection::{SelectionConfig, WorkerSelector};
use cocoon_net::admission::Admission;
use cocoon_net::{Connection, LocalIdentity, TlsEndpoint};
use cocoon_protocol::messages::proxy;
use cocoon_protocol::tl::Int256;
use serde::Serialize;
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
    /// The request's queue passed its byte budget: its client does not read fast enough.
    Overflow,
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
    pub(crate) routes: HashMap<Int256, crate::request::RouteSender>,
    /// Its self-reported machine description, for the stats pages only (see `machine`).
    pub(crate) machine: Option<serde_json::Map<String, serde_json::Value>>,
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
    /// The books, for reading (cheap to clone, async, one transaction per call).
    pub(crate) ledger: LedgerStore,
    /// The requests' reservations, releases and charges, committed in batches (one disk sync
    /// for all the requests that end together).
    pub(crate) writes: CommitQueue,
    /// Workers' attested sealing keys, relayed to clients for sealed requests.
    pub(crate) sealing: crate::sealed::SealingDirectory,
    pub(crate) workers: Mutex<HashMap<WorkerId, WorkerLink>>,
    pub(crate) next_worker: AtomicU64,
    pub(crate) clients_connected: AtomicU64,
    pub(crate) counters: Counters,
    /// Whether the ledger can record charges, and the charges waiting for it.
    pub(crate) ledger_health: crate::health::LedgerHealth,
    pub(crate) shutdown: CancellationToken,
    pub(crate) started: Instant,
    /// Settlement on chain, when a `[chain]` endpoint is configured.
    pub(crate) settle: Option<Arc<crate::settle::Settlement>>,
    /// The root registry's allow-lists, when the proxy follows a root.
    pub(crate) registry: Option<crate::registry::RegistryPolicy>,
    /// Who holds a connection on the client port.
    pub(crate) client_admission: Admission,
    /// Who holds a connection on the worker port.
    pub(crate) worker_admission: Admission,
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
    /// Requests refused before any worker answered (bad limits, the ledger, worker refusals).
    pub(crate) refused: AtomicU64,
    /// Client sessions closed because they did not read their answers in time.
    pub(crate) stalled_clients: AtomicU64,
    /// Usages above what their request could use, charged at the bound.
    pub(crate) metering_violations: AtomicU64,
    /// Workers' machine descriptions dropped (too long, or not a JSON object).
    pub(crate) machine_descriptions_dropped: AtomicU64,
    /// Time each answered request spent in this proxy, less the worker's time on it.
    pub(crate) overhead: cocoon_node::histogram::Histogram,
    /// Time each request waited for its reservation to be written (queue and commit).
    pub(crate) reserve_wait: cocoon_node::histogram::Histogram,
    /// Time each answered request waited for its charge to be durable before its usage went
    /// out (queue, commit and the sync to disk).
    pub(crate) charge_wait: cocoon_node::histogram::Histogram,
}

impl ProxyState {
    pub(crate) async fn open(mut config: ProxyConfig) -> Result<Self, ProxyError> {
        let key = voucher_key(&config)?;
        let settle = crate::settle::Settlement::open(&mut config, &key)
            .await?
            .map(Arc::new);
        let ledger = open_ledger(&config).await?;
        if let Some(settle) = &settle {
            settle.reconcile_anchors(&ledger).await?;
        }
        let attestation = &config.attestation;
        let identity = attestation.identity(cocoon_attest::ratls::ClaimsFormat::Reference)?;
        let worker_tls = attestation.endpoint(identity.clone())?;
        let client_tls = attestation.endpoint_with_policy(identity.clone(), Policy::any())?;
        tracing::info!(
            evidence = %identity.evidence_kind(),
            image_hash = ?identity.image_hash(),
            worker_policy = ?attestation.policy,
            "proxy attestation ready"
        );
        let registry = crate::registry::RegistryPolicy::open(
            &config,
            settle.as_deref(),
            &worker_tls,
            &identity,
        )
        .await?;
        Ok(Self {
            identity,
            worker_tls,
            client_tls,
            public_key: Int256(key.verifying_key().to_bytes()),
            selector: Mutex::new(
                WorkerSelector::new(SelectionConfig::default())
                    .map_err(|e| ProxyError::Config(e.to_string()))?,
            ),
            writes: CommitQueue::start(ledger.clone(), DEFAULT_MAX_BATCH),
            ledger,
            workers: Mutex::new(HashMap::new()),
            next_worker: AtomicU64::new(1),
            clients_connected: AtomicU64::new(0),
            counters: Counters::default(),
            ledger_health: crate::health::LedgerHealth::open(
                config.data_dir.as_deref(),
                &config.pricing,
            )?,
            sealing: Default::default(),
            shutdown: CancellationToken::new(),
            started: Instant::now(),
            settle,
            registry,
            client_admission: Admission::new(config.client_port.connection_limits()),
            worker_admission: Admission::new(config.worker_port.connection_limits()),
            config,
        })
    }
}

/// Opens the configured ledger store and says what it holds.
async fn open_ledger(config: &ProxyConfig) -> Result<LedgerStore, ProxyError> {
    let url = config.ledger_url.as_deref().unwrap_or("sqlite::memory:");
    let ledger = LedgerStore::connect(url, config.pricing).await?;
    if config.ledger_url.is_none() {
        tracing::warn!("the ledger is kept in memory: its books are lost when the proxy stops");
    }
    let totals = ledger.totals().await?;
    tracing::info!(
        ledger = %cocoon_ledger_store::redact_url(url),
        backend = ?ledger.backend(),
        requests = totals.requests,
        client_charged = %totals.client_charged,
        worker_credited = %totals.worker_credited,
        proxy_commission = %totals.proxy_commission,
        dropped_reservations = ledger.reservations_cleared_at_open(),
        "ledger open"
    );
    Ok(ledger)
}

/// The voucher-signing key, from `<data dir>/voucher-key.sealed` (made on first start), sealed
/// under the configured key source; a fresh in-memory key when there is no data directory.
pub(crate) fn voucher_key(config: &ProxyConfig) -> Result<ed25519_dalek::SigningKey, ProxyError> {
    use cocoon_node::NodeError;
    use cocoon_node::keys::{create_private_dir, open_key_source};
    use cocoon_seal::{KeyPurpose, SealedKeyFile, SecretKind, SystemRng};

    let keys_error = |e: NodeError| match e {
        NodeError::Keys(e) => ProxyError::Keys(e),
        NodeError::Config(m) => ProxyError::Config(m),
        other => ProxyError::Node(other),
    };
    let keys = &config.keys;
    let Some(dir) = keys.data_dir.as_ref().or(config.data_dir.as_ref()) else {
        tracing::warn!("no data directory: the voucher-signing key changes at every start");
        return Ok(ed25519_dalek::SigningKey::from_bytes(&rand::random()));
    };
    create_private_dir(dir).map_err(keys_error)?;
    let source = open_key_source(keys, &config.attestation, dir).map_err(keys_error)?;
    let opened = SealedKeyFile::open_or_create(
        &dir.join("voucher-key.sealed"),
        source.as_ref(),
        KeyPurpose::VOUCHER_KEY,
        SecretKind::Ed25519Seed,
        &mut SystemRng,
    )?;
    let key = ed25519_dalek::SigningKey::from_bytes(&opened.secret);
    tracing::info!(
        key_source = %source.kind(),
        simulated = source.is_simulated(),
        data_dir = %dir.display(),
        voucher_key = if opened.created { "created" } else { "opened" },
        public_key = %hex::encode(key.verifying_key().as_bytes()),
        "voucher-signing key at rest"
    );
    Ok(key)
}

/// Accepts connections on `listener` for as long as the proxy runs, each admitted by the
/// port's caps (a refused one is closed at once) and served in its own task; a failed accept
/// (e.g. out of descriptors) backs off without holding up the other port.
pub(crate) async fn accept_forever<F, Fut>(
    listener: tokio::net::TcpListener,
    role: &'static str,
    admission: Admission,
    serve: F,
) where
    F: Fn(tokio::net::TcpStream) -> Fut,
    Fut: std::future::Future<Output = Result<(), crate::refusal::SessionEnd>> + Send + 'static,
{
    cocoon_net::listener::accept_loop(
        listener,
        role,
        admission,
        move |tcp, peer, place| {
            let session = serve(tcp);
            async move {
                if let Err(e) = session.await {
                    tracing::info!(%peer, "{role} session ended: {e}");
                }
                drop(place);
            }
        },
        |_, _| {},
    )
    .await;
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
    /// X25519 sealing key in its attested claims (v1 claims only), hex.
    pub sealing_public_key: Option<String>,
    /// Selection statistics.
    pub stats: Option<cocoon_market::selection::WorkerStats>,
    /// The machine description the worker sent (CPU, memory, GPUs, engine, attestation).
    /// Self-reported and unchecked: shown, never used to select, price or trust the worker.
    pub machine: Option<serde_json::Map<String, serde_json::Value>>,
}

/// One model's market as the proxy's stats show it.
#[derive(Debug, Clone, Serialize)]
pub struct ModelMarket {
    /// The base model.
    pub name: String,
    /// Its workers' count, load and prices.
    #[serde(flatten)]
    pub signals: cocoon_market::MarketSignals,
}

/// A point-in-time view of a proxy.
#[derive(Debug, Clone, Serialize)]
pub struct ProxySnapshot {
    /// Kind of this proxy's own TEE evidence; `simulated` means it runs in no TEE.
    pub attestation: String,
    /// Per model: workers, load and price distribution (what clients see in `/v1/models`).
    pub models: Vec<ModelMarket>,
    /// This proxy's image hash (hex), the value the root registry must list for clients and
    /// workers to accept it.
    pub image_hash: Option<String>,
    /// The root registry this proxy follows (`None`: allow-lists from configuration only).
    pub registry: Option<cocoon_chain::RegistryStatus>,
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
    /// Requests refused before any worker answered (bad limits, the ledger, worker refusals).
    pub refused: u64,
    /// Client sessions closed because they did not read their answers in time.
    pub stalled_clients: u64,
    /// Worker usages above what their request could use, charged at the bound.
    pub metering_violations: u64,
    /// Workers' machine descriptions dropped for being too long or not a JSON object.
    pub machine_descriptions_dropped: u64,
    /// Whether the ledger can record charges; while charges wait, no request is admitted.
    pub ledger_health: crate::health::LedgerHealthStats,
    /// Sealed (proxy-blind) requests received.
    pub sealed_requests: u64,
    /// Workers whose attested sealing key this proxy relays to clients.
    pub sealing_workers: usize,
    /// Workers' certificates accepted since start: first announcements and renewals.
    pub sealing_announcements: u64,
    /// The ledger's database: `sqlite` or `postgres`.
    pub ledger_backend: String,
    /// The books' totals, read from the ledger store (`None` when it could not be read; see
    /// `ledger_error`).
    pub ledger: Option<LedgerTotals>,
    /// Why the totals could not be read.
    pub ledger_error: Option<String>,
    /// Seconds since start.
    pub uptime_secs: f64,
    /// Settlement on chain (`None`: no chain configured).
    pub settlement: Option<crate::settle::SettlementStats>,
    /// The client port's connections.
    pub client_port: PortView,
    /// The worker port's connections.
    pub worker_port: PortView,
}

/// One listening port's connections, as `/jsonstats` shows them.
#[derive(Debug, Clone, Serialize)]
pub struct PortView {
    /// Connections held now (sessions and connections still in the gate).
    pub open: usize,
    /// Connections refused by the caps since start.
    pub refused: u64,
    /// The cap on connections held at once.
    pub max_connections: usize,
    /// The cap per address.
    pub max_per_address: usize,
}

impl PortView {
    fn of(a: &Admission) -> Self {
        let limits = a.limits();
        Self {
            open: a.open(),
            refused: a.refused(),
            max_connections: limits.max_connections,
            max_per_address: limits.max_per_address,
        }
    }
}

impl ProxyHandle {
    pub(crate) fn new(state: Arc<ProxyState>) -> Self {
        Self { state }
    }

    /// The time answered requests spent in this proxy beyond their worker's.
    pub fn overhead(&self) -> cocoon_node::histogram::HistogramSnapshot {
        self.state.counters.overhead.snapshot()
    }

    /// The time requests waited for their reservations to be written.
    pub fn reserve_wait(&self) -> cocoon_node::histogram::HistogramSnapshot {
        self.state.counters.reserve_wait.snapshot()
    }

    /// The time answered requests waited for their charges to be durable.
    pub fn charge_wait(&self) -> cocoon_node::histogram::HistogramSnapshot {
        self.state.counters.charge_wait.snapshot()
    }

    /// The proxy's state now, with the ledger's totals read from the store.
    pub async fn snapshot(&self) -> ProxySnapshot {
        let s = &self.state;
        let c = &s.counters;
        let workers = self.workers();
        let (ledger, ledger_error) = match s.ledger.totals().await {
            Ok(t) => (Some(t), None),
            Err(e) => {
                tracing::warn!("cannot read the ledger totals: {e}");
                (None, Some(e.to_string()))
            }
        };
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let models = lock(&s.selector)
            .model_summaries()
            .into_iter()
            .map(|m| ModelMarket {
                signals: m.signals(),
                name: m.name,
            })
            .collect();
        ProxySnapshot {
            models,
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
            refused: r(&c.refused),
            stalled_clients: r(&c.stalled_clients),
            metering_violations: r(&c.metering_violations),
            machine_descriptions_dropped: r(&c.machine_descriptions_dropped),
            ledger_health: s.ledger_health.stats(),
            sealed_requests: r(&s.sealing.requests),
            sealing_workers: s.sealing.workers(),
            sealing_announcements: s.sealing.announcements.load(Ordering::Relaxed),
            ledger_backend: match s.ledger.backend() {
                BackendKind::Sqlite => "sqlite",
                BackendKind::Postgres => "postgres",
            }
            .to_owned(),
            ledger,
            ledger_error,
            uptime_secs: s.started.elapsed().as_secs_f64(),
            settlement: s.settle.as_ref().map(|st| st.stats()),
            client_port: PortView::of(&s.client_admission),
            worker_port: PortView::of(&s.worker_admission),
            image_hash: s.identity.image_hash().map(|h| h.to_string()),
            registry: s
                .registry
                .as_ref()
                .map(crate::registry::RegistryPolicy::status),
        }
    }

    /// Public half of the voucher-signing key, announced to workers as `proxy_public_key`.
    pub fn public_key(&self) -> [u8; 32] {
        self.state.public_key.0
    }

    /// The workers connected now, by id.
    pub fn workers(&self) -> Vec<WorkerView> {
        let s = &self.state;
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
                sealing_public_key: w
                    .peer
                    .claims
                    .as_ref()
                    .and_then(|c| c.extended.as_ref())
                    .and_then(|x| x.sealing_public_key)
                    .map(|k| k.to_hex()),
                stats: selector.worker_stats(*id, now),
                machine: w.machine.clone(),
            })
            .collect();
        workers.sort_by_key(|w| w.id);
        workers
    }

    /// Asks worker `id` to serve `model` (`worker.changeModel`) and, once it has, lists it under
    /// that model; its running requests finish undisturbed.
    ///
    /// # Errors
    /// [`ProxyError::UnknownWorker`], or [`ProxyError::ModelChangeRefused`] when the registry
    /// does not allow the model, the worker refuses or fails, or it takes over 15 minutes.
    pub async fn change_model(&self, id: u64, model: &str) -> Result<(), crate::ProxyError> {
        crate::model_change::change(&self.state, id, model).await
    }

    /// The ledger's totals, read from the store.
    pub async fn ledger_totals(&self) -> Result<LedgerTotals, StoreError> {
        self.state.ledger.totals().await
    }

    /// The ledger store itself (a clone sharing the proxy's connections), to read accounts and
    /// request records.
    pub fn ledger(&self) -> LedgerStore {
        self.state.ledger.clone()
    }
}

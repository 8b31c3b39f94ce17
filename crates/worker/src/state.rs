//! State shared by a worker's sessions, request tasks and stats endpoints.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cocoon_infer::Engine;
use cocoon_net::Connection;
use cocoon_protocol::ModelName;
use cocoon_protocol::messages::worker;
use cocoon_protocol::tl::{Int256, TlConstructor};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::{WorkerConfig, WorkerError};
use crate::keys::WorkerKeys;

pub(crate) struct WorkerState {
    pub(crate) config: WorkerConfig,
    /// RA-TLS towards proxies: this worker's certificate and the policy proxies must satisfy.
    pub(crate) tls: cocoon_net::TlsEndpoint,
    /// Wallet and sealing keys, opened from their sealed files at start.
    pub(crate) keys: WorkerKeys,
    /// The model served now and its engine; replaced whole by a model change, so a request
    /// that took it at its start keeps both to its end.
    pub(crate) served: Mutex<Arc<Served>>,
    /// How to load another model (`worker.changeModel`), when the operator set one up.
    pub(crate) loader: std::sync::OnceLock<Arc<dyn crate::model_change::ModelLoader>>,
    /// Held while a model change runs: one at a time.
    pub(crate) changing: tokio::sync::Mutex<()>,
    /// Every model change: (the model now served, the session whose proxy asked).
    pub(crate) model_changes: tokio::sync::watch::Sender<(String, u64)>,
    pub(crate) enabled: AtomicBool,
    pub(crate) coefficient: AtomicI32,
    /// The coefficient before the last change, and when it changed: a proxy may still offer it
    /// for a short while.
    pub(crate) previous_coefficients: Mutex<Vec<(i32, std::time::Instant)>>,
    /// Proxies (as dialled) that paid a request less than its usage, and what the audit found:
    /// served no more until the worker restarts.
    pub(crate) underpaying_proxies: Mutex<std::collections::BTreeMap<String, String>>,
    /// Proxies (as dialled) whose vouchers left a total they showed unsigned past
    /// `voucher_lag_limit`, and what was found: not served until a voucher signs it.
    pub(crate) unsettled_proxies: Mutex<std::collections::BTreeMap<String, String>>,
    /// When each proxy in `unsettled_proxies` was held.
    pub(crate) held_since: Mutex<HashMap<String, std::time::Instant>>,
    /// Each proxy's committed totals held against its payment notices, over all its sessions
    /// since this process first met it (`crate::owed`).
    pub(crate) proxy_totals: Mutex<HashMap<String, cocoon_market::total::TotalAudit>>,
    /// Each proxy's totals waiting for its vouchers, over all its sessions (`crate::owed`).
    pub(crate) proxy_lags: Mutex<HashMap<String, cocoon_market::total::VoucherLag>>,
    /// Proxies whose contract's prices could not be read at their session's start: audited at
    /// the local prices, and never cut off on that audit.
    pub(crate) unread_contracts: Mutex<std::collections::HashSet<String>>,
    /// What each version-3 proxy paid for each request, held against this worker's own
    /// account of it (`cocoon_market::audit`).
    pub(crate) payments: Mutex<cocoon_market::audit::PaymentAudit>,
    /// The pricing policy and its memory (smoothed load, last change, operator's pin).
    pub(crate) price: Mutex<cocoon_market::PriceController>,
    pub(crate) active: AtomicUsize,
    pub(crate) shutdown: CancellationToken,
    pub(crate) sessions: Mutex<HashMap<u64, SessionInfo>>,
    pub(crate) next_session: AtomicU64,
    pub(crate) in_flight: Mutex<HashMap<Int256, CancellationToken>>,
    pub(crate) counters: Counters,
    /// Highest committed token total each proxy has shown us, for rollback detection.
    pub(crate) committed: Mutex<HashMap<String, i64>>,
    pub(crate) started: std::time::Instant,
    /// The payout vouchers each proxy handed over, and their submission.
    pub(crate) payouts: Arc<crate::settle::Payouts>,
    /// The root registry followed, when `[registry] root` is set.
    pub(crate) registry: Mutex<Option<Arc<Mutex<cocoon_chain::RegistryStatus>>>>,
    /// `machine_description_json` for `worker.params`, gathered once before the first session
    /// (unset with `describe_machine = false`).
    pub(crate) machine_description: std::sync::OnceLock<String>,
}

/// The model a worker serves and the engine serving it.
pub(crate) struct Served {
    /// The model's name as proxies and clients know it (base and variant).
    pub(crate) model: ModelName,
    pub(crate) engine: Arc<dyn Engine>,
    /// The weights served (see `weights.rs`), named in receipts and in the certificate's
    /// claims; `None`: unpinned, local mode only.
    pub(crate) weights: Option<cocoon_infer::WeightsDigest>,
}

#[derive(Default)]
pub(crate) struct Counters {
    /// Model changes made (`worker.changeModel`).
    pub(crate) model_changes: AtomicU64,
    pub(crate) requests: AtomicU64,
    /// Sealed requests whose envelope opened here (also counted in `requests`).
    pub(crate) sealed_requests: AtomicU64,
    pub(crate) succeeded: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) rejected: AtomicU64,
    /// Requests refused because every slot was busy (also counted in `rejected`).
    pub(crate) busy_refusals: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) prompt_tokens: AtomicU64,
    pub(crate) completion_tokens: AtomicU64,
    pub(crate) paid_tokens: AtomicI64,
    /// Time each answered request spent in this worker, less the engine's time.
    pub(crate) overhead: cocoon_node::histogram::Histogram,
}

#[derive(Clone)]
pub(crate) struct SessionInfo {
    pub(crate) proxy: String,
    pub(crate) conn: Connection,
    pub(crate) version: i32,
    /// What the proxy's RA-TLS certificate proved.
    pub(crate) peer: cocoon_attest::VerifiedPeer,
}

/// How long a request that ended is kept for its proxy's payment notice.
const PAYMENT_RETAIN: std::time::Duration = std::time::Duration::from_secs(120);

/// How long after a change of coefficient a proxy may still offer the previous one.
const COEFFICIENT_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

impl WorkerState {
    /// Records that `proxy` paid a request less than its usage (`found`): logged, and the proxy
    /// is served no more (told at once on `conn` that this worker is disabled for it, so it
    /// routes elsewhere). Not when the session's prices are the local ones only because the
    /// proxy contract's could not be read: the audit may then be wrong, and only the log says
    /// so. `None`: a request whose proxy is not known, only logged.
    pub(crate) fn note_underpaid(
        &self,
        proxy: Option<&str>,
        conn: &Connection,
        found: &impl std::fmt::Display,
    ) {
        let found = found.to_string();
        let Some(proxy) = proxy else {
            tracing::error!("{found}");
            return;
        };
        if lock(&self.unread_contracts).contains(proxy) {
            tracing::error!(
                %proxy,
                "{found} (at the local prices: the proxy contract's could not be read, so the \
                 proxy is still served)"
            );
            return;
        }
        self.cut_off(proxy, conn, found);
    }

    /// Serves `proxy` no more until the worker restarts, for `found` (logged; the proxy told at
    /// once on `conn` that this worker is disabled for it).
    pub(crate) fn cut_off(&self, proxy: &str, conn: &Connection, found: String) {
        tracing::error!(%proxy, "{found}: this proxy is served no more until the worker restarts");
        let newly = {
            let mut underpaying = lock(&self.underpaying_proxies);
            let newly = !underpaying.contains_key(proxy);
            underpaying.entry(proxy.to_owned()).or_insert(found);
            newly
        };
        if newly {
            self.tell(conn, true);
        }
    }

    /// Notes whether `proxy`'s session audits at the local prices because its contract's could
    /// not be read (`true`), or at prices it could read or that are meant (`false`).
    pub(crate) fn note_contract_unread(&self, proxy: &str, unread: bool) {
        let mut unread_contracts = lock(&self.unread_contracts);
        if unread {
            unread_contracts.insert(proxy.to_owned());
        } else {
            unread_contracts.remove(proxy);
        }
    }

    /// Whether a proxy may offer `offered` now: the coefficient in force, or one it replaced
    /// less than [`COEFFICIENT_GRACE`] ago (a proxy may not have heard of the change yet).
    /// Nothing else: below, the worker would be paid less than it asks; above, the receipt
    /// (which signs the coefficient offered) would let the proxy charge the client more than
    /// it pays. Answers the coefficient in force when refused.
    pub(crate) fn coefficient_accepted(
        &self,
        offered: i64,
        now: std::time::Instant,
    ) -> Result<(), i32> {
        let current = self.coefficient.load(Ordering::Acquire);
        if offered == i64::from(current) {
            return Ok(());
        }
        let mut replaced = lock(&self.previous_coefficients);
        replaced.retain(|(_, at)| now.saturating_duration_since(*at) < COEFFICIENT_GRACE);
        if replaced.iter().any(|(c, _)| i64::from(*c) == offered) {
            Ok(())
        } else {
            Err(current)
        }
    }

    /// Puts `value` in force, remembering the one it replaces for [`COEFFICIENT_GRACE`].
    pub(crate) fn set_coefficient_value(&self, value: i32) {
        let previous = self.coefficient.swap(value, Ordering::AcqRel);
        if previous != value {
            let now = std::time::Instant::now();
            let mut replaced = lock(&self.previous_coefficients);
            replaced.retain(|(_, at)| now.saturating_duration_since(*at) < COEFFICIENT_GRACE);
            // Bounded however often it changes: the oldest half goes first.
            if replaced.len() >= 64 {
                replaced.drain(..32);
            }
            replaced.push((previous, now));
        }
    }

    pub(crate) fn new(config: WorkerConfig, engine: Arc<dyn Engine>) -> Result<Self, WorkerError> {
        let keys = WorkerKeys::open(&config.keys, &config.attestation)?;
        let weights = crate::weights::resolve(&config, engine.as_ref())?;
        // Reference peers read only the TLS key from the claims; a node without evidence has no
        // attested claims to put the sealing key in.
        let format = match config.attestation.evidence {
            cocoon_node::EvidenceSource::None => cocoon_attest::ratls::ClaimsFormat::Reference,
            _ => cocoon_attest::ratls::ClaimsFormat::V1 {
                sealing_public_key: Some(cocoon_attest::digest::Digest32::from(
                    *keys.sealing.public().as_bytes(),
                )),
                gpu_evidence_digest: None,
                model_hash: weights.map(|w| cocoon_attest::digest::Digest32::from(w.0)),
            },
        };
        let identity = config.attestation.identity(format)?;
        let tls = config.attestation.endpoint(identity)?;
        let payouts = Arc::new(crate::settle::Payouts::open(
            &config.settlement,
            config.keys.data_dir.as_deref(),
        )?);
        let start = cocoon_market::Coefficient::try_from(config.coefficient)?;
        let price = cocoon_market::PriceController::new(config.pricing, start)?;
        Ok(Self {
            coefficient: AtomicI32::new(i32::from(price.current())),
            previous_coefficients: Mutex::new(Vec::new()),
            underpaying_proxies: Mutex::new(std::collections::BTreeMap::new()),
            unsettled_proxies: Mutex::new(std::collections::BTreeMap::new()),
            held_since: Mutex::new(HashMap::new()),
            proxy_totals: Mutex::new(HashMap::new()),
            proxy_lags: Mutex::new(HashMap::new()),
            unread_contracts: Mutex::new(std::collections::HashSet::new()),
            payments: Mutex::new(cocoon_market::audit::PaymentAudit::new(
                cocoon_market::audit::Direction::AtLeast,
                PAYMENT_RETAIN,
            )),
            price: Mutex::new(price),
            payouts,
            tls,
            keys,
            enabled: AtomicBool::new(!config.start_disabled),
            served: Mutex::new(Arc::new(Served {
                model: config.model.clone().ok_or_else(|| {
                    WorkerError::Config("model: no name for the served model".into())
                })?,
                engine,
                weights,
            })),
            loader: std::sync::OnceLock::new(),
            changing: tokio::sync::Mutex::new(()),
            model_changes: tokio::sync::watch::Sender::new((
                config.configured_model().to_owned(),
                0,
            )),
            config,
            active: AtomicUsize::new(0),
            shutdown: CancellationToken::new(),
            sessions: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            in_flight: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            committed: Mutex::new(HashMap::new()),
            started: std::time::Instant::now(),
            registry: Mutex::new(None),
            machine_description: std::sync::OnceLock::new(),
        })
    }

    /// The model served now and its engine.
    pub(crate) fn served(&self) -> Arc<Served> {
        lock(&self.served).clone()
    }

    /// Takes a request slot, or `None` when at `max_active_requests`.
    pub(crate) fn try_acquire(self: &Arc<Self>) -> Option<ActiveSlot> {
        let max = self.config.max_active_requests;
        let mut cur = self.active.load(Ordering::Relaxed);
        loop {
            if cur >= max {
                return None;
            }
            match self.active.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(ActiveSlot {
                        state: self.clone(),
                    });
                }
                Err(now) => cur = now,
            }
        }
    }

    pub(crate) async fn broadcast(&self, payload: Bytes) {
        self.broadcast_where(payload, |_| true).await;
    }

    /// [`broadcast`](Self::broadcast) to the sessions of proxies not cut off for underpaying
    /// nor held for their vouchers (an `enable` must not undo what told those that the worker
    /// is disabled for them).
    pub(crate) async fn broadcast_to_served(&self, payload: Bytes) {
        self.broadcast_where(payload, |proxy| self.refusal(proxy).is_none())
            .await;
    }

    async fn broadcast_where(&self, payload: Bytes, to: impl Fn(&str) -> bool) {
        let sessions: Vec<Connection> = lock(&self.sessions)
            .values()
            .filter(|s| to(&s.proxy))
            .map(|s| s.conn.clone())
            .collect();
        for conn in sessions {
            if let Err(e) = conn.send_packet(payload.clone()).await {
                tracing::warn!("could not notify a proxy: {e}");
            }
        }
    }
}

/// Releases a request slot when dropped.
pub(crate) struct ActiveSlot {
    state: Arc<WorkerState>,
}

impl Drop for ActiveSlot {
    fn drop(&mut self) {
        self.state.active.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Steers a running worker: enable, disable, change the coefficient, read its state.
#[derive(Clone)]
pub struct WorkerHandle {
    state: Arc<WorkerState>,
}

/// One proxy session as `/jsonstats` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyView {
    /// Address dialed.
    pub address: String,
    /// Negotiated protocol version.
    pub version: i32,
    /// Kind of the proxy's TEE evidence (`tdx`, `sev-snp`, or `simulated`).
    pub attestation: String,
    /// Image hash its evidence measured.
    pub image_hash: Option<String>,
}

/// A point-in-time view of a worker, as `/jsonstats` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerSnapshot {
    /// The model served now (the configured one, or the last a proxy changed it to).
    pub model: String,
    /// Model changes made since start (`worker.changeModel`).
    pub model_changes: u64,
    /// Whether proxies may send requests.
    pub enabled: bool,
    /// Current coefficient (1000 = 1.0×).
    pub coefficient: i32,
    /// `fixed`, `load`, or `pinned` (a load policy held by `POST /admin/coefficient`).
    pub pricing: String,
    /// The pricing policy's bounds, `[floor, ceiling]`, under a load policy.
    pub price_bounds: Option<(u32, u32)>,
    /// Busy share of the request slots now, `active_requests / max_active_requests`.
    pub utilisation: f64,
    /// The load the pricing policy last measured (smoothed, queue included).
    pub smoothed_load: Option<f64>,
    /// Requests refused because every slot was busy.
    pub busy_refusals: u64,
    /// Requests running now.
    pub active_requests: usize,
    /// Limit on running requests.
    pub max_active_requests: usize,
    /// Kind of this worker's own TEE evidence; `simulated` means it runs in no TEE.
    pub attestation: String,
    /// This worker's image hash (hex), the value the root registry must list for proxies to
    /// accept it.
    pub image_hash: Option<String>,
    /// The weights the RA-TLS certificate presented now names in its attested claims (hex);
    /// equal to `model_hash` except in reference-format claims, which name none.
    pub certificate_model_hash: Option<String>,
    /// The SHA-256 of the served weights (hex), the value receipts carry and the root registry
    /// must list; `None`: unpinned (local mode only).
    pub model_hash: Option<String>,
    /// The root registry this worker follows (`None`: allow-lists from configuration only).
    pub registry: Option<cocoon_chain::RegistryStatus>,
    /// What seals this worker's keys at rest (`simulated`, `sev-snp`, `tdx-helper`), or
    /// `ephemeral` when they are kept in memory only.
    pub key_source: String,
    /// Ed25519 public key of the wallet key, hex.
    pub wallet_public_key: String,
    /// X25519 public key clients seal requests to (also in the RA-TLS claims), hex.
    pub sealing_public_key: String,
    /// Proxies connected now.
    pub proxies: Vec<ProxyView>,
    /// Requests received.
    pub requests: u64,
    /// Sealed (proxy-blind) requests opened by this worker, included in `requests`.
    pub sealed_requests: u64,
    /// Requests answered completely.
    pub succeeded: u64,
    /// Requests that failed after being accepted.
    pub failed: u64,
    /// Requests refused (invalid, over capacity, disabled).
    pub rejected: u64,
    /// Requests cancelled by the proxy.
    pub cancelled: u64,
    /// Prompt tokens served.
    pub prompt_tokens: u64,
    /// Completion tokens served.
    pub completion_tokens: u64,
    /// Tokens the proxies report as paid to this worker.
    pub paid_tokens: i64,
    /// Seconds since start.
    pub uptime_secs: f64,
    /// Payout vouchers and their settlement on chain.
    pub settlement: crate::settle::PayoutStats,
    /// What version-3 proxies paid for each request, held against this worker's own account
    /// (its usage at the coefficient the proxy offered): a discrepancy is a request paid less.
    pub payment_audit: cocoon_market::audit::AuditCounts,
    /// Proxies served no more because they paid a request less than its usage, each with what
    /// the audit found.
    pub underpaying_proxies: std::collections::BTreeMap<String, String>,
    /// Proxies not served until their vouchers sign the totals they showed, each with what was
    /// found.
    pub unsettled_proxies: std::collections::BTreeMap<String, String>,
}

impl WorkerHandle {
    pub(crate) fn new(state: Arc<WorkerState>) -> Self {
        Self { state }
    }

    /// Lets proxies send requests again and tells them so.
    pub async fn enable(&self) {
        self.set_enabled(true).await;
    }

    /// Stops new requests (running ones finish) and tells the proxies.
    pub async fn disable(&self) {
        self.set_enabled(false).await;
    }

    async fn set_enabled(&self, enabled: bool) {
        self.state.enabled.store(enabled, Ordering::Release);
        let msg = worker::EnabledDisabled {
            disabled: i32::from(!enabled),
        };
        self.state
            .broadcast_to_served(Bytes::from(msg.to_boxed_bytes()))
            .await;
    }

    /// Changes the price coefficient and tells the proxies. Under a load policy the price is
    /// then pinned at `coefficient` until [`resume_pricing`](Self::resume_pricing).
    pub async fn set_coefficient(&self, coefficient: i32) -> Result<(), crate::WorkerError> {
        if coefficient <= 0 {
            return Err(crate::WorkerError::Config(
                "coefficient must be positive".into(),
            ));
        }
        let c = cocoon_market::Coefficient::try_from(coefficient)?;
        lock(&self.state.price).pin(c);
        crate::pricing::announce(&self.state, c).await;
        Ok(())
    }

    /// Lets the load policy move the price again after [`set_coefficient`](Self::set_coefficient)
    /// pinned it; answers the coefficient now in force. Under a fixed policy nothing changes.
    pub async fn resume_pricing(&self) -> i32 {
        let changed = lock(&self.state.price).resume(std::time::Instant::now());
        if let Some(c) = changed {
            crate::pricing::announce(&self.state, c).await;
        }
        self.state.coefficient.load(Ordering::Acquire)
    }

    /// The time answered requests spent in this worker beyond the engine's.
    pub fn overhead(&self) -> cocoon_node::histogram::HistogramSnapshot {
        self.state.counters.overhead.snapshot()
    }

    /// The worker's state now.
    pub fn snapshot(&self) -> WorkerSnapshot {
        let s = &self.state;
        let c = &s.counters;
        let mut proxies: Vec<ProxyView> = lock(&s.sessions)
            .values()
            .map(|i| ProxyView {
                address: i.proxy.clone(),
                version: i.version,
                attestation: i.peer.evidence_kind.as_token().to_owned(),
                image_hash: i.peer.image_hash.map(|h| h.to_string()),
            })
            .collect();
        proxies.sort_by(|a, b| a.address.cmp(&b.address));
        let (pricing, price_bounds, smoothed_load) = {
            let p = lock(&s.price);
            let kind = match (p.policy().policy, p.is_automatic()) {
                (cocoon_market::PolicyKind::Fixed, _) => "fixed",
                (_, true) => "load",
                (_, false) => "pinned",
            };
            let bounds = (p.policy().policy == cocoon_market::PolicyKind::Load)
                .then_some((p.policy().floor, p.policy().ceiling));
            (kind.to_owned(), bounds, p.load())
        };
        let active = s.active.load(Ordering::Acquire);
        WorkerSnapshot {
            pricing,
            price_bounds,
            smoothed_load,
            utilisation: active as f64 / s.config.max_active_requests.max(1) as f64,
            busy_refusals: c.busy_refusals.load(Ordering::Relaxed),
            attestation: s.tls.identity().evidence_kind().as_token().to_owned(),
            image_hash: s.tls.identity().image_hash().map(|h| h.to_string()),
            model_hash: s.served().weights.map(|w| w.to_hex()),
            certificate_model_hash: s
                .tls
                .identity()
                .certificate()
                .claims
                .extended
                .and_then(|e| e.model_hash)
                .map(|h| hex::encode(h.as_bytes())),
            registry: lock(&s.registry).as_ref().map(|r| lock(r).clone()),
            model: s.served().model.to_string(),
            key_source: s.keys.source.clone(),
            wallet_public_key: hex::encode(s.keys.wallet.verifying_key().as_bytes()),
            sealing_public_key: s.keys.sealing.public().to_string(),
            enabled: s.enabled.load(Ordering::Acquire),
            coefficient: s.coefficient.load(Ordering::Acquire),
            active_requests: active,
            max_active_requests: s.config.max_active_requests,
            proxies,
            requests: c.requests.load(Ordering::Relaxed),
            sealed_requests: c.sealed_requests.load(Ordering::Relaxed),
            succeeded: c.succeeded.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            cancelled: c.cancelled.load(Ordering::Relaxed),
            prompt_tokens: c.prompt_tokens.load(Ordering::Relaxed),
            completion_tokens: c.completion_tokens.load(Ordering::Relaxed),
            paid_tokens: c.paid_tokens.load(Ordering::Relaxed),
            model_changes: c.model_changes.load(Ordering::Relaxed),
            uptime_secs: s.started.elapsed().as_secs_f64(),
            settlement: s.payouts.stats(),
            payment_audit: lock(&self.state.payments).counts().clone(),
            underpaying_proxies: lock(&self.state.underpaying_proxies).clone(),
            unsettled_proxies: lock(&self.state.unsettled_proxies).clone(),
        }
    }
}

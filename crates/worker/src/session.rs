//! One worker ↔ proxy connection: dial, proof of work, handshake with rollback detection, then
//! serve packets until the connection drops; [`maintain`] redials with exponential backoff.
//! After a model change another proxy asked for, the session drains and redials so that its
//! proxy learns the new model (see `model_change`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cocoon_net::{Connection, ConnectionConfig, Inbound};
use cocoon_protocol::Message;
use cocoon_protocol::messages::{proxy, worker};
use cocoon_protocol::tl::{self, TlConstructor};
use cocoon_protocol::version;

use crate::WorkerError;
use crate::owed::SessionAudit;
use crate::request::Binding;
use crate::state::{SessionInfo, WorkerState, lock};

/// Keeps one connection to `proxy` alive for as long as the worker runs.
/// Keeps one connection to `proxy` until `stop` (a child of the worker's shutdown, cancelled
/// too when the root registry stops listing the proxy).
pub(crate) async fn maintain(
    state: Arc<WorkerState>,
    proxy: String,
    slot: usize,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut delay = state.config.reconnect_min;
    loop {
        if stop.is_cancelled() {
            return;
        }
        let started = Instant::now();
        // The session ends by itself when `stop` fires (it closes its connection and leaves
        // the session table), so that stats never show a proxy that is no longer served.
        let result = run_session(&state, &proxy, &stop).await;
        if stop.is_cancelled() {
            return;
        }
        match result {
            Ok(()) => tracing::info!(%proxy, slot, "proxy session ended"),
            Err(e) => {
                if matches!(e, WorkerError::Rollback { .. }) {
                    tracing::error!(%proxy, slot, "refusing the proxy: {e}");
                    state.payouts.note_rollback(e.to_string());
                } else {
                    tracing::warn!(%proxy, slot, "proxy session failed: {e}");
                }
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            delay = state.config.reconnect_min;
        }
        let jitter =
            Duration::from_millis(rand::random::<u64>() % (delay.as_millis() as u64 / 4 + 1));
        tokio::select! {
            () = tokio::time::sleep(delay + jitter) => {}
            () = stop.cancelled() => return,
        }
        delay = (delay * 2).min(state.config.reconnect_max);
    }
}

async fn run_session(
    state: &Arc<WorkerState>,
    proxy: &str,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<(), WorkerError> {
    let err = |what: &str, e: &dyn std::fmt::Display| WorkerError::Session(format!("{what}: {e}"));
    let dialled = tokio::select! {
        r = cocoon_net::dial(
            proxy,
            state.config.max_pow_difficulty,
            &state.tls,
            ConnectionConfig::dialer(),
        ) => r,
        () = stop.cancelled() => return Ok(()),
    };
    let secured = dialled.map_err(|e| err("connect", &e))?;
    let (conn, mut incoming, peer) = (secured.conn, secured.incoming, secured.peer);

    // Changes made from here on are seen below; the model announced is the one served now.
    let mut changes = state.model_changes.subscribe();
    changes.mark_unchanged();
    let mut announced = state.served().model.to_string();
    let version = tokio::select! {
        v = handshake(state, proxy, &conn, &announced) => v,
        () = stop.cancelled() => {
            conn.close();
            return Ok(());
        }
    };
    let Handshake {
        version,
        proxy_contract,
        worker_contract,
        sent_coefficient,
        committed,
        voucher,
    } = match version {
        Ok(v) => v,
        Err(e) => {
            conn.close();
            return Err(e);
        }
    };
    let audit =
        match payment_prices(state, proxy, version, (&proxy_contract, &worker_contract)).await {
            Ok(prices) => Arc::new(SessionAudit::new(
                state,
                proxy,
                &conn,
                prices,
                (committed, voucher),
                Instant::now(),
            )),
            Err(e) => {
                conn.close();
                return Err(e);
            }
        };
    tracing::info!(
        %proxy,
        version,
        attestation = %peer.evidence_kind,
        image_hash = ?peer.image_hash,
        "connected to proxy"
    );
    crate::sealed::announce(state, &conn, version).await;
    tokio::spawn(crate::sealed::announce_renewals(
        state.clone(),
        conn.clone(),
        version,
    ));
    let id = state.next_session.fetch_add(1, Ordering::Relaxed);
    lock(&state.sessions).insert(
        id,
        SessionInfo {
            proxy: proxy.to_owned(),
            conn: conn.clone(),
            version,
            peer,
        },
    );
    // A change made since `worker.params` left went to the sessions registered then, not to
    // this one: tell its proxy now, or it would offer a price the worker no longer takes.
    let coefficient = state.coefficient.load(Ordering::Acquire);
    if coefficient != sent_coefficient {
        let msg = worker::NewCoefficient {
            new_coefficient: coefficient,
        };
        let _ = conn.send_packet(Bytes::from(msg.to_boxed_bytes())).await;
    }

    let poller = tokio::spawn(poll_payment_status(
        state.clone(),
        proxy.to_owned(),
        conn.clone(),
        audit.clone(),
    ));
    // Requests of this session still running, and whether it waits for them to end before
    // redialling (after a model change its proxy did not ask for).
    let load = Arc::new(AtomicUsize::new(0));
    let mut draining = false;
    let mut drain_tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        let item = tokio::select! {
            item = incoming.recv() => item,
            () = stop.cancelled() => {
                conn.close();
                break;
            }
            Ok(()) = changes.changed(), if !draining => {
                let (model, asking) = changes.borrow_and_update().clone();
                if asking == id {
                    announced = model;
                } else if model != announced {
                    // This proxy lists us under the old model: no new requests from it, and
                    // a new handshake once the running ones have ended.
                    tracing::info!(%proxy, %model, "model changed; draining this session");
                    draining = true;
                    let off = worker::EnabledDisabled { disabled: 1 };
                    let _ = conn.send_packet(Bytes::from(off.to_boxed_bytes())).await;
                }
                continue;
            }
            _ = drain_tick.tick(), if draining => {
                if load.load(Ordering::Acquire) == 0 {
                    conn.close();
                    break;
                }
                continue;
            }
        };
        let Some(item) = item else { break };
        match item {
            Inbound::Packet(data) => {
                handle_packet(state, proxy, &conn, version, &audit, data, &load);
            }
            Inbound::Query(q) => match tl::from_bytes::<Message>(q.data.clone()) {
                Ok(Message::WorkerChangeModel(c)) => {
                    let state = state.clone();
                    tokio::spawn(async move {
                        let answered =
                            match crate::model_change::change(&state, &c.new_model, id).await {
                                Ok(()) => {
                                    q.answer(Bytes::from(worker::ChangedModel {}.to_boxed_bytes()))
                                        .await
                                }
                                Err(e) => {
                                    tracing::warn!("{e}");
                                    q.fail(e.code, &e.reason).await
                                }
                            };
                        if let Err(e) = answered {
                            tracing::debug!("model change answer not sent: {e}");
                        }
                    });
                }
                _ => {
                    let _ = q.fail(400, "unexpected query").await;
                }
            },
        }
    }
    poller.abort();
    lock(&state.sessions).remove(&id);
    if stop.is_cancelled() {
        return Ok(());
    }
    if draining {
        return Err(WorkerError::Session(format!(
            "redialling to announce the model {}",
            state.served().model
        )));
    }
    let reason = conn.close_reason().unwrap_or_else(|| "closed".into());
    if reason.starts_with("rollback") {
        return Err(WorkerError::Session(reason));
    }
    Err(WorkerError::Session(format!("connection lost: {reason}")))
}

async fn handshake(
    state: &Arc<WorkerState>,
    proxy: &str,
    conn: &Connection,
    model: &str,
) -> Result<Handshake, WorkerError> {
    let err = |what: &str, e: &dyn std::fmt::Display| WorkerError::Session(format!("{what}: {e}"));
    let sent_coefficient = state.coefficient.load(Ordering::Acquire);
    let params = worker::Params {
        flags: 0b11,
        worker_owner_address: state.config.owner_address.clone(),
        model: model.to_owned(),
        coefficient: sent_coefficient,
        is_test: Some(state.config.is_test),
        proxy_cnt: Some(i32::try_from(state.config.proxies.len()).unwrap_or(i32::MAX)),
        max_active_requests: Some(
            i32::try_from(state.config.max_active_requests).unwrap_or(i32::MAX),
        ),
        min_proto_version: Some(if state.config.require_audited_proxies {
            version::SEALED_VERSION
        } else {
            version::MIN_VERSION
        }),
        max_proto_version: Some(version::MAX_VERSION),
        machine_description_json: state.machine_description.get().cloned(),
    };
    let answer = conn
        .query(Bytes::from(
            worker::ConnectToProxy { params }.to_boxed_bytes(),
        ))
        .await
        .map_err(|e| err("worker.connectToProxy", &e))?;
    let connected = worker::ConnectedToProxy::from_boxed_bytes(answer)
        .map_err(|e| err("worker.connectedToProxy", &e))?;
    let version = connected.params.proto_version.unwrap_or(0);
    if state.config.require_audited_proxies && version < version::SEALED_VERSION {
        return Err(WorkerError::Session(format!(
            "the proxy speaks protocol version {version}, whose payments this worker cannot \
             audit (require_audited_proxies)"
        )));
    }
    state
        .payouts
        .connected(proxy, &connected.params, &connected.worker_sc_address);

    let known = lock(&state.committed).get(proxy).copied().unwrap_or(0);
    let query = worker::CompareBalanceWithProxy {
        tokens_committed_to_blockchain: 0,
        tokens_committed_to_db: known,
        max_tokens: known,
    };
    let answer = conn
        .query(Bytes::from(query.to_boxed_bytes()))
        .await
        .map_err(|e| err("worker.compareBalanceWithProxy", &e))?;
    let result = worker::CompareBalanceWithProxyResult::from_boxed_bytes(answer)
        .map_err(|e| err("worker.compareBalanceWithProxyResult", &e))?;
    if result.error_code != 0 {
        return Err(WorkerError::Session(format!(
            "proxy refused our balance: error {}",
            result.error_code
        )));
    }
    note_committed(state, proxy, result.tokens_committed_to_db)?;
    let voucher = crate::settle::offer(state, proxy, &result.signed_payment);

    let complete = worker::ProxyHandshakeComplete {
        is_disabled: !state.enabled.load(Ordering::Acquire) || state.refusal(proxy).is_some(),
    };
    let answer = conn
        .query(Bytes::from(complete.to_boxed_bytes()))
        .await
        .map_err(|e| err("worker.proxyHandshakeComplete", &e))?;
    worker::ProxyHandshakeCompleted::from_boxed_bytes(answer)
        .map_err(|e| err("worker.proxyHandshakeCompleted", &e))?;
    Ok(Handshake {
        version,
        proxy_contract: connected.params.proxy_sc_address,
        worker_contract: connected.worker_sc_address,
        sent_coefficient,
        committed: result.tokens_committed_to_db,
        voucher,
    })
}

/// What a session's handshake settled.
struct Handshake {
    version: i32,
    /// The proxy contract the proxy named.
    proxy_contract: String,
    /// The worker contract the proxy named for this worker.
    worker_contract: String,
    /// The coefficient this worker announced.
    sent_coefficient: i32,
    /// The proxy's committed total for this worker when the session started.
    committed: i64,
    /// The count of the payout voucher kept then, if any.
    voucher: Option<u64>,
}

/// The longest a session's start waits for the proxy contract's prices.
const CONTRACT_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The prices this worker holds a session's payments to: with a chain, those of the proxy
/// contract; without one, the local parameters; when the chain cannot answer (said in the log),
/// the local parameters too, and the proxy is then never cut off on that audit. `None`: not
/// audited (a proxy before version 3, whose rounding is its own).
///
/// # Errors
/// [`WorkerError::Session`] when the chain answers that no proxy contract lives at the address
/// the proxy names (a proxy must not escape the audit, or its cut-off, by naming one), or when
/// the worker contract it names is not this worker's at that proxy contract (its vouchers would
/// pay nothing), or when it names no proxy contract to a worker that settles on chain.
async fn payment_prices(
    state: &WorkerState,
    proxy: &str,
    version: i32,
    (proxy_contract, worker_contract): (&str, &str),
) -> Result<Option<cocoon_market::PricingParams>, WorkerError> {
    if version < version::SEALED_VERSION {
        return Ok(None);
    }
    let (chain, api_key) = state.config.registry_chain();
    let local = cocoon_market::PricingParams::default();
    let names_contract = cocoon_chain::parse_address(proxy_contract).is_ok();
    if !names_contract && state.config.settlement.chain.is_some() {
        return Err(WorkerError::Session(format!(
            "the proxy names no proxy contract ({proxy_contract:?}) while this worker settles on \
             chain ([settlement] chain): nothing it served would be paid"
        )));
    }
    // A proxy that names no contract address settles on no chain: the local prices.
    let Some(chain) = chain.filter(|_| names_contract) else {
        state.note_contract_unread(proxy, false);
        return Ok(Some(local));
    };
    let read = cocoon_chain::worker_terms(
        chain,
        api_key,
        proxy_contract,
        &state.config.owner_address,
        CONTRACT_READ_TIMEOUT,
    )
    .await;
    state.note_contract_unread(proxy, read.is_err());
    match read {
        Ok((prices, ours)) => {
            let named = cocoon_chain::parse_address(worker_contract).ok();
            if let Some(ours) = ours
                && named != Some(ours)
            {
                return Err(WorkerError::Session(format!(
                    "the proxy names {worker_contract:?} as this worker's contract, but its \
                     contract's is {}: vouchers for another would pay this worker nothing",
                    ours.to_raw()
                )));
            }
            Ok(Some(prices))
        }
        Err(e @ cocoon_chain::ChainError::UnexpectedState { .. }) => Err(WorkerError::Session(
            format!("the proxy names a contract that is not a proxy contract: {e}"),
        )),
        Err(e) => {
            // A chain that does not answer must neither switch the audit off nor cut off an
            // honest proxy on prices that may not be its own.
            tracing::warn!(
                %proxy,
                "the proxy contract's prices cannot be read ({e}): this session's payments are \
                 held to the local prices, and reported only"
            );
            Ok(Some(local))
        }
    }
}

/// Records a committed total reported by `proxy`, refusing one smaller than already seen.
fn note_committed(state: &WorkerState, proxy: &str, reported: i64) -> Result<(), WorkerError> {
    let mut committed = lock(&state.committed);
    let known = committed.entry(proxy.to_owned()).or_insert(0);
    if reported < *known {
        return Err(WorkerError::Rollback {
            proxy: proxy.to_owned(),
            reported,
            known: *known,
        });
    }
    *known = reported;
    Ok(())
}

async fn poll_payment_status(
    state: Arc<WorkerState>,
    proxy: String,
    conn: Connection,
    audit: Arc<SessionAudit>,
) {
    let mut tick = tokio::time::interval(state.config.payment_status_interval);
    tick.tick().await;
    loop {
        tick.tick().await;
        let answer = match conn
            .query(Bytes::from(worker::UpdatePaymentStatus {}.to_boxed_bytes()))
            .await
        {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(%proxy, "payment status query failed: {e}");
                // A proxy that stops answering must not stop the clock on what it owes.
                audit.judge(&state, Instant::now());
                continue;
            }
        };
        match worker::PaymentStatus::from_boxed_bytes(answer) {
            Ok(status) => {
                if let Err(e) = note_committed(&state, &proxy, status.db_tokens) {
                    tracing::error!(%proxy, "{e}; dropping the proxy");
                    state.payouts.note_rollback(e.to_string());
                    conn.close();
                    return;
                }
                let voucher = crate::settle::offer(&state, &proxy, &status.signed_payment);
                audit.shown(&state, status.db_tokens, None, voucher, Instant::now());
            }
            Err(e) => tracing::warn!(%proxy, "bad payment status: {e}"),
        }
    }
}

/// Counts a session's running requests: one [`LoadGuard`] per spawned request.
struct LoadGuard(Arc<AtomicUsize>);

impl LoadGuard {
    fn enter(load: &Arc<AtomicUsize>) -> Self {
        load.fetch_add(1, Ordering::AcqRel);
        Self(load.clone())
    }
}

impl Drop for LoadGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs a request of this session, counted in its load until it ends.
fn spawn_counted(
    load: &Arc<AtomicUsize>,
    request: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let guard = LoadGuard::enter(load);
    tokio::spawn(async move {
        request.await;
        drop(guard);
    });
}

fn handle_packet(
    state: &Arc<WorkerState>,
    proxy: &str,
    conn: &Connection,
    version: i32,
    audit: &SessionAudit,
    data: Bytes,
    load: &Arc<AtomicUsize>,
) {
    let prices = audit.prices;
    let message: Message = match tl::from_bytes(data) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!("undecodable packet from proxy: {e}");
            return;
        }
    };
    match message {
        Message::ProxyRunQueryEx(q) => {
            // The reference proxy's request: no token limit, no receipt binding.
            let binding = Binding {
                payment_prices: prices,
                proxy: Some(Arc::from(proxy)),
                body_bytes: Some(crate::request::body_bytes(&q.query)),
                ..Binding::default()
            };
            spawn_counted(
                load,
                crate::request::serve(state.clone(), conn.clone(), version, q, binding, None),
            );
        }
        Message::ExtWorkerRunQuery(q) => {
            let binding = Binding {
                token_limit: Some(q.token_limit),
                client_request_id: Some(q.client_request_id),
                envelope_sha256: None,
                audio: q.flags & cocoon_protocol::messages::AUDIO_UNITS_FLAG != 0,
                payment_prices: prices,
                proxy: Some(Arc::from(proxy)),
                body_bytes: Some(crate::request::body_bytes(&q.query)),
            };
            let q = proxy::RunQueryEx {
                query: q.query,
                signed_payment: proxy::AnySignedPayment::default(),
                coefficient: q.coefficient,
                timeout: q.timeout,
                request_id: q.request_id,
                flags: 0,
                enable_debug: q.enable_debug,
                private_key: None,
            };
            spawn_counted(
                load,
                crate::request::serve(state.clone(), conn.clone(), version, q, binding, None),
            );
        }
        Message::ProxyRunQuery(q) => {
            let q = proxy::RunQueryEx {
                query: q.query,
                signed_payment: q.signed_payment,
                coefficient: q.coefficient,
                timeout: q.timeout,
                request_id: q.request_id,
                flags: 0,
                enable_debug: None,
                private_key: None,
            };
            let binding = Binding {
                payment_prices: prices,
                proxy: Some(Arc::from(proxy)),
                body_bytes: Some(crate::request::body_bytes(&q.query)),
                ..Binding::default()
            };
            spawn_counted(
                load,
                crate::request::serve(state.clone(), conn.clone(), version, q, binding, None),
            );
        }
        Message::ExtWorkerRunSealedQuery(q) => {
            spawn_counted(
                load,
                crate::sealed::serve(
                    state.clone(),
                    conn.clone(),
                    version,
                    (prices, Arc::from(proxy)),
                    q,
                ),
            );
        }
        Message::ProxyWorkerRequestPayment(p) => {
            state
                .counters
                .paid_tokens
                .fetch_max(p.db_tokens, Ordering::Relaxed);
            if prices.is_some() {
                let verdict = lock(&state.payments).booked(
                    cocoon_market::RequestId(p.request_id.0),
                    p.request_tokens,
                    Instant::now(),
                );
                if let Err(found) = verdict {
                    state.note_underpaid(Some(proxy), conn, &found);
                }
            }
            let voucher = crate::settle::offer(state, proxy, &p.signed_payment);
            audit.shown(
                state,
                p.db_tokens,
                Some(p.request_tokens),
                voucher,
                Instant::now(),
            );
        }
        Message::ExtCancelQuery(c) => {
            if let Some(token) = lock(&state.in_flight).get(&c.request_id) {
                token.cancel();
            }
        }
        other => tracing::warn!("unexpected packet from proxy: {}", other.constructor_name()),
    }
}

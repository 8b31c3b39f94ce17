//! The proxy's worker port: proof of work, the worker handshake, then the worker's answers and
//! state changes, dispatched to the requests they belong to.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use cocoon_attest::VerifiedPeer;
use cocoon_market::pricing::Coefficient;
use cocoon_market::selection::WorkerInfo;
use cocoon_market::{WorkerAccountId, WorkerId};
use cocoon_net::{Connection, Inbound, InboundQuery};
use cocoon_protocol::Message;
use cocoon_protocol::messages::{proxy, worker};
use cocoon_protocol::tl::{self, TlConstructor};
use cocoon_protocol::version;
use tokio::net::{TcpListener, TcpStream};

use crate::refusal::SessionEnd;
use crate::state::{ProxyState, WorkerEvent, WorkerLink, lock};

pub(crate) async fn accept_loop(state: Arc<ProxyState>, listener: TcpListener) {
    let admission = state.worker_admission.clone();
    crate::state::accept_forever(listener, "worker", admission, move |tcp| {
        serve_worker(state.clone(), tcp)
    })
    .await;
}

pub(crate) fn proxy_params(state: &ProxyState, version: i32) -> proxy::Params {
    proxy::Params {
        flags: 0b11,
        proxy_public_key: state.public_key,
        proxy_owner_address: state.config.owner_address.clone(),
        proxy_sc_address: state.config.contract_address.clone(),
        is_test: Some(state.config.is_test),
        proto_version: Some(version),
    }
}

async fn serve_worker(state: Arc<ProxyState>, tcp: TcpStream) -> Result<(), SessionEnd> {
    let secured = cocoon_net::accept_gated(
        tcp,
        state.config.worker_pow_difficulty,
        &state.worker_tls,
        state.config.worker_port.acceptor(),
    )
    .await?;
    let (conn, mut incoming, peer) = (secured.conn, secured.incoming, secured.peer);

    // Handshake: connectToProxy, compareBalanceWithProxy, proxyHandshakeComplete.
    let mut params: Option<(worker::Params, i32)> = None;
    let mut registered: Option<WorkerId> = None;
    // A worker that has not completed its handshake in time is dropped: until then it holds a
    // connection and serves nothing.
    let handshake_within = state.config.worker_port.authorize_timeout;
    let handshake_by = tokio::time::Instant::now() + handshake_within;
    let result = loop {
        let item = tokio::select! {
            item = incoming.recv() => item,
            () = state.shutdown.cancelled() => break Err(SessionEnd::Stopping),
            () = tokio::time::sleep_until(handshake_by), if registered.is_none() => {
                break Err(SessionEnd::Timeout {
                    what: "worker handshake",
                    within: handshake_within,
                });
            }
        };
        let Some(item) = item else {
            break Err(SessionEnd::Closed(conn.close_reason()));
        };
        match item {
            Inbound::Query(q) => {
                if let Err(e) =
                    handle_query(&state, &conn, &peer, q, &mut params, &mut registered).await
                {
                    break Err(e);
                }
            }
            Inbound::Packet(data) => match registered {
                Some(id) => handle_packet(&state, id, data).await,
                None => {
                    break Err(SessionEnd::Protocol(
                        "packet before the handshake completed".into(),
                    ));
                }
            },
        }
    };
    if let Some(id) = registered {
        unregister(&state, id);
    }
    conn.close();
    result
}

async fn handle_query(
    state: &Arc<ProxyState>,
    conn: &Connection,
    peer: &VerifiedPeer,
    q: InboundQuery,
    params: &mut Option<(worker::Params, i32)>,
    registered: &mut Option<WorkerId>,
) -> Result<(), SessionEnd> {
    let message: Message = match tl::from_bytes(q.data.clone()) {
        Ok(m) => m,
        Err(e) => {
            let _ = q.fail(400, &format!("undecodable query: {e}")).await;
            return Err(SessionEnd::Protocol(format!("undecodable query: {e}")));
        }
    };
    let answer: Vec<u8> = match message {
        Message::WorkerConnectToProxy(c) => {
            let mut p = c.params;
            // The worker's account, contract and vouchers are the owner's whatever spelling
            // of its address the worker sent.
            match crate::auth::canonical_owner(&p.worker_owner_address, state.settle.is_some()) {
                Ok(owner) => p.worker_owner_address = owner.id,
                Err(e) => {
                    let _ = q.fail(400, &e.to_string()).await;
                    return Err(SessionEnd::Protocol(e.to_string()));
                }
            }
            let (min, max) = (
                p.min_proto_version.unwrap_or(0),
                p.max_proto_version.unwrap_or(0),
            );
            let v = match version::negotiate(
                version::MIN_VERSION,
                state.config.max_protocol_version,
                min,
                max,
            ) {
                Ok(v) => v,
                Err(e) => {
                    let _ = q.fail(400, &e.to_string()).await;
                    return Err(SessionEnd::Protocol(e.to_string()));
                }
            };
            if p.coefficient <= 0 {
                let _ = q.fail(400, "invalid worker params").await;
                return Err(SessionEnd::Protocol("invalid worker params".into()));
            }
            if let Err(e) = cocoon_protocol::ModelName::parse(&p.model) {
                let refusal = format!("invalid worker params: {e}");
                let _ = q.fail(400, &refusal).await;
                return Err(SessionEnd::Protocol(refusal));
            }
            if let Some(Err(refusal)) = state
                .registry
                .as_ref()
                .map(|r| r.check_model(peer, &p.model))
            {
                let _ = q.fail(403, &refusal.to_string()).await;
                return Err(refusal.into());
            }
            let reply = worker::ConnectedToProxy {
                params: proxy_params(state, v),
                worker_sc_address: crate::settle::worker_contract_text(
                    state,
                    &p.worker_owner_address,
                ),
            };
            *params = Some((p, v));
            reply.to_boxed_bytes()
        }
        Message::WorkerCompareBalanceWithProxy(_) => {
            let Some((p, _)) = params.as_ref() else {
                let _ = q.fail(400, "connectToProxy first").await;
                return Err(SessionEnd::Protocol(
                    "compareBalance before connectToProxy".into(),
                ));
            };
            let earned = match worker_tokens(state, &p.worker_owner_address).await {
                Ok(v) => v,
                Err(e) => {
                    let _ = q.fail(503, "the proxy's ledger is unavailable").await;
                    return Err(e.into());
                }
            };
            worker::CompareBalanceWithProxyResult {
                signed_payment: crate::settle::worker_voucher(state, &p.worker_owner_address).await,
                tokens_committed_to_db: earned,
                max_tokens: earned,
                error_code: 0,
            }
            .to_boxed_bytes()
        }
        Message::WorkerProxyHandshakeComplete(c) => {
            let Some((p, v)) = params.as_ref() else {
                let _ = q.fail(400, "connectToProxy first").await;
                return Err(SessionEnd::Protocol(
                    "handshake complete before connectToProxy".into(),
                ));
            };
            if registered.is_none() {
                *registered = Some(register(state, conn, peer, p, *v, !c.is_disabled)?);
            }
            worker::ProxyHandshakeCompleted {}.to_boxed_bytes()
        }
        Message::WorkerUpdatePaymentStatus(_) => {
            let owner = params
                .as_ref()
                .map(|(p, _)| p.worker_owner_address.clone())
                .unwrap_or_default();
            let earned = match worker_tokens(state, &owner).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::error!(%owner, "cannot read the worker's account: {e}");
                    let _ = q.fail(503, "the proxy's ledger is unavailable").await;
                    return Ok(());
                }
            };
            worker::PaymentStatus {
                signed_payment: crate::settle::worker_voucher(state, &owner).await,
                db_tokens: earned,
                max_tokens: earned,
            }
            .to_boxed_bytes()
        }
        Message::WorkerExtendedCompareBalanceWithProxy(_) => {
            worker::ExtendedCompareBalanceWithProxyResult { error_code: 0 }.to_boxed_bytes()
        }
        other => {
            let _ = q
                .fail(
                    400,
                    &format!("unexpected query {}", other.constructor_name()),
                )
                .await;
            return Ok(());
        }
    };
    Ok(q.answer(Bytes::from(answer)).await?)
}

/// Cumulative adjusted tokens earned by a worker owner (its next payout voucher's value), from
/// the ledger.
pub(crate) async fn worker_tokens(
    state: &ProxyState,
    owner: &str,
) -> Result<i64, cocoon_ledger_store::StoreError> {
    let earned = state
        .ledger
        .worker(&WorkerAccountId(owner.to_owned()))
        .await?
        .map_or(0, |w| w.tokens_earned);
    Ok(i64::try_from(earned).unwrap_or(i64::MAX))
}

fn register(
    state: &Arc<ProxyState>,
    conn: &Connection,
    peer: &VerifiedPeer,
    p: &worker::Params,
    version: i32,
    enabled: bool,
) -> Result<WorkerId, SessionEnd> {
    let id = WorkerId(state.next_worker.fetch_add(1, Ordering::Relaxed));
    let coefficient = u32::try_from(p.coefficient)
        .ok()
        .and_then(|c| Coefficient::new(c).ok())
        .ok_or_else(|| SessionEnd::Protocol(format!("invalid coefficient {}", p.coefficient)))?;
    let info = WorkerInfo {
        model: p.model.clone(),
        coefficient,
        max_active_requests: u32::try_from(p.max_active_requests.unwrap_or(1).max(1)).unwrap_or(1),
        proxy_count: u32::try_from(p.proxy_cnt.unwrap_or(1).max(1)).unwrap_or(1),
        enabled,
    };
    let machine =
        p.machine_description_json
            .as_deref()
            .and_then(|raw| match crate::machine::accept(raw) {
                Ok(m) => Some(m),
                Err(e) => {
                    state
                        .counters
                        .machine_descriptions_dropped
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(worker = id.0, "{e}; dropped");
                    None
                }
            });
    lock(&state.selector).upsert_worker(id, info);
    lock(&state.workers).insert(
        id,
        WorkerLink {
            conn: conn.clone(),
            owner: p.worker_owner_address.clone(),
            model: p.model.clone(),
            version,
            peer: peer.clone(),
            routes: Default::default(),
            machine,
        },
    );
    tracing::info!(
        worker = id.0,
        model = %p.model,
        version,
        attestation = %peer.evidence_kind,
        image_hash = ?peer.image_hash,
        "worker registered"
    );
    Ok(id)
}

fn unregister(state: &ProxyState, id: WorkerId) {
    state.sealing.forget(id);
    lock(&state.selector).remove_worker(id);
    let link = lock(&state.workers).remove(&id);
    if let Some(link) = link {
        for (_, tx) in link.routes {
            tx.push(WorkerEvent::Lost);
        }
    }
    tracing::info!(worker = id.0, "worker gone");
}

/// Checks a worker's receipt before it is relayed and bounds a charge: its certificate and
/// evidence satisfied the workers' policy when it was signed, and its key signed it. A receipt
/// that does not is dropped, so that what the client and the proxy hold a charge to is the
/// same. Its age is not judged (a skewed clock must not cost an honest worker its pay; the
/// client's fresh request id, which the request's driver checks it names, stops replays).
fn verify_receipt(state: &ProxyState, encoded: &[u8]) -> Result<(), cocoon_attest::AttestError> {
    let receipt = cocoon_attest::Receipt::from_bytes(encoded)?;
    receipt.verify(
        &state.worker_tls.policy(),
        state.worker_tls.evidence_verifier(),
    )?;
    Ok(())
}

async fn handle_packet(state: &ProxyState, id: WorkerId, data: Bytes) {
    let message: Message = match tl::from_bytes(data) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(worker = id.0, "undecodable packet: {e}");
            return;
        }
    };
    let (request_id, event) = match message {
        Message::ProxyQueryAnswerEx(a) => (
            a.request_id,
            WorkerEvent::Answer {
                answer: a.answer,
                final_info: a.final_info,
            },
        ),
        Message::ProxyQueryAnswerPartEx(a) => (
            a.request_id,
            WorkerEvent::Part {
                answer: a.answer,
                final_info: a.final_info,
            },
        ),
        Message::ProxyQueryAnswerErrorEx(a) => (
            a.request_id,
            WorkerEvent::Error {
                code: a.error_code,
                message: a.error,
                final_info: a.final_info,
            },
        ),
        Message::ExtQueryReceipt(r) => {
            if let Err(e) = verify_receipt(state, &r.receipt) {
                tracing::warn!(
                    worker = id.0,
                    "dropping a receipt that does not verify: {e}"
                );
                return;
            }
            (r.request_id, WorkerEvent::Receipt(r.receipt))
        }
        Message::ExtWorkerAttestation(a) => {
            state.sealing.on_announcement(state, id, a.certificate);
            return;
        }
        Message::WorkerEnabledDisabled(e) => {
            lock(&state.selector).set_enabled(id, e.disabled == 0);
            return;
        }
        Message::WorkerNewCoefficient(c) => {
            match u32::try_from(c.new_coefficient)
                .ok()
                .and_then(|v| Coefficient::new(v).ok())
            {
                Some(coef) => {
                    lock(&state.selector).set_coefficient(id, coef);
                }
                None => tracing::warn!(worker = id.0, "invalid coefficient {}", c.new_coefficient),
            }
            return;
        }
        other => {
            tracing::warn!(
                worker = id.0,
                "unexpected packet {}",
                other.constructor_name()
            );
            return;
        }
    };
    let tx = lock(&state.workers)
        .get(&id)
        .and_then(|w| w.routes.get(&request_id).cloned());
    match tx {
        // Never waits: a request whose client reads slowly overflows its own byte budget
        // and is cut, while this worker's other requests keep flowing.
        Some(tx) => tx.push(event),
        None => tracing::debug!(worker = id.0, "answer for an unknown or finished request"),
    }
}

//! One client request's life at the proxy: reserve balance, pick a worker, forward, move to
//! another worker if one fails before its first byte, relay the answer part by part, then
//! price the metered tokens, charge the client, credit the worker and tell both.
//!
//! The charge is committed to the ledger store before the part carrying the usage is relayed;
//! when it cannot be committed that part is withheld and the client gets an error instead, so a
//! client never sees a usage the books do not hold.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cocoon_market::MarketError;
use cocoon_market::pricing::{Coefficient, TokenCounts};
use cocoon_market::reservation::Reservation;
use cocoon_market::selection::{Dispatch, Outcome, Unavailability};
use cocoon_market::{ClientId, RequestId, WorkerAccountId, WorkerId};
use cocoon_net::Connection;
use cocoon_protocol::messages::{TokensUsed, client, ext, proxy};
use cocoon_protocol::tl::{Int256, TlConstructor};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::state::{ProxyState, WorkerEvent, lock};

/// Default `timeout` when a client sends none (the reference's 120 s).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Default `max_coefficient` (4.0×).
const DEFAULT_MAX_COEFFICIENT: u32 = 4000;
/// Events buffered per request between a worker's connection and the client's.
const ROUTE_QUEUE: usize = 256;

/// Domain separation of [`ledger_request_id`].
const LEDGER_REQUEST_DOMAIN: &[u8] = b"cocoon-proxy/ledger-request/v1";

/// The id the ledger books a client's request under: SHA-256 over a domain tag, the client's
/// account and the client's own request id.
///
/// A client draws its request ids itself and another client may draw (or copy) the same one, so
/// the raw id cannot key the books; scoped to the account it is stable for the whole life of the
/// request (every attempt on every worker, every retried charge) and distinct between clients.
pub(crate) fn ledger_request_id(client: &ClientId, request_id: Int256) -> RequestId {
    let mut h = Sha256::new();
    h.update(LEDGER_REQUEST_DOMAIN);
    h.update((client.0.len() as u64).to_be_bytes());
    h.update(client.0.as_bytes());
    h.update(request_id.0);
    let mut id = [0u8; 32];
    id.copy_from_slice(&h.finalize());
    RequestId(id)
}

/// Sends a final error for a request that never reached a worker.
pub(crate) async fn refuse(conn: &Connection, request_id: Int256, code: i32, message: &str) {
    let msg = client::QueryAnswerErrorEx {
        request_id,
        error_code: code,
        error: message.to_owned(),
        flags: 0,
        final_info: Some(client::QueryFinalInfo::default()),
    };
    let _ = conn.send_packet(Bytes::from(msg.to_boxed_bytes())).await;
}

struct Attempt {
    worker: WorkerId,
    dispatch: Dispatch,
    owner: String,
    coefficient: Coefficient,
    worker_conn: Connection,
    worker_version: i32,
    worker_request_id: Int256,
    events: mpsc::Receiver<WorkerEvent>,
}

enum Ending {
    /// The worker finished and reported usage.
    Finished(Option<proxy::QueryFinalInfo>),
    /// The worker failed after its first byte; usage as far as it reported.
    FailedMidway {
        code: i32,
        message: String,
        final_info: Option<proxy::QueryFinalInfo>,
    },
    /// The client went away or cancelled.
    Cancelled,
    /// The request ran out of time.
    TimedOut,
}

pub(crate) async fn run(
    state: Arc<ProxyState>,
    conn: Connection,
    client: ClientId,
    version: i32,
    q: client::RunQueryEx,
    sealed: Option<crate::sealed::SealedRoute>,
    cancel: CancellationToken,
) {
    let c = &state.counters;
    c.requests.fetch_add(1, Ordering::Relaxed);
    let proxy_start = cocoon_net::unix_time();
    let started = Instant::now();
    let timeout = if q.timeout.is_finite() && q.timeout > 0.0 {
        Duration::try_from_secs_f64(q.timeout).unwrap_or(DEFAULT_TIMEOUT)
    } else {
        DEFAULT_TIMEOUT
    }
    .min(state.config.max_request_timeout);
    let deadline = started + timeout;
    let request_id = q.request_id;
    let debug = q.enable_debug.unwrap_or(false);

    let max_coefficient = match u32::try_from(q.max_coefficient).ok().filter(|v| *v > 0) {
        Some(v) => Coefficient::new(v),
        None => Coefficient::new(DEFAULT_MAX_COEFFICIENT),
    };
    let Ok(max_coefficient) = max_coefficient else {
        refuse(&conn, request_id, 400, "invalid max_coefficient").await;
        return;
    };
    let max_tokens = u64::try_from(q.max_tokens).unwrap_or(0);
    let ledger_id = ledger_request_id(&client, request_id);
    let reservation = state
        .writes
        .reserve_for_request(
            &client,
            ledger_id,
            max_coefficient,
            max_tokens,
            q.query.len() as u64,
        )
        .await;
    let reservation = match reservation {
        Ok(r) => r,
        Err(e) => {
            let (code, message) = match e {
                MarketError::InsufficientBalance {
                    needed_tokens,
                    available_tokens,
                } => {
                    c.no_balance.fetch_add(1, Ordering::Relaxed);
                    (
                        402,
                        format!(
                            "insufficient balance: request may cost {needed_tokens} tokens, \
                             {available_tokens} available"
                        ),
                    )
                }
                MarketError::UnknownClient(_) => {
                    c.no_balance.fetch_add(1, Ordering::Relaxed);
                    (
                        402,
                        "no account at this proxy: fund the client contract".into(),
                    )
                }
                MarketError::ClientClosed(_) => (
                    403,
                    "the refund of this client was granted: its channel is closed".into(),
                ),
                MarketError::DuplicateReservation(_) | MarketError::RequestAlreadyCharged(_) => {
                    (409, "request id already used".into())
                }
                MarketError::Storage { .. } | MarketError::CorruptStore(_) => {
                    tracing::error!(request = %request_id, "cannot reserve: {e}");
                    (503, "the proxy's ledger is unavailable".into())
                }
                other => (400, other.to_string()),
            };
            refuse(&conn, request_id, code, &message).await;
            return;
        }
    };

    let base_model = q
        .model_name
        .split('@')
        .next()
        .unwrap_or(&q.model_name)
        .to_owned();
    let mut tried: Vec<WorkerId> = Vec::new();
    let mut last_error: Option<(i32, String)> = None;
    let mut unavailable: Option<Unavailability> = None;
    // The worker's signed receipt (version 3 workers send it before their final part).
    let mut receipt: Option<Bytes> = None;
    let (attempt, first) = loop {
        if tried.len() >= state.config.max_attempts {
            break (None, None);
        }
        let mut attempt = match start_attempt(
            &state,
            &base_model,
            max_coefficient,
            &tried,
            &q,
            sealed.as_ref(),
            deadline,
        )
        .await
        {
            Ok(a) => a,
            Err(reason) => {
                unavailable = Some(reason);
                break (None, None);
            }
        };
        tried.push(attempt.worker);
        let first = tokio::select! {
            e = next_event(&mut attempt.events, &mut receipt) => e,
            () = tokio::time::sleep_until(deadline.into()) => {
                c.timed_out.fetch_add(1, Ordering::Relaxed);
                cancel_on_worker(&attempt).await;
                finish_attempt(&state, &attempt, Outcome::Failure);
                release(&state, &client, reservation).await;
                refuse(&conn, request_id, 504, "no answer from the worker in time").await;
                return;
            }
            () = cancel.cancelled() => {
                c.cancelled.fetch_add(1, Ordering::Relaxed);
                cancel_on_worker(&attempt).await;
                finish_attempt(&state, &attempt, Outcome::Cancelled);
                release(&state, &client, reservation).await;
                return;
            }
        };
        match first {
            WorkerEvent::Answer { answer, final_info } => {
                let mut attempt = attempt;
                lock(&state.selector).on_first_byte(&mut attempt.dispatch, Instant::now());
                break (Some(attempt), Some((answer, final_info)));
            }
            WorkerEvent::Error { code, message, .. } => {
                // A worker that refuses the request itself (bad body, unknown endpoint) would
                // refuse it anywhere: pass that on. Capacity and engine failures move on.
                let retryable = code >= 500 || code == 429;
                let outcome = if retryable {
                    Outcome::Failure
                } else {
                    Outcome::Success
                };
                finish_attempt(&state, &attempt, outcome);
                if !retryable {
                    release(&state, &client, reservation).await;
                    c.failed.fetch_add(1, Ordering::Relaxed);
                    refuse(&conn, request_id, code, &message).await;
                    return;
                }
                c.retried.fetch_add(1, Ordering::Relaxed);
                last_error = Some((code, message));
            }
            // (`next_event` keeps receipts aside, so one never comes first.)
            WorkerEvent::Lost | WorkerEvent::Part { .. } | WorkerEvent::Receipt(_) => {
                finish_attempt(&state, &attempt, Outcome::Failure);
                c.retried.fetch_add(1, Ordering::Relaxed);
                last_error = Some((502, "worker connection lost before answering".into()));
            }
        }
    };
    let (Some(mut attempt), Some((answer, final_info))) = (attempt, first) else {
        release(&state, &client, reservation).await;
        let (code, message) = match (last_error, unavailable) {
            (Some((429, message)), _) => (429, format!("no worker could answer: {message}")),
            (Some((_, message)), _) => (502, format!("no worker could answer: {message}")),
            (None, Some(reason @ (Unavailability::UnknownModel | Unavailability::AllTried))) => {
                (502, format!("{base_model}: {reason}"))
            }
            (None, Some(reason)) => (429, format!("{base_model}: {reason}")),
            (None, None) => (502, format!("{base_model}: no worker could answer")),
        };
        c.no_worker.fetch_add(1, Ordering::Relaxed);
        refuse(&conn, request_id, code, &message).await;
        return;
    };

    // Relay: the first answer, then parts until the final one.
    let timings = version >= 2;
    let to_client_final = |fi: Option<&proxy::QueryFinalInfo>, tokens: TokensUsed| {
        let end = cocoon_net::unix_time();
        client::QueryFinalInfo {
            flags: 0,
            tokens_used: tokens,
            worker_debug: if debug {
                Some(fi.and_then(|f| f.worker_debug.clone()).unwrap_or_default())
            } else {
                None
            },
            proxy_debug: debug
                .then(|| format!("worker {} attempts {}", attempt_label(&tried), tried.len())),
            proxy_start_time: timings.then_some(proxy_start),
            proxy_end_time: timings.then_some(end),
            worker_start_time: timings.then(|| fi.and_then(|f| f.worker_start_time).unwrap_or(0.0)),
            worker_end_time: timings.then(|| fi.and_then(|f| f.worker_end_time).unwrap_or(0.0)),
        }
    };
    c.bytes_relayed
        .fetch_add(answer.len() as u64, Ordering::Relaxed);
    // The message carrying usage is held back until the request is charged, so that the
    // client learns the cost before it sees the end of the answer.
    let mut held: Option<Vec<u8>> = None;
    let mut ending = None;
    let first_msg = client::QueryAnswerEx {
        request_id,
        answer,
        flags: 0,
        final_info: final_info
            .as_ref()
            .map(|fi| to_client_final(Some(fi), fi.tokens_used.clone())),
    };
    if final_info.is_some() {
        held = Some(first_msg.to_boxed_bytes());
        ending = Some(Ending::Finished(final_info));
    } else if conn
        .send_packet(Bytes::from(first_msg.to_boxed_bytes()))
        .await
        .is_err()
    {
        ending = Some(Ending::Cancelled);
    }
    let mut pending: Option<WorkerEvent> = None;
    let ending = match ending {
        Some(e) => e,
        None => loop {
            let event = match pending.take() {
                Some(e) => e,
                None => tokio::select! {
                    e = next_event(&mut attempt.events, &mut receipt) => e,
                    () = tokio::time::sleep_until(deadline.into()) => break Ending::TimedOut,
                    () = cancel.cancelled() => break Ending::Cancelled,
                },
            };
            match event {
                WorkerEvent::Part { answer, final_info } => {
                    let (answer, final_info) =
                        gather_parts(answer, final_info, &mut attempt.events, &mut pending);
                    c.bytes_relayed
                        .fetch_add(answer.len() as u64, Ordering::Relaxed);
                    let msg = client::QueryAnswerPartEx {
                        request_id,
                        answer,
                        flags: 0,
                        final_info: final_info
                            .as_ref()
                            .map(|fi| to_client_final(Some(fi), fi.tokens_used.clone())),
                    };
                    if final_info.is_some() {
                        held = Some(msg.to_boxed_bytes());
                        break Ending::Finished(final_info);
                    }
                    if conn
                        .send_packet(Bytes::from(msg.to_boxed_bytes()))
                        .await
                        .is_err()
                    {
                        break Ending::Cancelled;
                    }
                }
                WorkerEvent::Error {
                    code,
                    message,
                    final_info,
                } => {
                    break Ending::FailedMidway {
                        code,
                        message,
                        final_info,
                    };
                }
                WorkerEvent::Receipt(r) => receipt = Some(r),
                WorkerEvent::Lost => {
                    break Ending::FailedMidway {
                        code: 502,
                        message: "worker connection lost mid-answer".into(),
                        final_info: None,
                    };
                }
                WorkerEvent::Answer { .. } => {
                    break Ending::FailedMidway {
                        code: 502,
                        message: "worker sent a second first answer".into(),
                        final_info: None,
                    };
                }
            }
        },
    };

    // Settle: charge exactly the tokens the worker metered.
    let (outcome, usage) = match &ending {
        Ending::Finished(fi) => (Outcome::Success, fi.as_ref().map(|f| f.tokens_used.clone())),
        Ending::FailedMidway { final_info, .. } => (
            Outcome::Failure,
            final_info.as_ref().map(|f| f.tokens_used.clone()),
        ),
        Ending::Cancelled | Ending::TimedOut => (Outcome::Cancelled, None),
    };
    // Counted before the worker hears of it (nothing is charged for these endings).
    match &ending {
        Ending::Cancelled => {
            c.cancelled.fetch_add(1, Ordering::Relaxed);
            cancel_on_worker(&attempt).await;
        }
        Ending::TimedOut => {
            c.timed_out.fetch_add(1, Ordering::Relaxed);
            cancel_on_worker(&attempt).await;
        }
        Ending::Finished(_) | Ending::FailedMidway { .. } => {}
    }
    finish_attempt(&state, &attempt, outcome);
    let mut usage = usage.unwrap_or_default();
    let (charged, charge_error) =
        match charge(&state, &client, &attempt, ledger_id, &usage, reservation).await {
            Ok(charged) => (charged, None),
            Err(message) => {
                // Nobody paid for this answer: its end, which would show the usage, is withheld,
                // and no usage is reported.
                held = None;
                usage = TokensUsed::default();
                (None, Some(message))
            }
        };
    match &ending {
        Ending::Cancelled | Ending::TimedOut => {}
        _ if charge_error.is_some() => {
            c.failed.fetch_add(1, Ordering::Relaxed);
        }
        Ending::Finished(_) => {
            c.succeeded.fetch_add(1, Ordering::Relaxed);
        }
        Ending::FailedMidway { .. } => {
            c.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
    if let Some(ch) = &charged
        && version >= cocoon_protocol::version::SEALED_VERSION
    {
        let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let cost = ext::QueryCost {
            request_id,
            coefficient: i32::try_from(attempt.coefficient.get()).unwrap_or(i32::MAX),
            prompt_cost: i(ch.prompt_cost),
            completion_cost: i(ch.completion_cost),
            total_cost: i(ch.total_cost),
        };
        let _ = conn.send_packet(Bytes::from(cost.to_boxed_bytes())).await;
    }
    if let (Some(receipt), Ending::Finished(_)) = (receipt, &ending)
        && version >= cocoon_protocol::version::SEALED_VERSION
    {
        let msg = ext::QueryReceipt {
            request_id,
            receipt,
        };
        let _ = conn.send_packet(Bytes::from(msg.to_boxed_bytes())).await;
    }
    if let Some(msg) = held {
        let _ = conn.send_packet(Bytes::from(msg)).await;
    }
    match ending {
        Ending::FailedMidway {
            code,
            message,
            final_info,
        } => {
            let msg = client::QueryAnswerErrorEx {
                request_id,
                error_code: code,
                error: message,
                flags: 0,
                final_info: Some(to_client_final(final_info.as_ref(), usage.clone())),
            };
            let _ = conn.send_packet(Bytes::from(msg.to_boxed_bytes())).await;
        }
        Ending::TimedOut => refuse(&conn, request_id, 504, "request timed out").await,
        Ending::Finished(_) => {
            if let Some(message) = charge_error {
                refuse(&conn, request_id, 503, &message).await;
            }
        }
        Ending::Cancelled => {}
    }
    if let Some(charged) = charged {
        notify_payment(&state, &conn, &attempt, &client, request_id, charged).await;
    }
}

/// Largest run of parts joined into one.
const MAX_GATHER: usize = 256 * 1024;

/// Joins the parts already queued behind `answer` into one, so that a burst from the worker
/// crosses to the client as one packet; never waits. A non-part event met on the way is left
/// in `pending`.
/// The next event of an attempt, keeping a receipt aside (it precedes the final part).
async fn next_event(
    events: &mut mpsc::Receiver<WorkerEvent>,
    receipt: &mut Option<Bytes>,
) -> WorkerEvent {
    loop {
        match events.recv().await {
            Some(WorkerEvent::Receipt(r)) => *receipt = Some(r),
            Some(event) => return event,
            None => return WorkerEvent::Lost,
        }
    }
}

fn gather_parts(
    answer: Bytes,
    final_info: Option<proxy::QueryFinalInfo>,
    events: &mut mpsc::Receiver<WorkerEvent>,
    pending: &mut Option<WorkerEvent>,
) -> (Bytes, Option<proxy::QueryFinalInfo>) {
    if final_info.is_some() {
        return (answer, final_info);
    }
    let mut joined: Option<bytes::BytesMut> = None;
    while joined.as_ref().map_or(answer.len(), |j| j.len()) < MAX_GATHER {
        match events.try_recv() {
            Ok(WorkerEvent::Part {
                answer: more,
                final_info,
            }) => {
                joined
                    .get_or_insert_with(|| bytes::BytesMut::from(&answer[..]))
                    .extend_from_slice(&more);
                if final_info.is_some() {
                    return (joined.map_or(answer, bytes::BytesMut::freeze), final_info);
                }
            }
            Ok(other) => {
                *pending = Some(other);
                break;
            }
            Err(_) => break,
        }
    }
    (joined.map_or(answer, bytes::BytesMut::freeze), None)
}

fn attempt_label(tried: &[WorkerId]) -> String {
    tried.last().map(|w| w.0.to_string()).unwrap_or_default()
}

async fn start_attempt(
    state: &ProxyState,
    model: &str,
    max_coefficient: Coefficient,
    tried: &[WorkerId],
    q: &client::RunQueryEx,
    sealed: Option<&crate::sealed::SealedRoute>,
    deadline: Instant,
) -> Result<Attempt, Unavailability> {
    let debug = q.enable_debug.unwrap_or(false);
    let worker_request_id = Int256(rand::random());
    let excluded = crate::sealed::excluded(state, sealed, tried);
    let (tx, events) = mpsc::channel(ROUTE_QUEUE);
    let (dispatch, coefficient, conn, version, owner) = {
        let mut selector = lock(&state.selector);
        let dispatch = match selector.dispatch(model, max_coefficient, &excluded, Instant::now()) {
            Ok(d) => d,
            Err(MarketError::NoWorkerAvailable { reason, .. }) => return Err(reason),
            Err(_) => return Err(Unavailability::UnknownModel),
        };
        let id = dispatch.worker();
        let coefficient = selector.worker_info(id).map(|i| i.coefficient);
        let mut workers = lock(&state.workers);
        match (coefficient, workers.get_mut(&id)) {
            (Some(coefficient), Some(link)) => {
                link.routes.insert(worker_request_id, tx);
                (
                    dispatch,
                    coefficient,
                    link.conn.clone(),
                    link.version,
                    link.owner.clone(),
                )
            }
            _ => {
                selector.on_finish(dispatch, Outcome::Cancelled, Instant::now());
                return Err(Unavailability::UnknownModel);
            }
        }
    };
    let worker = dispatch.worker();
    let remaining = deadline
        .saturating_duration_since(Instant::now())
        .as_secs_f64();
    let msg = match sealed {
        Some(_) => crate::sealed::worker_message(
            &q.query,
            i64::from(coefficient.get()),
            remaining,
            worker_request_id,
            q.request_id,
            i64::from(q.max_tokens.max(0)),
            debug,
        ),
        None => proxy::RunQueryEx {
            query: q.query.clone(),
            signed_payment: proxy::AnySignedPayment::default(),
            coefficient: i64::from(coefficient.get()),
            timeout: remaining,
            request_id: worker_request_id,
            flags: 0,
            enable_debug: debug.then_some(true),
        }
        .to_boxed_bytes(),
    };
    let attempt = Attempt {
        worker,
        dispatch,
        owner,
        coefficient,
        worker_conn: conn,
        worker_version: version,
        worker_request_id,
        events,
    };
    if attempt
        .worker_conn
        .send_packet(Bytes::from(msg))
        .await
        .is_err()
    {
        // The connection is going away; its events channel will report it as lost.
        tracing::debug!(
            worker = worker.0,
            "could not send the request to the worker"
        );
    }
    Ok(attempt)
}

fn finish_attempt(state: &ProxyState, attempt: &Attempt, outcome: Outcome) {
    if let Some(link) = lock(&state.workers).get_mut(&attempt.worker) {
        link.routes.remove(&attempt.worker_request_id);
    }
    lock(&state.selector).on_finish(attempt.dispatch, outcome, Instant::now());
}

async fn cancel_on_worker(attempt: &Attempt) {
    if attempt.worker_version >= cocoon_protocol::version::SEALED_VERSION {
        let msg = ext::CancelQuery {
            request_id: attempt.worker_request_id,
        };
        let _ = attempt
            .worker_conn
            .send_packet(Bytes::from(msg.to_boxed_bytes()))
            .await;
    }
}

struct Charged {
    adjusted_tokens: u64,
    prompt_cost: u64,
    completion_cost: u64,
    total_cost: u64,
    client_tokens_used: u64,
    worker_tokens_earned: u64,
}

/// Gives a reservation back; a failure is logged (the hold goes away with the next restart).
async fn release(state: &ProxyState, client: &ClientId, reservation: Reservation) {
    if let Err(e) = state.writes.release(client, reservation).await {
        tracing::warn!(
            request = %reservation.request_id(),
            "cannot release a reservation: {e}"
        );
    }
}

/// Prices the metered tokens and books the request: `Ok(None)` when there is nothing to charge,
/// `Err` with the message for the client when the charge could not be booked (the reservation
/// is then given back).
async fn charge(
    state: &ProxyState,
    client: &ClientId,
    attempt: &Attempt,
    ledger_id: RequestId,
    usage: &TokensUsed,
    reservation: Reservation,
) -> Result<Option<Charged>, String> {
    let u = |v: i64| u64::try_from(v).unwrap_or(0);
    let counts = TokenCounts {
        prompt: u(usage.prompt_tokens_used),
        cached: u(usage.cached_tokens_used),
        completion: u(usage.completion_tokens_used),
        reasoning: u(usage.reasoning_tokens_used),
    };
    if counts == TokenCounts::default() {
        release(state, client, reservation).await;
        return Ok(None);
    }
    let charge = match state.ledger.pricing().charge(&counts, attempt.coefficient) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(request = %ledger_id, "cannot price the worker's usage: {e}");
            release(state, client, reservation).await;
            return Err(format!("the worker's usage cannot be priced: {e}"));
        }
    };
    let worker = WorkerAccountId(attempt.owner.clone());
    match state
        .writes
        .charge_request(client, &worker, ledger_id, &charge)
        .await
    {
        Ok(receipt) => {
            if receipt.replayed {
                // Cannot happen for a fresh reservation; if it does, the first charge stands.
                tracing::warn!(request = %ledger_id, "request was already charged");
            }
            let record = &receipt.request.record;
            let costs = charge.usage_costs();
            Ok(Some(Charged {
                adjusted_tokens: record.adjusted_tokens,
                prompt_cost: costs.prompt_total_cost,
                completion_cost: costs.completion_total_cost,
                total_cost: record.client_cost,
                client_tokens_used: record.client_tokens_used,
                worker_tokens_earned: record.worker_tokens_earned,
            }))
        }
        Err(e) => {
            tracing::error!(request = %ledger_id, "cannot charge: {e}");
            // Nothing was booked (or, if the commit's outcome was lost, the request is charged
            // and the release finds no reservation): either way the books stay whole.
            release(state, client, reservation).await;
            Err("the proxy could not record the charge; the answer is withheld".into())
        }
    }
}

async fn notify_payment(
    state: &ProxyState,
    conn: &Connection,
    attempt: &Attempt,
    client: &ClientId,
    request_id: Int256,
    charged: Charged,
) {
    let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let to_client = proxy::ClientRequestPayment {
        request_id,
        signed_payment: crate::settle::client_voucher(state, client).await,
        db_tokens: i(charged.client_tokens_used),
        max_tokens: i(charged.client_tokens_used),
        request_tokens: i(charged.adjusted_tokens),
    };
    let _ = conn
        .send_packet(Bytes::from(to_client.to_boxed_bytes()))
        .await;
    let to_worker = proxy::WorkerRequestPayment {
        request_id: attempt.worker_request_id,
        signed_payment: crate::settle::worker_voucher(state, &attempt.owner).await,
        db_tokens: i(charged.worker_tokens_earned),
        max_tokens: i(charged.worker_tokens_earned),
        request_tokens: i(charged.adjusted_tokens),
        request_client_owner: client.0.clone(),
    };
    let _ = attempt
        .worker_conn
        .send_packet(Bytes::from(to_worker.to_boxed_bytes()))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_ids_are_stable_and_scoped_to_the_client() {
        let id = Int256([7; 32]);
        let alice = ClientId("alice".into());
        let a = ledger_request_id(&alice, id);
        assert_eq!(a, ledger_request_id(&alice, id));
        assert_ne!(a, ledger_request_id(&ClientId("bob".into()), id));
        assert_ne!(a, ledger_request_id(&alice, Int256([8; 32])));
        assert_ne!(a.0, id.0);
        // The account's length is part of the input: shifting bytes between the account and
        // the request id gives another id.
        let mut shifted = [7u8; 32];
        shifted[0] = b'e';
        assert_ne!(
            ledger_request_id(&ClientId("alic".into()), Int256(shifted)),
            a
        );
    }
}

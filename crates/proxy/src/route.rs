//! One client request's life at the proxy: reserve balance, pick a worker, forward, move to
//! another worker if one fails before its first byte, relay the answer part by part, then
//! price the metered tokens, charge the client, credit the worker and tell both.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cocoon_market::MarketError;
use cocoon_market::ledger::ChargeOutcome;
use cocoon_market::pricing::{Coefficient, TokenCounts};
use cocoon_market::selection::{Dispatch, Outcome, Unavailability};
use cocoon_market::{ClientId, RequestId, WorkerAccountId, WorkerId};
use cocoon_net::Connection;
use cocoon_protocol::messages::{TokensUsed, client, ext, proxy};
use cocoon_protocol::tl::{Int256, TlConstructor};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::state::{ProxyState, WorkerEvent, lock};

/// Default `timeout` when a client sends none (the reference's 120 s).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Default `max_coefficient` (4.0×).
const DEFAULT_MAX_COEFFICIENT: u32 = 4000;
/// Events buffered per request between a worker's connection and the client's.
const ROUTE_QUEUE: usize = 256;

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
    let reservation = lock(&state.ledger).reserve_for_request(
        &client,
        RequestId::from(request_id),
        max_coefficient,
        max_tokens,
        q.query.len() as u64,
    );
    let reservation = match reservation {
        Ok(r) => r,
        Err(MarketError::InsufficientBalance {
            needed_tokens,
            available_tokens,
        }) => {
            c.no_balance.fetch_add(1, Ordering::Relaxed);
            let msg = format!(
                "insufficient balance: request may cost {needed_tokens} tokens, {available_tokens} available"
            );
            refuse(&conn, request_id, 402, &msg).await;
            return;
        }
        Err(e) => {
            refuse(&conn, request_id, 400, &e.to_string()).await;
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
            deadline,
            debug,
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
                cancel_on_worker(&attempt).await;
                finish_attempt(&state, &attempt, Outcome::Failure);
                let _ = lock(&state.ledger).release(&client, reservation);
                c.timed_out.fetch_add(1, Ordering::Relaxed);
                refuse(&conn, request_id, 504, "no answer from the worker in time").await;
                return;
            }
            () = cancel.cancelled() => {
                cancel_on_worker(&attempt).await;
                finish_attempt(&state, &attempt, Outcome::Cancelled);
                let _ = lock(&state.ledger).release(&client, reservation);
                c.cancelled.fetch_add(1, Ordering::Relaxed);
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
                    let _ = lock(&state.ledger).release(&client, reservation);
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
        let _ = lock(&state.ledger).release(&client, reservation);
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
    if matches!(ending, Ending::Cancelled | Ending::TimedOut) {
        cancel_on_worker(&attempt).await;
    }
    finish_attempt(&state, &attempt, outcome);
    let usage = usage.unwrap_or_default();
    let charged = charge(&state, &client, &attempt, request_id, &usage, reservation);
    match &ending {
        Ending::Finished(_) => c.succeeded.fetch_add(1, Ordering::Relaxed),
        Ending::FailedMidway { .. } => c.failed.fetch_add(1, Ordering::Relaxed),
        Ending::Cancelled => c.cancelled.fetch_add(1, Ordering::Relaxed),
        Ending::TimedOut => c.timed_out.fetch_add(1, Ordering::Relaxed),
    };
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
        Ending::Finished(_) | Ending::Cancelled => {}
    }
    if let Some(charged) = charged {
        notify_payment(&conn, &attempt, &client, request_id, charged).await;
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
    deadline: Instant,
    debug: bool,
) -> Result<Attempt, Unavailability> {
    let worker_request_id = Int256(rand::random());
    let (tx, events) = mpsc::channel(ROUTE_QUEUE);
    let (dispatch, coefficient, conn, version, owner) = {
        let mut selector = lock(&state.selector);
        let dispatch = match selector.dispatch(model, max_coefficient, tried, Instant::now()) {
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
    let msg = proxy::RunQueryEx {
        query: q.query.clone(),
        signed_payment: proxy::AnySignedPayment::default(),
        coefficient: i64::from(coefficient.get()),
        timeout: remaining,
        request_id: worker_request_id,
        flags: 0,
        enable_debug: debug.then_some(true),
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
        .send_packet(Bytes::from(msg.to_boxed_bytes()))
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

fn charge(
    state: &ProxyState,
    client: &ClientId,
    attempt: &Attempt,
    request_id: Int256,
    usage: &TokensUsed,
    reservation: cocoon_market::reservation::Reservation,
) -> Option<Charged> {
    let u = |v: i64| u64::try_from(v).unwrap_or(0);
    let counts = TokenCounts {
        prompt: u(usage.prompt_tokens_used),
        cached: u(usage.cached_tokens_used),
        completion: u(usage.completion_tokens_used),
        reasoning: u(usage.reasoning_tokens_used),
    };
    let mut ledger = lock(&state.ledger);
    if counts == TokenCounts::default() {
        let _ = ledger.release(client, reservation);
        return None;
    }
    let charge = match ledger.pricing().charge(&counts, attempt.coefficient) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot price request {request_id}: {e}");
            let _ = ledger.release(client, reservation);
            return None;
        }
    };
    match ledger.charge_request(
        client,
        &WorkerAccountId(attempt.owner.clone()),
        RequestId::from(request_id),
        &charge,
    ) {
        Ok(ChargeOutcome::Charged(record)) => Some(Charged {
            adjusted_tokens: record.adjusted_tokens,
            prompt_cost: charge.usage_costs().prompt_total_cost,
            completion_cost: charge.usage_costs().completion_total_cost,
            total_cost: record.client_cost,
            client_tokens_used: record.client_tokens_used,
            worker_tokens_earned: record.worker_tokens_earned,
        }),
        Ok(_) => None,
        Err(e) => {
            tracing::error!("cannot charge request {request_id}: {e}");
            let _ = ledger.release(client, reservation);
            None
        }
    }
}

async fn notify_payment(
    conn: &Connection,
    attempt: &Attempt,
    client: &ClientId,
    request_id: Int256,
    charged: Charged,
) {
    let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let to_client = proxy::ClientRequestPayment {
        request_id,
        signed_payment: proxy::AnySignedPayment::default(),
        db_tokens: i(charged.client_tokens_used),
        max_tokens: i(charged.client_tokens_used),
        request_tokens: i(charged.adjusted_tokens),
    };
    let _ = conn
        .send_packet(Bytes::from(to_client.to_boxed_bytes()))
        .await;
    let to_worker = proxy::WorkerRequestPayment {
        request_id: attempt.worker_request_id,
        signed_payment: proxy::AnySignedPayment::default(),
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

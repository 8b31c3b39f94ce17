//! The tokio task around one request's [`RequestMachine`]: it carries out the machine's
//! actions (ledger writes, worker selection, sends with deadlines) and feeds back what happens
//! (the ledger's answers, the worker's messages, the client's cancel or departure, time).
//! Every rule is in the machine; this file only does I/O.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cocoon_ledger_store::StoreError;
use cocoon_market::pricing::{Coefficient, TokenCounts};
use cocoon_market::reservation::Reservation;
use cocoon_market::selection::{Dispatch, Outcome, Preference, Unavailability};
use cocoon_market::{ClientId, MarketError, RequestId, WorkerAccountId, WorkerId};
use cocoon_net::Connection;
use cocoon_protocol::messages::{AUDIO_UNITS_FLAG, TokensUsed, client, ext, proxy};
use cocoon_protocol::model_name::base_name as base_model;
use cocoon_protocol::tl::{Int256, TlConstructor};
use tokio_util::sync::CancellationToken;

use super::machine::{
    Action, AttemptView, ClientEnd, Ending, Event, Refusal, RequestMachine, Rules, ToClient,
    Violation, charge_coefficient,
};
use super::queue::{RouteReceiver, route_queue};
use super::{ledger_request_id, refuse};
use crate::state::{ProxyState, lock};

/// Default `timeout` when a client sends none (the reference's 120 s).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Default `max_coefficient` (4.0×).
const DEFAULT_MAX_COEFFICIENT: u32 = 4000;

/// The attempt on one worker, as the driver holds it.
struct Attempt {
    worker: WorkerId,
    dispatch: Option<Dispatch>,
    owner: String,
    coefficient: Coefficient,
    conn: Connection,
    version: i32,
    request_id: Int256,
    events: RouteReceiver,
}

/// What a booked charge came to.
struct Charged {
    /// The coefficient charged at (the one offered, or the receipt's when it signs less).
    coefficient: Coefficient,
    adjusted_tokens: u64,
    prompt_cost: u64,
    completion_cost: u64,
    total_cost: u64,
    client_tokens_used: u64,
    worker_tokens_earned: u64,
}

struct Driver {
    state: Arc<ProxyState>,
    conn: Connection,
    client: ClientId,
    version: i32,
    q: client::RunQueryEx,
    sealed: Option<crate::sealed::SealedRoute>,
    ledger_id: RequestId,
    max_coefficient: Coefficient,
    deadline: Instant,
    proxy_start: f64,
    /// When this proxy took the request, for the time it adds.
    started: Instant,
    reservation: Option<Reservation>,
    attempt: Option<Attempt>,
    tried: Vec<WorkerId>,
    charged: Option<Charged>,
    client_gone: bool,
}

/// Runs one client request to its end.
pub(crate) async fn run(
    state: Arc<ProxyState>,
    conn: Connection,
    client: ClientId,
    version: i32,
    mut q: client::RunQueryEx,
    sealed: Option<crate::sealed::SealedRoute>,
    cancel: CancellationToken,
) {
    state.counters.requests.fetch_add(1, Ordering::Relaxed);
    if q.public_key.is_some() {
        match reference_encrypted(&q.query, q.max_tokens) {
            // Not actually encrypted: an ordinary request, sent with its token limit.
            Ok(false) => q.public_key = None,
            Ok(true) => {}
            Err(why) => {
                refuse(&conn, q.request_id, 400, why).await;
                return;
            }
        }
    }
    let proxy_start = cocoon_net::unix_time();
    let started = Instant::now();
    let timeout = if q.timeout.is_finite() && q.timeout > 0.0 {
        Duration::try_from_secs_f64(q.timeout).unwrap_or(DEFAULT_TIMEOUT)
    } else {
        DEFAULT_TIMEOUT
    }
    .min(state.config.max_request_timeout);
    let max_coefficient = match u32::try_from(q.max_coefficient).ok().filter(|v| *v > 0) {
        Some(v) => Coefficient::new(v),
        None => Coefficient::new(DEFAULT_MAX_COEFFICIENT),
    };
    let Ok(max_coefficient) = max_coefficient else {
        refuse(&conn, q.request_id, 400, "invalid max_coefficient").await;
        return;
    };
    if q.flags & AUDIO_UNITS_FLAG != 0 && q.public_key.is_some() {
        // The reference's message cannot tell the worker it is a transcription.
        let why = "a transcription cannot use the reference's request encryption";
        refuse(&conn, q.request_id, 400, why).await;
        return;
    }
    let rules = Rules {
        max_attempts: state.config.max_attempts,
        cancel_grace: state.config.cancel_grace,
    };
    let ask = super::machine::Ask {
        max_tokens: q.max_tokens,
        body_bytes: prompt_bound(&q.query, sealed.is_some()),
        audio: q.flags & AUDIO_UNITS_FLAG != 0,
        deadline: started + timeout,
        sealed: sealed.is_some(),
    };
    let (mut machine, first) = RequestMachine::start(rules, ask);
    let mut d = Driver {
        ledger_id: ledger_request_id(&client, q.request_id),
        state,
        conn,
        client,
        version,
        q,
        sealed,
        max_coefficient,
        deadline: started + timeout,
        proxy_start,
        started,
        reservation: None,
        attempt: None,
        tried: Vec::new(),
        charged: None,
        client_gone: false,
    };
    let mut pending: VecDeque<Action> = first.into();
    loop {
        while let Some(action) = pending.pop_front() {
            if let Some(event) = d.execute(action, &machine).await {
                pending.extend(machine.handle(event, Instant::now()));
            }
        }
        if machine.is_done() {
            break;
        }
        let deadline = machine.next_deadline();
        let event = tokio::select! {
            event = next_worker_event(d.attempt.as_mut()) => {
                if let crate::state::WorkerEvent::Receipt(r) = &event
                    && !d.receipt_names_request(r)
                {
                    // A receipt of another request (or that does not read) bounds nothing and
                    // is not relayed: the client would refuse it, and take the charge of a
                    // sealed request without its receipt for an overcharge.
                    tracing::warn!(request = %d.ledger_id, "dropping a receipt of another request");
                    continue;
                }
                Event::Worker(event)
            }
            () = sleep_until(deadline) => Event::Tick,
            () = cancel.cancelled(), if !d.client_gone => {
                d.client_gone = true;
                Event::Client(if d.conn.is_closed() {
                    ClientEnd::Gone
                } else {
                    ClientEnd::Cancelled
                })
            }
        };
        pending.extend(machine.handle(event, Instant::now()));
    }
    // Whatever happened, the attempt's route is gone.
    if let Some(attempt) = &d.attempt {
        forget_route(&d.state, attempt);
    }
}

impl Driver {
    /// Counts a metering violation against `worker`: usage above what the request could use
    /// or the receipt signs (charged at the bound), or a sealed request's usage billed without
    /// its receipt (charged nothing).
    fn penalize(&self, worker: WorkerId, owner: &str, v: &Violation) {
        tracing::warn!(
            worker = worker.0,
            owner = %owner,
            reported = ?v.reported,
            bound = ?v.bound,
            "metering violation: usage above what the request could use or its receipt signs, \
             charged at the bound"
        );
        lock(&self.state.selector).on_metering_violation(worker);
        self.state
            .counters
            .metering_violations
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Whether a worker's receipt names this request as the client will check it: the client's
    /// request id, and for a sealed request the envelope's SHA-256.
    fn receipt_names_request(&self, encoded: &Bytes) -> bool {
        let Ok(receipt) = cocoon_attest::Receipt::from_bytes(encoded) else {
            return false;
        };
        let envelope = self
            .sealed
            .as_ref()
            .map(|_| cocoon_attest::receipt::body_hash(&self.q.query));
        cocoon_attest::receipt::check_request(
            &receipt.claims,
            &self.q.request_id.0,
            envelope.as_ref(),
        )
        .is_ok()
    }
}

async fn next_worker_event(attempt: Option<&mut Attempt>) -> crate::state::WorkerEvent {
    match attempt {
        Some(a) => a.events.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

fn forget_route(state: &ProxyState, attempt: &Attempt) {
    if let Some(link) = lock(&state.workers).get_mut(&attempt.worker) {
        link.routes.remove(&attempt.request_id);
    }
}

impl Driver {
    async fn execute(&mut self, action: Action, machine: &RequestMachine) -> Option<Event> {
        match action {
            Action::Reserve => {
                let asked = Instant::now();
                let reserved = self.reserve(machine.token_limit()).await;
                self.state.counters.reserve_wait.observe(asked.elapsed());
                Some(Event::Reserved(reserved))
            }
            Action::Dispatch {
                exclude,
                token_limit,
            } => Some(Event::Dispatched(
                self.dispatch(&exclude, token_limit).await,
            )),
            Action::FirstByte => {
                if let Some(dispatch) = self.attempt.as_mut().and_then(|a| a.dispatch.as_mut()) {
                    lock(&self.state.selector).on_first_byte(dispatch, Instant::now());
                }
                None
            }
            Action::CancelWorker => {
                self.cancel_worker().await;
                None
            }
            Action::FinishAttempt(outcome) => {
                self.finish_attempt(outcome);
                None
            }
            Action::Send(message) => self.send(message).await,
            Action::Charge {
                usage,
                violation,
                signed_coefficient,
            } => {
                let asked = Instant::now();
                let charged = self.charge(usage, violation, signed_coefficient).await;
                self.state.counters.charge_wait.observe(asked.elapsed());
                Some(Event::Charged(charged))
            }
            Action::Release => {
                self.release().await;
                None
            }
            Action::Violation(v) => {
                if let Some(attempt) = &self.attempt {
                    self.penalize(attempt.worker, &attempt.owner, &v);
                }
                None
            }
            Action::Done(ending) => {
                self.done(ending).await;
                None
            }
        }
    }

    async fn reserve(&mut self, token_limit: u64) -> Result<(), Refusal> {
        if let Some(why) = self.state.ledger_health.refusal() {
            return Err(Refusal::new(503, why));
        }
        let c = &self.state.counters;
        let reserved = self
            .state
            .writes
            .reserve_for_request(
                &self.client,
                self.ledger_id,
                self.max_coefficient,
                token_limit,
                self.q.query.len() as u64,
            )
            .await;
        match reserved {
            Ok(r) => {
                self.reservation = Some(r);
                Ok(())
            }
            Err(e) => Err(match e {
                StoreError::Market(MarketError::InsufficientBalance {
                    needed_tokens,
                    available_tokens,
                }) => {
                    c.no_balance.fetch_add(1, Ordering::Relaxed);
                    Refusal::new(
                        402,
                        format!(
                            "insufficient balance: request may cost {needed_tokens} tokens, \
                             {available_tokens} available"
                        ),
                    )
                }
                StoreError::Market(MarketError::UnknownClient(_)) => {
                    c.no_balance.fetch_add(1, Ordering::Relaxed);
                    Refusal::new(402, "no account at this proxy: fund the client contract")
                }
                StoreError::Market(MarketError::ClientClosed(_)) => Refusal::new(
                    403,
                    "the refund of this client was granted: its channel is closed",
                ),
                StoreError::Market(
                    MarketError::DuplicateReservation(_) | MarketError::RequestAlreadyCharged(_),
                ) => Refusal::new(409, "request id already used"),
                StoreError::Storage { .. } | StoreError::CorruptStore(_) => {
                    tracing::error!(request = %self.q.request_id, "cannot reserve: {e}");
                    self.state.ledger_health.write_failed(&e);
                    Refusal::new(503, "the proxy's ledger cannot record the request")
                }
                other => Refusal::new(400, other.to_string()),
            }),
        }
    }

    async fn dispatch(
        &mut self,
        exclude: &[WorkerId],
        token_limit: u64,
    ) -> Result<AttemptView, Unavailability> {
        let state = &self.state;
        let model = base_model(&self.q.model_name);
        let mut excluded = crate::sealed::excluded(state, self.sealed.as_ref(), exclude);
        if self.audio() {
            // Only a worker that is told the request is a transcription (and refuses it when
            // it is not) may run one: older workers cannot be told.
            excluded.extend(
                lock(&state.workers)
                    .iter()
                    .filter(|(_, l)| l.version < cocoon_protocol::version::SEALED_VERSION)
                    .map(|(id, _)| *id),
            );
        }
        let worker_request_id = Int256(rand::random());
        let (tx, events) = route_queue(state.config.request_queue_bytes);
        let (dispatch, coefficient, conn, version, owner) = {
            let mut selector = lock(&state.selector);
            // The client's choice between speed and price rides in unused flag bits; a
            // client that says nothing gets the fastest worker.
            let preference = Preference::from_query_flags(self.q.flags).unwrap_or_default();
            let dispatch = match selector.dispatch_with(
                model,
                self.max_coefficient,
                &excluded,
                preference,
                Instant::now(),
            ) {
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
        if !self.tried.is_empty() {
            state.counters.retried.fetch_add(1, Ordering::Relaxed);
        }
        self.tried.push(worker);
        let (message, limit_bound) = self.worker_message(
            i64::from(coefficient.get()),
            version,
            worker_request_id,
            token_limit,
        );
        let attempt = Attempt {
            worker,
            dispatch: Some(dispatch),
            owner,
            coefficient,
            conn,
            version,
            request_id: worker_request_id,
            events,
        };
        let sent = tokio::time::timeout(
            state.config.client_write_timeout,
            attempt.conn.send_packet(Bytes::from(message)),
        )
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            // The connection is going away or not reading: report the attempt as lost.
            tracing::debug!(
                worker = worker.0,
                "could not send the request to the worker"
            );
            if let Some(link) = lock(&state.workers).get(&worker)
                && let Some(tx) = link.routes.get(&worker_request_id)
            {
                tx.push(crate::state::WorkerEvent::Lost);
            }
        }
        let cancellable = version >= cocoon_protocol::version::SEALED_VERSION;
        if let Some(old) = self.attempt.replace(attempt) {
            forget_route(state, &old);
        }
        Ok(AttemptView {
            worker,
            cancellable,
            limit_bound,
        })
    }

    /// Whether the client declared the request a transcription (its limit is audio units).
    fn audio(&self) -> bool {
        self.q.flags & AUDIO_UNITS_FLAG != 0
    }

    /// The message that runs the request on a worker: with the token limit and the client's
    /// request id for a version-3 worker, the reference message for older ones. A request in
    /// the reference's encryption (the client sent `public_key`) always goes as the reference
    /// message, with `private_key` when this proxy holds the key (`reference_private_key`);
    /// otherwise it is relayed untouched.
    fn worker_message(
        &self,
        coefficient: i64,
        worker_version: i32,
        request_id: Int256,
        token_limit: u64,
    ) -> (Vec<u8>, bool) {
        let q = &self.q;
        let remaining = self
            .deadline
            .saturating_duration_since(Instant::now())
            .as_secs_f64();
        let debug = q.enable_debug.unwrap_or(false);
        let token_limit = i64::try_from(token_limit).unwrap_or(i64::MAX);
        if self.sealed.is_some() {
            let message = ext::WorkerRunSealedQuery {
                envelope: q.query.clone(),
                coefficient,
                timeout: remaining,
                request_id,
                client_request_id: q.request_id,
                token_limit,
                flags: q.flags & AUDIO_UNITS_FLAG,
                enable_debug: debug.then_some(true),
            }
            .to_boxed_bytes();
            return (message, true);
        }
        let reference_key = q
            .public_key
            .and_then(|_| self.state.config.reference_key().ok().flatten());
        if reference_key.is_none() && worker_version >= cocoon_protocol::version::SEALED_VERSION {
            let message = ext::WorkerRunQuery {
                query: q.query.clone(),
                coefficient,
                timeout: remaining,
                request_id,
                client_request_id: q.request_id,
                token_limit,
                flags: q.flags & AUDIO_UNITS_FLAG,
                enable_debug: debug.then_some(true),
            }
            .to_boxed_bytes();
            return (message, true);
        }
        let message = proxy::RunQueryEx {
            query: q.query.clone(),
            signed_payment: proxy::AnySignedPayment::default(),
            coefficient,
            timeout: remaining,
            request_id,
            flags: 0,
            enable_debug: debug.then_some(true),
            private_key: reference_key.map(Int256),
        }
        .to_boxed_bytes();
        (message, false)
    }

    async fn cancel_worker(&self) {
        let Some(attempt) = &self.attempt else { return };
        if attempt.version < cocoon_protocol::version::SEALED_VERSION {
            return;
        }
        let msg = ext::CancelQuery {
            request_id: attempt.request_id,
        };
        let _ = tokio::time::timeout(
            self.state.config.client_write_timeout,
            attempt.conn.send_packet(Bytes::from(msg.to_boxed_bytes())),
        )
        .await;
    }

    fn finish_attempt(&mut self, outcome: Outcome) {
        let Some(attempt) = self.attempt.as_mut() else {
            return;
        };
        // The route stays until the request ends when the worker still owes its usage
        // (draining); it is forgotten here otherwise.
        if let Some(dispatch) = attempt.dispatch.take() {
            lock(&self.state.selector).on_finish(dispatch, outcome, Instant::now());
        }
    }

    /// Sends to the client, within the write deadline. A client that does not take the bytes
    /// in time is cut: its session closes and the request stops.
    async fn send(&mut self, message: ToClient) -> Option<Event> {
        if self.client_gone && self.conn.is_closed() {
            return None;
        }
        let bytes = self.client_message(message)?;
        self.state
            .counters
            .bytes_relayed
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        match tokio::time::timeout(
            self.state.config.client_write_timeout,
            self.conn.send_packet(bytes),
        )
        .await
        {
            Ok(Ok(())) => None,
            Ok(Err(_)) => {
                self.client_gone = true;
                Some(Event::Client(ClientEnd::Gone))
            }
            Err(_) => {
                tracing::warn!(
                    request = %self.q.request_id,
                    "client did not read its answer within {:?}: session closed",
                    self.state.config.client_write_timeout
                );
                self.state
                    .counters
                    .stalled_clients
                    .fetch_add(1, Ordering::Relaxed);
                self.conn.close();
                self.client_gone = true;
                Some(Event::Client(ClientEnd::Stalled))
            }
        }
    }

    fn client_message(&self, message: ToClient) -> Option<Bytes> {
        let request_id = self.q.request_id;
        let bytes = match message {
            ToClient::Answer(answer) => client::QueryAnswerEx {
                request_id,
                answer,
                flags: 0,
                final_info: None,
            }
            .to_boxed_bytes(),
            ToClient::Part(answer) => client::QueryAnswerPartEx {
                request_id,
                answer,
                flags: 0,
                final_info: None,
            }
            .to_boxed_bytes(),
            ToClient::Final {
                answer,
                first,
                usage,
                worker_final,
            } => {
                self.record_overhead(worker_final.as_deref());
                let final_info = Some(self.final_info(worker_final.as_deref(), usage));
                if first {
                    client::QueryAnswerEx {
                        request_id,
                        answer,
                        flags: 0,
                        final_info,
                    }
                    .to_boxed_bytes()
                } else {
                    client::QueryAnswerPartEx {
                        request_id,
                        answer,
                        flags: 0,
                        final_info,
                    }
                    .to_boxed_bytes()
                }
            }
            ToClient::Error {
                code,
                message,
                usage,
                worker_final,
            } => client::QueryAnswerErrorEx {
                request_id,
                error_code: code,
                // A client before version 3 knows no field-naming refusal: it gets the
                // message alone, as the reference would send it.
                error: if self.version < cocoon_protocol::version::SEALED_VERSION {
                    cocoon_protocol::refusal::Refusal::decode(&message).message
                } else {
                    message
                },
                flags: 0,
                final_info: Some(self.final_info(worker_final.as_deref(), usage)),
            }
            .to_boxed_bytes(),
            ToClient::Cost => {
                let Some(ch) = &self.charged else {
                    return None;
                };
                if self.version < cocoon_protocol::version::SEALED_VERSION {
                    return None;
                }
                let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                ext::QueryCost {
                    request_id,
                    coefficient: i32::try_from(ch.coefficient.get()).unwrap_or(i32::MAX),
                    prompt_cost: i(ch.prompt_cost),
                    completion_cost: i(ch.completion_cost),
                    total_cost: i(ch.total_cost),
                }
                .to_boxed_bytes()
            }
            ToClient::Receipt(receipt) => {
                if self.version < cocoon_protocol::version::SEALED_VERSION {
                    return None;
                }
                ext::QueryReceipt {
                    request_id,
                    receipt,
                }
                .to_boxed_bytes()
            }
        };
        Some(Bytes::from(bytes))
    }

    /// Records the time this proxy added to an answered request: its own time less the
    /// worker's, as the worker reported it. Requests whose worker reported no times (protocol
    /// version 1) are not recorded.
    fn record_overhead(&self, worker_final: Option<&proxy::QueryFinalInfo>) {
        let Some((start, end)) =
            worker_final.and_then(|f| Some((f.worker_start_time?, f.worker_end_time?)))
        else {
            return;
        };
        let worker = cocoon_node::histogram::reported_span(start, end);
        self.state
            .counters
            .overhead
            .observe(self.started.elapsed().saturating_sub(worker));
    }

    fn final_info(
        &self,
        worker_final: Option<&proxy::QueryFinalInfo>,
        usage: TokensUsed,
    ) -> client::QueryFinalInfo {
        let timings = self.version >= 2;
        let debug = self.q.enable_debug.unwrap_or(false);
        client::QueryFinalInfo {
            flags: 0,
            tokens_used: usage,
            worker_debug: debug.then(|| {
                worker_final
                    .and_then(|f| f.worker_debug.clone())
                    .unwrap_or_default()
            }),
            proxy_debug: debug.then(|| {
                format!(
                    "worker {} attempts {}",
                    self.tried
                        .last()
                        .map(|w| w.0.to_string())
                        .unwrap_or_default(),
                    self.tried.len()
                )
            }),
            proxy_start_time: timings.then_some(self.proxy_start),
            proxy_end_time: timings.then(cocoon_net::unix_time),
            worker_start_time: timings.then(|| {
                worker_final
                    .and_then(|f| f.worker_start_time)
                    .unwrap_or(0.0)
            }),
            worker_end_time: timings
                .then(|| worker_final.and_then(|f| f.worker_end_time).unwrap_or(0.0)),
        }
    }

    /// Books `usage` on the reservation. A charge that cannot be written keeps the reservation
    /// and waits in the ledger's retry queue; the proxy admits no request until it is booked.
    async fn charge(
        &mut self,
        usage: TokenCounts,
        violation: Option<Violation>,
        signed_coefficient: Option<u32>,
    ) -> bool {
        let Some(attempt) = self.attempt.as_ref().filter(|_| self.reservation.is_some()) else {
            return false;
        };
        let (coefficient, signed_other) =
            charge_coefficient(attempt.coefficient, signed_coefficient);
        if signed_other {
            tracing::warn!(
                worker = attempt.worker.0,
                owner = %attempt.owner,
                offered = attempt.coefficient.get(),
                signed = ?signed_coefficient,
                "metering violation: the receipt signs a coefficient other than the one offered; \
                 charged at {coefficient}"
            );
            lock(&self.state.selector).on_metering_violation(attempt.worker);
            self.state
                .counters
                .metering_violations
                .fetch_add(1, Ordering::Relaxed);
        }
        if let Some(v) = violation {
            self.penalize(attempt.worker, &attempt.owner, &v);
        }
        let charge = match self.state.ledger.pricing().charge(&usage, coefficient) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(request = %self.ledger_id, "cannot price the worker's usage: {e}");
                self.release().await;
                return false;
            }
        };
        let worker = WorkerAccountId(attempt.owner.clone());
        match self
            .state
            .writes
            .charge_request(&self.client, &worker, self.ledger_id, &charge)
            .await
        {
            Ok(receipt) => {
                self.reservation = None;
                self.state.ledger_health.write_succeeded();
                let record = &receipt.request.record;
                let costs = charge.usage_costs();
                self.charged = Some(Charged {
                    coefficient,
                    adjusted_tokens: record.adjusted_tokens,
                    prompt_cost: costs.prompt_total_cost,
                    completion_cost: costs.completion_total_cost,
                    total_cost: record.client_cost,
                    client_tokens_used: record.client_tokens_used,
                    worker_tokens_earned: record.worker_tokens_earned,
                });
                true
            }
            Err(e) => {
                tracing::error!(
                    request = %self.ledger_id,
                    "cannot book the charge ({e}): kept for retry, admission stopped"
                );
                self.state.ledger_health.write_failed(&e);
                self.state
                    .ledger_health
                    .defer(crate::health::DeferredCharge {
                        client: self.client.clone(),
                        worker,
                        request_id: self.ledger_id,
                        counts: usage,
                        coefficient,
                        charge,
                    });
                // The reservation stays held until the charge is booked.
                self.reservation = None;
                false
            }
        }
    }

    async fn release(&mut self) {
        let Some(reservation) = self.reservation.take() else {
            return;
        };
        if let Err(e) = self.state.writes.release(&self.client, reservation).await {
            tracing::warn!(
                request = %reservation.request_id(),
                "cannot release a reservation: {e}"
            );
        }
    }

    async fn done(&mut self, ending: Ending) {
        let c = &self.state.counters;
        let counter = match ending {
            Ending::Succeeded => &c.succeeded,
            Ending::Cancelled => &c.cancelled,
            Ending::TimedOut => &c.timed_out,
            Ending::FailedMidway | Ending::ChargeFailed => &c.failed,
            Ending::Refused => &c.refused,
            Ending::NoWorker => &c.no_worker,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(charged) = self.charged.take() {
            self.notify_payment(charged).await;
        }
    }

    /// Vouchers after a booked charge: to the client (unless it is gone) and to the worker.
    async fn notify_payment(&self, charged: Charged) {
        let Some(attempt) = &self.attempt else { return };
        let state = &self.state;
        let deadline = state.config.client_write_timeout;
        let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        if !self.conn.is_closed() {
            let to_client = proxy::ClientRequestPayment {
                request_id: self.q.request_id,
                signed_payment: crate::settle::client_voucher(state, &self.client).await,
                db_tokens: i(charged.client_tokens_used),
                max_tokens: i(charged.client_tokens_used),
                request_tokens: i(charged.adjusted_tokens),
            };
            let _ = tokio::time::timeout(
                deadline,
                self.conn
                    .send_packet(Bytes::from(to_client.to_boxed_bytes())),
            )
            .await;
        }
        let to_worker = proxy::WorkerRequestPayment {
            request_id: attempt.request_id,
            signed_payment: crate::settle::worker_voucher(state, &attempt.owner).await,
            db_tokens: i(charged.worker_tokens_earned),
            max_tokens: i(charged.worker_tokens_earned),
            request_tokens: i(charged.adjusted_tokens),
            request_client_owner: self.client.0.clone(),
        };
        let _ = tokio::time::timeout(
            deadline,
            attempt
                .conn
                .send_packet(Bytes::from(to_worker.to_boxed_bytes())),
        )
        .await;
    }
}

/// The most prompt tokens a request body can hold: its bytes (a token covers at least one
/// byte, and the JSON around each message outweighs the chat template's markers). The body of
/// an `http.request` the proxy can read; the whole envelope of a sealed one.
fn prompt_bound(query: &Bytes, sealed: bool) -> u64 {
    if !sealed
        && let Ok(request) =
            cocoon_protocol::messages::http::Request::from_boxed_bytes(query.clone())
    {
        return request.payload.len() as u64;
    }
    query.len() as u64
}

/// Whether a request that announced the reference's encryption (`public_key`) carries an
/// encrypted body. Such a request reaches its worker as `proxy.runQueryEx`, which carries no
/// token limit, so its body must declare one (the scheme leaves `max_tokens` and
/// `max_completion_tokens` in clear) within the tokens reserved for it (`reserved`): otherwise
/// a client could reserve one token and ask the worker for thousands.
fn reference_encrypted(query: &Bytes, reserved: i32) -> Result<bool, &'static str> {
    let Ok(request) = cocoon_protocol::messages::http::Request::from_boxed_bytes(query.clone())
    else {
        return Ok(false);
    };
    let Ok(serde_json::Value::Object(body)) =
        serde_json::from_slice::<serde_json::Value>(&request.payload)
    else {
        return Ok(false);
    };
    if body.get("is_encrypted").and_then(serde_json::Value::as_str) != Some("v1") {
        return Ok(false);
    }
    let limits: Vec<Option<i64>> = ["max_tokens", "max_completion_tokens"]
        .iter()
        .filter_map(|k| body.get(*k))
        .map(serde_json::Value::as_i64)
        .collect();
    let within = !limits.is_empty()
        && limits
            .iter()
            .all(|l| l.is_some_and(|n| n > 0 && n <= i64::from(reserved)));
    if within {
        Ok(true)
    } else {
        Err(
            "an encrypted request must declare max_tokens (or max_completion_tokens) within the \
             tokens it reserves",
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use cocoon_protocol::messages::http;

    #[test]
    fn an_encrypted_request_must_declare_a_limit_within_its_reservation() {
        let query = |body: &str| {
            Bytes::from(
                http::Request {
                    method: "POST".into(),
                    url: "/v1/chat/completions".into(),
                    http_version: "HTTP/1.1".into(),
                    headers: Vec::new(),
                    payload: Bytes::from(body.to_owned()),
                }
                .to_boxed_bytes(),
            )
        };
        // Not encrypted: an ordinary request (sent with its token limit).
        assert_eq!(
            reference_encrypted(&query(r#"{"max_tokens":32000}"#), 1),
            Ok(false)
        );
        assert_eq!(
            reference_encrypted(&Bytes::from_static(b"junk"), 1),
            Ok(false)
        );
        // Encrypted: the clear limit must be there and within the reservation.
        let enc = |rest: &str| query(&format!(r#"{{"is_encrypted":"v1"{rest}}}"#));
        assert_eq!(
            reference_encrypted(&enc(r#","max_tokens":100"#), 100),
            Ok(true)
        );
        assert!(reference_encrypted(&enc(r#","max_tokens":32000"#), 1).is_err());
        assert!(reference_encrypted(&enc(""), 100).is_err());
        assert!(reference_encrypted(&enc(r#","max_tokens":"ENC_00""#), 100).is_err());
        assert!(
            reference_encrypted(&enc(r#","max_tokens":10,"max_completion_tokens":500"#), 100)
                .is_err()
        );
    }

    #[test]
    fn the_prompt_bound_is_the_body_a_proxy_can_read_else_the_envelope() {
        let request = http::Request {
            method: "POST".into(),
            url: "/v1/chat/completions".into(),
            http_version: "HTTP/1.1".into(),
            headers: vec![http::Header {
                name: "Content-Type".into(),
                value: "application/json".into(),
            }],
            payload: Bytes::from_static(b"{\"messages\":[]}"),
        };
        let query = Bytes::from(request.to_boxed_bytes());
        assert_eq!(prompt_bound(&query, false), 15);
        assert_eq!(prompt_bound(&query, true), query.len() as u64);
        // Bytes that are not an http.request are bounded by their length.
        assert_eq!(prompt_bound(&Bytes::from_static(b"garbage"), false), 7);
    }
}

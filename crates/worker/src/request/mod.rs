//! Serving one request (`proxy.runQueryEx`, `ext.workerRunQuery`, or the inside of an
//! `ext.workerRunSealedQuery`): capacity check, body validation with the token limit the proxy
//! reserved, the engine call, and the answer stream (`proxy.queryAnswerEx`, parts, and a final
//! part with token usage). A cancel (`ext.cancelQuery`) or a lost connection stops the engine;
//! a cancel is then acknowledged with error [`ext::CANCELLED_ERROR_CODE`] and the tokens used
//! until the engine stopped, which the proxy bills. A transcription's form is parsed and its
//! WAV audio measured here, and billed at that measure (see [`validate_transcription`]).
//!
//! A reference proxy that hands over a `private_key` (`proxy.runQueryEx` flag bit 1) may send a
//! body in the reference's own encryption (`"is_encrypted": "v1"`): it is opened before
//! validation, and the answer is encrypted back (the "w" direction) as it streams out; see
//! `cocoon_refv1` for which parts of an answer that covers.

mod machine;
mod validate;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cocoon_attest::ReceiptClaims;
use cocoon_infer::{BodyEvent, EngineError, EngineFuture, EngineResponse, StopHandle, TokenUsage};
use cocoon_net::Connection;
use cocoon_net::LocalIdentity;
use cocoon_protocol::messages::{TokensUsed, ext, http, proxy};
use cocoon_protocol::tl::{Int256, TlConstructor};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use cocoon_refv1::{AnswerCipher, AnswerEncryptor, AnswerFraming};
use cocoon_seal::SystemRng;

use crate::state::{Served, WorkerState, lock};
use cocoon_market::RequestId;
use cocoon_market::audit::{Basis, Bound};
use machine::{Action, BodyEnd, Event, Head, Outcome, Refusal, RequestMachine, Rules, refuse};
use validate::{Job, open_reference_encrypted, validate};

/// How long a stopped engine has to report the tokens it used before the worker reports zero.
const STOP_DEADLINE: Duration = Duration::from_secs(5);

/// What a version 3 proxy says about a request beyond its body: the completion tokens its
/// reservation covers, and the client's request id and sealed envelope that the receipt names.
#[derive(Debug, Clone, Default)]
pub(crate) struct Binding {
    /// Most completion tokens over all choices; `None` from version 2 proxies.
    pub(crate) token_limit: Option<i64>,
    /// The client's id of the request; `None` from version 2 proxies (then no receipt).
    pub(crate) client_request_id: Option<Int256>,
    /// SHA-256 of the sealed envelope as received, for sealed requests.
    pub(crate) envelope_sha256: Option<[u8; 32]>,
    /// The proxy says the client declared a transcription (`AUDIO_UNITS_FLAG`): it will be
    /// charged as audio, so it must be one, and a transcription must be declared.
    pub(crate) audio: bool,
    /// The prices this worker holds its pay for the request to (`cocoon_market::audit`):
    /// those of a version-3 proxy's contract, or the local ones; `None`: not audited.
    pub(crate) payment_prices: Option<cocoon_market::PricingParams>,
    /// The proxy the request came from (its address as dialled): one that paid a request less
    /// than its usage is served no more.
    pub(crate) proxy: Option<Arc<str>>,
    /// Bytes of the request body as the proxy bounds prompt tokens by them (the
    /// `http.request`'s payload, or a sealed request's envelope).
    pub(crate) body_bytes: Option<u64>,
}

/// The bytes a proxy bounds a request's prompt tokens by: the payload of the `http.request` in
/// `query`, or all of `query` when it is not one.
pub(crate) fn body_bytes(query: &Bytes) -> u64 {
    match cocoon_protocol::messages::http::Request::from_boxed_bytes(query.clone()) {
        Ok(request) => request.payload.len() as u64,
        Err(_) => query.len() as u64,
    }
}

pub(crate) async fn serve(
    state: Arc<WorkerState>,
    conn: Connection,
    version: i32,
    q: proxy::RunQueryEx,
    binding: Binding,
    sealer: Option<crate::sealed::AnswerSealer>,
) {
    let start = cocoon_net::unix_time();
    let started = Instant::now();
    state.counters.requests.fetch_add(1, Ordering::Relaxed);
    // The model and engine of this request, whatever model changes happen while it runs.
    let served = state.served();
    let request_id = q.request_id;
    let debug = q.enable_debug.unwrap_or(false);
    let mut reply = Reply {
        conn: &conn,
        version,
        request_id,
        start,
        debug,
        receipt: None,
        identity: state.tls.identity(),
        model: served.model.to_string(),
        weights: served.weights.map_or([0; 32], |w| w.0),
        sealer,
        refv1: None,
        answer_hash: Sha256::new(),
    };

    if !state.enabled.load(Ordering::Acquire) {
        state.counters.rejected.fetch_add(1, Ordering::Relaxed);
        reply
            .fail(refuse(503, "worker is disabled"), TokenUsage::default())
            .await;
        return;
    }
    // 503, not 402: the proxy moves the request to another worker; the client owes nothing.
    if let Some(why) = binding.proxy.as_deref().and_then(|p| state.refusal(p)) {
        state.counters.rejected.fetch_add(1, Ordering::Relaxed);
        reply.fail(refuse(503, why), TokenUsage::default()).await;
        return;
    }
    let Some(_slot) = state.try_acquire() else {
        state.counters.rejected.fetch_add(1, Ordering::Relaxed);
        state.counters.busy_refusals.fetch_add(1, Ordering::Relaxed);
        reply
            .fail(
                refuse(429, "worker is at max_active_requests"),
                TokenUsage::default(),
            )
            .await;
        return;
    };
    let query = match open_reference_encrypted(&q) {
        Ok((query, cipher)) => {
            reply.refv1 = cipher.map(|cipher| RefV1Answer {
                cipher,
                encryptor: std::sync::Mutex::new(None),
            });
            query
        }
        Err(refusal) => {
            state.counters.rejected.fetch_add(1, Ordering::Relaxed);
            reply.fail(refusal, TokenUsage::default()).await;
            return;
        }
    };
    // From one of our proxies (version 3, whatever message it uses): a request offered at
    // another coefficient than this worker's (below: it would be paid less than it asks;
    // above: its receipt would let the proxy charge the client more than it pays), or at one no
    // price can be computed with, is not served. A reference proxy forwards the coefficient its
    // own way (a worker announcing none gets 0) and is not audited.
    let offered = cocoon_market::Coefficient::try_from(q.coefficient).ok();
    if binding.payment_prices.is_some() {
        let refused = match (
            offered,
            state.coefficient_accepted(q.coefficient, Instant::now()),
        ) {
            (None, _) => Some(format!(
                "the proxy offers coefficient {}, which no price can be computed with",
                q.coefficient
            )),
            (Some(_), Err(current)) => {
                let side = if q.coefficient < i64::from(current) {
                    "below"
                } else {
                    "above"
                };
                Some(format!(
                    "the proxy offers coefficient {}, {side} this worker's {current}",
                    q.coefficient
                ))
            }
            (Some(_), Ok(())) => None,
        };
        if let Some(why) = refused {
            state.counters.rejected.fetch_add(1, Ordering::Relaxed);
            reply.fail(refuse(409, why), TokenUsage::default()).await;
            return;
        }
    }
    let request = match validate(&state, &served, &query, binding.clone()) {
        Ok((r, request_hash)) => {
            if version >= cocoon_protocol::version::SEALED_VERSION
                && let Some(client_request_id) = binding.client_request_id
            {
                reply.receipt = Some(ReceiptBasis {
                    request_hash,
                    client_request_id: client_request_id.0,
                    envelope_hash: binding.envelope_sha256,
                    coefficient: offered.map(cocoon_market::Coefficient::get),
                });
            }
            r
        }
        Err(refusal) => {
            state.counters.rejected.fetch_add(1, Ordering::Relaxed);
            reply.fail(refusal, TokenUsage::default()).await;
            return;
        }
    };

    let cancel = CancellationToken::new();
    {
        // An id is one request: one in flight, or one still held by the audit, is not taken
        // again (a proxy could otherwise pay two requests once).
        let used = {
            let mut in_flight = lock(&state.in_flight);
            let used = in_flight.contains_key(&request_id)
                || (binding.payment_prices.is_some()
                    && lock(&state.payments).holds(RequestId(request_id.0)));
            if !used {
                in_flight.insert(request_id, cancel.clone());
            }
            used
        };
        if used {
            state.counters.rejected.fetch_add(1, Ordering::Relaxed);
            reply
                .fail(
                    refuse(409, "this request id is already in use"),
                    TokenUsage::default(),
                )
                .await;
            return;
        }
    }
    if binding.payment_prices.is_some() {
        // Before any answer leaves: the payment for it may come back at once.
        lock(&state.payments).open(
            RequestId(request_id.0),
            Bound {
                tokens: 0,
                basis: Basis::Reserved,
            },
            Instant::now(),
        );
    }
    let outcome = answer(&served, &mut reply, request, &cancel).await;
    lock(&state.in_flight).remove(&request_id);
    if let Some(prices) = binding.payment_prices {
        expect_payment(
            &state,
            &conn,
            &binding,
            request_id,
            q.coefficient,
            prices,
            &outcome,
        );
    }
    let c = &state.counters;
    match outcome {
        Outcome::Done { usage, upstream } => {
            c.succeeded.fetch_add(1, Ordering::Relaxed);
            // What this worker added: its whole time on the request less the engine's.
            c.overhead
                .observe(started.elapsed().saturating_sub(upstream));
            c.prompt_tokens
                .fetch_add(usage.prompt_tokens, Ordering::Relaxed);
            c.completion_tokens
                .fetch_add(usage.completion_tokens, Ordering::Relaxed);
        }
        Outcome::Failed => {
            c.failed.fetch_add(1, Ordering::Relaxed);
        }
        Outcome::Cancelled(usage) => {
            // Reported to the proxy, which bills them like any other tokens.
            c.cancelled.fetch_add(1, Ordering::Relaxed);
            c.prompt_tokens
                .fetch_add(usage.prompt_tokens, Ordering::Relaxed);
            c.completion_tokens
                .fetch_add(usage.completion_tokens, Ordering::Relaxed);
        }
        Outcome::Lost => {
            c.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Holds what the proxy pays for the request to this worker's own account: its usage at the
/// coefficient the proxy offered, at `prices` (nothing for a request that failed).
fn expect_payment(
    state: &WorkerState,
    conn: &Connection,
    binding: &Binding,
    request_id: Int256,
    coefficient: i64,
    prices: cocoon_market::PricingParams,
    outcome: &Outcome,
) {
    let usage = match outcome {
        Outcome::Done { usage, .. } | Outcome::Cancelled(usage) => Some(*usage),
        Outcome::Failed | Outcome::Lost => None,
    };
    let tokens = usage
        .and_then(|u| {
            let counts = cocoon_market::TokenCounts::try_from(tokens_used(u)).ok()?;
            let counts = payable(binding, counts);
            let coefficient = cocoon_market::Coefficient::try_from(coefficient).ok()?;
            prices.charge(&counts, coefficient).ok()
        })
        .map_or(0, |charge| charge.adjusted_total());
    let now = Instant::now();
    if let (Outcome::Done { .. }, Some(proxy)) = (outcome, binding.proxy.as_deref()) {
        state.note_served(proxy, tokens, now);
    }
    let verdict = lock(&state.payments).end(
        RequestId(request_id.0),
        Bound {
            tokens,
            basis: Basis::Usage,
        },
        now,
    );
    if let Err(found) = verdict {
        state.note_underpaid(binding.proxy.as_deref(), conn, &found);
    }
}

/// The most of `counts` a proxy pays for, by the same bounds it applies: what the request
/// could have used (the token limit it told, the body's bytes; for a transcription, its audio
/// units). Usage beyond them is this worker's own excess, not an underpayment.
fn payable(binding: &Binding, counts: cocoon_market::TokenCounts) -> cocoon_market::TokenCounts {
    let limit = binding.token_limit.map(|l| u64::try_from(l).unwrap_or(0));
    let body = binding.body_bytes.unwrap_or(u64::MAX);
    match (binding.audio, limit) {
        (true, Some(units)) => counts.within_audio(units),
        (_, limit) => counts.within(limit.unwrap_or(u64::MAX), body),
    }
}

/// Why an action's message could not be delivered.
enum Undeliverable {
    /// The connection is gone.
    Lost,
    /// The answer cannot be encoded; the proxy is to be told this (`None`: it was told).
    Broken(Option<Refusal>),
}

impl Undeliverable {
    fn event(self) -> Event {
        match self {
            Self::Lost => Event::ConnectionLost,
            Self::Broken(refusal) => Event::OutputBroken(refusal),
        }
    }
}

/// Runs the engine on `job` and carries out the [`RequestMachine`]'s actions until it is done:
/// the machine decides, this loop only waits (on the engine, the cancel, the connection and
/// the machine's deadline) and sends.
async fn answer(
    served: &Served,
    reply: &mut Reply<'_>,
    job: Job,
    cancel: &CancellationToken,
) -> Outcome {
    let now = || tokio::time::Instant::now().into_std();
    let rules = Rules {
        stop_deadline: STOP_DEADLINE,
    };
    let mut machine = RequestMachine::start(rules, now());
    let mut call: Option<EngineFuture<'_, Result<EngineResponse, EngineError>>> = Some(match job {
        Job::Infer(request) => served.engine.run(request),
        Job::Transcribe(request) => served.engine.transcribe(request),
    });
    let mut body: Option<mpsc::Receiver<BodyEvent>> = None;
    let mut stop: Option<StopHandle> = None;
    let (mut cancel_seen, mut lost_seen) = (false, false);
    let conn = reply.conn;
    loop {
        let deadline = machine.next_deadline();
        let event = tokio::select! {
            biased;
            () = cancel.cancelled(), if !cancel_seen => {
                cancel_seen = true;
                Event::Cancel
            }
            () = conn.closed(), if !lost_seen => {
                lost_seen = true;
                Event::ConnectionLost
            }
            started = until_ready(&mut call), if machine.wants_start() => {
                call = None;
                Event::EngineStarted(started.map(|response| {
                    body = Some(response.body);
                    stop = Some(response.stop);
                    Head {
                        status: response.status,
                        headers: response.headers,
                    }
                }))
            }
            event = next_batch(&mut body), if body.is_some() => {
                if matches!(&event, Event::Body { end: Some(_), .. }) {
                    body = None;
                }
                event
            }
            () = until_deadline(deadline) => Event::Tick,
        };
        let mut next = Some(event);
        while let Some(event) = next.take() {
            let was_done = machine.is_done();
            let actions = machine.handle(event, now());
            if was_done {
                break;
            }
            for action in actions {
                let delivered = match action {
                    Action::SendHead { head, data, usage } => {
                        reply.send_head(head, data, usage).await
                    }
                    Action::SendPart { data, usage } => reply.send_part(data, usage).await,
                    Action::Fail { refusal, usage } => {
                        reply.fail(refusal, usage).await;
                        Ok(())
                    }
                    Action::StopEngine => {
                        if let Some(stop) = &stop {
                            stop.stop();
                        }
                        Ok(())
                    }
                    // Dropping the engine's call or answer abandons what is left of it.
                    Action::Done(outcome) => return outcome,
                };
                if let Err(undeliverable) = delivered {
                    if machine.is_done() {
                        // The message that ended the answer did not go out.
                        return match undeliverable {
                            Undeliverable::Lost => Outcome::Lost,
                            Undeliverable::Broken(refusal) => {
                                if let Some(refusal) = refusal {
                                    reply.fail(refusal, TokenUsage::default()).await;
                                }
                                Outcome::Failed
                            }
                        };
                    }
                    next = Some(undeliverable.event());
                    break;
                }
            }
        }
        if machine.is_done() {
            // Only reached when a machine ends without a `Done` action, which it never does.
            return Outcome::Failed;
        }
    }
}

/// The engine call's result, once it is ready; never, without a call.
async fn until_ready<F: std::future::Future + Unpin>(call: &mut Option<F>) -> F::Output {
    match call {
        Some(call) => call.await,
        None => std::future::pending().await,
    }
}

/// The next batch of the engine's body (see [`next_batch_of`]); never, without a body.
async fn next_batch(body: &mut Option<mpsc::Receiver<BodyEvent>>) -> Event {
    match body {
        Some(rx) => {
            let first = rx.recv().await;
            next_batch_of(first, rx)
        }
        None => std::future::pending().await,
    }
}

/// Resolves at `deadline`; never, without one.
async fn until_deadline(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

/// Largest batch of body bytes sent as one part.
const MAX_BATCH: usize = 256 * 1024;

/// The body event just received, with every data event already queued behind it, as one batch:
/// a burst from the engine travels as one packet instead of many; never waits for more.
fn next_batch_of(first: Option<BodyEvent>, rx: &mut mpsc::Receiver<BodyEvent>) -> Event {
    let ended = |end| Event::Body {
        data: Bytes::new(),
        end: Some(end),
    };
    let first = match first {
        Some(BodyEvent::Data(d)) => d,
        Some(BodyEvent::End(u)) => return ended(BodyEnd::End(u)),
        Some(BodyEvent::Failed { error, usage }) => return ended(BodyEnd::Failed(error, usage)),
        Some(BodyEvent::Stopped(usage)) => return ended(BodyEnd::Stopped(usage)),
        None => return ended(BodyEnd::Closed),
    };
    let mut joined: Option<bytes::BytesMut> = None;
    let mut end = None;
    while joined.as_ref().map_or(first.len(), |j| j.len()) < MAX_BATCH {
        match rx.try_recv() {
            Ok(BodyEvent::Data(d)) => joined
                .get_or_insert_with(|| bytes::BytesMut::from(&first[..]))
                .extend_from_slice(&d),
            Ok(BodyEvent::End(u)) => {
                end = Some(BodyEnd::End(u));
                break;
            }
            Ok(BodyEvent::Failed { error, usage }) => {
                end = Some(BodyEnd::Failed(error, usage));
                break;
            }
            Ok(BodyEvent::Stopped(usage)) => {
                end = Some(BodyEnd::Stopped(usage));
                break;
            }
            Err(_) => break,
        }
    }
    Event::Body {
        data: joined.map_or(first, bytes::BytesMut::freeze),
        end,
    }
}

fn final_info(version: i32, usage: TokenUsage, start: f64, debug: bool) -> proxy::QueryFinalInfo {
    let timings = version >= 2;
    let end = cocoon_net::unix_time();
    proxy::QueryFinalInfo {
        flags: 0,
        tokens_used: tokens_used(usage),
        worker_debug: debug.then(|| format!("worker end {end:.6}")),
        worker_start_time: timings.then_some(start),
        worker_end_time: timings.then_some(end),
    }
}

/// Converts engine usage to the protocol's token categories.
pub(crate) fn tokens_used(u: TokenUsage) -> TokensUsed {
    let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    TokensUsed {
        prompt_tokens_used: i(u.prompt_tokens),
        cached_tokens_used: i(u.cached_tokens),
        completion_tokens_used: i(u.completion_tokens),
        reasoning_tokens_used: i(u.reasoning_tokens),
        total_tokens_used: i(u.total()),
    }
}

/// What a receipt names of its request, known before the answer.
#[derive(Debug, Clone, Copy)]
struct ReceiptBasis {
    /// SHA-256 of the request body.
    request_hash: [u8; 32],
    /// The client's request id.
    client_request_id: [u8; 32],
    /// SHA-256 of the sealed envelope, for sealed requests.
    envelope_hash: Option<[u8; 32]>,
    /// The coefficient the proxy offered and the worker accepted: what it is paid at, and
    /// what the client may be charged at.
    coefficient: Option<u32>,
}

/// Where and how a request's answers and errors go.
struct Reply<'a> {
    conn: &'a Connection,
    version: i32,
    request_id: Int256,
    start: f64,
    debug: bool,
    /// What the receipt binds, when the proxy takes receipts (version 3).
    receipt: Option<ReceiptBasis>,
    identity: &'a Arc<LocalIdentity>,
    /// The model announced, named in receipts.
    model: String,
    /// The weights served, named in receipts (zeros: unpinned, local mode only).
    weights: [u8; 32],
    /// The answer stream's sealer, for a sealed request (version 3).
    sealer: Option<crate::sealed::AnswerSealer>,
    /// The answer's encryption, for a request in the reference's encryption.
    refv1: Option<RefV1Answer>,
    /// SHA-256 of the answer's body bytes so far, as the engine gave them (named in the
    /// receipt).
    answer_hash: Sha256,
}

/// The reference-encryption state of one answer: the cipher, then (once the head tells the
/// framing) the streaming encryptor.
struct RefV1Answer {
    cipher: AnswerCipher,
    encryptor: std::sync::Mutex<Option<AnswerEncryptor>>,
}

impl RefV1Answer {
    /// Picks the framing from the answer's headers; the body's length changes, so any
    /// `Content-Length` goes.
    fn start(&self, headers: &mut Vec<(String, String)>) {
        let content_type = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.as_str());
        let framing = AnswerFraming::from_content_type(content_type);
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case("content-length"));
        *lock(&self.encryptor) = Some(AnswerEncryptor::new(self.cipher.clone(), framing));
    }
}

impl Reply<'_> {
    /// Final info for `usage`, with times when the version carries them.
    fn final_info(&self, usage: TokenUsage) -> proxy::QueryFinalInfo {
        final_info(self.version, usage, self.start, self.debug)
    }

    /// Signs and sends the receipt for an answer that ends with usage (complete, or ended by
    /// an error or a cancel after some of it), before its last message, so the client holds it
    /// when the answer ends. A node without verifiable evidence sends none.
    async fn send_receipt(&self, usage: TokenUsage, answer_hash: Sha256) {
        let Some(basis) = self.receipt else {
            return;
        };
        let model = self.model.clone();
        let claims = ReceiptClaims {
            request_hash: basis.request_hash,
            client_request_id: basis.client_request_id,
            envelope_hash: basis.envelope_hash,
            answer_hash: answer_hash.finalize().into(),
            model_hash: self.weights,
            model,
            prompt_tokens: usage.prompt_tokens,
            cached_tokens: usage.cached_tokens,
            completion_tokens: usage.completion_tokens,
            reasoning_tokens: usage.reasoning_tokens,
            worker_image_hash: [0; 32],
            issued_at: self.identity.clock().now_unix(),
            coefficient: basis.coefficient,
        };
        let receipt = match self.identity.sign_receipt(claims) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("no receipt: {e}");
                return;
            }
        };
        let msg = ext::QueryReceipt {
            request_id: self.request_id,
            receipt: Bytes::from(receipt.to_bytes()),
        };
        let _ = self
            .conn
            .send_packet(Bytes::from(msg.to_boxed_bytes()))
            .await;
    }

    /// Answer body bytes encrypted for a reference-encrypted request (unchanged otherwise);
    /// `last` flushes what the encryptor still holds.
    fn encrypt_for_reference(&self, data: Bytes, last: bool) -> Result<Bytes, Refusal> {
        let Some(refv1) = &self.refv1 else {
            return Ok(data);
        };
        let mut guard = lock(&refv1.encryptor);
        let Some(encryptor) = guard.as_mut() else {
            return Ok(data);
        };
        let mut out = encryptor
            .push(&data, &mut SystemRng)
            .map_err(|e| refuse(502, format!("cannot encrypt the answer: {e}")))?;
        if last {
            out.extend(
                encryptor
                    .finish(&mut SystemRng)
                    .map_err(|e| refuse(502, format!("cannot encrypt the answer: {e}")))?,
            );
        }
        Ok(Bytes::from(out))
    }

    /// Answer bytes as they go to the proxy: sealed as the next chunk of a sealed request's
    /// stream, as they are otherwise. When sealing fails the proxy is told (in the clear: what
    /// cannot be sealed cannot be said sealed either) and the answer is broken.
    async fn outgoing(&self, plaintext: Bytes, is_final: bool) -> Result<Bytes, Undeliverable> {
        let Some(sealer) = &self.sealer else {
            return Ok(plaintext);
        };
        match sealer.seal(&plaintext, is_final) {
            Ok(chunk) => Ok(chunk),
            Err(e) => {
                tracing::error!("cannot seal an answer chunk: {e}");
                let msg = proxy::QueryAnswerErrorEx {
                    request_id: self.request_id,
                    error_code: 500,
                    error: "the worker cannot seal its answer".into(),
                    flags: 0,
                    final_info: Some(self.final_info(TokenUsage::default())),
                };
                let _ = self
                    .conn
                    .send_packet(Bytes::from(msg.to_boxed_bytes()))
                    .await;
                Err(Undeliverable::Broken(None))
            }
        }
    }

    /// The answer's body bytes as they leave: counted in the receipt's answer hash, encrypted
    /// for the reference's encryption; with `usage` the answer ends, and its receipt goes
    /// first.
    async fn body_bytes(
        &mut self,
        data: Bytes,
        usage: Option<TokenUsage>,
    ) -> Result<Bytes, Undeliverable> {
        self.answer_hash.update(&data);
        let data = self
            .encrypt_for_reference(data, usage.is_some())
            .map_err(|refusal| Undeliverable::Broken(Some(refusal)))?;
        if let Some(usage) = usage {
            self.send_receipt(usage, self.answer_hash.clone()).await;
        }
        Ok(data)
    }

    /// `proxy.queryAnswerEx`: the response head and the first body bytes.
    async fn send_head(
        &mut self,
        head: Head,
        data: Bytes,
        usage: Option<TokenUsage>,
    ) -> Result<(), Undeliverable> {
        let mut headers = head.headers;
        if let Some(refv1) = &self.refv1 {
            refv1.start(&mut headers);
        }
        let payload = self.body_bytes(data, usage).await?;
        let head = http::Response {
            http_version: "HTTP/1.1".into(),
            status_code: i32::from(head.status),
            reason: reason_phrase(head.status).into(),
            headers: headers
                .into_iter()
                .map(|(name, value)| http::Header { name, value })
                .collect(),
            payload,
        };
        let answer = self
            .outgoing(Bytes::from(head.to_boxed_bytes()), usage.is_some())
            .await?;
        let first = proxy::QueryAnswerEx {
            request_id: self.request_id,
            answer,
            flags: 0,
            final_info: usage.map(|u| self.final_info(u)),
        };
        self.conn
            .send_packet(Bytes::from(first.to_boxed_bytes()))
            .await
            .map_err(|_| Undeliverable::Lost)
    }

    /// `proxy.queryAnswerPartEx`; the last one carries the usage.
    async fn send_part(
        &mut self,
        data: Bytes,
        usage: Option<TokenUsage>,
    ) -> Result<(), Undeliverable> {
        let data = self.body_bytes(data, usage).await?;
        let data = self.outgoing(data, usage.is_some()).await?;
        let part = proxy::QueryAnswerPartEx {
            request_id: self.request_id,
            answer: data,
            flags: 0,
            final_info: usage.map(|u| self.final_info(u)),
        };
        self.conn
            .send_packet(Bytes::from(part.to_boxed_bytes()))
            .await
            .map_err(|_| Undeliverable::Lost)
    }

    /// Ends the request with `proxy.queryAnswerErrorEx`, reporting the tokens used so far.
    async fn fail(&self, refusal: Refusal, usage: TokenUsage) {
        tracing::debug!(code = refusal.code, "request refused: {}", refusal.message);
        // An end that bills usage (a cancel acknowledged, an engine failing part way) is
        // signed like a complete answer, over the answer bytes sent so far: the client prices
        // its charge at the coefficient the receipt signs, whatever way the request ended.
        if usage != TokenUsage::default() {
            self.send_receipt(usage, self.answer_hash.clone()).await;
        }
        // The field at fault, where one is, travels with the message (OpenAI's `param`) to
        // proxies of version 3; older ones get the message alone, as the reference sends it.
        let text = cocoon_protocol::refusal::Refusal {
            message: refusal.message,
            param: refusal
                .param
                .filter(|_| self.version >= cocoon_protocol::version::SEALED_VERSION),
        }
        .encode();
        let error = match &self.sealer {
            None => text,
            Some(sealer) => sealer.seal_error(&text).unwrap_or_else(|e| {
                tracing::error!("cannot seal an error message: {e}");
                "the worker failed and cannot seal why".into()
            }),
        };
        let msg = proxy::QueryAnswerErrorEx {
            request_id: self.request_id,
            error_code: refusal.code,
            error,
            flags: 0,
            final_info: Some(self.final_info(usage)),
        };
        let _ = self
            .conn
            .send_packet(Bytes::from(msg.to_boxed_bytes()))
            .await;
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use cocoon_market::TokenCounts;

    use super::*;

    fn counts(prompt: u64, completion: u64) -> TokenCounts {
        TokenCounts {
            prompt,
            cached: 0,
            completion,
            reasoning: 0,
        }
    }

    /// A hostile client makes this worker exceed what the proxy pays for (a prompt list that
    /// an engine expands past the token limit, a prompt counting more tokens than its body has
    /// bytes): the proxy pays at its bounds, and the worker expects no more, so that the honest
    /// proxy is not taken for an underpaying one and cut off.
    #[test]
    fn the_pay_expected_is_bounded_as_the_proxy_bounds_it() {
        let binding = |token_limit, audio| Binding {
            token_limit,
            audio,
            body_bytes: Some(100),
            ..Binding::default()
        };
        // (name, binding, usage, expected)
        let cases = [
            (
                "within",
                binding(Some(50), false),
                counts(40, 30),
                counts(40, 30),
            ),
            (
                "past the limit",
                binding(Some(50), false),
                counts(40, 500),
                counts(40, 50),
            ),
            (
                "past the body",
                binding(Some(50), false),
                counts(400, 30),
                counts(100, 30),
            ),
            (
                "no limit told",
                binding(None, false),
                counts(400, 500),
                counts(100, 500),
            ),
            (
                "audio",
                binding(Some(60), true),
                counts(90, 5),
                counts(60, 0),
            ),
        ];
        for (name, binding, usage, expected) in cases {
            assert_eq!(payable(&binding, usage), expected, "{name}");
        }
    }
}

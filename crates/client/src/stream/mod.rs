//! The answer stream the caller reads: a thin tokio driver around [`machine::AnswerMachine`],
//! which holds the rules. The driver waits on the request's queue until the machine's deadline,
//! feeds it what arrives, and carries out its actions (bytes to the caller, a cancel to the
//! proxy, the receipt check, the counters).

pub(crate) mod machine;
pub(crate) mod receipt;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use cocoon_protocol::messages::ext;
use cocoon_protocol::tl::{Int256, TlConstructor};

use crate::api::{ClientCounters, CostedUsage, HopTimes};
use crate::config::ClientError;
use crate::link::{ProxyEvent, Session, lock};
pub use receipt::AnswerReceipt;

use machine::{Action, AnswerMachine, Ending, Event};

/// Most bytes joined into one chunk from parts already queued.
const GATHER_BYTES: usize = 256 * 1024;

/// Removes a request's route when its stream goes away.
pub(crate) struct RouteGuard {
    pub(crate) session: Arc<Session>,
    pub(crate) request_id: Int256,
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        lock(&self.session.routes).remove(&self.request_id);
    }
}

/// What the driver needs besides the machine.
pub(crate) struct Wiring {
    pub(crate) rx: crate::route::RouteReceiver,
    pub(crate) guard: RouteGuard,
    pub(crate) counters: Arc<ClientCounters>,
    /// The policy and evidence cache that workers' receipts are checked with.
    pub(crate) workers: Arc<cocoon_attest::RaTlsVerifier>,
    /// The time receipts are judged at.
    pub(crate) clock: cocoon_node::AttestationClock,
    /// A sealed request's candidates, forgotten when it fails before its answer.
    pub(crate) sealing: Option<(Arc<crate::sealed::Sealing>, String)>,
    /// The largest answer [`AnswerStream::collect_body`] gathers (`max_answer_bytes`).
    pub(crate) max_answer_bytes: usize,
    /// Where the most the request may cost is held against what the proxy charges for it;
    /// `None` where the proxy's charges are not audited (before protocol version 3).
    pub(crate) charges: Option<Arc<crate::settle::Charges>>,
}

/// An answer arriving from the network.
pub struct AnswerStream {
    /// HTTP status the engine answered with.
    pub status: u16,
    /// Response headers from the engine.
    pub headers: Vec<(String, String)>,
    /// Hop times, complete once the stream has ended.
    pub times: HopTimes,
    /// Whether the request went sealed (proxy-blind) rather than readable by the proxy.
    pub sealed: bool,
    machine: AnswerMachine,
    wiring: Wiring,
    /// Bytes for the caller, in order.
    ready: VecDeque<Bytes>,
    /// How the stream ended, once it has (taken when reported).
    end: Option<Result<(), ClientError>>,
    /// Whether the head arrived.
    has_head: bool,
    receipt: Option<AnswerReceipt>,
    /// The receipt relayed, with what it signs, once verified on arrival.
    signed: Option<(Bytes, cocoon_attest::ReceiptClaims)>,
}

impl std::fmt::Debug for AnswerStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerStream")
            .field("status", &self.status)
            .field("done", &self.machine.is_done())
            .finish_non_exhaustive()
    }
}

impl Drop for AnswerStream {
    fn drop(&mut self) {
        if !self.machine.is_done() {
            let actions = self.machine.handle(Event::CallerGone, Instant::now());
            self.apply(actions);
        }
    }
}

impl AnswerStream {
    /// Waits for the answer head of a request just sent: `Err` when it ended before one.
    pub(crate) async fn open(
        machine: AnswerMachine,
        wiring: Wiring,
        sealed: bool,
        times: HopTimes,
    ) -> Result<Self, ClientError> {
        let mut stream = Self {
            status: 0,
            headers: Vec::new(),
            times,
            sealed,
            machine,
            wiring,
            ready: VecDeque::new(),
            end: None,
            has_head: false,
            receipt: None,
            signed: None,
        };
        while !stream.has_head {
            if stream.machine.is_done() {
                return Err(match stream.end.take() {
                    Some(Err(e)) => e,
                    _ => ClientError::Interrupted("the request ended before its answer".into()),
                });
            }
            stream.step().await;
        }
        Ok(stream)
    }

    /// Waits for one event (or the deadline) and feeds it, with the events already queued
    /// behind it, up to [`GATHER_BYTES`] of body.
    async fn step(&mut self) {
        let event = match self.machine.next_deadline() {
            None => return,
            Some(deadline) => {
                match tokio::time::timeout_at(deadline.into(), self.wiring.rx.recv()).await {
                    Ok(Some(e)) => Event::Proxy(e),
                    Ok(None) => Event::Proxy(ProxyEvent::Lost),
                    Err(_) => Event::Tick,
                }
            }
        };
        self.feed(event);
        while self.end.is_none() && self.ready.iter().map(Bytes::len).sum::<usize>() < GATHER_BYTES
        {
            let Some(e) = self.wiring.rx.try_recv() else {
                break;
            };
            self.feed(Event::Proxy(e));
        }
    }

    /// Feeds one event; a receipt is verified as it arrives, and the machine told what it
    /// signs when it verifies (only then may it bound the charge).
    fn feed(&mut self, event: Event) {
        let receipt = match &event {
            Event::Proxy(ProxyEvent::Receipt(r)) => Some(r.clone()),
            _ => None,
        };
        let actions = self.machine.handle(event, Instant::now());
        self.apply(actions);
        let Some(encoded) = receipt else {
            return;
        };
        self.signed = None;
        match receipt::verify_on_arrival(&encoded, &self.wiring.workers, self.machine.binding()) {
            Ok(claims) => {
                self.signed = Some((encoded, claims.clone()));
                let actions = self
                    .machine
                    .handle(Event::Signed(Box::new(claims)), Instant::now());
                self.apply(actions);
            }
            Err(e) => tracing::debug!("the relayed receipt bounds nothing: {e}"),
        }
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Head { status, headers } => {
                    self.status = status;
                    self.headers = headers;
                    self.has_head = true;
                }
                Action::Emit(bytes) => self.ready.push_back(bytes),
                Action::CancelAtProxy => self.cancel_at_proxy(),
                Action::ForgetSealedCandidates => {
                    if let Some((sealing, model)) = &self.wiring.sealing {
                        sealing.invalidate(model);
                    }
                }
                Action::CheckReceipt(check) => self.check_receipt(check),
                Action::ExpectCharge(bound) => {
                    if let Some(charges) = &self.wiring.charges {
                        charges.expect(self.wiring.guard.request_id.0, bound);
                    }
                }
                Action::Record(ending) => self.record(ending),
                Action::Finish(result) => {
                    self.times.client_end = cocoon_net::unix_time();
                    self.machine.reported_times(&mut self.times);
                    self.end = Some(result);
                }
            }
        }
    }

    fn cancel_at_proxy(&self) {
        let session = &self.wiring.guard.session;
        if session.version < cocoon_protocol::version::SEALED_VERSION {
            return;
        }
        let conn = session.conn.clone();
        let msg = ext::CancelQuery {
            request_id: self.wiring.guard.request_id,
        };
        // From a drop, outside any task's await: the send runs on its own.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = conn.send_packet(Bytes::from(msg.to_boxed_bytes())).await;
            });
        }
    }

    fn check_receipt(&mut self, check: machine::ReceiptCheck) {
        let counters = &self.wiring.counters;
        let verified = check.verify(
            &self.wiring.workers,
            self.wiring.clock.now_unix(),
            self.signed.as_ref(),
        );
        match &verified {
            Ok(()) => {
                counters.receipts_verified.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                counters.receipts_refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    request_id = %hex::encode(check.binding.client_request_id),
                    "refusing the worker's receipt: {e}"
                );
            }
        }
        self.receipt = Some(AnswerReceipt {
            encoded: check.encoded,
            verified,
            request_id: check.binding.client_request_id,
            envelope_sha256: check.binding.envelope_hash,
        });
    }

    fn record(&self, ending: Ending) {
        let counters = &self.wiring.counters;
        match ending {
            Ending::Succeeded { usage, overhead } => {
                if let Some(overhead) = overhead {
                    counters.overhead.observe(overhead);
                }
                counters.succeeded.fetch_add(1, Ordering::Relaxed);
                counters.tokens.fetch_add(
                    u64::try_from(usage.total_tokens).unwrap_or(0),
                    Ordering::Relaxed,
                );
                counters.spent_nanoton.fetch_add(
                    u64::try_from(usage.total_cost).unwrap_or(0),
                    Ordering::Relaxed,
                );
            }
            Ending::Failed => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
            }
            Ending::Cancelled => {
                counters.cancelled.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Whether the whole answer has arrived.
    pub fn is_done(&self) -> bool {
        self.machine.is_done()
    }

    /// The next body chunk; `Ok(None)` once the answer is complete (usage is then final).
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        loop {
            match self.ready.len() {
                0 => {}
                1 => return Ok(self.ready.pop_front()),
                _ => {
                    let mut joined = BytesMut::new();
                    for part in self.ready.drain(..) {
                        joined.extend_from_slice(&part);
                    }
                    return Ok(Some(joined.freeze()));
                }
            }
            if self.machine.is_done() {
                return match self.end.take() {
                    Some(Err(e)) => Err(e),
                    Some(Ok(())) | None => Ok(None),
                };
            }
            self.step().await;
        }
    }

    /// The worker's receipt, once the answer is complete and when the worker sent one
    /// (version-3 workers and proxies), with this client's check of it.
    pub fn receipt(&self) -> Option<AnswerReceipt> {
        self.receipt.clone()
    }

    /// Reads the rest of the body into one buffer, of at most the client's `max_answer_bytes`:
    /// past it the request is stopped at the proxy and [`ClientError::AnswerTooLarge`] answered
    /// (a peer that never ends an answer cannot fill this client's memory).
    pub async fn collect_body(&mut self) -> Result<Bytes, ClientError> {
        let limit = self.wiring.max_answer_bytes;
        let mut out = BytesMut::new();
        while let Some(chunk) = self.next_chunk().await? {
            if out.len().saturating_add(chunk.len()) > limit {
                self.ready.clear();
                let actions = self
                    .machine
                    .handle(Event::TooLarge { limit }, Instant::now());
                self.apply(actions);
                return Err(self
                    .end
                    .take()
                    .and_then(Result::err)
                    .unwrap_or(ClientError::AnswerTooLarge { limit }));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }

    /// Token usage and cost as far as known (final once the stream is done).
    pub fn usage(&self) -> CostedUsage {
        self.machine.usage()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use super::*;
    use crate::stream::machine::{Ask, ReceiptBinding};

    /// An answer stream over an in-memory proxy session, and the sender of its route (what
    /// the session's reader would push). The other end of the session is returned to keep it up.
    async fn stream_with_route(
        timeout: Duration,
    ) -> (
        crate::route::RouteSender,
        impl std::future::Future<Output = Result<AnswerStream, ClientError>>,
        (
            cocoon_net::Incoming,
            (cocoon_net::Connection, cocoon_net::Incoming),
        ),
    ) {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (dial, accept) = tokio::join!(
            cocoon_net::connect(a, cocoon_net::ConnectionConfig::dialer()),
            cocoon_net::accept(b, cocoon_net::ConnectionConfig::acceptor()),
        );
        let (conn, incoming) = dial.unwrap();
        let peer = accept.unwrap();
        let keep = (incoming, peer);
        let session = Arc::new(Session {
            address: "test".into(),
            conn,
            version: cocoon_protocol::version::SEALED_VERSION,
            routes: Arc::default(),
            audit_pricing: None,
            proxy: cocoon_attest::VerifiedPeer {
                public_key: [0; 32],
                evidence_kind: cocoon_attest::EvidenceKind::Unattested,
                measurements: None,
                image_hash: None,
                claims: None,
                certificate_not_after: 0,
            },
        });
        let (tx, rx) = crate::route::route_queue(1 << 20);
        let wiring = Wiring {
            rx,
            guard: RouteGuard {
                session,
                request_id: Int256([0xA; 32]),
            },
            counters: Arc::new(ClientCounters::default()),
            workers: Arc::new(crate::stream::receipt::tests::workers()),
            clock: cocoon_node::AttestationClock::default(),
            sealing: None,
            max_answer_bytes: crate::ClientConfig::default().max_answer_bytes,
            charges: None,
        };
        let machine = AnswerMachine::new(Ask {
            started: Instant::now(),
            timeout,
            sealed: false,
            pricing: cocoon_market::PricingParams::default(),
            max_coefficient: cocoon_market::Coefficient::DEFAULT_CLIENT_MAX,
            max_charge: 0,
            binding: ReceiptBinding {
                client_request_id: [0xA; 32],
                envelope_hash: None,
                request_hash: [0xB; 32],
                weights: None,
            },
            reference: None,
        });
        (
            tx,
            AnswerStream::open(machine, wiring, false, HopTimes::default()),
            keep,
        )
    }

    /// A hostile worker (or proxy, for a request in clear) answers a non-streamed request with
    /// a body that never ends, as fast as the client takes it: collecting the answer for the
    /// caller (`Client::chat`, the HTTP API's non-streamed answers) must stop at some bound
    /// instead of holding all of it in memory until the request's deadline.
    #[tokio::test]
    async fn collecting_an_answer_that_never_ends_stops_before_it_fills_memory() {
        const PART: usize = 1 << 20;
        const SENT_AT_MOST: usize = 256 << 20;
        let (tx, open, _keep) = stream_with_route(Duration::from_secs(600)).await;
        tx.try_send(machine::tests::answer("{\"x\":\"", None))
            .unwrap();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let flood = tokio::spawn(async move {
            let part = Bytes::from(vec![b'a'; PART]);
            let mut sent = 0;
            while sent < SENT_AT_MOST {
                let event = ProxyEvent::Part {
                    answer: part.clone(),
                    final_info: None,
                };
                if tx.send(event).await.is_err() {
                    return;
                }
                sent += PART;
            }
            let _ = done_tx.send(());
            // Keep the route open (no end, no loss): the deadline is minutes away.
            std::future::pending::<()>().await;
        });
        let mut stream = open.await.unwrap();
        let all_taken = async {
            // Every byte sent was taken from the route (the queue holds at most 1 MiB), and
            // the collector is still waiting for more.
            let _ = done_rx.await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        tokio::select! {
            collected = stream.collect_body() => {
                flood.abort();
                match collected {
                    Err(ClientError::AnswerTooLarge { limit }) => {
                        assert_eq!(limit, crate::ClientConfig::default().max_answer_bytes);
                    }
                    Err(e) => panic!("the wrong refusal: {e}"),
                    Ok(body) => panic!("collected a whole body of {} bytes", body.len()),
                }
                // The request is over: nothing more is taken.
                assert!(matches!(stream.next_chunk().await, Ok(None) | Err(_)));
            }
            () = all_taken => {
                flood.abort();
                panic!(
                    "collect_body took all {SENT_AT_MOST} bytes sent and waits for more: \
                     no bound short of the request's deadline"
                );
            }
        }
    }
}

//! The rules of one answer's life at the client, as a sans-IO state machine: events in (what
//! the proxy relayed for the request, the caller going away, time), actions out (the response
//! head, body bytes for the caller, a cancel for the proxy, the receipt to check, the outcome to
//! count, the end). No sockets, no clocks: `now` comes with every event, and
//! [`AnswerMachine::next_deadline`] says when the driver must call back.
//!
//! The rules it keeps:
//! - the first message must be the answer head (`client.queryAnswerEx`); an error before it
//!   ends the request (and, for a sealed request, the sealing candidates are asked for again);
//! - the request ends exactly once — finished, failed, timed out or cancelled — and is counted
//!   once, as that;
//! - the worker's receipt is bound to the answer bytes exactly as they arrived (before the
//!   reference's encryption is opened), and checked when the answer is complete;
//! - bytes that arrived before an error reach the caller before the error;
//! - a request ended by the caller or by its deadline before its end is cancelled at the proxy.

use std::time::{Duration, Instant};

use bytes::Bytes;
use cocoon_market::{Coefficient, TokenCounts};
use cocoon_protocol::messages::{client, ext};
use sha2::{Digest as _, Sha256};

use crate::api::{CostedUsage, HopTimes};
use crate::config::ClientError;
use crate::link::ProxyEvent;
use cocoon_market::audit::{Basis, Bound};

/// What the machine must know of the request it answers.
#[derive(Debug, Clone)]
pub(crate) struct Ask {
    /// When this client took the request.
    pub(crate) started: Instant,
    /// The time the whole request may take (its deadline is `started + timeout`).
    pub(crate) timeout: Duration,
    /// Whether the request went sealed (proxy-blind).
    pub(crate) sealed: bool,
    /// The network's prices: for an answer whose cost the proxy did not report, and for the
    /// most the request may be charged.
    pub(crate) pricing: cocoon_market::PricingParams,
    /// The highest worker coefficient the request accepts.
    pub(crate) max_coefficient: Coefficient,
    /// The most the request can cost, in adjusted tokens, as the proxy reserves it: its
    /// charge bound when it ends without its usage.
    pub(crate) max_charge: u64,
    /// What the worker's receipt must name.
    pub(crate) binding: ReceiptBinding,
    /// For a request in the reference's encryption: what opens its answer.
    pub(crate) reference: Option<cocoon_refv1::AnswerCipher>,
}

/// What a receipt must name of the request, known when it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReceiptBinding {
    /// This client's id of the request.
    pub(crate) client_request_id: [u8; 32],
    /// SHA-256 of the sealed envelope sent; `None` for a request in clear.
    pub(crate) envelope_hash: Option<[u8; 32]>,
    /// SHA-256 of the request body sent.
    pub(crate) request_hash: [u8; 32],
    /// The weights pinned for the model, which the receipt must name.
    pub(crate) weights: Option<[u8; 32]>,
}

/// A receipt to check against the answer it came with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReceiptCheck {
    /// The receipt bytes as relayed.
    pub(crate) encoded: Bytes,
    /// What it must name of the request.
    pub(crate) binding: ReceiptBinding,
    /// SHA-256 of the answer body as the worker sent it.
    pub(crate) answer_hash: [u8; 32],
    /// The usage the proxy reported with the last part, which the caller is shown and billed:
    /// no count of it may exceed what the receipt signs.
    pub(crate) usage: cocoon_protocol::messages::TokensUsed,
}

/// An input of the machine.
#[derive(Debug)]
pub(crate) enum Event {
    /// A message the proxy relayed for the request ([`ProxyEvent::Lost`] when the connection or
    /// the request's queue is gone).
    Proxy(ProxyEvent),
    /// The caller stopped reading (the stream was dropped).
    CallerGone,
    /// The answer being collected whole grew past the caller's bound (`limit` bytes): it is
    /// given up and stopped at the proxy.
    TooLarge {
        /// The bound, in bytes.
        limit: usize,
    },
    /// Time passed ([`AnswerMachine::next_deadline`] was reached).
    Tick,
    /// The receipt last relayed ([`ProxyEvent::Receipt`]) verified under the client's policy
    /// and names this request: what it signs may bound the charge. A receipt that does not
    /// verify is never followed by this, and bounds nothing.
    Signed(Box<cocoon_attest::ReceiptClaims>),
}

/// How a request ended, for the client's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The whole answer arrived: its usage, and the time this client added to it when the
    /// proxy reported its own.
    Succeeded {
        usage: CostedUsage,
        overhead: Option<Duration>,
    },
    /// The proxy, the worker, the connection or the deadline ended it.
    Failed,
    /// The caller went away first.
    Cancelled,
}

/// An output of the machine, carried out by the driver in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// The response head: the engine's status and headers.
    Head {
        status: u16,
        headers: Vec<(String, String)>,
    },
    /// Body bytes for the caller (opened, when the answer was in the reference's encryption).
    Emit(Bytes),
    /// Tell the proxy to stop the request (`ext.cancelQuery`).
    CancelAtProxy,
    /// The sealed request failed before its answer: the worker candidates may be gone.
    ForgetSealedCandidates,
    /// Check the worker's receipt.
    CheckReceipt(ReceiptCheck),
    /// The request is over at this client: the proxy may charge it at most this much.
    ExpectCharge(Bound),
    /// Count the request's end.
    Record(Ending),
    /// The stream is over: `Ok` when the answer is complete.
    Finish(Result<(), ClientError>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Sent; waiting for the answer head.
    AwaitingHead,
    /// The head arrived; parts follow.
    Streaming,
    /// Over.
    Done,
}

/// One answer's rules.
pub(crate) struct AnswerMachine {
    ask: Ask,
    phase: Phase,
    cost: Option<ext::QueryCost>,
    payment_tokens: Option<i64>,
    receipt: Option<Bytes>,
    /// What the relayed receipt signs, once the driver verified it.
    signed: Option<cocoon_attest::ReceiptClaims>,
    final_info: Option<client::QueryFinalInfo>,
    /// SHA-256 over the answer body as the worker sent it, before any opening here.
    answer_hash: Sha256,
    /// Made once the head tells the framing.
    decryptor: Option<cocoon_refv1::AnswerDecryptor>,
}

impl std::fmt::Debug for AnswerMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerMachine")
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl AnswerMachine {
    /// A request just sent to the proxy.
    pub(crate) fn new(ask: Ask) -> Self {
        Self {
            ask,
            phase: Phase::AwaitingHead,
            cost: None,
            payment_tokens: None,
            receipt: None,
            signed: None,
            final_info: None,
            answer_hash: Sha256::new(),
            decryptor: None,
        }
    }

    /// What a receipt must name of the request.
    pub(crate) fn binding(&self) -> &ReceiptBinding {
        &self.ask.binding
    }

    /// Whether the request has ended.
    pub(crate) fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// When the driver must send [`Event::Tick`] at the latest (`None` once over).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        (self.phase != Phase::Done).then(|| self.ask.started + self.ask.timeout)
    }

    /// Feeds one event; the actions are to be carried out in order.
    pub(crate) fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        if self.phase == Phase::Done {
            return Vec::new();
        }
        match event {
            Event::Tick if now >= self.ask.started + self.ask.timeout => {
                let mut out = vec![Action::CancelAtProxy];
                out.extend(self.fail(ClientError::Timeout(self.ask.timeout)));
                out
            }
            Event::Tick => Vec::new(),
            Event::Signed(claims) => {
                if self.receipt.is_some() {
                    self.signed = Some(*claims);
                }
                Vec::new()
            }
            Event::TooLarge { limit } => {
                let mut out = vec![Action::CancelAtProxy];
                out.extend(self.fail(ClientError::AnswerTooLarge { limit }));
                out
            }
            Event::CallerGone => {
                self.phase = Phase::Done;
                vec![
                    Action::CancelAtProxy,
                    Action::ExpectCharge(self.reserved_bound()),
                    Action::Record(Ending::Cancelled),
                    Action::Finish(Err(ClientError::Interrupted("the caller went away".into()))),
                ]
            }
            Event::Proxy(event) => self.proxy(event, now),
        }
    }

    fn proxy(&mut self, event: ProxyEvent, now: Instant) -> Vec<Action> {
        match (self.phase, event) {
            (_, ProxyEvent::Cost(c)) => {
                self.cost = Some(c);
                Vec::new()
            }
            (_, ProxyEvent::Receipt(r)) => {
                self.receipt = Some(r);
                self.signed = None;
                Vec::new()
            }
            (_, ProxyEvent::Payment { request_tokens }) => {
                self.payment_tokens = Some(request_tokens);
                Vec::new()
            }
            (_, ProxyEvent::Lost) => self.fail(ClientError::Interrupted(
                "the proxy connection was lost".into(),
            )),
            (
                phase,
                ProxyEvent::Error {
                    code,
                    message,
                    final_info,
                },
            ) => {
                // Our proxies end a request with an error that carries the usage they charged
                // (zero when free): that usage, not the reservation, bounds the charge.
                let bound = final_info.is_some().then_some(());
                self.final_info = final_info;
                let bound = bound.map(|()| self.usage_bound());
                let mut out = Vec::new();
                if phase == Phase::AwaitingHead && self.ask.sealed {
                    out.push(Action::ForgetSealedCandidates);
                }
                let refusal = cocoon_protocol::refusal::Refusal::decode(&message);
                out.extend(self.fail(ClientError::Remote {
                    code,
                    message: refusal.message,
                    param: refusal.param,
                }));
                if let (Some(bound), Some(Action::ExpectCharge(b))) = (
                    bound,
                    out.iter_mut()
                        .find(|a| matches!(a, Action::ExpectCharge(_))),
                ) {
                    *b = bound;
                }
                out
            }
            (Phase::AwaitingHead, ProxyEvent::Answer { answer, final_info }) => {
                self.head(&answer, final_info, now)
            }
            (Phase::AwaitingHead, ProxyEvent::Part { .. }) => self.fail(ClientError::Interrupted(
                "unexpected message before the first answer".into(),
            )),
            (_, ProxyEvent::Answer { .. }) => self.fail(ClientError::Interrupted(
                "a second first answer arrived".into(),
            )),
            (_, ProxyEvent::Part { answer, final_info }) => {
                let mut out = self.body(answer);
                if let Some(fi) = final_info {
                    out.extend(self.complete(fi, now));
                }
                out
            }
        }
    }

    fn head(
        &mut self,
        answer: &Bytes,
        final_info: Option<client::QueryFinalInfo>,
        now: Instant,
    ) -> Vec<Action> {
        let (head, rest) = match cocoon_protocol::http::split_response(answer) {
            Ok(split) => split,
            Err(e) => {
                return self.fail(ClientError::Interrupted(format!(
                    "bad response head from the worker: {e}"
                )));
            }
        };
        let status = u16::try_from(head.status_code).unwrap_or(502);
        let headers: Vec<(String, String)> = head
            .headers
            .iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        if let Some(cipher) = &self.ask.reference {
            let content_type = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| v.as_str());
            self.decryptor = Some(cocoon_refv1::AnswerDecryptor::new(
                cipher.clone(),
                cocoon_refv1::AnswerFraming::from_content_type(content_type),
            ));
        }
        self.phase = Phase::Streaming;
        let mut first = bytes::BytesMut::from(&head.payload[..]);
        first.extend_from_slice(&rest);
        let mut out = vec![Action::Head { status, headers }];
        out.extend(self.body(first.freeze()));
        if let Some(fi) = final_info {
            out.extend(self.complete(fi, now));
        }
        out
    }

    /// Body bytes as the worker sent them: hashed for the receipt, opened when encrypted.
    fn body(&mut self, raw: Bytes) -> Vec<Action> {
        if self.phase == Phase::Done || raw.is_empty() {
            return Vec::new();
        }
        self.answer_hash.update(&raw);
        let Some(decryptor) = &mut self.decryptor else {
            return vec![Action::Emit(raw)];
        };
        match decryptor.push(&raw) {
            Ok(plain) if plain.is_empty() => Vec::new(),
            Ok(plain) => vec![Action::Emit(Bytes::from(plain))],
            Err(e) => self.fail(ClientError::Interrupted(format!(
                "cannot open the encrypted answer: {e}"
            ))),
        }
    }

    /// The final part arrived: the answer is complete.
    fn complete(&mut self, final_info: client::QueryFinalInfo, now: Instant) -> Vec<Action> {
        if self.phase == Phase::Done {
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Some(mut decryptor) = self.decryptor.take() {
            match decryptor.finish() {
                Ok(plain) if plain.is_empty() => {}
                Ok(plain) => out.push(Action::Emit(Bytes::from(plain))),
                Err(e) => {
                    out.extend(self.fail(ClientError::Interrupted(format!(
                        "cannot open the encrypted answer: {e}"
                    ))));
                    return out;
                }
            }
        }
        // What this client added: its time on the request less the proxy's, as the proxy
        // reported it (left out when it reported no times, at protocol version 1).
        let overhead = match (final_info.proxy_start_time, final_info.proxy_end_time) {
            (Some(start), Some(end)) => {
                let proxy = cocoon_node::histogram::reported_span(start, end);
                Some(
                    now.saturating_duration_since(self.ask.started)
                        .saturating_sub(proxy),
                )
            }
            _ => None,
        };
        let usage = final_info.tokens_used.clone();
        self.final_info = Some(final_info);
        self.phase = Phase::Done;
        // A sealed request reached a version-3 worker, which always signs a receipt: one that
        // did not arrive was dropped on the way, and is checked (and refused) as empty.
        let receipt = match self.receipt.clone() {
            None if self.ask.sealed => Some(Bytes::new()),
            r => r,
        };
        if let Some(encoded) = receipt {
            out.push(Action::CheckReceipt(ReceiptCheck {
                encoded,
                binding: self.ask.binding,
                answer_hash: self.answer_hash.clone().finalize().into(),
                usage,
            }));
        }
        out.push(Action::ExpectCharge(self.usage_bound()));
        out.push(Action::Record(Ending::Succeeded {
            usage: self.usage(),
            overhead,
        }));
        out.push(Action::Finish(Ok(())));
        out
    }

    /// Ends the request with `error`, counted as failed.
    fn fail(&mut self, error: ClientError) -> Vec<Action> {
        self.phase = Phase::Done;
        vec![
            Action::ExpectCharge(self.reserved_bound()),
            Action::Record(Ending::Failed),
            Action::Finish(Err(error)),
        ]
    }

    /// The most a request that ended without its usage can be charged: what was reserved.
    fn reserved_bound(&self) -> Bound {
        Bound {
            tokens: self.ask.max_charge,
            basis: Basis::Reserved,
        }
    }

    /// The most a complete answer can be charged: its final usage (no count above what the
    /// worker's receipt signs) at the coefficient the worker's receipt signs (the one it was
    /// paid at; a version-2 receipt signs none, and then the coefficient the proxy reported
    /// stands in), never above the request's `max_coefficient` (nor, when neither told one, at
    /// more than that), at the network's prices. What the proxy says of the coefficient does
    /// not count where the worker signed one: a proxy that charges the client at a higher
    /// coefficient than the worker's is caught. For a sealed request, whose worker signs every
    /// end that bills usage, no receipt means nothing may be charged.
    fn usage_bound(&self) -> Bound {
        let Some(fi) = &self.final_info else {
            return self.reserved_bound();
        };
        // No more than the worker's receipt signs, when one came and verified (our proxies
        // charge no more).
        let signed = self.signed.as_ref();
        // A sealed request reached a version-3 worker, which signs every end that bills usage:
        // a charge for one without its verified receipt (withheld, forged, of another request)
        // is backed by nothing the worker said, and may be nothing.
        if self.ask.sealed && signed.is_none() {
            return Bound {
                tokens: 0,
                basis: Basis::Usage,
            };
        }
        let reported = self
            .cost
            .as_ref()
            .and_then(|c| Coefficient::try_from(c.coefficient).ok());
        let coefficient = match signed.map(|c| c.coefficient) {
            Some(Some(c)) => Coefficient::new(c).ok(),
            _ => reported,
        }
        .map_or(self.ask.max_coefficient, |c| {
            c.min(self.ask.max_coefficient)
        });
        let within_receipt = |counts: TokenCounts| match signed {
            Some(c) => TokenCounts {
                prompt: counts.prompt.min(c.prompt_tokens),
                cached: counts.cached.min(c.cached_tokens),
                completion: counts.completion.min(c.completion_tokens),
                reasoning: counts.reasoning.min(c.reasoning_tokens),
            },
            None => counts,
        };
        match TokenCounts::try_from(&fi.tokens_used)
            .map(within_receipt)
            .and_then(|counts| self.ask.pricing.charge(&counts, coefficient))
        {
            Ok(charge) => Bound {
                tokens: charge.adjusted_total(),
                basis: Basis::Usage,
            },
            // Counts that cannot be priced (negative, overflowing): the reservation bounds it.
            Err(_) => self.reserved_bound(),
        }
    }

    /// Writes the hop times the proxy reported into `times`.
    pub(crate) fn reported_times(&self, times: &mut HopTimes) {
        if let Some(fi) = &self.final_info {
            times.proxy_start = fi.proxy_start_time;
            times.proxy_end = fi.proxy_end_time;
            times.worker_start = fi.worker_start_time;
            times.worker_end = fi.worker_end_time;
        }
    }

    /// Token usage and cost as far as known (final once the answer is complete).
    pub(crate) fn usage(&self) -> CostedUsage {
        let Some(fi) = &self.final_info else {
            return CostedUsage::default();
        };
        let t = &fi.tokens_used;
        let mut u = CostedUsage {
            prompt_tokens: t.prompt_tokens_used,
            cached_tokens: t.cached_tokens_used,
            completion_tokens: t.completion_tokens_used,
            reasoning_tokens: t.reasoning_tokens_used,
            total_tokens: t.total_tokens_used,
            ..CostedUsage::default()
        };
        if let Some(c) = &self.cost {
            u.prompt_total_cost = c.prompt_cost;
            u.completion_total_cost = c.completion_cost;
            u.total_cost = c.total_cost;
            return u;
        }
        // A reference proxy does not report the cost: price the metered tokens at the
        // network's prices and the worker's coefficient, if the payment notice told it.
        let counts = TokenCounts {
            prompt: u64::try_from(t.prompt_tokens_used).unwrap_or(0),
            cached: u64::try_from(t.cached_tokens_used).unwrap_or(0),
            completion: u64::try_from(t.completion_tokens_used).unwrap_or(0),
            reasoning: u64::try_from(t.reasoning_tokens_used).unwrap_or(0),
        };
        if let Ok(one) = Coefficient::new(1000)
            && let Ok(charge) = self.ask.pricing.charge(&counts, one)
        {
            let costs = charge.usage_costs();
            let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            u.prompt_total_cost = i(costs.prompt_total_cost);
            u.completion_total_cost = i(costs.completion_total_cost);
            u.total_cost = i(costs.total_cost);
            if let Some(tokens) = self.payment_tokens {
                u.total_cost = tokens
                    .saturating_mul(i64::try_from(self.ask.pricing.price_per_token).unwrap_or(0));
            }
        }
        u
    }
}

#[cfg(test)]
pub(crate) mod tests;

//! The rules of one client request's life at the proxy, as a sans-IO state machine: events in
//! (the ledger's answers, the worker's messages, the client's cancel or departure, time),
//! actions out (reserve, dispatch, relay, cancel on the worker, charge, release). No sockets,
//! no clocks, no tasks: `now` comes with every event, and [`RequestMachine::next_deadline`] says
//! when the driver must call back.
//!
//! The money rules it enforces:
//! - nothing reaches a worker before the reservation is recorded;
//! - a request is free only if it ends before any answer byte left the proxy; once bytes have
//!   been relayed, the tokens the worker metered until it stopped are charged, however the
//!   request ends (finished, failed, cancelled, timed out, client gone or too slow to read);
//!   a cancelled worker acknowledges with its usage, which the machine waits for (bounded);
//! - metered usage is bounded by what the request could have cost: completion tokens by the
//!   token limit the client reserved, prompt tokens by the bytes of the request body; usage
//!   above the bound is charged at the bound and reported as a metering violation;
//! - a transcription (`AUDIO_UNITS_FLAG`) is charged for its audio only: its token limit is the
//!   audio's units as the client measured them, which bound the prompt tokens, and it has no
//!   completion tokens; a worker claiming longer audio is charged at the client's measure and
//!   reported as a metering violation;
//! - the part of the answer that carries the usage is held back until the charge is booked.

use std::time::{Duration, Instant};

use bytes::Bytes;
use cocoon_market::WorkerId;
use cocoon_market::pricing::{Coefficient, TokenCounts};
use cocoon_market::selection::{Outcome, Unavailability};
use cocoon_protocol::messages::{TokensUsed, ext, proxy};

use crate::state::WorkerEvent;

/// Most completion tokens one request may declare.
pub(crate) const MAX_REQUEST_TOKENS: i32 = 1 << 22;

/// SSE events an answer may carry beyond one per token: the role chunk, the finish chunk, the
/// usage chunk and `[DONE]`.
const SSE_EVENTS_BEYOND_TOKENS: u64 = 4;

/// Counts the SSE events (`data:` lines after a line break) in answer bytes split anywhere.
///
/// A version-2 worker is never told the reserved limit, so the proxy holds it to the limit by
/// what it relays: streaming engines send one event per token, and past the limit (plus the
/// events that carry no token) nothing more is relayed.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SseEvents {
    matched: usize,
    events: u64,
}

impl SseEvents {
    const PATTERN: &'static [u8] = b"\ndata:";

    fn feed(&mut self, bytes: &[u8]) -> u64 {
        for &b in bytes {
            if b == Self::PATTERN[self.matched] {
                self.matched += 1;
                if self.matched == Self::PATTERN.len() {
                    self.events += 1;
                    self.matched = 0;
                }
            } else {
                self.matched = usize::from(b == b'\n');
            }
        }
        // The first event follows the response head, not a line break.
        self.events + 1
    }
}

/// Settings of the machine.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    /// Workers tried before the first answer byte, at most.
    pub(crate) max_attempts: usize,
    /// How long a cancelled version-3 worker has to acknowledge with its usage.
    pub(crate) cancel_grace: Duration,
}

/// What the client asked for, as far as the rules care.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ask {
    /// `max_tokens` as the client declared it (raw).
    pub(crate) max_tokens: i32,
    /// Bytes of the request body the worker will read (the `http.request` or the envelope).
    pub(crate) body_bytes: u64,
    /// Whether the request is a transcription whose `max_tokens` are its audio's units
    /// (`AUDIO_UNITS_FLAG`).
    pub(crate) audio: bool,
    /// When the request must be over.
    pub(crate) deadline: Instant,
    /// Whether the request is sealed: it goes only to version-3 workers, which sign every end
    /// that bills usage, and its client takes a charge without the worker's receipt for an
    /// overcharge.
    pub(crate) sealed: bool,
}

/// A refusal that ends the request before any answer byte: code and message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) code: i32,
    pub(crate) message: String,
}

impl Refusal {
    pub(crate) fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The worker an attempt runs on, as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AttemptView {
    pub(crate) worker: WorkerId,
    /// Whether the worker stops on `ext.cancelQuery` and acknowledges with its usage
    /// (version 3); a version-2 worker runs to its end, and what is relayed from it is held to
    /// the reserved limit by counting its SSE events.
    pub(crate) cancellable: bool,
    /// Whether the worker was handed the reserved token limit (`ext.workerRunQuery`,
    /// `ext.workerRunSealedQuery`) and clamps its answer to it. Otherwise (a version-2 worker, or
    /// a request in the reference's encryption, which goes as `proxy.runQueryEx`) what is
    /// relayed is held to the limit by counting SSE events.
    pub(crate) limit_bound: bool,
}

/// What ended the request from the client's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientEnd {
    /// The client sent `ext.cancelQuery`; its session is still there.
    Cancelled,
    /// The client's session is gone.
    Gone,
    /// The client did not take the answer fast enough (a write stalled past its deadline, or the
    /// request's queue overflowed): it loses this request.
    Stalled,
}

/// Why a relayed request is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Client(ClientEnd),
    TimedOut,
    /// A version-2 worker streamed more events than the reserved limit allows.
    OverLimit,
}

/// An input of the machine.
#[derive(Debug)]
pub(crate) enum Event {
    /// The outcome of [`Action::Reserve`].
    Reserved(Result<(), Refusal>),
    /// The outcome of [`Action::Dispatch`]: the request was sent to a worker, or none could take
    /// it.
    Dispatched(Result<AttemptView, Unavailability>),
    /// A message of the current attempt's worker.
    Worker(WorkerEvent),
    /// The client ended the request.
    Client(ClientEnd),
    /// Time passed ([`RequestMachine::next_deadline`] was reached).
    Tick,
    /// The outcome of [`Action::Charge`]: `true` when the charge is booked.
    Charged(bool),
}

/// What the answer to the client says at its end.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ToClient {
    /// `client.queryAnswerEx`: the response head and first bytes.
    Answer(Bytes),
    /// `client.queryAnswerPartEx`.
    Part(Bytes),
    /// The held-back final message, with the usage charged: `first` when it is the first
    /// answer too.
    Final {
        answer: Bytes,
        first: bool,
        usage: TokensUsed,
        worker_final: Option<Box<proxy::QueryFinalInfo>>,
    },
    /// `client.queryAnswerErrorEx` with the usage charged (zero when free).
    Error {
        code: i32,
        message: String,
        usage: TokensUsed,
        worker_final: Option<Box<proxy::QueryFinalInfo>>,
    },
    /// `ext.queryCost`, before the end of a charged answer (version 3 clients).
    Cost,
    /// `ext.queryReceipt` with the worker's receipt.
    Receipt(Bytes),
}

/// A metering violation: the worker reported more than the request could have used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Violation {
    pub(crate) reported: TokenCounts,
    pub(crate) bound: TokenCounts,
}

/// An output of the machine, carried out by the driver in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Reserve the worst case of the request against the client's balance, durably; answer
    /// with [`Event::Reserved`].
    Reserve,
    /// Pick a worker (none of `exclude`) and send it the request with `token_limit`; answer
    /// with [`Event::Dispatched`].
    Dispatch {
        exclude: Vec<WorkerId>,
        token_limit: u64,
    },
    /// The current attempt's first byte arrived (worker latency statistics).
    FirstByte,
    /// Tell the current worker to stop (`ext.cancelQuery`).
    CancelWorker,
    /// The current attempt is over: forget its route and tell the selector.
    FinishAttempt(Outcome),
    /// Send to the client.
    Send(ToClient),
    /// Book `usage` on the reservation (client charged, worker credited); answer with
    /// [`Event::Charged`].
    Charge {
        usage: TokenCounts,
        violation: Option<Violation>,
        /// The coefficient the worker's receipt signs, when it sent one that reads: the driver
        /// charges at no more than it (see [`charge_coefficient`]).
        signed_coefficient: Option<u32>,
    },
    /// Give the reservation back: nothing is owed.
    Release,
    /// Count a metering violation against the current attempt's worker, for a request that is
    /// charged nothing (a charged one carries its violation in [`Action::Charge`]).
    Violation(Violation),
    /// The request is over.
    Done(Ending),
}

/// How a request ended, for counters and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Refused before any worker answered (bad request, no balance, worker refusal).
    Refused,
    /// No worker could take the request.
    NoWorker,
    /// The worker answered to its end and the request was charged.
    Succeeded,
    /// The worker failed after its first byte.
    FailedMidway,
    /// The client cancelled or went away.
    Cancelled,
    /// The request ran out of time.
    TimedOut,
    /// The charge could not be booked: the answer's end was withheld.
    ChargeFailed,
}

#[derive(Debug)]
enum Phase {
    /// Waiting for [`Event::Reserved`].
    Reserving,
    /// Waiting for [`Event::Dispatched`].
    Dispatching,
    /// Sent to a worker, nothing relayed yet.
    Waiting(AttemptView),
    /// Answer bytes have been relayed to the client.
    Relaying(AttemptView),
    /// Bytes were relayed, the request is being stopped: waiting for the worker's usage.
    Draining {
        attempt: AttemptView,
        why: Stop,
        until: Instant,
    },
    /// Waiting for [`Event::Charged`].
    Charging(Closing),
    /// Over.
    Done,
}

/// What the client hears once the charge is booked.
#[derive(Debug)]
enum Closing {
    /// The worker finished: cost, receipt, then the held-back final message.
    Finished {
        answer: Bytes,
        first: bool,
        worker_final: Box<proxy::QueryFinalInfo>,
    },
    /// The worker failed midway: cost, then its error.
    Failed {
        code: i32,
        message: String,
        worker_final: Option<Box<proxy::QueryFinalInfo>>,
    },
    /// Stopped: cost, then an error saying why (nothing when the client is gone).
    Stopped(Stop),
}

/// One request's rules.
#[derive(Debug)]
pub(crate) struct RequestMachine {
    rules: Rules,
    ask: Ask,
    token_limit: u64,
    phase: Phase,
    tried: Vec<WorkerId>,
    last_error: Option<(i32, String)>,
    receipt: Option<Bytes>,
    /// The usage charged, once bounded.
    charged_usage: TokensUsed,
    /// SSE events relayed from a version-2 worker.
    relayed_events: SseEvents,
}

impl RequestMachine {
    /// A request as it arrives; the first actions are in the returned list (a refusal of the
    /// declared limit, or [`Action::Reserve`]).
    pub(crate) fn start(rules: Rules, ask: Ask) -> (Self, Vec<Action>) {
        let mut machine = Self {
            rules,
            ask,
            token_limit: 0,
            phase: Phase::Reserving,
            tried: Vec::new(),
            last_error: None,
            receipt: None,
            charged_usage: TokensUsed::default(),
            relayed_events: SseEvents::default(),
        };
        let actions = match ask.max_tokens {
            n if n < 1 => machine.refuse(Refusal::new(
                400,
                format!("max_tokens must be at least 1, got {n}"),
            )),
            n if n > MAX_REQUEST_TOKENS => machine.refuse(Refusal::new(
                400,
                format!("max_tokens {n} is above the limit of {MAX_REQUEST_TOKENS}"),
            )),
            n => {
                machine.token_limit = u64::from(n.unsigned_abs());
                vec![Action::Reserve]
            }
        };
        (machine, actions)
    }

    /// The completion tokens the reservation covers, which binds the worker.
    pub(crate) fn token_limit(&self) -> u64 {
        self.token_limit
    }

    /// Whether the request is over.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// Whether answer bytes have reached the client.
    #[cfg(test)]
    pub(crate) fn relayed(&self) -> bool {
        matches!(
            self.phase,
            Phase::Relaying(_) | Phase::Draining { .. } | Phase::Charging(_)
        )
    }

    /// The usage charged (zero until a charge is booked).
    #[cfg(test)]
    pub(crate) fn charged_usage(&self) -> &TokensUsed {
        &self.charged_usage
    }

    /// When the driver must send [`Event::Tick`], if the machine waits on time.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Waiting(_) | Phase::Relaying(_) => Some(self.ask.deadline),
            Phase::Draining { until, .. } => Some(*until),
            Phase::Reserving | Phase::Dispatching | Phase::Charging(_) | Phase::Done => None,
        }
    }

    /// Feeds one event at `now`; returns what to do, in order.
    pub(crate) fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        match (phase, event) {
            (Phase::Reserving, Event::Reserved(Ok(()))) => self.dispatch(),
            (Phase::Reserving, Event::Reserved(Err(refusal))) => self.refuse(refusal),
            (Phase::Dispatching, Event::Dispatched(Ok(attempt))) => {
                self.tried.push(attempt.worker);
                self.relayed_events = SseEvents::default();
                self.phase = Phase::Waiting(attempt);
                Vec::new()
            }
            (Phase::Dispatching, Event::Dispatched(Err(reason))) => self.no_worker(reason),
            (Phase::Waiting(attempt), event) => self.waiting(attempt, event, now),
            (Phase::Relaying(attempt), event) => self.relaying(attempt, event, now),
            (
                Phase::Draining {
                    attempt,
                    why,
                    until,
                },
                event,
            ) => self.draining(attempt, why, until, event, now),
            (Phase::Charging(closing), Event::Charged(booked)) => self.closing(closing, booked),
            // A client that leaves while the reservation or the charge is being written changes
            // nothing: the machine finishes what it started.
            (phase, _) => {
                self.phase = phase;
                Vec::new()
            }
        }
    }

    fn refuse(&mut self, refusal: Refusal) -> Vec<Action> {
        self.refuse_as(refusal, Ending::Refused)
    }

    fn refuse_as(&mut self, refusal: Refusal, ending: Ending) -> Vec<Action> {
        self.phase = Phase::Done;
        vec![
            Action::Send(ToClient::Error {
                code: refusal.code,
                message: refusal.message,
                usage: TokensUsed::default(),
                worker_final: None,
            }),
            Action::Done(ending),
        ]
    }

    /// Refuses after the reservation was made: gives it back first.
    fn release_and_refuse(&mut self, refusal: Refusal, ending: Ending) -> Vec<Action> {
        let mut actions = vec![Action::Release];
        actions.extend(self.refuse_as(refusal, ending));
        actions
    }

    fn dispatch(&mut self) -> Vec<Action> {
        if self.tried.len() >= self.rules.max_attempts {
            let (_, message) = self
                .last_error
                .clone()
                .unwrap_or((502, "no worker could answer".into()));
            return self.no_worker_after(message);
        }
        self.phase = Phase::Dispatching;
        // A receipt belongs to the attempt that signed it.
        self.receipt = None;
        vec![Action::Dispatch {
            exclude: self.tried.clone(),
            token_limit: self.token_limit,
        }]
    }

    fn no_worker(&mut self, reason: Unavailability) -> Vec<Action> {
        if let Some((_, message)) = self.last_error.clone() {
            return self.no_worker_after(message);
        }
        let code = match reason {
            Unavailability::UnknownModel | Unavailability::AllTried => 502,
            _ => 429,
        };
        self.release_and_refuse(Refusal::new(code, reason.to_string()), Ending::NoWorker)
    }

    fn no_worker_after(&mut self, message: String) -> Vec<Action> {
        let code = match &self.last_error {
            Some((429, _)) => 429,
            _ => 502,
        };
        self.release_and_refuse(
            Refusal::new(code, format!("no worker could answer: {message}")),
            Ending::NoWorker,
        )
    }

    fn waiting(&mut self, attempt: AttemptView, event: Event, now: Instant) -> Vec<Action> {
        match event {
            Event::Worker(WorkerEvent::Receipt(r)) => {
                self.receipt = Some(r);
                self.phase = Phase::Waiting(attempt);
                Vec::new()
            }
            Event::Worker(WorkerEvent::Answer { answer, final_info }) => {
                let mut actions = vec![Action::FirstByte];
                match final_info {
                    Some(fi) => actions.extend(self.finished(answer, true, fi)),
                    None => {
                        self.phase = Phase::Relaying(attempt);
                        if self.beyond_limit(attempt, &answer) {
                            actions.extend(self.stop(attempt, Stop::OverLimit, now));
                        } else {
                            actions.push(Action::Send(ToClient::Answer(answer)));
                        }
                    }
                }
                actions
            }
            Event::Worker(WorkerEvent::Error { code, message, .. }) => {
                // A worker that refuses the request itself (bad body, unknown endpoint) would
                // refuse it anywhere: pass that on. Capacity and engine failures move on.
                let retryable = code >= 500 || code == 429;
                if retryable {
                    self.last_error = Some((code, message));
                    let mut actions = vec![Action::FinishAttempt(Outcome::Failure)];
                    actions.extend(self.dispatch());
                    actions
                } else {
                    let mut actions = vec![Action::FinishAttempt(Outcome::Success)];
                    actions.extend(
                        self.release_and_refuse(Refusal::new(code, message), Ending::Refused),
                    );
                    actions
                }
            }
            Event::Worker(WorkerEvent::Lost | WorkerEvent::Part { .. } | WorkerEvent::Overflow) => {
                self.last_error = Some((502, "worker connection lost before answering".into()));
                let mut actions = vec![Action::FinishAttempt(Outcome::Failure)];
                actions.extend(self.dispatch());
                actions
            }
            Event::Client(_) => {
                // Nothing reached the client: free.
                let mut actions = Vec::new();
                if attempt.cancellable {
                    actions.push(Action::CancelWorker);
                }
                actions.push(Action::FinishAttempt(Outcome::Cancelled));
                actions.push(Action::Release);
                self.phase = Phase::Done;
                actions.push(Action::Done(Ending::Cancelled));
                actions
            }
            Event::Tick if now >= self.ask.deadline => {
                let mut actions = Vec::new();
                if attempt.cancellable {
                    actions.push(Action::CancelWorker);
                }
                actions.push(Action::FinishAttempt(Outcome::Failure));
                actions.push(Action::Release);
                actions.push(Action::Send(ToClient::Error {
                    code: 504,
                    message: "no answer from the worker in time".into(),
                    usage: TokensUsed::default(),
                    worker_final: None,
                }));
                self.phase = Phase::Done;
                actions.push(Action::Done(Ending::TimedOut));
                actions
            }
            _ => {
                self.phase = Phase::Waiting(attempt);
                Vec::new()
            }
        }
    }

    fn relaying(&mut self, attempt: AttemptView, event: Event, now: Instant) -> Vec<Action> {
        match event {
            Event::Worker(WorkerEvent::Receipt(r)) => {
                self.receipt = Some(r);
                self.phase = Phase::Relaying(attempt);
                Vec::new()
            }
            Event::Worker(WorkerEvent::Part { answer, final_info }) => match final_info {
                Some(fi) => self.finished(answer, false, fi),
                None if self.beyond_limit(attempt, &answer) => {
                    self.stop(attempt, Stop::OverLimit, now)
                }
                None => {
                    self.phase = Phase::Relaying(attempt);
                    vec![Action::Send(ToClient::Part(answer))]
                }
            },
            Event::Worker(WorkerEvent::Error {
                code,
                message,
                final_info,
            }) => {
                let usage = final_info.as_ref().map(|f| f.tokens_used.clone());
                self.charge(
                    Outcome::Failure,
                    usage,
                    Closing::Failed {
                        code,
                        message,
                        worker_final: final_info.map(Box::new),
                    },
                )
            }
            Event::Worker(WorkerEvent::Lost) => self.charge(
                Outcome::Failure,
                None,
                Closing::Failed {
                    code: 502,
                    message: "worker connection lost mid-answer".into(),
                    worker_final: None,
                },
            ),
            Event::Worker(WorkerEvent::Answer { .. }) => {
                // A second first answer breaks the stream: stop the worker, charge nothing.
                let mut actions = Vec::new();
                if attempt.cancellable {
                    actions.push(Action::CancelWorker);
                }
                actions.extend(self.charge(
                    Outcome::Failure,
                    None,
                    Closing::Failed {
                        code: 502,
                        message: "worker sent a second first answer".into(),
                        worker_final: None,
                    },
                ));
                actions
            }
            Event::Worker(WorkerEvent::Overflow) => {
                self.stop(attempt, Stop::Client(ClientEnd::Stalled), now)
            }
            Event::Client(end) => self.stop(attempt, Stop::Client(end), now),
            Event::Tick if now >= self.ask.deadline => self.stop(attempt, Stop::TimedOut, now),
            _ => {
                self.phase = Phase::Relaying(attempt);
                Vec::new()
            }
        }
    }

    /// Whether relaying `answer` from a worker not bound to the limit would pass it.
    fn beyond_limit(&mut self, attempt: AttemptView, answer: &[u8]) -> bool {
        !attempt.limit_bound
            && self.relayed_events.feed(answer)
                > self.token_limit.saturating_add(SSE_EVENTS_BEYOND_TOKENS)
    }

    /// Bytes were relayed and the request must stop: ask the worker to stop and wait for its
    /// usage (a version-2 worker cannot be stopped: wait for its end, until the deadline).
    fn stop(&mut self, attempt: AttemptView, why: Stop, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let until = if attempt.cancellable {
            actions.push(Action::CancelWorker);
            now + self.rules.cancel_grace
        } else {
            self.ask.deadline.max(now) + self.rules.cancel_grace
        };
        self.phase = Phase::Draining {
            attempt,
            why,
            until,
        };
        actions
    }

    fn draining(
        &mut self,
        attempt: AttemptView,
        why: Stop,
        until: Instant,
        event: Event,
        now: Instant,
    ) -> Vec<Action> {
        let keep = |this: &mut Self| {
            this.phase = Phase::Draining {
                attempt,
                why,
                until,
            };
            Vec::new()
        };
        match event {
            Event::Worker(
                WorkerEvent::Part {
                    final_info: Some(fi),
                    ..
                }
                | WorkerEvent::Answer {
                    final_info: Some(fi),
                    ..
                }
                | WorkerEvent::Error {
                    final_info: Some(fi),
                    ..
                },
            ) => self.charge(
                Outcome::Cancelled,
                Some(fi.tokens_used),
                Closing::Stopped(why),
            ),
            Event::Worker(WorkerEvent::Error {
                final_info: None, ..
            })
            | Event::Worker(WorkerEvent::Lost) => {
                self.charge(Outcome::Failure, None, Closing::Stopped(why))
            }
            Event::Tick if now >= until => {
                // The worker never said what it used: it is not paid, and the client, who got
                // bytes, is not charged for an unmetered answer.
                self.charge(Outcome::Failure, None, Closing::Stopped(why))
            }
            // The worker's receipt for the usage it acknowledges: it bounds the charge, and
            // goes to the client with the end.
            Event::Worker(WorkerEvent::Receipt(r)) => {
                self.receipt = Some(r);
                keep(self)
            }
            // Parts after the stop are not relayed.
            _ => keep(self),
        }
    }

    fn finished(
        &mut self,
        answer: Bytes,
        first: bool,
        worker_final: proxy::QueryFinalInfo,
    ) -> Vec<Action> {
        let usage = worker_final.tokens_used.clone();
        self.charge(
            Outcome::Success,
            Some(usage),
            Closing::Finished {
                answer,
                first,
                worker_final: Box::new(worker_final),
            },
        )
    }

    /// Ends the attempt and books what it used, bounded.
    fn charge(
        &mut self,
        outcome: Outcome,
        usage: Option<TokensUsed>,
        closing: Closing,
    ) -> Vec<Action> {
        let reported = usage.as_ref().map(counts).unwrap_or_default();
        let (bounded, violation) = if self.ask.audio {
            bound_audio_usage(reported, self.token_limit)
        } else {
            bound_usage(reported, self.token_limit, self.ask.body_bytes)
        };
        let (bounded, signed_below, signed_coefficient) =
            bound_by_receipt(bounded, self.receipt.as_ref());
        let violation = violation.or(signed_below);
        // A sealed request's worker that bills usage without its receipt (the driver passes on
        // only receipts that verify) is paid nothing, and the client charged nothing: the client
        // would hold any charge without it to be an overcharge.
        let (bounded, violation) =
            if self.ask.sealed && self.receipt.is_none() && bounded != TokenCounts::default() {
                let unsigned = Violation {
                    reported: bounded,
                    bound: TokenCounts::default(),
                };
                (TokenCounts::default(), violation.or(Some(unsigned)))
            } else {
                (bounded, violation)
            };
        // A worker that over-reports failed this request, however well it answered.
        let outcome = if violation.is_some() {
            Outcome::Failure
        } else {
            outcome
        };
        let mut actions = vec![Action::FinishAttempt(outcome)];
        if bounded == TokenCounts::default() {
            if let Some(v) = violation {
                actions.push(Action::Violation(v));
            }
            actions.push(Action::Release);
            actions.extend(self.closing(closing, false));
            return actions;
        }
        self.charged_usage = tokens_used(bounded);
        self.phase = Phase::Charging(closing);
        actions.push(Action::Charge {
            usage: bounded,
            violation,
            signed_coefficient,
        });
        actions
    }

    /// What the client hears at the end; `booked` when a charge was booked.
    fn closing(&mut self, closing: Closing, booked: bool) -> Vec<Action> {
        self.phase = Phase::Done;
        let charged = self.charged_usage != TokensUsed::default();
        if charged && !booked {
            // Nobody paid for this answer: its end, which would show the usage, is withheld.
            self.charged_usage = TokensUsed::default();
            let mut actions = Vec::new();
            if !matches!(closing, Closing::Stopped(Stop::Client(ClientEnd::Gone))) {
                actions.push(Action::Send(ToClient::Error {
                    code: 503,
                    message: "the proxy could not record the charge; the answer is withheld".into(),
                    usage: TokensUsed::default(),
                    worker_final: None,
                }));
            }
            actions.push(Action::Done(Ending::ChargeFailed));
            return actions;
        }
        let usage = self.charged_usage.clone();
        let mut actions = Vec::new();
        let client_gone = matches!(closing, Closing::Stopped(Stop::Client(ClientEnd::Gone)));
        if booked && !client_gone {
            actions.push(Action::Send(ToClient::Cost));
        }
        // The worker's receipt goes with every end that bills usage, before it: the client
        // prices its account of the charge at the coefficient the receipt signs.
        if let Some(receipt) = self.receipt.take().filter(|_| !client_gone) {
            actions.push(Action::Send(ToClient::Receipt(receipt)));
        }
        let ending = match closing {
            Closing::Finished {
                answer,
                first,
                worker_final,
            } => {
                actions.push(Action::Send(ToClient::Final {
                    answer,
                    first,
                    usage,
                    worker_final: Some(worker_final),
                }));
                Ending::Succeeded
            }
            Closing::Failed {
                code,
                message,
                worker_final,
            } => {
                actions.push(Action::Send(ToClient::Error {
                    code,
                    message,
                    usage,
                    worker_final,
                }));
                Ending::FailedMidway
            }
            Closing::Stopped(Stop::OverLimit) => {
                actions.push(Action::Send(ToClient::Error {
                    code: 502,
                    message: "the worker answered beyond the reserved token limit".into(),
                    usage,
                    worker_final: None,
                }));
                Ending::FailedMidway
            }
            Closing::Stopped(Stop::TimedOut) => {
                actions.push(Action::Send(ToClient::Error {
                    code: 504,
                    message: "request timed out".into(),
                    usage,
                    worker_final: None,
                }));
                Ending::TimedOut
            }
            Closing::Stopped(Stop::Client(ClientEnd::Gone)) => Ending::Cancelled,
            Closing::Stopped(Stop::Client(end)) => {
                actions.push(Action::Send(ToClient::Error {
                    code: ext::CANCELLED_ERROR_CODE,
                    message: match end {
                        ClientEnd::Stalled => "the answer was not read in time".into(),
                        _ => "cancelled".into(),
                    },
                    usage,
                    worker_final: None,
                }));
                Ending::Cancelled
            }
        };
        actions.push(Action::Done(ending));
        actions
    }
}

/// The protocol's token counts as billing counts (negative counts are zero).
pub(crate) fn counts(usage: &TokensUsed) -> TokenCounts {
    let u = |v: i64| u64::try_from(v).unwrap_or(0);
    TokenCounts {
        prompt: u(usage.prompt_tokens_used),
        cached: u(usage.cached_tokens_used),
        completion: u(usage.completion_tokens_used),
        reasoning: u(usage.reasoning_tokens_used),
    }
}

/// Billing counts as the protocol's token counts.
pub(crate) fn tokens_used(c: TokenCounts) -> TokensUsed {
    let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    TokensUsed {
        prompt_tokens_used: i(c.prompt),
        cached_tokens_used: i(c.cached),
        completion_tokens_used: i(c.completion),
        reasoning_tokens_used: i(c.reasoning),
        total_tokens_used: i(c.prompt.saturating_add(c.completion)),
    }
}

/// Bounds reported usage by what the request could have used: completion tokens (reasoning
/// included) by `token_limit`, prompt tokens (cached included) by the body's bytes (a prompt
/// never has more tokens than its request has bytes). The parts are bounded by their wholes.
/// Returns the bounded counts, and the violation when a whole was above its bound.
pub(crate) fn bound_usage(
    reported: TokenCounts,
    token_limit: u64,
    body_bytes: u64,
) -> (TokenCounts, Option<Violation>) {
    let bounded = reported.within(token_limit, body_bytes);
    let violation =
        (reported.prompt > body_bytes || reported.completion > token_limit).then_some(Violation {
            reported,
            bound: TokenCounts {
                prompt: body_bytes,
                cached: body_bytes,
                completion: token_limit,
                reasoning: token_limit,
            },
        });
    (bounded, violation)
}

/// Bounds usage by what the worker's receipt signs, when it sent one that reads: a worker is
/// paid (and the client charged) for no more tokens than the worker signed for. The receipt's
/// signature is the client's to check; a worker that signs fewer tokens than it reports only
/// lowers its own pay. Returns the bounded counts, the violation when a count was above, and
/// the coefficient the receipt signs (none for a version-2 receipt).
pub(crate) fn bound_by_receipt(
    counts: TokenCounts,
    receipt: Option<&Bytes>,
) -> (TokenCounts, Option<Violation>, Option<u32>) {
    let Some(claims) = receipt.and_then(|r| cocoon_attest::Receipt::from_bytes(r).ok()) else {
        return (counts, None, None);
    };
    let c = &claims.claims;
    let signed = TokenCounts {
        prompt: c.prompt_tokens,
        cached: c.cached_tokens,
        completion: c.completion_tokens,
        reasoning: c.reasoning_tokens,
    };
    let bounded = TokenCounts {
        prompt: counts.prompt.min(signed.prompt),
        cached: counts.cached.min(signed.cached),
        completion: counts.completion.min(signed.completion),
        reasoning: counts.reasoning.min(signed.reasoning),
    };
    let violation = (bounded != counts).then_some(Violation {
        reported: counts,
        bound: signed,
    });
    (bounded, violation, c.coefficient)
}

/// The coefficient a request is charged (and its worker paid) at: the one the proxy `offered`
/// the worker, unless the worker's receipt signs another. The client prices its bound at the
/// signed one, so a receipt below the offer is charged at what it signs (the worker loses the
/// difference, and no honest proxy is blamed for an overcharge); one above is charged at the
/// offer. Either way the worker signed what it was not offered: answers `true` then, a
/// metering violation.
pub(crate) fn charge_coefficient(offered: Coefficient, signed: Option<u32>) -> (Coefficient, bool) {
    match signed {
        None => (offered, false),
        Some(s) if s == offered.get() => (offered, false),
        Some(s) => (
            Coefficient::new(s).map_or(offered, |s| s.min(offered)),
            true,
        ),
    }
}

/// Bounds the usage reported for a transcription by its audio: prompt tokens (cached
/// included) by `audio_units`, the units the client measured and reserved; no completion
/// tokens. Returns the bounded counts, and the violation when the report was above them.
pub(crate) fn bound_audio_usage(
    reported: TokenCounts,
    audio_units: u64,
) -> (TokenCounts, Option<Violation>) {
    let bounded = reported.within_audio(audio_units);
    let violation =
        (reported.prompt > audio_units || reported.completion > 0).then_some(Violation {
            reported,
            bound: TokenCounts {
                prompt: audio_units,
                cached: audio_units,
                completion: 0,
                reasoning: 0,
            },
        });
    (bounded, violation)
}

#[cfg(test)]
mod tests;

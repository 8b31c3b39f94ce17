//! The rules of one admitted request's life at the worker, as a sans-IO state machine: events
//! in (the engine's head, its body batches and how the body ended, the proxy's cancel, the
//! proxy connection lost, an answer that cannot be encoded, time), actions out (send the answer
//! head, a part, the final part with usage, an error with usage; stop the engine; done). No
//! sockets, no clocks, no tasks: `now` comes with every event, and
//! [`RequestMachine::next_deadline`] says when the driver must call back.
//!
//! The rules it keeps:
//! - the first answer (`proxy.queryAnswerEx`) carries the response head and the first body
//!   bytes; later bytes go as parts; the part that ends the answer carries the engine's usage;
//! - an engine that fails on its side (status 5xx) did not answer: its error is reported (code
//!   503 or 504 as it said, 502 otherwise) so the proxy can try another worker; 4xx answers go
//!   through as they are;
//! - a cancel (`ext.cancelQuery`) or a lost connection after the engine started stops it, and
//!   the machine waits, at most [`Rules::stop_deadline`], for the usage it ends with; a cancel
//!   is then acknowledged with [`ext::CANCELLED_ERROR_CODE`] and that usage, which the proxy
//!   bills; after a lost connection nobody is left to tell. Before the engine started, nothing
//!   was generated: the usage is zero;
//! - an engine that fails or stops unasked mid-answer is reported as a failure (502) with the
//!   usage it gave.

use std::time::{Duration, Instant};

use bytes::Bytes;
use cocoon_infer::{EngineError, TokenUsage};
use cocoon_protocol::messages::ext;
use serde_json::Value;

/// A refusal, with the HTTP-style code the client will turn into a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) code: i32,
    pub(crate) message: String,
    /// The body field at fault, as OpenAI's error object names it (`param`).
    pub(crate) param: Option<String>,
}

/// A refusal with `code` and `message`.
pub(crate) fn refuse(code: i32, message: impl Into<String>) -> Refusal {
    refuse_param(code, message, None)
}

/// A refusal with `code` and `message` about the body field `param`.
pub(crate) fn refuse_param(code: i32, message: impl Into<String>, param: Option<&str>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
        param: param.map(str::to_owned),
    }
}

/// Settings of the machine.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    /// How long a stopped engine has to report the tokens it used before the worker reports
    /// zero.
    pub(crate) stop_deadline: Duration,
}

/// The engine's response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
}

/// How an engine's body ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyEnd {
    /// The answer is complete.
    End(TokenUsage),
    /// The engine failed; the usage covers what it produced.
    Failed(String, TokenUsage),
    /// The engine stopped early (asked or not).
    Stopped(TokenUsage),
    /// The engine dropped the body without saying how it ended.
    Closed,
}

/// An input of the machine.
#[derive(Debug)]
pub(crate) enum Event {
    /// The engine call returned: its head, or why it could not start.
    EngineStarted(Result<Head, EngineError>),
    /// A batch of body bytes (possibly empty), and how the body ended when it did.
    Body { data: Bytes, end: Option<BodyEnd> },
    /// The proxy sent `ext.cancelQuery`.
    Cancel,
    /// The proxy connection closed (or a send on it failed).
    ConnectionLost,
    /// The answer cannot be encoded (encrypted or sealed): the request ends failed. With a
    /// refusal the proxy is told; `None` when the driver already told it.
    OutputBroken(Option<Refusal>),
    /// Time passed ([`RequestMachine::next_deadline`] was reached).
    Tick,
}

/// An output of the machine, carried out by the driver in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// `proxy.queryAnswerEx`: the response head and the first body bytes; with `usage` it is
    /// the whole answer (receipt first, then the answer with its final info).
    SendHead {
        head: Head,
        data: Bytes,
        usage: Option<TokenUsage>,
    },
    /// `proxy.queryAnswerPartEx`; with `usage` it is the last (receipt first).
    SendPart {
        data: Bytes,
        usage: Option<TokenUsage>,
    },
    /// `proxy.queryAnswerErrorEx`, reporting `usage`.
    Fail { refusal: Refusal, usage: TokenUsage },
    /// Ask the engine to stop its answer (it ends the body with the usage so far).
    StopEngine,
    /// The request is over; the driver drops what is left of the engine's answer.
    Done(Outcome),
}

/// How a request ended, for counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Answered to its end.
    Done {
        usage: TokenUsage,
        /// From asking the engine to the end of its answer.
        upstream: Duration,
    },
    /// Failed (the proxy was told).
    Failed,
    /// Stopped on the proxy's cancel, and acknowledged with this usage.
    Cancelled(TokenUsage),
    /// The connection went away: nobody is left to tell.
    Lost,
}

/// Why the worker stops an answer before the engine ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interrupt {
    Cancel,
    ConnectionLost,
}

/// Most bytes of a failed engine's body read for its error message.
const ERROR_BODY_LIMIT: usize = 16 * 1024;

#[derive(Debug)]
enum Phase {
    /// The engine call is under way.
    Starting,
    /// The engine answered 5xx: reading its body for the error message.
    ReadingError { status: u16, body: Vec<u8> },
    /// The engine answered; nothing was sent yet.
    Answering(Head),
    /// The first answer went out; parts follow.
    Streaming,
    /// The engine was asked to stop: waiting for its usage until `until`.
    Draining { why: Interrupt, until: Instant },
    /// Over.
    Done,
}

/// One request's rules.
#[derive(Debug)]
pub(crate) struct RequestMachine {
    rules: Rules,
    phase: Phase,
    /// When the engine was asked.
    asked: Instant,
    /// From asking the engine to its latest body batch.
    upstream: Duration,
}

impl RequestMachine {
    /// A request admitted at `now`, when the driver asks the engine.
    pub(crate) fn start(rules: Rules, now: Instant) -> Self {
        Self {
            rules,
            phase: Phase::Starting,
            asked: now,
            upstream: Duration::ZERO,
        }
    }

    /// Whether the request is over.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// Whether the machine waits for the engine call to return ([`Event::EngineStarted`]).
    pub(crate) fn wants_start(&self) -> bool {
        matches!(self.phase, Phase::Starting)
    }

    /// When the driver must send [`Event::Tick`], if the machine waits on time.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Draining { until, .. } => Some(*until),
            _ => None,
        }
    }

    /// Feeds one event at `now`; returns what to do, in order.
    pub(crate) fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        match (phase, event) {
            (Phase::Done, _) => Vec::new(),
            (_, Event::OutputBroken(refusal)) => {
                let mut actions = Vec::new();
                if let Some(refusal) = refusal {
                    actions.push(Action::Fail {
                        refusal,
                        usage: TokenUsage::default(),
                    });
                }
                actions.push(Action::Done(Outcome::Failed));
                actions
            }
            (Phase::Starting, event) => self.starting(event),
            (Phase::ReadingError { status, body }, event) => {
                self.reading_error(status, body, event)
            }
            (Phase::Answering(head), event) => self.answering(head, event, now),
            (Phase::Streaming, event) => self.streaming(event, now),
            (Phase::Draining { why, until }, event) => self.draining(why, until, event, now),
        }
    }

    fn starting(&mut self, event: Event) -> Vec<Action> {
        match event {
            Event::EngineStarted(Ok(head)) if head.status >= 500 => {
                self.phase = Phase::ReadingError {
                    status: head.status,
                    body: Vec::new(),
                };
                Vec::new()
            }
            Event::EngineStarted(Ok(head)) => {
                self.phase = Phase::Answering(head);
                Vec::new()
            }
            Event::EngineStarted(Err(e)) => {
                let code = match &e {
                    EngineError::InvalidRequest(_)
                    | EngineError::Unsupported { .. }
                    | EngineError::DoesNotTranscribe(_) => 400,
                    EngineError::Overloaded(_) => 429,
                    EngineError::Timeout(_) => 504,
                    _ => 502,
                };
                fail(
                    refuse_param(code, e.to_string(), e.param()),
                    TokenUsage::default(),
                )
            }
            // No answer head yet: the driver drops the engine's call, and nothing was generated
            // that could be reported.
            Event::Cancel => interrupted(Interrupt::Cancel, TokenUsage::default()),
            Event::ConnectionLost => interrupted(Interrupt::ConnectionLost, TokenUsage::default()),
            _ => {
                self.phase = Phase::Starting;
                Vec::new()
            }
        }
    }

    /// A failed engine's body is read to its end (or [`ERROR_BODY_LIMIT`]) for the message;
    /// interrupts meanwhile change nothing, the failure is reported all the same.
    fn reading_error(&mut self, status: u16, mut body: Vec<u8>, event: Event) -> Vec<Action> {
        let Event::Body { data, end } = event else {
            self.phase = Phase::ReadingError { status, body };
            return Vec::new();
        };
        let room = ERROR_BODY_LIMIT.saturating_sub(body.len());
        body.extend_from_slice(&data[..data.len().min(room)]);
        if end.is_none() && body.len() < ERROR_BODY_LIMIT {
            self.phase = Phase::ReadingError { status, body };
            return Vec::new();
        }
        let code = match status {
            503 | 504 => i32::from(status),
            _ => 502,
        };
        fail(
            refuse(code, engine_error_message(status, &body)),
            TokenUsage::default(),
        )
    }

    fn answering(&mut self, head: Head, event: Event, now: Instant) -> Vec<Action> {
        match event {
            Event::Body { data, end } => {
                self.upstream = now.saturating_duration_since(self.asked);
                if data.is_empty() {
                    match end {
                        Some(BodyEnd::Failed(error, usage)) => {
                            return fail(refuse(502, error), usage);
                        }
                        Some(BodyEnd::Closed) => {
                            return fail(
                                refuse(502, "engine ended without an answer"),
                                TokenUsage::default(),
                            );
                        }
                        Some(BodyEnd::Stopped(usage)) => return unasked_stop(usage),
                        None => {
                            self.phase = Phase::Answering(head);
                            return Vec::new();
                        }
                        Some(BodyEnd::End(_)) => {}
                    }
                }
                let usage = match &end {
                    Some(BodyEnd::End(usage)) => Some(*usage),
                    _ => None,
                };
                let mut actions = vec![Action::SendHead { head, data, usage }];
                actions.extend(self.after_send(end));
                actions
            }
            Event::Cancel => self.stop(Interrupt::Cancel, now),
            Event::ConnectionLost => self.stop(Interrupt::ConnectionLost, now),
            _ => {
                self.phase = Phase::Answering(head);
                Vec::new()
            }
        }
    }

    fn streaming(&mut self, event: Event, now: Instant) -> Vec<Action> {
        match event {
            Event::Body { data, end } => {
                self.upstream = now.saturating_duration_since(self.asked);
                let usage = match &end {
                    Some(BodyEnd::End(usage)) => Some(*usage),
                    _ => None,
                };
                let mut actions = Vec::new();
                if !data.is_empty() || usage.is_some() {
                    actions.push(Action::SendPart { data, usage });
                }
                actions.extend(self.after_send(end));
                actions
            }
            Event::Cancel => self.stop(Interrupt::Cancel, now),
            Event::ConnectionLost => self.stop(Interrupt::ConnectionLost, now),
            _ => {
                self.phase = Phase::Streaming;
                Vec::new()
            }
        }
    }

    /// After bytes went out: the answer goes on, or ends the way the engine ended it.
    fn after_send(&mut self, end: Option<BodyEnd>) -> Vec<Action> {
        match end {
            None => {
                self.phase = Phase::Streaming;
                Vec::new()
            }
            Some(BodyEnd::End(usage)) => {
                self.phase = Phase::Done;
                vec![Action::Done(Outcome::Done {
                    usage,
                    upstream: self.upstream,
                })]
            }
            Some(BodyEnd::Failed(error, usage)) => fail(refuse(502, error), usage),
            Some(BodyEnd::Closed) => fail(
                refuse(502, "engine stopped mid-answer"),
                TokenUsage::default(),
            ),
            Some(BodyEnd::Stopped(usage)) => unasked_stop(usage),
        }
    }

    /// The engine has an answer under way: ask it to stop and wait for its usage.
    fn stop(&mut self, why: Interrupt, now: Instant) -> Vec<Action> {
        self.phase = Phase::Draining {
            why,
            until: now + self.rules.stop_deadline,
        };
        vec![Action::StopEngine]
    }

    /// Body bytes still queued after the stop are discarded; the usage that ends the body (an
    /// answer that ended or failed just before the stop reports its usage too) is the one
    /// reported. An engine that does not say reports zero (and is logged): the worker has no
    /// count of its own it could trust more.
    fn draining(
        &mut self,
        why: Interrupt,
        until: Instant,
        event: Event,
        now: Instant,
    ) -> Vec<Action> {
        match event {
            Event::Body { end: Some(end), .. } => {
                let usage = match end {
                    BodyEnd::End(usage) | BodyEnd::Failed(_, usage) | BodyEnd::Stopped(usage) => {
                        usage
                    }
                    BodyEnd::Closed => {
                        tracing::warn!(
                            "the engine ended a stopped answer without its usage; reporting 0"
                        );
                        TokenUsage::default()
                    }
                };
                interrupted(why, usage)
            }
            Event::Tick if now >= until => {
                tracing::warn!(
                    "the engine did not report the usage of a stopped answer within {:?}; \
                     reporting 0",
                    self.rules.stop_deadline
                );
                interrupted(why, TokenUsage::default())
            }
            // A connection lost while waiting: the cancel can no longer be acknowledged.
            Event::ConnectionLost => {
                self.phase = Phase::Draining {
                    why: Interrupt::ConnectionLost,
                    until,
                };
                Vec::new()
            }
            _ => {
                self.phase = Phase::Draining { why, until };
                Vec::new()
            }
        }
    }
}

/// Ends the request failed, telling the proxy.
fn fail(refusal: Refusal, usage: TokenUsage) -> Vec<Action> {
    vec![
        Action::Fail { refusal, usage },
        Action::Done(Outcome::Failed),
    ]
}

/// The engine stopped although nobody asked it to: an engine fault, reported as a failure with
/// the usage it gave.
fn unasked_stop(usage: TokenUsage) -> Vec<Action> {
    fail(refuse(502, "the engine stopped the answer unasked"), usage)
}

/// Ends a stopped request: a cancel is acknowledged with the usage, a lost connection is not.
fn interrupted(why: Interrupt, usage: TokenUsage) -> Vec<Action> {
    match why {
        Interrupt::ConnectionLost => vec![Action::Done(Outcome::Lost)],
        Interrupt::Cancel => vec![
            Action::Fail {
                refusal: refuse(ext::CANCELLED_ERROR_CODE, "the request was cancelled"),
                usage,
            },
            Action::Done(Outcome::Cancelled(usage)),
        ],
    }
}

/// The error message of a failed engine answer (OpenAI's `error.message` when present).
fn engine_error_message(status: u16, body: &[u8]) -> String {
    let from_json = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        v.pointer("/error/message")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let text = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    format!(
        "engine answered {status}: {}",
        if text.is_empty() { "no details" } else { &text }
    )
}

#[cfg(test)]
mod tests;

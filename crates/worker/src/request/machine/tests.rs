//! Each rule of the worker's request machine, driven with plain values: no sockets, no
//! engine, no clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use cocoon_infer::{EngineError, TokenUsage};
use cocoon_protocol::messages::ext;

use super::*;

const RULES: Rules = Rules {
    stop_deadline: Duration::from_secs(5),
};

fn usage(prompt: u64, completion: u64) -> TokenUsage {
    TokenUsage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        ..TokenUsage::default()
    }
}

fn head(status: u16) -> Head {
    Head {
        status,
        headers: vec![("content-type".into(), "text/event-stream".into())],
    }
}

fn data(text: &'static str) -> Event {
    Event::Body {
        data: Bytes::from_static(text.as_bytes()),
        end: None,
    }
}

fn ending(text: &'static str, end: BodyEnd) -> Event {
    Event::Body {
        data: Bytes::from_static(text.as_bytes()),
        end: Some(end),
    }
}

fn failed(code: i32, message: &str, used: TokenUsage) -> Vec<Action> {
    vec![
        Action::Fail {
            refusal: refuse(code, message),
            usage: used,
        },
        Action::Done(Outcome::Failed),
    ]
}

fn cancelled(used: TokenUsage) -> Vec<Action> {
    vec![
        Action::Fail {
            refusal: refuse(ext::CANCELLED_ERROR_CODE, "the request was cancelled"),
            usage: used,
        },
        Action::Done(Outcome::Cancelled(used)),
    ]
}

/// A machine whose engine was asked at `t0`.
struct Run {
    m: RequestMachine,
    t0: Instant,
}

impl Run {
    fn new() -> Self {
        let t0 = Instant::now();
        Self {
            m: RequestMachine::start(RULES, t0),
            t0,
        }
    }

    /// A machine whose engine answered with `status`.
    fn answered(status: u16) -> Self {
        let mut run = Self::new();
        assert!(
            run.event(Event::EngineStarted(Ok(head(status))), 0)
                .is_empty()
        );
        run
    }

    /// A machine that sent its first answer.
    fn streaming() -> Self {
        let mut run = Self::answered(200);
        let actions = run.event(data("data: 1\n\n"), 10);
        assert!(matches!(
            actions.as_slice(),
            [Action::SendHead { usage: None, .. }]
        ));
        run
    }

    fn event(&mut self, event: Event, at_ms: u64) -> Vec<Action> {
        self.m.handle(event, self.t0 + Duration::from_millis(at_ms))
    }
}

#[test]
fn the_first_bytes_go_with_the_head_and_the_rest_as_parts_with_the_usage_last() {
    let mut run = Run::answered(200);
    assert_eq!(
        run.event(data("data: a\n\n"), 5),
        vec![Action::SendHead {
            head: head(200),
            data: Bytes::from_static(b"data: a\n\n"),
            usage: None,
        }]
    );
    assert_eq!(
        run.event(data("data: b\n\n"), 6),
        vec![Action::SendPart {
            data: Bytes::from_static(b"data: b\n\n"),
            usage: None,
        }]
    );
    assert_eq!(
        run.event(ending("data: [DONE]\n\n", BodyEnd::End(usage(3, 2))), 7),
        vec![
            Action::SendPart {
                data: Bytes::from_static(b"data: [DONE]\n\n"),
                usage: Some(usage(3, 2)),
            },
            Action::Done(Outcome::Done {
                usage: usage(3, 2),
                upstream: Duration::from_millis(7),
            }),
        ]
    );
    assert!(run.m.is_done());
    assert!(
        run.event(Event::Cancel, 8).is_empty(),
        "nothing after the end"
    );
}

#[test]
fn a_whole_answer_in_one_batch_is_one_first_answer_with_its_usage() {
    let mut run = Run::answered(200);
    assert_eq!(
        run.event(ending("{}", BodyEnd::End(usage(4, 1))), 9),
        vec![
            Action::SendHead {
                head: head(200),
                data: Bytes::from_static(b"{}"),
                usage: Some(usage(4, 1)),
            },
            Action::Done(Outcome::Done {
                usage: usage(4, 1),
                upstream: Duration::from_millis(9),
            }),
        ]
    );
}

#[test]
fn an_empty_end_after_parts_is_still_a_final_part() {
    let mut run = Run::streaming();
    assert_eq!(
        run.event(ending("", BodyEnd::End(usage(1, 1))), 20)[0],
        Action::SendPart {
            data: Bytes::new(),
            usage: Some(usage(1, 1)),
        }
    );
}

#[test]
fn an_engine_that_cannot_start_is_refused_with_the_code_of_its_error() {
    let table: &[(EngineError, i32)] = &[
        (EngineError::InvalidRequest("bad".into()), 400),
        (EngineError::DoesNotTranscribe("m".into()), 400),
        (EngineError::Overloaded("full".into()), 429),
        (EngineError::Timeout("slow".into()), 504),
        (EngineError::Unavailable("down".into()), 502),
    ];
    for (error, code) in table {
        let mut run = Run::new();
        let message = error.to_string();
        assert_eq!(
            run.event(Event::EngineStarted(Err(error.clone())), 1),
            failed(*code, &message, TokenUsage::default()),
            "{error:?}"
        );
        assert!(run.m.is_done());
    }
}

#[test]
fn an_engine_refusing_a_field_names_it_in_the_refusal() {
    let error = EngineError::Unsupported {
        param: "tools".into(),
        message: "`tools` (tool calling) is not supported".into(),
    };
    let mut run = Run::new();
    assert_eq!(
        run.event(Event::EngineStarted(Err(error)), 1),
        vec![
            Action::Fail {
                refusal: super::refuse_param(
                    400,
                    "invalid request: `tools` (tool calling) is not supported",
                    Some("tools"),
                ),
                usage: TokenUsage::default(),
            },
            Action::Done(Outcome::Failed),
        ]
    );
}

#[test]
fn an_engine_failing_on_its_side_is_reported_with_its_message_not_relayed() {
    let table: &[(u16, &str, i32, &str)] = &[
        (
            500,
            r#"{"error":{"message":"out of memory"}}"#,
            502,
            "engine answered 500: out of memory",
        ),
        (503, "  busy  ", 503, "engine answered 503: busy"),
        (504, "", 504, "engine answered 504: no details"),
    ];
    for &(status, body, code, message) in table {
        let mut run = Run::answered(status);
        let end = BodyEnd::End(TokenUsage::default());
        let actions = run.event(ending(body, end), 3);
        assert_eq!(
            actions,
            failed(code, message, TokenUsage::default()),
            "{status}"
        );
    }
}

#[test]
fn a_failed_engines_error_body_is_read_in_pieces_and_bounded() {
    let mut run = Run::answered(500);
    assert!(run.event(data("{\"error\":{\"message\":"), 1).is_empty());
    assert_eq!(
        run.event(ending("\"oom\"}}", BodyEnd::Closed), 2),
        failed(502, "engine answered 500: oom", TokenUsage::default())
    );
    // A body that never ends is cut at the limit.
    let mut run = Run::answered(502);
    let big = Bytes::from(vec![b'x'; ERROR_BODY_LIMIT + 10]);
    let actions = run.event(
        Event::Body {
            data: big,
            end: None,
        },
        1,
    );
    let [Action::Fail { refusal, .. }, Action::Done(Outcome::Failed)] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    assert_eq!(
        refusal.message.len(),
        "engine answered 502: ".len() + ERROR_BODY_LIMIT
    );
}

#[test]
fn a_client_error_from_the_engine_is_an_answer() {
    let mut run = Run::answered(422);
    let actions = run.event(ending("{\"error\":{}}", BodyEnd::End(usage(0, 0))), 1);
    assert!(matches!(
        actions.as_slice(),
        [
            Action::SendHead {
                head: Head { status: 422, .. },
                usage: Some(_),
                ..
            },
            Action::Done(Outcome::Done { .. })
        ]
    ));
}

#[test]
fn how_the_engine_ends_before_and_after_the_first_byte() {
    // (end of the body, expected actions before the first byte, after it)
    let table: Vec<(BodyEnd, Vec<Action>, Vec<Action>)> = vec![
        (
            BodyEnd::Failed("broke".into(), usage(5, 2)),
            failed(502, "broke", usage(5, 2)),
            failed(502, "broke", usage(5, 2)),
        ),
        (
            BodyEnd::Closed,
            failed(502, "engine ended without an answer", TokenUsage::default()),
            failed(502, "engine stopped mid-answer", TokenUsage::default()),
        ),
        (
            BodyEnd::Stopped(usage(5, 1)),
            failed(502, "the engine stopped the answer unasked", usage(5, 1)),
            failed(502, "the engine stopped the answer unasked", usage(5, 1)),
        ),
    ];
    for (end, before, after) in table {
        let mut run = Run::answered(200);
        assert_eq!(run.event(ending("", end.clone()), 1), before, "{end:?}");
        let mut run = Run::streaming();
        assert_eq!(run.event(ending("", end.clone()), 20), after, "{end:?}");
    }
}

#[test]
fn bytes_before_a_failure_are_sent_then_the_failure() {
    let mut run = Run::answered(200);
    let actions = run.event(
        ending("data: x\n\n", BodyEnd::Failed("broke".into(), usage(2, 1))),
        1,
    );
    assert!(matches!(actions[0], Action::SendHead { usage: None, .. }));
    assert_eq!(actions[1..], failed(502, "broke", usage(2, 1))[..]);
}

#[test]
fn an_interrupt_before_the_engine_started_costs_nothing() {
    let mut run = Run::new();
    assert_eq!(
        run.event(Event::Cancel, 1),
        cancelled(TokenUsage::default())
    );
    let mut run = Run::new();
    assert_eq!(
        run.event(Event::ConnectionLost, 1),
        vec![Action::Done(Outcome::Lost)]
    );
}

#[test]
fn a_cancel_stops_the_engine_and_is_acknowledged_with_the_usage_until_it_stopped() {
    // Before the first byte (engine answered, no body yet) and after it.
    for mut run in [Run::answered(200), Run::streaming()] {
        assert_eq!(run.event(Event::Cancel, 30), vec![Action::StopEngine]);
        assert_eq!(
            run.m.next_deadline(),
            Some(run.t0 + Duration::from_millis(5030))
        );
        assert!(
            run.event(data("data: late\n\n"), 31).is_empty(),
            "not relayed"
        );
        assert!(run.event(Event::Cancel, 32).is_empty());
        assert_eq!(
            run.event(ending("", BodyEnd::Stopped(usage(7, 3))), 40),
            cancelled(usage(7, 3))
        );
        assert_eq!(run.m.next_deadline(), None);
    }
}

#[test]
fn an_answer_that_ended_just_before_the_stop_reports_its_usage() {
    for end in [
        BodyEnd::End(usage(2, 9)),
        BodyEnd::Failed("late".into(), usage(2, 9)),
    ] {
        let mut run = Run::streaming();
        run.event(Event::Cancel, 30);
        assert_eq!(run.event(ending("", end), 31), cancelled(usage(2, 9)));
    }
}

#[test]
fn a_stopped_engine_that_does_not_say_reports_zero() {
    // It closes the body without a usage.
    let mut run = Run::streaming();
    run.event(Event::Cancel, 30);
    assert_eq!(
        run.event(ending("", BodyEnd::Closed), 31),
        cancelled(TokenUsage::default())
    );
    // It stalls past the stop deadline: nothing before, zero at it.
    let mut run = Run::streaming();
    run.event(Event::Cancel, 30);
    assert!(run.event(Event::Tick, 5029).is_empty());
    assert_eq!(
        run.event(Event::Tick, 5030),
        cancelled(TokenUsage::default())
    );
    assert!(run.m.is_done());
}

#[test]
fn a_lost_connection_stops_the_engine_and_tells_nobody() {
    for mut run in [Run::answered(200), Run::streaming()] {
        assert_eq!(
            run.event(Event::ConnectionLost, 30),
            vec![Action::StopEngine]
        );
        assert_eq!(
            run.event(ending("", BodyEnd::Stopped(usage(1, 1))), 31),
            vec![Action::Done(Outcome::Lost)]
        );
    }
    // A connection lost while a cancel waits for the usage: the cancel cannot be acknowledged.
    let mut run = Run::streaming();
    run.event(Event::Cancel, 30);
    assert!(run.event(Event::ConnectionLost, 31).is_empty());
    assert_eq!(
        run.event(Event::Tick, 5030),
        vec![Action::Done(Outcome::Lost)]
    );
}

#[test]
fn interrupts_while_reading_an_engine_failure_change_nothing() {
    let mut run = Run::answered(500);
    assert!(run.event(Event::Cancel, 1).is_empty());
    assert!(run.event(Event::ConnectionLost, 1).is_empty());
    assert_eq!(
        run.event(ending("down", BodyEnd::Closed), 2),
        failed(502, "engine answered 500: down", TokenUsage::default())
    );
}

#[test]
fn an_answer_that_cannot_be_encoded_fails_the_request() {
    // Encryption failed: the proxy is told.
    let mut run = Run::streaming();
    let refusal = refuse(502, "cannot encrypt the answer: x");
    assert_eq!(
        run.event(Event::OutputBroken(Some(refusal)), 20),
        failed(502, "cannot encrypt the answer: x", TokenUsage::default())
    );
    // Sealing failed: the driver told the proxy already.
    let mut run = Run::answered(200);
    assert_eq!(
        run.event(Event::OutputBroken(None), 1),
        vec![Action::Done(Outcome::Failed)]
    );
}

#[test]
fn no_deadline_while_the_engine_runs_on_its_own() {
    let mut run = Run::new();
    assert!(run.m.wants_start());
    assert_eq!(run.m.next_deadline(), None);
    assert!(run.event(Event::Tick, 1_000_000).is_empty());
    let run = Run::streaming();
    assert!(!run.m.wants_start());
    assert_eq!(run.m.next_deadline(), None);
}

#[test]
fn body_bytes_or_ticks_before_the_engine_answered_send_nothing() {
    let mut run = Run::new();
    assert!(run.event(data("data: early\n\n"), 1).is_empty());
    assert!(
        run.event(ending("", BodyEnd::End(usage(9, 9))), 2)
            .is_empty()
    );
    assert!(run.event(Event::Tick, 3).is_empty());
    assert!(run.m.wants_start(), "still waiting for the engine's head");
    assert!(run.event(Event::EngineStarted(Ok(head(200))), 4).is_empty());
    assert_eq!(
        run.event(ending("{}", BodyEnd::End(usage(1, 1))), 5)[0],
        Action::SendHead {
            head: head(200),
            data: Bytes::from_static(b"{}"),
            usage: Some(usage(1, 1)),
        }
    );
}

#[test]
fn a_cancel_then_a_lost_connection_tells_nobody_even_when_the_usage_comes() {
    for mut run in [Run::answered(200), Run::streaming()] {
        assert_eq!(run.event(Event::Cancel, 30), vec![Action::StopEngine]);
        assert!(run.event(Event::ConnectionLost, 31).is_empty());
        assert!(run.event(Event::Cancel, 32).is_empty(), "no second stop");
        assert_eq!(
            run.event(ending("data: late\n\n", BodyEnd::Stopped(usage(4, 4))), 33),
            vec![Action::Done(Outcome::Lost)]
        );
        assert!(run.m.is_done());
        assert!(
            run.event(Event::OutputBroken(Some(refuse(502, "x"))), 34)
                .is_empty()
        );
    }
}

#[test]
fn whatever_a_proxy_sends_after_the_end_nothing_more_goes_out() {
    let mut run = Run::streaming();
    run.event(ending("", BodyEnd::End(usage(2, 2))), 20);
    assert!(run.m.is_done());
    for event in [
        Event::Cancel,
        Event::ConnectionLost,
        Event::Tick,
        data("data: more\n\n"),
        Event::OutputBroken(Some(refuse(502, "late"))),
        Event::EngineStarted(Ok(head(200))),
    ] {
        assert!(run.event(event, 21).is_empty());
    }
    assert_eq!(run.m.next_deadline(), None);
}

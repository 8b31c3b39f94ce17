//! Each rule of the request machine, driven with plain values: no sockets, no clocks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use cocoon_market::WorkerId;
use cocoon_market::pricing::TokenCounts;
use cocoon_market::selection::{Outcome, Unavailability};
use cocoon_protocol::messages::{TokensUsed, ext, proxy};

use super::*;
use crate::state::WorkerEvent;

const RULES: Rules = Rules {
    max_attempts: 3,
    cancel_grace: Duration::from_secs(5),
};

fn used(prompt: i64, completion: i64) -> TokensUsed {
    TokensUsed {
        prompt_tokens_used: prompt,
        cached_tokens_used: 0,
        completion_tokens_used: completion,
        reasoning_tokens_used: 0,
        total_tokens_used: prompt + completion,
    }
}

fn final_info(prompt: i64, completion: i64) -> proxy::QueryFinalInfo {
    proxy::QueryFinalInfo {
        flags: 0,
        tokens_used: used(prompt, completion),
        worker_debug: None,
        worker_start_time: None,
        worker_end_time: None,
    }
}

fn counts(prompt: u64, completion: u64) -> TokenCounts {
    TokenCounts {
        prompt,
        cached: 0,
        completion,
        reasoning: 0,
    }
}

fn attempt(id: u64, cancellable: bool) -> AttemptView {
    AttemptView {
        worker: WorkerId(id),
        cancellable,
        limit_bound: cancellable,
    }
}

/// A machine that has reserved and been dispatched to worker 1.
struct Run {
    m: RequestMachine,
    t0: Instant,
}

impl Run {
    fn new(max_tokens: i32, cancellable: bool) -> Self {
        Self::on(max_tokens, attempt(1, cancellable))
    }

    fn on(max_tokens: i32, dispatched: AttemptView) -> Self {
        Self::asking(max_tokens, false, dispatched)
    }

    /// A transcription whose audio the client measured at `audio_units`.
    fn transcription(audio_units: i32) -> Self {
        Self::asking(audio_units, true, attempt(1, true))
    }

    fn asking(max_tokens: i32, audio: bool, dispatched: AttemptView) -> Self {
        Self::asking_sealed(max_tokens, audio, false, dispatched)
    }

    fn asking_sealed(max_tokens: i32, audio: bool, sealed: bool, dispatched: AttemptView) -> Self {
        let t0 = Instant::now();
        let ask = Ask {
            max_tokens,
            body_bytes: 1_000_000,
            audio,
            deadline: t0 + Duration::from_secs(60),
            sealed,
        };
        let (mut m, actions) = RequestMachine::start(RULES, ask);
        assert_eq!(actions, vec![Action::Reserve]);
        let actions = m.handle(Event::Reserved(Ok(())), t0);
        assert_eq!(
            actions,
            vec![Action::Dispatch {
                exclude: vec![],
                token_limit: u64::try_from(max_tokens).unwrap(),
            }]
        );
        assert!(m.handle(Event::Dispatched(Ok(dispatched)), t0).is_empty());
        Self { m, t0 }
    }

    fn at(&mut self, secs: u64, event: Event) -> Vec<Action> {
        self.m.handle(event, self.t0 + Duration::from_secs(secs))
    }

    fn worker(&mut self, event: WorkerEvent) -> Vec<Action> {
        self.at(1, Event::Worker(event))
    }

    /// The first answer, relayed.
    fn relay_first(&mut self) {
        let actions = self.worker(WorkerEvent::Answer {
            answer: Bytes::from_static(b"head"),
            final_info: None,
        });
        assert_eq!(
            actions,
            vec![
                Action::FirstByte,
                Action::Send(ToClient::Answer(Bytes::from_static(b"head")))
            ]
        );
        assert!(self.m.relayed());
    }
}

fn charge_of(actions: &[Action]) -> Option<(TokenCounts, Option<Violation>)> {
    actions.iter().find_map(|a| match a {
        Action::Charge {
            usage, violation, ..
        } => Some((*usage, *violation)),
        _ => None,
    })
}

fn ending(actions: &[Action]) -> Option<Ending> {
    actions.iter().find_map(|a| match a {
        Action::Done(e) => Some(*e),
        _ => None,
    })
}

#[test]
fn declared_limits_below_one_or_absurd_are_refused_before_any_reservation() {
    let cases: &[(i32, bool)] = &[
        (-5, false),
        (0, false),
        (1, true),
        (32_000, true),
        (MAX_REQUEST_TOKENS, true),
        (MAX_REQUEST_TOKENS + 1, false),
        (i32::MIN, false),
    ];
    for &(max_tokens, accepted) in cases {
        let ask = Ask {
            max_tokens,
            body_bytes: 10,
            audio: false,
            deadline: Instant::now(),
            sealed: false,
        };
        let (m, actions) = RequestMachine::start(RULES, ask);
        if accepted {
            assert_eq!(actions, vec![Action::Reserve], "{max_tokens}");
            assert_eq!(m.token_limit(), u64::try_from(max_tokens).unwrap());
        } else {
            assert!(
                matches!(
                    actions.as_slice(),
                    [
                        Action::Send(ToClient::Error { code: 400, .. }),
                        Action::Done(Ending::Refused)
                    ]
                ),
                "{max_tokens}: {actions:?}"
            );
            assert!(m.is_done());
        }
    }
}

#[test]
fn a_refused_reservation_reaches_no_worker() {
    let ask = Ask {
        max_tokens: 10,
        body_bytes: 10,
        audio: false,
        deadline: Instant::now(),
        sealed: false,
    };
    let (mut m, _) = RequestMachine::start(RULES, ask);
    let actions = m.handle(
        Event::Reserved(Err(Refusal::new(503, "ledger unavailable"))),
        Instant::now(),
    );
    assert!(!actions.iter().any(|a| matches!(a, Action::Dispatch { .. })));
    assert!(matches!(
        actions[0],
        Action::Send(ToClient::Error { code: 503, .. })
    ));
    assert_eq!(ending(&actions), Some(Ending::Refused));
}

#[test]
fn failures_before_the_first_byte_move_to_another_worker_then_give_up() {
    let mut run = Run::new(100, true);
    // Worker 1 fails (retryable), worker 2's connection drops, worker 3 is busy: 3 attempts.
    let actions = run.worker(WorkerEvent::Error {
        code: 503,
        message: "engine down".into(),
        final_info: None,
    });
    assert_eq!(
        actions,
        vec![
            Action::FinishAttempt(Outcome::Failure),
            Action::Dispatch {
                exclude: vec![WorkerId(1)],
                token_limit: 100
            }
        ]
    );
    run.at(1, Event::Dispatched(Ok(attempt(2, true))));
    let actions = run.worker(WorkerEvent::Lost);
    assert_eq!(
        actions[1],
        Action::Dispatch {
            exclude: vec![WorkerId(1), WorkerId(2)],
            token_limit: 100
        }
    );
    run.at(1, Event::Dispatched(Ok(attempt(3, true))));
    let actions = run.worker(WorkerEvent::Error {
        code: 429,
        message: "busy".into(),
        final_info: None,
    });
    assert_eq!(actions[0], Action::FinishAttempt(Outcome::Failure));
    assert_eq!(actions[1], Action::Release);
    assert!(matches!(
        &actions[2],
        Action::Send(ToClient::Error { code: 429, message, .. }) if message.contains("busy")
    ));
    assert_eq!(ending(&actions), Some(Ending::NoWorker));
}

#[test]
fn a_worker_refusal_of_the_request_itself_is_passed_on_and_free() {
    let mut run = Run::new(100, true);
    let actions = run.worker(WorkerEvent::Error {
        code: 400,
        message: "field `x` is not accepted".into(),
        final_info: Some(final_info(5, 0)),
    });
    assert_eq!(actions[0], Action::FinishAttempt(Outcome::Success));
    assert_eq!(actions[1], Action::Release);
    assert!(charge_of(&actions).is_none());
    assert!(matches!(
        actions[2],
        Action::Send(ToClient::Error { code: 400, .. })
    ));
}

#[test]
fn no_worker_at_all_releases_and_says_why() {
    let ask = Ask {
        max_tokens: 10,
        body_bytes: 10,
        audio: false,
        deadline: Instant::now(),
        sealed: false,
    };
    let (mut m, _) = RequestMachine::start(RULES, ask);
    m.handle(Event::Reserved(Ok(())), Instant::now());
    let actions = m.handle(
        Event::Dispatched(Err(Unavailability::AllBusy)),
        Instant::now(),
    );
    assert_eq!(actions[0], Action::Release);
    assert!(matches!(
        actions[1],
        Action::Send(ToClient::Error { code: 429, .. })
    ));
}

#[test]
fn a_finished_answer_is_charged_before_its_end_is_relayed() {
    let mut run = Run::new(100, true);
    run.relay_first();
    let actions = run.worker(WorkerEvent::Part {
        answer: Bytes::from_static(b"more"),
        final_info: None,
    });
    assert_eq!(
        actions,
        vec![Action::Send(ToClient::Part(Bytes::from_static(b"more")))]
    );
    assert!(
        run.worker(WorkerEvent::Receipt(Bytes::from_static(b"rcpt")))
            .is_empty()
    );
    let actions = run.worker(WorkerEvent::Part {
        answer: Bytes::from_static(b"end"),
        final_info: Some(final_info(30, 40)),
    });
    // Nothing goes to the client before the charge is booked.
    assert!(!actions.iter().any(|a| matches!(a, Action::Send(_))));
    assert_eq!(charge_of(&actions), Some((counts(30, 40), None)));
    let actions = run.at(2, Event::Charged(true));
    assert_eq!(
        actions[..2],
        [
            Action::Send(ToClient::Cost),
            Action::Send(ToClient::Receipt(Bytes::from_static(b"rcpt"))),
        ]
    );
    assert!(matches!(
        &actions[2],
        Action::Send(ToClient::Final { first: false, usage, .. }) if *usage == used(30, 40)
    ));
    assert_eq!(ending(&actions), Some(Ending::Succeeded));
}

#[test]
fn a_one_message_answer_is_held_back_too() {
    let mut run = Run::new(100, false);
    let actions = run.worker(WorkerEvent::Answer {
        answer: Bytes::from_static(b"all"),
        final_info: Some(final_info(3, 4)),
    });
    assert_eq!(actions[0], Action::FirstByte);
    assert!(!actions.iter().any(|a| matches!(a, Action::Send(_))));
    let actions = run.at(2, Event::Charged(true));
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Send(ToClient::Final { first: true, .. })))
    );
}

/// Every way a client can end a request once bytes were relayed: the worker is stopped and its
/// usage until then is charged.
#[test]
fn every_relayed_token_is_paid_for_however_the_client_ends_it() {
    for end in [ClientEnd::Cancelled, ClientEnd::Gone, ClientEnd::Stalled] {
        let mut run = Run::new(100, true);
        run.relay_first();
        let actions = run.at(2, Event::Client(end));
        assert_eq!(actions, vec![Action::CancelWorker], "{end:?}");
        // Parts still in flight are not relayed.
        assert!(
            run.worker(WorkerEvent::Part {
                answer: Bytes::from_static(b"late"),
                final_info: None
            })
            .is_empty()
        );
        // The worker acknowledges the cancel with its usage.
        let actions = run.at(
            3,
            Event::Worker(WorkerEvent::Error {
                code: ext::CANCELLED_ERROR_CODE,
                message: "cancelled".into(),
                final_info: Some(final_info(20, 7)),
            }),
        );
        assert_eq!(actions[0], Action::FinishAttempt(Outcome::Cancelled));
        assert_eq!(charge_of(&actions), Some((counts(20, 7), None)), "{end:?}");
        let actions = run.at(3, Event::Charged(true));
        let sends: Vec<_> = actions
            .iter()
            .filter(|a| matches!(a, Action::Send(_)))
            .collect();
        if end == ClientEnd::Gone {
            assert!(sends.is_empty(), "nobody to tell: {actions:?}");
        } else {
            assert_eq!(sends[0], &Action::Send(ToClient::Cost));
            assert!(matches!(
                sends[1],
                Action::Send(ToClient::Error { code: ext::CANCELLED_ERROR_CODE, usage, .. })
                    if *usage == used(20, 7)
            ));
        }
        assert_eq!(ending(&actions), Some(Ending::Cancelled));
    }
}

/// An end that bills usage without completing (a worker failing part way, a cancel it
/// acknowledges) carries the worker's receipt to the client, before the error, as a complete
/// answer does: the client prices its account of the charge at the coefficient it signs.
#[test]
fn the_receipt_goes_with_every_end_that_bills_usage() {
    let error = |code| WorkerEvent::Error {
        code,
        message: "stopped".into(),
        final_info: Some(final_info(30, 40)),
    };
    // (name, the client's end before the worker's, if any)
    for (name, stop) in [
        ("the worker fails part way", None),
        ("the client cancels", Some(ClientEnd::Cancelled)),
    ] {
        let mut run = Run::new(100, true);
        run.relay_first();
        if let Some(end) = stop {
            assert_eq!(run.at(2, Event::Client(end)), vec![Action::CancelWorker]);
        }
        assert!(
            run.worker(WorkerEvent::Receipt(receipt_signing(30, 40)))
                .is_empty(),
            "{name}"
        );
        let actions = run.at(3, Event::Worker(error(ext::CANCELLED_ERROR_CODE)));
        assert!(
            actions.iter().any(|a| matches!(
                a,
                Action::Charge {
                    signed_coefficient: Some(1000),
                    ..
                }
            )),
            "{name}: {actions:?}"
        );
        let actions = run.at(3, Event::Charged(true));
        let sends: Vec<_> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(s) => Some(s),
                _ => None,
            })
            .collect();
        assert!(
            matches!(
                sends[..],
                [ToClient::Cost, ToClient::Receipt(_), ToClient::Error { .. }]
            ),
            "{name}: {sends:?}"
        );
    }
}

/// A hostile worker bills a sealed request's usage without its receipt (or with one that did
/// not verify, which the driver does not pass on), so that the client, which holds such a
/// charge to be an overcharge, would drop its honest proxy: the worker is paid nothing and the
/// client charged nothing, and the attempt counts against the worker.
#[test]
fn a_sealed_answer_billed_without_its_receipt_is_charged_nothing() {
    let finish = |run: &mut Run| {
        run.worker(WorkerEvent::Part {
            answer: Bytes::from_static(b"end"),
            final_info: Some(final_info(30, 40)),
        })
    };
    let mut run = Run::asking_sealed(100, false, true, attempt(1, true));
    run.relay_first();
    let actions = finish(&mut run);
    assert_eq!(
        actions[0],
        Action::FinishAttempt(Outcome::Failure),
        "{actions:?}"
    );
    assert!(charge_of(&actions).is_none(), "{actions:?}");
    assert!(actions.contains(&Action::Release), "{actions:?}");
    assert!(
        actions.iter().any(|a| matches!(a, Action::Violation(_))),
        "the worker is not held to account: {actions:?}"
    );
    // With its receipt it is charged as signed; in clear, without one, as reported.
    let mut run = Run::asking_sealed(100, false, true, attempt(1, true));
    run.relay_first();
    run.worker(WorkerEvent::Receipt(receipt_signing(30, 40)));
    assert_eq!(charge_of(&finish(&mut run)), Some((counts(30, 40), None)));
    let mut run = Run::new(100, true);
    run.relay_first();
    assert_eq!(charge_of(&finish(&mut run)), Some((counts(30, 40), None)));
}

#[test]
fn a_cancel_before_any_byte_is_free() {
    for end in [ClientEnd::Cancelled, ClientEnd::Gone] {
        let mut run = Run::new(100, true);
        let actions = run.at(1, Event::Client(end));
        assert_eq!(
            actions,
            vec![
                Action::CancelWorker,
                Action::FinishAttempt(Outcome::Cancelled),
                Action::Release,
                Action::Done(Ending::Cancelled)
            ]
        );
    }
}

#[test]
fn a_timeout_after_bytes_stops_the_worker_and_charges_its_usage() {
    let mut run = Run::new(100, true);
    run.relay_first();
    assert!(run.at(30, Event::Tick).is_empty(), "not yet");
    assert_eq!(
        run.m.next_deadline(),
        Some(run.t0 + Duration::from_secs(60))
    );
    let actions = run.at(60, Event::Tick);
    assert_eq!(actions, vec![Action::CancelWorker]);
    let actions = run.at(
        61,
        Event::Worker(WorkerEvent::Part {
            answer: Bytes::new(),
            final_info: Some(final_info(10, 50)),
        }),
    );
    assert_eq!(charge_of(&actions), Some((counts(10, 50), None)));
    let actions = run.at(61, Event::Charged(true));
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Send(ToClient::Error { code: 504, .. })))
    );
    assert_eq!(ending(&actions), Some(Ending::TimedOut));
}

#[test]
fn a_timeout_before_bytes_is_free() {
    let mut run = Run::new(100, false);
    let actions = run.at(60, Event::Tick);
    assert_eq!(
        actions[..2],
        [Action::FinishAttempt(Outcome::Failure), Action::Release]
    );
    assert!(matches!(
        actions[2],
        Action::Send(ToClient::Error { code: 504, .. })
    ));
}

#[test]
fn a_worker_that_never_acknowledges_the_cancel_is_not_paid() {
    let mut run = Run::new(100, true);
    run.relay_first();
    run.at(2, Event::Client(ClientEnd::Gone));
    assert_eq!(run.m.next_deadline(), Some(run.t0 + Duration::from_secs(7)));
    assert!(run.at(6, Event::Tick).is_empty());
    let actions = run.at(7, Event::Tick);
    assert_eq!(
        actions,
        vec![
            Action::FinishAttempt(Outcome::Failure),
            Action::Release,
            Action::Done(Ending::Cancelled)
        ]
    );
}

#[test]
fn a_version_2_worker_cannot_be_stopped_so_its_end_is_awaited_until_the_deadline() {
    let mut run = Run::new(100, false);
    run.relay_first();
    let actions = run.at(2, Event::Client(ClientEnd::Gone));
    assert!(actions.is_empty(), "no cancel for a version-2 worker");
    assert_eq!(
        run.m.next_deadline(),
        Some(run.t0 + Duration::from_secs(65))
    );
    let actions = run.at(
        30,
        Event::Worker(WorkerEvent::Part {
            answer: Bytes::from_static(b"rest"),
            final_info: Some(final_info(5, 90)),
        }),
    );
    assert_eq!(charge_of(&actions), Some((counts(5, 90), None)));
}

#[test]
fn a_failure_midway_charges_what_the_worker_reported() {
    let mut run = Run::new(100, true);
    run.relay_first();
    let actions = run.worker(WorkerEvent::Error {
        code: 502,
        message: "engine stopped".into(),
        final_info: Some(final_info(8, 9)),
    });
    assert_eq!(actions[0], Action::FinishAttempt(Outcome::Failure));
    assert_eq!(charge_of(&actions), Some((counts(8, 9), None)));
    let actions = run.at(2, Event::Charged(true));
    assert!(matches!(
        &actions[1],
        Action::Send(ToClient::Error { code: 502, usage, .. }) if *usage == used(8, 9)
    ));
    // Lost midway: nothing reported, nothing charged.
    let mut run = Run::new(100, true);
    run.relay_first();
    let actions = run.worker(WorkerEvent::Lost);
    assert!(charge_of(&actions).is_none());
    assert!(actions.contains(&Action::Release));
}

#[test]
fn an_overflowing_queue_cuts_only_this_request() {
    let mut run = Run::new(100, true);
    run.relay_first();
    let actions = run.worker(WorkerEvent::Overflow);
    assert_eq!(actions, vec![Action::CancelWorker]);
    let actions = run.at(
        2,
        Event::Worker(WorkerEvent::Error {
            code: ext::CANCELLED_ERROR_CODE,
            message: String::new(),
            final_info: Some(final_info(1, 2)),
        }),
    );
    assert_eq!(charge_of(&actions), Some((counts(1, 2), None)));
}

#[test]
fn usage_above_the_bounds_is_charged_at_the_bounds_and_reported() {
    // (reported prompt, reported completion) → (charged, violation?) with limit 100 and a
    // 1,000-byte body.
    type Case = ((u64, u64), (u64, u64), bool);
    let cases: &[Case] = &[
        ((30, 40), (30, 40), false),
        ((1_000, 100), (1_000, 100), false),
        ((30, 101), (30, 100), true),
        ((30, 4_000_000), (30, 100), true),
        ((1_001, 10), (1_000, 10), true),
        ((u64::MAX, u64::MAX), (1_000, 100), true),
    ];
    for &((p, c), (bp, bc), violated) in cases {
        let (bounded, violation) = bound_usage(counts(p, c), 100, 1_000);
        assert_eq!(bounded, counts(bp, bc), "{p},{c}");
        assert_eq!(violation.is_some(), violated, "{p},{c}");
    }
    // Cached and reasoning never exceed their wholes.
    let (bounded, _) = bound_usage(
        TokenCounts {
            prompt: 10,
            cached: 50,
            completion: 5,
            reasoning: 9,
        },
        100,
        1_000,
    );
    assert_eq!((bounded.cached, bounded.reasoning), (10, 5));
    // Through the machine: an over-reporting worker.
    let mut run = Run::new(100, true);
    run.relay_first();
    let actions = run.worker(WorkerEvent::Part {
        answer: Bytes::new(),
        final_info: Some(final_info(30, 4_000)),
    });
    let (charged, violation) = charge_of(&actions).unwrap();
    assert_eq!(charged, counts(30, 100));
    assert_eq!(violation.unwrap().reported, counts(30, 4_000));
    // The request counts as a failure of the worker, however well it answered.
    assert_eq!(actions[0], Action::FinishAttempt(Outcome::Failure));
    // Negative counts are zero.
    let (bounded, violation) = bound_usage(
        super::counts(&TokensUsed {
            prompt_tokens_used: -5,
            completion_tokens_used: -1,
            ..TokensUsed::default()
        }),
        100,
        1_000,
    );
    assert_eq!(bounded, TokenCounts::default());
    assert!(violation.is_none());
}

/// A receipt whose claims sign `prompt` and `completion` tokens (its signature is the client's
/// to check: the proxy reads only what the worker signed for).
fn receipt_signing(prompt: u64, completion: u64) -> Bytes {
    Bytes::from(
        cocoon_attest::Receipt {
            claims: cocoon_attest::ReceiptClaims {
                client_request_id: [1; 32],
                envelope_hash: None,
                request_hash: [2; 32],
                answer_hash: [3; 32],
                model: "m".into(),
                model_hash: [4; 32],
                prompt_tokens: prompt,
                cached_tokens: 0,
                completion_tokens: completion,
                reasoning_tokens: 0,
                worker_image_hash: [5; 32],
                issued_at: 1,
                coefficient: Some(1000),
            },
            certificate: Vec::new(),
            signature: [0; 64],
        }
        .to_bytes(),
    )
}

/// Attack: a worker reports (and would be paid for) more tokens than its own receipt signs.
/// The proxy charges at most what the receipt signs, counts a metering violation, and relays
/// the usage charged, so that the client is shown (and vouched for) no more than was signed.
#[test]
fn usage_above_what_the_workers_receipt_signs_is_charged_at_what_it_signs() {
    // (signed prompt, signed completion), reported 30 + 40 → charged, violation?
    type Case = ((u64, u64), (u64, u64), bool);
    let cases: &[Case] = &[
        ((30, 40), (30, 40), false),
        ((100, 100), (30, 40), false),
        ((1, 1), (1, 1), true),
        ((30, 39), (30, 39), true),
    ];
    for &((sp, sc), (cp, cc), violated) in cases {
        let mut run = Run::new(100, true);
        run.relay_first();
        assert!(
            run.worker(WorkerEvent::Receipt(receipt_signing(sp, sc)))
                .is_empty()
        );
        let actions = run.worker(WorkerEvent::Part {
            answer: Bytes::from_static(b"end"),
            final_info: Some(final_info(30, 40)),
        });
        let (charged, violation) = charge_of(&actions).unwrap();
        assert_eq!(charged, counts(cp, cc), "signed {sp},{sc}");
        assert_eq!(violation.is_some(), violated, "signed {sp},{sc}");
    }
    // A receipt that does not read bounds nothing (the client refuses it).
    let (bounded, violation, coefficient) =
        bound_by_receipt(counts(30, 40), Some(&Bytes::from_static(b"x")));
    assert_eq!(
        (bounded, violation, coefficient),
        (counts(30, 40), None, None)
    );
}

/// The receipt signs the coefficient the worker served at, and the client prices its bound at
/// it: the proxy charges at no more than the receipt signs, and a worker that signs another
/// coefficient than it was offered commits a metering violation.
#[test]
fn the_charge_is_priced_at_no_more_than_the_coefficient_the_receipt_signs() {
    let c = |v| Coefficient::new(v).unwrap();
    // (offered, signed, charged at, violation)
    let cases = [
        (1500, None, 1500, false),
        (1500, Some(1500), 1500, false),
        (1500, Some(1000), 1000, true),
        (1500, Some(4000), 1500, true),
        (1500, Some(u32::MAX), 1500, true),
    ];
    for (offered, signed, charged, violation) in cases {
        assert_eq!(
            charge_coefficient(c(offered), signed),
            (c(charged), violation),
            "offered {offered}, signed {signed:?}"
        );
    }
    // The machine hands the driver what the receipt signs.
    let mut run = Run::on(100, attempt(1, true));
    run.relay_first();
    run.worker(WorkerEvent::Receipt(receipt_signing(30, 40)));
    let actions = run.worker(WorkerEvent::Part {
        answer: Bytes::from_static(b"end"),
        final_info: Some(final_info(30, 40)),
    });
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::Charge {
            signed_coefficient: Some(1000),
            ..
        }
    )));
}

#[test]
fn a_worker_claiming_longer_audio_than_the_client_measured_is_charged_the_client_measure() {
    // The client measured 150 units of audio (15 s at 10 units a second); the body has a
    // million bytes, which would let a chat request claim up to a million prompt tokens.
    let mut run = Run::transcription(150);
    run.relay_first();
    let actions = run.worker(WorkerEvent::Part {
        answer: Bytes::new(),
        final_info: Some(final_info(600, 0)),
    });
    let (charged, violation) = charge_of(&actions).unwrap();
    assert_eq!(charged, counts(150, 0));
    let violation = violation.unwrap();
    assert_eq!(violation.reported, counts(600, 0));
    assert_eq!(violation.bound.prompt, 150);
    assert_eq!(actions[0], Action::FinishAttempt(Outcome::Failure));

    // Transcript tokens billed on top of the audio are not charged either.
    let mut run = Run::transcription(150);
    run.relay_first();
    let actions = run.worker(WorkerEvent::Part {
        answer: Bytes::new(),
        final_info: Some(final_info(150, 40)),
    });
    let (charged, violation) = charge_of(&actions).unwrap();
    assert_eq!(charged, counts(150, 0));
    assert!(violation.is_some());

    // An honest worker (its own measure at or below the client's) is charged what it says.
    let mut run = Run::transcription(150);
    run.relay_first();
    let actions = run.worker(WorkerEvent::Part {
        answer: Bytes::new(),
        final_info: Some(final_info(150, 0)),
    });
    assert_eq!(charge_of(&actions), Some((counts(150, 0), None)));
    assert_eq!(actions[0], Action::FinishAttempt(Outcome::Success));
}

#[test]
fn a_charge_that_cannot_be_booked_withholds_the_end() {
    let mut run = Run::new(100, true);
    run.relay_first();
    run.worker(WorkerEvent::Part {
        answer: Bytes::from_static(b"end"),
        final_info: Some(final_info(3, 4)),
    });
    let actions = run.at(2, Event::Charged(false));
    assert_eq!(
        actions,
        vec![
            Action::Send(ToClient::Error {
                code: 503,
                message: "the proxy could not record the charge; the answer is withheld".into(),
                usage: TokensUsed::default(),
                worker_final: None,
            }),
            Action::Done(Ending::ChargeFailed)
        ]
    );
    assert_eq!(run.m.charged_usage(), &TokensUsed::default());
}

#[test]
fn a_second_first_answer_breaks_the_stream() {
    let mut run = Run::new(100, true);
    run.relay_first();
    let actions = run.worker(WorkerEvent::Answer {
        answer: Bytes::from_static(b"again"),
        final_info: None,
    });
    assert_eq!(actions[0], Action::CancelWorker);
    assert!(actions.contains(&Action::Release));
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Send(ToClient::Error { code: 502, .. })))
    );
}

#[test]
fn events_after_the_end_change_nothing() {
    let mut run = Run::new(100, true);
    run.worker(WorkerEvent::Answer {
        answer: Bytes::new(),
        final_info: Some(final_info(1, 1)),
    });
    run.at(2, Event::Charged(true));
    assert!(run.m.is_done());
    for event in [
        Event::Client(ClientEnd::Gone),
        Event::Tick,
        Event::Worker(WorkerEvent::Lost),
        Event::Charged(true),
    ] {
        assert!(run.at(100, event).is_empty());
    }
}

#[test]
fn sse_events_are_counted_across_any_split() {
    let stream = b"HEAD data: {\"a\":1}\n\ndata: {\"b\":\"x data: y\"}\n\ndata: [DONE]\n\n";
    for cut in 0..stream.len() {
        let mut c = SseEvents::default();
        c.feed(&stream[..cut]);
        assert_eq!(c.feed(&stream[cut..]), 3, "cut at {cut}");
    }
}

#[test]
fn a_version_2_worker_streaming_beyond_the_limit_is_cut_and_charged_at_the_bound() {
    // Limit 3: up to 3 + 4 events are relayed.
    let mut run = Run::new(3, false);
    let event = |i: usize| Bytes::from(format!("data: {{\"i\":{i}}}\n\n"));
    let actions = run.worker(WorkerEvent::Answer {
        answer: event(0),
        final_info: None,
    });
    assert!(matches!(actions[1], Action::Send(ToClient::Answer(_))));
    for i in 1..7 {
        let actions = run.worker(WorkerEvent::Part {
            answer: event(i),
            final_info: None,
        });
        assert!(
            matches!(actions[..], [Action::Send(ToClient::Part(_))]),
            "{i}: {actions:?}"
        );
    }
    // The eighth event is not relayed: the request is stopped (no cancel for version 2).
    let actions = run.worker(WorkerEvent::Part {
        answer: event(7),
        final_info: None,
    });
    assert!(actions.is_empty(), "{actions:?}");
    let actions = run.at(
        20,
        Event::Worker(WorkerEvent::Part {
            answer: event(99),
            final_info: Some(final_info(10, 100)),
        }),
    );
    let (charged, violation) = charge_of(&actions).unwrap();
    assert_eq!(charged, counts(10, 3));
    assert!(violation.is_some());
    let actions = run.at(20, Event::Charged(true));
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Send(ToClient::Error { code: 502, .. })))
    );
    // A version-3 worker is held to the limit by the worker itself, not by counting.
    let mut run = Run::new(3, true);
    run.relay_first();
    for i in 1..20 {
        let actions = run.worker(WorkerEvent::Part {
            answer: event(i),
            final_info: None,
        });
        assert!(matches!(actions[..], [Action::Send(ToClient::Part(_))]));
    }
}

#[test]
fn a_worker_not_handed_the_limit_is_held_to_it_by_counting_even_when_it_can_be_stopped() {
    // A request in the reference's encryption goes to a version-3 worker as `proxy.runQueryEx`,
    // which carries no token limit: the proxy counts, and stops the worker past the bound.
    let mut run = Run::on(
        3,
        AttemptView {
            worker: WorkerId(1),
            cancellable: true,
            limit_bound: false,
        },
    );
    let event = |i: usize| Bytes::from(format!("data: {{\"i\":{i}}}\n\n"));
    run.worker(WorkerEvent::Answer {
        answer: event(0),
        final_info: None,
    });
    for i in 1..7 {
        let actions = run.worker(WorkerEvent::Part {
            answer: event(i),
            final_info: None,
        });
        assert!(
            matches!(actions[..], [Action::Send(ToClient::Part(_))]),
            "{i}: {actions:?}"
        );
    }
    let actions = run.worker(WorkerEvent::Part {
        answer: event(7),
        final_info: None,
    });
    assert_eq!(actions, vec![Action::CancelWorker]);
}

/// Attack (a worker colluding with its client): worker 1 signs a receipt for nothing, then fails
/// before answering (retryable). The machine keeps worker 1's receipt across the retry, so when
/// worker 2 (an honest worker that sends no receipt: a version-2 worker, or any worker reached
/// with the reference's `proxy.runQueryEx`) answers 30 + 40 tokens, its pay and the client's
/// charge are bounded by worker 1's receipt: nothing is charged, worker 2 is paid nothing and
/// counted a metering violation.
#[test]
fn a_failed_attempts_receipt_does_not_bound_the_next_workers_pay() {
    let mut run = Run::new(100, true);
    assert!(
        run.worker(WorkerEvent::Receipt(receipt_signing(0, 0)))
            .is_empty()
    );
    let actions = run.worker(WorkerEvent::Error {
        code: 503,
        message: "engine down".into(),
        final_info: None,
    });
    assert!(
        actions.iter().any(|a| matches!(a, Action::Dispatch { .. })),
        "{actions:?}"
    );
    run.at(1, Event::Dispatched(Ok(attempt(2, false))));
    let actions = run.worker(WorkerEvent::Answer {
        answer: Bytes::from_static(b"all"),
        final_info: Some(final_info(30, 40)),
    });
    let charged = charge_of(&actions);
    assert_eq!(
        charged,
        Some((counts(30, 40), None)),
        "worker 2 answered 30 + 40 tokens; bounded by worker 1's receipt: {actions:?}"
    );
}

//! Each path of an answer at the client, driven with plain values: no sockets, no clocks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use cocoon_attest::receipt::body_hash;
use cocoon_protocol::messages::{TokensUsed, client, ext, http};
use cocoon_protocol::tl::{Int256, TlConstructor};

use super::*;
use crate::stream::receipt::tests::{receipt, receipt_at, workers};

const TIMEOUT: Duration = Duration::from_secs(10);
/// What the request reserved, in adjusted tokens.
const MAX_CHARGE: u64 = 9_999;

fn ask(t0: Instant, sealed: bool) -> Ask {
    Ask {
        started: t0,
        timeout: TIMEOUT,
        sealed,
        pricing: cocoon_market::PricingParams::default(),
        max_coefficient: cocoon_market::Coefficient::new(2000).unwrap(),
        max_charge: MAX_CHARGE,
        binding: ReceiptBinding {
            client_request_id: [0xA; 32],
            envelope_hash: sealed.then(|| body_hash(b"envelope A")),
            request_hash: body_hash(b"same prompt"),
            weights: None,
        },
        reference: None,
    }
}

/// The first answer: a `200` head whose payload is `first`.
pub(crate) fn answer(first: &str, final_info: Option<client::QueryFinalInfo>) -> ProxyEvent {
    let head = http::Response {
        http_version: "HTTP/1.1".into(),
        status_code: 200,
        reason: "OK".into(),
        headers: vec![http::Header {
            name: "Content-Type".into(),
            value: "application/json".into(),
        }],
        payload: Bytes::copy_from_slice(first.as_bytes()),
    };
    ProxyEvent::Answer {
        answer: Bytes::from(head.to_boxed_bytes()),
        final_info,
    }
}

fn part(bytes: &str) -> ProxyEvent {
    ProxyEvent::Part {
        answer: Bytes::copy_from_slice(bytes.as_bytes()),
        final_info: None,
    }
}

fn last(bytes: &str) -> ProxyEvent {
    ProxyEvent::Part {
        answer: Bytes::copy_from_slice(bytes.as_bytes()),
        final_info: Some(usage(3, 5)),
    }
}

fn usage(prompt: i64, completion: i64) -> client::QueryFinalInfo {
    client::QueryFinalInfo {
        flags: 0,
        tokens_used: TokensUsed {
            prompt_tokens_used: prompt,
            cached_tokens_used: 0,
            completion_tokens_used: completion,
            reasoning_tokens_used: 0,
            total_tokens_used: prompt + completion,
        },
        worker_debug: None,
        proxy_debug: None,
        proxy_start_time: Some(100.0),
        proxy_end_time: Some(100.5),
        worker_start_time: Some(100.1),
        worker_end_time: Some(100.4),
    }
}

fn cost(total: i64) -> ProxyEvent {
    ProxyEvent::Cost(ext::QueryCost {
        request_id: Int256([0xA; 32]),
        coefficient: 1000,
        prompt_cost: total / 2,
        completion_cost: total - total / 2,
        total_cost: total,
    })
}

fn error(code: i32) -> ProxyEvent {
    ProxyEvent::Error {
        code,
        message: "no worker".into(),
        final_info: None,
    }
}

/// An action as one short line, so a path reads as a list.
fn line(action: &Action) -> String {
    match action {
        Action::Head { status, .. } => format!("head {status}"),
        Action::Emit(b) => format!("emit {}", String::from_utf8_lossy(b)),
        Action::CancelAtProxy => "cancel".into(),
        Action::ForgetSealedCandidates => "forget candidates".into(),
        Action::CheckReceipt(_) => "check receipt".into(),
        Action::ExpectCharge(bound) => format!("expect charge {}", bound.tokens),
        Action::Record(Ending::Succeeded { usage, .. }) => format!(
            "succeeded {} tokens {} nanoton",
            usage.total_tokens, usage.total_cost
        ),
        Action::Record(Ending::Failed) => "failed".into(),
        Action::Record(Ending::Cancelled) => "cancelled".into(),
        Action::Finish(Ok(())) => "end".into(),
        Action::Finish(Err(e)) => format!("error: {e}"),
    }
}

/// Feeds `(seconds after the start, event)` in order and returns every action as a line.
fn run(sealed: bool, events: Vec<(u64, Event)>) -> (Vec<String>, AnswerMachine) {
    let t0 = Instant::now();
    let mut m = AnswerMachine::new(ask(t0, sealed));
    let mut lines = Vec::new();
    for (at, event) in events {
        let actions = m.handle(event, t0 + Duration::from_secs(at));
        // The charge bound has its own table (`every_end_bounds_what_the_proxy_may_charge`).
        lines.extend(
            actions
                .iter()
                .filter(|a| !matches!(a, Action::ExpectCharge(_)))
                .map(line),
        );
    }
    (lines, m)
}

fn proxy(e: ProxyEvent) -> Event {
    Event::Proxy(e)
}

/// A path: its name, whether the request went sealed, the events, the actions expected.
type Case<'a> = (&'a str, bool, Vec<(u64, Event)>, Vec<&'a str>);

#[test]
fn every_path_of_an_answer() {
    let timeout = format!("error: {}", ClientError::Timeout(TIMEOUT));
    let lost = "error: answer interrupted: the proxy connection was lost";
    let cases: Vec<Case<'_>> = vec![
        (
            "first byte, parts, final part with usage",
            false,
            vec![
                (1, proxy(answer("he", None))),
                (1, proxy(part("llo"))),
                (2, proxy(cost(42))),
                (2, proxy(last("!"))),
            ],
            vec![
                "head 200",
                "emit he",
                "emit llo",
                "emit !",
                "succeeded 8 tokens 42 nanoton",
                "end",
            ],
        ),
        (
            "the whole answer in the first message (sealed, its receipt missing: checked empty)",
            true,
            vec![
                (1, proxy(cost(7))),
                (1, proxy(answer("hi", Some(usage(1, 1))))),
            ],
            vec![
                "head 200",
                "emit hi",
                "check receipt",
                "succeeded 2 tokens 7 nanoton",
                "end",
            ],
        ),
        (
            "a receipt is checked when the answer is complete",
            false,
            vec![
                (1, proxy(answer("a", None))),
                (1, proxy(ProxyEvent::Receipt(Bytes::from_static(b"r")))),
                (1, proxy(cost(1))),
                (1, proxy(last(""))),
            ],
            vec![
                "head 200",
                "emit a",
                "check receipt",
                "succeeded 8 tokens 1 nanoton",
                "end",
            ],
        ),
        (
            "the caller goes away mid-answer",
            false,
            vec![(1, proxy(answer("he", None))), (2, Event::CallerGone)],
            vec![
                "head 200",
                "emit he",
                "cancel",
                "cancelled",
                "error: answer interrupted: the caller went away",
            ],
        ),
        (
            "an answer gathered whole grows past its bound",
            false,
            vec![
                (1, proxy(answer("he", None))),
                (2, Event::TooLarge { limit: 2 }),
                (3, proxy(last("llo"))),
            ],
            vec![
                "head 200",
                "emit he",
                "cancel",
                "failed",
                "error: the answer exceeds 2 bytes (max_answer_bytes)",
            ],
        ),
        (
            "the caller goes away before the first byte",
            true,
            vec![(1, Event::CallerGone)],
            vec![
                "cancel",
                "cancelled",
                "error: answer interrupted: the caller went away",
            ],
        ),
        (
            "the proxy connection is lost mid-answer",
            false,
            vec![(1, proxy(answer("he", None))), (2, proxy(ProxyEvent::Lost))],
            vec!["head 200", "emit he", "failed", lost],
        ),
        (
            "the proxy connection is lost before the first byte",
            true,
            vec![(1, proxy(ProxyEvent::Lost))],
            vec!["failed", lost],
        ),
        (
            "no first byte before the deadline",
            false,
            vec![(3, Event::Tick), (10, Event::Tick)],
            vec!["cancel", "failed", &timeout],
        ),
        (
            "the deadline passes mid-answer",
            false,
            vec![(1, proxy(answer("he", None))), (11, Event::Tick)],
            vec!["head 200", "emit he", "cancel", "failed", &timeout],
        ),
        (
            "a sealed request refused before its answer forgets its candidates",
            true,
            vec![(1, proxy(error(503)))],
            vec!["forget candidates", "failed", "error: no worker (code 503)"],
        ),
        (
            "a request in clear refused before its answer",
            false,
            vec![(1, proxy(error(503)))],
            vec!["failed", "error: no worker (code 503)"],
        ),
        (
            "a sealed request failing midway keeps its candidates",
            true,
            vec![(1, proxy(answer("he", None))), (2, proxy(error(502)))],
            vec![
                "head 200",
                "emit he",
                "failed",
                "error: no worker (code 502)",
            ],
        ),
        (
            "a part before the answer head",
            false,
            vec![(1, proxy(part("x")))],
            vec![
                "failed",
                "error: answer interrupted: unexpected message before the first answer",
            ],
        ),
        (
            "a second answer head",
            false,
            vec![(1, proxy(answer("a", None))), (1, proxy(answer("b", None)))],
            vec![
                "head 200",
                "emit a",
                "failed",
                "error: answer interrupted: a second first answer arrived",
            ],
        ),
        (
            "nothing happens after the end",
            false,
            vec![
                (1, proxy(cost(9))),
                (1, proxy(answer("a", Some(usage(1, 1))))),
                (1, proxy(part("late"))),
                (1, proxy(ProxyEvent::Lost)),
                (11, Event::Tick),
                (12, Event::CallerGone),
            ],
            vec!["head 200", "emit a", "succeeded 2 tokens 9 nanoton", "end"],
        ),
    ];
    for (name, sealed, events, expected) in cases {
        let (lines, m) = run(sealed, events);
        assert_eq!(lines, expected, "{name}");
        assert!(m.is_done(), "{name}: over");
        assert_eq!(m.next_deadline(), None, "{name}: no more deadline");
    }
}

#[test]
fn a_head_that_does_not_decode_ends_the_request() {
    let (lines, _) = run(
        false,
        vec![(
            1,
            proxy(ProxyEvent::Answer {
                answer: Bytes::from_static(b"not a response"),
                final_info: None,
            }),
        )],
    );
    assert_eq!(lines[0], "failed");
    assert!(
        lines[1].starts_with("error: answer interrupted: bad response head"),
        "{lines:?}"
    );
}

#[test]
fn the_deadline_is_the_start_plus_the_timeout_until_the_end() {
    let t0 = Instant::now();
    let mut m = AnswerMachine::new(ask(t0, false));
    assert_eq!(m.next_deadline(), Some(t0 + TIMEOUT));
    assert!(m.handle(Event::Tick, t0 + TIMEOUT / 2).is_empty());
    m.handle(proxy(answer("a", None)), t0);
    assert_eq!(m.next_deadline(), Some(t0 + TIMEOUT));
    m.handle(proxy(last("")), t0 + Duration::from_secs(2));
    assert_eq!(m.next_deadline(), None);
}

#[test]
fn usage_times_and_overhead_come_from_the_final_part() {
    let t0 = Instant::now();
    let mut m = AnswerMachine::new(ask(t0, false));
    assert_eq!(m.usage(), crate::api::CostedUsage::default());
    m.handle(proxy(answer("a", None)), t0);
    m.handle(proxy(cost(30)), t0);
    let actions = m.handle(proxy(last("")), t0 + Duration::from_secs(2));
    // Two seconds here, half a second of them at the proxy.
    assert!(actions.contains(&Action::Record(Ending::Succeeded {
        usage: m.usage(),
        overhead: Some(Duration::from_millis(1500)),
    })));
    let u = m.usage();
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (3, 5, 8)
    );
    assert_eq!((u.prompt_total_cost, u.total_cost), (15, 30));
    let mut times = crate::api::HopTimes::default();
    m.reported_times(&mut times);
    assert_eq!(times.proxy_start, Some(100.0));
    assert_eq!(times.worker_end, Some(100.4));
}

#[test]
fn without_a_reported_cost_the_tokens_are_priced_here() {
    let t0 = Instant::now();
    let mut m = AnswerMachine::new(ask(t0, false));
    m.handle(proxy(answer("a", None)), t0);
    m.handle(proxy(ProxyEvent::Payment { request_tokens: 10 }), t0);
    m.handle(proxy(last("")), t0);
    let price = cocoon_market::PricingParams::default().price_per_token;
    assert_eq!(
        m.usage().total_cost,
        10 * i64::try_from(price).unwrap(),
        "the payment notice's tokens at the network's price"
    );
}

/// The receipt the machine asks to check, for an answer arriving as `parts`.
fn receipt_check(sealed: bool, parts: &[&str]) -> ReceiptCheck {
    let t0 = Instant::now();
    let mut m = AnswerMachine::new(ask(t0, sealed));
    let signed = receipt([0xA; 32], None);
    m.handle(proxy(ProxyEvent::Receipt(Bytes::from(signed))), t0);
    m.handle(proxy(answer(parts[0], None)), t0);
    for p in &parts[1..] {
        m.handle(proxy(part(p)), t0);
    }
    receipt_to_check(m.handle(proxy(last("")), t0)).expect("a receipt to check")
}

/// The receipt check among `actions`, if the machine asked for one.
fn receipt_to_check(actions: Vec<Action>) -> Option<ReceiptCheck> {
    actions.into_iter().find_map(|a| match a {
        Action::CheckReceipt(check) => Some(check),
        _ => None,
    })
}

#[test]
fn the_receipt_is_bound_to_the_answer_bytes_as_they_arrived() {
    let now = cocoon_net::unix_time() as u64;
    // The receipt signs "same answer" for a request in clear: however it was cut, it verifies.
    let check = receipt_check(false, &["same ", "ans", "wer"]);
    assert_eq!(check.answer_hash, body_hash(b"same answer"));
    assert_eq!(check.verify(&workers(), now, None), Ok(()));
    // Another answer, or the same answer to a sealed request, is refused.
    assert_eq!(
        receipt_check(false, &["same answer, changed"]).verify(&workers(), now, None),
        Err(ClientError::ReceiptForAnotherRequest("answer"))
    );
    assert_eq!(
        receipt_check(true, &["same answer"]).verify(&workers(), now, None),
        Err(ClientError::ReceiptForAnotherRequest("sealed envelope"))
    );
}

#[test]
fn a_refusal_naming_its_field_fails_with_that_param_and_the_plain_message() {
    let message = cocoon_protocol::refusal::Refusal {
        message: "`top_p` must be a number from 0 to 1".into(),
        param: Some("top_p".into()),
    }
    .encode();
    let t0 = Instant::now();
    let mut m = AnswerMachine::new(ask(t0, false));
    let actions = m.handle(
        proxy(ProxyEvent::Error {
            code: 400,
            message,
            final_info: None,
        }),
        t0 + Duration::from_secs(1),
    );
    let failure = actions.iter().find_map(|a| match a {
        Action::Finish(Err(e)) => Some(e),
        _ => None,
    });
    let Some(ClientError::Remote {
        code,
        message,
        param,
    }) = failure
    else {
        panic!(
            "expected a remote failure, got {:?}",
            actions.iter().map(line).collect::<Vec<_>>()
        );
    };
    assert_eq!(*code, 400);
    assert_eq!(message, "`top_p` must be a number from 0 to 1");
    assert_eq!(param.as_deref(), Some("top_p"));
}

/// The receipt check for an answer "same answer" whose final part reports `final_usage`, with
/// the worker's receipt (which signs 3 prompt and 5 completion tokens) relayed before it.
fn receipt_check_with_usage(final_usage: client::QueryFinalInfo) -> (ReceiptCheck, CostedUsage) {
    let t0 = Instant::now();
    let mut m = AnswerMachine::new(ask(t0, false));
    let signed = receipt([0xA; 32], None);
    m.handle(proxy(ProxyEvent::Receipt(Bytes::from(signed))), t0);
    m.handle(proxy(answer("same answer", None)), t0);
    let last = proxy(ProxyEvent::Part {
        answer: Bytes::new(),
        final_info: Some(final_usage),
    });
    let check = receipt_to_check(m.handle(last, t0)).expect("a receipt to check");
    (check, m.usage())
}

#[test]
fn a_final_usage_above_the_counts_the_receipt_signs_is_not_accepted() {
    let now = cocoon_net::unix_time() as u64;
    // The counts the worker signed, or fewer (a proxy charging at its bound), verify.
    for (prompt, completion) in [(3, 5), (3, 4), (0, 0)] {
        let (check, _) = receipt_check_with_usage(usage(prompt, completion));
        assert_eq!(
            check.verify(&workers(), now, None),
            Ok(()),
            "{prompt}+{completion} tokens are within the receipt's 3+5"
        );
    }
    // A proxy that reports (and bills) more than the worker signed for: the same receipt must
    // not make that usage look verified.
    for (prompt, completion) in [(3, 500), (300, 5), (3, 6)] {
        let (check, shown) = receipt_check_with_usage(usage(prompt, completion));
        assert_eq!(
            (shown.prompt_tokens, shown.completion_tokens),
            (prompt, completion),
            "the usage the caller is shown"
        );
        assert!(
            check.verify(&workers(), now, None).is_err(),
            "a final usage of {prompt}+{completion} tokens verified against a receipt that \
             signs 3+5"
        );
    }
}

#[test]
fn a_second_usage_or_cost_after_the_end_changes_nothing() {
    let t0 = Instant::now();
    let mut m = AnswerMachine::new(ask(t0, false));
    let mut lines = Vec::new();
    let events = vec![
        proxy(cost(9)),
        proxy(answer("a", Some(usage(1, 1)))),
        // A proxy reporting the usage again, bigger, with a bigger cost and a receipt.
        proxy(cost(999)),
        proxy(ProxyEvent::Part {
            answer: Bytes::from_static(b"more"),
            final_info: Some(usage(100, 100)),
        }),
        proxy(ProxyEvent::Receipt(Bytes::from(receipt([0xA; 32], None)))),
        proxy(ProxyEvent::Payment {
            request_tokens: 1_000_000,
        }),
        proxy(error(502)),
    ];
    for e in events {
        lines.extend(m.handle(e, t0).iter().map(line));
    }
    assert_eq!(
        lines,
        vec![
            "head 200",
            "emit a",
            "expect charge 5",
            "succeeded 2 tokens 9 nanoton",
            "end"
        ]
    );
    let u = m.usage();
    assert_eq!(
        (u.total_tokens, u.total_cost),
        (2, 9),
        "the first final usage stays"
    );
}

#[test]
fn an_answer_that_fails_after_its_head_checks_no_receipt_and_never_succeeds() {
    // The worker's receipt arrived, then the proxy (or worker) ends the answer with an error
    // that carries a usage: the request failed; the receipt is not offered as proof.
    let (lines, m) = run(
        false,
        vec![
            (1, proxy(answer("he", None))),
            (
                1,
                proxy(ProxyEvent::Receipt(Bytes::from(receipt([0xA; 32], None)))),
            ),
            (1, proxy(cost(50))),
            (
                2,
                proxy(ProxyEvent::Error {
                    code: 502,
                    message: "worker lost".into(),
                    final_info: Some(usage(3, 5)),
                }),
            ),
            (2, proxy(last("llo"))),
        ],
    );
    assert_eq!(
        lines,
        vec![
            "head 200",
            "emit he",
            "failed",
            "error: worker lost (code 502)"
        ]
    );
    assert!(m.is_done());
}

#[test]
fn a_receipt_naming_another_request_id_is_refused_through_the_machine() {
    let t0 = Instant::now();
    let now = cocoon_net::unix_time() as u64;
    let mut m = AnswerMachine::new(ask(t0, false));
    // Same body, same answer, same worker: the receipt of request B relayed for request A.
    m.handle(
        proxy(ProxyEvent::Receipt(Bytes::from(receipt([0xB; 32], None)))),
        t0,
    );
    m.handle(proxy(answer("same answer", None)), t0);
    let check = receipt_to_check(m.handle(proxy(last("")), t0)).expect("a receipt to check");
    assert_eq!(
        check.verify(&workers(), now, None),
        Err(ClientError::ReceiptForAnotherRequest("request id"))
    );
}

#[test]
fn a_sealed_answer_whose_receipt_was_dropped_is_not_vouched_for() {
    // A version-3 worker signs a receipt for every sealed answer; a proxy that drops it leaves
    // the answer with none, which the client reports as missing rather than saying nothing.
    for sealed in [true, false] {
        let t0 = Instant::now();
        let mut m = AnswerMachine::new(ask(t0, sealed));
        m.handle(proxy(answer("same answer", None)), t0);
        let check = receipt_to_check(m.handle(proxy(last("")), t0));
        match (sealed, check) {
            (true, Some(check)) => assert_eq!(
                check.verify(&workers(), cocoon_net::unix_time() as u64, None),
                Err(ClientError::ReceiptMissing)
            ),
            (true, None) => panic!("a sealed answer without a receipt was not checked"),
            // In clear, a version-2 worker signs none: nothing to report.
            (false, check) => assert!(check.is_none(), "{check:?}"),
        }
    }
}

/// A receipt relayed, then its claims as the driver hands them over once it verified them.
fn relayed_and_signed(encoded: Vec<u8>) -> Vec<Event> {
    let claims = cocoon_attest::Receipt::from_bytes(&encoded).unwrap().claims;
    vec![
        proxy(ProxyEvent::Receipt(Bytes::from(encoded))),
        Event::Signed(Box::new(claims)),
    ]
}

fn cost_at(coefficient: i32) -> ProxyEvent {
    ProxyEvent::Cost(ext::QueryCost {
        request_id: Int256([0xA; 32]),
        coefficient,
        prompt_cost: 0,
        completion_cost: 0,
        total_cost: 0,
    })
}

/// Every way a request ends says, once, the most the proxy may charge for it: a complete
/// answer its usage (3 prompt and 5 completion tokens: 3 × 1.0 + 5 × 4.0 adjusted tokens at
/// 1.0×) at the reported coefficient, never above the request's `max_coefficient` (2.0× here);
/// any other end what was reserved.
#[test]
fn every_end_bounds_what_the_proxy_may_charge() {
    let negative = ProxyEvent::Part {
        answer: Bytes::from_static(b"x"),
        final_info: Some(usage(-3, 5)),
    };
    // (name, events at seconds after the start, the bound expected)
    type BoundCase<'a> = (&'a str, Vec<(u64, Event)>, u64);
    let cases: Vec<BoundCase<'_>> = vec![
        (
            "at 1.0x",
            vec![
                (0, proxy(cost_at(1000))),
                (0, proxy(answer("a", None))),
                (0, proxy(last("b"))),
            ],
            23,
        ),
        (
            "at 1.5x, floored per category",
            vec![
                (0, proxy(cost_at(1500))),
                (0, proxy(answer("a", None))),
                (0, proxy(last("b"))),
            ],
            34,
        ),
        (
            "no cost reported: at max_coefficient",
            vec![(0, proxy(answer("a", None))), (0, proxy(last("b")))],
            46,
        ),
        (
            "a coefficient above max_coefficient",
            vec![
                (0, proxy(cost_at(4000))),
                (0, proxy(answer("a", None))),
                (0, proxy(last("b"))),
            ],
            46,
        ),
        (
            "a coefficient the wire cannot hold",
            vec![
                (0, proxy(cost_at(-1))),
                (0, proxy(answer("a", None))),
                (0, proxy(last("b"))),
            ],
            46,
        ),
        (
            "usage that cannot be priced",
            vec![(0, proxy(answer("a", None))), (0, proxy(negative))],
            MAX_CHARGE,
        ),
        (
            "an error before the head",
            vec![(0, proxy(error(502)))],
            MAX_CHARGE,
        ),
        (
            "an error after the head",
            vec![(0, proxy(answer("a", None))), (0, proxy(error(502)))],
            MAX_CHARGE,
        ),
        (
            "an error after content, carrying the usage charged",
            vec![
                (0, proxy(cost_at(1000))),
                (0, proxy(answer("a", None))),
                (
                    0,
                    proxy(ProxyEvent::Error {
                        code: 502,
                        message: "worker lost".into(),
                        final_info: Some(usage(3, 5)),
                    }),
                ),
            ],
            23,
        ),
        (
            "an error before the head, carrying no usage",
            vec![(
                0,
                proxy(ProxyEvent::Error {
                    code: 429,
                    message: "busy".into(),
                    final_info: Some(usage(0, 0)),
                }),
            )],
            0,
        ),
        (
            "the caller went away",
            vec![(0, proxy(answer("a", None))), (0, Event::CallerGone)],
            MAX_CHARGE,
        ),
        (
            "the deadline",
            vec![(0, proxy(answer("a", None))), (11, Event::Tick)],
            MAX_CHARGE,
        ),
        (
            "the connection was lost",
            vec![(0, proxy(answer("a", None))), (0, proxy(ProxyEvent::Lost))],
            MAX_CHARGE,
        ),
    ];
    for (name, events, expected) in cases {
        let t0 = Instant::now();
        let mut m = AnswerMachine::new(ask(t0, false));
        let mut bounds = Vec::new();
        for (at, event) in events {
            for action in m.handle(event, t0 + Duration::from_secs(at)) {
                if let Action::ExpectCharge(bound) = action {
                    bounds.push(bound.tokens);
                }
            }
        }
        // Anything after the end changes nothing.
        for action in m.handle(proxy(last("late")), t0) {
            assert!(!matches!(action, Action::ExpectCharge(_)), "{name}");
        }
        assert_eq!(bounds, vec![expected], "{name}");
    }
}

/// A proxy relays usage above what the worker's receipt signs (3 prompt, 5 completion): the
/// receipt is refused, and the charge bound counts no more than was signed.
#[test]
fn the_charge_bound_counts_no_more_than_the_receipt_signs() {
    let t0 = Instant::now();
    let mut m = AnswerMachine::new(ask(t0, false));
    let mut bounds = Vec::new();
    let mut events = vec![proxy(cost_at(1000)), proxy(answer("a", None))];
    events.extend(relayed_and_signed(receipt([0xA; 32], None)));
    events.push(proxy(ProxyEvent::Part {
        answer: Bytes::from_static(b"b"),
        final_info: Some(usage(3, 500)),
    }));
    for e in events {
        for action in m.handle(e, t0) {
            if let Action::ExpectCharge(b) = action {
                bounds.push(b.tokens);
            }
        }
    }
    assert_eq!(bounds, vec![3 + 5 * 4], "not 3 + 500 x 4.0");
}

/// A proxy reports a higher coefficient than the one it paid the worker at (2.0× against the
/// 1.0× the worker's receipt signs), to charge the client the difference: the bound is priced
/// at the signed coefficient. A version-2 receipt signs none, and the reported one stands.
#[test]
fn the_charge_bound_is_priced_at_the_coefficient_the_worker_signed() {
    // (name, coefficient the proxy reports, coefficient the receipt signs, bound expected)
    let cases = [
        (
            "the receipt's 1.0x, not the reported 2.0x",
            2000,
            Some(1000),
            23,
        ),
        (
            "the receipt's 1.5x, reported the same",
            1500,
            Some(1500),
            34,
        ),
        ("a receipt above max_coefficient", 1000, Some(9000), 46),
        ("a version-2 receipt: the reported 1.5x", 1500, None, 34),
    ];
    for (name, reported, signed, expected) in cases {
        let t0 = Instant::now();
        let mut m = AnswerMachine::new(ask(t0, false));
        let mut events = vec![proxy(cost_at(reported)), proxy(answer("a", None))];
        events.extend(relayed_and_signed(receipt_at([0xA; 32], None, signed)));
        events.push(proxy(last("b")));
        let mut bounds = Vec::new();
        for e in events {
            for action in m.handle(e, t0) {
                if let Action::ExpectCharge(b) = action {
                    bounds.push(b.tokens);
                }
            }
        }
        assert_eq!(bounds, vec![expected], "{name}");
    }
}

/// The ends of a request that bill usage, each with or without the worker's receipt (1.0×)
/// while the proxy reports 2.0×: the receipt prices the bound whatever way the request ended; a
/// sealed request without one may be charged nothing (its worker signs every such end), a
/// request in clear at the reported coefficient.
#[test]
fn a_charge_without_the_workers_receipt_is_bound_by_what_the_request_went_as() {
    let error_with_usage = || {
        proxy(ProxyEvent::Error {
            code: 502,
            message: "worker failed".into(),
            final_info: Some(usage(3, 5)),
        })
    };
    #[derive(Clone, Copy)]
    enum Relayed {
        Verified,
        Refused,
        Withheld,
    }
    use Relayed::{Refused, Verified, Withheld};
    let complete: fn() -> Event = || proxy(last("b"));
    let error: fn() -> Event = error_with_usage;
    // (name, sealed, the receipt, the end, bound expected)
    let cases = [
        ("clear, complete, receipt", false, Verified, complete, 23),
        ("clear, complete, withheld", false, Withheld, complete, 46),
        ("clear, complete, forged", false, Refused, complete, 46),
        ("clear, error, receipt", false, Verified, error, 23),
        ("clear, error, withheld", false, Withheld, error, 46),
        ("sealed, error, receipt", true, Verified, error, 23),
        ("sealed, complete, withheld", true, Withheld, complete, 0),
        ("sealed, complete, forged", true, Refused, complete, 0),
        ("sealed, error, withheld", true, Withheld, error, 0),
    ];
    for (name, sealed, relayed, end, expected) in cases {
        let t0 = Instant::now();
        let mut a = ask(t0, sealed);
        a.binding.envelope_hash = sealed.then_some([0xE; 32]);
        let mut m = AnswerMachine::new(a);
        let mut events = vec![proxy(cost_at(2000)), proxy(answer("a", None))];
        let envelope = sealed.then_some([0xE; 32]);
        let encoded = receipt_at([0xA; 32], envelope, Some(1000));
        match relayed {
            Verified => events.extend(relayed_and_signed(encoded)),
            // Relayed, but it did not verify: the driver hands over no claims.
            Refused => events.push(proxy(ProxyEvent::Receipt(Bytes::from(encoded)))),
            Withheld => {}
        }
        events.push(end());
        let mut bounds = Vec::new();
        for e in events {
            for action in m.handle(e, t0) {
                if let Action::ExpectCharge(b) = action {
                    bounds.push(b.tokens);
                }
            }
        }
        assert_eq!(bounds, vec![expected], "{name}");
    }
}

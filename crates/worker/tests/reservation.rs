//! The worker against a scripted version 3 proxy over a real RA-TLS loopback session, with a
//! fake OpenAI upstream as its engine: the token limit the proxy reserved binds the body the
//! engine gets, a cancel stops the engine and is acknowledged with code 499 and the tokens used
//! so far, and the receipt names the client's request id.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use cocoon_protocol::Message;
use cocoon_protocol::messages::{ext, proxy};
use cocoon_protocol::tl::Int256;
use cocoon_testkit::FakeUpstream;
use cocoon_testkit::upstream::AnswerShape;
use serde_json::{Value, json};
use support::*;

fn run_query(body: &Value, request_id: u8, token_limit: i64) -> ext::WorkerRunQuery {
    ext::WorkerRunQuery {
        query: query(body),
        coefficient: 1000,
        timeout: 30.0,
        request_id: Int256([request_id; 32]),
        client_request_id: Int256([request_id ^ 0xFF; 32]),
        token_limit,
        flags: 0,
        enable_debug: None,
    }
}

/// `max_tokens` / `max_completion_tokens` of the last body the upstream received.
fn last_limits(up: &FakeUpstream) -> (Option<Value>, Option<Value>) {
    let recorded = up.recorded_requests();
    let last = recorded.last().expect("the upstream got no request");
    let body: Value = serde_json::from_slice(&last.body).unwrap();
    (
        body.get("max_tokens").cloned(),
        body.get("max_completion_tokens").cloned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reserved_token_limit_binds_what_the_engine_is_asked_for() {
    let up = upstream(small_answer()).await;
    let (mut proxy, _) = net(&up).await;

    // Above the limit: clamped.
    proxy
        .send(run_query(&chat(json!({"max_tokens": 100_000})), 1, 16))
        .await;
    let (_, last) = proxy.finish(Int256([1; 32])).await;
    assert!(
        matches!(
            last,
            Message::ProxyQueryAnswerPartEx(_) | Message::ProxyQueryAnswerEx(_)
        ),
        "{last:?}"
    );
    assert_eq!(last_limits(&up), (Some(json!(16)), None));

    // Both fields, each clamped.
    proxy
        .send(run_query(
            &chat(json!({"max_tokens": 8, "max_completion_tokens": 500})),
            2,
            16,
        ))
        .await;
    proxy.finish(Int256([2; 32])).await;
    assert_eq!(last_limits(&up), (Some(json!(8)), Some(json!(16))));

    // Absent: set to the limit.
    proxy.send(run_query(&chat(json!({})), 3, 24)).await;
    proxy.finish(Int256([3; 32])).await;
    assert_eq!(last_limits(&up), (Some(json!(24)), None));
    let served = up.stats().requests;

    // Refused before the engine: bad counts, more choices, an empty reservation; the field at
    // fault travels with the message.
    for (id, body, limit, needle, param) in [
        (
            4,
            chat(json!({"max_tokens": 5.5})),
            16,
            "integer of at least 1",
            Some("max_tokens"),
        ),
        (
            5,
            chat(json!({"max_tokens": -3})),
            16,
            "integer of at least 1",
            Some("max_tokens"),
        ),
        (
            6,
            chat(json!({"max_tokens": "9"})),
            16,
            "integer of at least 1",
            Some("max_tokens"),
        ),
        (7, chat(json!({"n": 2})), 16, "`n`", Some("n")),
        (
            8,
            chat(json!({"best_of": 0})),
            16,
            "`best_of`",
            Some("best_of"),
        ),
        (
            9,
            chat(json!({"max_tokens": 4})),
            0,
            "reservation covers no completion tokens",
            None,
        ),
        (
            10,
            chat(json!({})),
            -7,
            "reservation covers no completion tokens",
            None,
        ),
    ] {
        proxy.send(run_query(&body, id, limit)).await;
        let (receipt, last) = proxy.finish(Int256([id; 32])).await;
        let Message::ProxyQueryAnswerErrorEx(e) = last else {
            panic!("{body} limit {limit}: expected a refusal, got {last:?}");
        };
        assert_eq!(e.error_code, 400, "{body}: {}", e.error);
        let refusal = cocoon_protocol::refusal::Refusal::decode(&e.error);
        assert!(refusal.message.contains(needle), "{body}: {}", e.error);
        assert_eq!(refusal.param.as_deref(), param, "{body}: {}", e.error);
        assert!(receipt.is_none());
    }
    assert_eq!(
        up.stats().requests,
        served,
        "a refused request reached the engine"
    );

    // The reference proxy's request carries no limit: the body goes as it is.
    let reference = proxy::RunQueryEx {
        query: query(&chat(json!({"max_tokens": 100_000}))),
        signed_payment: proxy::AnySignedPayment::default(),
        coefficient: 1000,
        timeout: 30.0,
        request_id: Int256([11; 32]),
        flags: 0,
        enable_debug: None,
        private_key: None,
    };
    proxy.send(reference).await;
    let (receipt, _) = proxy.finish(Int256([11; 32])).await;
    assert_eq!(last_limits(&up), (Some(json!(100_000)), None));
    assert!(
        receipt.is_none(),
        "no receipt without the client's request id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_stops_the_engine_and_is_acknowledged_with_the_tokens_used() {
    let mut slow = AnswerShape::default();
    slow.chunks = 100_000;
    slow.chunk_bytes = 8;
    slow.delay = Duration::from_millis(5);
    let up = upstream(slow).await;
    let (mut proxy, engine) = net(&up).await;

    let id = Int256([21; 32]);
    proxy
        .send(run_query(&chat(json!({"stream": true})), 21, 1_000_000))
        .await;
    // The head, then a few parts: tokens are being generated.
    let mut parts = 0;
    while parts < 5 {
        match proxy.next_for(id).await {
            Message::ProxyQueryAnswerEx(_) | Message::ProxyQueryAnswerPartEx(_) => parts += 1,
            other => panic!("unexpected before the cancel: {other:?}"),
        }
    }
    proxy.send(ext::CancelQuery { request_id: id }).await;
    let (receipt, last) = proxy.finish(id).await;
    let Message::ProxyQueryAnswerErrorEx(e) = last else {
        panic!("expected the cancel's acknowledgement, got {last:?}");
    };
    assert_eq!(e.error_code, ext::CANCELLED_ERROR_CODE, "{}", e.error);
    let used = e
        .final_info
        .expect("the acknowledgement carries usage")
        .tokens_used;
    assert!(used.completion_tokens_used >= 4, "{used:?}");
    assert!(used.prompt_tokens_used > 0, "{used:?}");
    assert_eq!(
        used.total_tokens_used,
        used.prompt_tokens_used + used.completion_tokens_used
    );
    // The acknowledged usage is signed, with the coefficient offered, like a complete answer's.
    let receipt = cocoon_attest::Receipt::from_bytes(&receipt.expect("a receipt for the usage"))
        .unwrap()
        .claims;
    assert_eq!(
        (receipt.prompt_tokens, receipt.completion_tokens),
        (
            u64::try_from(used.prompt_tokens_used).unwrap(),
            u64::try_from(used.completion_tokens_used).unwrap()
        )
    );
    assert_eq!(receipt.coefficient, Some(1000));

    // The engine stopped: the upstream request was abandoned, not read to its end.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while engine.stats().active != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the engine kept generating"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(engine.stats().cancelled, 1);

    // A cancel for a request that is not running changes nothing, and the worker still serves.
    proxy.send(ext::CancelQuery { request_id: id }).await;
    proxy
        .send(run_query(&chat(json!({"max_tokens": 3})), 22, 1_000_000))
        .await;
    let (_, last) = proxy.finish(Int256([22; 32])).await;
    assert!(
        !matches!(last, Message::ProxyQueryAnswerErrorEx(_)),
        "{last:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receipt_names_the_clients_request_id() {
    let up = upstream(small_answer()).await;
    let (mut proxy, _) = net(&up).await;
    let q = run_query(&chat(json!({"max_tokens": 4})), 31, 64);
    let client_request_id = q.client_request_id;
    let body_sent = serde_json::to_vec(&chat(json!({"max_tokens": 4}))).unwrap();
    proxy.send(q).await;
    let (receipt, last) = proxy.finish(Int256([31; 32])).await;
    assert!(
        !matches!(last, Message::ProxyQueryAnswerErrorEx(_)),
        "{last:?}"
    );
    let receipt = cocoon_attest::Receipt::from_bytes(&receipt.expect("no receipt")).unwrap();
    let verified = receipt
        .verify(
            &cocoon_attest::Policy::local_simulated(),
            &cocoon_attest::EvidenceVerifier::default(),
        )
        .unwrap();
    verified.check_request(&client_request_id.0, None).unwrap();
    verified
        .check_bodies(Some(body_sent.as_slice()), None)
        .unwrap();
    // Not the proxy's id, and not presentable for another request.
    assert!(verified.check_request(&[31; 32], None).is_err());
    assert!(
        verified
            .check_request(&client_request_id.0, Some(&[0; 32]))
            .is_err()
    );
}

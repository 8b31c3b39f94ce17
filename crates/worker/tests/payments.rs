//! What a proxy pays a worker, against a scripted version 3 proxy over a real RA-TLS loopback
//! session: the worker holds each payment (`proxy.workerRequestPayment`) against its own
//! account of the request (the usage it reported, at the coefficient the proxy offered, at the
//! local prices here) and reports a request paid less; and it refuses a request offered at a
//! coefficient below its own, which would let a proxy pay less by naming a lower price.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use cocoon_market::{Coefficient, PricingParams, TokenCounts};
use cocoon_protocol::Message;
use cocoon_protocol::messages::{ext, proxy};
use cocoon_protocol::tl::Int256;
use serde_json::json;
use support::*;

fn run_query(request_id: u8, coefficient: i64) -> ext::WorkerRunQuery {
    ext::WorkerRunQuery {
        query: query(&chat(json!({}))),
        coefficient,
        timeout: 30.0,
        request_id: Int256([request_id; 32]),
        client_request_id: Int256([request_id ^ 0xFF; 32]),
        token_limit: 64,
        flags: 0,
        enable_debug: None,
    }
}

fn payment(request_id: u8, request_tokens: i64) -> proxy::WorkerRequestPayment {
    proxy::WorkerRequestPayment {
        request_id: Int256([request_id; 32]),
        signed_payment: proxy::AnySignedPayment::default(),
        db_tokens: 0,
        max_tokens: 0,
        request_tokens,
        request_client_owner: "client".into(),
    }
}

/// Serves request `id` at 1.0×; answers what its usage is worth at the local prices.
async fn served(proxy: &mut ScriptedProxy, id: u8) -> i64 {
    proxy.send(run_query(id, 1000)).await;
    let (_, last) = proxy.finish(Int256([id; 32])).await;
    let usage = match last {
        Message::ProxyQueryAnswerPartEx(m) => m.final_info.unwrap().tokens_used,
        Message::ProxyQueryAnswerEx(m) => m.final_info.unwrap().tokens_used,
        other => panic!("request {id} did not finish: {other:?}"),
    };
    let counts = TokenCounts::try_from(&usage).unwrap();
    let charge = PricingParams::default()
        .charge(&counts, Coefficient::ONE)
        .unwrap();
    assert!(charge.adjusted_total() > 0);
    i64::try_from(charge.adjusted_total()).unwrap()
}

async fn audit_reaches(
    handle: &cocoon_worker::WorkerHandle,
    audited: u64,
) -> cocoon_market::audit::AuditCounts {
    for _ in 0..100 {
        let counts = handle.snapshot().payment_audit;
        if counts.audited >= audited {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the worker audited fewer than {audited} payments");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_paid_less_than_its_usage_is_found() {
    let up = upstream(small_answer()).await;
    let (mut proxy, _, handle) = net_with_handle(&up).await;

    let worth = served(&mut proxy, 1).await;
    proxy.send(payment(1, worth)).await;
    let counts = audit_reaches(&handle, 1).await;
    assert_eq!(counts.discrepancies, 0, "{counts:?}");

    // Paid one adjusted token less.
    let worth = served(&mut proxy, 2).await;
    proxy.send(payment(2, worth - 1)).await;
    let counts = audit_reaches(&handle, 2).await;
    assert_eq!((counts.discrepancies, counts.discrepancy_tokens), (1, 1));
    let said = counts.last_discrepancy.unwrap();
    assert!(
        said.starts_with(&format!("the proxy paid {} adjusted tokens", worth - 1)),
        "{said}"
    );

    // Paid for a request it never sent: no loss to the worker, nothing held.
    proxy.send(payment(9, 5)).await;
    // A later payment for request 2 adds up: paid in full now, still counted once.
    proxy.send(payment(2, 1)).await;
    let worth = served(&mut proxy, 3).await;
    proxy.send(payment(3, worth)).await;
    let counts = audit_reaches(&handle, 3).await;
    assert_eq!(counts.discrepancies, 1, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coefficient_below_the_workers_is_refused() {
    let up = upstream(small_answer()).await;
    let (mut proxy, _, _) = net_with_handle(&up).await;
    // The worker asks 1.0×; the proxy offers half.
    proxy.send(run_query(1, 500)).await;
    let (_, last) = proxy.finish(Int256([1; 32])).await;
    let Message::ProxyQueryAnswerErrorEx(e) = last else {
        panic!("served at half price: {last:?}");
    };
    assert_eq!(e.error_code, 409, "{}", e.error);
    assert!(e.error.contains("below this worker's 1000"), "{}", e.error);
    assert!(up.recorded_requests().is_empty(), "the engine was asked");
    // At its price it serves.
    served(&mut proxy, 2).await;
}

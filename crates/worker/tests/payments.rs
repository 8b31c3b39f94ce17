//! What a proxy pays a worker, against a scripted version 3 proxy over a real RA-TLS loopback
//! session: the worker holds each payment (`proxy.workerRequestPayment`) against its own
//! account of the request (the usage it reported, at the coefficient the proxy offered, at the
//! local prices here) and reports a request paid less; it holds the committed total the proxy
//! shows to the payments it notified; and it refuses a request offered at a coefficient below
//! its own, which would let a proxy pay less by naming a lower price.

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

/// A payment notice: `request_tokens` paid, leaving the worker's committed total at `total` (the
/// scripted proxy shows 0 at the handshake).
fn payment(request_id: u8, request_tokens: i64, total: i64) -> proxy::WorkerRequestPayment {
    proxy::WorkerRequestPayment {
        request_id: Int256([request_id; 32]),
        signed_payment: proxy::AnySignedPayment::default(),
        db_tokens: total,
        max_tokens: total,
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

    let first = served(&mut proxy, 1).await;
    proxy.send(payment(1, first, first)).await;
    let counts = audit_reaches(&handle, 1).await;
    assert_eq!(counts.discrepancies, 0, "{counts:?}");

    // Paid one adjusted token less.
    let worth = served(&mut proxy, 2).await;
    let mut total = first + worth - 1;
    proxy.send(payment(2, worth - 1, total)).await;
    let counts = audit_reaches(&handle, 2).await;
    assert_eq!((counts.discrepancies, counts.discrepancy_tokens), (1, 1));
    let said = counts.last_discrepancy.unwrap();
    assert!(
        said.starts_with(&format!("the proxy paid {} adjusted tokens", worth - 1)),
        "{said}"
    );

    // Paid for a request it never sent: no loss to the worker, nothing held.
    total += 5;
    proxy.send(payment(9, 5, total)).await;
    // A later payment for request 2 adds up: paid in full now, still counted once.
    total += 1;
    proxy.send(payment(2, 1, total)).await;

    // The proxy that paid less is served no more (the payments above, sent before, are
    // handled before this request is).
    proxy.send(run_query(3, 1000)).await;
    let (_, last) = proxy.finish(Int256([3; 32])).await;
    let Message::ProxyQueryAnswerErrorEx(e) = last else {
        panic!("a proxy that underpaid was served again: {last:?}");
    };
    assert_eq!(e.error_code, 503, "{}", e.error);
    assert!(e.error.contains("serves this proxy no more"), "{}", e.error);
    let snapshot = handle.snapshot();
    assert_eq!(snapshot.payment_audit.discrepancies, 1, "{snapshot:?}");
    let [(_, why)] = snapshot.underpaying_proxies.iter().collect::<Vec<_>>()[..] else {
        panic!("{:?}", snapshot.underpaying_proxies);
    };
    assert!(why.starts_with("the proxy paid"), "{why}");
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

/// Attack: a proxy offers twice the worker's coefficient, so that the worker's receipt (which
/// signs the coefficient offered) lets it charge the client 2.0× while it pays the worker 1.0×.
/// The worker takes no coefficient but its own: 409, the engine never asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coefficient_above_the_workers_is_refused() {
    let up = upstream(small_answer()).await;
    let (mut proxy, _, _) = net_with_handle(&up).await;
    proxy.send(run_query(1, 2000)).await;
    let (_, last) = proxy.finish(Int256([1; 32])).await;
    let Message::ProxyQueryAnswerErrorEx(e) = last else {
        panic!("served at twice its price: {last:?}");
    };
    assert_eq!(e.error_code, 409, "{}", e.error);
    assert!(e.error.contains("above this worker's 1000"), "{}", e.error);
    assert!(up.recorded_requests().is_empty(), "the engine was asked");
}

// Ways around the audit and the floor, and a refusal of an honest proxy.

/// Attack: a version-3 proxy sends the request as the reference's `proxy.runQueryEx` (which an
/// honest proxy sends too, for a request in the reference's encryption). That message is served
/// with `Binding::default()`: no coefficient floor, no audit, so it runs at 0.001x.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_message_from_a_version_3_proxy_is_held_to_the_floor() {
    let up = upstream(small_answer()).await;
    let (mut proxy, _, _) = net_with_handle(&up).await;
    proxy
        .send(proxy::RunQueryEx {
            query: query(&chat(json!({}))),
            signed_payment: proxy::AnySignedPayment::default(),
            coefficient: 1,
            timeout: 30.0,
            request_id: Int256([1; 32]),
            flags: 0,
            enable_debug: None,
            private_key: None,
        })
        .await;
    let (_, last) = proxy.finish(Int256([1; 32])).await;
    assert!(
        matches!(&last, Message::ProxyQueryAnswerErrorEx(e) if e.error_code == 409),
        "served at coefficient 1 (0.001x) to a version-3 proxy: {last:?}"
    );
}

/// Attack: a proxy notifies each payment in full (every notice passes the audit) but never
/// credits the worker in its books: the committed total it shows, which its vouchers sign,
/// stays where it was. The worker holds the total to the notices and serves it no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_total_that_does_not_grow_with_the_payments_is_found() {
    let up = upstream(small_answer()).await;
    let (mut proxy, _, handle) = net_with_handle(&up).await;
    let worth = served(&mut proxy, 1).await;
    proxy.send(payment(1, worth, 0)).await;
    let counts = audit_reaches(&handle, 1).await;
    assert_eq!(
        counts.discrepancies, 0,
        "the notice itself was short: {counts:?}"
    );

    proxy.send(run_query(2, 1000)).await;
    let (_, last) = proxy.finish(Int256([2; 32])).await;
    let Message::ProxyQueryAnswerErrorEx(e) = last else {
        panic!("a proxy whose total fell short was served again: {last:?}");
    };
    assert_eq!(e.error_code, 503, "{}", e.error);
    let snapshot = handle.snapshot();
    let [(_, why)] = snapshot.underpaying_proxies.iter().collect::<Vec<_>>()[..] else {
        panic!("{:?}", snapshot.underpaying_proxies);
    };
    assert!(
        why.starts_with(&format!(
            "the proxy's committed total for this worker is 0 adjusted tokens, {worth} short"
        )),
        "{why}"
    );
}

/// Attack: a proxy reuses a request id it already paid for, so that one payment covers two
/// requests. An id in flight, or still held by the audit, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_used_again_is_refused() {
    let up = upstream(small_answer()).await;
    let (mut proxy, _, handle) = net_with_handle(&up).await;
    let worth = served(&mut proxy, 1).await;
    proxy.send(payment(1, worth, worth)).await;
    audit_reaches(&handle, 1).await;
    let asked = up.recorded_requests().len();
    proxy.send(run_query(1, 1000)).await;
    let (_, last) = proxy.finish(Int256([1; 32])).await;
    let Message::ProxyQueryAnswerErrorEx(e) = last else {
        panic!("a second request under id 1 was served: {last:?}");
    };
    assert_eq!(e.error_code, 409, "{}", e.error);
    assert!(e.error.contains("already in use"), "{}", e.error);
    assert_eq!(up.recorded_requests().len(), asked, "the engine was asked");
}

/// Attack: a proxy offers a coefficient beyond `Coefficient`'s range, which no price can be
/// computed with (the audit would hold the request to nothing). It is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coefficient_beyond_range_is_refused() {
    let up = upstream(small_answer()).await;
    let (mut proxy, _, _) = net_with_handle(&up).await;
    proxy.send(run_query(1, 1 << 40)).await;
    let (_, last) = proxy.finish(Int256([1; 32])).await;
    let Message::ProxyQueryAnswerErrorEx(e) = last else {
        panic!("served at coefficient 2^40: {last:?}");
    };
    assert_eq!(e.error_code, 409, "{}", e.error);
    assert!(up.recorded_requests().is_empty(), "the engine was asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_contract_that_does_not_read_leaves_the_floor_on() {
    let up = upstream(small_answer()).await;
    let (mut proxy, _, _) = net_scripted(
        &up,
        |c| c.registry.chain = Some("toncenter=http://127.0.0.1:9".into()),
        "not-an-address".into(),
        None,
        None,
    )
    .await;
    proxy.send(run_query(1, 1)).await;
    let (_, last) = proxy.finish(Int256([1; 32])).await;
    assert!(
        matches!(&last, Message::ProxyQueryAnswerErrorEx(e) if e.error_code == 409),
        "served at coefficient 1 (0.001x) once the proxy named a contract that does not read: \
         {last:?}"
    );
}

/// False cut-off of an honest proxy: its contract's prices could not be read when the session
/// opened (a chain API down), so its payments are judged at the local prices, which may not be
/// its own. A request paid less is reported, and the proxy is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_judged_at_fallback_prices_is_not_cut_off() {
    let up = upstream(small_answer()).await;
    let contract = cocoon_ton::Address::new(0, [1; 32]).to_raw();
    let (mut proxy, _, handle) = net_scripted(
        &up,
        |c| c.registry.chain = Some("toncenter=http://127.0.0.1:9".into()),
        contract,
        None,
        None,
    )
    .await;
    let worth = served(&mut proxy, 1).await;
    proxy.send(payment(1, worth - 1, worth - 1)).await;
    let counts = audit_reaches(&handle, 1).await;
    assert_eq!(counts.discrepancies, 1, "{counts:?}");
    served(&mut proxy, 2).await;
    assert!(handle.snapshot().underpaying_proxies.is_empty());
}

/// Attack: one of our proxies answers protocol version 2, as a reference proxy does, so that
/// the worker holds neither its coefficients nor its payments to account. A worker that
/// requires audited proxies refuses the session (and one that does not serves it, as it
/// serves reference proxies).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_answering_version_2_is_refused_when_audits_are_required() {
    let up = upstream(small_answer()).await;
    let (proxy, _, _) = support::net_scripted_at(
        2,
        &up,
        |c| c.require_audited_proxies = true,
        "local-proxy-contract".into(),
        (None, None),
    )
    .await;
    tokio::time::timeout(Duration::from_secs(10), proxy.conn.closed())
        .await
        .expect("the worker kept a session it cannot audit");
    let (mut proxy, _, _) =
        support::net_scripted_at(2, &up, |_| {}, "local-proxy-contract".into(), (None, None)).await;
    proxy.send(run_query(1, 1)).await;
    let (_, last) = proxy.finish(Int256([1; 32])).await;
    assert!(
        !matches!(&last, Message::ProxyQueryAnswerErrorEx(_)),
        "a version-2 session is served as a reference one: {last:?}"
    );
}

/// False refusal of an honest proxy: the coefficient changes after `worker.params` left (which
/// carries it) and before the session is in `state.sessions` (handshake round trips, then up to
/// 10 s reading the proxy contract), so no `worker.newCoefficient` ever reaches this proxy. 30 s
/// later every request it offers at the coefficient it knows is refused with 409 (which the
/// proxy passes to the client, not retried), until the next change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coefficient_changed_during_the_handshake_reaches_the_proxy() {
    let up = upstream(small_answer()).await;
    let (release, hold) = tokio::sync::oneshot::channel();
    let (params_tx, mut params_rx) = tokio::sync::mpsc::channel(1);
    let (mut proxy, _, handle) =
        net_scripted(&up, |_| {}, String::new(), Some(hold), Some(params_tx)).await;
    let params = params_rx.recv().await.unwrap();
    handle.set_coefficient(2000).await.unwrap();
    release.send(()).unwrap();
    // What the proxy knows: the params' coefficient, then every announcement.
    let mut known = i64::from(params.coefficient);
    let until = tokio::time::Instant::now() + Duration::from_secs(31);
    while let Ok(Some(m)) = tokio::time::timeout_at(until, proxy.packets.recv()).await {
        if let Message::WorkerNewCoefficient(c) = m {
            known = i64::from(c.new_coefficient);
        }
    }
    proxy.send(run_query(1, known)).await;
    let (_, last) = proxy.finish(Int256([1; 32])).await;
    assert!(
        !matches!(last, Message::ProxyQueryAnswerErrorEx(_)),
        "an honest proxy offering the coefficient it was told ({known}) is refused: {last:?}"
    );
}

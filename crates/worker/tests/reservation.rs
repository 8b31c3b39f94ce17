//! The worker against a scripted version 3 proxy over a real RA-TLS loopback session, with a
//! fake OpenAI upstream as its engine: the token limit the proxy reserved binds the body the
//! engine gets, a cancel stops the engine and is acknowledged with code 499 and the tokens used
//! so far, and the receipt names the client's request id.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cocoon_infer::upstream::{UpstreamConfig as EngineConfig, UpstreamEngine};
use cocoon_net::{AttestationConfig, Connection, ConnectionConfig, Inbound};
use cocoon_protocol::Message;
use cocoon_protocol::messages::{ext, http, proxy, worker};
use cocoon_protocol::tl::{self, Int256, TlConstructor};
use cocoon_testkit::upstream::AnswerShape;
use cocoon_testkit::{FakeUpstream, UpstreamConfig};
use cocoon_worker::{Worker, WorkerConfig};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const MODEL: &str = "Qwen/Qwen3-8B";

/// A proxy that answers the worker's handshake and otherwise lets the test speak for it.
struct ScriptedProxy {
    conn: Connection,
    /// Packets from the worker, decoded.
    packets: mpsc::Receiver<Message>,
}

impl ScriptedProxy {
    async fn send(&self, msg: impl TlConstructor) {
        self.conn
            .send_packet(Bytes::from(msg.to_boxed_bytes()))
            .await
            .unwrap();
    }

    /// The next packet about `request_id` (others, like the sealing-key announcement, skipped).
    async fn next_for(&mut self, request_id: Int256) -> Message {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(15), self.packets.recv())
                .await
                .expect("the worker said nothing in time")
                .expect("the worker hung up");
            let id = match &msg {
                Message::ProxyQueryAnswerEx(m) => m.request_id,
                Message::ProxyQueryAnswerPartEx(m) => m.request_id,
                Message::ProxyQueryAnswerErrorEx(m) => m.request_id,
                Message::ExtQueryReceipt(m) => m.request_id,
                _ => continue,
            };
            if id == request_id {
                return msg;
            }
        }
    }

    /// Reads the request's messages to its end: the receipt if any, and how it ended.
    async fn finish(&mut self, request_id: Int256) -> (Option<Bytes>, Message) {
        let mut receipt = None;
        loop {
            match self.next_for(request_id).await {
                Message::ExtQueryReceipt(r) => receipt = Some(r.receipt),
                Message::ProxyQueryAnswerEx(m) if m.final_info.is_none() => {}
                Message::ProxyQueryAnswerPartEx(m) if m.final_info.is_none() => {}
                last => return (receipt, last),
            }
        }
    }
}

/// Answers the handshake queries of a worker session; the payment poll gets an error.
async fn answer_queries(mut incoming: cocoon_net::Incoming, out: mpsc::Sender<Message>) {
    while let Some(item) = incoming.recv().await {
        match item {
            Inbound::Packet(data) => {
                if let Ok(m) = tl::from_bytes::<Message>(data)
                    && out.send(m).await.is_err()
                {
                    return;
                }
            }
            Inbound::Query(q) => {
                let answer: Option<Vec<u8>> = match tl::from_bytes::<Message>(q.data.clone()) {
                    Ok(Message::WorkerConnectToProxy(_)) => Some(
                        worker::ConnectedToProxy {
                            params: proxy::Params {
                                flags: 0,
                                proxy_public_key: Int256([7; 32]),
                                proxy_owner_address: "scripted-proxy-owner".into(),
                                proxy_sc_address: String::new(),
                                is_test: Some(true),
                                proto_version: Some(cocoon_protocol::version::SEALED_VERSION),
                            },
                            worker_sc_address: String::new(),
                        }
                        .to_boxed_bytes(),
                    ),
                    Ok(Message::WorkerCompareBalanceWithProxy(_)) => Some(
                        worker::CompareBalanceWithProxyResult {
                            signed_payment: proxy::AnySignedPayment::default(),
                            tokens_committed_to_db: 0,
                            max_tokens: 0,
                            error_code: 0,
                        }
                        .to_boxed_bytes(),
                    ),
                    Ok(Message::WorkerProxyHandshakeComplete(_)) => {
                        Some(worker::ProxyHandshakeCompleted {}.to_boxed_bytes())
                    }
                    _ => None,
                };
                let _ = match answer {
                    Some(a) => q.answer(Bytes::from(a)).await,
                    None => q.fail(400, "not scripted").await,
                };
            }
        }
    }
}

/// A scripted proxy with one worker connected to it, serving `upstream`.
async fn net(upstream: &FakeUpstream) -> (ScriptedProxy, Arc<UpstreamEngine>) {
    let attestation = AttestationConfig::local_simulated();
    let identity = attestation
        .identity(cocoon_attest::ratls::ClaimsFormat::Reference)
        .unwrap();
    let endpoint = attestation.endpoint(identity).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();

    let mut engine = EngineConfig::new(upstream.url());
    engine.models = vec![MODEL.into()];
    let engine = Arc::new(UpstreamEngine::new(engine).unwrap());
    let config = WorkerConfig {
        proxies: vec![addr],
        model: MODEL.into(),
        stats_listen: None,
        attestation: AttestationConfig::local_simulated(),
        ..WorkerConfig::default()
    };
    let w = Worker::new(config, engine.clone()).unwrap();
    tokio::spawn(w.run(std::future::pending::<()>()));

    let (tcp, _) = tokio::time::timeout(Duration::from_secs(15), listener.accept())
        .await
        .expect("the worker did not dial")
        .unwrap();
    let secured = cocoon_net::accept_gated(tcp, 1, &endpoint, ConnectionConfig::acceptor())
        .await
        .unwrap();
    let (tx, packets) = mpsc::channel(1024);
    tokio::spawn(answer_queries(secured.incoming, tx));
    (
        ScriptedProxy {
            conn: secured.conn,
            packets,
        },
        engine,
    )
}

async fn upstream(shape: AnswerShape) -> FakeUpstream {
    let mut config = UpstreamConfig::default();
    config.models = vec![MODEL.into()];
    config.shape = shape;
    config.record_requests = 16;
    FakeUpstream::start(config).await.unwrap()
}

fn small_answer() -> AnswerShape {
    let mut s = AnswerShape::default();
    s.chunks = 4;
    s.chunk_bytes = 16;
    s
}

fn query(body: &Value) -> Bytes {
    let payload = Bytes::from(serde_json::to_vec(body).unwrap());
    Bytes::from(http::Request::json_post("/v1/chat/completions", payload).to_boxed_bytes())
}

fn chat(extra: Value) -> Value {
    let mut body = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "count my tokens"}],
    });
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    body
}

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

    // Refused before the engine: bad counts, more choices, an empty reservation.
    for (id, body, limit, needle) in [
        (
            4,
            chat(json!({"max_tokens": 5.5})),
            16,
            "integer of at least 1",
        ),
        (
            5,
            chat(json!({"max_tokens": -3})),
            16,
            "integer of at least 1",
        ),
        (
            6,
            chat(json!({"max_tokens": "9"})),
            16,
            "integer of at least 1",
        ),
        (7, chat(json!({"n": 2})), 16, "`n`"),
        (8, chat(json!({"best_of": 0})), 16, "`best_of`"),
        (
            9,
            chat(json!({"max_tokens": 4})),
            0,
            "reservation covers no completion tokens",
        ),
        (
            10,
            chat(json!({})),
            -7,
            "reservation covers no completion tokens",
        ),
    ] {
        proxy.send(run_query(&body, id, limit)).await;
        let (receipt, last) = proxy.finish(Int256([id; 32])).await;
        let Message::ProxyQueryAnswerErrorEx(e) = last else {
            panic!("{body} limit {limit}: expected a refusal, got {last:?}");
        };
        assert_eq!(e.error_code, 400, "{body}: {}", e.error);
        assert!(e.error.contains(needle), "{body}: {}", e.error);
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
    assert!(receipt.is_none(), "a cancelled answer has no receipt");

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

//! A scripted proxy for the worker's integration tests: it answers the worker's handshake over a
//! real RA-TLS loopback session and lets a test speak for it, with a fake OpenAI upstream as the
//! worker's engine.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cocoon_infer::upstream::{UpstreamConfig as EngineConfig, UpstreamEngine};
use cocoon_net::{Connection, ConnectionConfig, Inbound};
use cocoon_node::AttestationConfig;
use cocoon_protocol::Message;
use cocoon_protocol::messages::{http, proxy, worker};
use cocoon_protocol::tl::{self, Int256, TlConstructor};
use cocoon_testkit::upstream::AnswerShape;
use cocoon_testkit::{FakeUpstream, UpstreamConfig};
use cocoon_worker::{Worker, WorkerConfig};
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub const MODEL: &str = "Qwen/Qwen3-8B";

/// A proxy that answers the worker's handshake and otherwise lets the test speak for it.
pub struct ScriptedProxy {
    pub conn: Connection,
    /// Packets from the worker, decoded.
    pub packets: mpsc::Receiver<Message>,
}

impl ScriptedProxy {
    pub async fn send(&self, msg: impl TlConstructor) {
        self.conn
            .send_packet(Bytes::from(msg.to_boxed_bytes()))
            .await
            .unwrap();
    }

    /// The next packet about `request_id` (others, like the sealing-key announcement, skipped).
    pub async fn next_for(&mut self, request_id: Int256) -> Message {
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
    pub async fn finish(&mut self, request_id: Int256) -> (Option<Bytes>, Message) {
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
pub async fn answer_queries(incoming: cocoon_net::Incoming, out: mpsc::Sender<Message>) {
    answer_queries_as(
        incoming,
        out,
        cocoon_protocol::version::SEALED_VERSION,
        None,
    )
    .await;
}

/// As [`answer_queries`], for a proxy speaking `proto_version`, handing the worker's
/// `worker.params` to `params_out` when given.
pub async fn answer_queries_as(
    incoming: cocoon_net::Incoming,
    out: mpsc::Sender<Message>,
    proto_version: i32,
    params_out: Option<mpsc::Sender<worker::Params>>,
) {
    answer_queries_scripted(
        incoming,
        out,
        proto_version,
        params_out,
        String::new(),
        None,
    )
    .await;
}

/// As [`answer_queries_as`], naming `proxy_sc_address` as the proxy contract, and (with `hold`)
/// answering `worker.connectToProxy` only once `hold` fires.
pub async fn answer_queries_scripted(
    mut incoming: cocoon_net::Incoming,
    out: mpsc::Sender<Message>,
    proto_version: i32,
    params_out: Option<mpsc::Sender<worker::Params>>,
    proxy_sc_address: String,
    mut hold: Option<tokio::sync::oneshot::Receiver<()>>,
) {
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
                    Ok(Message::WorkerConnectToProxy(c)) => {
                        if let Some(params_out) = &params_out {
                            let _ = params_out.send(c.params).await;
                        }
                        if let Some(hold) = hold.take() {
                            let _ = hold.await;
                        }
                        Some(
                            worker::ConnectedToProxy {
                                params: proxy::Params {
                                    flags: 0,
                                    proxy_public_key: Int256([7; 32]),
                                    proxy_owner_address: "scripted-proxy-owner".into(),
                                    proxy_sc_address: proxy_sc_address.clone(),
                                    is_test: Some(true),
                                    proto_version: Some(proto_version),
                                },
                                worker_sc_address: String::new(),
                            }
                            .to_boxed_bytes(),
                        )
                    }
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
pub async fn net(upstream: &FakeUpstream) -> (ScriptedProxy, Arc<UpstreamEngine>) {
    let (proxy, engine, _) = net_with_handle(upstream).await;
    (proxy, engine)
}

/// [`net`], with the worker's handle (its `/jsonstats` view).
pub async fn net_with_handle(
    upstream: &FakeUpstream,
) -> (
    ScriptedProxy,
    Arc<UpstreamEngine>,
    cocoon_worker::WorkerHandle,
) {
    net_scripted(upstream, |_| {}, String::new(), None, None).await
}

/// [`net_with_handle`] with the worker's configuration changed by `configure`, the proxy
/// naming `proxy_sc_address` as its contract, its `worker.connectToProxy` answer held until
/// `hold` fires, and the worker's `worker.params` handed to `params_out`.
pub async fn net_scripted(
    upstream: &FakeUpstream,
    configure: impl FnOnce(&mut WorkerConfig),
    proxy_sc_address: String,
    hold: Option<tokio::sync::oneshot::Receiver<()>>,
    params_out: Option<mpsc::Sender<worker::Params>>,
) -> (
    ScriptedProxy,
    Arc<UpstreamEngine>,
    cocoon_worker::WorkerHandle,
) {
    net_scripted_at(
        cocoon_protocol::version::SEALED_VERSION,
        upstream,
        configure,
        proxy_sc_address,
        (hold, params_out),
    )
    .await
}

/// [`net_scripted`] with a proxy that answers protocol `version`.
pub async fn net_scripted_at(
    version: i32,
    upstream: &FakeUpstream,
    configure: impl FnOnce(&mut WorkerConfig),
    proxy_sc_address: String,
    (hold, params_out): (
        Option<tokio::sync::oneshot::Receiver<()>>,
        Option<mpsc::Sender<worker::Params>>,
    ),
) -> (
    ScriptedProxy,
    Arc<UpstreamEngine>,
    cocoon_worker::WorkerHandle,
) {
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
    let mut config = WorkerConfig {
        proxies: vec![addr],
        model: Some(MODEL.parse().unwrap()),
        stats_listen: None,
        attestation: AttestationConfig::local_simulated(),
        ..WorkerConfig::default()
    };
    configure(&mut config);
    let w = Worker::new(config, engine.clone()).unwrap();
    let handle = w.handle();
    tokio::spawn(w.run(std::future::pending::<()>()));

    let (tcp, _) = tokio::time::timeout(Duration::from_secs(15), listener.accept())
        .await
        .expect("the worker did not dial")
        .unwrap();
    let secured = cocoon_net::accept_gated(tcp, 1, &endpoint, ConnectionConfig::acceptor())
        .await
        .unwrap();
    let (tx, packets) = mpsc::channel(1024);
    tokio::spawn(answer_queries_scripted(
        secured.incoming,
        tx,
        version,
        params_out,
        proxy_sc_address,
        hold,
    ));
    (
        ScriptedProxy {
            conn: secured.conn,
            packets,
        },
        engine,
        handle,
    )
}

pub async fn upstream(shape: AnswerShape) -> FakeUpstream {
    let mut config = UpstreamConfig::default();
    config.models = vec![MODEL.into()];
    config.shape = shape;
    config.record_requests = 16;
    FakeUpstream::start(config).await.unwrap()
}

pub fn small_answer() -> AnswerShape {
    let mut s = AnswerShape::default();
    s.chunks = 4;
    s.chunk_bytes = 16;
    s
}

pub fn query(body: &Value) -> Bytes {
    let payload = Bytes::from(serde_json::to_vec(body).unwrap());
    Bytes::from(http::Request::json_post("/v1/chat/completions", payload).to_boxed_bytes())
}

pub fn chat(extra: Value) -> Value {
    let mut body = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "count my tokens"}],
    });
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    body
}

//! The worker against a scripted proxy speaking reference 9060ce5: it describes its machine in
//! `worker.params`, answers a reference proxy's `proxy.runQueryEx` carrying `private_key` (the
//! hand-made transcript's frame, sent as it is), and switches models on `worker.changeModel`
//! while a request on the old model runs to its end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cocoon_infer::upstream::{UpstreamConfig as EngineConfig, UpstreamEngine};
use cocoon_net::{Connection, ConnectionConfig};
use cocoon_node::AttestationConfig;
use cocoon_protocol::messages::{http, proxy, tcp, worker};
use cocoon_protocol::tl::{self, Int256, TlConstructor};
use cocoon_protocol::{FrameDecoder, Message};
use cocoon_testkit::upstream::AnswerShape;
use cocoon_testkit::{FakeUpstream, UpstreamConfig};
use cocoon_worker::model_change::{CommandLoader, ModelChangeConfig};
use cocoon_worker::{Worker, WorkerConfig, WorkerHandle};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const MODEL: &str = "Qwen/Qwen3-8B";
const OTHER: &str = "Qwen/Qwen3-32B";

struct ScriptedProxy {
    conn: Connection,
    packets: mpsc::Receiver<Message>,
    params: mpsc::Receiver<worker::Params>,
}

impl ScriptedProxy {
    /// The next message about `request_id`.
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
                _ => continue,
            };
            if id == request_id {
                return msg;
            }
        }
    }

    /// Reads the request's answer to its end; `true` when it ended well.
    async fn finish(&mut self, request_id: Int256) -> bool {
        loop {
            match self.next_for(request_id).await {
                Message::ProxyQueryAnswerEx(m) if m.final_info.is_none() => {}
                Message::ProxyQueryAnswerPartEx(m) if m.final_info.is_none() => {}
                Message::ProxyQueryAnswerErrorEx(e) => {
                    eprintln!("error {}: {}", e.error_code, e.error);
                    return false;
                }
                _ => return true,
            }
        }
    }
}

/// A scripted proxy with one worker serving `upstream`, which may switch to [`OTHER`] by
/// running a command that writes the model's name to `marker`.
async fn net(upstream: &FakeUpstream, marker: &std::path::Path) -> (ScriptedProxy, WorkerHandle) {
    let attestation = AttestationConfig::local_simulated();
    let identity = attestation
        .identity(cocoon_attest::ratls::ClaimsFormat::Reference)
        .unwrap();
    let endpoint = attestation.endpoint(identity).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();

    let mut engine = EngineConfig::new(upstream.url());
    engine.models = vec![MODEL.into()];
    let config = WorkerConfig {
        proxies: vec![addr],
        model: Some(MODEL.parse().unwrap()),
        model_hash: Some(hex_of(MODEL_WEIGHTS)),
        stats_listen: None,
        attestation: AttestationConfig::local_simulated(),
        model_change: ModelChangeConfig {
            models: vec![OTHER.into()],
            hashes: [(OTHER.to_owned(), hex_of(OTHER_WEIGHTS))].into(),
            deadline: Duration::from_secs(10),
            ..ModelChangeConfig::default()
        },
        ..WorkerConfig::default()
    };
    let w = Worker::new(
        config,
        Arc::new(UpstreamEngine::new(engine.clone()).unwrap()),
    )
    .unwrap();
    w.set_model_loader(Arc::new(CommandLoader::new(
        vec![
            "sh".into(),
            "-c".into(),
            format!("printf %s '{{model}}' > {}", marker.display()),
        ],
        engine,
    )));
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
    let (ptx, params) = mpsc::channel(4);
    tokio::spawn(support::answer_queries_as(
        secured.incoming,
        tx,
        2,
        Some(ptx),
    ));
    (
        ScriptedProxy {
            conn: secured.conn,
            packets,
            params,
        },
        handle,
    )
}

/// What the two models' weights stand for: their pinned digests.
const MODEL_WEIGHTS: &[u8] = b"weights of the configured model";
const OTHER_WEIGHTS: &[u8] = b"weights of the other model";

fn hex_of(weights: &[u8]) -> String {
    cocoon_infer::WeightsDigest::of_bytes(weights).to_hex()
}

async fn upstream(shape: AnswerShape) -> FakeUpstream {
    let mut config = UpstreamConfig::default();
    config.models = vec![MODEL.into(), OTHER.into()];
    config.shape = shape;
    config.record_requests = 16;
    FakeUpstream::start(config).await.unwrap()
}

fn run_query(model: &str, request_id: u8, stream: bool) -> proxy::RunQueryEx {
    let body = json!({
        "model": model,
        "messages": [{"role": "user", "content": "hello there"}],
        "stream": stream,
    });
    let payload = Bytes::from(serde_json::to_vec(&body).unwrap());
    proxy::RunQueryEx {
        query: Bytes::from(
            http::Request::json_post("/v1/chat/completions", payload).to_boxed_bytes(),
        ),
        signed_payment: proxy::AnySignedPayment::default(),
        coefficient: 1000,
        timeout: 30.0,
        request_id: Int256([request_id; 32]),
        ..Default::default()
    }
}

fn last_engine_model(up: &FakeUpstream) -> String {
    let last = up.recorded_requests().pop().expect("no engine request");
    let body: Value = serde_json::from_slice(&last.body).unwrap();
    body["model"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_describes_its_machine_and_answers_a_reference_private_key_query() {
    let up = upstream(AnswerShape::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut proxy, _) = net(&up, &dir.path().join("marker")).await;

    let params = proxy.params.recv().await.unwrap();
    assert_eq!(params.flags & 0b100, 0b100);
    let machine: Value =
        serde_json::from_str(params.machine_description_json.as_deref().unwrap()).unwrap();
    assert_eq!(machine["engine"], "upstream");
    assert_eq!(machine["attestation"], "simulated");

    // The hand-made reference proxy → worker stream: its first `proxy.runQueryEx`, with
    // flag bit 1 and `private_key`, sent to our worker byte for byte.
    let raw = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../protocol/tests/data/interop/handmade-9060ce5.proxy_to_worker.bin"
    ))
    .unwrap();
    let mut buf = BytesMut::from(&raw[..]);
    let mut decoder = FrameDecoder::default();
    let data = loop {
        let frame = decoder
            .decode(&mut buf)
            .unwrap()
            .expect("a runQueryEx frame");
        if let Ok(tcp::AnyPacket::Packet(p)) = tl::from_bytes::<tcp::AnyPacket>(frame.body)
            && let Ok(Message::ProxyRunQueryEx(q)) = tl::from_bytes::<Message>(p.data.clone())
        {
            assert!(q.private_key.is_some());
            break (p.data, q.request_id);
        }
    };
    proxy.conn.send_packet(data.0).await.unwrap();
    assert!(proxy.finish(data.1).await, "the worker answered it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_model_switches_after_the_command_and_running_requests_finish_on_the_old() {
    let mut slow = AnswerShape::default();
    slow.chunks = 40;
    slow.chunk_bytes = 8;
    slow.delay = Duration::from_millis(20);
    let up = upstream(slow).await;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let (mut proxy, handle) = net(&up, &marker).await;

    // A streamed request on the configured model is running...
    let old = Int256([1; 32]);
    proxy
        .conn
        .send_packet(Bytes::from(run_query(MODEL, 1, true).to_boxed_bytes()))
        .await
        .unwrap();
    let _head = proxy.next_for(old).await;
    assert_eq!(last_engine_model(&up), MODEL);
    let before = handle.snapshot();
    assert_eq!(before.model_hash, Some(hex_of(MODEL_WEIGHTS)));
    assert_eq!(before.certificate_model_hash, before.model_hash);

    // ...when the proxy asks for another model.
    let change = worker::ChangeModel {
        new_model: OTHER.into(),
    };
    let answer = proxy
        .conn
        .query(Bytes::from(change.to_boxed_bytes()))
        .await
        .expect("worker.changedModel");
    worker::ChangedModel::from_boxed_bytes(answer).unwrap();
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), OTHER);
    assert_eq!(handle.snapshot().model, OTHER);
    // The new weights are named by the served model and by a reissued certificate.
    let after = handle.snapshot();
    assert_eq!(after.model_hash, Some(hex_of(OTHER_WEIGHTS)));
    assert_eq!(after.certificate_model_hash, after.model_hash);

    // The running request ends normally; the next one runs on the new model.
    assert!(
        proxy.finish(old).await,
        "the request on the old model finished"
    );
    proxy
        .conn
        .send_packet(Bytes::from(run_query(OTHER, 2, false).to_boxed_bytes()))
        .await
        .unwrap();
    assert!(proxy.finish(Int256([2; 32])).await);
    assert_eq!(last_engine_model(&up), OTHER);

    // Asking for the model served answers at once; an unconfigured one is refused.
    let same = worker::ChangeModel {
        new_model: OTHER.into(),
    };
    proxy
        .conn
        .query(Bytes::from(same.to_boxed_bytes()))
        .await
        .unwrap();
    let refused = worker::ChangeModel {
        new_model: "not/configured".into(),
    };
    let err = proxy
        .conn
        .query(Bytes::from(refused.to_boxed_bytes()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("configured models"), "{err}");
    assert_eq!(handle.snapshot().model, OTHER);
}

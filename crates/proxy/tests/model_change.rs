//! `worker.changeModel` from the proxy's side, with the three roles in one process: the
//! operator's admin endpoint switches a worker to another configured model, the proxy lists it
//! under the new model only once it has switched, and a request running on the old model is
//! answered in full.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use cocoon_client::{ChatMessage, ChatRequest, Client, ClientConfig};
use cocoon_infer::upstream::{UpstreamConfig as EngineConfig, UpstreamEngine};
use cocoon_node::AttestationConfig;
use cocoon_proxy::{Proxy, ProxyConfig, ProxyError, ProxyHandle};
use cocoon_testkit::upstream::AnswerShape;
use cocoon_testkit::{FakeUpstream, UpstreamConfig};
use cocoon_worker::model_change::{CommandLoader, ModelChangeConfig};
use cocoon_worker::{Worker, WorkerConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const MODEL: &str = "Qwen/Qwen3-8B";
const OTHER: &str = "Qwen/Qwen3-32B";

fn chat(model: &str) -> ChatRequest {
    ChatRequest {
        model: model.into(),
        messages: vec![ChatMessage::new("user", "which model are you")],
        max_tokens: Some(64),
        ..ChatRequest::default()
    }
}

/// `POST path` on the stats port; the status code and body.
async fn post(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8(answer).unwrap();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    (status, text.split_once("\r\n\r\n").unwrap().1.to_owned())
}

fn running(handle: &ProxyHandle) -> u32 {
    handle
        .workers()
        .first()
        .and_then(|w| w.stats.as_ref())
        .map_or(0, |s| s.running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_endpoint_switches_a_worker_without_dropping_its_running_request() {
    let config = ProxyConfig {
        worker_listen: "127.0.0.1:0".parse().unwrap(),
        client_listen: "127.0.0.1:0".parse().unwrap(),
        stats_listen: Some("127.0.0.1:0".parse().unwrap()),
        worker_pow_difficulty: 4,
        client_pow_difficulty: 4,
        emulated_registration: true,
        emulated_client_deposit: 1_000_000_000_000,
        attestation: AttestationConfig::local_simulated(),
        ..ProxyConfig::default()
    };
    let proxy = Proxy::bind(config).await.unwrap();
    let handle = proxy.handle();
    let (worker_addr, client_addr, stats_addr) = (
        proxy.worker_addr().unwrap().to_string(),
        proxy.client_addr().unwrap().to_string(),
        proxy.stats_addr().unwrap(),
    );
    tokio::spawn(proxy.run(std::future::pending::<()>()));

    let mut up = UpstreamConfig::default();
    up.models = vec![MODEL.into(), OTHER.into()];
    up.shape = AnswerShape::default();
    up.shape.chunks = 40;
    up.shape.delay = Duration::from_millis(20);
    let up = FakeUpstream::start(up).await.unwrap();
    let mut engine = EngineConfig::new(up.url());
    engine.models = vec![MODEL.into()];
    let worker = Worker::new(
        WorkerConfig {
            proxies: vec![worker_addr],
            model: Some(MODEL.parse().unwrap()),
            stats_listen: None,
            attestation: AttestationConfig::local_simulated(),
            model_change: ModelChangeConfig {
                models: vec![OTHER.into()],
                ..ModelChangeConfig::default()
            },
            ..WorkerConfig::default()
        },
        Arc::new(UpstreamEngine::new(engine.clone()).unwrap()),
    )
    .unwrap();
    worker.set_model_loader(Arc::new(CommandLoader::new(vec!["true".into()], engine)));
    tokio::spawn(worker.run(std::future::pending::<()>()));

    let client = Client::start(ClientConfig {
        listen: None,
        proxy: client_addr,
        models_refresh: Duration::ZERO,
        attestation: AttestationConfig::client_local(),
        ..ClientConfig::default()
    })
    .unwrap();
    client.wait_ready(Duration::from_secs(10)).await.unwrap();
    let client = Arc::new(client);
    for _ in 0..1000 {
        if !handle.workers().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // A request on the configured model is running when the operator asks for another model.
    let c = client.clone();
    let old = tokio::spawn(async move { c.chat(chat(MODEL)).await });
    for _ in 0..500 {
        if running(&handle) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(running(&handle), 1);
    let id = handle.workers()[0].id;
    let path = format!("/admin/change-model?worker={id}&model=Qwen%2FQwen3-32B");
    let (status, body) = post(stats_addr, &path).await;
    assert_eq!(
        (status, body.trim()),
        (200, format!("worker {id} now serves {OTHER}").as_str())
    );
    assert_eq!(handle.workers()[0].model, OTHER);

    // The running request is answered in full; the worker now takes the new model only.
    let answer = old
        .await
        .unwrap()
        .expect("the request on the old model finished");
    assert!(!answer.content.is_empty());
    let answer = client.chat(chat(OTHER)).await.unwrap();
    assert!(!answer.content.is_empty());
    assert!(client.chat(chat(MODEL)).await.is_err());

    // Refusals leave the listing as it was.
    let err = handle.change_model(id, "not/configured").await.unwrap_err();
    assert!(
        matches!(&err, ProxyError::ModelChangeRefused { reason, .. } if reason.contains("configured models")),
        "{err}"
    );
    assert!(matches!(
        handle.change_model(id + 100, MODEL).await,
        Err(ProxyError::UnknownWorker(_))
    ));
    let (status, _) = post(
        stats_addr,
        &format!("/admin/change-model?worker={}&model=x", id + 100),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(handle.workers()[0].model, OTHER);
}

//! Workers' machine descriptions (`machine_description_json`, `worker.params` flag bit 2):
//! our worker sends one, the proxy shows it per worker in its stats, and one that is not a JSON
//! object is dropped with a counted warning while the worker is still served.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use clap::Parser as _;
use cocoon_infer::upstream::{UpstreamConfig as EngineConfig, UpstreamEngine};
use cocoon_node::AttestationConfig;
use cocoon_proxy::{Proxy, ProxyConfig, ProxyHandle, WorkerView};
use cocoon_testkit::rogue::{RogueArgs, RogueWorker};
use cocoon_testkit::{FakeUpstream, UpstreamConfig};
use cocoon_worker::{Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

const MODEL: &str = "Qwen/Qwen3-8B";

async fn proxy() -> (ProxyHandle, String) {
    let config = ProxyConfig {
        worker_listen: "127.0.0.1:0".parse().unwrap(),
        client_listen: "127.0.0.1:0".parse().unwrap(),
        stats_listen: None,
        worker_pow_difficulty: 4,
        client_pow_difficulty: 4,
        attestation: AttestationConfig::local_simulated(),
        ..ProxyConfig::default()
    };
    let proxy = Proxy::bind(config).await.unwrap();
    let worker_port = proxy.worker_addr().unwrap().to_string();
    let handle = proxy.handle();
    tokio::spawn(proxy.run(std::future::pending::<()>()));
    (handle, worker_port)
}

async fn first_worker(handle: &ProxyHandle) -> WorkerView {
    for _ in 0..1000 {
        if let Some(w) = handle.workers().into_iter().next() {
            return w;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no worker registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_worker_describes_its_machine_and_the_proxy_shows_it() {
    let (handle, worker_port) = proxy().await;
    let mut up = UpstreamConfig::default();
    up.models = vec![MODEL.into()];
    let up = FakeUpstream::start(up).await.unwrap();
    let mut engine = EngineConfig::new(up.url());
    engine.models = vec![MODEL.into()];
    let worker = Worker::new(
        WorkerConfig {
            proxies: vec![worker_port],
            model: Some(MODEL.parse().unwrap()),
            stats_listen: None,
            attestation: AttestationConfig::local_simulated(),
            ..WorkerConfig::default()
        },
        Arc::new(UpstreamEngine::new(engine).unwrap()),
    )
    .unwrap();
    tokio::spawn(worker.run(std::future::pending::<()>()));

    let w = first_worker(&handle).await;
    let machine = w.machine.expect("the worker sent a description");
    assert_eq!(machine["engine"], "upstream");
    assert_eq!(machine["attested"], false);
    assert_eq!(machine["attestation"], "simulated");
    assert!(machine["cpu"]["count"].as_u64().unwrap() >= 1);
    assert!(machine["gpus"].is_array());
    // `/jsonstats` is the snapshot serialized: the description is under the worker.
    let json = serde_json::to_value(handle.snapshot().await).unwrap();
    assert_eq!(json["workers"][0]["machine"]["engine"], "upstream");
    assert_eq!(json["machine_descriptions_dropped"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_description_that_is_not_an_object_is_dropped_and_counted() {
    let (handle, worker_port) = proxy().await;
    let config = RogueArgs::try_parse_from([
        "cocoon-rogue-worker",
        "--proxy",
        &worker_port,
        "--model",
        MODEL,
        "--owner",
        "owner-1",
        "--machine-description",
        "[\"not\", \"an object\"]",
    ])
    .unwrap()
    .config()
    .unwrap();
    let (rogue, _records) = RogueWorker::new(config).unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(rogue.run(stop.clone()));

    let w = first_worker(&handle).await;
    assert_eq!(w.model, MODEL, "the worker is served all the same");
    assert!(w.machine.is_none());
    assert_eq!(handle.snapshot().await.machine_descriptions_dropped, 1);
    stop.cancel();
}

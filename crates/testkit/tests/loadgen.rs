//! The load generator against the fake upstream and against servers that misbehave.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use cocoon_testkit::loadgen::{
    self, FailureKind, LoadConfig, LoadTarget, StopCondition, parse_header,
};
use cocoon_testkit::upstream::{FakeUpstream, UpstreamConfig};
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const STREAM_BODY: &str = r#"{"model":"Qwen/Qwen3-8B","messages":[{"role":"user","content":"load test"}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":8000}"#;

async fn chat_load(upstream: &FakeUpstream, headers: &[&str]) -> LoadConfig {
    let url = format!("{}/v1/chat/completions", upstream.url());
    let mut config = LoadConfig::new(LoadTarget::resolve(&url).await.unwrap());
    config.method = Method::POST;
    config.body = Bytes::from_static(STREAM_BODY.as_bytes());
    config.concurrency = 4;
    config.stop = StopCondition::Requests(40);
    for header in headers {
        let (name, value) = parse_header(header).unwrap();
        config.headers.insert(name, value);
    }
    config
}

#[tokio::test]
async fn serves_every_request_with_a_new_connection_each() {
    let upstream = FakeUpstream::start(UpstreamConfig::default())
        .await
        .unwrap();
    let report = loadgen::run(chat_load(&upstream, &[]).await).await.unwrap();
    assert_eq!((report.ok, report.errors), (40, 0));
    assert_eq!(report.statuses.get(&200), Some(&40));
    assert_eq!(report.latency.count(), 40);
    assert!(report.latency.percentile(0.5) > 0);
    assert!(report.latency.percentile(0.99) <= report.latency.max());
    assert!(report.requests_per_second() > 0.0);
    // 50 events of 128 bytes of content each, plus JSON around them.
    assert!(report.body_bytes > 40 * 50 * 128);
    let stats = upstream.stats();
    assert_eq!((stats.requests, stats.connections), (40, 40));

    let line: serde_json::Value = serde_json::from_str(&report.to_json_line().unwrap()).unwrap();
    assert_eq!(line["ok"], 40);
    assert_eq!(line["statuses"]["200"], 40);
    assert!(line["p50_ms"].as_f64().unwrap() > 0.0);
    assert!(report.to_string().contains("req/s"));
}

#[tokio::test]
async fn keepalive_reuses_one_connection_per_worker() {
    let upstream = FakeUpstream::start(UpstreamConfig::default())
        .await
        .unwrap();
    let mut config = chat_load(&upstream, &[]).await;
    config.keepalive = true;
    let report = loadgen::run(config).await.unwrap();
    assert_eq!((report.ok, report.errors), (40, 0));
    let stats = upstream.stats();
    assert_eq!(stats.requests, 40);
    assert_eq!(stats.connections, 4);
}

#[tokio::test]
async fn broken_answers_count_as_errors() {
    let upstream = FakeUpstream::start(UpstreamConfig::default())
        .await
        .unwrap();

    let crashed = loadgen::run(chat_load(&upstream, &["x-fake-fail-after: 3"]).await)
        .await
        .unwrap();
    assert_eq!((crashed.ok, crashed.errors), (0, 40));
    assert_eq!(crashed.failures.get(&FailureKind::Body), Some(&40));

    let refused = loadgen::run(chat_load(&upstream, &["x-fake-status: 502"]).await)
        .await
        .unwrap();
    assert_eq!(refused.failures.get(&FailureKind::Status), Some(&40));
    assert_eq!(refused.statuses.get(&502), Some(&40));
    assert_eq!(refused.latency.count(), 0);
}

/// A server that answers every request with a complete SSE body that lacks `data: [DONE]`.
async fn unfinished_sse_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = "data: {\"choices\":[]}\n\n";
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn sse_without_done_is_an_error() {
    let addr = unfinished_sse_server().await;
    let target = LoadTarget::resolve(&format!("http://{addr}/v1/chat/completions"))
        .await
        .unwrap();
    let mut config = LoadConfig::new(target);
    config.concurrency = 2;
    config.stop = StopCondition::Requests(6);
    let report = loadgen::run(config).await.unwrap();
    assert_eq!(report.failures.get(&FailureKind::MissingDone), Some(&6));
    assert_eq!(report.ok, 0);
}

#[tokio::test]
async fn duration_runs_stop_on_time_and_connection_failures_are_counted() {
    let upstream = FakeUpstream::start(UpstreamConfig::default())
        .await
        .unwrap();
    let mut config = chat_load(&upstream, &["x-fake-chunks: 2"]).await;
    config.stop = StopCondition::Duration(Duration::from_millis(300));
    let report = loadgen::run(config).await.unwrap();
    assert!(report.elapsed >= Duration::from_millis(300));
    assert!(report.elapsed < Duration::from_secs(5));
    assert!(report.ok > 0);
    assert_eq!(report.errors, 0);

    // A port nobody listens on: take a free one and close it again.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let mut config = LoadConfig::new(
        LoadTarget::resolve(&format!("http://{addr}/"))
            .await
            .unwrap(),
    );
    config.concurrency = 2;
    config.stop = StopCondition::Requests(4);
    let report = loadgen::run(config).await.unwrap();
    assert_eq!(report.failures.get(&FailureKind::Connect), Some(&4));
}

#[tokio::test]
async fn empty_runs_are_refused() {
    let upstream = FakeUpstream::start(UpstreamConfig::default())
        .await
        .unwrap();
    let mut config = chat_load(&upstream, &[]).await;
    config.concurrency = 0;
    assert!(loadgen::run(config).await.is_err());
    let mut config = chat_load(&upstream, &[]).await;
    config.stop = StopCondition::Requests(0);
    assert!(loadgen::run(config).await.is_err());
}

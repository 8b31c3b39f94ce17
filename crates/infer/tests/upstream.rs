//! The upstream engine against the testkit's fake OpenAI-compatible server (and, where the
//! test must watch the socket itself, a hand-written one): relaying, metering of SSE, JSON and
//! NDJSON answers, failures, cancellation, timeouts and connection reuse.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use cocoon_infer::upstream::{UpstreamConfig, UpstreamEngine, UpstreamError};
use cocoon_infer::{
    BodyEvent, Endpoint, Engine, EngineError, EngineResponse, InferenceRequest, TokenUsage,
};
use cocoon_testkit::upstream::answer::AnswerText;
use cocoon_testkit::upstream::{AnswerShape, FakeUpstream, StreamFormat};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const MODEL: &str = "Qwen/Qwen3-8B";
const PROMPT: &str = "hello big world";

async fn fake(shape: impl FnOnce(&mut AnswerShape)) -> FakeUpstream {
    let mut config = cocoon_testkit::UpstreamConfig::default();
    shape(&mut config.shape);
    config.record_requests = 16;
    FakeUpstream::start(config).await.unwrap()
}

fn config_for(fake: &FakeUpstream) -> UpstreamConfig {
    let mut config = UpstreamConfig::new(fake.url());
    config.models = vec![MODEL.to_owned()];
    config
}

fn engine_for(fake: &FakeUpstream) -> UpstreamEngine {
    UpstreamEngine::new(config_for(fake)).unwrap()
}

fn chat(stream: bool) -> InferenceRequest {
    let body = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": stream,
    });
    InferenceRequest::from_json(Endpoint::ChatCompletions, body).unwrap()
}

/// Reads a response to its end: the body bytes and the final event.
async fn collect(mut response: EngineResponse) -> (Vec<u8>, BodyEvent) {
    let mut body = Vec::new();
    while let Some(event) = response.body.recv().await {
        match event {
            BodyEvent::Data(bytes) => body.extend_from_slice(&bytes),
            last => {
                assert!(
                    response.body.recv().await.is_none(),
                    "nothing may follow {last:?}"
                );
                return (body, last);
            }
        }
    }
    panic!("the body ended without End or Failed");
}

/// The content of an SSE chat stream, reassembled.
fn sse_text(body: &[u8]) -> String {
    let body = std::str::from_utf8(body).unwrap();
    let mut text = String::new();
    for event in body.split("\n\n").filter(|e| !e.is_empty()) {
        let payload = event.strip_prefix("data: ").unwrap();
        if payload == "[DONE]" {
            continue;
        }
        let value: Value = serde_json::from_str(payload).unwrap();
        if let Some(content) = value["choices"][0]["delta"]["content"].as_str() {
            text.push_str(content);
        }
        if let Some(content) = value["choices"][0]["text"].as_str() {
            text.push_str(content);
        }
    }
    text
}

fn header<'a>(response: &'a EngineResponse, name: &str) -> Option<&'a str> {
    response
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn usage(prompt: u64, cached: u64, completion: u64, reasoning: u64) -> TokenUsage {
    TokenUsage {
        prompt_tokens: prompt,
        cached_tokens: cached,
        completion_tokens: completion,
        reasoning_tokens: reasoning,
    }
}

#[tokio::test]
async fn streamed_chat_is_relayed_intact_and_metered_from_sse() {
    let fake = fake(|_| {}).await;
    let engine = engine_for(&fake);
    let response = engine.run(chat(true)).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(header(&response, "content-type"), Some("text/event-stream"));
    let (body, last) = collect(response).await;
    assert!(body.ends_with(b"data: [DONE]\n\n"));
    assert_eq!(sse_text(&body), AnswerText::full_text(PROMPT, 50, 128));
    assert_eq!(last, BodyEvent::End(usage(3, 0, 50, 0)));

    // The engine asked for usage although the client did not.
    let recorded = fake.recorded_requests();
    let sent: Value = serde_json::from_slice(&recorded[0].body).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], json!(true));
    assert_eq!(sent["messages"][0]["content"], json!(PROMPT));
    // Only a llama.cpp server (by its model list) is asked for running timings.
    assert_eq!(sent.get("timings_per_token"), None);
    assert_eq!(engine.stats().estimated_usage, 0);
    assert_eq!(engine.stats().active, 0);
}

#[tokio::test]
async fn non_streamed_chat_is_metered_from_the_json_document() {
    let fake = fake(|shape| shape.chunks = 7).await;
    let engine = engine_for(&fake);
    let response = engine.run(chat(false)).await.unwrap();
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    let (body, last) = collect(response).await;
    let document: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(document["object"], json!("chat.completion"));
    assert_eq!(
        document["choices"][0]["message"]["content"],
        json!(AnswerText::full_text(PROMPT, 7, 128))
    );
    assert_eq!(last, BodyEvent::End(usage(3, 0, 7, 0)));
    let sent: Value = serde_json::from_slice(&fake.recorded_requests()[0].body).unwrap();
    assert_eq!(
        sent.get("stream_options"),
        None,
        "only streams need usage asked for"
    );
}

#[tokio::test]
async fn completions_stream_with_cached_and_reasoning_tokens() {
    let fake = fake(|shape| {
        shape.chunks = 12;
        shape.chunk_bytes = 5;
        shape.cached_tokens = 2;
        shape.reasoning_tokens = 9;
    })
    .await;
    let engine = engine_for(&fake);
    let body = json!({"model": MODEL, "prompt": "one two three four", "stream": true});
    let request = InferenceRequest::from_json(Endpoint::Completions, body).unwrap();
    let (body, last) = collect(engine.run(request).await.unwrap()).await;
    assert_eq!(
        sse_text(&body),
        AnswerText::full_text("one two three four", 12, 5)
    );
    assert_eq!(last, BodyEvent::End(usage(4, 2, 12, 9)));
    assert_eq!(fake.recorded_requests()[0].path, "/v1/completions");
}

#[tokio::test]
async fn reference_ndjson_answers_are_metered() {
    let fake = fake(|shape| {
        shape.format = StreamFormat::Ndjson;
        shape.cached_tokens = 1;
        shape.reasoning_tokens = 3;
    })
    .await;
    let engine = engine_for(&fake);
    // The reference's upstream streams NDJSON whether or not a stream was asked for.
    for stream in [true, false] {
        let response = engine.run(chat(stream)).await.unwrap();
        assert_eq!(header(&response, "content-type"), Some("application/json"));
        let (body, last) = collect(response).await;
        assert_eq!(body.iter().filter(|&&b| b == b'\n').count(), 51);
        assert_eq!(last, BodyEvent::End(usage(3, 1, 50, 3)), "stream {stream}");
    }
}

#[tokio::test]
async fn an_upstream_that_reports_no_usage_is_estimated_and_counted() {
    let fake = fake(|shape| shape.chunks = 20).await;
    let mut config = config_for(&fake);
    config.force_include_usage = false;
    let engine = UpstreamEngine::new(config).unwrap();
    let (body, last) = collect(engine.run(chat(true)).await.unwrap()).await;
    assert!(!String::from_utf8_lossy(&body).contains("\"usage\":{"));
    // 20 content chunks; the prompt's 15 bytes at 4 bytes per token.
    assert_eq!(last, BodyEvent::End(usage(4, 0, 20, 0)));
    assert_eq!(engine.stats().estimated_usage, 1);
}

#[tokio::test]
async fn an_upstream_killed_mid_stream_gives_failed_with_partial_usage() {
    let fake = fake(|shape| {
        shape.fail_after = Some(10);
        shape.delay = Duration::from_millis(1);
    })
    .await;
    let engine = engine_for(&fake);
    let response = engine.run(chat(true)).await.unwrap();
    let (body, last) = collect(response).await;
    assert_eq!(sse_text(&body), AnswerText::full_text(PROMPT, 10, 128));
    match last {
        BodyEvent::Failed {
            error,
            usage: partial,
        } => {
            assert!(error.contains("broke off"), "{error}");
            assert_eq!(partial, usage(4, 0, 10, 0));
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(engine.stats().failed, 1);
    assert_eq!(fake.stats().aborted, 1);
}

#[tokio::test]
async fn a_non_streamed_answer_whose_upstream_dies_is_unavailable() {
    let fake = fake(|shape| shape.fail_after = Some(3)).await;
    let engine = engine_for(&fake);
    let error = engine.run(chat(false)).await.unwrap_err();
    assert!(matches!(error, EngineError::Unavailable(_)), "{error:?}");
}

#[tokio::test]
async fn dropping_the_response_abandons_the_upstream_request() {
    let fake = fake(|shape| {
        shape.chunks = 100_000;
        shape.delay = Duration::from_millis(5);
    })
    .await;
    let engine = engine_for(&fake);
    let mut response = engine.run(chat(true)).await.unwrap();
    assert!(matches!(
        response.body.recv().await,
        Some(BodyEvent::Data(_))
    ));
    assert_eq!(engine.stats().active, 1);
    drop(response);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while engine.stats().active != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "relay still running"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(engine.stats().cancelled, 1);
    // The abandoned connection is not reused: the next request opens a new one.
    let mut response = engine.run(chat(true)).await.unwrap();
    assert!(matches!(
        response.body.recv().await,
        Some(BodyEvent::Data(_))
    ));
    assert_eq!(fake.stats().connections, 2);
}

#[tokio::test]
async fn a_stopped_answer_ends_with_the_usage_relayed_so_far() {
    let fake = fake(|shape| {
        shape.chunks = 100_000;
        shape.delay = Duration::from_millis(5);
    })
    .await;
    let engine = engine_for(&fake);
    let mut response = engine.run(chat(true)).await.unwrap();
    let mut received = 0;
    while received < 5 {
        match response.body.recv().await {
            Some(BodyEvent::Data(_)) => received += 1,
            other => panic!("unexpected before the stop: {other:?}"),
        }
    }
    response.stop.stop();
    let (_, last) = tokio::time::timeout(Duration::from_secs(5), collect(response))
        .await
        .expect("the relay did not answer the stop");
    let BodyEvent::Stopped(usage) = last else {
        panic!("expected Stopped, got {last:?}");
    };
    // The fake sends one token per chunk and no running usage: the estimate counts at least
    // the chunks relayed before the stop, and the prompt estimate is filled in.
    assert!(usage.completion_tokens >= 4, "{usage:?}");
    assert!(usage.prompt_tokens > 0, "{usage:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while engine.stats().active != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "relay still running"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(engine.stats().cancelled, 1);
}

#[tokio::test]
async fn a_stop_asked_before_reading_still_ends_with_usage() {
    let fake = fake(|shape| {
        shape.chunks = 100_000;
        shape.delay = Duration::from_millis(1);
    })
    .await;
    let engine = engine_for(&fake);
    let response = engine.run(chat(true)).await.unwrap();
    // The worker reads nothing, so the relay is blocked on a full channel when the stop comes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    response.stop.stop();
    let (_, last) = tokio::time::timeout(Duration::from_secs(5), collect(response))
        .await
        .expect("the relay did not answer the stop");
    let BodyEvent::Stopped(usage) = last else {
        panic!("expected Stopped, got {last:?}");
    };
    assert!(usage.completion_tokens > 0, "{usage:?}");
}

/// A server that answers one request with an endless SSE stream and reports when the client
/// closes the connection.
async fn endless_server() -> (String, tokio::sync::oneshot::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (closed, closed_seen) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        // Read the head and the content-length body.
        loop {
            let n = socket.read(&mut buffer).await.unwrap();
            assert!(n > 0, "client went away before sending its request");
            request.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
            if let Some(head_end) = text.find("\r\n\r\n") {
                let length = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if request.len() >= head_end + 4 + length {
                    break;
                }
            }
        }
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        let event = "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n";
        let chunk = format!("{:x}\r\n{event}\r\n", event.len());
        loop {
            tokio::select! {
                read = socket.read(&mut buffer) => {
                    if matches!(read, Ok(0) | Err(_)) {
                        let _ = closed.send(());
                        return;
                    }
                }
                () = tokio::time::sleep(Duration::from_millis(10)) => {
                    if socket.write_all(chunk.as_bytes()).await.is_err() {
                        let _ = closed.send(());
                        return;
                    }
                }
            }
        }
    });
    (url, closed_seen)
}

#[tokio::test]
async fn the_upstream_sees_its_connection_closed_when_the_answer_is_dropped() {
    let (url, closed_seen) = endless_server().await;
    let mut config = UpstreamConfig::new(url);
    config.models = vec![MODEL.to_owned()];
    let engine = UpstreamEngine::new(config).unwrap();
    let mut response = engine.run(chat(true)).await.unwrap();
    for _ in 0..3 {
        assert!(matches!(
            response.body.recv().await,
            Some(BodyEvent::Data(_))
        ));
    }
    drop(response);
    tokio::time::timeout(Duration::from_secs(5), closed_seen)
        .await
        .expect("the upstream connection stayed open")
        .unwrap();
}

#[tokio::test]
async fn an_unreachable_upstream_is_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut config = UpstreamConfig::new(format!("http://{addr}"));
    config.models = vec![MODEL.to_owned()];
    let engine = UpstreamEngine::new(config).unwrap();
    match engine.run(chat(true)).await {
        Err(EngineError::Unavailable(message)) => assert!(message.contains("connect"), "{message}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn client_errors_are_forwarded_with_zero_usage() {
    for status in [400u16, 429, 503] {
        let fake = fake(|shape| shape.fail_status = http::StatusCode::from_u16(status).ok()).await;
        let engine = engine_for(&fake);
        let response = engine.run(chat(true)).await.unwrap();
        assert_eq!(response.status, status);
        let (body, last) = collect(response).await;
        let document: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(document["error"]["code"], json!("injected_failure"));
        assert_eq!(last, BodyEvent::End(TokenUsage::default()));
        assert_eq!(engine.stats().error_statuses, 1);
    }
}

#[tokio::test]
async fn a_silent_upstream_times_out() {
    // Before the head: a non-streamed answer that takes too long.
    let slow_head = fake(|shape| shape.first_chunk_delay = Duration::from_secs(5)).await;
    let mut config = config_for(&slow_head);
    config.request_timeout = Duration::from_millis(200);
    let engine = UpstreamEngine::new(config.clone()).unwrap();
    let error = engine.run(chat(false)).await.unwrap_err();
    assert!(matches!(error, EngineError::Timeout(_)), "{error:?}");

    // Mid-body: a stream that stalls after its first chunk.
    let stalling = fake(|shape| shape.delay = Duration::from_secs(5)).await;
    let mut config = config_for(&stalling);
    config.request_timeout = Duration::from_millis(200);
    let engine = UpstreamEngine::new(config).unwrap();
    let (_, last) = collect(engine.run(chat(true)).await.unwrap()).await;
    match last {
        BodyEvent::Failed {
            error,
            usage: partial,
        } => {
            assert!(error.contains("silent"), "{error}");
            assert_eq!(partial.completion_tokens, 1);
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_slow_reader_is_not_mistaken_for_a_silent_upstream() {
    let fake = fake(|shape| shape.chunks = 200).await;
    let mut config = config_for(&fake);
    config.request_timeout = Duration::from_millis(100);
    let engine = UpstreamEngine::new(config).unwrap();
    let mut response = engine.run(chat(true)).await.unwrap();
    // Let the relay fill the channel and wait on the reader for longer than the timeout.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut last = None;
    while let Some(event) = response.body.recv().await {
        if !matches!(event, BodyEvent::Data(_)) {
            last = Some(event);
        }
    }
    assert_eq!(last, Some(BodyEvent::End(usage(3, 0, 200, 0))));
}

#[tokio::test]
async fn connections_are_kept_alive_and_reused() {
    let fake = fake(|shape| shape.chunks = 3).await;
    let engine = engine_for(&fake);
    for stream in [true, false, true, true] {
        let (_, last) = collect(engine.run(chat(stream)).await.unwrap()).await;
        assert!(matches!(last, BodyEvent::End(_)));
    }
    assert_eq!(fake.stats().connections, 1);
    assert_eq!(engine.stats().requests, 4);
}

#[tokio::test]
async fn models_are_discovered_and_the_key_is_sent() {
    let mut fake_config = cocoon_testkit::UpstreamConfig::default();
    fake_config.models = vec!["a".to_owned(), "b".to_owned()];
    fake_config.record_requests = 4;
    let fake = FakeUpstream::start(fake_config).await.unwrap();
    let mut config = UpstreamConfig::new(format!("{}/v1", fake.url()));
    config.api_key = Some("sk-test".to_owned());
    let engine = UpstreamEngine::start(config).await.unwrap();
    let names: Vec<String> = engine.models().into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["a", "b"]);

    let body = json!({"model": "b", "messages": [{"role": "user", "content": "x"}]});
    let request = InferenceRequest::from_json(Endpoint::ChatCompletions, body).unwrap();
    let (_, last) = collect(engine.run(request).await.unwrap()).await;
    assert!(matches!(last, BodyEvent::End(_)));
    let recorded = fake.recorded_requests();
    assert_eq!(
        recorded[0]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer sk-test")
    );

    // A model the engine does not serve is refused before it reaches the upstream.
    let error = engine.run(chat(false)).await.unwrap_err();
    assert!(matches!(error, EngineError::InvalidRequest(_)), "{error:?}");
    assert_eq!(fake.stats().requests, 1);
}

#[tokio::test]
async fn discovery_failures_are_typed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let error = UpstreamEngine::start(UpstreamConfig::new(format!("http://{addr}")))
        .await
        .unwrap_err();
    assert!(
        matches!(error, UpstreamError::ModelsUnreachable { .. }),
        "{error:?}"
    );

    let mut fake_config = cocoon_testkit::UpstreamConfig::default();
    fake_config.models = Vec::new();
    let fake = FakeUpstream::start(fake_config).await.unwrap();
    let error = UpstreamEngine::start(UpstreamConfig::new(fake.url()))
        .await
        .unwrap_err();
    assert_eq!(error, UpstreamError::NoModels);
}

#[tokio::test]
async fn an_oversized_answer_fails_the_stream() {
    let fake = fake(|shape| shape.chunks = 100).await;
    let mut config = config_for(&fake);
    config.max_body_bytes = 4096;
    let engine = UpstreamEngine::new(config).unwrap();
    let (body, last) = collect(engine.run(chat(true)).await.unwrap()).await;
    assert!(body.len() <= 4096);
    match last {
        BodyEvent::Failed { error, .. } => assert!(error.contains("exceeds 4096 bytes"), "{error}"),
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_transcription_is_forwarded_as_a_form_and_billed_at_the_given_usage() {
    use cocoon_infer::TranscriptionRequest;
    use cocoon_protocol::audio::{AudioFile, ResponseFormat, TranscriptionForm, WavAudio};

    let up = fake(|_| {}).await;
    let engine = engine_for(&up);
    let wav = WavAudio::silence(8_000, 2, 12_000);
    let form = TranscriptionForm {
        model: MODEL.into(),
        file: AudioFile {
            filename: "speech.wav".into(),
            content_type: None,
            data: wav.clone().into(),
        },
        language: Some("en".into()),
        prompt: None,
        temperature: None,
        response_format: ResponseFormat::Vtt,
        timestamp_granularities: Vec::new(),
    };
    let usage = TokenUsage {
        prompt_tokens: 15,
        ..TokenUsage::default()
    };
    let request = TranscriptionRequest {
        form: form.clone(),
        audio: WavAudio::parse(&wav).unwrap(),
        usage,
    };
    let response = engine.transcribe(request).await.unwrap();
    assert_eq!(response.status, 200);
    assert!(
        response
            .headers
            .iter()
            .any(|(n, v)| n == "content-type" && v == "text/vtt")
    );
    let (body, last) = collect(response).await;
    assert_eq!(last, BodyEvent::End(usage));
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\n"),
        "{text}"
    );

    // A model the engine does not serve is refused before the upstream is asked.
    let mut other = form;
    other.model = "other".into();
    let refused = engine
        .transcribe(TranscriptionRequest {
            form: other,
            audio: WavAudio::parse(&wav).unwrap(),
            usage,
        })
        .await;
    assert!(matches!(refused, Err(EngineError::InvalidRequest(_))));
}

//! The fake upstream's public behaviour over real HTTP: SSE and NDJSON framing, usage numbers,
//! injected faults, OpenAI-shaped errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cocoon_testkit::upstream::answer::{AnswerText, Usage, prompt_word_count};
use cocoon_testkit::upstream::{FakeUpstream, StreamFormat, UpstreamConfig};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

/// A response as a client saw it; `body` is `Err` when the connection broke mid-body.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    /// Body frames in arrival order, with the time each arrived.
    frames: Vec<(Instant, Bytes)>,
    body: Result<Bytes, String>,
}

impl Answer {
    fn body(&self) -> &[u8] {
        self.body.as_ref().expect("complete body")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(self.body()).expect("JSON body")
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// Sends one request on a fresh connection. `Err` means no response head arrived.
async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Answer, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let headers = response.headers().clone();
    let mut incoming = response.into_body();
    let mut frames = Vec::new();
    let mut whole = Vec::new();
    let body = loop {
        match incoming.frame().await {
            None => break Ok(Bytes::from(whole)),
            Some(Err(error)) => break Err(error.to_string()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    whole.extend_from_slice(&data);
                    frames.push((Instant::now(), data));
                }
            }
        }
    };
    Ok(Answer {
        status,
        headers,
        frames,
        body,
    })
}

async fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &Value) -> Answer {
    send(addr, Method::POST, path, headers, &body.to_string())
        .await
        .expect("a response")
}

/// The JSON payloads of an SSE body, and whether it ended with `data: [DONE]`.
fn sse_events(body: &[u8]) -> (Vec<Value>, bool) {
    let text = std::str::from_utf8(body).expect("UTF-8 SSE");
    assert!(text.ends_with("\n\n"), "events end with a blank line");
    let mut events = Vec::new();
    let mut done = false;
    for event in text.split_terminator("\n\n") {
        let data = event.strip_prefix("data: ").expect("data: prefix");
        assert!(!done, "nothing may follow [DONE]");
        if data == "[DONE]" {
            done = true;
        } else {
            events.push(serde_json::from_str(data).expect("JSON event"));
        }
    }
    (events, done)
}

fn usage_of(value: &Value) -> Usage {
    serde_json::from_value(value["usage"].clone()).expect("usage block")
}

fn chat(prompt: &str, stream: bool) -> Value {
    json!({
        "model": "Qwen/Qwen3-8B",
        "stream": stream,
        "max_tokens": 8000,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": prompt},
        ],
    })
}

const PROMPT: &str = "Why is the sky blue? Answer with \"physics\" ✓";

fn total_prompt_words() -> u64 {
    prompt_word_count("You are terse.") + prompt_word_count(PROMPT)
}

#[tokio::test]
async fn streamed_chat_is_openai_sse_with_usage() {
    let upstream = FakeUpstream::start(UpstreamConfig::default())
        .await
        .unwrap();
    let mut body = chat(PROMPT, true);
    body["stream_options"] = json!({"include_usage": true});
    let answer = post(upstream.addr(), "/v1/chat/completions", &[], &body).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.content_type(), "text/event-stream");

    let (events, done) = sse_events(answer.body());
    assert!(done);
    assert_eq!(events.len(), 51, "50 content chunks and a usage chunk");
    let mut content = String::new();
    for (i, event) in events[..50].iter().enumerate() {
        assert_eq!(event["object"], "chat.completion.chunk");
        assert_eq!(event["model"], "Qwen/Qwen3-8B");
        assert_eq!(event["id"], events[0]["id"]);
        let choice = &event["choices"][0];
        let piece = choice["delta"]["content"].as_str().unwrap();
        assert_eq!(piece.len(), 128, "chunk {i} carries 128 bytes");
        content.push_str(piece);
        assert_eq!(choice["delta"].get("role").is_some(), i == 0);
        let finish = if i == 49 { json!("stop") } else { Value::Null };
        assert_eq!(choice["finish_reason"], finish);
    }
    assert_eq!(content, AnswerText::full_text(PROMPT, 50, 128));
    assert!(content.starts_with("Why is the sky blue? Answer with \"physics\" ✓ Why"));

    let last = &events[50];
    assert_eq!(last["choices"], json!([]));
    let words = total_prompt_words();
    assert_eq!(usage_of(last), Usage::new(words, 50, 0, 0));
    assert_eq!(usage_of(last).total_tokens, words + 50);
    let stats = upstream.stats();
    assert_eq!((stats.requests, stats.streamed, stats.errors), (1, 1, 0));
}

#[tokio::test]
async fn usage_chunk_follows_the_request_or_the_policy() {
    let upstream = FakeUpstream::start(UpstreamConfig::default())
        .await
        .unwrap();
    let body = chat("hi", true);
    let plain = post(upstream.addr(), "/v1/chat/completions", &[], &body).await;
    let (events, done) = sse_events(plain.body());
    assert!(done);
    assert_eq!(events.len(), 50);
    assert!(events.iter().all(|e| e.get("usage").is_none()));

    let always = post(
        upstream.addr(),
        "/v1/chat/completions",
        &[("x-fake-usage", "always"), ("x-fake-chunks", "4")],
        &body,
    )
    .await;
    let (events, _) = sse_events(always.body());
    assert_eq!(events.len(), 5);
    assert_eq!(usage_of(&events[4]).completion_tokens, 4);
}

#[tokio::test]
async fn zero_chunks_still_finish_the_stream() {
    let upstream = FakeUpstream::start(UpstreamConfig::default())
        .await
        .unwrap();
    let mut body = chat("anything", true);
    body["stream_options"] = json!({"include_usage": true});
    let answer = post(
        upstream.addr(),
        "/v1/chat/completions",
        &[("x-fake-chunks", "0")],
        &body,
    )
    .await;
    let (events, done) = sse_events(answer.body());
    assert!(done);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["choices"][0]["delta"]["content"], "");
    assert_eq!(events[0]["choices"][0]["finish_reason"], "stop");
    assert_eq!(usage_of(&events[1]).completion_tokens, 0);
}

#[tokio::test]
async fn whole_chat_answer_has_consistent_usage() {
    let mut config = UpstreamConfig::default();
    config.shape.cached_tokens = 3;
    config.shape.reasoning_tokens = 10;
    let upstream = FakeUpstream::start(config).await.unwrap();
    let answer = post(
        upstream.addr(),
        "/v1/chat/completions",
        &[("x-fake-chunks", "7"), ("x-fake-chunk-bytes", "5")],
        &chat(PROMPT, false),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.content_type(), "application/json");
    let document = answer.json();
    assert_eq!(document["object"], "chat.completion");
    let choice = &document["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(
        choice["message"]["content"],
        AnswerText::full_text(PROMPT, 7, 5)
    );
    assert_eq!(choice["finish_reason"], "stop");
    let usage = usage_of(&document);
    assert_eq!(usage, Usage::new(total_prompt_words(), 7, 3, 10));
    assert_eq!(usage.prompt_tokens_details.cached_tokens, 3);
    assert_eq!(
        usage.completion_tokens_details.reasoning_tokens, 7,
        "capped"
    );
}

#[tokio::test]
async fn max_tokens_cuts_the_answer_with_finish_reason_length() {
    let upstream = FakeUpstream::start(UpstreamConfig::default())
        .await
        .unwrap();
    let mut body = chat("count me", true);
    body["max_completion_tokens"] = json!(3);
    body["stream_options"] = json!({"include_usage": true});
    let answer = post(upstream.addr(), "/v1/chat/completions", &[], &body).await;
    let (events, done) = sse_events(answer.body());
    assert!(done);
    assert_eq!(events.len(), 4);
    assert_eq!(events[2]["choices"][0]["finish_reason"], "length");
    assert_eq!(usage_of(&events[3]).completion_tokens, 3);
}

#[tokio::test]
async fn text_completions_stream_and_whole() {
    let upstream = FakeUpstream::start(UpstreamConfig::default())
        .await
        .unwrap();
    let streamed = post(
        upstream.addr(),
        "/v1/completions",
        &[("x-fake-chunks", "3"), ("x-fake-chunk-bytes", "6")],
        &json!({"prompt": "once upon a time", "stream": true,
                "stream_options": {"include_usage": true}}),
    )
    .await;
    let (events, done) = sse_events(streamed.body());
    assert!(done);
    let text: String = events[..3]
        .iter()
        .map(|e| {
            assert_eq!(e["object"], "text_completion");
            e["choices"][0]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "once upon a time o");
    assert_eq!(usage_of(&events[3]), Usage::new(4, 3, 0, 0));

    let whole = post(
        upstream.addr(),
        "/v1/completions",
        &[("x-fake-chunks", "3"), ("x-fake-chunk-bytes", "6")],
        &json!({"model": "Qwen/Qwen3-8B", "prompt": ["once upon", "a time"]}),
    )
    .await;
    let document = whole.json();
    assert_eq!(document["object"], "text_completion");
    assert_eq!(document["choices"][0]["text"], "once upon a time o");
    assert_eq!(usage_of(&document), Usage::new(4, 3, 0, 0));
}

#[tokio::test]
async fn ndjson_mode_matches_the_reference_benchmark() {
    let mut config = UpstreamConfig::default();
    config.shape.format = StreamFormat::Ndjson;
    let upstream = FakeUpstream::start(config).await.unwrap();
    // The reference upstream ignores `stream`: both ask for the same lines.
    for stream in [true, false] {
        let answer = post(
            upstream.addr(),
            "/v1/chat/completions",
            &[],
            &chat("hello", stream),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.content_type(), "application/json");
        let text = std::str::from_utf8(answer.body()).unwrap();
        assert!(text.ends_with('\n'));
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 51);
        let expected = AnswerText::full_text("hello", 50, 128);
        for (i, line) in lines[..50].iter().enumerate() {
            assert_eq!(line["i"], i);
            assert_eq!(
                line["delta"].as_str().unwrap(),
                &expected[i * 128..(i + 1) * 128]
            );
        }
        assert_eq!(
            usage_of(&lines[50]),
            Usage::new(prompt_word_count("You are terse. hello"), 50, 0, 0)
        );
    }
}

#[tokio::test]
async fn fail_after_breaks_the_connection_mid_stream() {
    let mut config = UpstreamConfig::default();
    config.shape.fail_after = Some(5);
    let upstream = FakeUpstream::start(config).await.unwrap();
    let answer = post(
        upstream.addr(),
        "/v1/chat/completions",
        &[("x-fake-chunk-bytes", "8")],
        &chat("crash now", true),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body.is_err(), "the body must break off");
    let received: Vec<u8> = answer.frames.iter().flat_map(|(_, b)| b.to_vec()).collect();
    let text = std::str::from_utf8(&received).unwrap();
    assert_eq!(
        text.matches("data: ").count(),
        5,
        "exactly five chunks arrived"
    );
    assert!(!text.contains("[DONE]"));

    // Non-streamed: the engine dies before it answers.
    let whole = send(
        upstream.addr(),
        Method::POST,
        "/v1/chat/completions",
        &[],
        &chat("crash now", false).to_string(),
    )
    .await;
    assert!(whole.is_err(), "no response head may arrive");

    // A request can switch the fault off.
    let healthy = post(
        upstream.addr(),
        "/v1/chat/completions",
        &[("x-fake-fail-after", "none")],
        &chat("fine", true),
    )
    .await;
    assert!(sse_events(healthy.body()).1);
    assert_eq!(upstream.stats().aborted, 2);
}

#[tokio::test]
async fn unknown_models_get_openai_404() {
    let mut config = UpstreamConfig::default();
    config.models = vec!["alpha".to_owned(), "beta".to_owned()];
    let upstream = FakeUpstream::start(config).await.unwrap();
    let mut body = chat("hi", false);
    body["model"] = json!("gamma");
    let answer = post(upstream.addr(), "/v1/chat/completions", &[], &body).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let error = &answer.json()["error"];
    assert_eq!(error["code"], "model_not_found");
    assert_eq!(error["param"], "model");
    assert_eq!(error["type"], "invalid_request_error");
    assert!(error["message"].as_str().unwrap().contains("gamma"));

    body["model"] = json!("beta");
    let known = post(upstream.addr(), "/v1/chat/completions", &[], &body).await;
    assert_eq!(known.json()["model"], "beta");
    body.as_object_mut().unwrap().remove("model");
    let defaulted = post(upstream.addr(), "/v1/chat/completions", &[], &body).await;
    assert_eq!(defaulted.json()["model"], "alpha");

    let models = send(upstream.addr(), Method::GET, "/v1/models", &[], "")
        .await
        .unwrap()
        .json();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        (models["object"].as_str(), ids),
        (Some("list"), vec!["alpha", "beta"])
    );

    let mut open = UpstreamConfig::default();
    open.any_model = true;
    let open = FakeUpstream::start(open).await.unwrap();
    body["model"] = json!("whatever/model");
    let served = post(open.addr(), "/v1/chat/completions", &[], &body).await;
    assert_eq!(served.json()["model"], "whatever/model");
}

#[tokio::test]
async fn bad_requests_and_injected_statuses_are_openai_errors() {
    let upstream = FakeUpstream::start(UpstreamConfig::default())
        .await
        .unwrap();
    let addr = upstream.addr();
    let cases: Vec<(Answer, StatusCode)> = vec![
        (
            send(addr, Method::POST, "/v1/chat/completions", &[], "{not json")
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
        ),
        (
            post(
                addr,
                "/v1/chat/completions",
                &[("x-fake-chunks", "lots")],
                &chat("x", true),
            )
            .await,
            StatusCode::BAD_REQUEST,
        ),
        (
            post(
                addr,
                "/v1/chat/completions",
                &[("x-fake-status", "503")],
                &chat("x", true),
            )
            .await,
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            send(addr, Method::GET, "/v1/chat/completions", &[], "")
                .await
                .unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            send(addr, Method::GET, "/v2/nothing", &[], "")
                .await
                .unwrap(),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (answer, status) in &cases {
        assert_eq!(answer.status, *status);
        let error = &answer.json()["error"];
        assert!(error["message"].is_string(), "{status}: {error}");
        assert!(error["type"].is_string(), "{status}: {error}");
    }
    assert_eq!(cases[2].0.json()["error"]["type"], "server_error");
    assert_eq!(upstream.stats().errors, 5);

    let health = send(addr, Method::GET, "/health", &[], "").await.unwrap();
    assert_eq!(
        (health.status, health.json()),
        (StatusCode::OK, json!({"status": "ok"}))
    );
    let stats = send(addr, Method::GET, "/stats", &[], "")
        .await
        .unwrap()
        .json();
    assert_eq!(stats["errors"], 5);
}

#[tokio::test]
async fn pauses_space_the_chunks() {
    let upstream = FakeUpstream::start(UpstreamConfig::default())
        .await
        .unwrap();
    let started = Instant::now();
    let answer = post(
        upstream.addr(),
        "/v1/chat/completions",
        &[
            ("x-fake-chunks", "4"),
            ("x-fake-delay-ms", "25"),
            ("x-fake-ttft-ms", "40"),
        ],
        &chat("slow", true),
    )
    .await;
    assert!(sse_events(answer.body()).1);
    let first = answer.frames.first().unwrap().0;
    let last = answer.frames.last().unwrap().0;
    assert!(
        first - started >= Duration::from_millis(40),
        "time to first token"
    );
    assert!(
        last - first >= Duration::from_millis(75),
        "three pauses between four chunks"
    );

    let started = Instant::now();
    let whole = post(
        upstream.addr(),
        "/v1/chat/completions",
        &[("x-fake-chunks", "3"), ("x-fake-delay-ms", "20")],
        &chat("slow", false),
    )
    .await;
    assert_eq!(whole.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(40));
}

#[tokio::test]
async fn requests_are_recorded_and_shutdown_closes_the_port() {
    let mut config = UpstreamConfig::default();
    config.record_requests = 2;
    let upstream = FakeUpstream::start(config).await.unwrap();
    let addr = upstream.addr();
    for prompt in ["one", "two", "three"] {
        post(
            addr,
            "/v1/chat/completions",
            &[("authorization", "Bearer k")],
            &chat(prompt, false),
        )
        .await;
    }
    let recorded = upstream.recorded_requests();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].path, "/v1/chat/completions");
    assert_eq!(recorded[0].headers["authorization"], "Bearer k");
    let last: Value = serde_json::from_slice(&recorded[1].body).unwrap();
    assert_eq!(last["messages"][1]["content"], "three");

    upstream.shutdown().await;
    assert!(TcpStream::connect(addr).await.is_err());
}

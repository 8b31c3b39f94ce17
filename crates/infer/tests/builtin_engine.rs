//! `BuiltinEngine` through the `Engine` trait on the real default model: OpenAI response
//! shapes, streamed SSE, stop strings and exact usage. Skipped, with a message, when the
//! model file is not in the local cache.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use cocoon_infer::builtin::{
    BuiltinEngine, BuiltinEngineConfig, CpuBackend, ModelStore, SMOLLM2_135M_Q4_1, TextModel,
};
use cocoon_infer::request::RequestError;
use cocoon_infer::tokenizer::ChatTemplate;
use cocoon_infer::{BodyEvent, Endpoint, Engine, EngineError, InferenceRequest, TokenUsage};
use serde_json::{Value, json};

fn engine() -> Option<&'static BuiltinEngine<CpuBackend>> {
    static ENGINE: OnceLock<Option<BuiltinEngine<CpuBackend>>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let path = ModelStore::user_default().ok()?.path_of(&SMOLLM2_135M_Q4_1);
            if !path.exists() {
                eprintln!("skipping: {} not found", path.display());
                return None;
            }
            let mut model = TextModel::open(&path, &Default::default()).unwrap();
            model.set_template(ChatTemplate::chatml());
            Some(BuiltinEngine::new(model, BuiltinEngineConfig::default()))
        })
        .as_ref()
}

/// A request as the worker hands it over: checked, and named for the engine's model.
fn request(endpoint: Endpoint, body: Value) -> InferenceRequest {
    checked(endpoint, body).unwrap()
}

fn checked(endpoint: Endpoint, mut body: Value) -> Result<InferenceRequest, RequestError> {
    body["model"] = json!(BuiltinEngineConfig::default().model_name);
    InferenceRequest::from_json(endpoint, body)
}

/// The body bytes and the final usage.
async fn collect(
    engine: &BuiltinEngine<CpuBackend>,
    req: InferenceRequest,
) -> (String, TokenUsage) {
    let mut response = engine.run(req).await.unwrap();
    assert_eq!(response.status, 200);
    let mut body = Vec::new();
    loop {
        match response.body.recv().await.unwrap() {
            BodyEvent::Data(bytes) => body.extend_from_slice(&bytes),
            BodyEvent::End(usage) => return (String::from_utf8(body).unwrap(), usage),
            BodyEvent::Failed { error, .. } => panic!("generation failed: {error}"),
            BodyEvent::Stopped(usage) => panic!("stopped unasked, after {usage:?}"),
        }
    }
}

fn chat_body(stream: bool) -> Value {
    json!({
        "model": "SmolLM2-135M-Instruct",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of France?"}
        ],
        "temperature": 0,
        "stream": stream,
        "stream_options": {"include_usage": true},
    })
}

#[tokio::test]
async fn chat_completion_whole() {
    let Some(engine) = engine() else { return };
    let (body, usage) = collect(engine, request(Endpoint::ChatCompletions, chat_body(false))).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "The capital of France is Paris."
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], usage.prompt_tokens);
    assert_eq!(v["usage"]["completion_tokens"], usage.completion_tokens);
    assert_eq!(usage.completion_tokens, 7, "{body}");
    assert!(usage.prompt_tokens > 10);
}

#[tokio::test]
async fn chat_completion_streamed() {
    let Some(engine) = engine() else { return };
    let (body, usage) = collect(engine, request(Endpoint::ChatCompletions, chat_body(true))).await;
    let events: Vec<&str> = body
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").unwrap())
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "The capital of France is Paris.");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let finish: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, vec![&json!("stop")]);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], usage.completion_tokens);
    assert_eq!(usage.completion_tokens, 7);
}

#[tokio::test]
async fn completion_with_stop_string_and_limit() {
    let Some(engine) = engine() else { return };
    let body = json!({
        "model": "SmolLM2-135M-Instruct",
        "prompt": "Once upon a time",
        "temperature": 0,
        "max_tokens": 30,
        "stop": [" was"],
    });
    let (body, usage) = collect(engine, request(Endpoint::Completions, body)).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], ", the city of Nova Haven");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(usage.completion_tokens < 30);

    let body = json!({"prompt": "Once upon a time", "temperature": 0, "max_tokens": 4});
    let (body, usage) = collect(engine, request(Endpoint::Completions, body)).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(usage.completion_tokens, 4);
    assert_eq!(v["usage"]["total_tokens"], usage.total());
}

#[tokio::test]
async fn malformed_requests_are_refused_before_generation() {
    let Some(engine) = engine() else { return };
    for (endpoint, body) in [
        (Endpoint::ChatCompletions, json!({"messages": "hi"})),
        (
            Endpoint::ChatCompletions,
            json!({"messages": [{"role": "tool", "content": "x"}]}),
        ),
        (Endpoint::Completions, json!({"prompt": 5})),
        (Endpoint::Completions, json!({"prompt": "x", "n": 2})),
        (
            Endpoint::Completions,
            json!({"prompt": "x", "temperature": -1}),
        ),
        // Asked for, but not something this engine can do: refused, never silently ignored.
        (
            Endpoint::ChatCompletions,
            json!({"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "string", "pattern": "^a"}}}}),
        ),
        (
            Endpoint::ChatCompletions,
            json!({"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "xml"}}),
        ),
        (
            Endpoint::ChatCompletions,
            json!({"messages": [{"role": "user", "content": "hi"}], "top_logprobs": 3}),
        ),
        (
            Endpoint::ChatCompletions,
            json!({"messages": [{"role": "user", "content": "hi"}], "logprobs": true, "top_logprobs": 21}),
        ),
        (Endpoint::Completions, json!({"prompt": "x", "logprobs": 6})),
        (
            Endpoint::Completions,
            json!({"prompt": "x", "logprobs": 1, "echo": true}),
        ),
        (
            Endpoint::ChatCompletions,
            json!({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "f"}}]}),
        ),
    ] {
        // Refused where the worker checks the request, or else by the engine.
        let Ok(request) = checked(endpoint, body.clone()) else {
            continue;
        };
        let err = engine.run(request).await.unwrap_err();
        assert!(
            matches!(
                err,
                EngineError::InvalidRequest(_) | EngineError::Unsupported { .. }
            ),
            "{body}: {err}"
        );
    }
    // What the engine cannot do is refused naming the field, as OpenAI's `param`.
    for (body, param) in [
        (
            json!({"messages": [{"role": "tool", "content": "x"}]}),
            "messages",
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "xml"}}),
            "response_format",
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]}),
            "tools",
        ),
    ] {
        let err = engine
            .run(request(Endpoint::ChatCompletions, body.clone()))
            .await
            .unwrap_err();
        assert_eq!(err.param(), Some(param), "{body}: {err}");
    }
}

#[tokio::test]
async fn dropping_a_stream_frees_the_engine_for_the_next_request() {
    let Some(engine) = engine() else { return };
    let body =
        json!({"prompt": "Once upon a time", "temperature": 0, "max_tokens": 2000, "stream": true});
    let mut response = engine
        .run(request(Endpoint::Completions, body))
        .await
        .unwrap();
    assert!(matches!(
        response.body.recv().await,
        Some(BodyEvent::Data(_))
    ));
    drop(response);
    // Generation stops at the next token, so the next request runs promptly.
    let body = json!({"prompt": "Once upon a time", "temperature": 0, "max_tokens": 3});
    let started = std::time::Instant::now();
    let (_, usage) = collect(engine, request(Endpoint::Completions, body)).await;
    assert_eq!(usage.completion_tokens, 3);
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

#[tokio::test]
async fn a_stopped_answer_ends_with_the_tokens_used_so_far() {
    let Some(engine) = engine() else { return };
    let body =
        json!({"prompt": "Once upon a time", "temperature": 0, "max_tokens": 2000, "stream": true});
    let mut response = engine
        .run(request(Endpoint::Completions, body))
        .await
        .unwrap();
    // Wait for some generated text (the first chunk may only echo nothing), then stop.
    let mut data_events = 0;
    while data_events < 3 {
        match response.body.recv().await {
            Some(BodyEvent::Data(_)) => data_events += 1,
            other => panic!("unexpected before the stop: {other:?}"),
        }
    }
    response.stop.stop();
    let usage = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(30), response.body.recv())
            .await
            .expect("the engine did not answer the stop")
        {
            Some(BodyEvent::Data(_)) => {}
            Some(BodyEvent::Stopped(usage)) => break usage,
            other => panic!("expected the stopped usage, got {other:?}"),
        }
    };
    assert!(usage.prompt_tokens > 0, "{usage:?}");
    assert!(
        (3..2000).contains(&usage.completion_tokens),
        "the usage must count what was generated until the stop: {usage:?}"
    );
    assert!(
        response.body.recv().await.is_none(),
        "the body ends after the stop"
    );
}

fn completion_text(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap();
    v["choices"][0]["text"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn seeded_sampling_replays_and_penalties_change_the_text() {
    let Some(engine) = engine() else { return };
    let sampled = |seed: u64| {
        json!({"prompt": "Once upon a time", "temperature": 1.0, "top_k": 50, "top_p": 0.95,
               "min_p": 0.01, "seed": seed, "max_tokens": 16})
    };
    let run = |body: Value| async move {
        completion_text(
            &collect(engine, request(Endpoint::Completions, body))
                .await
                .0,
        )
    };
    let a = run(sampled(7)).await;
    assert_eq!(a, run(sampled(7)).await, "same seed, same text");
    let others = [run(sampled(8)).await, run(sampled(9)).await];
    assert!(
        others.iter().any(|o| *o != a),
        "other seeds, other text: {a:?} {others:?}"
    );

    // Greedy text repeats itself on this prompt; a strong repetition penalty changes it.
    let greedy = json!({"prompt": "1, 2, 3, 1, 2, 3, 1, 2, 3,", "temperature": 0, "max_tokens": 6});
    let plain = run(greedy.clone()).await;
    let mut penalized = greedy;
    penalized["repetition_penalty"] = json!(3.0);
    let penalized = run(penalized).await;
    assert_ne!(plain, penalized, "{plain:?}");
}

#[tokio::test]
async fn concurrent_greedy_requests_match_one_at_a_time() {
    let Some(engine) = engine() else { return };
    let prompts = [
        "Once upon a time",
        "The capital of France is",
        "def fibonacci(n):",
        "My favourite colour is",
        "In 1969, astronauts",
        "The recipe calls for",
        "Water boils at",
        "A haiku about the sea:",
    ];
    let body = |p: &str, stream: bool| json!({"prompt": p, "temperature": 0, "max_tokens": 12 + p.len() % 5, "stream": stream});
    let mut alone = Vec::new();
    for p in prompts {
        let (text, usage) = collect(engine, request(Endpoint::Completions, body(p, false))).await;
        alone.push((completion_text(&text), usage));
    }
    // All at once; half of them streamed, so the scheduler mixes both kinds.
    let together = futures::future::join_all(prompts.iter().enumerate().map(|(i, p)| {
        let stream = i % 2 == 1;
        async move {
            let (text, usage) =
                collect(engine, request(Endpoint::Completions, body(p, stream))).await;
            let text = if stream {
                text.lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .filter(|d| *d != "[DONE]")
                    .map(|d| {
                        let v: Value = serde_json::from_str(d).unwrap();
                        v["choices"][0]["text"].as_str().unwrap_or("").to_owned()
                    })
                    .collect()
            } else {
                completion_text(&text)
            };
            (text, usage)
        }
    }))
    .await;
    assert_eq!(together, alone);
}

#[tokio::test]
async fn abandoned_requests_free_their_batch_slots() {
    let Some(engine) = engine() else { return };
    let body = json!({"prompt": "Once upon a time", "temperature": 0, "max_tokens": 4000,
                      "stream": true});
    let mut responses = Vec::new();
    for _ in 0..8 {
        responses.push(
            engine
                .run(request(Endpoint::Completions, body.clone()))
                .await
                .unwrap(),
        );
    }
    for r in &mut responses {
        assert!(matches!(r.body.recv().await, Some(BodyEvent::Data(_))));
    }
    drop(responses);
    let body = json!({"prompt": "Once upon a time", "temperature": 0, "max_tokens": 2});
    let started = std::time::Instant::now();
    let (_, usage) = collect(engine, request(Endpoint::Completions, body)).await;
    assert_eq!(usage.completion_tokens, 2);
    // Had the eight kept their slots, this would wait for 32000 tokens.
    assert!(started.elapsed() < std::time::Duration::from_secs(300));
}

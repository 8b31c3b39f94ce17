//! `response_format` and `logprobs` on the built-in engine with the real default model: JSON
//! answers held to their grammar by constrained decoding (they parse, and validate against the
//! schema), and log-probabilities that agree with the tokens of the answer. Skipped, with a
//! message, when the model file is not in the local cache.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use cocoon_infer::builtin::{
    BuiltinEngine, BuiltinEngineConfig, CpuBackend, ModelStore, SMOLLM2_135M_Q4_1, TextModel,
};
use cocoon_infer::{BodyEvent, Endpoint, Engine, InferenceRequest, TokenUsage};
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
            let model = TextModel::open(&path, &Default::default()).unwrap();
            Some(BuiltinEngine::new(model, BuiltinEngineConfig::default()))
        })
        .as_ref()
}

async fn run(endpoint: Endpoint, body: Value) -> (String, TokenUsage) {
    let engine = engine().expect("model present");
    let mut body = body;
    body["model"] = json!(BuiltinEngineConfig::default().model_name);
    let req = InferenceRequest::from_json(endpoint, body).unwrap();
    let mut response = engine.run(req).await.unwrap();
    let mut out = Vec::new();
    loop {
        match response.body.recv().await.unwrap() {
            BodyEvent::Data(bytes) => out.extend_from_slice(&bytes),
            BodyEvent::End(usage) => return (String::from_utf8(out).unwrap(), usage),
            other => panic!("answer did not end normally: {other:?}"),
        }
    }
}

fn chat(prompt: &str, extra: Value) -> Value {
    let mut body = json!({
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 160,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// The SSE `data:` documents of a streamed body, without `[DONE]`.
fn events(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test]
async fn json_object_answers_parse_as_objects_greedy_and_sampled() {
    if engine().is_none() {
        return;
    }
    for (i, sampling) in [
        json!({"temperature": 0}),
        json!({"temperature": 1.0, "seed": 7}),
        json!({"temperature": 1.2, "top_p": 0.95, "seed": 11}),
        // A budget this small is spent closing what was opened.
        json!({"temperature": 0, "max_tokens": 6}),
        json!({"temperature": 1.0, "seed": 3, "max_tokens": 9}),
    ]
    .into_iter()
    .enumerate()
    {
        let mut body = chat("Describe a cat as JSON with its name and age.", json!({}));
        for (k, v) in sampling.as_object().unwrap() {
            body[k] = v.clone();
        }
        body["response_format"] = json!({"type": "json_object"});
        let limit = body["max_tokens"].as_u64().unwrap();
        let (body, usage) = run(Endpoint::ChatCompletions, body).await;
        let v: Value = serde_json::from_str(&body).unwrap();
        let content = v["choices"][0]["message"]["content"].as_str().unwrap();
        assert_eq!(
            v["choices"][0]["finish_reason"], "stop",
            "run {i}: {content}"
        );
        let parsed: Value =
            serde_json::from_str(content).unwrap_or_else(|e| panic!("run {i}: {e}: {content}"));
        assert!(parsed.is_object(), "{content}");
        assert!(usage.completion_tokens > 0 && usage.completion_tokens <= limit);
    }
}

#[tokio::test]
async fn json_schema_answers_validate_streamed_and_not() {
    if engine().is_none() {
        return;
    }
    let schema = json!({
        "type": "object",
        "properties": {
            "city": {"type": "string", "enum": ["Paris", "Lyon", "Nice"]},
            "population": {"type": "integer"},
            "capital": {"type": "boolean"},
            "rivers": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
            "mayor": {"type": ["string", "null"]}
        },
        "required": ["city", "population", "capital", "rivers"],
        "additionalProperties": false
    });
    let format = json!({"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": true}});
    for stream in [false, true] {
        let extra = json!({"temperature": 0, "response_format": format, "stream": stream});
        let (body, _) = run(
            Endpoint::ChatCompletions,
            chat("Give facts about the capital of France as JSON.", extra),
        )
        .await;
        let content: String = if stream {
            events(&body)
                .iter()
                .filter_map(|e| {
                    e["choices"][0]["delta"]["content"]
                        .as_str()
                        .map(str::to_owned)
                })
                .collect()
        } else {
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["choices"][0]["finish_reason"], "stop", "{body}");
            v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let v: Value = serde_json::from_str(&content).unwrap_or_else(|e| panic!("{e}: {content}"));
        let obj = v.as_object().unwrap();
        assert!(
            ["Paris", "Lyon", "Nice"].contains(&obj["city"].as_str().unwrap()),
            "{content}"
        );
        assert!(
            obj["population"].is_i64() || obj["population"].is_u64(),
            "{content}"
        );
        assert!(obj["capital"].is_boolean(), "{content}");
        let rivers = obj["rivers"].as_array().unwrap();
        assert!(
            rivers.len() <= 2 && rivers.iter().all(Value::is_string),
            "{content}"
        );
        assert!(
            obj.get("mayor")
                .is_none_or(|m| m.is_string() || m.is_null())
        );
        assert!(
            obj.keys().all(|k| schema["properties"].get(k).is_some()),
            "{content}"
        );
    }
}

#[tokio::test]
async fn chat_logprobs_describe_the_tokens_of_the_answer() {
    if engine().is_none() {
        return;
    }
    let extra = json!({"temperature": 0, "max_tokens": 12, "logprobs": true, "top_logprobs": 3});
    let (body, usage) = run(
        Endpoint::ChatCompletions,
        chat("What is the capital of France?", extra),
    )
    .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    let entries = v["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert_eq!(entries.len() as u64, usage.completion_tokens);
    let mut bytes = Vec::new();
    for e in entries {
        let lp = e["logprob"].as_f64().unwrap();
        assert!(lp <= 0.0);
        let top = e["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        // Greedy: the token chosen is the most likely one.
        assert_eq!(top[0]["token"], e["token"]);
        assert!((top[0]["logprob"].as_f64().unwrap() - lp).abs() < 1e-6);
        assert!(
            top.windows(2)
                .all(|w| w[0]["logprob"].as_f64() >= w[1]["logprob"].as_f64())
        );
        bytes.extend(
            e["bytes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_u64().unwrap() as u8),
        );
    }
    assert_eq!(String::from_utf8(bytes).unwrap(), content);

    // Streamed: the chunks carry one entry per token between them.
    let mut extra = json!({"temperature": 0, "max_tokens": 12, "logprobs": true, "stream": true});
    extra["stream_options"] = json!({"include_usage": true});
    let (body, usage) = run(
        Endpoint::ChatCompletions,
        chat("What is the capital of France?", extra),
    )
    .await;
    let streamed: usize = events(&body)
        .iter()
        .filter_map(|e| {
            e["choices"][0]["logprobs"]["content"]
                .as_array()
                .map(Vec::len)
        })
        .sum();
    assert_eq!(streamed as u64, usage.completion_tokens);
}

#[tokio::test]
async fn completions_logprobs_use_the_legacy_shape() {
    if engine().is_none() {
        return;
    }
    let body = json!({"prompt": "The capital of France is", "temperature": 0, "max_tokens": 6, "logprobs": 2});
    let (body, usage) = run(Endpoint::Completions, body).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    let text = v["choices"][0]["text"].as_str().unwrap();
    let lp = &v["choices"][0]["logprobs"];
    let tokens: Vec<&str> = lp["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(tokens.len() as u64, usage.completion_tokens);
    assert_eq!(tokens.concat(), text);
    let offsets: Vec<u64> = lp["text_offset"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_u64().unwrap())
        .collect();
    assert_eq!(offsets[0], 0);
    assert!(offsets.windows(2).all(|w| w[0] < w[1]));
    for (top, chosen) in lp["top_logprobs"].as_array().unwrap().iter().zip(&tokens) {
        let top = top.as_object().unwrap();
        assert!(top.len() <= 2 && top.contains_key(*chosen), "{top:?}");
    }
}

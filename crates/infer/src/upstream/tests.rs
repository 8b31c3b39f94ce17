#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;

use super::*;

/// Where the model lists of these tests come from.
const URL: &str = "http://127.0.0.1:8000/v1/models";

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[test]
fn base_urls_are_parsed_with_or_without_v1() {
    for (url, chat, display) in [
        (
            "http://127.0.0.1:8000",
            "http://127.0.0.1:8000/v1/chat/completions",
            "http://127.0.0.1:8000",
        ),
        (
            "http://127.0.0.1:8000/",
            "http://127.0.0.1:8000/v1/chat/completions",
            "http://127.0.0.1:8000",
        ),
        (
            "http://localhost:8000/v1/",
            "http://localhost:8000/v1/chat/completions",
            "http://localhost:8000",
        ),
        (
            "http://h:1/engine/v1",
            "http://h:1/engine/v1/chat/completions",
            "http://h:1/engine",
        ),
    ] {
        let target = Target::parse(url).unwrap();
        assert_eq!(target.chat.to_string(), chat, "{url}");
        assert_eq!(target.display, display, "{url}");
    }
    let target = Target::parse("http://h:1").unwrap();
    assert_eq!(target.completions.to_string(), "http://h:1/v1/completions");
    assert_eq!(target.models.to_string(), "http://h:1/v1/models");
}

#[test]
fn unusable_base_urls_are_refused() {
    for url in [
        "",
        "127.0.0.1:8000",
        "https://h:1",
        "http://user:pw@h:1",
        "http://h:1/?x=1",
        "ftp://h",
    ] {
        assert!(
            matches!(
                Target::parse(url),
                Err(UpstreamError::InvalidBaseUrl { .. })
            ),
            "{url}"
        );
    }
}

#[test]
fn engine_setup_checks_models_and_key() {
    let mut config = UpstreamConfig::new("http://127.0.0.1:9");
    assert_eq!(
        UpstreamEngine::new(config.clone()).err(),
        Some(UpstreamError::NoModels)
    );
    config.models = vec!["m".to_owned()];
    config.api_key = Some("bad\nkey".to_owned());
    assert_eq!(
        UpstreamEngine::new(config.clone()).err(),
        Some(UpstreamError::InvalidApiKey)
    );
    config.api_key = Some("sk-good".to_owned());
    let engine = UpstreamEngine::new(config).unwrap();
    assert_eq!(
        engine.models(),
        vec![ModelInfo {
            name: "m".to_owned(),
            context_length: None,
            weights: None
        }]
    );
}

#[test]
fn usage_is_asked_for_without_losing_other_stream_options() {
    let mut body = object(json!({"stream": true}));
    ask_for_usage(&mut body);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    let mut body =
        object(json!({"stream_options": {"include_usage": false, "continuous_usage_stats": true}}));
    ask_for_usage(&mut body);
    assert_eq!(
        body["stream_options"],
        json!({"include_usage": true, "continuous_usage_stats": true})
    );
    let mut body = object(json!({"stream_options": null}));
    ask_for_usage(&mut body);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
}

#[test]
fn prompt_estimates_follow_the_text() {
    let chat = object(json!({"messages": [
        {"role": "system", "content": "12345678"},
        {"role": "user", "content": [{"type": "text", "text": "abcd"}, {"type": "image_url", "image_url": {"url": "x"}}]},
        {"role": "assistant", "content": null},
    ]}));
    assert_eq!(estimate_prompt_tokens(Endpoint::ChatCompletions, &chat), 3);
    let text = object(json!({"prompt": ["abcde", "f"]}));
    assert_eq!(estimate_prompt_tokens(Endpoint::Completions, &text), 2);
    let ids = object(json!({"prompt": [1, 2, 3, 4, 5]}));
    assert_eq!(estimate_prompt_tokens(Endpoint::Completions, &ids), 5);
    assert_eq!(
        estimate_prompt_tokens(Endpoint::ChatCompletions, &Map::new()),
        0
    );
}

#[test]
fn model_lists_are_read_with_context_lengths() {
    let body = br#"{"object":"list","data":[
        {"id":"Qwen/Qwen3-8B","object":"model","max_model_len":32768},
        {"id":"small","context_length":2048},
        {"id":"plain"}]}"#;
    let (models, llama_cpp) = parse_model_list(URL, body).unwrap();
    assert!(!llama_cpp);
    assert_eq!(
        models,
        vec![
            ModelInfo {
                name: "Qwen/Qwen3-8B".to_owned(),
                context_length: Some(32768),
                weights: None
            },
            ModelInfo {
                name: "small".to_owned(),
                context_length: Some(2048),
                weights: None
            },
            ModelInfo {
                name: "plain".to_owned(),
                context_length: None,
                weights: None
            },
        ]
    );
    assert!(matches!(
        parse_model_list(URL, b"{\"models\":[]}"),
        Err(UpstreamError::ModelsInvalid { .. })
    ));
    assert!(matches!(
        parse_model_list(URL, b"not json"),
        Err(UpstreamError::ModelsInvalid { .. })
    ));
}

#[test]
fn a_llama_cpp_model_list_says_so() {
    // llama.cpp's server lists its model twice: Ollama-style `models` and OpenAI `data`.
    let body = br#"{"models":[{"name":"m.gguf","model":"m.gguf"}],"object":"list",
        "data":[{"id":"m.gguf","object":"model","owned_by":"llamacpp","meta":{"n_ctx":512}}]}"#;
    let (models, llama_cpp) = parse_model_list(URL, body).unwrap();
    assert!(llama_cpp);
    assert_eq!(models[0].name, "m.gguf");
}

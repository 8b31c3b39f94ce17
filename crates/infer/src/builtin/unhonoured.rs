//! The OpenAI request fields the built-in engine cannot honour, refused by name instead of being
//! silently ignored: a caller that asks for JSON output, log-probabilities or tool calls and
//! gets plain text would be misled (and would pay for it).
//!
//! A field is refused only when it asks for something: `tools: []` or `tool_choice: "none"` ask
//! for what the engine does anyway. `response_format` and `logprobs` are honoured (constrained
//! decoding, log-probabilities) and checked where the request is parsed.

use serde_json::{Map, Value};

/// The first field of `body` that asks for behaviour this engine does not have, and why.
pub(crate) fn unhonoured_field(body: &Map<String, Value>) -> Option<(&'static str, String)> {
    let asks = |key: &str| body.get(key).filter(|v| !v.is_null());
    for key in ["tools", "functions"] {
        if asks(key).is_some_and(|v| v.as_array().is_none_or(|a| !a.is_empty())) {
            return Some((
                key,
                format!("`{key}` (tool calling) is not supported by this worker's built-in engine"),
            ));
        }
    }
    for key in ["tool_choice", "function_call"] {
        if asks(key).is_some_and(|v| v.as_str() != Some("none")) {
            return Some((
                key,
                format!("`{key}` (tool calling) is not supported by this worker's built-in engine"),
            ));
        }
    }
    if asks("logit_bias").is_some_and(|v| v.as_object().is_none_or(|m| !m.is_empty())) {
        return Some((
            "logit_bias",
            "`logit_bias` is not supported by this worker's built-in engine".into(),
        ));
    }
    for key in ["web_search_options", "prediction", "audio"] {
        if asks(key).is_some() {
            return Some((
                key,
                format!("`{key}` is not supported by this worker's built-in engine"),
            ));
        }
    }
    if asks("modalities").is_some_and(|v| v != &serde_json::json!(["text"])) {
        return Some((
            "modalities",
            "`modalities` other than [\"text\"] are not supported by this worker's built-in engine"
                .into(),
        ));
    }
    if asks("ignore_eos").is_some_and(|v| v != &Value::Bool(false)) {
        return Some((
            "ignore_eos",
            "`ignore_eos` is not supported by this worker's built-in engine".into(),
        ));
    }
    if asks("min_tokens").is_some_and(|v| v.as_u64() != Some(0)) {
        return Some((
            "min_tokens",
            "`min_tokens` is not supported by this worker's built-in engine".into(),
        ));
    }
    if asks("chat_template_kwargs").is_some_and(|v| v.as_object().is_none_or(|m| !m.is_empty())) {
        return Some((
            "chat_template_kwargs",
            "`chat_template_kwargs` is not supported by this worker's built-in engine".into(),
        ));
    }
    if asks("reasoning_effort").is_some() {
        return Some((
            "reasoning_effort",
            "`reasoning_effort` is not supported by this worker's built-in engine (its models do \
             not reason)"
                .into(),
        ));
    }
    if asks("suffix").is_some_and(|v| v.as_str().is_none_or(|s| !s.is_empty())) {
        return Some((
            "suffix",
            "`suffix` is not supported by this worker's built-in engine".into(),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn verdict(body: Value) -> Option<String> {
        let (param, why) = unhonoured_field(body.as_object().unwrap_or(&Map::new()))?;
        assert!(why.starts_with(&format!("`{param}`")), "{param}: {why}");
        Some(why)
    }

    #[test]
    fn fields_that_ask_for_more_than_text_are_refused_by_name() {
        for (body, field) in [
            (json!({"tools": [{"type": "function"}]}), "tools"),
            (json!({"tool_choice": "auto"}), "tool_choice"),
            (json!({"functions": [{}]}), "functions"),
            (json!({"function_call": "auto"}), "function_call"),
            (json!({"logit_bias": {"50256": -100}}), "logit_bias"),
            (json!({"web_search_options": {}}), "web_search_options"),
            (json!({"modalities": ["text", "audio"]}), "modalities"),
            (json!({"suffix": "end"}), "suffix"),
            (json!({"ignore_eos": true}), "ignore_eos"),
            (json!({"min_tokens": 5}), "min_tokens"),
            (
                json!({"chat_template_kwargs": {"enable_thinking": true}}),
                "chat_template_kwargs",
            ),
            (json!({"reasoning_effort": "low"}), "reasoning_effort"),
        ] {
            let why = verdict(body.clone()).unwrap_or_else(|| panic!("{body} was accepted"));
            assert!(why.contains(&format!("`{field}`")), "{body}: {why}");
        }
    }

    #[test]
    fn fields_that_ask_for_what_the_engine_does_anyway_pass() {
        for body in [
            json!({}),
            json!({"tools": [], "tool_choice": "none"}),
            json!({"logit_bias": {}}),
            json!({"modalities": ["text"]}),
            json!({"suffix": ""}),
            json!({"ignore_eos": false, "min_tokens": 0, "chat_template_kwargs": {}}),
            json!({"parallel_tool_calls": true, "service_tier": "auto", "store": false}),
            json!({"user": "u", "metadata": {}, "stream_options": {"include_usage": true}}),
        ] {
            assert_eq!(verdict(body.clone()), None, "{body}");
        }
    }
}

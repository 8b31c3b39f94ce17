//! One OpenAI request body, parsed once: the worker decodes the client's JSON into an
//! [`OpenAiRequest`] whose fields the rules read are typed (the model, the messages or the
//! prompt, whether it streams) and whose other accepted fields are kept as they came, so nothing
//! is silently dropped on the way to the engine. Every refusal is one [`RequestError`] that
//! names the offending `param`, with one message per rule.

use serde_json::{Map, Value};

use crate::Endpoint;

/// The body fields an engine may be handed; anything else is refused (an operator may allow
/// more).
pub const ACCEPTED_FIELDS: &[&str] = &[
    "model",
    "messages",
    "prompt",
    "suffix",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "n",
    "stream",
    "stream_options",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "user",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning_effort",
    "echo",
    "best_of",
    "ignore_eos",
    "min_tokens",
    "chat_template_kwargs",
    "metadata",
    "store",
    "service_tier",
    "modalities",
    "prediction",
    "audio",
    "web_search_options",
];

/// Why a request body is refused (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The body is not JSON.
    #[error("request body is not JSON: {0}")]
    NotJson(String),
    /// The body is JSON but not an object.
    #[error("request body must be a JSON object")]
    NotObject,
    /// A field no engine is handed.
    #[error("field `{0}` is not accepted")]
    UnknownField(String),
    /// `model` is missing or not a string.
    #[error("`model` must be a string")]
    Model,
    /// A chat request without a `messages` array.
    #[error("`messages` must be an array")]
    Messages,
    /// A completion request without a `prompt`.
    #[error("`prompt` is required")]
    Prompt,
    /// `stream` is neither a boolean nor `null`.
    #[error("`stream` must be a boolean")]
    Stream,
}

impl RequestError {
    /// The body field the error is about, as OpenAI's error object names it (`param`).
    pub fn param(&self) -> Option<&str> {
        match self {
            Self::NotJson(_) | Self::NotObject => None,
            Self::UnknownField(field) => Some(field),
            Self::Model => Some("model"),
            Self::Messages => Some("messages"),
            Self::Prompt => Some("prompt"),
            Self::Stream => Some("stream"),
        }
    }
}

/// What the request asks the model to continue.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A chat's `messages`.
    Messages(Vec<Value>),
    /// A completion's `prompt` (a string, or a list of strings or tokens).
    Prompt(Value),
}

/// An OpenAI chat or completion request, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiRequest {
    /// `model`.
    pub model: String,
    /// `messages` or `prompt`, as the endpoint needs.
    pub input: Input,
    /// `stream` (absent or `null`: `false`).
    pub stream: bool,
    /// Every other accepted field (`stream` included), as it came.
    pub rest: Map<String, Value>,
}

impl OpenAiRequest {
    /// Parses the body of a request to `endpoint`; `extra_fields` are accepted beyond
    /// [`ACCEPTED_FIELDS`].
    pub fn parse(
        endpoint: Endpoint,
        body: &[u8],
        extra_fields: &[String],
    ) -> Result<Self, RequestError> {
        let body: Value =
            serde_json::from_slice(body).map_err(|e| RequestError::NotJson(e.to_string()))?;
        let Value::Object(body) = body else {
            return Err(RequestError::NotObject);
        };
        Self::from_object(endpoint, body, extra_fields)
    }

    /// Checks a decoded body (see [`OpenAiRequest::parse`]).
    pub fn from_object(
        endpoint: Endpoint,
        mut body: Map<String, Value>,
        extra_fields: &[String],
    ) -> Result<Self, RequestError> {
        if let Some(key) = body.keys().find(|key| {
            !ACCEPTED_FIELDS.contains(&key.as_str()) && !extra_fields.iter().any(|f| f == *key)
        }) {
            return Err(RequestError::UnknownField(key.clone()));
        }
        let model = match body.remove("model") {
            Some(Value::String(model)) => model,
            _ => return Err(RequestError::Model),
        };
        let input = match endpoint {
            Endpoint::ChatCompletions => match body.remove("messages") {
                Some(Value::Array(messages)) => Input::Messages(messages),
                _ => return Err(RequestError::Messages),
            },
            Endpoint::Completions => match body.remove("prompt") {
                Some(prompt) => Input::Prompt(prompt),
                None => return Err(RequestError::Prompt),
            },
        };
        // Read, and left in the body as it came: engines forward it.
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(RequestError::Stream),
        };
        Ok(Self {
            model,
            input,
            stream,
            rest: body,
        })
    }

    /// The request as the JSON object engines forward or read.
    pub fn into_body(self) -> Map<String, Value> {
        let mut body = self.rest;
        body.insert("model".into(), Value::String(self.model));
        match self.input {
            Input::Messages(messages) => body.insert("messages".into(), Value::Array(messages)),
            Input::Prompt(prompt) => body.insert("prompt".into(), prompt),
        };
        body
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(endpoint: Endpoint, body: &str) -> Result<OpenAiRequest, RequestError> {
        OpenAiRequest::parse(endpoint, body.as_bytes(), &["n_predict".to_owned()])
    }

    #[test]
    fn each_refusal_names_its_param_with_one_message() {
        let chat = Endpoint::ChatCompletions;
        let text = Endpoint::Completions;
        let table: &[(Endpoint, &str, RequestError, Option<&str>, &str)] = &[
            (
                chat,
                "[1]",
                RequestError::NotObject,
                None,
                "request body must be a JSON object",
            ),
            (
                chat,
                r#"{"model":"m","messages":[],"x":1}"#,
                RequestError::UnknownField("x".into()),
                Some("x"),
                "field `x` is not accepted",
            ),
            (
                chat,
                r#"{"model":1,"messages":[]}"#,
                RequestError::Model,
                Some("model"),
                "`model` must be a string",
            ),
            (
                chat,
                r#"{"model":"m"}"#,
                RequestError::Messages,
                Some("messages"),
                "`messages` must be an array",
            ),
            (
                text,
                r#"{"model":"m"}"#,
                RequestError::Prompt,
                Some("prompt"),
                "`prompt` is required",
            ),
            (
                text,
                r#"{"model":"m","prompt":"p","stream":"yes"}"#,
                RequestError::Stream,
                Some("stream"),
                "`stream` must be a boolean",
            ),
        ];
        for (endpoint, body, error, param, message) in table {
            let got = parse(*endpoint, body).unwrap_err();
            assert_eq!(&got, error, "{body}");
            assert_eq!(got.param(), *param, "{body}");
            assert_eq!(got.to_string(), *message, "{body}");
        }
        let not_json = parse(chat, "{").unwrap_err();
        assert!(matches!(not_json, RequestError::NotJson(_)));
        assert!(
            not_json
                .to_string()
                .starts_with("request body is not JSON: ")
        );
    }

    #[test]
    fn known_fields_are_typed_and_the_rest_kept_as_it_came() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,
            "temperature":0.5,"n_predict":3,"stream_options":{"include_usage":true}}"#;
        let request = parse(Endpoint::ChatCompletions, body).unwrap();
        assert_eq!(request.model, "m");
        assert!(request.stream);
        assert!(matches!(&request.input, Input::Messages(m) if m.len() == 1));
        assert_eq!(request.rest["temperature"], 0.5);
        assert_eq!(request.rest["n_predict"], 3);
        let original: Value = serde_json::from_str(body).unwrap();
        assert_eq!(Value::Object(request.into_body()), original);
    }

    #[test]
    fn a_null_stream_is_no_stream_and_is_forwarded_as_it_came() {
        let request = parse(
            Endpoint::Completions,
            r#"{"model":"m","prompt":"p","stream":null}"#,
        );
        let request = request.unwrap();
        assert!(!request.stream);
        assert_eq!(request.into_body()["stream"], Value::Null);
    }
}

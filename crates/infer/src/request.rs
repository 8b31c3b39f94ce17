//! One OpenAI request body, parsed once: the worker decodes the client's JSON into an
//! [`OpenAiRequest`] whose fields the rules and engines read are typed (the model, the messages
//! or the prompt, whether it streams, the sampling, length, stop, log-probability and format
//! controls) and whose other accepted fields are kept as they came, so nothing is silently
//! dropped on the way to the engine. Every refusal is one [`RequestError`] that names the
//! offending `param`, with one message per rule; engines read the typed fields and check only
//! what they themselves cannot do.
//!
//! A typed field keeps the JSON it came as (a number stays `1` or `1.0`, a `null` stays in
//! [`OpenAiRequest::rest`]), so [`OpenAiRequest::into_body`] gives back the body as it came,
//! apart from what the worker changed on purpose (the model name, a clamped token count).

use serde_json::{Map, Number, Value};

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

/// Largest completion-token count a request may name: no model's context comes near it, and
/// the client protocol carries `max_tokens` as a 32-bit integer.
pub const MAX_REQUESTED_TOKENS: u64 = i32::MAX as u64;

/// Most alternatives per token a chat request may ask for (`top_logprobs`), as OpenAI allows.
pub const MAX_TOP_LOGPROBS_CHAT: u64 = 20;

/// Most alternatives per token a completion request may ask for (`logprobs`), as OpenAI allows.
pub const MAX_TOP_LOGPROBS_COMPLETIONS: u64 = 5;

/// Why a request body is refused (HTTP 400).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
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
    /// A `prompt` of none of OpenAI's shapes.
    #[error(
        "`prompt` must be a string, a list of strings, or a list of token ids or of lists of them"
    )]
    PromptShape,
    /// `stream` is neither a boolean nor `null`.
    #[error("`stream` must be a boolean")]
    Stream,
    /// A completion-token count that is not an integer of at least 1.
    #[error("`{field}` must be an integer of at least 1, not {value}")]
    TokenCount {
        /// The field.
        field: &'static str,
        /// Its JSON text.
        value: String,
    },
    /// A completion-token count beyond any model.
    #[error("`{field}` of {value} exceeds the largest count accepted ({MAX_REQUESTED_TOKENS})")]
    TooManyTokens {
        /// The field.
        field: &'static str,
        /// The count asked for.
        value: u64,
    },
    /// `n` or `best_of` that is not a positive integer.
    #[error("`{field}` must be a positive integer, not {value}")]
    Choices {
        /// The field.
        field: &'static str,
        /// Its JSON text.
        value: String,
    },
    /// A number outside its range (or not a number).
    #[error("`{field}` must be a number from {min} to {max}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The least value accepted.
        min: f64,
        /// The largest value accepted.
        max: f64,
    },
    /// `repetition_penalty` of zero or less.
    #[error("`repetition_penalty` must be a positive number")]
    RepetitionPenalty,
    /// `top_k` that is neither -1 nor a non-negative integer.
    #[error("`top_k` must be a non-negative integer or -1")]
    TopK,
    /// `seed` that is not an integer.
    #[error("`seed` must be an integer")]
    Seed,
    /// `stop` that is neither a string nor a list of strings.
    #[error("`stop` must be a string or a list of strings")]
    Stop,
    /// A field that must be a boolean.
    #[error("`{0}` must be a boolean")]
    Boolean(&'static str),
    /// A completion's `logprobs` out of range.
    #[error("`logprobs` must be an integer from 0 to {MAX_TOP_LOGPROBS_COMPLETIONS}")]
    CompletionLogprobs,
    /// A chat's `top_logprobs` out of range.
    #[error("`top_logprobs` must be an integer from 0 to {MAX_TOP_LOGPROBS_CHAT}")]
    TopLogprobs,
    /// A chat's `top_logprobs` without `logprobs: true`.
    #[error("`top_logprobs` requires `logprobs: true`")]
    TopLogprobsWithoutLogprobs,
    /// `top_logprobs` in a completion request.
    #[error("`top_logprobs` is a chat field; completions ask with `logprobs: N`")]
    TopLogprobsInCompletions,
    /// `stream_options` that is not an object, or whose `include_usage` is not a boolean.
    #[error("`stream_options` must be an object whose `include_usage` is a boolean")]
    StreamOptions,
    /// `response_format` that is not an object with a string `type`.
    #[error("`response_format` must be an object with a string `type`")]
    ResponseFormat,
}

impl RequestError {
    /// The body field the error is about, as OpenAI's error object names it (`param`).
    pub fn param(&self) -> Option<&str> {
        match self {
            Self::NotJson(_) | Self::NotObject => None,
            Self::UnknownField(field) => Some(field),
            Self::Model => Some("model"),
            Self::Messages => Some("messages"),
            Self::Prompt | Self::PromptShape => Some("prompt"),
            Self::Stream => Some("stream"),
            Self::TokenCount { field, .. }
            | Self::TooManyTokens { field, .. }
            | Self::Choices { field, .. }
            | Self::OutOfRange { field, .. }
            | Self::Boolean(field) => Some(field),
            Self::RepetitionPenalty => Some("repetition_penalty"),
            Self::TopK => Some("top_k"),
            Self::Seed => Some("seed"),
            Self::Stop => Some("stop"),
            Self::CompletionLogprobs => Some("logprobs"),
            Self::TopLogprobs
            | Self::TopLogprobsWithoutLogprobs
            | Self::TopLogprobsInCompletions => Some("top_logprobs"),
            Self::StreamOptions => Some("stream_options"),
            Self::ResponseFormat => Some("response_format"),
        }
    }
}

/// What the request asks the model to continue.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A chat's `messages`.
    Messages(Vec<Value>),
    /// A completion's `prompt`.
    Prompt(Prompt),
}

/// A completion's `prompt`, in one of the shapes OpenAI accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// One text.
    Text(String),
    /// Several texts (an empty list included).
    Texts(Vec<String>),
    /// One prompt as token ids.
    Tokens(Vec<u32>),
    /// Several prompts as token ids.
    TokenLists(Vec<Vec<u32>>),
}

impl Prompt {
    fn parse(value: Value) -> Result<Self, RequestError> {
        let Value::Array(items) = value else {
            return match value {
                Value::String(text) => Ok(Self::Text(text)),
                _ => Err(RequestError::PromptShape),
            };
        };
        let tokens = |items: &[Value]| -> Option<Vec<u32>> {
            items
                .iter()
                .map(|v| v.as_u64().and_then(|id| u32::try_from(id).ok()))
                .collect()
        };
        match items.first() {
            None | Some(Value::String(_)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Some(s),
                    _ => None,
                })
                .collect::<Option<_>>()
                .map(Self::Texts),
            Some(Value::Array(_)) => items
                .iter()
                .map(|v| v.as_array().and_then(|ids| tokens(ids)))
                .collect::<Option<_>>()
                .map(Self::TokenLists),
            Some(_) => tokens(&items).map(Self::Tokens),
        }
        .ok_or(RequestError::PromptShape)
    }

    fn into_value(self) -> Value {
        match self {
            Self::Text(text) => Value::String(text),
            Self::Texts(texts) => Value::from(texts),
            Self::Tokens(ids) => Value::from(ids),
            Self::TokenLists(lists) => Value::Array(lists.into_iter().map(Value::from).collect()),
        }
    }
}

/// A JSON number checked to lie in its field's range, kept as it came (`1` stays `1`).
#[derive(Debug, Clone, PartialEq)]
pub struct Real(Number);

impl Real {
    /// Its value.
    pub fn get(&self) -> f64 {
        self.0.as_f64().unwrap_or(0.0)
    }
}

/// A `seed`: any integer that fits 64 bits, signed or not, kept as it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed(Number);

impl Seed {
    /// The seed's 64 bits (a negative seed is its two's complement).
    pub fn bits(&self) -> u64 {
        self.0
            .as_u64()
            .or_else(|| self.0.as_i64().map(|v| v as u64))
            .unwrap_or(0)
    }
}

/// `stop`: text that ends the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// One stop string.
    One(String),
    /// Several (an empty list included).
    Many(Vec<String>),
}

impl Stop {
    /// The stop strings.
    pub fn strings(&self) -> Vec<&str> {
        match self {
            Self::One(s) => vec![s.as_str()],
            Self::Many(all) => all.iter().map(String::as_str).collect(),
        }
    }
}

/// `logprobs`: a boolean in a chat, a count of alternatives in a completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logprobs {
    /// Chat: whether log-probabilities are returned.
    Flag(bool),
    /// Completions: log-probabilities with this many alternatives per token.
    Top(u64),
}

/// The typed controls of a request, each `None` when absent or `null`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Params {
    /// `max_tokens`, at least 1 and at most [`MAX_REQUESTED_TOKENS`].
    pub max_tokens: Option<u64>,
    /// `max_completion_tokens`, held to the same rule.
    pub max_completion_tokens: Option<u64>,
    /// `n_predict` (llama.cpp's count, present only where an operator allows the field), held
    /// to the same rule.
    pub n_predict: Option<u64>,
    /// `n`, a positive integer.
    pub n: Option<u64>,
    /// `best_of`, a positive integer.
    pub best_of: Option<u64>,
    /// `temperature`, 0 to 2.
    pub temperature: Option<Real>,
    /// `top_p`, 0 to 1.
    pub top_p: Option<Real>,
    /// `min_p`, 0 to 1.
    pub min_p: Option<Real>,
    /// `top_k`: -1 (no limit) or a non-negative integer.
    pub top_k: Option<i64>,
    /// `presence_penalty`, -2 to 2.
    pub presence_penalty: Option<Real>,
    /// `frequency_penalty`, -2 to 2.
    pub frequency_penalty: Option<Real>,
    /// `repetition_penalty`, positive.
    pub repetition_penalty: Option<Real>,
    /// `seed`.
    pub seed: Option<Seed>,
    /// `stop`.
    pub stop: Option<Stop>,
    /// `logprobs`, of the endpoint's kind.
    pub logprobs: Option<Logprobs>,
    /// `top_logprobs` (chat only, 0 to [`MAX_TOP_LOGPROBS_CHAT`]).
    pub top_logprobs: Option<u64>,
    /// `echo` (completions: the prompt is repeated before the answer).
    pub echo: Option<bool>,
    /// `stream_options`, an object whose `include_usage` (if any) is a boolean.
    pub stream_options: Option<Map<String, Value>>,
    /// `response_format`, an object with a string `type`; what the type asks is the engine's
    /// to honour or refuse.
    pub response_format: Option<Map<String, Value>>,
}

impl Params {
    /// Completion tokens each choice may produce, as engines read them: the least of the counts
    /// named.
    pub fn max_completion(&self) -> Option<u64> {
        [self.max_completion_tokens, self.max_tokens, self.n_predict]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether `stream_options.include_usage` is `true`.
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// Alternatives per token asked for when log-probabilities are (`None`: none are).
    pub fn top_logprobs_wanted(&self) -> Option<u64> {
        match self.logprobs {
            Some(Logprobs::Flag(true)) => Some(self.top_logprobs.unwrap_or(0)),
            Some(Logprobs::Top(top)) => Some(top),
            Some(Logprobs::Flag(false)) | None => None,
        }
    }

    /// Takes the typed fields out of `body` (a `null` is left there, as absent); `body` keeps
    /// everything else.
    fn take(endpoint: Endpoint, body: &mut Map<String, Value>) -> Result<Self, RequestError> {
        let mut take = |key: &str| match body.remove(key) {
            Some(Value::Null) => {
                body.insert(key.to_owned(), Value::Null);
                None
            }
            other => other,
        };
        let real = |value: Option<Value>, field: &'static str, min: f64, max: f64| {
            value
                .map(|v| match v {
                    Value::Number(n) if n.as_f64().is_some_and(|x| (min..=max).contains(&x)) => {
                        Ok(Real(n))
                    }
                    _ => Err(RequestError::OutOfRange { field, min, max }),
                })
                .transpose()
        };
        let mut params = Self {
            max_tokens: token_count(take("max_tokens"), "max_tokens")?,
            max_completion_tokens: token_count(
                take("max_completion_tokens"),
                "max_completion_tokens",
            )?,
            n_predict: token_count(take("n_predict"), "n_predict")?,
            n: choices(take("n"), "n")?,
            best_of: choices(take("best_of"), "best_of")?,
            temperature: real(take("temperature"), "temperature", 0.0, 2.0)?,
            top_p: real(take("top_p"), "top_p", 0.0, 1.0)?,
            min_p: real(take("min_p"), "min_p", 0.0, 1.0)?,
            presence_penalty: real(take("presence_penalty"), "presence_penalty", -2.0, 2.0)?,
            frequency_penalty: real(take("frequency_penalty"), "frequency_penalty", -2.0, 2.0)?,
            repetition_penalty: real(
                take("repetition_penalty"),
                "repetition_penalty",
                0.0,
                f64::from(f32::MAX),
            )
            .map_err(|_| RequestError::RepetitionPenalty)?,
            ..Self::default()
        };
        if params
            .repetition_penalty
            .as_ref()
            .is_some_and(|r| r.get() <= 0.0)
        {
            return Err(RequestError::RepetitionPenalty);
        }
        params.top_k = take("top_k")
            .map(|v| v.as_i64().filter(|k| *k >= -1).ok_or(RequestError::TopK))
            .transpose()?;
        params.seed = take("seed")
            .map(|v| match v {
                Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Seed(n)),
                _ => Err(RequestError::Seed),
            })
            .transpose()?;
        params.stop = take("stop")
            .map(|v| match v {
                Value::String(s) => Ok(Stop::One(s)),
                Value::Array(items) => items
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => Some(s),
                        _ => None,
                    })
                    .collect::<Option<_>>()
                    .map(Stop::Many)
                    .ok_or(RequestError::Stop),
                _ => Err(RequestError::Stop),
            })
            .transpose()?;
        params.echo = take("echo")
            .map(|v| v.as_bool().ok_or(RequestError::Boolean("echo")))
            .transpose()?;
        params.stream_options = take("stream_options")
            .map(|v| match v {
                Value::Object(o)
                    if o.get("include_usage")
                        .is_none_or(|u| u.is_boolean() || u.is_null()) =>
                {
                    Ok(o)
                }
                _ => Err(RequestError::StreamOptions),
            })
            .transpose()?;
        params.response_format = take("response_format")
            .map(|v| match v {
                Value::Object(o) if o.get("type").is_some_and(Value::is_string) => Ok(o),
                _ => Err(RequestError::ResponseFormat),
            })
            .transpose()?;
        let top_logprobs = take("top_logprobs");
        let logprobs = take("logprobs");
        match endpoint {
            Endpoint::ChatCompletions => {
                params.logprobs = logprobs
                    .map(|v| {
                        v.as_bool()
                            .map(Logprobs::Flag)
                            .ok_or(RequestError::Boolean("logprobs"))
                    })
                    .transpose()?;
                params.top_logprobs = top_logprobs
                    .map(|v| {
                        v.as_u64()
                            .filter(|n| *n <= MAX_TOP_LOGPROBS_CHAT)
                            .ok_or(RequestError::TopLogprobs)
                    })
                    .transpose()?;
                if params.top_logprobs.is_some_and(|n| n > 0)
                    && params.logprobs != Some(Logprobs::Flag(true))
                {
                    return Err(RequestError::TopLogprobsWithoutLogprobs);
                }
            }
            Endpoint::Completions => {
                // A zero is what SDKs send by default: accepted, and forwarded as it came.
                params.top_logprobs = top_logprobs
                    .map(|v| {
                        v.as_u64()
                            .filter(|n| *n == 0)
                            .ok_or(RequestError::TopLogprobsInCompletions)
                    })
                    .transpose()?;
                params.logprobs = logprobs
                    .map(|v| {
                        v.as_u64()
                            .filter(|n| *n <= MAX_TOP_LOGPROBS_COMPLETIONS)
                            .map(Logprobs::Top)
                            .ok_or(RequestError::CompletionLogprobs)
                    })
                    .transpose()?;
            }
        }
        Ok(params)
    }

    /// Puts the typed fields back into `body`.
    fn put(self, body: &mut Map<String, Value>) {
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                body.insert(key.to_owned(), value);
            }
        };
        put("max_tokens", self.max_tokens.map(Value::from));
        put(
            "max_completion_tokens",
            self.max_completion_tokens.map(Value::from),
        );
        put("n_predict", self.n_predict.map(Value::from));
        put("n", self.n.map(Value::from));
        put("best_of", self.best_of.map(Value::from));
        let real = |r: Option<Real>| r.map(|r| Value::Number(r.0));
        put("temperature", real(self.temperature));
        put("top_p", real(self.top_p));
        put("min_p", real(self.min_p));
        put("presence_penalty", real(self.presence_penalty));
        put("frequency_penalty", real(self.frequency_penalty));
        put("repetition_penalty", real(self.repetition_penalty));
        put("top_k", self.top_k.map(Value::from));
        put("seed", self.seed.map(|s| Value::Number(s.0)));
        put(
            "stop",
            self.stop.map(|s| match s {
                Stop::One(s) => Value::String(s),
                Stop::Many(all) => Value::from(all),
            }),
        );
        put(
            "logprobs",
            self.logprobs.map(|l| match l {
                Logprobs::Flag(b) => Value::Bool(b),
                Logprobs::Top(n) => Value::from(n),
            }),
        );
        put("top_logprobs", self.top_logprobs.map(Value::from));
        put("echo", self.echo.map(Value::Bool));
        put("stream_options", self.stream_options.map(Value::Object));
        put("response_format", self.response_format.map(Value::Object));
    }
}

/// A completion-token count: an integer from 1 to [`MAX_REQUESTED_TOKENS`], never rounded.
fn token_count(value: Option<Value>, field: &'static str) -> Result<Option<u64>, RequestError> {
    let Some(value) = value else {
        return Ok(None);
    };
    match value.as_u64() {
        Some(v) if v > MAX_REQUESTED_TOKENS => Err(RequestError::TooManyTokens { field, value: v }),
        Some(v) if v >= 1 => Ok(Some(v)),
        // Zero, negative, fractional (even `5.0`), huge floats, strings, anything else.
        _ => Err(RequestError::TokenCount {
            field,
            value: value.to_string(),
        }),
    }
}

/// A choice count (`n`, `best_of`): a positive integer.
fn choices(value: Option<Value>, field: &'static str) -> Result<Option<u64>, RequestError> {
    let Some(value) = value else {
        return Ok(None);
    };
    match value.as_u64() {
        Some(v) if v >= 1 => Ok(Some(v)),
        _ => Err(RequestError::Choices {
            field,
            value: value.to_string(),
        }),
    }
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
    /// The typed controls.
    pub params: Params,
    /// Every other accepted field (`stream` and `null` values included), as it came.
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
        Self::from_value(endpoint, body, extra_fields)
    }

    /// Checks a decoded body (see [`OpenAiRequest::parse`]).
    pub fn from_value(
        endpoint: Endpoint,
        body: Value,
        extra_fields: &[String],
    ) -> Result<Self, RequestError> {
        let Value::Object(body) = body else {
            return Err(RequestError::NotObject);
        };
        Self::from_object(endpoint, body, extra_fields)
    }

    /// Checks a decoded body object (see [`OpenAiRequest::parse`]).
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
                Some(prompt) => Input::Prompt(Prompt::parse(prompt)?),
                None => return Err(RequestError::Prompt),
            },
        };
        // Read, and left in the body as it came: engines forward it.
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(RequestError::Stream),
        };
        let params = Params::take(endpoint, &mut body)?;
        Ok(Self {
            model,
            input,
            stream,
            params,
            rest: body,
        })
    }

    /// The endpoint the request is for (a chat has `messages`, a completion a `prompt`).
    pub fn endpoint(&self) -> Endpoint {
        match self.input {
            Input::Messages(_) => Endpoint::ChatCompletions,
            Input::Prompt(_) => Endpoint::Completions,
        }
    }

    /// The request as the JSON object engines forward.
    pub fn into_body(self) -> Map<String, Value> {
        let mut body = self.rest;
        self.params.put(&mut body);
        body.insert("model".into(), Value::String(self.model));
        match self.input {
            Input::Messages(messages) => body.insert("messages".into(), Value::Array(messages)),
            Input::Prompt(prompt) => body.insert("prompt".into(), prompt.into_value()),
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
    fn each_bad_control_is_refused_once_naming_its_param() {
        use Endpoint::{ChatCompletions as Chat, Completions as Text};
        // The body's other fields are added: a chat's `messages`, a completion's `prompt`.
        let table: &[(Endpoint, &str, &str, &str)] = &[
            (
                Text,
                r#""prompt":{}"#,
                "prompt",
                "`prompt` must be a string, a list of strings, or a list of token ids or of lists of them",
            ),
            (
                Text,
                r#""prompt":[1,"a"]"#,
                "prompt",
                "`prompt` must be a string, a list of strings, or a list of token ids or of lists of them",
            ),
            (
                Text,
                r#""prompt":[-1]"#,
                "prompt",
                "`prompt` must be a string, a list of strings, or a list of token ids or of lists of them",
            ),
            (
                Chat,
                r#""max_tokens":0"#,
                "max_tokens",
                "`max_tokens` must be an integer of at least 1, not 0",
            ),
            (
                Chat,
                r#""max_tokens":-1"#,
                "max_tokens",
                "`max_tokens` must be an integer of at least 1, not -1",
            ),
            (
                Chat,
                r#""max_completion_tokens":5.0"#,
                "max_completion_tokens",
                "`max_completion_tokens` must be an integer of at least 1, not 5.0",
            ),
            (
                Chat,
                r#""max_tokens":"16""#,
                "max_tokens",
                "`max_tokens` must be an integer of at least 1, not \"16\"",
            ),
            (
                Chat,
                r#""max_tokens":1e300"#,
                "max_tokens",
                "`max_tokens` must be an integer of at least 1, not 1e+300",
            ),
            (
                Chat,
                r#""max_tokens":2147483648"#,
                "max_tokens",
                "`max_tokens` of 2147483648 exceeds the largest count accepted (2147483647)",
            ),
            (
                Chat,
                r#""n_predict":-1"#,
                "n_predict",
                "`n_predict` must be an integer of at least 1, not -1",
            ),
            (
                Chat,
                r#""n":0"#,
                "n",
                "`n` must be a positive integer, not 0",
            ),
            (
                Text,
                r#""best_of":-2"#,
                "best_of",
                "`best_of` must be a positive integer, not -2",
            ),
            (
                Chat,
                r#""temperature":-0.1"#,
                "temperature",
                "`temperature` must be a number from 0 to 2",
            ),
            (
                Chat,
                r#""temperature":"hot""#,
                "temperature",
                "`temperature` must be a number from 0 to 2",
            ),
            (
                Chat,
                r#""top_p":1.5"#,
                "top_p",
                "`top_p` must be a number from 0 to 1",
            ),
            (
                Chat,
                r#""min_p":-0.1"#,
                "min_p",
                "`min_p` must be a number from 0 to 1",
            ),
            (
                Chat,
                r#""presence_penalty":3"#,
                "presence_penalty",
                "`presence_penalty` must be a number from -2 to 2",
            ),
            (
                Chat,
                r#""frequency_penalty":-2.5"#,
                "frequency_penalty",
                "`frequency_penalty` must be a number from -2 to 2",
            ),
            (
                Chat,
                r#""repetition_penalty":0"#,
                "repetition_penalty",
                "`repetition_penalty` must be a positive number",
            ),
            (
                Chat,
                r#""repetition_penalty":"x""#,
                "repetition_penalty",
                "`repetition_penalty` must be a positive number",
            ),
            (
                Chat,
                r#""top_k":-2"#,
                "top_k",
                "`top_k` must be a non-negative integer or -1",
            ),
            (
                Chat,
                r#""top_k":1.5"#,
                "top_k",
                "`top_k` must be a non-negative integer or -1",
            ),
            (Chat, r#""seed":1.5"#, "seed", "`seed` must be an integer"),
            (Chat, r#""seed":"x""#, "seed", "`seed` must be an integer"),
            (
                Chat,
                r#""stop":5"#,
                "stop",
                "`stop` must be a string or a list of strings",
            ),
            (
                Chat,
                r#""stop":["a",1]"#,
                "stop",
                "`stop` must be a string or a list of strings",
            ),
            (
                Chat,
                r#""logprobs":1"#,
                "logprobs",
                "`logprobs` must be a boolean",
            ),
            (
                Chat,
                r#""top_logprobs":21,"logprobs":true"#,
                "top_logprobs",
                "`top_logprobs` must be an integer from 0 to 20",
            ),
            (
                Chat,
                r#""top_logprobs":3"#,
                "top_logprobs",
                "`top_logprobs` requires `logprobs: true`",
            ),
            (
                Chat,
                r#""top_logprobs":3,"logprobs":false"#,
                "top_logprobs",
                "`top_logprobs` requires `logprobs: true`",
            ),
            (
                Text,
                r#""top_logprobs":2"#,
                "top_logprobs",
                "`top_logprobs` is a chat field; completions ask with `logprobs: N`",
            ),
            (
                Text,
                r#""logprobs":6"#,
                "logprobs",
                "`logprobs` must be an integer from 0 to 5",
            ),
            (
                Text,
                r#""logprobs":true"#,
                "logprobs",
                "`logprobs` must be an integer from 0 to 5",
            ),
            (Text, r#""echo":"yes""#, "echo", "`echo` must be a boolean"),
            (
                Chat,
                r#""stream_options":true"#,
                "stream_options",
                "`stream_options` must be an object whose `include_usage` is a boolean",
            ),
            (
                Chat,
                r#""stream_options":{"include_usage":1}"#,
                "stream_options",
                "`stream_options` must be an object whose `include_usage` is a boolean",
            ),
            (
                Chat,
                r#""response_format":"json""#,
                "response_format",
                "`response_format` must be an object with a string `type`",
            ),
            (
                Chat,
                r#""response_format":{}"#,
                "response_format",
                "`response_format` must be an object with a string `type`",
            ),
        ];
        for (endpoint, fields, param, message) in table {
            let input = match endpoint {
                Chat => r#""messages":[],"#,
                Text if fields.contains("\"prompt\"") => "",
                Text => r#""prompt":"p","#,
            };
            let body = format!(r#"{{"model":"m",{input}{fields}}}"#);
            let got = parse(*endpoint, &body).unwrap_err();
            assert_eq!(got.param(), Some(*param), "{body}");
            assert_eq!(got.to_string(), *message, "{body}");
        }
    }

    #[test]
    fn good_controls_are_typed_and_forwarded_exactly_as_they_came() {
        use Endpoint::{ChatCompletions as Chat, Completions as Text};
        let table: &[(Endpoint, &str)] = &[
            (
                Chat,
                r#"{"model":"m","messages":[],"temperature":1,"top_p":0.5,"max_tokens":7,"max_completion_tokens":null,"n":1,"seed":-1,"stop":["a","b"],"logprobs":true,"top_logprobs":0,"stream":true,"stream_options":{"include_usage":true,"x":1},"response_format":{"type":"json_schema","json_schema":{"schema":{}}}}"#,
            ),
            (
                Chat,
                r#"{"model":"m","messages":[],"temperature":0,"top_k":-1,"min_p":0.0,"repetition_penalty":1.1,"presence_penalty":-2,"frequency_penalty":2.0,"stop":"\n","seed":18446744073709551615,"n_predict":3}"#,
            ),
            (
                Text,
                r#"{"model":"m","prompt":"p","logprobs":5,"top_logprobs":0,"echo":false,"best_of":1,"user":"u"}"#,
            ),
            (
                Text,
                r#"{"model":"m","prompt":["a","b"],"stop":[],"temperature":null,"seed":null}"#,
            ),
            (Text, r#"{"model":"m","prompt":[1,2,3]}"#),
            (Text, r#"{"model":"m","prompt":[[1],[2,3]]}"#),
            (Text, r#"{"model":"m","prompt":[]}"#),
        ];
        for (endpoint, body) in table {
            let request = parse(*endpoint, body).unwrap();
            let original: Value = serde_json::from_str(body).unwrap();
            assert_eq!(Value::Object(request.into_body()), original, "{body}");
        }
        let chat = parse(Chat, table[0].1).unwrap();
        let p = &chat.params;
        assert_eq!(p.temperature.as_ref().map(Real::get), Some(1.0));
        assert_eq!(p.max_tokens, Some(7));
        assert_eq!(p.max_completion_tokens, None);
        assert_eq!(p.max_completion(), Some(7));
        assert_eq!(p.seed.as_ref().map(Seed::bits), Some(u64::MAX));
        assert_eq!(p.stop.as_ref().map(Stop::strings), Some(vec!["a", "b"]));
        assert_eq!(p.top_logprobs_wanted(), Some(0));
        assert!(p.include_usage());
        assert!(
            chat.rest.contains_key("max_completion_tokens"),
            "a null is kept"
        );
        let text = parse(Text, table[2].1).unwrap();
        assert_eq!(text.params.top_logprobs_wanted(), Some(5));
        assert_eq!(text.params.echo, Some(false));
        assert_eq!(text.rest["user"], "u");
        let tokens = parse(Text, table[5].1).unwrap();
        assert_eq!(
            tokens.input,
            Input::Prompt(Prompt::TokenLists(vec![vec![1], vec![2, 3]]))
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
        assert_eq!(
            request.params.temperature.as_ref().map(Real::get),
            Some(0.5)
        );
        assert_eq!(request.params.n_predict, Some(3));
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

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-3_i64..30).prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-3.0_f64..3.0).prop_map(Value::from),
            "[a-z]{0,3}".prop_map(Value::String),
        ];
        leaf.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z_]{1,14}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Whatever values the typed fields hold, a body is refused or forwarded as it came.
        #[test]
        fn any_body_is_refused_or_forwarded_as_it_came(
            chat in proptest::bool::ANY,
            fields in proptest::collection::btree_map(
                proptest::sample::select(ACCEPTED_FIELDS),
                json_value(),
                0..8,
            ),
        ) {
            let endpoint = if chat { Endpoint::ChatCompletions } else { Endpoint::Completions };
            let mut body: Map<String, Value> =
                fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            body.insert("model".into(), Value::from("m"));
            if chat {
                body.insert("messages".into(), Value::Array(Vec::new()));
            } else {
                body.entry("prompt").or_insert_with(|| Value::from("p"));
            }
            let came = Value::Object(body.clone());
            if let Ok(request) = OpenAiRequest::from_object(endpoint, body, &[]) {
                // (Not through bytes: serde_json reads some floats back one unit off.)
                let again =
                    OpenAiRequest::from_object(endpoint, request.clone().into_body(), &[]).unwrap();
                proptest::prop_assert_eq!(&again, &request);
                proptest::prop_assert_eq!(Value::Object(request.into_body()), came);
            }
        }
    }
}

//! The parts of OpenAI request bodies the fake engine reads: model, prompt, streaming options
//! and token limits. Unknown fields are ignored, as real engines ignore sampling options they
//! do not support.

use serde::Deserialize;

use super::answer::prompt_word_count;

/// Which OpenAI endpoint a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/completions`.
    Completion,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
struct ContentPart {
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    role: String,
    #[serde(default)]
    content: Option<MessageContent>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PromptInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u64>),
    TokenBatches(Vec<Vec<u64>>),
}

#[derive(Deserialize)]
struct ChatBody {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<Message>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionBody {
    #[serde(default)]
    model: Option<String>,
    prompt: PromptInput,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<u64>,
}

/// What the fake engine needs to know about one inference request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InferenceRequest {
    pub(crate) endpoint: Endpoint,
    /// The model asked for; `None` means the server's first model.
    pub(crate) model: Option<String>,
    /// Text the answer echoes: the last user message, or the completion prompt.
    pub(crate) echo: String,
    /// Prompt tokens as the fake engine counts them.
    pub(crate) prompt_tokens: u64,
    pub(crate) stream: bool,
    pub(crate) include_usage: bool,
    /// `max_completion_tokens`, else `max_tokens`.
    pub(crate) max_tokens: Option<u64>,
}

/// A body that is not a request of its endpoint; its text is meant for a 400 answer.
#[derive(Debug, thiserror::Error)]
#[error("invalid {what} request: {source}")]
pub(crate) struct BadRequest {
    what: &'static str,
    source: serde_json::Error,
}

impl InferenceRequest {
    /// Parses a request body for `endpoint`; the error text is meant for a 400 answer.
    pub(crate) fn parse(endpoint: Endpoint, body: &[u8]) -> Result<Self, BadRequest> {
        match endpoint {
            Endpoint::Chat => {
                let chat: ChatBody = serde_json::from_slice(body).map_err(|source| BadRequest {
                    what: "chat completion",
                    source,
                })?;
                let mut prompt_tokens = 0u64;
                for message in &chat.messages {
                    for_each_text(message, |t| prompt_tokens += prompt_word_count(t));
                }
                let echo_from = chat
                    .messages
                    .iter()
                    .rev()
                    .find(|m| m.role == "user")
                    .or(chat.messages.last());
                let mut echo = String::new();
                if let Some(message) = echo_from {
                    for_each_text(message, |t| {
                        echo.push_str(t);
                        echo.push(' ');
                    });
                }
                Ok(Self {
                    endpoint,
                    model: chat.model,
                    echo,
                    prompt_tokens,
                    stream: chat.stream,
                    include_usage: chat.stream_options.is_some_and(|o| o.include_usage),
                    max_tokens: chat.max_completion_tokens.or(chat.max_tokens),
                })
            }
            Endpoint::Completion => {
                let completion: CompletionBody =
                    serde_json::from_slice(body).map_err(|source| BadRequest {
                        what: "completion",
                        source,
                    })?;
                let (echo, prompt_tokens) = match completion.prompt {
                    PromptInput::Text(text) => {
                        let n = prompt_word_count(&text);
                        (text, n)
                    }
                    PromptInput::Texts(texts) => {
                        let joined = texts.join(" ");
                        let n = prompt_word_count(&joined);
                        (joined, n)
                    }
                    PromptInput::Tokens(ids) => token_echo(&[ids]),
                    PromptInput::TokenBatches(batches) => token_echo(&batches),
                };
                Ok(Self {
                    endpoint,
                    model: completion.model,
                    echo,
                    prompt_tokens,
                    stream: completion.stream,
                    include_usage: completion.stream_options.is_some_and(|o| o.include_usage),
                    max_tokens: completion.max_tokens,
                })
            }
        }
    }
}

fn for_each_text(message: &Message, mut f: impl FnMut(&str)) {
    match &message.content {
        None => {}
        Some(MessageContent::Text(text)) => f(text),
        Some(MessageContent::Parts(parts)) => {
            for text in parts.iter().filter_map(|p| p.text.as_deref()) {
                f(text);
            }
        }
    }
}

/// Token-id prompts echo their ids as decimal words and count one token per id.
fn token_echo(batches: &[Vec<u64>]) -> (String, u64) {
    use std::fmt::Write as _;
    let mut echo = String::new();
    let mut count = 0u64;
    for id in batches.iter().flatten() {
        // Writing to a String cannot fail.
        let _ = write!(echo, "{id} ");
        count += 1;
    }
    (echo, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_echoes_last_user_message_and_counts_all_words() {
        let body = br#"{"model":"m","stream":true,"stream_options":{"include_usage":true},
            "max_tokens":9,"max_completion_tokens":4,
            "messages":[{"role":"system","content":"be brief"},
                        {"role":"user","content":[{"type":"text","text":"first question"}]},
                        {"role":"assistant","content":"an answer here"},
                        {"role":"user","content":[{"type":"text","text":"second"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"one"}]}]}"#;
        let request = InferenceRequest::parse(Endpoint::Chat, body);
        let request = request.as_ref().map_err(ToString::to_string);
        assert_eq!(
            request.map(|r| (
                r.echo.as_str(),
                r.prompt_tokens,
                r.max_tokens,
                r.include_usage
            )),
            Ok(("second one ", 9, Some(4), true))
        );
    }

    #[test]
    fn completion_prompts_of_every_form() {
        for (body, echo, tokens) in [
            (r#"{"prompt":"a b  c"}"#, "a b  c", 3),
            (r#"{"prompt":["a b","c"]}"#, "a b c", 3),
            (r#"{"prompt":[5,6]}"#, "5 6 ", 2),
            (r#"{"prompt":[[1],[2,3]]}"#, "1 2 3 ", 3),
        ] {
            let parsed = InferenceRequest::parse(Endpoint::Completion, body.as_bytes());
            assert_eq!(
                parsed
                    .map(|r| (r.echo, r.prompt_tokens, r.stream))
                    .map_err(|e| e.to_string()),
                Ok((echo.to_owned(), tokens, false)),
                "{body}"
            );
        }
    }

    #[test]
    fn malformed_bodies_are_refused() {
        assert!(InferenceRequest::parse(Endpoint::Chat, b"{").is_err());
        assert!(InferenceRequest::parse(Endpoint::Chat, br#"{"model":"m"}"#).is_err());
        assert!(InferenceRequest::parse(Endpoint::Completion, br#"{"prompt":{}}"#).is_err());
    }
}

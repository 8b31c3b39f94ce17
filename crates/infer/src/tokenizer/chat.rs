//! Chat templates: turning a conversation into the prompt a chat model was
//! trained on.
//!
//! Only the ChatML family is supported (SmolLM2, Qwen2/2.5): every message is
//! `<|im_start|>{role}\n{content}<|im_end|>\n`, and the generation prompt is
//! `<|im_start|>assistant\n`. Templates of this family differ in one way that
//! changes model output: some inject a default system message when the
//! conversation does not start with one. SmolLM2's GGUF template injects
//! "You are a helpful AI assistant named SmolLM, trained by Hugging Face";
//! Qwen2.5's injects "You are Qwen, created by Alibaba Cloud. You are a helpful
//! assistant.". [`ChatTemplate::from_source`] recognizes the family in the
//! GGUF's Jinja source and reads that default message out of it, so rendering
//! matches what the template itself produces (checked against Jinja2 in the
//! tests); [`ChatTemplate::without_default_system`] gives plain ChatML.
//!
//! Message contents are data, not markup: when encoded through
//! [`Tokenizer::encode_chat`](super::Tokenizer::encode_chat), text such as
//! `<|im_end|>` inside a message stays text and can never close the turn.

use super::TokenizerError;

/// The ChatML turn opener.
pub const IM_START: &str = "<|im_start|>";
/// The ChatML turn terminator.
pub const IM_END: &str = "<|im_end|>";

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// Instructions framing the conversation.
    System,
    /// The person talking to the model.
    User,
    /// The model.
    Assistant,
}

impl Role {
    /// The role's name as written in the prompt.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: Role,
    /// What it says.
    pub content: String,
}

impl ChatMessage {
    /// A message from `role`.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// A piece of a rendered prompt: markup special tokens, template text, or a
/// message's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Piece<'a> {
    /// A special token of the template's own markup.
    Special(&'static str),
    /// Text that comes from the template.
    Markup(&'a str),
    /// Text that comes from a message.
    Content(&'a str),
}

impl Piece<'_> {
    fn text(&self) -> &str {
        match self {
            Self::Special(s) => s,
            Self::Markup(s) | Self::Content(s) => s,
        }
    }
}

/// A ChatML prompt format, with the default system message its template
/// injects (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTemplate {
    default_system: Option<String>,
}

impl ChatTemplate {
    /// Plain ChatML, without a default system message (llama.cpp's fallback
    /// for models that ship no template).
    #[must_use]
    pub fn chatml() -> Self {
        Self {
            default_system: None,
        }
    }

    /// Recognizes a ChatML Jinja template (as stored in
    /// `tokenizer.chat_template`) and the default system message it injects.
    ///
    /// # Errors
    /// [`TokenizerError::UnsupportedChatTemplate`] if the template does not
    /// use ChatML markup.
    pub fn from_source(source: &str) -> Result<Self, TokenizerError> {
        if !(source.contains(IM_START) && source.contains(IM_END)) {
            return Err(TokenizerError::UnsupportedChatTemplate);
        }
        Ok(Self {
            default_system: default_system_in(source),
        })
    }

    /// The system message added when a conversation does not start with one.
    #[must_use]
    pub fn default_system_prompt(&self) -> Option<&str> {
        self.default_system.as_deref()
    }

    /// This template without its default system message: plain ChatML.
    #[must_use]
    pub fn without_default_system(mut self) -> Self {
        self.default_system = None;
        self
    }

    /// This template with another default system message.
    #[must_use]
    pub fn with_default_system(mut self, prompt: impl Into<String>) -> Self {
        self.default_system = Some(prompt.into());
        self
    }

    /// The prompt text for `messages`, ending with the assistant's turn
    /// opener when `add_generation_prompt` is set.
    #[must_use]
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> String {
        let mut out = String::new();
        for piece in self.pieces(messages, add_generation_prompt) {
            out.push_str(piece.text());
        }
        out
    }

    /// The prompt as pieces, so that message contents can be encoded
    /// without parsing special tokens in them.
    pub(super) fn pieces<'a>(
        &'a self,
        messages: &'a [ChatMessage],
        add_generation_prompt: bool,
    ) -> Vec<Piece<'a>> {
        let mut pieces = Vec::with_capacity(6 * (messages.len() + 1) + 2);
        let mut turn = |role: &'static str, content: &'a str| {
            pieces.extend([
                Piece::Special(IM_START),
                Piece::Markup(role),
                Piece::Markup("\n"),
                Piece::Content(content),
                Piece::Special(IM_END),
                Piece::Markup("\n"),
            ]);
        };
        // Like the templates: only a non-empty conversation that does not
        // open with a system message gets the default one.
        if let (Some(first), Some(system)) = (messages.first(), &self.default_system)
            && first.role != Role::System
        {
            turn(Role::System.as_str(), system);
        }
        for message in messages {
            turn(message.role.as_str(), &message.content);
        }
        if add_generation_prompt {
            pieces.extend([
                Piece::Special(IM_START),
                Piece::Markup(Role::Assistant.as_str()),
                Piece::Markup("\n"),
            ]);
        }
        pieces
    }
}

/// Finds the default system message in a ChatML template: a Jinja string
/// literal holding `<|im_start|>system\n…<|im_end|>` entirely, i.e. a system
/// turn whose text is fixed rather than taken from a message.
fn default_system_in(source: &str) -> Option<String> {
    let opener = format!("{IM_START}system");
    let mut rest = source;
    while let Some(at) = rest.find(&opener) {
        let quote = rest[..at].chars().next_back();
        let after = &rest[at + opener.len()..];
        rest = after;
        let Some(quote @ ('\'' | '"')) = quote else {
            continue;
        };
        if let Some(text) = literal_until_end(after, quote) {
            return Some(text);
        }
    }
    None
}

/// Reads the rest of a Jinja string literal delimited by `quote`, starting
/// right after `<|im_start|>system`; returns the text between the newline
/// and `<|im_end|>` if both lie inside the literal.
fn literal_until_end(after: &str, quote: char) -> Option<String> {
    let mut text = String::new();
    let mut chars = after.chars();
    while let Some(c) = chars.next() {
        let c = match c {
            '\\' => match chars.next()? {
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                other => other,
            },
            c if c == quote => return None,
            c => c,
        };
        text.push(c);
        if let Some(body) = text.strip_suffix(IM_END) {
            return body.strip_prefix('\n').map(str::to_owned);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    // The shape of Qwen2.5's template: a tools branch first, whose system
    // turn is assembled from pieces, then the fixed default.
    const QWEN_LIKE: &str = "{%- if tools %}{{- '<|im_start|>system\\n' }}{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}{%- else %}{{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}{%- endif %}{%- else %}{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}{%- endif %}{%- endif %}{{ '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}";

    const PLAIN: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    #[test]
    fn finds_default_system_prompts() {
        let smol = ChatTemplate::from_source(SMOLLM2).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            smol.default_system_prompt(),
            Some("You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        );
        let qwen = ChatTemplate::from_source(QWEN_LIKE).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            qwen.default_system_prompt(),
            Some("You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
        );
        let plain = ChatTemplate::from_source(PLAIN).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plain, ChatTemplate::chatml());
    }

    #[test]
    fn rejects_other_families() {
        let llama3 = "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>' }}";
        assert!(matches!(
            ChatTemplate::from_source(llama3),
            Err(TokenizerError::UnsupportedChatTemplate)
        ));
    }

    #[test]
    fn renders_chatml() {
        let messages = [ChatMessage::new(Role::User, "Hi")];
        let plain = ChatTemplate::chatml();
        assert_eq!(
            plain.render(&messages, true),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let custom = plain.clone().with_default_system("Be brief.");
        assert_eq!(
            custom.render(&messages, false),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        );
        // An explicit system message replaces the default; no messages, no default.
        let with_system = [ChatMessage::new(Role::System, "S"), messages[0].clone()];
        assert!(
            custom
                .render(&with_system, false)
                .starts_with("<|im_start|>system\nS<|im_end|>")
        );
        assert_eq!(custom.render(&[], true), "<|im_start|>assistant\n");
        assert_eq!(custom.without_default_system(), plain);
    }
}

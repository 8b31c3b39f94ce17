//! A refused request's reason with the request field at fault, in the one error string the wire
//! has (`queryAnswerErrorEx.error`). OpenAI's error object names that field in `param`, and SDKs
//! show it; the reference protocol has no place for it, so a worker that knows the field writes
//! the error as a small JSON object, `{"message":…,"param":…}`, which a client decodes back. A
//! plain string (from a reference node, or a refusal about no one field) decodes as the message
//! alone, and a reference client shows the object as text that still reads.

use serde::{Deserialize, Serialize};

/// A refusal's message and the body field it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refusal {
    /// What is wrong.
    pub message: String,
    /// The request body field at fault (OpenAI's `error.param`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub param: Option<String>,
}

impl Refusal {
    /// The error string to send: the message alone without a `param`, else the JSON object.
    pub fn encode(&self) -> String {
        match &self.param {
            None => self.message.clone(),
            Some(_) => serde_json::to_string(self).unwrap_or_else(|_| self.message.clone()),
        }
    }

    /// Reads an error string: the JSON object [`Refusal::encode`] writes, or any other text as
    /// the message alone.
    pub fn decode(error: &str) -> Self {
        match serde_json::from_str::<Self>(error) {
            Ok(refusal) if refusal.param.is_some() => refusal,
            _ => Self {
                message: error.to_owned(),
                param: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_param_travels_in_the_error_string_and_plain_text_stays_text() {
        let with = Refusal {
            message: "`max_tokens` must be an integer of at least 1, not 0".into(),
            param: Some("max_tokens".into()),
        };
        let wire = with.encode();
        assert!(
            wire.contains("max_tokens") && wire.starts_with('{'),
            "{wire}"
        );
        assert_eq!(Refusal::decode(&wire), with);
        let without = Refusal {
            message: "the reservation covers no completion tokens (token limit 0)".into(),
            param: None,
        };
        assert_eq!(without.encode(), without.message);
        assert_eq!(Refusal::decode(&without.encode()), without);
        for text in [
            "",
            "{",
            r#"{"message":"m"}"#,
            r#"{"message":"m","param":"p","x":1}"#,
            r#"{"error":{"message":"m"}}"#,
            "engine answered 400: {\"message\":\"m\",\"param\":\"p\"}",
        ] {
            assert_eq!(
                Refusal::decode(text),
                Refusal {
                    message: text.to_owned(),
                    param: None
                },
                "{text}"
            );
        }
    }
}

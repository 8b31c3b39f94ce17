//! Model names, `base@variant`: workers name the weights they serve with a variant
//! (`Qwen/Qwen3-8B@fp8`), clients ask for the base, and every layer that matches one against
//! the other uses [`base_name`] here rather than splitting the string itself.
//!
//! A name is checked where it enters ([`ModelName::parse`]: a client's request, a worker's
//! parameters, a configuration file); on the wire it stays the plain string it was.

use std::fmt;
use std::str::FromStr;

/// Longest model name accepted, in bytes.
pub const MAX_MODEL_NAME_BYTES: usize = 256;

/// The base model of a model name: the text before the first `@` (all of it when there is
/// none). For names read before they were checked (a peer's list, a stored record); a
/// [`ModelName`] answers the same with [`ModelName::base`].
pub fn base_name(name: &str) -> &str {
    name.split_once('@').map_or(name, |(base, _)| base)
}

/// Why a text is not a model name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelNameError {
    /// Nothing (or nothing before the `@`).
    #[error("the model name is empty")]
    Empty,
    /// Longer than [`MAX_MODEL_NAME_BYTES`].
    #[error("the model name is {0} bytes long, above the limit of {MAX_MODEL_NAME_BYTES}")]
    TooLong(usize),
    /// A space or a control character.
    #[error("the model name holds {0:?} at byte {1}: no spaces or control characters")]
    BadCharacter(char, usize),
    /// Nothing before the `@`.
    #[error("the model name {0:?} has no base before its '@'")]
    EmptyBase(String),
    /// Nothing after the `@`.
    #[error("the model name {0:?} has an empty variant after its '@'")]
    EmptyVariant(String),
}

/// A checked model name: 1 to [`MAX_MODEL_NAME_BYTES`] bytes, no whitespace or control
/// characters, a non-empty base and, after an `@`, a non-empty variant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelName(String);

impl ModelName {
    /// Checks `text` as a model name.
    ///
    /// # Errors
    /// The first rule it breaks, as a [`ModelNameError`].
    pub fn parse(text: &str) -> Result<Self, ModelNameError> {
        if text.is_empty() {
            return Err(ModelNameError::Empty);
        }
        if text.len() > MAX_MODEL_NAME_BYTES {
            return Err(ModelNameError::TooLong(text.len()));
        }
        if let Some((at, c)) = text
            .char_indices()
            .find(|(_, c)| c.is_whitespace() || c.is_control())
        {
            return Err(ModelNameError::BadCharacter(c, at));
        }
        if let Some((base, variant)) = text.split_once('@') {
            if base.is_empty() {
                return Err(ModelNameError::EmptyBase(text.to_owned()));
            }
            if variant.is_empty() {
                return Err(ModelNameError::EmptyVariant(text.to_owned()));
            }
        }
        Ok(Self(text.to_owned()))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text before the first `@` (the whole name without one).
    pub fn base(&self) -> &str {
        base_name(&self.0)
    }

    /// The text after the first `@`, if any.
    pub fn variant(&self) -> Option<&str> {
        self.0.split_once('@').map(|(_, variant)| variant)
    }

    /// The name as an owned string, for a message field.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl FromStr for ModelName {
    type Err = ModelNameError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ModelName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<ModelName> for String {
    fn from(name: ModelName) -> Self {
        name.0
    }
}

impl serde::Serialize for ModelName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ModelName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn names_split_into_base_and_variant() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("Qwen/Qwen3-8B@fp8", "Qwen/Qwen3-8B", Some("fp8")),
            ("Qwen/Qwen3-8B", "Qwen/Qwen3-8B", None),
            ("SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct", None),
            ("qwen2.5:0.5b", "qwen2.5:0.5b", None),
            ("a@b@c", "a", Some("b@c")),
            ("m", "m", None),
        ];
        for (text, base, variant) in cases {
            let name = ModelName::parse(text).unwrap();
            assert_eq!(name.base(), *base, "{text}");
            assert_eq!(name.variant(), *variant, "{text}");
            assert_eq!(name.to_string(), *text);
            assert_eq!(base_name(text), *base);
        }
    }

    #[test]
    fn bad_names_are_refused_naming_the_rule() {
        let long = "m".repeat(MAX_MODEL_NAME_BYTES + 1);
        let cases: Vec<(&str, ModelNameError)> = vec![
            ("", ModelNameError::Empty),
            (&long, ModelNameError::TooLong(MAX_MODEL_NAME_BYTES + 1)),
            ("a b", ModelNameError::BadCharacter(' ', 1)),
            ("ab\n", ModelNameError::BadCharacter('\n', 2)),
            ("m\u{0}", ModelNameError::BadCharacter('\u{0}', 1)),
            ("@fp8", ModelNameError::EmptyBase("@fp8".into())),
            ("m@", ModelNameError::EmptyVariant("m@".into())),
        ];
        for (text, error) in cases {
            assert_eq!(ModelName::parse(text), Err(error.clone()), "{text:?}");
            assert_eq!(text.parse::<ModelName>(), Err(error));
        }
        assert!(ModelName::parse(&"m".repeat(MAX_MODEL_NAME_BYTES)).is_ok());
        // The free function never fails: an unchecked empty name has an empty base.
        assert_eq!(base_name(""), "");
    }

    #[test]
    fn serde_writes_the_plain_string_and_checks_on_reading() {
        let name = ModelName::parse("Qwen/Qwen3-8B@q4").unwrap();
        let json = serde_json::to_string(&name).unwrap();
        assert_eq!(json, r#""Qwen/Qwen3-8B@q4""#);
        assert_eq!(serde_json::from_str::<ModelName>(&json).unwrap(), name);
        assert!(serde_json::from_str::<ModelName>(r#""""#).is_err());
        assert!(serde_json::from_str::<ModelName>(r#""a b""#).is_err());
        assert!(serde_json::from_str::<ModelName>("7").is_err());
    }

    proptest! {
        /// Whatever the text, parsing answers without panicking, and an accepted name
        /// round-trips through its string and rebuilds from its base and variant.
        #[test]
        fn parsing_is_total_and_accepted_names_round_trip(text in "\\PC{0,40}|[a-zA-Z0-9/._:@-]{0,300}") {
            if let Ok(name) = ModelName::parse(&text) {
                prop_assert_eq!(name.as_str(), text.as_str());
                prop_assert_eq!(name.to_string().parse::<ModelName>().unwrap(), name.clone());
                prop_assert!(!name.base().is_empty());
                prop_assert!(!name.base().contains('@'));
                let rebuilt = match name.variant() {
                    Some(v) => format!("{}@{v}", name.base()),
                    None => name.base().to_owned(),
                };
                prop_assert_eq!(rebuilt, text.clone());
                prop_assert_eq!(base_name(&text), name.base());
            }
        }
    }
}

//! Workers' descriptions of their machines (`machine_description_json` in `worker.params`,
//! reference 9060ce5), kept only to show on the stats pages.
//!
//! A description is self-reported: the worker may say anything, so the proxy uses it for
//! nothing that matters (not selection, pricing or trust; the attestation is what is checked).
//! One that is too long or is not a JSON object is dropped with a counted warning; the worker
//! is served either way.

use serde_json::{Map, Value};

/// Longest description kept, in bytes.
pub(crate) const MAX_DESCRIPTION_BYTES: usize = 4096;

/// Why a description was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DescriptionDropped {
    /// Longer than [`MAX_DESCRIPTION_BYTES`].
    #[error("machine description of {0} bytes exceeds {MAX_DESCRIPTION_BYTES}")]
    TooLong(usize),
    /// Not JSON, or JSON but not an object.
    #[error("machine description is not a JSON object: {0}")]
    NotAnObject(String),
}

/// The description as kept, or why it is dropped.
pub(crate) fn accept(raw: &str) -> Result<Map<String, Value>, DescriptionDropped> {
    if raw.len() > MAX_DESCRIPTION_BYTES {
        return Err(DescriptionDropped::TooLong(raw.len()));
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(DescriptionDropped::NotAnObject(format!(
            "a JSON {}",
            match other {
                Value::Array(_) => "array",
                Value::String(_) => "string",
                Value::Number(_) => "number",
                Value::Bool(_) => "boolean",
                _ => "null",
            }
        ))),
        Err(e) => Err(DescriptionDropped::NotAnObject(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn keeps_objects_under_the_cap_and_drops_the_rest() {
        let kept = accept(r#"{"cpu":{"count":16},"engine":"upstream"}"#).unwrap();
        assert_eq!(kept["engine"], "upstream");
        assert_eq!(
            accept("[1,2]"),
            Err(DescriptionDropped::NotAnObject("a JSON array".into()))
        );
        assert!(matches!(
            accept("{not json"),
            Err(DescriptionDropped::NotAnObject(_))
        ));
        assert!(matches!(
            accept(""),
            Err(DescriptionDropped::NotAnObject(_))
        ));
        let long = format!(r#"{{"pad":"{}"}}"#, "x".repeat(MAX_DESCRIPTION_BYTES));
        assert_eq!(accept(&long), Err(DescriptionDropped::TooLong(long.len())));
        let exactly = format!(r#"{{"p":"{}"}}"#, "x".repeat(MAX_DESCRIPTION_BYTES - 8));
        assert_eq!(exactly.len(), MAX_DESCRIPTION_BYTES);
        assert!(accept(&exactly).is_ok());
    }
}

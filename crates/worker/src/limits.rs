//! The completion-token limit of a request: a version 3 proxy reserves a client's money for at
//! most `token_limit` completion tokens and tells the worker, which alone reads the body (it may
//! be sealed), so the worker is the one that makes the body ask for no more. Without this, a
//! client could reserve for 16 tokens and ask the engine for 100 000, leaving the proxy to pay
//! the worker for tokens no reservation covers.
//!
//! The rule, applied to the decoded OpenAI body before the engine sees it:
//!
//! - `max_tokens` and `max_completion_tokens`, where present (and not `null`), must be integers of
//!   at least 1 and at most [`MAX_REQUESTED_TOKENS`]; anything else (negative, zero, fractional,
//!   a string, an absurd count) is refused, never rounded.
//! - `n` and `best_of`, where present, must be positive integers no larger than the choices the
//!   worker generates; the completion tokens of every generated choice count into the limit, so
//!   each choice gets `token_limit / choices`.
//! - A requested count above that share is **clamped** to it rather than refused: the client
//!   asked for at most that many tokens and gets an answer cut at the limit its own reservation
//!   chose (finish reason `length`), which is what the reference proxy's `max_tokens` means to
//!   clients; refusing would turn every mismatch between an SDK's default and the client's
//!   reservation into a failed request. Both fields are clamped, since engines differ in which
//!   one they read.
//! - With neither field present, `max_tokens` is set to the share, so no engine default can
//!   exceed the reservation.
//! - A limit of zero or less means the reservation covers nothing: the request is refused.
//!
//! Without a limit (`proxy.runQueryEx` from a version 2 proxy, which reserves as the reference
//! does), the counts are still checked but nothing is clamped or added.

use serde_json::{Map, Value};

/// Largest completion-token count a request may name: no model's context comes near it, and
/// the client protocol carries `max_tokens` as a 32-bit integer.
pub(crate) const MAX_REQUESTED_TOKENS: u64 = i32::MAX as u64;

/// Choices this worker generates per request (`n` and `best_of` must not exceed it).
pub(crate) const SUPPORTED_CHOICES: u64 = 1;

/// The body fields that bound completion tokens, as engines read them (`n_predict` is
/// llama.cpp's, which it reads before `max_tokens`: refused unless an operator allows it, and
/// then held to the limit like the others).
const TOKEN_FIELDS: [&str; 3] = ["max_tokens", "max_completion_tokens", "n_predict"];

/// Why a body's token counts are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LimitError {
    /// The proxy's reservation covers no completion tokens.
    #[error("the reservation covers no completion tokens (token limit {0})")]
    NoReservation(i64),
    /// A token count that is not an integer of at least 1.
    #[error("`{field}` must be an integer of at least 1, not {value}")]
    NotPositiveInteger {
        /// The field.
        field: &'static str,
        /// Its JSON text.
        value: String,
    },
    /// A token count beyond any model.
    #[error("`{field}` of {value} exceeds the largest count accepted ({MAX_REQUESTED_TOKENS})")]
    Absurd {
        /// The field.
        field: &'static str,
        /// The count asked for.
        value: u64,
    },
    /// `n` or `best_of` that is not a positive integer, or more choices than are generated.
    #[error("`{field}` must be a positive integer of at most {max}, not {value}")]
    UnsupportedChoices {
        /// The field.
        field: &'static str,
        /// Its JSON text.
        value: String,
        /// The most choices generated.
        max: u64,
    },
    /// The limit cannot give every choice even one token.
    #[error("the reservation of {limit} completion tokens cannot cover {choices} choices")]
    TooManyChoices {
        /// The token limit.
        limit: u64,
        /// The choices asked for.
        choices: u64,
    },
}

/// What the rule made of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    /// Completion tokens each choice may now produce, when a limit applies.
    pub(crate) per_choice: Option<u64>,
    /// Whether a requested count was lowered to the limit.
    pub(crate) clamped: bool,
}

/// Checks `body`'s completion-token fields and, with a `token_limit`, makes it ask for no more
/// completion tokens over all choices than the limit (see the module docs). `max_choices` is
/// the most choices the worker generates ([`SUPPORTED_CHOICES`]).
pub(crate) fn enforce(
    body: &mut Map<String, Value>,
    token_limit: Option<i64>,
    max_choices: u64,
) -> Result<Budget, LimitError> {
    if let Some(limit) = token_limit
        && limit <= 0
    {
        return Err(LimitError::NoReservation(limit));
    }
    let n = choices(body, "n", max_choices)?;
    let best_of = choices(body, "best_of", max_choices)?;
    // `best_of` candidates are generated, `n` of them returned.
    let choices = n.max(best_of);
    let mut asked = [None; TOKEN_FIELDS.len()];
    for (slot, field) in asked.iter_mut().zip(TOKEN_FIELDS) {
        *slot = token_count(body, field)?;
    }
    let Some(limit) = token_limit else {
        return Ok(Budget {
            per_choice: None,
            clamped: false,
        });
    };
    let limit = u64::try_from(limit).unwrap_or(0);
    let per_choice = limit / choices;
    if per_choice == 0 {
        return Err(LimitError::TooManyChoices { limit, choices });
    }
    let mut clamped = false;
    for (asked, field) in asked.iter().zip(TOKEN_FIELDS) {
        if asked.is_some_and(|v| v > per_choice) {
            body.insert(field.to_owned(), Value::from(per_choice));
            clamped = true;
        }
    }
    if asked.iter().all(Option::is_none) {
        body.insert("max_tokens".to_owned(), Value::from(per_choice));
    }
    Ok(Budget {
        per_choice: Some(per_choice),
        clamped,
    })
}

/// A completion-token count: `None` when absent or `null`.
fn token_count(body: &Map<String, Value>, field: &'static str) -> Result<Option<u64>, LimitError> {
    let value = match body.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => v,
    };
    match value.as_u64() {
        Some(v) if v > MAX_REQUESTED_TOKENS => Err(LimitError::Absurd { field, value: v }),
        Some(v) if v >= 1 => Ok(Some(v)),
        // Zero, negative, fractional (even `5.0`), huge floats, strings, anything else.
        _ => Err(LimitError::NotPositiveInteger {
            field,
            value: value.to_string(),
        }),
    }
}

/// A choice count (`n`, `best_of`): 1 when absent or `null`.
fn choices(body: &Map<String, Value>, field: &'static str, max: u64) -> Result<u64, LimitError> {
    let value = match body.get(field) {
        None | Some(Value::Null) => return Ok(1),
        Some(v) => v,
    };
    value
        .as_u64()
        .filter(|v| (1..=max).contains(v))
        .ok_or_else(|| LimitError::UnsupportedChoices {
            field,
            value: value.to_string(),
            max,
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test bodies are objects"),
        }
    }

    /// Each case: body, limit, max choices, then the body expected after (or the error).
    #[test]
    fn accepted_bodies_are_clamped_or_completed_to_the_limit() {
        let cases: Vec<(Value, Option<i64>, u64, Value, Budget)> = vec![
            // Below the limit: kept.
            (
                json!({"max_tokens": 10}),
                Some(16),
                1,
                json!({"max_tokens": 10}),
                Budget {
                    per_choice: Some(16),
                    clamped: false,
                },
            ),
            // At the limit: kept.
            (
                json!({"max_tokens": 16}),
                Some(16),
                1,
                json!({"max_tokens": 16}),
                Budget {
                    per_choice: Some(16),
                    clamped: false,
                },
            ),
            // Above: clamped.
            (
                json!({"max_tokens": 100000}),
                Some(16),
                1,
                json!({"max_tokens": 16}),
                Budget {
                    per_choice: Some(16),
                    clamped: true,
                },
            ),
            // Both fields: each clamped, whichever the engine reads.
            (
                json!({"max_tokens": 5, "max_completion_tokens": 900}),
                Some(64),
                1,
                json!({"max_tokens": 5, "max_completion_tokens": 64}),
                Budget {
                    per_choice: Some(64),
                    clamped: true,
                },
            ),
            // Absent (or null): set to the limit.
            (
                json!({"model": "m"}),
                Some(32),
                1,
                json!({"model": "m", "max_tokens": 32}),
                Budget {
                    per_choice: Some(32),
                    clamped: false,
                },
            ),
            (
                json!({"max_tokens": null}),
                Some(32),
                1,
                json!({"max_tokens": 32}),
                Budget {
                    per_choice: Some(32),
                    clamped: false,
                },
            ),
            // Choices share the limit: 3 choices of a 100-token reservation get 33 each.
            (
                json!({"n": 3, "max_tokens": 50}),
                Some(100),
                4,
                json!({"n": 3, "max_tokens": 33}),
                Budget {
                    per_choice: Some(33),
                    clamped: true,
                },
            ),
            (
                json!({"n": 1, "best_of": 4}),
                Some(100),
                4,
                json!({"n": 1, "best_of": 4, "max_tokens": 25}),
                Budget {
                    per_choice: Some(25),
                    clamped: false,
                },
            ),
            // No limit (version 2 proxy): checked, left alone.
            (
                json!({"max_tokens": 100000}),
                None,
                1,
                json!({"max_tokens": 100000}),
                Budget {
                    per_choice: None,
                    clamped: false,
                },
            ),
            (
                json!({}),
                None,
                1,
                json!({}),
                Budget {
                    per_choice: None,
                    clamped: false,
                },
            ),
        ];
        for (before, limit, max_choices, after, budget) in cases {
            let mut b = body(before.clone());
            let got = enforce(&mut b, limit, max_choices).unwrap();
            assert_eq!(Value::Object(b), after, "{before} limit {limit:?}");
            assert_eq!(got, budget, "{before} limit {limit:?}");
        }
    }

    #[test]
    fn bad_counts_and_empty_reservations_are_refused() {
        let absurd = MAX_REQUESTED_TOKENS + 1;
        let cases: Vec<(Value, Option<i64>, u64, LimitError)> = vec![
            (json!({}), Some(0), 1, LimitError::NoReservation(0)),
            (
                json!({"max_tokens": 4}),
                Some(-5),
                1,
                LimitError::NoReservation(-5),
            ),
            (
                json!({"max_tokens": 0}),
                Some(16),
                1,
                LimitError::NotPositiveInteger {
                    field: "max_tokens",
                    value: "0".into(),
                },
            ),
            // llama.cpp's own field, read before `max_tokens`: -1 would mean "until the end".
            (
                json!({"max_tokens": 4, "n_predict": -1}),
                Some(16),
                1,
                LimitError::NotPositiveInteger {
                    field: "n_predict",
                    value: "-1".into(),
                },
            ),
            (
                json!({"max_tokens": -1}),
                Some(16),
                1,
                LimitError::NotPositiveInteger {
                    field: "max_tokens",
                    value: "-1".into(),
                },
            ),
            (
                json!({"max_tokens": 5.5}),
                Some(16),
                1,
                LimitError::NotPositiveInteger {
                    field: "max_tokens",
                    value: "5.5".into(),
                },
            ),
            // Never rounded, even when the fraction is zero.
            (
                json!({"max_completion_tokens": 5.0}),
                Some(16),
                1,
                LimitError::NotPositiveInteger {
                    field: "max_completion_tokens",
                    value: "5.0".into(),
                },
            ),
            (
                json!({"max_tokens": "16"}),
                Some(16),
                1,
                LimitError::NotPositiveInteger {
                    field: "max_tokens",
                    value: "\"16\"".into(),
                },
            ),
            (
                json!({"max_tokens": [1]}),
                None,
                1,
                LimitError::NotPositiveInteger {
                    field: "max_tokens",
                    value: "[1]".into(),
                },
            ),
            (
                json!({"max_tokens": absurd}),
                Some(16),
                1,
                LimitError::Absurd {
                    field: "max_tokens",
                    value: absurd,
                },
            ),
            (
                json!({"max_tokens": 1e300}),
                Some(16),
                1,
                LimitError::NotPositiveInteger {
                    field: "max_tokens",
                    value: "1e+300".into(),
                },
            ),
            (
                json!({"n": 2}),
                Some(16),
                1,
                LimitError::UnsupportedChoices {
                    field: "n",
                    value: "2".into(),
                    max: 1,
                },
            ),
            (
                json!({"n": 0}),
                Some(16),
                1,
                LimitError::UnsupportedChoices {
                    field: "n",
                    value: "0".into(),
                    max: 1,
                },
            ),
            (
                json!({"n": -1}),
                None,
                1,
                LimitError::UnsupportedChoices {
                    field: "n",
                    value: "-1".into(),
                    max: 1,
                },
            ),
            (
                json!({"best_of": 3}),
                Some(16),
                1,
                LimitError::UnsupportedChoices {
                    field: "best_of",
                    value: "3".into(),
                    max: 1,
                },
            ),
            (
                json!({"n": 4}),
                Some(3),
                4,
                LimitError::TooManyChoices {
                    limit: 3,
                    choices: 4,
                },
            ),
        ];
        for (before, limit, max_choices, expected) in cases {
            let mut b = body(before.clone());
            let got = enforce(&mut b, limit, max_choices).unwrap_err();
            assert_eq!(got, expected, "{before} limit {limit:?}");
            assert_eq!(Value::Object(b), before, "a refused body is left as it was");
        }
    }

    #[test]
    fn the_clamped_body_never_asks_for_more_than_the_limit() {
        for limit in [1_i64, 2, 7, 16, 1000, i64::from(i32::MAX), i64::MAX] {
            for asked in [1_u64, 2, 15, 16, 17, 999, 1001, MAX_REQUESTED_TOKENS] {
                for field in TOKEN_FIELDS {
                    let mut b = body(json!({ field: asked }));
                    enforce(&mut b, Some(limit), SUPPORTED_CHOICES).unwrap();
                    let now = b[field].as_u64().unwrap();
                    assert!(
                        now <= u64::try_from(limit).unwrap(),
                        "{field} {asked} → {now}"
                    );
                    assert_eq!(now, asked.min(u64::try_from(limit).unwrap()));
                }
            }
        }
    }
}

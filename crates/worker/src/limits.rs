//! The completion-token limit of a request: a version 3 proxy reserves a client's money for at
//! most `token_limit` completion tokens and tells the worker, which alone reads the body (it may
//! be sealed), so the worker is the one that makes the body ask for no more. Without this, a
//! client could reserve for 16 tokens and ask the engine for 100 000, leaving the proxy to pay
//! the worker for tokens no reservation covers.
//!
//! The rule, applied to the checked request before the engine sees it:
//!
//! - `max_tokens`, `max_completion_tokens` (and `n_predict` where an operator allows it) are
//!   checked where the request is parsed ([`OpenAiRequest`]): integers of at least 1 and at most
//!   [`MAX_REQUESTED_TOKENS`](cocoon_infer::request::MAX_REQUESTED_TOKENS), never rounded.
//! - `n` and `best_of` (positive integers, checked where the request is parsed) must be no
//!   larger than the choices the worker generates; the completion tokens of every generated choice count into the limit, so
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

use cocoon_infer::request::{OpenAiRequest, Params};

/// Choices this worker generates per request (`n` and `best_of` must not exceed it).
pub(crate) const SUPPORTED_CHOICES: u64 = 1;

/// Why a request's token counts are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LimitError {
    /// The proxy's reservation covers no completion tokens.
    #[error("the reservation covers no completion tokens (token limit {0})")]
    NoReservation(i64),
    /// More choices (`n` or `best_of`) than are generated.
    #[error("`{field}` must be a positive integer of at most {max}, not {value}")]
    UnsupportedChoices {
        /// The field.
        field: &'static str,
        /// The choices asked for.
        value: u64,
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

impl LimitError {
    /// The body field the refusal is about (OpenAI's `param`).
    pub(crate) fn param(&self) -> Option<&'static str> {
        match self {
            Self::UnsupportedChoices { field, .. } => Some(field),
            Self::NoReservation(_) | Self::TooManyChoices { .. } => None,
        }
    }
}

/// What the rule made of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    /// Completion tokens each choice may now produce, when a limit applies.
    pub(crate) per_choice: Option<u64>,
    /// Whether a requested count was lowered to the limit.
    pub(crate) clamped: bool,
}

/// Checks `request`'s choices and, with a `token_limit`, makes it ask for no more completion
/// tokens over all choices than the limit (see the module docs). `max_choices` is the most
/// choices the worker generates ([`SUPPORTED_CHOICES`]).
pub(crate) fn enforce(
    request: &mut OpenAiRequest,
    token_limit: Option<i64>,
    max_choices: u64,
) -> Result<Budget, LimitError> {
    if let Some(limit) = token_limit
        && limit <= 0
    {
        return Err(LimitError::NoReservation(limit));
    }
    let params = &mut request.params;
    let n = choices(params.n, "n", max_choices)?;
    let best_of = choices(params.best_of, "best_of", max_choices)?;
    // `best_of` candidates are generated, `n` of them returned.
    let choices = n.max(best_of);
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
    let mut named = false;
    for asked in token_fields(params).into_iter().flatten() {
        named = true;
        if *asked > per_choice {
            *asked = per_choice;
            clamped = true;
        }
    }
    if !named {
        params.max_tokens = Some(per_choice);
        // A `null` the client sent is replaced, not kept beside the count.
        request.rest.remove("max_tokens");
    }
    Ok(Budget {
        per_choice: Some(per_choice),
        clamped,
    })
}

/// The counts that bound completion tokens, as engines read them (`n_predict` is llama.cpp's,
/// which it reads before `max_tokens`: refused unless an operator allows it, and then held to
/// the limit like the others). All are clamped, since engines differ in which one they read.
fn token_fields(params: &mut Params) -> [&mut Option<u64>; 3] {
    [
        &mut params.max_tokens,
        &mut params.max_completion_tokens,
        &mut params.n_predict,
    ]
}

/// A choice count (`n`, `best_of`): 1 when absent.
fn choices(value: Option<u64>, field: &'static str, max: u64) -> Result<u64, LimitError> {
    match value {
        None => Ok(1),
        Some(v) if v <= max => Ok(v),
        Some(value) => Err(LimitError::UnsupportedChoices { field, value, max }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use cocoon_infer::Endpoint;
    use serde_json::{Value, json};

    use super::*;

    fn request(mut body: Value) -> OpenAiRequest {
        body["model"] = json!("m");
        body["messages"] = json!([]);
        OpenAiRequest::from_value(Endpoint::ChatCompletions, body, &["n_predict".to_owned()])
            .unwrap()
    }

    fn body_of(request: OpenAiRequest) -> Value {
        let mut body = Value::Object(request.into_body());
        let map = body.as_object_mut().unwrap();
        map.remove("model");
        map.remove("messages");
        body
    }

    /// Each case: body, limit, max choices, then the body expected after (or the error).
    #[test]
    fn accepted_bodies_are_clamped_or_completed_to_the_limit() {
        let budget = |per_choice, clamped| Budget {
            per_choice,
            clamped,
        };
        let cases: Vec<(Value, Option<i64>, u64, Value, Budget)> = vec![
            // Below the limit: kept.
            (
                json!({"max_tokens": 10}),
                Some(16),
                1,
                json!({"max_tokens": 10}),
                budget(Some(16), false),
            ),
            // At the limit: kept.
            (
                json!({"max_tokens": 16}),
                Some(16),
                1,
                json!({"max_tokens": 16}),
                budget(Some(16), false),
            ),
            // Above: clamped.
            (
                json!({"max_tokens": 100000}),
                Some(16),
                1,
                json!({"max_tokens": 16}),
                budget(Some(16), true),
            ),
            // Both fields: each clamped, whichever the engine reads.
            (
                json!({"max_tokens": 5, "max_completion_tokens": 900}),
                Some(64),
                1,
                json!({"max_tokens": 5, "max_completion_tokens": 64}),
                budget(Some(64), true),
            ),
            // llama.cpp's own count, where allowed, too.
            (
                json!({"n_predict": 40}),
                Some(8),
                1,
                json!({"n_predict": 8}),
                budget(Some(8), true),
            ),
            // Absent (or null): set to the limit.
            (
                json!({"user": "u"}),
                Some(32),
                1,
                json!({"user": "u", "max_tokens": 32}),
                budget(Some(32), false),
            ),
            (
                json!({"max_tokens": null}),
                Some(32),
                1,
                json!({"max_tokens": 32}),
                budget(Some(32), false),
            ),
            // Choices share the limit: 3 choices of a 100-token reservation get 33 each.
            (
                json!({"n": 3, "max_tokens": 50}),
                Some(100),
                4,
                json!({"n": 3, "max_tokens": 33}),
                budget(Some(33), true),
            ),
            (
                json!({"n": 1, "best_of": 4}),
                Some(100),
                4,
                json!({"n": 1, "best_of": 4, "max_tokens": 25}),
                budget(Some(25), false),
            ),
            // No limit (version 2 proxy): checked, left alone.
            (
                json!({"max_tokens": 100000}),
                None,
                1,
                json!({"max_tokens": 100000}),
                budget(None, false),
            ),
            (json!({}), None, 1, json!({}), budget(None, false)),
        ];
        for (before, limit, max_choices, after, expected) in cases {
            let mut r = request(before.clone());
            let got = enforce(&mut r, limit, max_choices).unwrap();
            assert_eq!(body_of(r), after, "{before} limit {limit:?}");
            assert_eq!(got, expected, "{before} limit {limit:?}");
        }
    }

    #[test]
    fn more_choices_and_empty_reservations_are_refused() {
        type Case = (Value, Option<i64>, u64, LimitError, Option<&'static str>);
        let cases: Vec<Case> = vec![
            (json!({}), Some(0), 1, LimitError::NoReservation(0), None),
            (
                json!({"max_tokens": 4}),
                Some(-5),
                1,
                LimitError::NoReservation(-5),
                None,
            ),
            (
                json!({"n": 2}),
                Some(16),
                1,
                LimitError::UnsupportedChoices {
                    field: "n",
                    value: 2,
                    max: 1,
                },
                Some("n"),
            ),
            (
                json!({"n": 2}),
                None,
                1,
                LimitError::UnsupportedChoices {
                    field: "n",
                    value: 2,
                    max: 1,
                },
                Some("n"),
            ),
            (
                json!({"best_of": 3}),
                Some(16),
                1,
                LimitError::UnsupportedChoices {
                    field: "best_of",
                    value: 3,
                    max: 1,
                },
                Some("best_of"),
            ),
            (
                json!({"n": 4}),
                Some(3),
                4,
                LimitError::TooManyChoices {
                    limit: 3,
                    choices: 4,
                },
                None,
            ),
        ];
        for (before, limit, max_choices, expected, param) in cases {
            let mut r = request(before.clone());
            let got = enforce(&mut r, limit, max_choices).unwrap_err();
            assert_eq!(got, expected, "{before} limit {limit:?}");
            assert_eq!(got.param(), param, "{before}");
            assert_eq!(body_of(r), before, "a refused body is left as it was");
        }
        assert_eq!(
            LimitError::UnsupportedChoices {
                field: "n",
                value: 2,
                max: 1
            }
            .to_string(),
            "`n` must be a positive integer of at most 1, not 2"
        );
    }

    #[test]
    fn the_clamped_body_never_asks_for_more_than_the_limit() {
        let max = cocoon_infer::request::MAX_REQUESTED_TOKENS;
        for limit in [1_i64, 2, 7, 16, 1000, i64::from(i32::MAX), i64::MAX] {
            for asked in [1_u64, 2, 15, 16, 17, 999, 1001, max] {
                for field in ["max_tokens", "max_completion_tokens", "n_predict"] {
                    let mut r = request(json!({ field: asked }));
                    enforce(&mut r, Some(limit), SUPPORTED_CHOICES).unwrap();
                    let now = r.params.max_completion().unwrap();
                    let limit = u64::try_from(limit).unwrap();
                    assert!(now <= limit, "{field} {asked} → {now}");
                    assert_eq!(now, asked.min(limit));
                    assert_eq!(body_of(r)[field], json!(now));
                }
            }
        }
    }
}

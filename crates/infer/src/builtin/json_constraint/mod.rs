//! Constrained decoding for `response_format` `json_object` and `json_schema`: before each
//! token is sampled, every token whose bytes cannot continue a value of the requested shape is
//! masked out, so an answer that ends because the value closed always parses (and, with a
//! schema, validates). An answer cut by `max_tokens` ends with `finish_reason: "length"` and
//! may be incomplete, as with any engine.

mod matcher;
mod schema;

use std::sync::Arc;

use serde_json::{Value, json};

use self::matcher::Matcher;
use self::schema::Grammar;
use crate::builtin::BuiltinError;
use crate::tokenizer::{TokenKind, Tokenizer};

/// How many tokens beyond the cost of closing the value the budget is watched.
pub const WINDOW: usize = 64;

/// The bytes of a token that stands for text (control and unused tokens never do).
fn text_bytes(tokenizer: &Tokenizer, id: u32) -> Option<&[u8]> {
    match tokenizer.token_kind(id)? {
        TokenKind::Normal | TokenKind::Undefined | TokenKind::Byte | TokenKind::UserDefined => {
            tokenizer.token_bytes(id)
        }
        TokenKind::Control | TokenKind::Unknown | TokenKind::Unused => None,
    }
}

/// Sets to −∞ the logit of every token `admit` refuses (its text bytes) and of every control
/// token, end-of-generation ones allowed when `may_end`. Returns whether any token is left.
fn mask_by(
    tokenizer: &Tokenizer,
    logits: &mut [f32],
    may_end: bool,
    admit: impl Fn(&[u8]) -> bool,
) -> bool {
    let mut left = false;
    for (id, logit) in logits.iter_mut().enumerate() {
        let id = id as u32;
        let ok = if tokenizer.is_end_of_generation(id) {
            may_end
        } else {
            text_bytes(tokenizer, id).is_some_and(&admit)
        };
        if ok {
            left |= !logit.is_nan() && *logit > f32::NEG_INFINITY;
        } else {
            *logit = f32::NEG_INFINITY;
        }
    }
    left
}

/// The grammar of one answer and where the answer stands in it.
#[derive(Debug, Clone)]
pub struct JsonConstraint {
    grammar: Arc<Grammar>,
    matcher: Matcher,
}

impl JsonConstraint {
    /// The constraint of a request's `response_format` (`None`: plain text).
    pub fn from_response_format(format: Option<&Value>) -> Result<Option<Self>, BuiltinError> {
        let Some(format) = format.filter(|f| !f.is_null()) else {
            return Ok(None);
        };
        let kind = format.get("type").and_then(Value::as_str);
        let grammar = match kind {
            Some("text") => return Ok(None),
            Some("json_object") => Grammar::json_object(),
            Some("json_schema") => {
                let spec = format
                    .get("json_schema")
                    .and_then(Value::as_object)
                    .ok_or_else(|| {
                        BuiltinError::ResponseFormat("`json_schema` must be an object".into())
                    })?;
                let schema = spec.get("schema").cloned().unwrap_or_else(|| json!({}));
                Grammar::from_schema(&schema)?
            }
            other => {
                return Err(BuiltinError::ResponseFormat(format!(
                    "type {} is not supported (text, json_object, json_schema)",
                    other.map_or_else(|| "(missing)".to_owned(), |k| format!("`{k}`"))
                )));
            }
        };
        Ok(Some(Self::new(grammar)))
    }

    fn new(grammar: Grammar) -> Self {
        let matcher = Matcher::new(&grammar);
        Self {
            grammar: Arc::new(grammar),
            matcher,
        }
    }

    /// Sets the logit of every token that cannot come next to −∞ (end-of-generation tokens
    /// only once the value may end); with `tokens_left` (this one included) within [`WINDOW`]
    /// of what closing the value takes, also every token after which the value could no longer
    /// be closed in time. Returns whether any token is left.
    pub fn mask(&self, tokenizer: &Tokenizer, logits: &mut [f32], tokens_left: usize) -> bool {
        let g = &*self.grammar;
        let cost = self.matcher.closing_cost(g);
        if tokens_left <= cost as usize + WINDOW {
            let mut bounded = logits.to_vec();
            if self.mask_within(tokenizer, &mut bounded, tokens_left) {
                logits.copy_from_slice(&bounded);
                return true;
            }
        }
        let mut first = [false; 256];
        for (b, ok) in first.iter_mut().enumerate() {
            *ok = self.matcher.admits(g, &[b as u8]);
        }
        mask_by(
            tokenizer,
            logits,
            self.matcher.may_end(),
            |bytes| match bytes {
                [] => false,
                [b] => first[usize::from(*b)],
                _ => first[usize::from(bytes[0])] && self.matcher.admits(g, bytes),
            },
        )
    }

    /// Leaves only tokens after which the value can be closed in the tokens left (and
    /// end-of-generation where it may end).
    fn mask_within(&self, tokenizer: &Tokenizer, logits: &mut [f32], tokens_left: usize) -> bool {
        let g = &*self.grammar;
        mask_by(tokenizer, logits, self.matcher.may_end(), |bytes| {
            self.matcher
                .after(g, bytes)
                .is_some_and(|m| (m.closing_cost(g) as usize) < tokens_left)
        })
    }

    /// Takes the bytes of the token chosen; `false` if they do not fit (a bug upstream of
    /// this call, since the mask admitted them).
    pub fn advance(&mut self, bytes: &[u8]) -> bool {
        let g = &*self.grammar;
        bytes.iter().all(|&b| self.matcher.feed(g, b))
    }

    /// Whether the answer may end here (a value closed, or a complete top-level number).
    pub fn may_end(&self) -> bool {
        self.matcher.may_end()
    }

    /// Whether the value is complete and closed: the answer ends here.
    pub fn closed(&self) -> bool {
        self.matcher.closed()
    }
}

//! `response_format` constraints from outside (a caller's JSON Schema) fed arbitrary answer
//! bytes: compiling any schema gives a constraint or a typed error, never a panic; feeding any
//! bytes never panics; and whatever the constraint accepts up to a point where the answer may
//! end is JSON that parses.

#![no_main]

use cocoon_infer::builtin::json_constraint::JsonConstraint;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fuzz_target!(|input: &[u8]| {
    // The first byte says how much of the rest is the schema; the rest is the answer.
    let Some((&n, rest)) = input.split_first() else {
        return;
    };
    let (schema, answer) = rest.split_at(usize::from(n).min(rest.len()));
    let format = match serde_json::from_slice::<Value>(schema) {
        Ok(schema) => json!({"type": "json_schema", "json_schema": {"schema": schema}}),
        Err(_) => json!({"type": "json_object"}),
    };
    let Ok(Some(mut constraint)) = JsonConstraint::from_response_format(Some(&format)) else {
        return;
    };
    let mut accepted = Vec::new();
    for chunk in answer.chunks(3) {
        if !constraint.advance(chunk) {
            break;
        }
        accepted.extend_from_slice(chunk);
        if constraint.may_end() {
            assert!(
                serde_json::from_slice::<Value>(&accepted).is_ok(),
                "accepted as complete but does not parse: {:?}",
                String::from_utf8_lossy(&accepted)
            );
        }
    }
});

//! Fills in this implementation's side of the pyhpke cross-check.
//!
//! Reads the cross-check document on stdin (as built by `tests/crosscheck/crosscheck.py`),
//! writes it back on stdout with `ours_sealed` / `ours` filled in and, where the document already
//! holds vectors from pyhpke or from the Python envelope builder, with what this implementation
//! opened from them (`ours_opened`, or `ours_open_error`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/crosscheck/vectors.rs"]
mod vectors;

use serde_json::{Value, json};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut doc: Value = serde_json::from_reader(std::io::stdin().lock())?;

    for case in doc["hpke"].as_array_mut().ok_or("missing hpke cases")? {
        let ikm_e = vectors::bytes(&case["ours_sealed"]["ikmE"]);
        case["ours_sealed"] = vectors::hpke_seal(case, &ikm_e);
        if case.get("pyhpke_sealed").is_some_and(|v| !v.is_null()) {
            case["ours_opened"] = match vectors::hpke_open(case, &case["pyhpke_sealed"]) {
                Ok(opened) => opened,
                Err(e) => json!({ "error": e.to_string() }),
            };
        }
    }

    let env = &mut doc["envelope"];
    env["ours"] = vectors::envelope_seal(env);
    if env.get("python").is_some_and(|v| !v.is_null()) {
        env["ours_opened"] = match vectors::envelope_open(env, &env["python"]) {
            Ok(opened) => opened,
            Err(e) => json!({ "error": e.to_string() }),
        };
    }

    serde_json::to_writer_pretty(std::io::stdout().lock(), &doc)?;
    println!();
    Ok(())
}

//! A client's `/v1/models` answer as `cocoon-worker estimate --market-from` reads it, from any
//! server the operator names: arbitrary bytes never panic, and what is accepted is in range (a
//! coefficient the wire can carry, a load between 0 and 1).

#![no_main]

use cocoon_worker::estimate::market_from_models;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the model asked for, so that lists naming it are reached.
    let (model, body) = match data.split_first() {
        Some((pick, rest)) => (["m", "Qwen/Qwen3-8B", ""][usize::from(*pick) % 3], rest),
        None => ("m", data),
    };
    if let Ok((coefficients, load)) = market_from_models(body, model) {
        for c in &coefficients {
            assert!(
                i64::from(c.get()) <= i64::from(i32::MAX),
                "coefficient {} beyond the wire's range",
                c.get()
            );
        }
        if let Some(load) = load {
            assert!((0.0..=1.0).contains(&load), "load {load} out of range");
        }
    }
});

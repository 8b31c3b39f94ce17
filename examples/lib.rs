//! Examples of embedding the cocoon-rs crates; run them with
//! `cargo run -p cocoon-examples --example NAME`.

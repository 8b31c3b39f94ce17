//! Inference engines: the `Engine` trait, the built-in engine and the upstream engine.

//! `cocoon_worker::speed::measure` on the built-in engine with the real default model: the
//! figures are the engine's own usage over wall time, so they are positive, and generating a
//! whole batch yields the tokens asked for. Skipped, with a message, when the model file is not
//! in the local cache (a failure when `COCOON_REQUIRE_CACHED_MODELS` is set, as in CI).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use cocoon_infer::builtin::{
    BuiltinEngine, BuiltinEngineConfig, CpuBackend, ModelStore, SMOLLM2_135M_Q4_1, TextModel,
};
use cocoon_worker::speed::measure;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builtin_engines_speed_is_measured_from_its_own_usage() {
    let path = ModelStore::user_default()
        .unwrap()
        .path_of(&SMOLLM2_135M_Q4_1);
    if !path.exists() {
        assert!(
            std::env::var_os("COCOON_REQUIRE_CACHED_MODELS").is_none(),
            "{} missing (COCOON_REQUIRE_CACHED_MODELS is set: scripts/test fetches it)",
            path.display()
        );
        eprintln!("skipping: {} not found", path.display());
        return;
    }
    let model: TextModel<CpuBackend> = TextModel::open(&path, &Default::default()).unwrap();
    let config = BuiltinEngineConfig::default();
    let name = config.model_name.clone();
    let engine = BuiltinEngine::new(model, config);
    let speed = measure(&engine, &name, 4, 8, Duration::from_secs(300))
        .await
        .unwrap();
    println!("{speed:?}");
    assert_eq!(speed.concurrency, 4);
    assert!(speed.completion_tokens > 0 && speed.completion_tokens <= 4 * 8);
    assert!(speed.completion_tokens_per_sec > 0.0 && speed.prompt_tokens_per_sec > 0.0);
    // A request it cannot run is an error, not a figure.
    let err = measure(&engine, &name, 0, 8, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at least one request"), "{err}");
}

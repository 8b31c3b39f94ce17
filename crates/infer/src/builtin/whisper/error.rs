//! Why audio could not be decoded or a speech model could not be loaded or run.

use std::path::PathBuf;

/// A WAV file that the decoder refuses, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AudioError {
    /// The bytes do not start with a RIFF/WAVE header.
    #[error("not a WAV file (no RIFF/WAVE header)")]
    NotWav,
    /// The file ends inside a structure.
    #[error("WAV file truncated in the {0}")]
    Truncated(&'static str),
    /// A required chunk is absent.
    #[error("WAV file has no `{0}` chunk")]
    MissingChunk(&'static str),
    /// The `fmt ` chunk is inconsistent.
    #[error("WAV format: {0}")]
    BadFormat(&'static str),
    /// An encoding this decoder does not read (compressed, odd sample widths).
    #[error("unsupported WAV encoding: {0}")]
    UnsupportedEncoding(String),
    /// Longer than the decoder accepts.
    #[error("audio of {seconds} s is longer than the {max} s accepted")]
    TooLong {
        /// The audio's length.
        seconds: u64,
        /// The limit.
        max: u64,
    },
}

/// Failures of the speech model, from reading its files to transcribing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WhisperError {
    /// A model file could not be read.
    #[error("read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The model file is not a well-formed CTranslate2 model.
    #[error("model file: {0}")]
    Format(String),
    /// The model is well-formed but not a Whisper model this engine runs.
    #[error("unsupported model: {0}")]
    Unsupported(String),
    /// The vocabulary file is malformed or lacks a token the model needs.
    #[error("vocabulary: {0}")]
    Vocabulary(String),
    /// The requested language is not one the model knows.
    #[error("language {0:?} is not supported by this model")]
    Language(String),
    /// The audio could not be decoded.
    #[error(transparent)]
    Audio(#[from] AudioError),
}

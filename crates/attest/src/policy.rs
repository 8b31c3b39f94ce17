//! Which verified TEEs a node accepts as peers: evidence kinds, allow-lists of measurements
//! and image hashes, Intel root keys, minimum TCB, and the rules that are never relaxed
//! (debug TEEs are refused; production refuses simulated evidence). Buildable from config.

use serde::{Deserialize, Serialize};

use crate::claims::UserClaims;
use crate::digest::{Digest, Digest48, ImageHash};
use crate::error::AttestError;
use crate::evidence::EvidenceKind;
use crate::measurements::{Measurements, SnpMeasurements, SnpTcb, TdxMeasurements};
use crate::tdx::INTEL_ROOT_KEY_ID;
use crate::verifier::VerifiedEvidence;

/// How far in the future a claims issue time may lie (clock skew between nodes).
pub const CLAIMS_FUTURE_SKEW_SECS: u64 = 300;

/// Oldest v1 claims the production policy accepts: a certificate lives a day
/// (`ratls::DEFAULT_VALIDITY_SECS`) and is renewed with fresh evidence hourly, so claims
/// older than a day and an hour mean evidence reused beyond its certificate's life (for example
/// a quote taken before a TCB update, wrapped in a newer self-issued certificate).
pub const PRODUCTION_MAX_CLAIMS_AGE_SECS: u64 = 25 * 3600;

/// Intel TCB statuses a policy can allow, spelled as Intel spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TdxTcbStatus {
    /// Fully patched.
    UpToDate,
    /// Patched, software mitigations advised.
    SWHardeningNeeded,
    /// Patched, platform configuration advised.
    ConfigurationNeeded,
    /// Both of the above.
    ConfigurationAndSWHardeningNeeded,
    /// Missing security updates.
    OutOfDate,
    /// Missing updates and configuration.
    OutOfDateConfigurationNeeded,
    /// TD 1.5: relaunch on the updated module advised.
    TDRelaunchAdvised,
    /// TD 1.5: relaunch advised, configuration needed.
    TDRelaunchAdvisedConfigurationNeeded,
}

impl TdxTcbStatus {
    /// Intel's name for the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UpToDate => "UpToDate",
            Self::SWHardeningNeeded => "SWHardeningNeeded",
            Self::ConfigurationNeeded => "ConfigurationNeeded",
            Self::ConfigurationAndSWHardeningNeeded => "ConfigurationAndSWHardeningNeeded",
            Self::OutOfDate => "OutOfDate",
            Self::OutOfDateConfigurationNeeded => "OutOfDateConfigurationNeeded",
            Self::TDRelaunchAdvised => "TDRelaunchAdvised",
            Self::TDRelaunchAdvisedConfigurationNeeded => "TDRelaunchAdvisedConfigurationNeeded",
        }
    }
}

/// One allowed combination of RTMR values; `None` leaves that register unconstrained (RTMR3
/// is often extended at run time by the application).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtmrSet {
    /// RTMR0 (virtual firmware configuration).
    pub rtmr0: Option<Digest48>,
    /// RTMR1 (kernel).
    pub rtmr1: Option<Digest48>,
    /// RTMR2 (kernel command line, initrd).
    pub rtmr2: Option<Digest48>,
    /// RTMR3 (application).
    pub rtmr3: Option<Digest48>,
}

impl RtmrSet {
    /// A set that pins all four registers.
    pub fn exact(rtmrs: &[Digest48; 4]) -> Self {
        Self {
            rtmr0: Some(rtmrs[0]),
            rtmr1: Some(rtmrs[1]),
            rtmr2: Some(rtmrs[2]),
            rtmr3: Some(rtmrs[3]),
        }
    }

    /// Whether `rtmrs` matches every pinned register.
    pub fn matches(&self, rtmrs: &[Digest48; 4]) -> bool {
        [&self.rtmr0, &self.rtmr1, &self.rtmr2, &self.rtmr3]
            .iter()
            .zip(rtmrs)
            .all(|(want, have)| want.as_ref().is_none_or(|w| w == have))
    }
}

/// Rules for Intel TDX evidence (also applied to the TDX-shaped simulated measurements,
/// except the TCB rules, which need real collateral). Fields left out of a config file take
/// the [`TdxPolicy::default`] values, which pin Intel's root and refuse out-of-date TCBs, so
/// that writing an allow-list never silently drops those rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TdxPolicy {
    /// Allowed MRTD values; `None` allows any.
    pub allowed_mrtd: Option<Vec<Digest48>>,
    /// Allowed RTMR sets; `None` allows any.
    pub allowed_rtmrs: Option<Vec<RtmrSet>>,
    /// Allowed Intel root key ids (SHA-384 of the root CA key); `None` allows any root the
    /// DCAP verifier trusts.
    pub allowed_root_key_ids: Option<Vec<Digest48>>,
    /// Allowed TCB statuses; `None` allows any status DCAP does not reject outright
    /// (it always rejects `Revoked`).
    pub allowed_tcb_statuses: Option<Vec<TdxTcbStatus>>,
    /// Minimum TEE TCB SVN, compared byte by byte.
    pub min_tee_tcb_svn: Option<Digest<16>>,
    /// Minimum Intel TCB evaluation data number of the collateral a verdict was reached with:
    /// verdicts from collateral older than a TCB recovery are refused.
    pub min_tcb_evaluation_data_number: Option<u32>,
}

/// The production floor of [`TdxPolicy::min_tcb_evaluation_data_number`]: the TCB recovery
/// of the oldest collateral this project is tested with. Operators raise it as Intel publishes
/// recoveries.
pub const PRODUCTION_MIN_TCB_EVALUATION_DATA_NUMBER: u32 = 17;

impl Default for TdxPolicy {
    fn default() -> Self {
        Self {
            allowed_mrtd: None,
            allowed_rtmrs: None,
            allowed_root_key_ids: Some(vec![INTEL_ROOT_KEY_ID]),
            allowed_tcb_statuses: Some(vec![
                TdxTcbStatus::UpToDate,
                TdxTcbStatus::SWHardeningNeeded,
                TdxTcbStatus::ConfigurationNeeded,
                TdxTcbStatus::ConfigurationAndSWHardeningNeeded,
            ]),
            min_tee_tcb_svn: None,
            min_tcb_evaluation_data_number: Some(PRODUCTION_MIN_TCB_EVALUATION_DATA_NUMBER),
        }
    }
}

/// Rules for AMD SEV-SNP evidence.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnpPolicy {
    /// Allowed launch measurements; `None` allows any.
    pub allowed_measurements: Option<Vec<Digest48>>,
    /// Minimum reported TCB.
    pub min_tcb: Option<SnpTcb>,
}

/// An attestation policy. Serde-friendly: missing fields take the [`Policy::production`]
/// values, unknown fields are refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// When false the policy is the reference's `any`: the peer's certificate must still be a
    /// well-formed RA-TLS certificate, but evidence is not required or checked.
    pub require_evidence: bool,
    /// Accept SIMULATED evidence (local mode only).
    pub accept_simulated: bool,
    /// Accept Intel TDX evidence.
    pub accept_tdx: bool,
    /// Accept AMD SEV-SNP evidence.
    pub accept_sev_snp: bool,
    /// Allowed image hashes (from the root contract); `None` allows any.
    pub allowed_image_hashes: Option<Vec<ImageHash>>,
    /// TDX rules.
    pub tdx: TdxPolicy,
    /// SEV-SNP rules.
    pub snp: SnpPolicy,
    /// Refuse v1 user claims issued longer ago than this (reference-format claims carry no
    /// time and are not affected).
    pub max_claims_age_secs: Option<u64>,
}

impl Default for Policy {
    fn default() -> Self {
        Self::production()
    }
}

impl Policy {
    /// Real TDX or SEV-SNP evidence only, Intel's root pinned, TCB statuses that need no
    /// security update. Simulated evidence is refused. Add image hashes with
    /// [`Policy::with_image_hashes`].
    pub fn production() -> Self {
        Self {
            require_evidence: true,
            accept_simulated: false,
            accept_tdx: true,
            accept_sev_snp: true,
            allowed_image_hashes: None,
            tdx: TdxPolicy::default(),
            snp: SnpPolicy::default(),
            max_claims_age_secs: Some(PRODUCTION_MAX_CLAIMS_AGE_SECS),
        }
    }

    /// Local mode: SIMULATED evidence accepted (real evidence is still fully verified under
    /// the production rules).
    pub fn local_simulated() -> Self {
        Self {
            accept_simulated: true,
            ..Self::production()
        }
    }

    /// The reference's `any`: no evidence required (used where peers are not attested, such
    /// as the proxy's client port).
    pub fn any() -> Self {
        Self {
            require_evidence: false,
            accept_simulated: true,
            ..Self::production()
        }
    }

    /// Restricts accepted image hashes.
    pub fn with_image_hashes(mut self, hashes: impl IntoIterator<Item = ImageHash>) -> Self {
        self.allowed_image_hashes = Some(hashes.into_iter().collect());
        self
    }

    /// This policy narrowed to `hashes` (the root registry's allow-list): a peer's image hash
    /// must be among them and, if this policy already lists image hashes (a policy file), in
    /// that list as well. Evidence becomes required, so a policy file with
    /// `require_evidence = false` cannot let an unattested peer past the registry. An empty
    /// `hashes` admits nobody.
    #[must_use]
    pub fn restricted_to_image_hashes(&self, hashes: impl IntoIterator<Item = ImageHash>) -> Self {
        let mut allowed: Vec<ImageHash> = hashes.into_iter().collect();
        if let Some(own) = &self.allowed_image_hashes {
            allowed.retain(|h| own.contains(h));
        }
        Self {
            allowed_image_hashes: Some(allowed),
            require_evidence: true,
            ..self.clone()
        }
    }

    /// Restricts accepted MRTD values.
    pub fn with_mrtds(mut self, mrtds: impl IntoIterator<Item = Digest48>) -> Self {
        self.tdx.allowed_mrtd = Some(mrtds.into_iter().collect());
        self
    }

    /// Restricts accepted RTMR sets.
    pub fn with_rtmr_sets(mut self, sets: impl IntoIterator<Item = RtmrSet>) -> Self {
        self.tdx.allowed_rtmrs = Some(sets.into_iter().collect());
        self
    }

    /// Restricts accepted SEV-SNP measurements.
    pub fn with_snp_measurements(mut self, m: impl IntoIterator<Item = Digest48>) -> Self {
        self.snp.allowed_measurements = Some(m.into_iter().collect());
        self
    }

    /// Parses a policy from JSON.
    pub fn from_json(text: &str) -> Result<Self, AttestError> {
        serde_json::from_str(text).map_err(|e| AttestError::Config(format!("policy JSON: {e}")))
    }

    /// Whether evidence of this kind is acceptable at all (checked before spending time on
    /// verification).
    pub fn check_kind(&self, kind: EvidenceKind) -> Result<(), AttestError> {
        match kind {
            EvidenceKind::Simulated if !self.accept_simulated => {
                Err(AttestError::SimulatedEvidenceRefused)
            }
            EvidenceKind::Tdx if !self.accept_tdx => Err(AttestError::EvidenceKindRefused { kind }),
            EvidenceKind::SevSnp if !self.accept_sev_snp => {
                Err(AttestError::EvidenceKindRefused { kind })
            }
            EvidenceKind::Unattested if self.require_evidence => Err(AttestError::EvidenceMissing),
            _ => Ok(()),
        }
    }

    /// Applies the policy to verified evidence at time `now` (unix seconds).
    pub fn check(&self, evidence: &VerifiedEvidence, now: u64) -> Result<(), AttestError> {
        self.check_kind(evidence.kind)?;
        if now > evidence.valid_until {
            return Err(AttestError::CollateralStale {
                what: "verification result",
                expired_at: evidence.valid_until,
                now,
            });
        }
        match &evidence.measurements {
            Measurements::Tdx(m) => {
                if m.td_attributes.is_debug() {
                    return Err(AttestError::DebugTd {
                        attributes: format!("{:016x}", m.td_attributes.0),
                    });
                }
                if evidence.kind == EvidenceKind::Tdx {
                    self.check_tdx_tcb(m)?;
                }
                self.check_tdx_registers(m)?;
            }
            Measurements::SevSnp(m) => {
                if m.guest_policy.debug_allowed() {
                    return Err(AttestError::DebugSnpGuest {
                        policy: m.guest_policy.0,
                    });
                }
                self.check_snp(m)?;
            }
        }
        self.check_image_hash(&evidence.measurements)
    }

    fn check_tdx_tcb(&self, m: &TdxMeasurements) -> Result<(), AttestError> {
        let tcb = m
            .tcb
            .as_ref()
            .ok_or_else(|| AttestError::TcbRefused("TDX evidence without a TCB verdict".into()))?;
        if let Some(allowed) = &self.tdx.allowed_root_key_ids
            && !allowed.contains(&tcb.root_key_id)
        {
            return Err(AttestError::RootKeyIdNotAllowed {
                root_key_id: tcb.root_key_id.to_hex(),
            });
        }
        if let Some(allowed) = &self.tdx.allowed_tcb_statuses
            && !allowed.iter().any(|s| s.as_str() == tcb.status)
        {
            return Err(AttestError::TcbRefused(format!(
                "TDX TCB status {} (advisories {:?}) is not allowed",
                tcb.status, tcb.advisory_ids
            )));
        }
        if let Some(min) = self.tdx.min_tcb_evaluation_data_number
            && tcb.evaluation_data_number < min
        {
            return Err(AttestError::TcbRefused(format!(
                "TDX collateral has TCB evaluation data number {}, policy minimum {min}",
                tcb.evaluation_data_number
            )));
        }
        if let Some(min) = &self.tdx.min_tee_tcb_svn
            && let Some((i, (have, want))) = m
                .tee_tcb_svn
                .as_bytes()
                .iter()
                .zip(min.as_bytes())
                .enumerate()
                .find(|(_, (have, want))| have < want)
        {
            return Err(AttestError::TcbRefused(format!(
                "TEE TCB SVN component {i} is {have}, policy minimum {want}"
            )));
        }
        Ok(())
    }

    fn check_tdx_registers(&self, m: &TdxMeasurements) -> Result<(), AttestError> {
        if let Some(allowed) = &self.tdx.allowed_mrtd
            && !allowed.contains(&m.mrtd)
        {
            return Err(AttestError::MrtdNotAllowed {
                mrtd: m.mrtd.to_hex(),
            });
        }
        if let Some(sets) = &self.tdx.allowed_rtmrs
            && !sets.iter().any(|set| set.matches(&m.rtmrs))
        {
            return Err(AttestError::RtmrNotAllowed);
        }
        Ok(())
    }

    fn check_snp(&self, m: &SnpMeasurements) -> Result<(), AttestError> {
        if let Some(allowed) = &self.snp.allowed_measurements
            && !allowed.contains(&m.measurement)
        {
            return Err(AttestError::SnpMeasurementNotAllowed {
                measurement: m.measurement.to_hex(),
            });
        }
        if let Some(min) = &self.snp.min_tcb
            && !m.reported_tcb.meets(min)
        {
            return Err(AttestError::TcbRefused(format!(
                "SEV-SNP reported TCB {:?} is below the policy minimum {:?}",
                m.reported_tcb, min
            )));
        }
        Ok(())
    }

    fn check_image_hash(&self, m: &Measurements) -> Result<(), AttestError> {
        if let Some(allowed) = &self.allowed_image_hashes {
            let image_hash = m.image_hash();
            if !allowed.contains(&image_hash) {
                return Err(AttestError::ImageHashNotAllowed {
                    image_hash: image_hash.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Applies the claims rules (issue time) at `now`.
    pub fn check_claims(&self, claims: &UserClaims, now: u64) -> Result<(), AttestError> {
        let (Some(max_age_secs), Some(ext)) = (self.max_claims_age_secs, &claims.extended) else {
            return Ok(());
        };
        let too_new = ext.issued_at > now.saturating_add(CLAIMS_FUTURE_SKEW_SECS);
        let too_old = now.saturating_sub(ext.issued_at) > max_age_secs;
        if too_new || too_old {
            return Err(AttestError::ClaimsAge {
                issued_at: ext.issued_at,
                now,
                max_age_secs,
            });
        }
        Ok(())
    }
}

//! The measured identity of a TEE, extracted from verified evidence into one typed value that
//! policies, logs and peers can inspect without knowing the evidence format.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::digest::{Digest, Digest32, Digest48, ImageHash};

/// Measurements of a TEE, by technology.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "tee", rename_all = "snake_case")]
#[non_exhaustive]
// Both variants are a few hundred bytes of registers, kept by value so that measurements can
// be compared and serialized without indirection.
#[allow(clippy::large_enum_variant)]
pub enum Measurements {
    /// An Intel TDX trust domain (also the shape of simulated evidence).
    Tdx(TdxMeasurements),
    /// An AMD SEV-SNP guest.
    SevSnp(SnpMeasurements),
}

impl Measurements {
    /// The image hash (see [`TdxMeasurements::image_hash`] and
    /// [`SnpMeasurements::image_hash`]).
    pub fn image_hash(&self) -> ImageHash {
        match self {
            Self::Tdx(m) => m.image_hash(),
            Self::SevSnp(m) => m.image_hash(),
        }
    }

    /// Whether the TEE can be inspected by its host (debug TD or debug-allowed SNP guest).
    pub fn is_debug(&self) -> bool {
        match self {
            Self::Tdx(m) => m.td_attributes.is_debug(),
            Self::SevSnp(m) => m.guest_policy.debug_allowed(),
        }
    }
}

/// The TD attributes field of a TDX report (64 bits, little-endian in the report).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TdAttributes(pub u64);

impl TdAttributes {
    /// Bit 0: the TD is under debug (host can read and write its state).
    pub const DEBUG: u64 = 1 << 0;
    /// Bits 0..=7 are the "TD under debug" group: any of them lets the host observe the TD.
    pub const TUD_MASK: u64 = 0xff;
    /// Bit 28: EPT violations are not converted to #VE (required by DCAP verification).
    pub const SEPT_VE_DISABLE: u64 = 1 << 28;
    /// Bit 29: the TD may be migrated.
    pub const MIGRATABLE: u64 = 1 << 29;

    /// From the 8 raw report bytes.
    pub fn from_report_bytes(bytes: [u8; 8]) -> Self {
        Self(u64::from_le_bytes(bytes))
    }

    /// The 8 raw report bytes.
    pub fn to_report_bytes(self) -> [u8; 8] {
        self.0.to_le_bytes()
    }

    /// True when any TUD bit is set (debug or off-TD profiling).
    pub fn is_debug(self) -> bool {
        self.0 & Self::TUD_MASK != 0
    }
}

/// TDX measurements: the registers of the TD report plus the TCB verdict from collateral.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TdxMeasurements {
    /// Build-time measurement of the initial TD contents (firmware).
    pub mrtd: Digest48,
    /// Runtime-extendable registers RTMR0..RTMR3 (firmware config, kernel, cmdline/initrd,
    /// application).
    pub rtmrs: [Digest48; 4],
    /// Software-defined configuration id set by the host at TD creation.
    pub mrconfigid: Digest48,
    /// Software-defined owner id.
    pub mrowner: Digest48,
    /// Software-defined owner configuration.
    pub mrownerconfig: Digest48,
    /// TD attributes (debug bit and friends).
    pub td_attributes: TdAttributes,
    /// Extended features allowed (XFAM).
    pub xfam: u64,
    /// TEE TCB SVN of the TDX module and platform.
    pub tee_tcb_svn: Digest<16>,
    /// Measurement of the TDX module.
    pub mrseam: Digest48,
    /// DCAP's TCB verdict; `None` for simulated or unverified quotes.
    pub tcb: Option<TdxTcbVerdict>,
}

impl TdxMeasurements {
    /// SHA-256 over the 448 bytes `MRTD ‖ MRCONFIGID ‖ MROWNER ‖ MROWNERCONFIG ‖ RTMR0 ‖ RTMR1
    /// ‖ RTMR2 ‖ RTMR3 ‖ 64 zero bytes` (report data excluded, so it names the code, not the
    /// instance).
    pub fn image_hash(&self) -> ImageHash {
        let mut hasher = Sha256::new();
        hasher.update(self.mrtd.as_bytes());
        hasher.update(self.mrconfigid.as_bytes());
        hasher.update(self.mrowner.as_bytes());
        hasher.update(self.mrownerconfig.as_bytes());
        for rtmr in &self.rtmrs {
            hasher.update(rtmr.as_bytes());
        }
        hasher.update([0u8; 64]);
        ImageHash(Digest32::from(<[u8; 32]>::from(hasher.finalize())))
    }
}

/// What DCAP verification concluded about the platform TCB of a TDX quote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TdxTcbVerdict {
    /// Intel TCB status, e.g. `UpToDate`, `SWHardeningNeeded`, `OutOfDate`.
    pub status: String,
    /// Intel security advisories that apply.
    pub advisory_ids: Vec<String>,
    /// Platform family (FMSPC).
    pub fmspc: Digest<6>,
    /// SHA-384 of Intel's root CA public key that anchored the verification.
    pub root_key_id: Digest48,
    /// Earliest expiry among the collateral items and certificates used (unix seconds).
    pub collateral_expires_at: u64,
    /// Intel's TCB evaluation data number of the collateral used (the lower of TCB info's and
    /// QE identity's): which TCB recovery the verdict reflects.
    #[serde(default)]
    pub evaluation_data_number: u32,
}

/// An SEV-SNP guest policy (64 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SnpGuestPolicy(pub u64);

impl SnpGuestPolicy {
    /// Bit 19: the hypervisor may debug the guest.
    pub const DEBUG: u64 = 1 << 19;
    /// Bit 18: a migration agent may be associated.
    pub const MIGRATE_MA: u64 = 1 << 18;
    /// Bit 16: SMT allowed.
    pub const SMT: u64 = 1 << 16;

    /// Whether debugging is allowed.
    pub fn debug_allowed(self) -> bool {
        self.0 & Self::DEBUG != 0
    }
}

/// One SEV-SNP TCB version (security version numbers of the firmware components).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct SnpTcb {
    /// Bootloader SVN.
    pub bootloader: u8,
    /// PSP OS (TEE) SVN.
    pub tee: u8,
    /// SNP firmware SVN.
    pub snp: u8,
    /// CPU microcode SVN.
    pub microcode: u8,
    /// FMC SVN (Turin and later).
    pub fmc: Option<u8>,
}

impl SnpTcb {
    /// Whether every component of `self` is at least the one in `floor`.
    pub fn meets(&self, floor: &SnpTcb) -> bool {
        self.bootloader >= floor.bootloader
            && self.tee >= floor.tee
            && self.snp >= floor.snp
            && self.microcode >= floor.microcode
            && match (self.fmc, floor.fmc) {
                (_, None) => true,
                (Some(have), Some(need)) => have >= need,
                (None, Some(_)) => false,
            }
    }
}

/// SEV-SNP measurements from a verified attestation report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnpMeasurements {
    /// Launch measurement of the guest.
    pub measurement: Digest48,
    /// Data supplied by the host at launch.
    pub host_data: Digest32,
    /// Family id from the ID block.
    pub family_id: Digest<16>,
    /// Image id from the ID block.
    pub image_id: Digest<16>,
    /// SHA-384 of the ID key that signed the ID block (zero if none).
    pub id_key_digest: Digest48,
    /// SHA-384 of the author key (zero if none).
    pub author_key_digest: Digest48,
    /// Guest policy (debug bit and friends).
    pub guest_policy: SnpGuestPolicy,
    /// VM privilege level the report was requested from.
    pub vmpl: u32,
    /// Guest SVN from the ID block.
    pub guest_svn: u32,
    /// Attestation report format version.
    pub report_version: u32,
    /// TCB the VCEK was derived for.
    pub reported_tcb: SnpTcb,
    /// TCB currently running.
    pub current_tcb: SnpTcb,
    /// TCB committed (anti-rollback).
    pub committed_tcb: SnpTcb,
    /// TCB at guest launch.
    pub launch_tcb: SnpTcb,
    /// Chip identifier (zero when masked).
    pub chip_id: Digest<64>,
    /// Platform information flags (SMT, TSME, ...).
    pub platform_info: u64,
}

impl SnpMeasurements {
    /// SHA-256 over the 112 bytes `MEASUREMENT ‖ HOST_DATA ‖ FAMILY_ID ‖ IMAGE_ID`.
    pub fn image_hash(&self) -> ImageHash {
        let mut hasher = Sha256::new();
        hasher.update(self.measurement.as_bytes());
        hasher.update(self.host_data.as_bytes());
        hasher.update(self.family_id.as_bytes());
        hasher.update(self.image_id.as_bytes());
        ImageHash(Digest32::from(<[u8; 32]>::from(hasher.finalize())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tdx() -> TdxMeasurements {
        TdxMeasurements {
            mrtd: Digest([1; 48]),
            rtmrs: [
                Digest([5; 48]),
                Digest([6; 48]),
                Digest([7; 48]),
                Digest([8; 48]),
            ],
            mrconfigid: Digest([2; 48]),
            mrowner: Digest([3; 48]),
            mrownerconfig: Digest([4; 48]),
            td_attributes: TdAttributes(TdAttributes::SEPT_VE_DISABLE),
            xfam: 0,
            tee_tcb_svn: Digest::ZERO,
            mrseam: Digest::ZERO,
            tcb: None,
        }
    }

    #[test]
    fn tdx_image_hash_is_sha256_of_the_448_byte_layout() {
        let mut preimage = Vec::new();
        for b in 1u8..=8 {
            preimage.extend_from_slice(&[b; 48]);
        }
        preimage.extend_from_slice(&[0u8; 64]);
        assert_eq!(preimage.len(), 448);
        let expected: [u8; 32] = Sha256::digest(&preimage).into();
        assert_eq!(tdx().image_hash().as_bytes(), &expected);
    }

    #[test]
    fn image_hash_ignores_attributes_and_tcb() {
        let mut other = tdx();
        other.td_attributes = TdAttributes(1);
        other.tee_tcb_svn = Digest([9; 16]);
        assert_eq!(other.image_hash(), tdx().image_hash());
        other.rtmrs[3] = Digest([0; 48]);
        assert_ne!(other.image_hash(), tdx().image_hash());
    }

    #[test]
    fn debug_bits() {
        assert!(!TdAttributes(TdAttributes::SEPT_VE_DISABLE).is_debug());
        assert!(TdAttributes(TdAttributes::DEBUG).is_debug());
        assert!(TdAttributes(0x10).is_debug());
        assert!(SnpGuestPolicy(0x30000 | SnpGuestPolicy::DEBUG).debug_allowed());
        assert!(!SnpGuestPolicy(0x30000).debug_allowed());
    }

    #[test]
    fn snp_tcb_floor() {
        let have = SnpTcb {
            bootloader: 3,
            tee: 0,
            snp: 8,
            microcode: 115,
            fmc: None,
        };
        assert!(have.meets(&SnpTcb::default()));
        assert!(have.meets(&have));
        assert!(!have.meets(&SnpTcb { snp: 9, ..have }));
        assert!(!have.meets(&SnpTcb {
            fmc: Some(1),
            ..have
        }));
    }
}

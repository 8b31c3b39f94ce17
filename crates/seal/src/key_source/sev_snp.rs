//! AMD SEV-SNP sealing keys: the guest asks the AMD secure processor for a derived key
//! (`MSG_KEY_REQ` through `/dev/sev-guest`, via the `sev` crate's guest firmware API), which only
//! this chip can compute and which changes with the guest fields the request selects, such as
//! the launch measurement and the guest policy.
//!
//! The hardware key has no label, so [`SevSnpKeySource`] mixes the purpose in with HKDF
//! ([`super::mix_purpose`]); one hardware request gives one purpose's key.
//!
//! What to select ([`SnpKeyPolicy::default`]): the **measurement** (a different guest image,
//! kernel or command line derives another key) and the **guest policy** (a guest launched with,
//! for instance, debugging allowed derives another key), rooted in the chip-unique VCEK, at VMPL
//! 0. Left out by default, each for a reason:
//!
//! * the image and family ids come from the ID block the launch was signed with; with the
//!   measurement already selected they add nothing, and without an ID block they are zero;
//! * the guest SVN and the TCB version would make keys change when the image's security version
//!   or the platform firmware is updated, so everything sealed would be lost at each update
//!   unless re-sealed beforehand; select them only with such a migration plan;
//! * the VMRK root key is the one shared with a migration agent, which this project does not use.
//!
//! A guest that runs at a VMPL other than 0 (under an SVSM) must set [`SnpKeyPolicy::vmpl`] to
//! its own level or higher; the secure processor refuses a lower one.

use core::fmt;
#[cfg(target_os = "linux")]
use std::sync::Mutex;

use crate::error::{Result, SealError};
use crate::key_source::{DerivedKey, KeyPurpose, KeySource, KeySourceKind, mix_purpose};

/// Where the SEV-SNP guest driver exposes the secure processor.
pub const SEV_GUEST_DEVICE: &str = "/dev/sev-guest";

/// Which root key the secure processor derives from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SnpRootKey {
    /// The chip-unique Versioned Chip Endorsement Key (the usual choice).
    Vcek,
    /// The VM Root Key, shared with a migration agent.
    Vmrk,
}

/// Guest fields mixed into the derived key (the request's `GUEST_FIELD_SELECT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(clippy::struct_excessive_bools)] // one flag per bit of the hardware field
pub struct SnpKeyFields {
    /// The guest policy (bit 0).
    pub guest_policy: bool,
    /// The image id from the ID block (bit 1).
    pub image_id: bool,
    /// The family id from the ID block (bit 2).
    pub family_id: bool,
    /// The launch measurement (bit 3).
    pub measurement: bool,
    /// The guest SVN given in the request (bit 4).
    pub guest_svn: bool,
    /// The TCB version given in the request (bit 5).
    pub tcb_version: bool,
    /// The launch mitigation vector given in the request (bit 6; message version 2 only).
    pub launch_mit_vector: bool,
}

impl SnpKeyFields {
    /// The `GUEST_FIELD_SELECT` bit field.
    #[must_use]
    pub const fn bits(self) -> u64 {
        (self.guest_policy as u64)
            | (self.image_id as u64) << 1
            | (self.family_id as u64) << 2
            | (self.measurement as u64) << 3
            | (self.guest_svn as u64) << 4
            | (self.tcb_version as u64) << 5
            | (self.launch_mit_vector as u64) << 6
    }
}

/// Everything a derived-key request carries besides the purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SnpKeyPolicy {
    /// Root key to derive from.
    pub root_key: SnpRootKey,
    /// Guest fields mixed into the key.
    pub fields: SnpKeyFields,
    /// VMPL mixed into the key; must be at least the guest's current VMPL.
    pub vmpl: u32,
    /// Guest SVN mixed in when [`SnpKeyFields::guest_svn`] is set; at most the launch SVN.
    pub guest_svn: u32,
    /// TCB version mixed in when [`SnpKeyFields::tcb_version`] is set; at most the committed TCB.
    pub tcb_version: u64,
    /// Guest message version: 1 works on all SNP firmware; 2 (firmware 1.58 and later) is needed
    /// to mix in a launch mitigation vector.
    pub message_version: u32,
    /// Launch mitigation vector for message version 2.
    pub launch_mit_vector: Option<u64>,
}

impl Default for SnpKeyPolicy {
    /// VCEK root; measurement and guest policy selected; VMPL 0; message version 1.
    fn default() -> Self {
        Self {
            root_key: SnpRootKey::Vcek,
            fields: SnpKeyFields {
                guest_policy: true,
                image_id: false,
                family_id: false,
                measurement: true,
                guest_svn: false,
                tcb_version: false,
                launch_mit_vector: false,
            },
            vmpl: 0,
            guest_svn: 0,
            tcb_version: 0,
            message_version: 1,
            launch_mit_vector: None,
        }
    }
}

impl SnpKeyPolicy {
    /// Checks that the request can be expressed: VMPL 0 to 3, message version 1 or 2, and a
    /// launch mitigation vector exactly when message version 2 asks for one.
    ///
    /// # Errors
    /// [`SealError::KeySourceConfig`] naming the problem.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason| {
            Err(SealError::KeySourceConfig {
                kind: KeySourceKind::SevSnp,
                reason,
            })
        };
        if self.vmpl > 3 {
            return bad("VMPL must be 0 to 3");
        }
        match self.message_version {
            1 => {
                if self.fields.launch_mit_vector || self.launch_mit_vector.is_some() {
                    return bad("a launch mitigation vector needs message version 2");
                }
            }
            2 => {
                if self.launch_mit_vector.is_none() {
                    return bad("message version 2 needs a launch mitigation vector");
                }
            }
            _ => return bad("message version must be 1 or 2"),
        }
        Ok(())
    }

    /// The `sev` crate's request structure for this policy.
    #[cfg(target_os = "linux")]
    fn to_request(self) -> sev::firmware::guest::DerivedKey {
        sev::firmware::guest::DerivedKey::new(
            self.root_key == SnpRootKey::Vmrk,
            sev::firmware::guest::GuestFieldSelect(self.fields.bits()),
            self.vmpl,
            self.guest_svn,
            self.tcb_version,
            self.launch_mit_vector,
        )
    }
}

/// Keys from the AMD SEV-SNP secure processor, one `MSG_KEY_REQ` per derivation.
pub struct SevSnpKeySource {
    #[cfg(target_os = "linux")]
    firmware: Mutex<sev::firmware::guest::Firmware>,
    policy: SnpKeyPolicy,
}

impl SevSnpKeySource {
    /// Opens `/dev/sev-guest` for requests with `policy`.
    ///
    /// # Errors
    /// [`SealError::KeySourceConfig`] for a policy [`SnpKeyPolicy::validate`] refuses;
    /// [`SealError::KeySourceAbsent`] when the device does not exist (not an SNP guest, or the
    /// `sev-guest` driver is not loaded; always on systems other than Linux);
    /// [`SealError::KeySourceIo`] when it cannot be opened (typically permission denied).
    pub fn open(policy: SnpKeyPolicy) -> Result<Self> {
        policy.validate()?;
        #[cfg(target_os = "linux")]
        {
            let firmware =
                sev::firmware::guest::Firmware::open().map_err(|e| io_error(&e, "open"))?;
            Ok(Self {
                firmware: Mutex::new(firmware),
                policy,
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = policy;
            Err(SealError::KeySourceAbsent {
                kind: KeySourceKind::SevSnp,
                endpoint: SEV_GUEST_DEVICE.to_owned(),
            })
        }
    }

    /// The policy requests are made with.
    #[must_use]
    pub fn policy(&self) -> SnpKeyPolicy {
        self.policy
    }

    /// The raw 32-byte key the secure processor derives for this policy (before the purpose is
    /// mixed in). Wiped on drop.
    #[cfg(target_os = "linux")]
    fn platform_key(&self) -> Result<zeroize::Zeroizing<[u8; 32]>> {
        // A poisoned lock only means another thread panicked mid-request; the device handle
        // itself holds no state between requests.
        let mut firmware = self
            .firmware
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        firmware
            .get_derived_key(Some(self.policy.message_version), self.policy.to_request())
            .map(zeroize::Zeroizing::new)
            .map_err(firmware_error)
    }
}

impl KeySource for SevSnpKeySource {
    fn kind(&self) -> KeySourceKind {
        KeySourceKind::SevSnp
    }

    fn is_simulated(&self) -> bool {
        false
    }

    fn derive_key(&self, purpose: KeyPurpose<'_>) -> Result<DerivedKey> {
        #[cfg(target_os = "linux")]
        {
            let platform_key = self.platform_key()?;
            mix_purpose(KeySourceKind::SevSnp, &platform_key, purpose)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (purpose, mix_purpose);
            Err(SealError::KeySourceAbsent {
                kind: KeySourceKind::SevSnp,
                endpoint: SEV_GUEST_DEVICE.to_owned(),
            })
        }
    }
}

impl fmt::Debug for SevSnpKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SevSnpKeySource")
            .field("device", &SEV_GUEST_DEVICE)
            .field("policy", &self.policy)
            .finish()
    }
}

/// Maps an I/O failure on the device: a missing device means "not an SNP guest".
#[cfg(target_os = "linux")]
fn io_error(error: &std::io::Error, operation: &'static str) -> SealError {
    // Linux errno values for a device node without a driver behind it.
    const ENXIO: i32 = 6;
    const ENODEV: i32 = 19;
    if error.kind() == std::io::ErrorKind::NotFound
        || matches!(error.raw_os_error(), Some(ENXIO | ENODEV))
    {
        return SealError::KeySourceAbsent {
            kind: KeySourceKind::SevSnp,
            endpoint: SEV_GUEST_DEVICE.to_owned(),
        };
    }
    SealError::KeySourceIo {
        kind: KeySourceKind::SevSnp,
        endpoint: SEV_GUEST_DEVICE.to_owned(),
        operation,
        error: error.kind(),
    }
}

/// Maps the `sev` crate's error for a derived-key request.
#[cfg(target_os = "linux")]
fn firmware_error(error: sev::error::UserApiError) -> SealError {
    use sev::error::UserApiError;
    match error {
        UserApiError::IOError(e) => SealError::KeySourceIo {
            kind: KeySourceKind::SevSnp,
            endpoint: SEV_GUEST_DEVICE.to_owned(),
            operation: "MSG_KEY_REQ",
            error: e.kind(),
        },
        other => SealError::KeySourceRefused {
            kind: KeySourceKind::SevSnp,
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn default_policy_selects_measurement_and_guest_policy() {
        let policy = SnpKeyPolicy::default();
        assert_eq!(policy.fields.bits(), 0b1001);
        assert_eq!(policy.root_key, SnpRootKey::Vcek);
        policy.validate().unwrap();
    }

    #[test]
    fn every_field_has_its_own_bit() {
        let none = SnpKeyFields {
            guest_policy: false,
            image_id: false,
            family_id: false,
            measurement: false,
            guest_svn: false,
            tcb_version: false,
            launch_mit_vector: false,
        };
        let all = [
            (
                SnpKeyFields {
                    guest_policy: true,
                    ..none
                },
                1 << 0,
            ),
            (
                SnpKeyFields {
                    image_id: true,
                    ..none
                },
                1 << 1,
            ),
            (
                SnpKeyFields {
                    family_id: true,
                    ..none
                },
                1 << 2,
            ),
            (
                SnpKeyFields {
                    measurement: true,
                    ..none
                },
                1 << 3,
            ),
            (
                SnpKeyFields {
                    guest_svn: true,
                    ..none
                },
                1 << 4,
            ),
            (
                SnpKeyFields {
                    tcb_version: true,
                    ..none
                },
                1 << 5,
            ),
            (
                SnpKeyFields {
                    launch_mit_vector: true,
                    ..none
                },
                1 << 6,
            ),
        ];
        for (fields, bit) in all {
            assert_eq!(fields.bits(), bit, "{fields:?}");
        }
        assert_eq!(none.bits(), 0);
    }

    #[test]
    fn inexpressible_policies_are_refused() {
        let config_error = |p: SnpKeyPolicy| match p.validate() {
            Err(SealError::KeySourceConfig {
                kind: KeySourceKind::SevSnp,
                reason,
            }) => reason,
            other => panic!("expected a configuration error, got {other:?}"),
        };
        let d = SnpKeyPolicy::default();
        assert!(config_error(SnpKeyPolicy { vmpl: 4, ..d }).contains("VMPL"));
        assert!(
            config_error(SnpKeyPolicy {
                launch_mit_vector: Some(1),
                ..d
            })
            .contains("version 2")
        );
        assert!(
            config_error(SnpKeyPolicy {
                message_version: 2,
                ..d
            })
            .contains("mitigation vector")
        );
        SnpKeyPolicy {
            message_version: 2,
            launch_mit_vector: Some(0),
            ..d
        }
        .validate()
        .unwrap();
        assert!(
            config_error(SnpKeyPolicy {
                message_version: 3,
                ..d
            })
            .contains("1 or 2")
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn request_carries_the_policy() {
        let p = SnpKeyPolicy {
            root_key: SnpRootKey::Vmrk,
            vmpl: 2,
            guest_svn: 7,
            tcb_version: 0x1122,
            ..SnpKeyPolicy::default()
        };
        let request = p.to_request();
        assert_eq!(request.get_root_key_select(), 1);
        assert_eq!(request.guest_field_select.0, 0b1001);
        assert_eq!(request.vmpl, 2);
        assert_eq!(request.guest_svn, 7);
        assert_eq!(request.tcb_version, 0x1122);
        assert_eq!(request.launch_mit_vector, None);
    }
}

//! Producing evidence for given report data: the seam between RA-TLS certificate issuance and
//! the TEE (configfs-tsm inside a TDX or SEV-SNP guest, or the simulated attester in local
//! mode).

use std::fmt;

use crate::error::AttestError;
use crate::evidence::{Evidence, EvidenceKind, SimulatedEvidence, simulated_measurements};
use crate::measurements::TdxMeasurements;

/// Something that can make the local TEE vouch for 64 bytes of report data.
pub trait Attester: Send + Sync + fmt::Debug {
    /// The kind of evidence produced.
    fn kind(&self) -> EvidenceKind;

    /// Encoded evidence (the content of the RA-TLS evidence extension) binding `report_data`.
    fn attest(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, AttestError>;
}

/// Makes SIMULATED evidence: no TEE is involved and the result proves nothing. For local mode
/// and tests; production policies refuse it.
#[derive(Clone)]
pub struct SimulatedAttester {
    measurements: TdxMeasurements,
}

impl fmt::Debug for SimulatedAttester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulatedAttester")
            .field("image_hash", &self.measurements.image_hash())
            .finish_non_exhaustive()
    }
}

impl Default for SimulatedAttester {
    fn default() -> Self {
        Self::new()
    }
}

impl SimulatedAttester {
    /// A simulated attester with the default made-up measurements.
    pub fn new() -> Self {
        Self::with_measurements(simulated_measurements())
    }

    /// A simulated attester claiming `measurements` (to exercise allow-lists locally).
    pub fn with_measurements(measurements: TdxMeasurements) -> Self {
        tracing::warn!(
            image_hash = %measurements.image_hash(),
            "using SIMULATED attestation: this node runs in no TEE and production peers will refuse it"
        );
        Self { measurements }
    }

    /// The measurements it claims.
    pub fn measurements(&self) -> &TdxMeasurements {
        &self.measurements
    }
}

impl Attester for SimulatedAttester {
    fn kind(&self) -> EvidenceKind {
        EvidenceKind::Simulated
    }

    fn attest(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, AttestError> {
        let mut evidence = SimulatedEvidence::new(*report_data);
        evidence.measurements = self.measurements.clone();
        Ok(Evidence::Simulated(evidence).encode())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn simulated_attester_binds_report_data() {
        let attester = SimulatedAttester::new();
        let bytes = attester.attest(&[4; 64]).unwrap();
        let Evidence::Simulated(sim) = Evidence::decode(&bytes).unwrap() else {
            panic!("not simulated");
        };
        assert_eq!(sim.report_data, [4; 64]);
        assert_eq!(&sim.measurements, attester.measurements());
        assert_eq!(attester.kind(), EvidenceKind::Simulated);
    }
}

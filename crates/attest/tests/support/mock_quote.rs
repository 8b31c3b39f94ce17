//! A mock TDX v4 quote builder for tests that need chosen measurements. The quote has the
//! real layout (header, TD report, ECDSA-P256 signature by an attestation key) but the key is
//! a test key and there is no PCK chain, so DCAP verification can never accept it. It is
//! verified only by `verify_mock_quote` below, a test-only path that pins the test key.

use cocoon_attest::digest::{Digest, Digest48};
use cocoon_attest::measurements::{Measurements, TdxTcbVerdict};
use cocoon_attest::tdx::UnverifiedTdxQuote;
use cocoon_attest::{AttestError, EvidenceKind, VerifiedEvidence};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};

/// Root key id the mock path reports: not Intel's, so production policies refuse it.
pub const MOCK_ROOT_KEY_ID: Digest48 = Digest([0x77; 48]);

/// The fields of the TD report to put into a mock quote.
#[derive(Clone, Debug)]
pub struct MockTdReport {
    pub tee_tcb_svn: [u8; 16],
    pub mr_seam: [u8; 48],
    pub td_attributes: [u8; 8],
    pub xfam: [u8; 8],
    pub mr_td: [u8; 48],
    pub mr_config_id: [u8; 48],
    pub mr_owner: [u8; 48],
    pub mr_owner_config: [u8; 48],
    pub rtmr: [[u8; 48]; 4],
    pub report_data: [u8; 64],
}

impl Default for MockTdReport {
    fn default() -> Self {
        Self {
            tee_tcb_svn: [3; 16],
            mr_seam: [0x5e; 48],
            // SEPT_VE_DISABLE set, no debug bits.
            td_attributes: (1u64 << 28).to_le_bytes(),
            xfam: 0xe7u64.to_le_bytes(),
            mr_td: [0x11; 48],
            mr_config_id: [0; 48],
            mr_owner: [0; 48],
            mr_owner_config: [0; 48],
            rtmr: [[0x21; 48], [0x22; 48], [0x23; 48], [0x24; 48]],
            report_data: [0; 64],
        }
    }
}

/// A test attestation key.
pub struct MockAttestationKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl MockAttestationKey {
    pub fn generate() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Self { pair, rng }
    }

    /// x ‖ y of the public key, as carried in a quote.
    pub fn public_xy(&self) -> [u8; 64] {
        let public = self.pair.public_key().as_ref();
        public[1..65].try_into().unwrap()
    }

    /// Builds a signed v4 quote around `report`.
    pub fn quote(&self, report: &MockTdReport) -> Vec<u8> {
        let mut q = Vec::with_capacity(1100);
        // Header (48 bytes).
        q.extend_from_slice(&4u16.to_le_bytes()); // version
        q.extend_from_slice(&2u16.to_le_bytes()); // ECDSA-256 with P-256
        q.extend_from_slice(&0x81u32.to_le_bytes()); // TDX
        q.extend_from_slice(&0u16.to_le_bytes()); // QE SVN
        q.extend_from_slice(&0u16.to_le_bytes()); // PCE SVN
        q.extend_from_slice(&hex::decode("939a7233f79c4ca9940a0db3957f0607").unwrap());
        q.extend_from_slice(&[0u8; 20]); // user data
        // TD report 1.0 (584 bytes).
        q.extend_from_slice(&report.tee_tcb_svn);
        q.extend_from_slice(&report.mr_seam);
        q.extend_from_slice(&[0u8; 48]); // MRSIGNERSEAM
        q.extend_from_slice(&[0u8; 8]); // SEAMATTRIBUTES
        q.extend_from_slice(&report.td_attributes);
        q.extend_from_slice(&report.xfam);
        q.extend_from_slice(&report.mr_td);
        q.extend_from_slice(&report.mr_config_id);
        q.extend_from_slice(&report.mr_owner);
        q.extend_from_slice(&report.mr_owner_config);
        for rtmr in &report.rtmr {
            q.extend_from_slice(rtmr);
        }
        q.extend_from_slice(&report.report_data);
        assert_eq!(q.len(), 48 + 584);
        let signature = self.pair.sign(&self.rng, &q).unwrap();
        // Certification data type 6: QE report certification data (no real QE, no PCK chain).
        let mut qe_cert = Vec::new();
        qe_cert.extend_from_slice(&[0u8; 384]); // QE report
        qe_cert.extend_from_slice(&[0u8; 64]); // QE report signature
        qe_cert.extend_from_slice(&0u16.to_le_bytes()); // QE auth data length
        qe_cert.extend_from_slice(&5u16.to_le_bytes()); // PCK chain type
        qe_cert.extend_from_slice(&0u32.to_le_bytes()); // empty chain
        let mut auth = Vec::new();
        auth.extend_from_slice(signature.as_ref());
        auth.extend_from_slice(&self.public_xy());
        auth.extend_from_slice(&6u16.to_le_bytes());
        auth.extend_from_slice(&(qe_cert.len() as u32).to_le_bytes());
        auth.extend_from_slice(&qe_cert);
        q.extend_from_slice(&(auth.len() as u32).to_le_bytes());
        q.extend_from_slice(&auth);
        q
    }
}

/// Test-only verification of a mock quote: structure and signature through the library's
/// parser, then a pinned test key instead of Intel's chain. The TCB verdict is made up and
/// names [`MOCK_ROOT_KEY_ID`].
pub fn verify_mock_quote(
    quote: &[u8],
    key: &MockAttestationKey,
) -> Result<VerifiedEvidence, AttestError> {
    let parsed = UnverifiedTdxQuote::parse(quote)?;
    parsed.verify_signature()?;
    assert_eq!(
        parsed.attestation_key(),
        key.public_xy(),
        "not our mock key"
    );
    let mut measurements = parsed.measurements();
    measurements.tcb = Some(TdxTcbVerdict {
        status: "UpToDate".into(),
        advisory_ids: vec![],
        fmspc: Digest([0; 6]),
        root_key_id: MOCK_ROOT_KEY_ID,
        collateral_expires_at: u64::MAX,
        evaluation_data_number: u32::MAX,
    });
    Ok(VerifiedEvidence {
        kind: EvidenceKind::Tdx,
        report_data: parsed.report_data(),
        measurements: Measurements::Tdx(measurements),
        valid_until: u64::MAX,
    })
}

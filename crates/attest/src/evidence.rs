//! The bytes a TEE presents as proof (the content of the RA-TLS evidence extension) and their
//! decoding. Three shapes are accepted:
//!
//! * a **raw TDX quote** (reference COCOON format; collateral comes from the verifier's
//!   [`CollateralProvider`](crate::tdx::CollateralProvider));
//! * exactly **64 bytes** of report data (the reference `fake_tdx` "quote", decoded as
//!   simulated evidence);
//! * our **envelope**: `"CCEV" ‖ version=1 ‖ kind ‖ fields`, which can carry DCAP collateral
//!   with a quote, the VCEK with an SEV-SNP report, or simulated measurements. Length fields
//!   are u32 little-endian; trailing bytes are refused.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha384};

use crate::digest::{Digest, Digest48};
use crate::error::AttestError;
use crate::measurements::{TdAttributes, TdxMeasurements};

/// Largest evidence we are willing to look at (quote + collateral fit well within it).
pub const MAX_EVIDENCE_LEN: usize = 128 * 1024;
/// Magic that starts our evidence envelope.
pub const ENVELOPE_MAGIC: [u8; 4] = *b"CCEV";
/// Envelope format version.
pub const ENVELOPE_VERSION: u8 = 1;
/// Label inside simulated evidence, so that a hex dump says what it is.
pub const SIMULATED_LABEL: &[u8; 22] = b"SIMULATED-TEE-EVIDENCE";
/// Size of an SEV-SNP attestation report.
pub const SNP_REPORT_LEN: usize = 1184;

const KIND_TDX: u8 = 1;
const KIND_SEV_SNP: u8 = 2;
const KIND_SIMULATED: u8 = 0x7f;

/// Which technology produced (or failed to produce) evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EvidenceKind {
    /// Intel TDX quote.
    Tdx,
    /// AMD SEV-SNP attestation report.
    SevSnp,
    /// Simulated evidence: no TEE at all. Never accepted in production.
    Simulated,
    /// No evidence was checked (a policy that does not require any).
    Unattested,
}

impl EvidenceKind {
    /// A lowercase token for headers, JSON and metrics labels: `tdx`, `sev-snp`,
    /// `simulated` or `unattested`.
    pub fn as_token(self) -> &'static str {
        match self {
            Self::Tdx => "tdx",
            Self::SevSnp => "sev-snp",
            Self::Simulated => "simulated",
            Self::Unattested => "unattested",
        }
    }
}

impl fmt::Display for EvidenceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tdx => "tdx",
            Self::SevSnp => "sev-snp",
            Self::Simulated => "SIMULATED",
            Self::Unattested => "unattested",
        })
    }
}

/// A TDX quote, optionally with the DCAP collateral to verify it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TdxEvidence {
    /// Raw quote (v4 or v5).
    pub quote: Vec<u8>,
    /// Collateral fetched by the attester from a PCCS; it is signed by Intel, so an
    /// untrusted carrier cannot forge it.
    pub collateral: Option<dcap_qvl::QuoteCollateralV3>,
}

/// An SEV-SNP report with the VCEK that signed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnpEvidence {
    /// Raw 1184-byte attestation report.
    pub report: Vec<u8>,
    /// DER VCEK certificate of the reporting chip.
    pub vcek_der: Vec<u8>,
}

/// Evidence from no TEE at all, for local mode and tests: report data plus a made-up TDX
/// measurement set. It proves nothing and production policies refuse it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulatedEvidence {
    /// The report data the (pretend) TEE was asked to bind.
    pub report_data: [u8; 64],
    /// Made-up measurements (TDX-shaped so that allow-lists can be exercised locally).
    pub measurements: TdxMeasurements,
    /// True when decoded from the reference's 64-byte `fake_tdx` form.
    pub reference_fake: bool,
}

impl SimulatedEvidence {
    /// Simulated evidence with the default made-up measurements.
    pub fn new(report_data: [u8; 64]) -> Self {
        Self {
            report_data,
            measurements: simulated_measurements(),
            reference_fake: false,
        }
    }
}

/// The default measurement set of simulated evidence: each register is SHA-384 of
/// `"cocoon-rs SIMULATED <register>"`, attributes are non-debug.
pub fn simulated_measurements() -> TdxMeasurements {
    fn reg(name: &str) -> Digest48 {
        let mut out = [0u8; 48];
        out.copy_from_slice(&Sha384::digest(format!("cocoon-rs SIMULATED {name}")));
        Digest(out)
    }
    TdxMeasurements {
        mrtd: reg("mrtd"),
        rtmrs: [reg("rtmr0"), reg("rtmr1"), reg("rtmr2"), reg("rtmr3")],
        mrconfigid: Digest::ZERO,
        mrowner: Digest::ZERO,
        mrownerconfig: Digest::ZERO,
        td_attributes: TdAttributes(TdAttributes::SEPT_VE_DISABLE),
        xfam: 0,
        tee_tcb_svn: Digest::ZERO,
        mrseam: reg("mrseam"),
        tcb: None,
    }
}

/// Decoded evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
// A decoded value lives for one verification; boxing the simulated variant would only add an
// allocation and an indirection for callers.
#[allow(clippy::large_enum_variant)]
pub enum Evidence {
    /// Intel TDX.
    Tdx(TdxEvidence),
    /// AMD SEV-SNP.
    SevSnp(SnpEvidence),
    /// No TEE.
    Simulated(SimulatedEvidence),
}

impl Evidence {
    /// Which technology this is.
    pub fn kind(&self) -> EvidenceKind {
        match self {
            Self::Tdx(_) => EvidenceKind::Tdx,
            Self::SevSnp(_) => EvidenceKind::SevSnp,
            Self::Simulated(_) => EvidenceKind::Simulated,
        }
    }

    /// The kind of encoded evidence, read from its first bytes without decoding the rest (so
    /// that a policy can refuse a kind before anything is parsed or verified).
    pub fn peek_kind(bytes: &[u8]) -> Result<EvidenceKind, AttestError> {
        if bytes.len() > MAX_EVIDENCE_LEN {
            return Err(AttestError::EvidenceTooLarge {
                len: bytes.len(),
                max: MAX_EVIDENCE_LEN,
            });
        }
        if bytes.len() == 64 {
            return Ok(EvidenceKind::Simulated);
        }
        if is_raw_tdx_quote(bytes) {
            return Ok(EvidenceKind::Tdx);
        }
        match bytes {
            [m0, m1, m2, m3, ENVELOPE_VERSION, kind, ..]
                if [*m0, *m1, *m2, *m3] == ENVELOPE_MAGIC =>
            {
                match *kind {
                    KIND_TDX => Ok(EvidenceKind::Tdx),
                    KIND_SEV_SNP => Ok(EvidenceKind::SevSnp),
                    KIND_SIMULATED => Ok(EvidenceKind::Simulated),
                    _ => Err(AttestError::EvidenceMalformed("unknown evidence kind")),
                }
            }
            _ => Err(AttestError::EvidenceMalformed(
                "neither a TDX quote, 64-byte fake report data, nor a CCEV envelope",
            )),
        }
    }

    /// Decodes any accepted shape (see the module documentation).
    pub fn decode(bytes: &[u8]) -> Result<Self, AttestError> {
        if bytes.len() > MAX_EVIDENCE_LEN {
            return Err(AttestError::EvidenceTooLarge {
                len: bytes.len(),
                max: MAX_EVIDENCE_LEN,
            });
        }
        if bytes.len() == 64 {
            let mut report_data = [0u8; 64];
            report_data.copy_from_slice(bytes);
            let mut measurements = simulated_measurements();
            // The reference fake carries no measurements at all: present zeros rather than
            // our made-up set so that nobody mistakes one for the other.
            measurements.mrtd = Digest::ZERO;
            measurements.rtmrs = [Digest::ZERO; 4];
            measurements.mrseam = Digest::ZERO;
            return Ok(Self::Simulated(SimulatedEvidence {
                report_data,
                measurements,
                reference_fake: true,
            }));
        }
        if is_raw_tdx_quote(bytes) {
            return Ok(Self::Tdx(TdxEvidence {
                quote: bytes.to_vec(),
                collateral: None,
            }));
        }
        let mut r = Reader(bytes);
        if r.take::<4>()? != ENVELOPE_MAGIC {
            return Err(AttestError::EvidenceMalformed(
                "neither a TDX quote, 64-byte fake report data, nor a CCEV envelope",
            ));
        }
        let [version] = r.take::<1>()?;
        if version != ENVELOPE_VERSION {
            return Err(AttestError::EvidenceMalformed("unknown envelope version"));
        }
        let [kind] = r.take::<1>()?;
        let evidence = match kind {
            KIND_TDX => {
                let quote = r.field()?.to_vec();
                if !is_raw_tdx_quote(&quote) {
                    return Err(AttestError::EvidenceMalformed(
                        "envelope TDX field is not a TDX quote",
                    ));
                }
                let collateral = match r.field()? {
                    [] => None,
                    json => Some(serde_json::from_slice(json).map_err(|e| {
                        AttestError::CollateralMalformed(format!("collateral JSON: {e}"))
                    })?),
                };
                Self::Tdx(TdxEvidence { quote, collateral })
            }
            KIND_SEV_SNP => {
                let report = r.field()?.to_vec();
                if report.len() != SNP_REPORT_LEN {
                    return Err(AttestError::EvidenceMalformed(
                        "SEV-SNP report must be 1184 bytes",
                    ));
                }
                let vcek_der = r.field()?.to_vec();
                Self::SevSnp(SnpEvidence { report, vcek_der })
            }
            KIND_SIMULATED => {
                if &r.take::<22>()? != SIMULATED_LABEL {
                    return Err(AttestError::EvidenceMalformed("simulated label missing"));
                }
                let report_data = r.take::<64>()?;
                let mut m = simulated_measurements();
                m.mrtd = Digest(r.take()?);
                for rtmr in &mut m.rtmrs {
                    *rtmr = Digest(r.take()?);
                }
                m.mrconfigid = Digest(r.take()?);
                m.mrowner = Digest(r.take()?);
                m.mrownerconfig = Digest(r.take()?);
                m.td_attributes = TdAttributes::from_report_bytes(r.take()?);
                m.xfam = u64::from_le_bytes(r.take()?);
                m.tee_tcb_svn = Digest(r.take()?);
                m.mrseam = Digest(r.take()?);
                Self::Simulated(SimulatedEvidence {
                    report_data,
                    measurements: m,
                    reference_fake: false,
                })
            }
            _ => return Err(AttestError::EvidenceMalformed("unknown evidence kind")),
        };
        if !r.0.is_empty() {
            return Err(AttestError::EvidenceMalformed(
                "trailing bytes after evidence",
            ));
        }
        Ok(evidence)
    }

    /// Encodes the evidence. A TDX quote without collateral is emitted raw (reference
    /// format); reference-fake simulated evidence as its 64 bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Tdx(TdxEvidence {
                quote,
                collateral: None,
            }) => quote.clone(),
            Self::Tdx(TdxEvidence {
                quote,
                collateral: Some(collateral),
            }) => {
                // Serializing plain strings and byte vectors cannot fail; an empty field
                // would only mean "no collateral" and be refused later as missing.
                let json = serde_json::to_vec(collateral).unwrap_or_default();
                let mut out = header(KIND_TDX);
                put_field(&mut out, quote);
                put_field(&mut out, &json);
                out
            }
            Self::SevSnp(SnpEvidence { report, vcek_der }) => {
                let mut out = header(KIND_SEV_SNP);
                put_field(&mut out, report);
                put_field(&mut out, vcek_der);
                out
            }
            Self::Simulated(sim) if sim.reference_fake => sim.report_data.to_vec(),
            Self::Simulated(sim) => {
                let m = &sim.measurements;
                let mut out = header(KIND_SIMULATED);
                out.extend_from_slice(SIMULATED_LABEL);
                out.extend_from_slice(&sim.report_data);
                out.extend_from_slice(m.mrtd.as_bytes());
                for rtmr in &m.rtmrs {
                    out.extend_from_slice(rtmr.as_bytes());
                }
                out.extend_from_slice(m.mrconfigid.as_bytes());
                out.extend_from_slice(m.mrowner.as_bytes());
                out.extend_from_slice(m.mrownerconfig.as_bytes());
                out.extend_from_slice(&m.td_attributes.to_report_bytes());
                out.extend_from_slice(&m.xfam.to_le_bytes());
                out.extend_from_slice(m.tee_tcb_svn.as_bytes());
                out.extend_from_slice(m.mrseam.as_bytes());
                out
            }
        }
    }
}

/// The smallest possible TDX quote: header, TD 1.0 report and the auth-data length.
pub const MIN_TDX_QUOTE_LEN: usize = 48 + 584 + 4;

/// Whether `bytes` starts like a TDX quote (version 4 or 5, ECDSA-P256 attestation key, TEE
/// type 0x81) and is long enough to be one.
pub fn is_raw_tdx_quote(bytes: &[u8]) -> bool {
    bytes.len() >= MIN_TDX_QUOTE_LEN && matches!(bytes, [4 | 5, 0, 2, 0, 0x81, 0, 0, 0, ..])
}

fn header(kind: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(&ENVELOPE_MAGIC);
    out.push(ENVELOPE_VERSION);
    out.push(kind);
    out
}

fn put_field(out: &mut Vec<u8>, field: &[u8]) {
    // Fields are bounded by MAX_EVIDENCE_LEN on decode; u32 always fits what we build.
    let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(field);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], AttestError> {
        if self.0.len() < N {
            return Err(AttestError::EvidenceMalformed("truncated"));
        }
        let (head, tail) = self.0.split_at(N);
        self.0 = tail;
        let mut out = [0u8; N];
        out.copy_from_slice(head);
        Ok(out)
    }

    fn field(&mut self) -> Result<&'a [u8], AttestError> {
        let len = u32::from_le_bytes(self.take()?) as usize;
        if self.0.len() < len {
            return Err(AttestError::EvidenceMalformed("field length past the end"));
        }
        let (head, tail) = self.0.split_at(len);
        self.0 = tail;
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn simulated_round_trip_keeps_measurements() {
        let mut sim = SimulatedEvidence::new([9u8; 64]);
        sim.measurements.rtmrs[2] = Digest([0x42; 48]);
        sim.measurements.td_attributes = TdAttributes(TdAttributes::DEBUG);
        let bytes = Evidence::Simulated(sim.clone()).encode();
        assert_eq!(&bytes[6..28], SIMULATED_LABEL);
        assert_eq!(Evidence::decode(&bytes).unwrap(), Evidence::Simulated(sim));
    }

    #[test]
    fn sixty_four_bytes_is_the_reference_fake() {
        let ev = Evidence::decode(&[3u8; 64]).unwrap();
        let Evidence::Simulated(sim) = &ev else {
            panic!("expected simulated, got {ev:?}");
        };
        assert!(sim.reference_fake);
        assert_eq!(sim.report_data, [3u8; 64]);
        assert_eq!(ev.kind(), EvidenceKind::Simulated);
        assert_eq!(ev.encode(), vec![3u8; 64]);
    }

    #[test]
    fn snp_envelope_round_trip_and_length_checks() {
        let ev = Evidence::SevSnp(SnpEvidence {
            report: vec![1; SNP_REPORT_LEN],
            vcek_der: vec![2; 10],
        });
        let bytes = ev.encode();
        assert_eq!(Evidence::decode(&bytes).unwrap(), ev);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            Evidence::decode(&trailing),
            Err(AttestError::EvidenceMalformed(_))
        ));
        assert!(Evidence::decode(&bytes[..bytes.len() - 1]).is_err());
        let short = Evidence::SevSnp(SnpEvidence {
            report: vec![1; 100],
            vcek_der: vec![],
        })
        .encode();
        assert!(Evidence::decode(&short).is_err());
    }

    #[test]
    fn refuses_garbage_and_oversize() {
        assert!(Evidence::decode(b"").is_err());
        assert!(Evidence::decode(b"hello world").is_err());
        assert!(matches!(
            Evidence::decode(&vec![0u8; MAX_EVIDENCE_LEN + 1]),
            Err(AttestError::EvidenceTooLarge { .. })
        ));
        let mut unknown_kind = header(9);
        unknown_kind.extend_from_slice(&[0; 8]);
        assert!(Evidence::decode(&unknown_kind).is_err());
    }

    #[test]
    fn peek_agrees_with_decode() {
        let samples = [
            Evidence::Simulated(SimulatedEvidence::new([1; 64])).encode(),
            Evidence::SevSnp(SnpEvidence {
                report: vec![0; SNP_REPORT_LEN],
                vcek_der: vec![1],
            })
            .encode(),
            vec![2u8; 64],
        ];
        for bytes in samples {
            assert_eq!(
                Evidence::peek_kind(&bytes).unwrap(),
                Evidence::decode(&bytes).unwrap().kind()
            );
        }
        assert!(Evidence::peek_kind(b"CCEV\x01\x09").is_err());
        assert!(Evidence::peek_kind(b"").is_err());
    }

    #[test]
    fn raw_quote_detection() {
        let mut q = vec![0u8; MIN_TDX_QUOTE_LEN];
        q[..8].copy_from_slice(&[4, 0, 2, 0, 0x81, 0, 0, 0]);
        assert!(is_raw_tdx_quote(&q));
        q[0] = 5;
        assert!(is_raw_tdx_quote(&q));
        assert!(!is_raw_tdx_quote(&q[..MIN_TDX_QUOTE_LEN - 1]));
        q[0] = 3;
        assert!(!is_raw_tdx_quote(&q));
    }
}

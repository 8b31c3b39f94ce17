//! AMD SEV-SNP attestation reports: parsing with `sev`, the ARK → ASK → VCEK chain against
//! AMD's built-in roots (Milan, Genoa, Turin), the binding between VCEK and report (chip id,
//! reported TCB), and the report signature checked over the raw signed bytes.

use p384::ecdsa::signature::Verifier as _;
use sev::certs::snp::{Certificate, Chain, Verifiable, builtin, ca};
use sev::firmware::guest::AttestationReport;
use sev::parser::ByteParser as _;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::digest::Digest;
use crate::error::AttestError;
use crate::evidence::{EvidenceKind, SNP_REPORT_LEN};
use crate::measurements::{Measurements, SnpGuestPolicy, SnpMeasurements, SnpTcb};
use crate::verifier::VerifiedEvidence;

/// Bytes of the report covered by the signature.
const SIGNED_LEN: usize = 0x2a0;
const SIG_R: std::ops::Range<usize> = 0x2a0..0x2a0 + 48;
const SIG_S: std::ops::Range<usize> = 0x2e8..0x2e8 + 48;
const SIG_ALGO_OFFSET: usize = 0x34;
const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;

const OID_HWID: &str = "1.3.6.1.4.1.3704.1.4";
const OID_TCB_BOOTLOADER: &str = "1.3.6.1.4.1.3704.1.3.1";
const OID_TCB_TEE: &str = "1.3.6.1.4.1.3704.1.3.2";
const OID_TCB_SNP: &str = "1.3.6.1.4.1.3704.1.3.3";
const OID_TCB_MICROCODE: &str = "1.3.6.1.4.1.3704.1.3.8";
const OID_TCB_FMC: &str = "1.3.6.1.4.1.3704.1.3.9";

/// AMD processor generations whose roots are built in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessorGeneration {
    /// EPYC 7003.
    Milan,
    /// EPYC 9004.
    Genoa,
    /// EPYC 9005.
    Turin,
}

impl ProcessorGeneration {
    const ALL: [Self; 3] = [Self::Milan, Self::Genoa, Self::Turin];

    fn ca_chain(self) -> std::io::Result<ca::Chain> {
        let (ark, ask) = match self {
            Self::Milan => (builtin::milan::ark()?, builtin::milan::ask()?),
            Self::Genoa => (builtin::genoa::ark()?, builtin::genoa::ask()?),
            Self::Turin => (builtin::turin::ark()?, builtin::turin::ask()?),
        };
        Ok(ca::Chain { ark, ask })
    }
}

/// Parses a report without checking anything cryptographic; for fuzzing and inspection.
pub fn parse_report(report: &[u8]) -> Result<SnpMeasurements, AttestError> {
    if report.len() != SNP_REPORT_LEN {
        return Err(AttestError::SnpReportMalformed(format!(
            "report is {} bytes, expected {SNP_REPORT_LEN}",
            report.len()
        )));
    }
    let parsed = AttestationReport::from_bytes(report)
        .map_err(|e| AttestError::SnpReportMalformed(e.to_string()))?;
    Ok(measurements_of(&parsed))
}

fn tcb_of(t: &sev::firmware::host::TcbVersion) -> SnpTcb {
    SnpTcb {
        bootloader: t.bootloader,
        tee: t.tee,
        snp: t.snp,
        microcode: t.microcode,
        fmc: t.fmc,
    }
}

fn measurements_of(r: &AttestationReport) -> SnpMeasurements {
    SnpMeasurements {
        measurement: Digest(r.measurement),
        host_data: Digest(r.host_data),
        family_id: Digest(r.family_id),
        image_id: Digest(r.image_id),
        id_key_digest: Digest(r.id_key_digest),
        author_key_digest: Digest(r.author_key_digest),
        guest_policy: SnpGuestPolicy(u64::from(r.policy)),
        vmpl: r.vmpl,
        guest_svn: r.guest_svn,
        report_version: r.version,
        reported_tcb: tcb_of(&r.reported_tcb),
        current_tcb: tcb_of(&r.current_tcb),
        committed_tcb: tcb_of(&r.committed_tcb),
        launch_tcb: tcb_of(&r.launch_tcb),
        chip_id: Digest(r.chip_id),
        platform_info: u64::from(r.plat_info),
    }
}

/// Verifies an SEV-SNP report signed by the given VCEK at time `now` (unix seconds).
pub fn verify_report(
    report: &[u8],
    vcek_der: &[u8],
    now: u64,
) -> Result<VerifiedEvidence, AttestError> {
    let measurements = parse_report(report)?;
    let sig_algo = u32::from_le_bytes(
        report[SIG_ALGO_OFFSET..SIG_ALGO_OFFSET + 4]
            .try_into()
            .map_err(|_| AttestError::SnpReportMalformed("signature algorithm".into()))?,
    );
    if sig_algo != SIG_ALGO_ECDSA_P384_SHA384 {
        return Err(AttestError::SnpReportMalformed(format!(
            "signature algorithm {sig_algo} is not ECDSA P-384 with SHA-384"
        )));
    }

    // The VCEK as X.509 (for validity and AMD extensions) and as `sev` sees it (for the chain).
    let (rest, vcek_x509) = X509Certificate::from_der(vcek_der)
        .map_err(|e| AttestError::SnpCertificate(format!("VCEK: {e}")))?;
    if !rest.is_empty() {
        return Err(AttestError::SnpCertificate(
            "VCEK: trailing bytes after the certificate".into(),
        ));
    }
    let mut valid_until = check_validity("VCEK", &vcek_x509, now)?;
    let vcek = Certificate::from_der(vcek_der)
        .map_err(|e| AttestError::SnpCertificate(format!("VCEK: {e}")))?;

    let mut generation = None;
    for candidate in ProcessorGeneration::ALL {
        let ca = candidate
            .ca_chain()
            .map_err(|e| AttestError::SnpChain(format!("built-in {candidate:?} roots: {e}")))?;
        let chain = Chain {
            ca,
            vek: vcek.clone(),
        };
        if (&chain).verify().is_ok() {
            for (name, cert) in [("ASK", &chain.ca.ask), ("ARK", &chain.ca.ark)] {
                let der = cert
                    .to_der()
                    .map_err(|e| AttestError::SnpCertificate(format!("{name}: {e}")))?;
                let (_, x509) = X509Certificate::from_der(&der)
                    .map_err(|e| AttestError::SnpCertificate(format!("{name}: {e}")))?;
                valid_until = valid_until.min(check_validity(name, &x509, now)?);
            }
            generation = Some(candidate);
            break;
        }
    }
    if generation.is_none() {
        return Err(AttestError::SnpChain(
            "VCEK is not signed by the Milan, Genoa or Turin ASK".into(),
        ));
    }

    check_vcek_binding(&vcek_x509, &measurements)?;

    let mut rs = [0u8; 96];
    rs[..48].copy_from_slice(&report[SIG_R]);
    rs[48..].copy_from_slice(&report[SIG_S]);
    // The report stores r and s little-endian; ECDSA wants big-endian scalars.
    rs[..48].reverse();
    rs[48..].reverse();
    let signature =
        p384::ecdsa::Signature::from_slice(&rs).map_err(|_| AttestError::SnpReportSignature)?;
    let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(vcek.public_key_sec1())
        .map_err(|e| AttestError::SnpCertificate(format!("VCEK public key: {e}")))?;
    key.verify(&report[..SIGNED_LEN], &signature)
        .map_err(|_| AttestError::SnpReportSignature)?;

    let mut report_data = [0u8; 64];
    report_data.copy_from_slice(&report[0x50..0x90]);
    Ok(VerifiedEvidence {
        kind: EvidenceKind::SevSnp,
        measurements: Measurements::SevSnp(measurements),
        report_data,
        valid_until,
    })
}

fn check_validity(name: &str, cert: &X509Certificate<'_>, now: u64) -> Result<u64, AttestError> {
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    let now_i = i64::try_from(now).unwrap_or(i64::MAX);
    if now_i < not_before {
        return Err(AttestError::SnpCertificate(format!(
            "{name} is not valid before {not_before} (now {now})"
        )));
    }
    if now_i > not_after {
        return Err(AttestError::SnpCertificate(format!(
            "{name} expired at {not_after} (now {now})"
        )));
    }
    Ok(u64::try_from(not_after).unwrap_or(0))
}

/// Checks that the VCEK was issued for this chip and for the TCB the report claims.
fn check_vcek_binding(
    vcek: &X509Certificate<'_>,
    report: &SnpMeasurements,
) -> Result<(), AttestError> {
    let ext = |oid: &str| {
        vcek.extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == oid)
            .map(|e| e.value)
    };
    if let Some(value) = ext(OID_HWID) {
        // AMD stores the hardware id as the raw extension value (64 bytes before Turin, 8
        // from Turin on); accept a DER OCTET STRING wrapping too.
        let hwid = match value.len() {
            8 | 64 => value,
            _ => der_octet_string(value)
                .ok_or_else(|| AttestError::SnpCertificate("VCEK hwID extension".into()))?,
        };
        let chip = report.chip_id.as_bytes();
        let masked = chip.iter().all(|&b| b == 0);
        if !masked {
            let matches = hwid.len() <= chip.len()
                && chip[..hwid.len()] == *hwid
                && chip[hwid.len()..].iter().all(|&b| b == 0);
            if !matches {
                return Err(AttestError::SnpVcekMismatch(
                    "VCEK hardware id differs from the report's chip id".into(),
                ));
            }
        }
    }
    let tcb = report.reported_tcb;
    let checks = [
        (OID_TCB_BOOTLOADER, Some(tcb.bootloader), "bootloader"),
        (OID_TCB_TEE, Some(tcb.tee), "TEE"),
        (OID_TCB_SNP, Some(tcb.snp), "SNP"),
        (OID_TCB_MICROCODE, Some(tcb.microcode), "microcode"),
        (OID_TCB_FMC, tcb.fmc, "FMC"),
    ];
    for (oid, have, name) in checks {
        let (Some(value), Some(have)) = (ext(oid), have) else {
            continue;
        };
        let want = der_small_uint(value)
            .ok_or_else(|| AttestError::SnpCertificate(format!("VCEK {name} SVN extension")))?;
        if want != u64::from(have) {
            return Err(AttestError::SnpVcekMismatch(format!(
                "VCEK {name} SVN {want} differs from the reported TCB {have}"
            )));
        }
    }
    Ok(())
}

/// DER length + value of a single TLV with the expected tag.
fn der_value(bytes: &[u8], tag: u8) -> Option<&[u8]> {
    let (&t, rest) = bytes.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81 => {
            let (&l, rest) = rest.split_first()?;
            (usize::from(l), rest)
        }
        0x82 => {
            let (l, rest) = rest.split_at_checked(2)?;
            (usize::from(u16::from_be_bytes([l[0], l[1]])), rest)
        }
        _ => return None,
    };
    (rest.len() == len).then_some(rest)
}

fn der_octet_string(bytes: &[u8]) -> Option<&[u8]> {
    der_value(bytes, 0x04)
}

fn der_small_uint(bytes: &[u8]) -> Option<u64> {
    let value = der_value(bytes, 0x02)?;
    if value.is_empty() || value.len() > 9 || value[0] & 0x80 != 0 {
        return None;
    }
    Some(value.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_helpers() {
        assert_eq!(der_small_uint(&[0x02, 0x01, 0x73]), Some(0x73));
        assert_eq!(der_small_uint(&[0x02, 0x02, 0x00, 0xd1]), Some(0xd1));
        assert_eq!(der_small_uint(&[0x02, 0x01, 0x80]), None);
        assert_eq!(der_small_uint(&[0x04, 0x01, 0x01]), None);
        assert_eq!(der_octet_string(&[0x04, 0x02, 9, 8]), Some(&[9u8, 8][..]));
        assert_eq!(der_octet_string(&[0x04, 0x03, 9, 8]), None);
        assert_eq!(der_octet_string(&[]), None);
    }

    #[test]
    fn wrong_length_is_malformed() {
        assert!(matches!(
            parse_report(&[0u8; 100]),
            Err(AttestError::SnpReportMalformed(_))
        ));
    }
}

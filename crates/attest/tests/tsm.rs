//! Evidence generation through configfs-tsm, against a fake configfs tree in a temporary
//! directory playing the kernel's part.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use cocoon_attest::evidence::Evidence;
use cocoon_attest::tsm::{ConfigfsTsm, TsmAttester, TsmEntry, vcek_from_cert_table};
use cocoon_attest::{AttestError, Attester, EvidenceKind, EvidenceVerifier};
use support::mock_quote::{MockAttestationKey, MockTdReport};
use support::*;

/// Populates an entry the way the kernel would after mkdir and a report request.
fn fake_kernel_fill(entry: &Path, provider: &str, outblob: &[u8], auxblob: Option<&[u8]>) {
    fs::write(entry.join("inblob"), b"").unwrap();
    fs::write(entry.join("provider"), format!("{provider}\n")).unwrap();
    fs::write(entry.join("generation"), "1\n").unwrap();
    fs::write(entry.join("outblob"), outblob).unwrap();
    if let Some(aux) = auxblob {
        fs::write(entry.join("auxblob"), aux).unwrap();
    }
}

fn entry_in(dir: &tempfile::TempDir) -> (ConfigfsTsm, TsmEntry) {
    let tsm = ConfigfsTsm::with_root(dir.path());
    let entry = tsm.create_entry().unwrap();
    assert!(entry.path().starts_with(dir.path()));
    assert!(entry.path().is_dir());
    (tsm, entry)
}

#[test]
fn missing_configfs_is_reported() {
    let tsm = ConfigfsTsm::with_root("/nonexistent/tsm/report");
    assert!(!tsm.is_available());
    let err = tsm.report(&[0; 64]).unwrap_err();
    assert!(matches!(err, AttestError::TsmUnavailable { .. }), "{err}");
}

#[test]
fn entry_without_attributes_is_not_written_into() {
    let dir = tempfile::tempdir().unwrap();
    let (_, entry) = entry_in(&dir);
    let err = entry.report(&[1; 64]).unwrap_err();
    assert!(
        matches!(err, AttestError::TsmIo { op: "open", .. }),
        "{err}"
    );
    assert!(!entry.path().join("inblob").exists(), "no file created");
}

#[test]
fn tdx_report_is_read_and_turned_into_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let (tsm, entry) = entry_in(&dir);
    let report_data = [0x3c; 64];
    let key = MockAttestationKey::generate();
    let quote = key.quote(&MockTdReport {
        report_data,
        ..MockTdReport::default()
    });
    fake_kernel_fill(entry.path(), "tdx_guest", &quote, None);

    let report = entry.report(&report_data).unwrap();
    assert_eq!(report.provider, "tdx_guest");
    assert_eq!(report.generation, 1);
    assert_eq!(report.outblob, quote);
    assert_eq!(report.auxblob, None);
    assert_eq!(fs::read(entry.path().join("inblob")).unwrap(), report_data);

    let attester = TsmAttester::for_provider(tsm, &report.provider).unwrap();
    assert_eq!(attester.kind(), EvidenceKind::Tdx);
    let evidence = attester
        .evidence_from_report(report.clone(), &report_data)
        .unwrap();
    assert_eq!(evidence, quote, "no collateral: the reference raw quote");
    assert!(matches!(
        Evidence::decode(&evidence).unwrap(),
        Evidence::Tdx(_)
    ));
    // A quote for other report data is refused.
    let err = attester.evidence_from_report(report, &[0; 64]).unwrap_err();
    assert!(matches!(err, AttestError::TsmMalformed(_)), "{err}");
}

fn cert_table(entries: &[([u8; 16], &[u8])]) -> Vec<u8> {
    let header = (entries.len() + 1) * 24;
    let mut table = Vec::new();
    let mut blobs = Vec::new();
    for (guid, blob) in entries {
        table.extend_from_slice(guid);
        table.extend_from_slice(&((header + blobs.len()) as u32).to_le_bytes());
        table.extend_from_slice(&(blob.len() as u32).to_le_bytes());
        blobs.extend_from_slice(blob);
    }
    table.extend_from_slice(&[0u8; 24]);
    table.extend_from_slice(&blobs);
    table
}

const ARK_GUID: [u8; 16] = [
    0xa4, 0x06, 0xb4, 0xc0, 0x03, 0xa8, 0x52, 0x49, 0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c, 0xd0, 0xae,
];
const VCEK_GUID: [u8; 16] = [
    0x8d, 0x75, 0xda, 0x63, 0x64, 0xe6, 0x64, 0x45, 0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd,
];

#[test]
fn snp_report_with_host_supplied_vcek_becomes_verifiable_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let (tsm, entry) = entry_in(&dir);
    let (report_bytes, vcek) = snp_sample();
    let report_data: [u8; 64] = report_bytes[0x50..0x90].try_into().unwrap();
    let table = cert_table(&[(ARK_GUID, b"not the vcek"), (VCEK_GUID, &vcek)]);
    fake_kernel_fill(entry.path(), "sev_guest", &report_bytes, Some(&table));

    let report = entry.report(&report_data).unwrap();
    let attester = TsmAttester::for_provider(tsm, &report.provider).unwrap();
    assert_eq!(attester.kind(), EvidenceKind::SevSnp);
    let evidence = attester.evidence_from_report(report, &report_data).unwrap();
    let verified = EvidenceVerifier::default()
        .verify(&evidence, SNP_SAMPLE_TIME)
        .unwrap();
    assert_eq!(verified.kind, EvidenceKind::SevSnp);
    assert_eq!(verified.report_data, report_data);

    // The node's certificate carries the host's VCEK in .102, in the reference's SNP layout.
    let key = cocoon_attest::ratls::TlsKeyPair::from_seed(&[3; 32]).unwrap();
    let der = cocoon_attest::ratls::cert::issue_certificate(
        &key,
        &evidence,
        b"claims",
        SNP_SAMPLE_TIME - 60,
        SNP_SAMPLE_TIME + 3600,
    )
    .unwrap();
    let parsed = cocoon_attest::ratls::cert::parse_certificate(&der, SNP_SAMPLE_TIME).unwrap();
    assert_eq!(
        parsed.layout,
        cocoon_attest::ratls::cert::CertificateLayout::SevSnp
    );
    let Evidence::SevSnp(snp) = Evidence::decode(parsed.evidence.as_deref().unwrap()).unwrap()
    else {
        panic!("not SEV-SNP evidence");
    };
    assert_eq!(snp.vcek_der, vcek);
    assert_eq!(snp.report, report_bytes);
}

#[test]
fn snp_without_any_vcek_is_refused_and_configured_vcek_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let (tsm, entry) = entry_in(&dir);
    let (report_bytes, vcek) = snp_sample();
    let report_data: [u8; 64] = report_bytes[0x50..0x90].try_into().unwrap();
    fake_kernel_fill(entry.path(), "sev_guest", &report_bytes, None);
    let report = entry.report(&report_data).unwrap();
    let attester = TsmAttester::for_provider(tsm.clone(), "sev_guest").unwrap();
    let err = attester
        .evidence_from_report(report.clone(), &report_data)
        .unwrap_err();
    assert!(matches!(err, AttestError::TsmMalformed(_)), "{err}");
    let attester = TsmAttester::for_provider(tsm, "sev_guest")
        .unwrap()
        .with_vcek(vcek);
    attester.evidence_from_report(report, &report_data).unwrap();
}

#[test]
fn unknown_provider_is_refused() {
    let err = TsmAttester::for_provider(ConfigfsTsm::with_root("/x"), "arm_cca_guest").unwrap_err();
    assert!(matches!(err, AttestError::TsmUnknownProvider(_)), "{err}");
}

#[test]
fn cert_table_parsing() {
    let table = cert_table(&[(ARK_GUID, b"ark"), (VCEK_GUID, b"vcek!")]);
    assert_eq!(
        vcek_from_cert_table(&table).unwrap(),
        Some(b"vcek!".to_vec())
    );
    let table = cert_table(&[(ARK_GUID, b"ark")]);
    assert_eq!(vcek_from_cert_table(&table).unwrap(), None);
    // No terminator.
    assert!(vcek_from_cert_table(&table[..24]).is_err());
    // Entry pointing past the end.
    let mut bad = cert_table(&[(VCEK_GUID, b"vcek")]);
    bad[20] = 0xff;
    assert!(vcek_from_cert_table(&bad).is_err());
}

#[test]
fn generation_change_during_the_read_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (_, entry) = entry_in(&dir);
    let path = entry.path().to_path_buf();
    fake_kernel_fill(&path, "tdx_guest", b"", None);
    // outblob becomes a FIFO: our read blocks until the fake kernel writes, and the fake
    // kernel bumps the generation (another writer) before answering.
    fs::remove_file(path.join("outblob")).unwrap();
    let status = Command::new("mkfifo")
        .arg(path.join("outblob"))
        .status()
        .expect("mkfifo");
    assert!(status.success());
    let kernel = std::thread::spawn(move || {
        let mut fifo = fs::OpenOptions::new()
            .write(true)
            .open(path.join("outblob"))
            .unwrap();
        fs::write(path.join("generation"), "2\n").unwrap();
        fifo.write_all(b"quote bytes").unwrap();
    });
    let err = entry.report(&[9; 64]).unwrap_err();
    kernel.join().unwrap();
    assert!(
        matches!(
            err,
            AttestError::TsmGenerationChanged {
                before: 1,
                after: 2
            }
        ),
        "{err}"
    );
}

//! Writes the seed inputs of the fuzz targets (`crates/attest/fuzz/seeds/<target>/`) from the
//! recorded evidence in `tests/data`: valid certificates, quotes, reports, evidence envelopes
//! and claims, so that fuzzing starts from inputs that reach deep into the parsers.
//!
//! Usage: `cargo run -p cocoon-attest --example fuzz_seeds -- crates/attest/fuzz/seeds`

use std::fs;
use std::path::{Path, PathBuf};

use cocoon_attest::digest::Digest32;
use cocoon_attest::evidence::{Evidence, SimulatedEvidence, SnpEvidence, TdxEvidence};
use cocoon_attest::ratls::{TlsKeyPair, issue_certificate};
use cocoon_attest::{AttestError, ExtendedClaims, UserClaims};

const TDX_TIME: u64 = 1_750_377_600;

fn data(name: &str) -> Result<Vec<u8>, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
}

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) -> Result<(), String> {
    let dir = dir.join(target);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    fs::write(dir.join(name), bytes).map_err(|e| format!("{name}: {e}"))
}

fn attest(e: AttestError) -> String {
    e.to_string()
}

fn main() -> Result<(), String> {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .ok_or("usage: fuzz_seeds <seed directory>")?;

    let quote = data("tdx_quote")?;
    let collateral =
        serde_json::from_slice(&data("tdx_quote_collateral.json")?).map_err(|e| e.to_string())?;
    let snp_report = hex::decode(
        String::from_utf8(data("report_milan.hex")?)
            .map_err(|e| e.to_string())?
            .trim(),
    )
    .map_err(|e| e.to_string())?;
    let vcek = data("vcek_milan.der")?;

    for name in [
        "tdx_quote",
        "tdx_quote_td15ex",
        "tdx_quote_outdated",
        "sgx_quote",
    ] {
        write(&out, "tdx_quote", name, &data(name)?)?;
    }
    write(&out, "snp_report", "report_milan", &snp_report)?;

    let tdx_envelope = Evidence::Tdx(TdxEvidence {
        quote: quote.clone(),
        collateral: Some(collateral),
    })
    .encode();
    let snp_envelope = Evidence::SevSnp(SnpEvidence {
        report: snp_report,
        vcek_der: vcek,
    })
    .encode();
    let key = TlsKeyPair::from_seed(&[7; 32]).map_err(attest)?;
    let full_claims = UserClaims::v1(
        key.public_key(),
        ExtendedClaims {
            issued_at: TDX_TIME,
            sealing_public_key: Some(Digest32::from([1; 32])),
            gpu_evidence_digest: Some(Digest32::from([2; 32])),
            model_hash: Some(Digest32::from([3; 32])),
        },
    );
    let reference_claims = UserClaims::reference(key.public_key());
    let simulated = Evidence::Simulated(SimulatedEvidence::new(full_claims.report_data())).encode();

    for (name, bytes) in [
        ("tdx_envelope", &tdx_envelope),
        ("snp_envelope", &snp_envelope),
        ("simulated", &simulated),
        ("claims_v1", &full_claims.to_bytes()),
        ("claims_reference", &reference_claims.to_bytes()),
    ] {
        write(&out, "evidence_and_claims", name, bytes)?;
    }

    let cert = |evidence: &[u8], claims: &UserClaims| {
        issue_certificate(
            &key,
            evidence,
            &claims.to_bytes(),
            TDX_TIME - 60,
            TDX_TIME + 86_400,
        )
        .map_err(attest)
    };
    let reference_fake = reference_claims.report_data();
    for (name, der) in [
        ("simulated_v1", cert(&simulated, &full_claims)?),
        ("reference_fake", cert(&reference_fake, &reference_claims)?),
        ("tdx_envelope", cert(&tdx_envelope, &reference_claims)?),
        ("snp_envelope", cert(&snp_envelope, &reference_claims)?),
        ("raw_quote", cert(&quote, &reference_claims)?),
    ] {
        write(&out, "ratls_certificate", name, der.as_ref())?;
    }

    // Receipts signed by the simulated worker's key: one for a request in clear, one sealed.
    let simulated_cert = cert(&simulated, &full_claims)?;
    for (name, envelope_hash) in [
        ("clear", None),
        (
            "sealed",
            Some(cocoon_attest::receipt::body_hash(b"envelope")),
        ),
    ] {
        let claims = cocoon_attest::ReceiptClaims {
            client_request_id: [0xC1; 32],
            envelope_hash,
            request_hash: cocoon_attest::receipt::body_hash(b"request"),
            answer_hash: cocoon_attest::receipt::body_hash(b"answer"),
            model: "Qwen/Qwen3-8B".into(),
            model_hash: cocoon_attest::receipt::body_hash(b"weights"),
            prompt_tokens: 31,
            cached_tokens: 4,
            completion_tokens: 16,
            reasoning_tokens: 2,
            worker_image_hash: [9; 32],
            issued_at: TDX_TIME,
            coefficient: Some(1000),
        };
        let receipt = cocoon_attest::Receipt::sign(claims, &key, simulated_cert.as_ref().to_vec())
            .map_err(attest)?;
        write(&out, "receipt", name, &receipt.to_bytes())?;
    }
    println!("seeds written under {}", out.display());
    Ok(())
}

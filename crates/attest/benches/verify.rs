//! Cost of verifying evidence: a real TDX quote with DCAP collateral (cold, and answered from
//! the verification cache), a real SEV-SNP report, and a full RA-TLS certificate check.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use cocoon_attest::Attester as _;
use cocoon_attest::evidence::{Evidence, SnpEvidence, TdxEvidence};
use cocoon_attest::ratls::{TlsKeyPair, issue_certificate, verified_peer};
use cocoon_attest::verifier::VerificationCache;
use cocoon_attest::{EvidenceVerifier, ExtendedClaims, Policy, SimulatedAttester, UserClaims};
use criterion::{Criterion, criterion_group, criterion_main};

const TDX_TIME: u64 = 1_750_377_600;

fn tdx_envelope() -> Vec<u8> {
    let quote = include_bytes!("../tests/data/tdx_quote").to_vec();
    let collateral =
        serde_json::from_slice(include_bytes!("../tests/data/tdx_quote_collateral.json")).unwrap();
    Evidence::Tdx(TdxEvidence {
        quote,
        collateral: Some(collateral),
    })
    .encode()
}

fn snp_envelope() -> Vec<u8> {
    let hex_text = include_str!("../tests/data/report_milan.hex");
    Evidence::SevSnp(SnpEvidence {
        report: hex::decode(hex_text.trim()).unwrap(),
        vcek_der: include_bytes!("../tests/data/vcek_milan.der").to_vec(),
    })
    .encode()
}

fn bench(c: &mut Criterion) {
    let tdx = tdx_envelope();
    let cold = EvidenceVerifier::default().with_cache(VerificationCache::new(0, 0));
    c.bench_function("tdx_quote_verify_cold", |b| {
        b.iter(|| cold.verify(black_box(&tdx), TDX_TIME).unwrap())
    });
    let cached = EvidenceVerifier::default();
    cached.verify(&tdx, TDX_TIME).unwrap();
    c.bench_function("tdx_quote_verify_cached", |b| {
        b.iter(|| cached.verify(black_box(&tdx), TDX_TIME).unwrap())
    });

    let snp = snp_envelope();
    c.bench_function("snp_report_verify_cold", |b| {
        b.iter(|| cold.verify(black_box(&snp), TDX_TIME).unwrap())
    });

    let key = TlsKeyPair::from_seed(&[1; 32]).unwrap();
    let claims = UserClaims::v1(key.public_key(), ExtendedClaims::issued_at(TDX_TIME));
    let evidence = SimulatedAttester::new()
        .attest(&claims.report_data())
        .unwrap();
    let cert = issue_certificate(
        &key,
        &evidence,
        &claims.to_bytes(),
        TDX_TIME,
        TDX_TIME + 86_400,
    )
    .unwrap();
    let policy = Policy::local_simulated();
    let verifier = Arc::new(EvidenceVerifier::default());
    c.bench_function("ratls_certificate_verify_simulated", |b| {
        b.iter(|| {
            verified_peer(
                black_box(std::slice::from_ref(&cert)),
                &policy,
                &verifier,
                TDX_TIME,
            )
            .unwrap()
        })
    });
}

/// The Ed25519 verification a receipt and an RA-TLS certificate each need, on the two
/// libraries linked (ring, which rustls uses, and AWS-LC, which the sealing uses).
fn ed25519(c: &mut Criterion) {
    let seed = [7u8; 32];
    let signer = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
    let public = ring::signature::KeyPair::public_key(&signer)
        .as_ref()
        .to_vec();
    let message = [42u8; 200];
    let signature = signer.sign(&message).as_ref().to_vec();
    c.bench_function("ed25519_verify_ring", |b| {
        b.iter(|| {
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, black_box(&public))
                .verify(black_box(&message), black_box(&signature))
                .unwrap()
        })
    });
    c.bench_function("ed25519_verify_aws_lc", |b| {
        b.iter(|| {
            aws_lc_rs::signature::UnparsedPublicKey::new(
                &aws_lc_rs::signature::ED25519,
                black_box(&public),
            )
            .verify(black_box(&message), black_box(&signature))
            .unwrap()
        })
    });
}

criterion_group!(benches, bench, ed25519);
criterion_main!(benches);

//! Throughput of sealing and opening 64 KiB answer chunks (AES-256-GCM plus framing), with the
//! bare AES-256-GCM primitives that were candidates for the job alongside (`aws-lc-rs`, which the
//! crate uses, `ring` and the RustCrypto `aes-gcm`), so the framing overhead and the reason for
//! the choice are both visible; and the cost of sealing and opening a small envelope for three
//! recipients.
//!
//! `benches/compare-openssl.sh` runs this beside `openssl speed -evp aes-256-gcm`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit};
use aws_lc_rs::aead as lc;
use cocoon_seal::{Envelope, ReplyKey, SealingKeyPair, StreamId};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const CHUNK: usize = 64 * 1024;

fn chunks(c: &mut Criterion) {
    let key = ReplyKey::from_bytes([7; 32]);
    let plaintext = vec![0xa5u8; CHUNK];
    let mut group = c.benchmark_group("chunk_64KiB");
    group.throughput(Throughput::Bytes(CHUNK as u64));

    group.bench_function("seal", |b| {
        let mut sealer = key.sealer_with_stream_id(StreamId([1; 16]));
        let mut out = Vec::with_capacity(CHUNK + 64);
        b.iter(|| {
            out.clear();
            sealer
                .seal_into(black_box(&plaintext), false, &mut out)
                .unwrap();
            black_box(&out);
        });
    });

    // Opening needs a fresh chunk per sequence number: pre-seal a long run and replay it through
    // fresh openers.
    const RUN: usize = 256;
    let mut sealer = key.sealer_with_stream_id(StreamId([2; 16]));
    let sealed: Vec<Vec<u8>> = (0..RUN).map(|_| sealer.seal(&plaintext).unwrap()).collect();
    group.bench_function("open", |b| {
        let mut opener = key.opener();
        let mut next = 0usize;
        let mut out = Vec::with_capacity(CHUNK);
        b.iter(|| {
            if next == RUN {
                opener = key.opener();
                next = 0;
            }
            out.clear();
            opener
                .open_into(black_box(&sealed[next]), &mut out)
                .unwrap();
            next += 1;
            black_box(&out);
        });
    });

    let lc_key = lc::LessSafeKey::new(lc::UnboundKey::new(&lc::AES_256_GCM, &[9u8; 32]).unwrap());
    group.bench_function("aws_lc_rs_primitive_encrypt", |b| {
        let mut buf = plaintext.clone();
        b.iter(|| {
            let tag = lc_key
                .seal_in_place_separate_tag(
                    lc::Nonce::assume_unique_for_key([0u8; 12]),
                    lc::Aad::empty(),
                    buf.as_mut_slice(),
                )
                .unwrap();
            black_box(&tag);
        });
    });

    let ring_key = ring::aead::LessSafeKey::new(
        ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &[9u8; 32]).unwrap(),
    );
    group.bench_function("ring_primitive_encrypt", |b| {
        let mut buf = plaintext.clone();
        b.iter(|| {
            let tag = ring_key
                .seal_in_place_separate_tag(
                    ring::aead::Nonce::assume_unique_for_key([0u8; 12]),
                    ring::aead::Aad::empty(),
                    buf.as_mut_slice(),
                )
                .unwrap();
            black_box(&tag);
        });
    });

    let cipher = Aes256Gcm::new(&[9u8; 32].into());
    group.bench_function("aes_gcm_primitive_encrypt", |b| {
        let mut buf = plaintext.clone();
        b.iter(|| {
            let tag = cipher
                .encrypt_inout_detached(&[0u8; 12].into(), b"", buf.as_mut_slice().into())
                .unwrap();
            black_box(&tag);
        });
    });
    group.finish();
}

fn envelopes(c: &mut Criterion) {
    let mut rng = cocoon_seal::SystemRng;
    let workers: Vec<SealingKeyPair> = (0..3)
        .map(|_| SealingKeyPair::generate(&mut rng).unwrap())
        .collect();
    let recipients: Vec<_> = workers.iter().map(|w| (w.key_id(), w.public())).collect();
    let body = vec![0x3cu8; 4096];
    let mut group = c.benchmark_group("envelope_3_recipients_4KiB");
    group.bench_function("seal", |b| {
        b.iter(|| {
            black_box(Envelope::seal(&recipients, b"aad", black_box(&body), &mut rng).unwrap())
        });
    });
    let sealed = Envelope::seal(&recipients, b"aad", &body, &mut rng).unwrap();
    group.bench_function("open", |b| {
        b.iter(|| {
            black_box(
                Envelope::open(
                    black_box(&sealed.bytes),
                    workers[1].key_id(),
                    &workers[1],
                    b"aad",
                )
                .unwrap(),
            )
        });
    });
    group.finish();
}

/// The X25519 operations a sealed request costs (the client: one key generation and one
/// agreement per recipient; the worker: one agreement), in this crate (AWS-LC) and in
/// `x25519-dalek`, which the crate used before: the reason for the switch in `docs/sealing.md`.
fn x25519(c: &mut Criterion) {
    let mut rng = cocoon_seal::SystemRng;
    let ours = SealingKeyPair::generate(&mut rng).unwrap();
    let peer = SealingKeyPair::generate(&mut rng).unwrap();
    let secret = *ours.secret_bytes();
    let dalek = x25519_dalek::StaticSecret::from(secret);
    let dalek_peer = x25519_dalek::PublicKey::from(peer.public().0);
    let mut group = c.benchmark_group("x25519");
    group.bench_function("keygen_aws_lc", |b| {
        b.iter(|| black_box(SealingKeyPair::from_secret_bytes(black_box(secret))));
    });
    group.bench_function("keygen_dalek", |b| {
        b.iter(|| {
            let s = x25519_dalek::StaticSecret::from(black_box(secret));
            black_box(x25519_dalek::PublicKey::from(&s))
        });
    });
    group.bench_function("agree_aws_lc", |b| {
        use aws_lc_rs::agreement::{PrivateKey, UnparsedPublicKey, X25519, agree};
        let peer_bytes = peer.public().0;
        b.iter(|| {
            let private = PrivateKey::from_private_key(&X25519, black_box(&secret)).unwrap();
            agree(
                &private,
                UnparsedPublicKey::new(&X25519, &peer_bytes),
                (),
                |shared| Ok::<_, ()>(black_box(shared[0])),
            )
            .unwrap()
        });
    });
    group.bench_function("agree_dalek", |b| {
        b.iter(|| black_box(dalek.diffie_hellman(black_box(&dalek_peer))));
    });
    group.finish();
}

criterion_group!(benches, chunks, envelopes, x25519);
criterion_main!(benches);

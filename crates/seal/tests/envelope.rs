//! Envelope behaviour: every recipient opens, nobody else does, and each way of altering or
//! misaddressing an envelope is refused with its own error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cocoon_seal::envelope::{MAX_RECIPIENTS, RECIPIENT_ENTRY_LEN};
use cocoon_seal::hpke::{RecipientMode, SUITE_X25519_SHA256_AES256GCM, SenderMode};
use cocoon_seal::{Envelope, EnvelopeView, KeyId, SealError, SealingKeyPair, SealingPublicKey};
use common::{FailingRng, TestRng};

const AAD: &[u8] = b"model=demo";
const BODY: &[u8] = b"what is the capital of France?";

fn workers(n: usize, rng: &mut TestRng) -> Vec<SealingKeyPair> {
    (0..n)
        .map(|_| SealingKeyPair::generate(rng).unwrap())
        .collect()
}

fn addressed(keys: &[SealingKeyPair]) -> Vec<(KeyId, SealingPublicKey)> {
    keys.iter().map(|k| (k.key_id(), k.public())).collect()
}

#[test]
fn every_recipient_opens_the_same_body() {
    let mut rng = TestRng::new(1);
    let keys = workers(5, &mut rng);
    let sealed = Envelope::seal(&addressed(&keys), AAD, BODY, &mut rng).unwrap();
    assert_eq!(sealed.reply_keys.len(), 5);
    let view = EnvelopeView::parse(&sealed.bytes).unwrap();
    assert_eq!(view.recipient_count(), 5);
    assert_eq!(view.body_len(), BODY.len() + 16);
    for key in &keys {
        let opened = Envelope::open(&sealed.bytes, key.key_id(), key, AAD).unwrap();
        assert_eq!(opened.plaintext, BODY);
    }
}

#[test]
fn size_is_header_plus_entries_plus_body() {
    let mut rng = TestRng::new(2);
    let keys = workers(3, &mut rng);
    let sealed = Envelope::seal(&addressed(&keys), AAD, BODY, &mut rng).unwrap();
    assert_eq!(
        sealed.bytes.len(),
        44 + 3 * RECIPIENT_ENTRY_LEN + BODY.len() + 16
    );
    assert_eq!(RECIPIENT_ENTRY_LEN, 88);
}

#[test]
fn empty_body_and_empty_aad_work() {
    let mut rng = TestRng::new(3);
    let keys = workers(1, &mut rng);
    let sealed = Envelope::seal(&addressed(&keys), b"", b"", &mut rng).unwrap();
    let opened = Envelope::open(&sealed.bytes, keys[0].key_id(), &keys[0], b"").unwrap();
    assert!(opened.plaintext.is_empty());
}

#[test]
fn a_key_that_is_not_addressed_finds_no_entry() {
    let mut rng = TestRng::new(4);
    let keys = workers(2, &mut rng);
    let stranger = SealingKeyPair::generate(&mut rng).unwrap();
    let sealed = Envelope::seal(&addressed(&keys), AAD, BODY, &mut rng).unwrap();
    assert_eq!(
        Envelope::open(&sealed.bytes, stranger.key_id(), &stranger, AAD).unwrap_err(),
        SealError::RecipientNotFound(stranger.key_id())
    );
    // Claiming someone else's key id does not help: the wrap is sealed to their key.
    assert_eq!(
        Envelope::open(&sealed.bytes, keys[0].key_id(), &stranger, AAD).unwrap_err(),
        SealError::UnwrapFailed(keys[0].key_id())
    );
}

#[test]
fn wrong_associated_data_fails_the_body() {
    let mut rng = TestRng::new(5);
    let keys = workers(2, &mut rng);
    let sealed = Envelope::seal(&addressed(&keys), AAD, BODY, &mut rng).unwrap();
    assert_eq!(
        Envelope::open(&sealed.bytes, keys[1].key_id(), &keys[1], b"model=other").unwrap_err(),
        SealError::BodyAuthentication
    );
}

#[test]
fn recipient_count_limits() {
    let mut rng = TestRng::new(6);
    assert_eq!(
        Envelope::seal(&[], AAD, BODY, &mut rng).unwrap_err(),
        SealError::RecipientCount {
            count: 0,
            max: MAX_RECIPIENTS
        }
    );
    let key = SealingKeyPair::generate(&mut rng).unwrap();
    let too_many: Vec<_> = (0..=MAX_RECIPIENTS)
        .map(|i| (KeyId((i as u64).to_be_bytes()), key.public()))
        .collect();
    assert!(matches!(
        Envelope::seal(&too_many, AAD, BODY, &mut rng),
        Err(SealError::RecipientCount { count: 65, .. })
    ));
    let all: Vec<_> = too_many[..MAX_RECIPIENTS].to_vec();
    let sealed = Envelope::seal(&all, AAD, BODY, &mut rng).unwrap();
    let opened = Envelope::open(&sealed.bytes, all[63].0, &key, AAD).unwrap();
    assert_eq!(opened.plaintext, BODY);
}

#[test]
fn duplicate_key_ids_are_refused_on_both_sides() {
    let mut rng = TestRng::new(7);
    let keys = workers(2, &mut rng);
    let id = KeyId([9; 8]);
    let dup = [(id, keys[0].public()), (id, keys[1].public())];
    assert_eq!(
        Envelope::seal(&dup, AAD, BODY, &mut rng).unwrap_err(),
        SealError::DuplicateKeyId(id)
    );
    // Forge one on the wire: copy entry 0's key id over entry 1's.
    let sealed = Envelope::seal(&addressed(&keys), AAD, BODY, &mut rng).unwrap();
    let mut bytes = sealed.bytes.clone();
    let (first, second) = (40, 40 + RECIPIENT_ENTRY_LEN);
    let id0: [u8; 8] = bytes[first..first + 8].try_into().unwrap();
    bytes.copy_within(first..first + 8, second);
    assert_eq!(
        EnvelopeView::parse(&bytes).unwrap_err(),
        SealError::DuplicateKeyId(KeyId(id0))
    );
}

#[test]
fn a_low_order_recipient_key_is_refused() {
    let mut rng = TestRng::new(8);
    let err = Envelope::seal(
        &[(KeyId([0; 8]), SealingPublicKey([0; 32]))],
        AAD,
        BODY,
        &mut rng,
    )
    .unwrap_err();
    assert_eq!(err, SealError::NonContributoryKey);
}

#[test]
fn rng_failure_is_an_error() {
    let mut rng = TestRng::new(9);
    let keys = workers(1, &mut rng);
    assert_eq!(
        Envelope::seal(&addressed(&keys), AAD, BODY, &mut FailingRng).unwrap_err(),
        SealError::RandomSource
    );
    assert_eq!(
        SealingKeyPair::generate(&mut FailingRng).unwrap_err(),
        SealError::RandomSource
    );
}

#[test]
fn header_fields_are_checked() {
    let mut rng = TestRng::new(10);
    let keys = workers(2, &mut rng);
    let good = Envelope::seal(&addressed(&keys), AAD, BODY, &mut rng)
        .unwrap()
        .bytes;

    let mut v = good.clone();
    v[0] = 2;
    assert_eq!(
        EnvelopeView::parse(&v).unwrap_err(),
        SealError::UnsupportedVersion {
            structure: "envelope",
            found: 2
        }
    );
    let mut v = good.clone();
    v[6] = 1; // AES-128-GCM
    assert_eq!(
        EnvelopeView::parse(&v).unwrap_err(),
        SealError::UnsupportedSuite {
            kem: 0x20,
            kdf: 1,
            aead: 1
        }
    );
    let mut v = good.clone();
    v[7] = 0;
    assert!(matches!(
        EnvelopeView::parse(&v),
        Err(SealError::RecipientCount { count: 0, .. })
    ));
    let mut v = good.clone();
    v[7] = 3; // claims a third entry that is not there
    assert!(matches!(
        EnvelopeView::parse(&v),
        Err(SealError::Truncated { .. })
    ));
    let mut v = good.clone();
    v.push(0);
    assert_eq!(
        EnvelopeView::parse(&v).unwrap_err(),
        SealError::TrailingBytes {
            structure: "envelope",
            extra: 1
        }
    );
    let body_len_at = 40 + 2 * RECIPIENT_ENTRY_LEN;
    let mut v = good.clone();
    v[body_len_at..body_len_at + 4].copy_from_slice(&15u32.to_be_bytes());
    assert!(matches!(
        EnvelopeView::parse(&v),
        Err(SealError::Truncated {
            field: "body tag",
            ..
        })
    ));
    for cut in 0..good.len() {
        assert!(
            EnvelopeView::parse(&good[..cut]).is_err(),
            "prefix of {cut} bytes parsed"
        );
    }
}

#[test]
fn altering_any_region_is_caught_by_the_right_layer() {
    let mut rng = TestRng::new(11);
    let keys = workers(2, &mut rng);
    let good = Envelope::seal(&addressed(&keys), AAD, BODY, &mut rng)
        .unwrap()
        .bytes;
    let opener = &keys[1];
    let open =
        |bytes: &[u8]| Envelope::open(bytes, opener.key_id(), opener, AAD).map(|o| o.plaintext);

    // Commitment: bound into every wrap's associated data.
    let mut v = good.clone();
    v[8] ^= 1;
    assert_eq!(
        open(&v).unwrap_err(),
        SealError::UnwrapFailed(opener.key_id())
    );
    // Our own entry's enc and wrapped key.
    let ours = 40 + RECIPIENT_ENTRY_LEN;
    for offset in [8, 8 + 31, 8 + 32, 8 + 32 + 47] {
        let mut v = good.clone();
        v[ours + offset] ^= 0x40;
        assert_eq!(
            open(&v).unwrap_err(),
            SealError::UnwrapFailed(opener.key_id()),
            "offset {offset}"
        );
    }
    // Another recipient's entry: only the body tag covers it.
    let mut v = good.clone();
    v[40 + 20] ^= 1;
    assert_eq!(open(&v).unwrap_err(), SealError::BodyAuthentication);
    // Body and tag.
    for at in [good.len() - 17, good.len() - 1] {
        let mut v = good.clone();
        v[at] ^= 1;
        assert_eq!(open(&v).unwrap_err(), SealError::BodyAuthentication);
    }
    assert_eq!(open(&good).unwrap(), BODY);
}

#[test]
fn the_proxy_cannot_drop_a_recipient() {
    let mut rng = TestRng::new(12);
    let keys = workers(3, &mut rng);
    let good = Envelope::seal(&addressed(&keys), AAD, BODY, &mut rng)
        .unwrap()
        .bytes;
    // Remove entry 0 and fix the count: a well-formed envelope, but the body tag covers the
    // original header.
    let mut v = good[..40].to_vec();
    v[7] = 2;
    v.extend_from_slice(&good[40 + RECIPIENT_ENTRY_LEN..]);
    EnvelopeView::parse(&v).unwrap();
    // The count is part of the wraps' associated data too.
    assert_eq!(
        Envelope::open(&v, keys[1].key_id(), &keys[1], AAD).unwrap_err(),
        SealError::UnwrapFailed(keys[1].key_id())
    );
}

#[test]
fn a_sender_cannot_give_recipients_different_content_keys() {
    // A malicious sender wraps a different content key for recipient 1, with the correct
    // associated data: the wrap opens, but the key commitment catches it.
    let mut rng = TestRng::new(13);
    let keys = workers(2, &mut rng);
    let mut v = Envelope::seal(&addressed(&keys), AAD, BODY, &mut rng)
        .unwrap()
        .bytes;
    let target = &keys[1];
    let mut info = b"cocoon-seal/v1/wrap".to_vec();
    info.extend_from_slice(&target.key_id().0);
    let (enc, mut ctx) = SUITE_X25519_SHA256_AES256GCM
        .setup_sender(&target.public(), &info, SenderMode::Base, &mut rng)
        .unwrap();
    let wrapped = ctx.seal(&v[..40], &[0x55; 32]).unwrap();
    let entry = 40 + RECIPIENT_ENTRY_LEN;
    v[entry + 8..entry + 40].copy_from_slice(&enc);
    v[entry + 40..entry + RECIPIENT_ENTRY_LEN].copy_from_slice(&wrapped);
    assert_eq!(
        Envelope::open(&v, target.key_id(), target, AAD).unwrap_err(),
        SealError::KeyCommitmentMismatch
    );
    // The other recipient unwraps the original key, and the body tag (over the whole header)
    // notices that an entry changed.
    assert_eq!(
        Envelope::open(&v, keys[0].key_id(), &keys[0], AAD).unwrap_err(),
        SealError::BodyAuthentication
    );
}

#[test]
fn reply_keys_are_pairwise() {
    let mut rng = TestRng::new(14);
    let keys = workers(3, &mut rng);
    let sealed = Envelope::seal(&addressed(&keys), AAD, BODY, &mut rng).unwrap();
    let opened: Vec<_> = keys
        .iter()
        .map(|k| Envelope::open(&sealed.bytes, k.key_id(), k, AAD).unwrap())
        .collect();

    // Worker 2 answers.
    let mut sealer = opened[2].reply_key.sealer(&mut rng).unwrap();
    let chunks = [
        sealer.seal(b"Paris").unwrap(),
        sealer.seal_final(b".").unwrap(),
    ];

    // The client opens with the reply key it kept for worker 2.
    let mut client = sealed.reply_keys.get(&keys[2].key_id()).unwrap().opener();
    assert_eq!(client.open(&chunks[0]).unwrap().plaintext, b"Paris");
    assert!(client.open(&chunks[1]).unwrap().is_final);
    assert_eq!(client.finish().unwrap(), 2);

    // The other candidates saw the same envelope (and the content key) but cannot read it, and
    // neither can the client with another worker's reply key.
    for other in [
        &opened[0].reply_key,
        &opened[1].reply_key,
        sealed.reply_keys.get(&keys[0].key_id()).unwrap(),
    ] {
        let mut eavesdropper = other.opener();
        assert_eq!(
            eavesdropper.open(&chunks[0]).unwrap_err(),
            SealError::ChunkAuthentication { seq: 0 }
        );
    }
    // Each envelope gets fresh reply keys even for the same recipient and body.
    let again = Envelope::seal(&addressed(&keys), AAD, BODY, &mut rng).unwrap();
    let mut stale = again.reply_keys.get(&keys[2].key_id()).unwrap().opener();
    assert!(stale.open(&chunks[0]).is_err());
}

#[test]
fn key_ids_derive_from_public_keys() {
    let a = SealingKeyPair::from_secret_bytes([1; 32]);
    let b = SealingKeyPair::from_secret_bytes([2; 32]);
    assert_eq!(a.key_id(), KeyId::for_public_key(&a.public()));
    assert_ne!(a.key_id(), b.key_id());
    assert_eq!(
        SealingKeyPair::from_secret_bytes(*a.secret_bytes()).public(),
        a.public()
    );
    // Debug output never shows the private key.
    let shown = format!("{a:?}");
    assert!(shown.contains("redacted"));
    assert!(!shown.contains(&hex::encode(*a.secret_bytes())));
}

#[test]
fn recipient_side_hpke_is_plain_base_mode() {
    // The wrap is ordinary RFC 9180 base mode: a stock HPKE recipient can open it given the
    // documented info and associated data.
    let mut rng = TestRng::new(15);
    let keys = workers(1, &mut rng);
    let sealed = Envelope::seal(&addressed(&keys), AAD, BODY, &mut rng).unwrap();
    let view = EnvelopeView::parse(&sealed.bytes).unwrap();
    let entry = view.find(&keys[0].key_id()).unwrap();
    let mut info = b"cocoon-seal/v1/wrap".to_vec();
    info.extend_from_slice(&keys[0].key_id().0);
    let mut ctx = SUITE_X25519_SHA256_AES256GCM
        .setup_recipient(entry.enc, &keys[0], &info, RecipientMode::Base)
        .unwrap();
    let content_key = ctx.open(&sealed.bytes[..40], entry.wrapped_key).unwrap();
    assert_eq!(content_key.len(), 32);
}

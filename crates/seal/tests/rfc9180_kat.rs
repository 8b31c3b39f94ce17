//! RFC 9180 appendix A.1 known-answer tests: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! AES-128-GCM, in all four modes, run through the same HPKE code that seals envelopes with
//! AES-256-GCM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cocoon_seal::hpke::{self, Aead, Psk, RecipientMode, SenderMode, Suite};
use cocoon_seal::{SealError, SealingPublicKey};
use common::{RfcSection, parse_rfc_a1, unhex, unhex32};

const FIXTURE: &str = include_str!("fixtures/rfc9180-a1.txt");

fn sections() -> Vec<RfcSection> {
    let sections = parse_rfc_a1(FIXTURE);
    assert_eq!(sections.len(), 4, "A.1.1 to A.1.4");
    for s in &sections {
        assert_eq!(s.encryptions.len(), 6, "six encryptions per mode");
        assert_eq!(s.exports.len(), 3, "three exports per mode");
    }
    sections
}

fn run_section(section: &RfcSection) {
    let setup = &section.setup;
    assert_eq!(setup["kem_id"], "32");
    assert_eq!(setup["kdf_id"], "1");
    assert_eq!(setup["aead_id"], "1");
    let mode: u8 = setup["mode"].parse().unwrap();
    let suite = Suite::new(Aead::Aes128Gcm);
    let info = unhex(&setup["info"]);

    // DeriveKeyPair for every role.
    let ephemeral = hpke::derive_key_pair(&unhex(&setup["ikmE"])).unwrap();
    assert_eq!(hex::encode(*ephemeral.secret_bytes()), setup["skEm"]);
    assert_eq!(hex::encode(ephemeral.public().0), setup["pkEm"]);
    let recipient = hpke::derive_key_pair(&unhex(&setup["ikmR"])).unwrap();
    assert_eq!(hex::encode(*recipient.secret_bytes()), setup["skRm"]);
    assert_eq!(hex::encode(recipient.public().0), setup["pkRm"]);
    let sender = setup.get("ikmS").map(|ikm| {
        let kp = hpke::derive_key_pair(&unhex(ikm)).unwrap();
        assert_eq!(hex::encode(*kp.secret_bytes()), setup["skSm"]);
        assert_eq!(hex::encode(kp.public().0), setup["pkSm"]);
        kp
    });
    let psk_bytes = setup.get("psk").map(|v| unhex(v));
    let psk_id = setup.get("psk_id").map(|v| unhex(v));
    let psk = psk_bytes.as_deref().map(|psk| Psk {
        psk,
        psk_id: psk_id.as_deref().unwrap(),
    });
    let sender_public = sender.as_ref().map(|s| s.public());

    let (sender_mode, recipient_mode) = match mode {
        0 => (SenderMode::Base, RecipientMode::Base),
        1 => (
            SenderMode::Psk(psk.unwrap()),
            RecipientMode::Psk(psk.unwrap()),
        ),
        2 => (
            SenderMode::Auth(sender.as_ref().unwrap()),
            RecipientMode::Auth(sender_public.as_ref().unwrap()),
        ),
        3 => (
            SenderMode::AuthPsk(sender.as_ref().unwrap(), psk.unwrap()),
            RecipientMode::AuthPsk(sender_public.as_ref().unwrap(), psk.unwrap()),
        ),
        other => panic!("unknown mode {other}"),
    };

    let (enc, mut sender_ctx) = suite
        .setup_sender_with_ephemeral(&recipient.public(), &info, sender_mode, &ephemeral)
        .unwrap();
    assert_eq!(hex::encode(enc), setup["enc"]);
    let mut recipient_ctx = suite
        .setup_recipient(&unhex32(&setup["enc"]), &recipient, &info, recipient_mode)
        .unwrap();

    // The vectors list sequence numbers 0, 1, 2, 4, 255, 256: seal (and open) every message in
    // between so both contexts reach each listed sequence number the normal way.
    let last: u64 = section
        .encryptions
        .iter()
        .map(|r| r["sequence number"].parse::<u64>().unwrap())
        .max()
        .unwrap();
    for seq in 0..=last {
        let listed = section
            .encryptions
            .iter()
            .find(|r| r["sequence number"].parse::<u64>().unwrap() == seq);
        match listed {
            Some(r) => {
                let pt = unhex(&r["pt"]);
                let aad = unhex(&r["aad"]);
                let ct = sender_ctx.seal(&aad, &pt).unwrap();
                assert_eq!(hex::encode(&ct), r["ct"], "mode {mode} seq {seq}");
                assert_eq!(recipient_ctx.open(&aad, &unhex(&r["ct"])).unwrap(), pt);
            }
            None => {
                let ct = sender_ctx.seal(b"", b"filler").unwrap();
                assert_eq!(recipient_ctx.open(b"", &ct).unwrap(), b"filler");
            }
        }
    }
    assert_eq!(sender_ctx.sequence_number(), last + 1);

    for r in &section.exports {
        let context = unhex(&r["exporter_context"]);
        let len: usize = r["L"].parse().unwrap();
        let mut from_sender = vec![0u8; len];
        let mut from_recipient = vec![0u8; len];
        sender_ctx.export(&context, &mut from_sender).unwrap();
        recipient_ctx.export(&context, &mut from_recipient).unwrap();
        assert_eq!(
            hex::encode(&from_sender),
            r["exported_value"],
            "mode {mode} export"
        );
        assert_eq!(from_sender, from_recipient);
    }
}

#[test]
fn a_1_1_base() {
    run_section(&sections()[0]);
}

#[test]
fn a_1_2_psk() {
    run_section(&sections()[1]);
}

#[test]
fn a_1_3_auth() {
    run_section(&sections()[2]);
}

#[test]
fn a_1_4_auth_psk() {
    run_section(&sections()[3]);
}

#[test]
fn wrong_info_fails_to_open() {
    let section = &sections()[0];
    let setup = &section.setup;
    let recipient = hpke::derive_key_pair(&unhex(&setup["ikmR"])).unwrap();
    let mut ctx = Suite::new(Aead::Aes128Gcm)
        .setup_recipient(
            &unhex32(&setup["enc"]),
            &recipient,
            b"other info",
            RecipientMode::Base,
        )
        .unwrap();
    let r = &section.encryptions[0];
    assert_eq!(
        ctx.open(&unhex(&r["aad"]), &unhex(&r["ct"])),
        Err(SealError::HpkeOpen)
    );
    // A failed open does not advance the sequence number.
    assert_eq!(ctx.sequence_number(), 0);
}

#[test]
fn psk_inputs_are_validated() {
    let recipient = hpke::derive_key_pair(&[7u8; 32]).unwrap();
    let ephemeral = hpke::derive_key_pair(&[8u8; 32]).unwrap();
    let suite = Suite::new(Aead::Aes256Gcm);
    let short = Psk {
        psk: &[1u8; 16],
        psk_id: b"id",
    };
    let no_id = Psk {
        psk: &[1u8; 32],
        psk_id: b"",
    };
    for psk in [short, no_id] {
        let err = suite
            .setup_sender_with_ephemeral(&recipient.public(), b"", SenderMode::Psk(psk), &ephemeral)
            .unwrap_err();
        assert!(matches!(err, SealError::InvalidPsk(_)), "{err:?}");
    }
}

#[test]
fn low_order_keys_are_refused() {
    // The all-zero u-coordinate and the order-8 point with u = 1 both give an all-zero X25519
    // output, which RFC 9180 section 7.1.4 requires refusing.
    let suite = Suite::new(Aead::Aes256Gcm);
    let ephemeral = hpke::derive_key_pair(&[8u8; 32]).unwrap();
    let mut one = [0u8; 32];
    one[0] = 1;
    for bad in [[0u8; 32], one] {
        let err = suite
            .setup_sender_with_ephemeral(&SealingPublicKey(bad), b"", SenderMode::Base, &ephemeral)
            .unwrap_err();
        assert_eq!(err, SealError::NonContributoryKey);
        let err = suite
            .setup_recipient(&bad, &ephemeral, b"", RecipientMode::Base)
            .unwrap_err();
        assert_eq!(err, SealError::NonContributoryKey);
    }
}

#[test]
fn export_length_limit() {
    let recipient = hpke::derive_key_pair(&[7u8; 32]).unwrap();
    let ephemeral = hpke::derive_key_pair(&[8u8; 32]).unwrap();
    let (_, ctx) = Suite::new(Aead::Aes256Gcm)
        .setup_sender_with_ephemeral(&recipient.public(), b"", SenderMode::Base, &ephemeral)
        .unwrap();
    let mut max = vec![0u8; hpke::MAX_EXPORT_LEN];
    ctx.export(b"ctx", &mut max).unwrap();
    let mut over = vec![0u8; hpke::MAX_EXPORT_LEN + 1];
    assert!(matches!(
        ctx.export(b"ctx", &mut over),
        Err(SealError::ExportTooLong { .. })
    ));
}

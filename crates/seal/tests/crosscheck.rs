//! Replays the committed cross-check fixture (`tests/fixtures/hpke-crosscheck.json`, produced by
//! `tests/crosscheck/crosscheck.py` with pyhpke 0.6.5) in both directions, without Python:
//!
//! * pyhpke → us: we open pyhpke's ciphertexts and match its exported secrets; we open the
//!   envelope and answer stream the Python script built from `docs/sealing.md`;
//! * us → pyhpke: we reproduce, byte for byte, the ciphertexts, envelope and chunks that pyhpke
//!   and the Python parser opened when the fixture was generated.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "crosscheck/vectors.rs"]
mod vectors;

use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/hpke-crosscheck.json")).unwrap()
}

#[test]
fn suite_is_x25519_sha256_aes256gcm() {
    let doc = fixture();
    assert_eq!(doc["suite"]["kem_id"], 0x20);
    assert_eq!(doc["suite"]["kdf_id"], 1);
    assert_eq!(doc["suite"]["aead_id"], 2);
}

#[test]
fn we_open_pyhpke() {
    let doc = fixture();
    let cases = doc["hpke"].as_array().unwrap();
    assert_eq!(cases.len(), 8, "four modes, two info variants each");
    for case in cases {
        let opened = vectors::hpke_open(case, &case["pyhpke_sealed"])
            .unwrap_or_else(|e| panic!("{}: {e}", case["name"]));
        let expected: Vec<&Value> = case["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| &m["pt"])
            .collect();
        let got: Vec<&Value> = opened["pts"].as_array().unwrap().iter().collect();
        assert_eq!(got, expected, "{}", case["name"]);
        assert_eq!(
            opened["exports"], case["pyhpke_sealed"]["exports"],
            "{}",
            case["name"]
        );
    }
}

#[test]
fn pyhpke_opened_what_we_seal() {
    let doc = fixture();
    for case in doc["hpke"].as_array().unwrap() {
        let ikm_e = vectors::bytes(&case["ours_sealed"]["ikmE"]);
        let sealed = vectors::hpke_seal(case, &ikm_e);
        assert_eq!(sealed, case["ours_sealed"], "{}", case["name"]);
    }
}

#[test]
fn pyhpke_ciphertexts_are_what_we_would_produce() {
    // With the same ephemeral key, both implementations must emit identical bytes.
    let doc = fixture();
    for case in doc["hpke"].as_array().unwrap() {
        let ikm_e = vectors::bytes(&case["pyhpke_sealed"]["ikmE"]);
        let sealed = vectors::hpke_seal(case, &ikm_e);
        assert_eq!(
            sealed["enc"], case["pyhpke_sealed"]["enc"],
            "{}",
            case["name"]
        );
        assert_eq!(
            sealed["cts"], case["pyhpke_sealed"]["cts"],
            "{}",
            case["name"]
        );
        assert_eq!(
            sealed["exports"], case["pyhpke_sealed"]["exports"],
            "{}",
            case["name"]
        );
    }
}

#[test]
fn we_open_the_python_envelope_and_stream() {
    let doc = fixture();
    let env = &doc["envelope"];
    let opened = vectors::envelope_open(env, &env["python"]).unwrap();
    for pt in opened["pts"].as_array().unwrap() {
        assert_eq!(pt, &env["pt"]);
    }
    assert_eq!(opened["answer"], env["answer_chunks"]);
}

#[test]
fn python_opened_the_envelope_and_stream_we_seal() {
    let doc = fixture();
    let env = &doc["envelope"];
    assert_eq!(vectors::envelope_seal(env), env["ours"]);
}

#[test]
fn the_client_reads_the_answer_with_its_own_reply_key() {
    // The fixture's answer was sealed by the recipient; the client side (which only holds the
    // reply keys from sealing) must open it too.
    let doc = fixture();
    let env = &doc["envelope"];
    let keys = vectors::envelope_recipients(env);
    let recipients: Vec<_> = keys.iter().map(|k| (k.key_id(), k.public())).collect();
    let mut rng = common::TestRng::new(env["ours"]["rng_seed"].as_u64().unwrap());
    let sealed = cocoon_seal::Envelope::seal(
        &recipients,
        &vectors::bytes(&env["aad"]),
        &vectors::bytes(&env["pt"]),
        &mut rng,
    )
    .unwrap();
    assert_eq!(
        hex::encode(&sealed.bytes),
        env["ours"]["envelope"].as_str().unwrap()
    );
    let answering = &keys[usize::try_from(env["answering"].as_u64().unwrap()).unwrap()];
    let mut opener = sealed.reply_keys.get(&answering.key_id()).unwrap().opener();
    let mut answer = Vec::new();
    for chunk in env["ours"]["chunks"].as_array().unwrap() {
        answer.push(vectors::hexs(
            &opener.open(&vectors::bytes(chunk)).unwrap().plaintext,
        ));
    }
    opener.finish().unwrap();
    assert_eq!(Value::Array(answer), env["answer_chunks"]);
}

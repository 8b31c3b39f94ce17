//! This implementation's half of the pyhpke cross-check, shared by the `crosscheck_vectors`
//! example (which the Python script runs to produce and check vectors) and the `crosscheck` test
//! (which replays the committed fixture without Python).
//!
//! Inputs and outputs are JSON values in the fixture's schema (see
//! `tests/crosscheck/crosscheck.py`); byte strings are hex.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use cocoon_seal::hpke::{self, Psk, RecipientMode, SUITE_X25519_SHA256_AES256GCM, SenderMode};
use cocoon_seal::{Envelope, KeyId, SealError, SealingKeyPair, StreamId};
use serde_json::{Value, json};

use super::common::TestRng;

pub fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(
        v.as_str()
            .unwrap_or_else(|| panic!("expected a hex string, got {v}")),
    )
    .unwrap()
}

fn opt_bytes(v: &Value) -> Option<Vec<u8>> {
    if v.is_null() { None } else { Some(bytes(v)) }
}

pub fn hexs(b: &[u8]) -> Value {
    Value::String(hex::encode(b))
}

/// Key material of one HPKE case.
struct CaseKeys {
    recipient: SealingKeyPair,
    sender: Option<SealingKeyPair>,
    psk: Option<Vec<u8>>,
    psk_id: Option<Vec<u8>>,
    info: Vec<u8>,
}

impl CaseKeys {
    fn from_case(case: &Value) -> Self {
        Self {
            recipient: hpke::derive_key_pair(&bytes(&case["ikmR"])).unwrap(),
            sender: opt_bytes(&case["ikmS"]).map(|ikm| hpke::derive_key_pair(&ikm).unwrap()),
            psk: opt_bytes(&case["psk"]),
            psk_id: opt_bytes(&case["psk_id"]),
            info: bytes(&case["info"]),
        }
    }

    fn psk(&self) -> Option<Psk<'_>> {
        Some(Psk {
            psk: self.psk.as_deref()?,
            psk_id: self.psk_id.as_deref()?,
        })
    }

    fn sender_mode(&self) -> SenderMode<'_> {
        match (&self.sender, self.psk()) {
            (None, None) => SenderMode::Base,
            (None, Some(psk)) => SenderMode::Psk(psk),
            (Some(s), None) => SenderMode::Auth(s),
            (Some(s), Some(psk)) => SenderMode::AuthPsk(s, psk),
        }
    }
}

fn exports_of(case: &Value, export: impl Fn(&[u8], &mut [u8])) -> Vec<Value> {
    case["exports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let mut out = vec![0u8; usize::try_from(e["len"].as_u64().unwrap()).unwrap()];
            export(&bytes(&e["context"]), &mut out);
            hexs(&out)
        })
        .collect()
}

/// Seals the case's messages with the ephemeral key derived from `ikm_e`:
/// `{"ikmE", "enc", "cts", "exports"}`.
pub fn hpke_seal(case: &Value, ikm_e: &[u8]) -> Value {
    let keys = CaseKeys::from_case(case);
    let ephemeral = hpke::derive_key_pair(ikm_e).unwrap();
    let (enc, mut ctx) = SUITE_X25519_SHA256_AES256GCM
        .setup_sender_with_ephemeral(
            &keys.recipient.public(),
            &keys.info,
            keys.sender_mode(),
            &ephemeral,
        )
        .unwrap();
    let cts: Vec<Value> = case["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| hexs(&ctx.seal(&bytes(&m["aad"]), &bytes(&m["pt"])).unwrap()))
        .collect();
    let exports = exports_of(case, |c, out| ctx.export(c, out).unwrap());
    json!({ "ikmE": hexs(ikm_e), "enc": hexs(&enc), "cts": cts, "exports": exports })
}

/// Opens another implementation's `{"enc", "cts"}` as the case's recipient:
/// `{"pts", "exports"}`.
pub fn hpke_open(case: &Value, sealed: &Value) -> Result<Value, SealError> {
    let keys = CaseKeys::from_case(case);
    let sender_public = keys.sender.as_ref().map(SealingKeyPair::public);
    let mode = match (&sender_public, keys.psk()) {
        (None, None) => RecipientMode::Base,
        (None, Some(psk)) => RecipientMode::Psk(psk),
        (Some(s), None) => RecipientMode::Auth(s),
        (Some(s), Some(psk)) => RecipientMode::AuthPsk(s, psk),
    };
    let enc: [u8; 32] = bytes(&sealed["enc"]).try_into().unwrap();
    let mut ctx =
        SUITE_X25519_SHA256_AES256GCM.setup_recipient(&enc, &keys.recipient, &keys.info, mode)?;
    let mut pts = Vec::new();
    for (m, ct) in case["messages"]
        .as_array()
        .unwrap()
        .iter()
        .zip(sealed["cts"].as_array().unwrap())
    {
        pts.push(hexs(&ctx.open(&bytes(&m["aad"]), &bytes(ct))?));
    }
    let exports = exports_of(case, |c, out| ctx.export(c, out).unwrap());
    Ok(json!({ "pts": pts, "exports": exports }))
}

pub fn envelope_recipients(env: &Value) -> Vec<SealingKeyPair> {
    env["recipients_ikm"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ikm| hpke::derive_key_pair(&bytes(ikm)).unwrap())
        .collect()
}

fn stream_id(env: &Value) -> StreamId {
    StreamId(bytes(&env["stream_id"]).try_into().unwrap())
}

/// Seals the envelope with a [`TestRng`] seeded from `env["ours"]["rng_seed"]`, opens it as the
/// answering recipient and seals the answer chunks: `{"rng_seed", "envelope", "chunks"}`.
pub fn envelope_seal(env: &Value) -> Value {
    let seed = env["ours"]["rng_seed"].as_u64().unwrap();
    let keys = envelope_recipients(env);
    let recipients: Vec<(KeyId, _)> = keys.iter().map(|k| (k.key_id(), k.public())).collect();
    let mut rng = TestRng::new(seed);
    let sealed = Envelope::seal(
        &recipients,
        &bytes(&env["aad"]),
        &bytes(&env["pt"]),
        &mut rng,
    )
    .unwrap();

    let answering = &keys[usize::try_from(env["answering"].as_u64().unwrap()).unwrap()];
    let opened = Envelope::open(
        &sealed.bytes,
        answering.key_id(),
        answering,
        &bytes(&env["aad"]),
    )
    .unwrap();
    let mut sealer = opened.reply_key.sealer_with_stream_id(stream_id(env));
    let answer = env["answer_chunks"].as_array().unwrap();
    let chunks: Vec<Value> = answer
        .iter()
        .enumerate()
        .map(|(i, pt)| {
            let pt = bytes(pt);
            let chunk = if i + 1 == answer.len() {
                sealer.seal_final(&pt)
            } else {
                sealer.seal(&pt)
            };
            hexs(&chunk.unwrap())
        })
        .collect();
    json!({ "rng_seed": seed, "envelope": hexs(&sealed.bytes), "chunks": chunks })
}

/// Opens an envelope and answer stream from elsewhere: every recipient opens the envelope, and the
/// answering recipient's reply key opens the chunks. `{"pts": [per recipient], "answer": [...]}`.
pub fn envelope_open(env: &Value, sealed: &Value) -> Result<Value, SealError> {
    let keys = envelope_recipients(env);
    let envelope = bytes(&sealed["envelope"]);
    let aad = bytes(&env["aad"]);
    let mut pts = Vec::new();
    let mut reply_keys = Vec::new();
    for key in &keys {
        let opened = Envelope::open(&envelope, key.key_id(), key, &aad)?;
        pts.push(hexs(&opened.plaintext));
        reply_keys.push(opened.reply_key);
    }
    let answering = usize::try_from(env["answering"].as_u64().unwrap()).unwrap();
    let mut opener = reply_keys[answering].opener_for(stream_id(env));
    let mut answer = Vec::new();
    for chunk in sealed["chunks"].as_array().unwrap() {
        answer.push(hexs(&opener.open(&bytes(chunk))?.plaintext));
    }
    opener.finish()?;
    Ok(json!({ "pts": pts, "answer": answer }))
}

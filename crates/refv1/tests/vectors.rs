//! Known-answer tests: every value of `fixtures/refv1_vectors.json` (written by the independent
//! Python implementation `scripts/interop/refv1_vectors.py`) is reproduced exactly, and every
//! ciphertext opens.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;

use cocoon_refv1::body::{FIELD_NONCE, open_request};
use cocoon_refv1::string::MAX_PREFIX_LEN;
use cocoon_refv1::{
    Direction, Ed25519Public, Ed25519Seed, RefV1Error, SharedSecret, StringCipher, encrypt_request,
};
use serde_json::Value;

fn vectors() -> Value {
    let text = include_str!("fixtures/refv1_vectors.json");
    serde_json::from_str(text).expect("fixture parses")
}

fn bytes32(v: &Value, field: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(v[field].as_str().expect(field), &mut out).expect(field);
    out
}

/// The generator's deterministic tape: byte i is (7 i + 3) mod 256.
struct Tape(usize);

impl rand_core::TryRng for Tape {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for b in dst {
            *b = ((7 * self.0 + 3) % 256) as u8;
            self.0 += 1;
        }
        Ok(())
    }
}
impl rand_core::TryCryptoRng for Tape {}

struct Keys {
    client: Ed25519Seed,
    worker: Ed25519Seed,
    nonce: [u8; 32],
    nonce_text: String,
}

fn keys(v: &Value) -> Keys {
    Keys {
        client: Ed25519Seed::from_bytes(bytes32(v, "client_seed_hex")),
        worker: Ed25519Seed::from_bytes(bytes32(v, "worker_seed_hex")),
        nonce: bytes32(v, "nonce_hex"),
        nonce_text: v["nonce_text"].as_str().unwrap().to_owned(),
    }
}

#[test]
fn ed25519_to_x25519_conversion_and_shared_point_match() {
    let v = vectors();
    let k = keys(&v);
    let client_pub = k.client.public();
    let worker_pub = k.worker.public();
    assert_eq!(client_pub.0, bytes32(&v, "client_public_hex"));
    assert_eq!(worker_pub.0, bytes32(&v, "worker_public_hex"));
    assert_eq!(
        client_pub.to_x25519("sender").unwrap(),
        bytes32(&v, "client_x25519_public_hex")
    );
    assert_eq!(
        worker_pub.to_x25519("receiver").unwrap(),
        bytes32(&v, "worker_x25519_public_hex")
    );
    let point = bytes32(&v, "shared_point_hex");
    assert_eq!(
        k.client.x25519_with(&worker_pub, "receiver").unwrap(),
        point
    );
    assert_eq!(k.worker.x25519_with(&client_pub, "sender").unwrap(), point);
}

#[test]
fn shared_secrets_of_both_directions_match() {
    let v = vectors();
    let k = keys(&v);
    let worker_pub = k.worker.public();
    for (dir, field) in [
        (Direction::ClientToWorker, "secret_c_hex"),
        (Direction::WorkerToClient, "secret_w_hex"),
    ] {
        let from_client = SharedSecret::derive(&k.client, &worker_pub, &k.nonce_text, dir, "r");
        let from_worker =
            SharedSecret::derive(&k.worker, &k.client.public(), &k.nonce_text, dir, "s");
        assert_eq!(from_client.unwrap().as_bytes(), &bytes32(&v, field));
        assert_eq!(from_worker.unwrap().as_bytes(), &bytes32(&v, field));
    }
}

#[test]
fn every_string_vector_is_reproduced_and_opens() {
    let v = vectors();
    let k = keys(&v);
    let worker_pub = k.worker.public();
    let strings = v["strings"].as_array().unwrap();
    assert_eq!(strings.len(), 14);
    for s in strings {
        let dir = match s["direction"].as_str().unwrap() {
            "c" => Direction::ClientToWorker,
            _ => Direction::WorkerToClient,
        };
        let secret = SharedSecret::derive(&k.client, &worker_pub, &k.nonce_text, dir, "r").unwrap();
        let cipher = StringCipher::new(&secret);
        let mut random = [0u8; MAX_PREFIX_LEN];
        hex::decode_to_slice(s["random_hex"].as_str().unwrap(), &mut random).unwrap();
        let plain = s["plaintext"].as_str().unwrap();
        let expected = hex::decode(s["ciphertext_hex"].as_str().unwrap()).unwrap();
        assert_eq!(
            cipher.encrypt_with(plain.as_bytes(), &random),
            expected,
            "{plain:?}"
        );
        assert_eq!(cipher.decrypt(&expected).unwrap(), plain.as_bytes());
    }
}

#[test]
fn request_body_is_reproduced_and_opens_to_the_plain_body() {
    let v = vectors();
    let k = keys(&v);
    let sent = encrypt_request(
        v["request_plain"].clone(),
        &k.client,
        &k.worker.public(),
        &k.nonce,
        &mut Tape(0),
    )
    .unwrap();
    assert_eq!(sent.body, v["request_encrypted"]);

    let opened = open_request(v["request_encrypted"].clone(), &k.worker).unwrap();
    assert_eq!(opened.body, v["request_plain"]);
    assert_eq!(opened.sender, k.client.public());

    // The worker's answer, "w" direction, reproduced; the client opens it.
    let mut answer = v["answer_plain"].clone();
    opened
        .answers
        .encrypt_answer(&mut answer, &mut Tape(0))
        .unwrap();
    assert_eq!(answer, v["answer_encrypted"]);
    sent.answers.decrypt_answer(&mut answer).unwrap();
    assert_eq!(answer, v["answer_plain"]);
}

#[test]
fn a_body_for_another_key_or_tampered_is_refused() {
    let v = vectors();
    let k = keys(&v);
    let other = Ed25519Seed::from_bytes([9; 32]);
    assert_eq!(
        open_request(v["request_encrypted"].clone(), &other).unwrap_err(),
        RefV1Error::WrongReceiver
    );

    let mut body = v["request_encrypted"].clone();
    let content = body["messages"][1]["content"].as_str().unwrap().to_owned();
    let flipped = format!(
        "{}{}",
        &content[..content.len() - 1],
        if content.ends_with('0') { '1' } else { '0' }
    );
    body["messages"][1]["content"] = Value::from(flipped);
    match open_request(body, &k.worker).unwrap_err() {
        RefV1Error::Value { path, source } => {
            assert_eq!(path, "/messages/1/content");
            assert_eq!(*source, RefV1Error::BadMac);
        }
        other => panic!("unexpected {other:?}"),
    }

    let mut body = v["request_encrypted"].clone();
    body[FIELD_NONCE] = Value::from("AAAA");
    assert!(matches!(
        open_request(body, &k.worker).unwrap_err(),
        RefV1Error::BadKeyField {
            field: FIELD_NONCE,
            ..
        }
    ));

    let mut body = v["request_encrypted"].clone();
    body["is_encrypted"] = Value::from("v2");
    assert_eq!(
        open_request(body, &k.worker).unwrap_err(),
        RefV1Error::UnsupportedVersion("v2".into())
    );
}

#[test]
fn dec_values_open_to_their_text_and_keys_off_the_curve_are_refused() {
    let v = vectors();
    let k = keys(&v);
    let mut body = v["request_encrypted"].clone();
    body["messages"][0]["content"] = Value::from("DEC_left in clear");
    let opened = open_request(body, &k.worker).unwrap();
    assert_eq!(opened.body["messages"][0]["content"], "left in clear");

    // y = 2 is not the y of any curve point.
    let mut off = [0u8; 32];
    off[0] = 2;
    assert_eq!(
        Ed25519Public(off).to_x25519("sender"),
        Err(RefV1Error::InvalidPublicKey { which: "sender" })
    );
}

#[test]
fn streamed_answers_round_trip_in_any_pieces() {
    use cocoon_refv1::{AnswerDecryptor, AnswerEncryptor, AnswerFraming};
    let v = vectors();
    let k = keys(&v);
    let sent = encrypt_request(
        v["request_plain"].clone(),
        &k.client,
        &k.worker.public(),
        &k.nonce,
        &mut Tape(0),
    )
    .unwrap();
    let opened = open_request(sent.body.clone(), &k.worker).unwrap();

    let sse = concat!(
        ": keep-alive\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"},\"index\":0}],\"model\":\"m\"}\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"},\"index\":0}],\"model\":\"m\"}\r\n\r\n",
        "data: [DONE]\n\n"
    );
    for piece in [1usize, 7, 64, sse.len()] {
        let mut enc = AnswerEncryptor::new(opened.answers.clone(), AnswerFraming::EventStream);
        let mut wire = Vec::new();
        for chunk in sse.as_bytes().chunks(piece) {
            wire.extend(enc.push(chunk, &mut Tape(piece)).unwrap());
        }
        wire.extend(enc.finish(&mut Tape(0)).unwrap());
        let wire_text = String::from_utf8(wire.clone()).unwrap();
        assert!(!wire_text.contains("Hel"), "{wire_text}");
        assert!(
            wire_text.contains("\"model\":\"m\""),
            "exempt field stays clear"
        );
        assert!(wire_text.contains("data: [DONE]\n\n"));

        let mut dec = AnswerDecryptor::new(sent.answers.clone(), AnswerFraming::EventStream);
        let mut plain = Vec::new();
        for chunk in wire.chunks(piece) {
            plain.extend(dec.push(chunk).unwrap());
        }
        plain.extend(dec.finish().unwrap());
        let plain: String = String::from_utf8(plain).unwrap();
        assert!(plain.contains("{\"content\":\"Hel\"}") && plain.contains("\"lo\""));
        assert!(plain.ends_with("data: [DONE]\n\n"));
    }

    let doc = br#"{"choices":[{"message":{"content":"Hi","role":"assistant"}}],"model":"m"}"#;
    let mut enc = AnswerEncryptor::new(opened.answers.clone(), AnswerFraming::Document);
    assert!(enc.push(&doc[..10], &mut Tape(0)).unwrap().is_empty());
    assert!(enc.push(&doc[10..], &mut Tape(0)).unwrap().is_empty());
    let wire = enc.finish(&mut Tape(0)).unwrap();
    let mut dec = AnswerDecryptor::new(sent.answers, AnswerFraming::Document);
    dec.push(&wire).unwrap();
    let back: Value = serde_json::from_slice(&dec.finish().unwrap()).unwrap();
    assert_eq!(back, serde_json::from_slice::<Value>(doc).unwrap());

    // What the scheme cannot cover is refused, never passed in clear: a data line that is not
    // JSON, an answer that is not JSON.
    let mut enc = AnswerEncryptor::new(opened.answers.clone(), AnswerFraming::EventStream);
    assert_eq!(
        enc.push(b"data: secret words in clear\n\n", &mut Tape(0)),
        Err(RefV1Error::UncoveredAnswer)
    );
    let mut enc = AnswerEncryptor::new(opened.answers.clone(), AnswerFraming::Document);
    enc.push(b"secret words in clear", &mut Tape(0)).unwrap();
    assert_eq!(enc.finish(&mut Tape(0)), Err(RefV1Error::UncoveredAnswer));
    // Nor is clear text taken from a relay as if it were the worker's.
    let mut dec = AnswerDecryptor::new(opened.answers, AnswerFraming::EventStream);
    assert_eq!(
        dec.push(b"data: injected\n\n"),
        Err(RefV1Error::UncoveredAnswer)
    );
}

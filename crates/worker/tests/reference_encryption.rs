//! A reference proxy hands the worker a `private_key` with a body in the reference's own
//! encryption (`"is_encrypted": "v1"`): the worker opens it (the engine gets the plain request),
//! encrypts the answer back, streamed or whole, and refuses a body it cannot open.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use cocoon_protocol::Message;
use cocoon_protocol::messages::{http, proxy};
use cocoon_protocol::tl::{Int256, TlConstructor};
use cocoon_refv1::{
    AnswerDecryptor, AnswerFraming, Ed25519Seed, EncryptedRequest, encrypt_request,
};
use cocoon_seal::SystemRng;
use serde_json::{Value, json};
use support::*;

/// The receiver key a key manager would have handed to the proxy and the worker.
const RECEIVER_SEED: [u8; 32] = [0x31; 32];

fn reference_run(body: &Value, request_id: u8, private_key: Option<[u8; 32]>) -> proxy::RunQueryEx {
    proxy::RunQueryEx {
        query: query(body),
        signed_payment: proxy::AnySignedPayment::default(),
        coefficient: 1000,
        timeout: 30.0,
        request_id: Int256([request_id; 32]),
        flags: if private_key.is_some() { 2 } else { 0 },
        enable_debug: None,
        private_key: private_key.map(Int256),
    }
}

fn encrypted(body: Value) -> EncryptedRequest {
    let client = Ed25519Seed::generate(&mut SystemRng).unwrap();
    let receiver = Ed25519Seed::from_bytes(RECEIVER_SEED).public();
    encrypt_request(body, &client, &receiver, &[0x44; 32], &mut SystemRng).unwrap()
}

/// The answer to `request_id`: content type and body bytes as they came, or the error.
async fn collect(
    proxy: &mut ScriptedProxy,
    request_id: u8,
) -> Result<(Option<String>, Vec<u8>), (i32, String)> {
    let id = Int256([request_id; 32]);
    let mut content_type = None;
    let mut body = Vec::new();
    loop {
        match proxy.next_for(id).await {
            Message::ProxyQueryAnswerEx(m) => {
                let head = http::Response::from_boxed_bytes(m.answer).unwrap();
                assert!(
                    !head
                        .headers
                        .iter()
                        .any(|h| h.name.eq_ignore_ascii_case("content-length")),
                    "the encrypted body's length differs: no Content-Length"
                );
                content_type = head
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-type"))
                    .map(|h| h.value.clone());
                body.extend_from_slice(&head.payload);
                if m.final_info.is_some() {
                    return Ok((content_type, body));
                }
            }
            Message::ProxyQueryAnswerPartEx(m) => {
                body.extend_from_slice(&m.answer);
                if m.final_info.is_some() {
                    return Ok((content_type, body));
                }
            }
            Message::ProxyQueryAnswerErrorEx(m) => return Err((m.error_code, m.error)),
            _ => {}
        }
    }
}

fn open_answer(sent: &EncryptedRequest, content_type: Option<&str>, wire: &[u8]) -> Vec<u8> {
    let mut dec = AnswerDecryptor::new(
        sent.answers.clone(),
        AnswerFraming::from_content_type(content_type),
    );
    let mut plain = dec.push(wire).unwrap();
    plain.extend(dec.finish().unwrap());
    plain
}

/// The assistant text of an answer, streamed (SSE deltas) or whole.
fn text_of(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if let Ok(doc) = serde_json::from_str::<Value>(&text) {
        return doc["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|d| {
            d["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_a_private_key_is_opened_and_answered_encrypted() {
    let up = upstream(small_answer()).await;
    let (mut proxy, _) = net(&up).await;

    for (stream, base_id) in [(true, 1u8), (false, 10u8)] {
        let plain_body = chat(json!({"stream": stream, "max_tokens": 4}));

        // The same request in clear, for the expected text.
        proxy.send(reference_run(&plain_body, base_id, None)).await;
        let (ct, clear) = collect(&mut proxy, base_id).await.unwrap();
        let expected = text_of(&clear);
        assert!(!expected.is_empty(), "no text in {ct:?}");

        let sent = encrypted(plain_body.clone());
        proxy
            .send(reference_run(&sent.body, base_id + 1, Some(RECEIVER_SEED)))
            .await;
        let (content_type, wire) = collect(&mut proxy, base_id + 1).await.unwrap();

        // The engine got the plain request, without the scheme's fields.
        let recorded = up.recorded_requests();
        let got: Value = serde_json::from_slice(&recorded.last().unwrap().body).unwrap();
        assert_eq!(got["messages"], plain_body["messages"]);
        assert!(got.get("is_encrypted").is_none() && got.get("encryption_nonce").is_none());

        // On the wire the answer's strings are ENC_ values; the client opens them.
        let wire_text = String::from_utf8_lossy(&wire).into_owned();
        assert!(wire_text.contains("\"ENC_"), "{wire_text}");
        assert!(
            !wire_text.contains(&expected),
            "answer text in clear: {wire_text}"
        );
        let plain = open_answer(&sent, content_type.as_deref(), &wire);
        assert_eq!(text_of(&plain), expected, "stream={stream}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_it_cannot_open_is_refused_before_the_engine() {
    let up = upstream(small_answer()).await;
    let (mut proxy, _) = net(&up).await;

    // Encrypted for the receiver, but the proxy hands another key.
    let sent = encrypted(chat(json!({})));
    proxy
        .send(reference_run(&sent.body, 1, Some([0x32; 32])))
        .await;
    let (code, error) = collect(&mut proxy, 1).await.unwrap_err();
    assert_eq!(code, 400);
    assert!(error.contains("another receiver key"), "{error}");

    // Tampered content.
    let mut body = sent.body.clone();
    let content = body["messages"][0]["content"].as_str().unwrap().to_owned();
    body["messages"][0]["content"] = Value::from(content.replacen("ENC_", "ENC_00", 1));
    proxy
        .send(reference_run(&body, 2, Some(RECEIVER_SEED)))
        .await;
    let (code, error) = collect(&mut proxy, 2).await.unwrap_err();
    assert_eq!(code, 400);
    assert!(error.contains("/messages/0/content"), "{error}");

    // Encrypted, but no key from the proxy: the scheme's fields are not accepted.
    proxy.send(reference_run(&sent.body, 3, None)).await;
    let (code, _) = collect(&mut proxy, 3).await.unwrap_err();
    assert_eq!(code, 400);
    assert_eq!(
        up.stats().requests,
        0,
        "a refused request reached the engine"
    );
}

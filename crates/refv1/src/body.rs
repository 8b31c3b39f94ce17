//! The JSON body transform: which values of a request (or answer) are encrypted, the four fields
//! the scheme adds, and opening a body addressed to us.
//!
//! Rules (from the reference's behaviour):
//! * every string value, at any depth, becomes `"ENC_" + hex(ciphertext)`, except the value of a
//!   member whose key is in [`EXEMPT_FIELDS`] (left exactly as it is, whatever its type);
//! * `"DEC_" + text` is a value the sender chose to leave in clear; it opens to `text`;
//! * object keys, numbers, booleans and null are never encrypted;
//! * a request gains `is_encrypted: "v1"`, `sender_public_key`, `receiver_public_key` (hex) and
//!   `encryption_nonce` (base64 of 32 bytes); opening removes them again, so the engine behind a
//!   worker sees the plain request.
//!
//! Opening is lenient in one way only: a non-exempt string that carries neither prefix is kept as
//! it is, so that a sender exempting more fields than we know still interoperates. Every
//! `ENC_` value must authenticate; one that does not fails the whole body.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::error::{RefV1Error, Result};
use crate::keys::{Direction, Ed25519Public, Ed25519Seed, SharedSecret};
use crate::string::StringCipher;

/// The value of `is_encrypted` this crate speaks.
pub const VERSION: &str = "v1";
/// Marks an encrypted string value.
pub const ENC_PREFIX: &str = "ENC_";
/// Marks a string value left in clear.
pub const DEC_PREFIX: &str = "DEC_";
/// Deepest nesting walked; deeper bodies are refused (serde_json's own parser stops at 128).
pub const MAX_DEPTH: usize = 128;

/// Field names added by the scheme.
pub const FIELD_IS_ENCRYPTED: &str = "is_encrypted";
/// Hex of the sender's Ed25519 public key.
pub const FIELD_SENDER: &str = "sender_public_key";
/// Hex of the receiver's Ed25519 public key.
pub const FIELD_RECEIVER: &str = "receiver_public_key";
/// Base64 of the 32-byte nonce; its text goes into the shared secret.
pub const FIELD_NONCE: &str = "encryption_nonce";

/// Members whose values are never encrypted: what the proxy must read to route and bill, and the
/// scheme's own fields.
pub const EXEMPT_FIELDS: [&str; 12] = [
    "model",
    "max_completion_tokens",
    "max_tokens",
    "max_coefficient",
    "timeout",
    "debug",
    "enable_debug",
    "request_guid",
    FIELD_IS_ENCRYPTED,
    FIELD_SENDER,
    FIELD_RECEIVER,
    FIELD_NONCE,
];

/// Whether a parsed body says it is encrypted in some version of the scheme.
pub fn is_encrypted(body: &Value) -> bool {
    body.get(FIELD_IS_ENCRYPTED).is_some()
}

/// Parse a body's bytes into a JSON object.
pub fn parse_body(bytes: &[u8]) -> Result<Value> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| RefV1Error::NotAnObject(e.to_string()))?;
    if !value.is_object() {
        return Err(RefV1Error::NotAnObject(
            "top-level value is not an object".into(),
        ));
    }
    Ok(value)
}

fn walk(
    value: &mut Value,
    depth: usize,
    path: &mut String,
    f: &mut dyn FnMut(&mut String, &str) -> Result<()>,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(RefV1Error::TooDeep { max: MAX_DEPTH });
    }
    match value {
        Value::String(s) => f(s, path),
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push('/');
                path.push_str(&i.to_string());
                walk(item, depth + 1, path, f)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if EXEMPT_FIELDS.contains(&key.as_str()) {
                    continue;
                }
                let len = path.len();
                path.push('/');
                path.push_str(&key.replace('~', "~0").replace('/', "~1"));
                walk(item, depth + 1, path, f)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

fn encrypt_strings<R: rand_core::TryCryptoRng + ?Sized>(
    value: &mut Value,
    cipher: &StringCipher,
    rng: &mut R,
) -> Result<()> {
    walk(value, 0, &mut String::new(), &mut |s, _path| {
        let ct = cipher.encrypt(s.as_bytes(), rng)?;
        *s = format!("{ENC_PREFIX}{}", hex::encode(ct));
        Ok(())
    })
}

fn decrypt_strings(value: &mut Value, cipher: &StringCipher) -> Result<()> {
    walk(value, 0, &mut String::new(), &mut |s, path| {
        if let Some(hex_text) = s.strip_prefix(ENC_PREFIX) {
            let ct = hex::decode(hex_text).map_err(|_| RefV1Error::NotHex { path: path.into() })?;
            let plain = cipher.decrypt(&ct).map_err(|e| RefV1Error::Value {
                path: path.into(),
                source: Box::new(e),
            })?;
            *s = String::from_utf8(plain).map_err(|_| RefV1Error::NotUtf8 { path: path.into() })?;
        } else if let Some(clear) = s.strip_prefix(DEC_PREFIX) {
            *s = clear.to_owned();
        }
        Ok(())
    })
}

fn object_mut(body: &mut Value) -> Result<&mut Map<String, Value>> {
    body.as_object_mut()
        .ok_or_else(|| RefV1Error::NotAnObject("top-level value is not an object".into()))
}

/// Encrypts (worker side) or opens (client side) the answers to one request: the "w" direction
/// of that request's key pair and nonce.
#[derive(Debug, Clone)]
pub struct AnswerCipher {
    cipher: StringCipher,
}

impl AnswerCipher {
    /// Encrypt an answer object (a whole JSON answer, or one SSE chunk's JSON) in place.
    pub fn encrypt_answer<R: rand_core::TryCryptoRng + ?Sized>(
        &self,
        answer: &mut Value,
        rng: &mut R,
    ) -> Result<()> {
        encrypt_strings(answer, &self.cipher, rng)
    }

    /// Open an answer object (or SSE chunk) in place.
    pub fn decrypt_answer(&self, answer: &mut Value) -> Result<()> {
        decrypt_strings(answer, &self.cipher)
    }
}

/// A request encrypted by [`encrypt_request`], and the cipher for its answers.
#[derive(Debug)]
pub struct EncryptedRequest {
    /// The body to send (with the scheme's four fields added).
    pub body: Value,
    /// Opens the worker's answers.
    pub answers: AnswerCipher,
}

/// Encrypt a request body for `receiver` (client side): every non-exempt string is encrypted and
/// the four fields are added. `nonce` is 32 random bytes chosen by the caller.
pub fn encrypt_request<R: rand_core::TryCryptoRng + ?Sized>(
    mut body: Value,
    sender: &Ed25519Seed,
    receiver: &Ed25519Public,
    nonce: &[u8; 32],
    rng: &mut R,
) -> Result<EncryptedRequest> {
    let map = object_mut(&mut body)?;
    for field in [
        FIELD_IS_ENCRYPTED,
        FIELD_SENDER,
        FIELD_RECEIVER,
        FIELD_NONCE,
    ] {
        if map.contains_key(field) {
            return Err(RefV1Error::AlreadyEncrypted(field));
        }
    }
    let nonce_text = BASE64.encode(nonce);
    let request = SharedSecret::derive(
        sender,
        receiver,
        &nonce_text,
        Direction::ClientToWorker,
        "receiver",
    )?;
    let answer = SharedSecret::derive(
        sender,
        receiver,
        &nonce_text,
        Direction::WorkerToClient,
        "receiver",
    )?;
    encrypt_strings(&mut body, &StringCipher::new(&request), rng)?;
    let map = object_mut(&mut body)?;
    map.insert(FIELD_IS_ENCRYPTED.into(), Value::from(VERSION));
    map.insert(FIELD_SENDER.into(), Value::from(sender.public().to_hex()));
    map.insert(FIELD_RECEIVER.into(), Value::from(receiver.to_hex()));
    map.insert(FIELD_NONCE.into(), Value::from(nonce_text));
    Ok(EncryptedRequest {
        body,
        answers: AnswerCipher {
            cipher: StringCipher::new(&answer),
        },
    })
}

/// A request opened by [`open_request`].
#[derive(Debug)]
pub struct OpenedRequest {
    /// The plain body, without the scheme's four fields.
    pub body: Value,
    /// The sender's public key, as the body named it.
    pub sender: Ed25519Public,
    /// Encrypts the answers back to the sender.
    pub answers: AnswerCipher,
}

fn take_string(map: &mut Map<String, Value>, field: &'static str) -> Result<String> {
    match map.remove(field) {
        Some(Value::String(s)) => Ok(s),
        _ => Err(RefV1Error::MissingField { field }),
    }
}

/// Open an encrypted request body with the receiver's private key (worker side; a proxy holding
/// the key could do the same, which is the scheme's weakness).
pub fn open_request(mut body: Value, receiver: &Ed25519Seed) -> Result<OpenedRequest> {
    let map = object_mut(&mut body)?;
    let version = take_string(map, FIELD_IS_ENCRYPTED)?;
    if version != VERSION {
        return Err(RefV1Error::UnsupportedVersion(version));
    }
    let sender = Ed25519Public::from_hex(&take_string(map, FIELD_SENDER)?, FIELD_SENDER)?;
    let named_receiver =
        Ed25519Public::from_hex(&take_string(map, FIELD_RECEIVER)?, FIELD_RECEIVER)?;
    let nonce_text = take_string(map, FIELD_NONCE)?;
    let nonce =
        Zeroizing::new(
            BASE64
                .decode(&nonce_text)
                .map_err(|_| RefV1Error::BadKeyField {
                    field: FIELD_NONCE,
                    encoding: "base64",
                })?,
        );
    if nonce.len() != 32 {
        return Err(RefV1Error::BadKeyField {
            field: FIELD_NONCE,
            encoding: "base64",
        });
    }
    if named_receiver != receiver.public() {
        return Err(RefV1Error::WrongReceiver);
    }
    let request = SharedSecret::derive(
        receiver,
        &sender,
        &nonce_text,
        Direction::ClientToWorker,
        "sender",
    )?;
    let answer = SharedSecret::derive(
        receiver,
        &sender,
        &nonce_text,
        Direction::WorkerToClient,
        "sender",
    )?;
    decrypt_strings(&mut body, &StringCipher::new(&request))?;
    Ok(OpenedRequest {
        body,
        sender,
        answers: AnswerCipher {
            cipher: StringCipher::new(&answer),
        },
    })
}

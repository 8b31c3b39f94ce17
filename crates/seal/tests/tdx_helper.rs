//! The TD side of the TDX key-helper exchange, against a fake helper on a Unix socket: keys are
//! bound to the measurement the (fake) quote carries, answers are bound to the request and the
//! pinned helper key, and an absent or misbehaving helper gives a typed error.
//!
//! The fake helper does everything a real one does except DCAP verification: its "quote" is
//! `b"FAKEQUOTE" || measurement (48) || report data (64)`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use cocoon_seal::key_source::tdx_helper::{
    KeyRequest, KeyResponse, MAX_REQUEST_LEN, RefusalCode, read_frame, write_frame,
};
use cocoon_seal::{
    KeyPurpose, KeySource, KeySourceKind, SealError, SealedKeyFile, SealingKeyPair, SecretKind,
    SystemRng, TdQuoteSource, TdxHelperKeySource,
};
use sha2::{Digest, Sha256};

const QUOTE_TAG: &[u8] = b"FAKEQUOTE";

/// Quotes for a TD with a fixed measurement; optionally lies about the report data.
#[derive(Clone)]
struct FakeQuotes {
    measurement: [u8; 48],
    wrong_report_data: bool,
}

impl TdQuoteSource for FakeQuotes {
    fn td_quote(
        &self,
        report_data: &[u8; 64],
    ) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        let mut quote = QUOTE_TAG.to_vec();
        quote.extend_from_slice(&self.measurement);
        if self.wrong_report_data {
            quote.extend_from_slice(&[0u8; 64]);
        } else {
            quote.extend_from_slice(report_data);
        }
        Ok(quote)
    }
}

struct NoQuotes;

impl TdQuoteSource for NoQuotes {
    fn td_quote(&self, _: &[u8; 64]) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        Err("configfs-tsm report interface missing".into())
    }
}

#[derive(Clone, Copy)]
enum Behaviour {
    /// Verify and grant, like a real helper.
    Honest,
    /// Answer with bytes that are not a response.
    Garbage,
    /// Close the connection without answering.
    HangUp,
    /// Answer every request with the response recorded for the first one.
    Replay,
}

struct FakeHelper {
    socket: PathBuf,
    key: SealingKeyPair,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeHelper {
    /// Serves `connections` connections on a socket in `dir`.
    fn start(dir: &Path, behaviour: Behaviour, connections: usize) -> Self {
        let socket = dir.join("key-helper.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let key = SealingKeyPair::generate(&mut SystemRng).unwrap();
        let helper_key = key.clone();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let master_secret = [0x4du8; 32];
        let thread = std::thread::spawn(move || {
            let mut recorded: Option<Vec<u8>> = None;
            for _ in 0..connections {
                let (mut stream, _) = listener.accept().unwrap();
                let request = read_frame(&mut stream, MAX_REQUEST_LEN).unwrap();
                seen.lock().unwrap().push(request.clone());
                let response = match behaviour {
                    Behaviour::HangUp => continue,
                    Behaviour::Garbage => b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
                    Behaviour::Honest | Behaviour::Replay => {
                        let fresh = answer(&helper_key, &master_secret, &request).encode();
                        match (behaviour, &recorded) {
                            (Behaviour::Replay, Some(first)) => first.clone(),
                            _ => {
                                recorded = Some(fresh.clone());
                                fresh
                            }
                        }
                    }
                };
                write_frame(&mut stream, &response).unwrap();
            }
        });
        Self {
            socket,
            key,
            requests,
            thread: Some(thread),
        }
    }

    fn source(&self, quotes: FakeQuotes) -> TdxHelperKeySource<FakeQuotes> {
        TdxHelperKeySource::new(&self.socket, self.key.public(), quotes)
            .with_timeout(Duration::from_secs(10))
    }

    fn join(mut self) -> Vec<Vec<u8>> {
        self.thread.take().unwrap().join().unwrap();
        self.requests.lock().unwrap().clone()
    }
}

/// What a real helper does after DCAP verification: check the report data, apply policy, derive.
fn answer(helper: &SealingKeyPair, master_secret: &[u8; 32], request: &[u8]) -> KeyResponse {
    let Ok(parsed) = KeyRequest::parse(request) else {
        return KeyResponse::refuse(RefusalCode::MalformedRequest, "unparseable");
    };
    let quote = parsed.quote();
    if quote.len() != QUOTE_TAG.len() + 48 + 64 || !quote.starts_with(QUOTE_TAG) {
        return KeyResponse::refuse(RefusalCode::QuoteRejected, "not a quote");
    }
    let measurement = &quote[QUOTE_TAG.len()..QUOTE_TAG.len() + 48];
    if quote[QUOTE_TAG.len() + 48..] != parsed.report_data() {
        return KeyResponse::refuse(
            RefusalCode::QuoteRejected,
            "quote report data does not match the request",
        );
    }
    if parsed.purpose().label().starts_with("forbidden/") {
        return KeyResponse::refuse(RefusalCode::PurposeNotAllowed, "no keys for this purpose");
    }
    let key: [u8; 32] = Sha256::new()
        .chain_update(master_secret)
        .chain_update(measurement)
        .chain_update(parsed.purpose().label())
        .finalize()
        .into();
    KeyResponse::grant(helper, request, &key, &mut SystemRng).unwrap()
}

fn td(measurement: u8) -> FakeQuotes {
    FakeQuotes {
        measurement: [measurement; 48],
        wrong_report_data: false,
    }
}

#[test]
fn keys_are_stable_per_measurement_and_purpose() {
    let dir = tempfile::tempdir().unwrap();
    let helper = FakeHelper::start(dir.path(), Behaviour::Honest, 4);
    let source = helper.source(td(1));
    assert_eq!(source.kind(), KeySourceKind::TdxHelper);
    assert!(!source.is_simulated());

    let a = source.derive_key(KeyPurpose::WALLET_KEY).unwrap();
    let b = source.derive_key(KeyPurpose::WALLET_KEY).unwrap();
    let c = source.derive_key(KeyPurpose::SEALING_KEY).unwrap();
    let d = helper
        .source(td(2))
        .derive_key(KeyPurpose::WALLET_KEY)
        .unwrap();
    assert_eq!(a.as_bytes(), b.as_bytes());
    assert_ne!(a.as_bytes(), c.as_bytes());
    assert_ne!(a.as_bytes(), d.as_bytes());

    // Each request used a fresh reply key and nonce, and its quote vouched for exactly it.
    let requests = helper.join();
    assert_eq!(requests.len(), 4);
    let first = KeyRequest::parse(&requests[0]).unwrap();
    let second = KeyRequest::parse(&requests[1]).unwrap();
    assert_ne!(first.reply_key(), second.reply_key());
    assert_ne!(first.nonce(), second.nonce());
    assert_eq!(first.quote()[QUOTE_TAG.len() + 48..], first.report_data());
}

#[test]
fn a_key_file_sealed_in_one_td_does_not_open_in_another() {
    let dir = tempfile::tempdir().unwrap();
    let helper = FakeHelper::start(dir.path(), Behaviour::Honest, 3);
    let path = dir.path().join("wallet.key");
    let created = SealedKeyFile::open_or_create(
        &path,
        &helper.source(td(1)),
        KeyPurpose::WALLET_KEY,
        SecretKind::Ed25519Seed,
        &mut SystemRng,
    )
    .unwrap();
    assert!(created.created);
    let reopened = SealedKeyFile::open(
        &path,
        &helper.source(td(1)),
        KeyPurpose::WALLET_KEY,
        SecretKind::Ed25519Seed,
    )
    .unwrap();
    assert_eq!(*created.secret, *reopened);
    assert_eq!(
        SealedKeyFile::open(
            &path,
            &helper.source(td(9)),
            KeyPurpose::WALLET_KEY,
            SecretKind::Ed25519Seed,
        )
        .unwrap_err(),
        SealError::KeyFileAuthentication
    );
    helper.join();
}

#[test]
fn no_helper_is_a_typed_absence() {
    let dir = tempfile::tempdir().unwrap();
    let helper_key = SealingKeyPair::generate(&mut SystemRng).unwrap().public();
    // No socket file at all.
    let missing = dir.path().join("missing.sock");
    let error = TdxHelperKeySource::new(&missing, helper_key, td(1))
        .derive_key(KeyPurpose::WALLET_KEY)
        .unwrap_err();
    assert_eq!(
        error,
        SealError::KeySourceAbsent {
            kind: KeySourceKind::TdxHelper,
            endpoint: missing.display().to_string(),
        }
    );
    // A stale socket file that nobody listens on any more.
    let stale = dir.path().join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    assert!(matches!(
        TdxHelperKeySource::new(&stale, helper_key, td(1)).derive_key(KeyPurpose::WALLET_KEY),
        Err(SealError::KeySourceAbsent {
            kind: KeySourceKind::TdxHelper,
            ..
        })
    ));
}

#[test]
fn an_answer_from_an_unpinned_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let helper = FakeHelper::start(dir.path(), Behaviour::Honest, 1);
    let impostor_pin = SealingKeyPair::generate(&mut SystemRng).unwrap().public();
    let source = TdxHelperKeySource::new(&helper.socket, impostor_pin, td(1));
    assert_eq!(
        source.derive_key(KeyPurpose::WALLET_KEY).unwrap_err(),
        SealError::KeyHelperAuthentication
    );
    helper.join();
}

#[test]
fn a_replayed_answer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let helper = FakeHelper::start(dir.path(), Behaviour::Replay, 2);
    let source = helper.source(td(1));
    source.derive_key(KeyPurpose::WALLET_KEY).unwrap();
    // Same purpose, same TD: only the binding to the new request can tell the replay apart.
    assert_eq!(
        source.derive_key(KeyPurpose::WALLET_KEY).unwrap_err(),
        SealError::KeyHelperAuthentication
    );
    helper.join();
}

#[test]
fn refusals_are_typed_and_carry_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let helper = FakeHelper::start(dir.path(), Behaviour::Honest, 2);
    let lying = FakeQuotes {
        measurement: [1; 48],
        wrong_report_data: true,
    };
    match helper.source(lying).derive_key(KeyPurpose::WALLET_KEY) {
        Err(SealError::KeySourceRefused {
            kind: KeySourceKind::TdxHelper,
            reason,
        }) => assert!(reason.contains("quote rejected"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    match helper
        .source(td(1))
        .derive_key(KeyPurpose::new("forbidden/x").unwrap())
    {
        Err(SealError::KeySourceRefused { reason, .. }) => {
            assert!(reason.contains("purpose not allowed"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    helper.join();
}

#[test]
fn misbehaving_helpers_give_protocol_errors() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = FakeHelper::start(dir.path(), Behaviour::Garbage, 1);
    assert!(matches!(
        garbage.source(td(1)).derive_key(KeyPurpose::WALLET_KEY),
        Err(SealError::BadMagic { .. })
    ));
    garbage.join();

    let dir = tempfile::tempdir().unwrap();
    let silent = FakeHelper::start(dir.path(), Behaviour::HangUp, 1);
    assert!(matches!(
        silent.source(td(1)).derive_key(KeyPurpose::WALLET_KEY),
        Err(SealError::KeyHelperProtocol(_))
    ));
    silent.join();
}

#[test]
fn a_missing_quote_is_reported_before_contacting_the_helper() {
    let dir = tempfile::tempdir().unwrap();
    let pin = SealingKeyPair::generate(&mut SystemRng).unwrap().public();
    let source = TdxHelperKeySource::new(dir.path().join("unused.sock"), pin, NoQuotes);
    match source.derive_key(KeyPurpose::WALLET_KEY) {
        Err(SealError::QuoteUnavailable(reason)) => assert!(reason.contains("configfs-tsm")),
        other => panic!("expected QuoteUnavailable, got {other:?}"),
    }
}

//! Feeds arbitrary bytes, as a proxy could relay them, to the opener of a sealed answer: alone,
//! behind a genuine first chunk, or as a worker's sealed error message. It must never panic,
//! never accept bytes that are not the genuine stream, and must open the genuine stream
//! whatever follows it only up to the point where the bytes stop being genuine.
#![no_main]

use std::sync::OnceLock;

use cocoon_client::sealed::AnswerOpener;
use cocoon_seal::{Envelope, ReplyKeys, SealingKeyPair, SystemRng};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    keys: ReplyKeys,
    first: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let worker = SealingKeyPair::from_secret_bytes([7; 32]);
        let other = SealingKeyPair::from_secret_bytes([9; 32]);
        let recipients = [(worker.key_id(), worker.public()), (other.key_id(), other.public())];
        let sealed = Envelope::seal(&recipients, &[], b"request", &mut SystemRng).unwrap();
        let opened = Envelope::open(&sealed.bytes, worker.key_id(), &worker, &[]).unwrap();
        let mut sealer = opened.reply_key.sealer(&mut SystemRng).unwrap();
        let first = sealer.seal(b"HTTP/1.1 200 OK").unwrap();
        Fixture { keys: sealed.reply_keys, first }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let f = fixture();
    let mut opener = AnswerOpener::new(f.keys.clone());
    match mode % 3 {
        0 => {
            // Random bytes never open: they would have to forge AES-GCM.
            assert!(opener.open(rest).is_err() || rest.is_empty());
        }
        1 => {
            let mut bytes = f.first.clone();
            bytes.extend_from_slice(rest);
            match opener.open(&bytes) {
                Ok(plain) => {
                    assert!(rest.is_empty());
                    assert_eq!(plain, b"HTTP/1.1 200 OK");
                    assert!(opener.check_complete().is_err());
                }
                Err(_) => assert!(!rest.is_empty()),
            }
        }
        _ => {
            let message = String::from_utf8_lossy(rest).into_owned();
            let sealed = message.starts_with("sealed:");
            let result = opener.open_error(message.clone());
            if sealed {
                assert!(result.is_err());
            } else {
                assert_eq!(result.ok(), Some(message));
            }
        }
    }
});

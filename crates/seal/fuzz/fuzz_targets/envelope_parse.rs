//! Fuzzes envelope parsing and opening: arbitrary bytes must yield a typed error or a consistent
//! view, never a panic, and opening must never succeed on bytes not sealed to the fuzzer's key
//! unless they are a genuine envelope.

#![no_main]

use cocoon_seal::{Envelope, EnvelopeView, SealingKeyPair};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(view) = EnvelopeView::parse(data) else {
        return;
    };
    // A view that parsed is internally consistent.
    let count = view.recipient_count();
    assert!((1..=cocoon_seal::envelope::MAX_RECIPIENTS).contains(&count));
    assert_eq!(view.recipients().count(), count);
    assert!(view.body_len() >= 16);
    assert_eq!(
        data.len(),
        44 + count * cocoon_seal::envelope::RECIPIENT_ENTRY_LEN + view.body_len()
    );
    // Run every entry through the full open path with a fixed key: the HPKE setup, the wrap,
    // the commitment and the body must all fail cleanly.
    let key = SealingKeyPair::from_secret_bytes([0x42; 32]);
    for entry in view.recipients() {
        assert!(view.find(&entry.key_id).is_some());
        let _ = Envelope::open(data, entry.key_id, &key, b"");
    }
});

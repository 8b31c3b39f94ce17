//! Fuzzes chunk framing, parsing and the opener state machine: the input is read as a sequence of
//! length-prefixed chunks, as a transport that concatenates them would deliver it.

#![no_main]

use cocoon_seal::{ChunkView, ReplyKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Parsing the whole input as one chunk agrees with the framing helper.
    if let Ok(view) = ChunkView::parse(data) {
        assert_eq!(ChunkView::frame_len(data).ok().flatten(), Some(data.len()));
        assert!(view.ciphertext.len() >= 16);
    }

    // Read frames one after another and feed them to an opener with a fixed key (a learning
    // opener and a pinned one take different paths).
    let key = ReplyKey::from_bytes([7; 32]);
    let mut learning = key.opener();
    let mut pinned = key.opener_for(cocoon_seal::StreamId([7; 16]));
    let mut rest = data;
    while let Ok(Some(len)) = ChunkView::frame_len(rest) {
        let Some(frame) = rest.get(..len) else { break };
        let _ = learning.open(frame);
        let _ = pinned.open(frame);
        rest = &rest[len..];
    }
    let _ = learning.finish();
    let _ = pinned.finish();
});

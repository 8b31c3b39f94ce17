//! Feeds arbitrary answer bytes, cut at arbitrary points, through the SSE rewriter: it must
//! never panic, and must give the same output however the bytes are cut.
#![no_main]

use cocoon_client::sse::SsePatcher;
use cocoon_client::{CostedUsage, HopTimes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else { return };
    let usage = CostedUsage { total_cost: 7, ..CostedUsage::default() };
    let whole = {
        let mut p = SsePatcher::default();
        let mut out = p.push(body).to_vec();
        out.extend_from_slice(&p.finish(&usage, &HopTimes::default()));
        out
    };
    let step = usize::from(cut).max(1);
    let mut p = SsePatcher::default();
    let mut out = Vec::new();
    for piece in body.chunks(step) {
        out.extend_from_slice(&p.push(piece));
    }
    out.extend_from_slice(&p.finish(&usage, &HopTimes::default()));
    assert_eq!(out, whole);
});

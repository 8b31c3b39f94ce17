//! Feeds arbitrary bytes to the usage meter, whole and cut at fuzzer-chosen points, in every
//! body format: it must never panic, and cutting must never change what it meters.

#![no_main]

use cocoon_infer::usage::{BodyFormat, UsageMeter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    // The first two bytes choose the cuts (as a stride and an offset); the rest is the body.
    let (stride, offset, body) = match input {
        [stride, offset, body @ ..] => (usize::from(*stride) + 1, usize::from(*offset), body),
        _ => return,
    };
    for format in [BodyFormat::Auto, BodyFormat::Sse, BodyFormat::Json] {
        let mut whole = UsageMeter::new(format);
        whole.feed(body);

        let mut split = UsageMeter::new(format);
        let mut start = 0;
        let mut cut = offset.min(body.len());
        while start < body.len() {
            split.feed(&body[start..cut]);
            start = cut;
            cut = (cut + stride).min(body.len());
        }
        assert_eq!(whole.metered(), split.metered());
        assert_eq!(whole.stats(), split.stats());
        assert_eq!(whole.saw_done(), split.saw_done());

        let usage = whole.metered().usage;
        assert!(usage.cached_tokens <= usage.prompt_tokens);
        assert!(usage.reasoning_tokens <= usage.completion_tokens);
    }
});

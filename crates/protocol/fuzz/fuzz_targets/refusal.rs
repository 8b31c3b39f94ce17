//! Error strings from a proxy: any text decodes into a refusal, never a panic; one with a
//! `param` encodes back into a string that decodes to it.

#![no_main]

use cocoon_protocol::refusal::Refusal;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let refusal = Refusal::decode(text);
    assert_eq!(Refusal::decode(&refusal.encode()), refusal);
});

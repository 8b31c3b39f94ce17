//! Untrusted address text (configs, API responses): parsing must never panic, and whatever
//! parses must print and parse back to the same address and flags.
#![no_main]

use cocoon_ton::Address;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(address) = text.parse::<Address>() {
        assert_eq!(Address::from_raw(&address.to_raw()).ok(), Some(address));
    }
    if let Ok((address, flags)) = Address::from_friendly(text) {
        let printed = address.to_friendly(flags);
        assert_eq!(Address::from_friendly(&printed).ok(), Some((address, flags)));
        let printed_std = address.to_friendly_std(flags);
        assert_eq!(Address::from_friendly(&printed_std).ok(), Some((address, flags)));
    }
});

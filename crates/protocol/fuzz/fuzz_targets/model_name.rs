//! Feeds arbitrary text to the model name check: nothing may panic, an accepted name is the
//! text itself, and its base is what the unchecked [`base_name`] says.

#![no_main]

use libfuzzer_sys::fuzz_target;

use cocoon_protocol::model_name::{ModelName, base_name};

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let base = base_name(text);
    assert!(text.starts_with(base));
    if let Ok(name) = ModelName::parse(text) {
        assert_eq!(name.as_str(), text);
        assert_eq!(name.base(), base);
        assert!(!name.base().is_empty());
    }
});

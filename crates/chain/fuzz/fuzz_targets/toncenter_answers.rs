//! Arbitrary bytes as toncenter answer bodies: the v2 get-method, account and v3 transaction
//! decoders, then the registry parse of whatever stack came out, must return errors, never
//! panic.
#![no_main]

use cocoon_chain::{Address, Registry, Toncenter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let address = Address {
        workchain_id: 0,
        address: [1; 32],
    };
    if let Ok(result) = Toncenter::decode_get_method(data) {
        let _ = Registry::from_root_data(address, &result);
        let mut r = result.reader();
        while r.remaining() > 0 {
            let _ = r.read_address_opt();
        }
    }
    let _ = Toncenter::decode_account(address, data);
    let _ = Toncenter::decode_transactions(data);
});

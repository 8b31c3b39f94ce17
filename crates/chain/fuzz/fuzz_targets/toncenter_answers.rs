//! Arbitrary bytes as toncenter answer bodies: the v2 get-method and account decoders and the
//! v3 transaction decoder, then the registry parse of whatever account came out and typed
//! reads of whatever stack came out, must return errors, never panic.
#![no_main]

use cocoon_chain::{Address, Registry, StackReader, Toncenter};
use cocoon_ton::contracts::{ClientData, ProxyData};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let address = Address::new(0, [1; 32]);
    if let Ok(result) = Toncenter::decode_get_method(data) {
        let _ = ProxyData::from_stack(&result.stack);
        let _ = ClientData::from_stack(&result.stack);
        let mut r = StackReader::new(&result.stack);
        while r.remaining() > 0 {
            let _ = r.read_address();
        }
    }
    if let Ok(account) = Toncenter::decode_account(address, data) {
        let _ = Registry::from_account(&account);
    }
    let _ = Toncenter::decode_transactions(data);
});

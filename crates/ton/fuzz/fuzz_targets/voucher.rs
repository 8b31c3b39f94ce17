//! Untrusted vouchers, as handed over off chain (fixed-size bytes) or submitted on chain (a
//! signed message body): parsing and signature checks must never panic, and no input may pass
//! the check under a key that did not sign it.
#![no_main]

use cocoon_ton::{Cell, SigningKey, Voucher, VoucherKind, voucher::SignedMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // a key nobody outside this target has: nothing the fuzzer makes can be signed with it
    let public = SigningKey::from_bytes(&[0x5a; 32]).verifying_key().to_bytes();
    if let Ok(voucher) = Voucher::from_bytes(data) {
        assert!(voucher.verify(&public).is_err());
        assert_eq!(Voucher::from_bytes(&voucher.to_bytes()).ok(), Some(voucher));
        if let Some(kind) = voucher.payload().kind() {
            let _ = voucher.check(&public, kind, &voucher.payload().target);
        }
    }
    if let Ok(cell) = Cell::from_boc(data) {
        if let Ok(message) = SignedMessage::from_cell(&cell) {
            assert!(message.voucher.verify(&public).is_err());
            assert!(VoucherKind::from_op(message.op).is_some());
            let again = SignedMessage::from_cell(&message.to_cell().expect("serializes"));
            assert_eq!(again.ok(), Some(message));
        }
    }
});

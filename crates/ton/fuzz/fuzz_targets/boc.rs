//! Untrusted BOC bytes: decoding must never panic, a decoded cell must re-encode to a BOC that
//! decodes to the same hash, and every parser that takes cells from the chain must return
//! (not panic) on whatever the BOC holds; a parsed message must survive its own round trip.
#![no_main]

use cocoon_ton::{
    StateInit,
    boc::{self, BocLimits},
    contracts::{ClientState, Params, ProxyState, RootState, WorkerState},
    messages::{ClientRegisteredLog, ContractMessage},
    voucher::SignedMessage,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = BocLimits {
        max_cells: 4096,
        max_roots: 4,
    };
    let Ok(roots) = boc::decode(data, limits) else {
        return;
    };
    for root in roots {
        let again = boc::decode_single(&root.to_boc()).expect("our own BOC decodes");
        assert_eq!(again.hash(), root.hash());

        if let Ok(message) = ContractMessage::parse(&root) {
            let cell = message.to_cell().expect("a parsed message serializes");
            let reparsed = ContractMessage::parse(&cell).expect("a serialized message parses");
            assert_eq!(reparsed, message);
        }
        let _ = SignedMessage::from_cell(&root);
        let _ = ClientRegisteredLog::from_cell(&root);
        let _ = StateInit::from_cell(&root);
        let _ = Params::from_cell(&root);
        let _ = RootState::from_data_cell(&root);
        let _ = ProxyState::from_data_cell(&root);
        let _ = ClientState::from_data_cell(&root);
        let _ = WorkerState::from_data_cell(&root);
    }
});

//! Arbitrary bytes as a BOC: decoding, reading every cell shape the crate reads (integers,
//! coins, addresses, snake strings, dictionaries) and re-serializing must never panic, and a
//! re-serialized tree must decode to the same hash.
#![no_main]

use cocoon_chain::cell::{CellTree, walk_dict};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(tree) = CellTree::from_boc(data) else {
        return;
    };
    let again = CellTree::from_boc(&tree.root().to_boc()).expect("re-serialized BOC decodes");
    assert_eq!(again.hash(), tree.hash());

    let mut s = tree.root();
    let _ = s.load_address("fuzz");
    let _ = s.load_coins("fuzz");
    let _ = s.load_snake_string("fuzz");
    for bits in [32usize, 256] {
        let _ = walk_dict(tree.root(), bits, |key, mut value| {
            let _ = key.uint();
            let _ = value.load_maybe_ref("fuzz");
            let _ = value.load_bits256("fuzz");
            Ok(())
        });
    }
});

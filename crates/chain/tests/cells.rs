//! Properties of the bounded BOC reader against `tlb-ton`'s writer: any cell tree `tlb-ton`
//! serializes decodes to the same representation hash, re-serializes to a BOC with the same
//! hash, reads its bits back, and no cut or flipped byte makes the reader panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cocoon_chain::cell::CellTree;
use proptest::prelude::*;
use std::sync::Arc;
use tlb_ton::bits::ser::BitWriterExt as _;
use tlb_ton::{BagOfCells, BagOfCellsArgs, Cell, Ref};

#[derive(Debug, Clone)]
struct Tree {
    bits: Vec<bool>,
    children: Vec<Tree>,
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = prop::collection::vec(any::<bool>(), 0..=1023).prop_map(|bits| Tree {
        bits,
        children: vec![],
    });
    leaf.prop_recursive(4, 24, 4, |inner| {
        (
            prop::collection::vec(any::<bool>(), 0..=300),
            prop::collection::vec(inner, 0..=4),
        )
            .prop_map(|(bits, children)| Tree { bits, children })
    })
}

fn build(t: &Tree) -> Arc<Cell> {
    let mut b = Cell::builder();
    for &bit in &t.bits {
        b.pack(bit, ()).unwrap();
    }
    for child in &t.children {
        b.store_as::<_, Ref>(&build(child), ()).unwrap();
    }
    Arc::new(b.into_cell())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn decodes_what_tlb_writes(t in tree(), crc in any::<bool>(), idx in any::<bool>()) {
        let cell = build(&t);
        let boc = BagOfCells::from_root(Arc::clone(&cell))
            .serialize(BagOfCellsArgs { has_idx: idx, has_crc32c: crc })
            .unwrap();
        let ours = CellTree::from_boc(&boc).unwrap();
        prop_assert_eq!(ours.hash(), cell.hash());

        let mut s = ours.root();
        prop_assert_eq!(s.remaining_bits(), t.bits.len());
        prop_assert_eq!(s.remaining_refs(), t.children.len());
        for &bit in &t.bits {
            prop_assert_eq!(s.load_bit("prop").unwrap(), bit);
        }

        let again = CellTree::from_boc(&ours.root().to_boc()).unwrap();
        prop_assert_eq!(again.hash(), cell.hash());
        prop_assert_eq!(again.len(), ours.len());
    }

    #[test]
    fn damaged_bocs_never_panic(t in tree(), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), mask in 1u8..) {
        let cell = build(&t);
        let boc = BagOfCells::from_root(cell)
            .serialize(BagOfCellsArgs { has_idx: false, has_crc32c: false })
            .unwrap();
        let _ = CellTree::from_boc(&boc[..cut.index(boc.len())]);
        let mut flipped = boc.clone();
        let at = flip.index(flipped.len());
        flipped[at] ^= mask;
        if let Ok(tree) = CellTree::from_boc(&flipped) {
            // whatever decodes must re-serialize to the same tree
            prop_assert_eq!(CellTree::from_boc(&tree.root().to_boc()).unwrap().hash(), tree.hash());
        }
    }
}

//! Property tests: BOC round trips, agreement with an independent implementation (`tlb-ton`)
//! on cell hashes, BOCs, user-friendly addresses and state-init addresses, parsers that never
//! panic on arbitrary input, and vouchers whose every bit is covered by the signature.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use cocoon_ton::{
    Address, Cell, FriendlyFlags, SigningKey, StateInit, Voucher, VoucherKind, VoucherPayload,
    boc::{self, BocLimits, BocOptions},
    contracts::{ClientState, ProxyState, RootState, WorkerState},
    messages::ContractMessage,
    voucher::SignedMessage,
};
use proptest::prelude::*;
use tlb_ton::{
    BagOfCells, BagOfCellsArgs, MsgAddress,
    bits::bitvec::{order::Msb0, vec::BitVec},
    state_init::StateInit as TlbStateInit,
};

fn leaf() -> impl Strategy<Value = Cell> {
    (
        proptest::collection::vec(any::<u8>(), 0..=128),
        any::<u16>(),
    )
        .prop_map(|(bytes, n)| {
            let max = (bytes.len() * 8).min(1023);
            let bits = if max == 0 {
                0
            } else {
                usize::from(n) % (max + 1)
            };
            Cell::new(&bytes, bits, vec![]).unwrap()
        })
}

fn cell_tree() -> impl Strategy<Value = Cell> {
    leaf().prop_recursive(4, 64, 4, |inner| {
        (leaf(), proptest::collection::vec(inner, 0..=4))
            .prop_map(|(l, refs)| Cell::new(l.data(), l.bit_len(), refs).unwrap())
    })
}

fn to_tlb(cell: &Cell) -> tlb_ton::Cell {
    let mut data: BitVec<u8, Msb0> = BitVec::from_slice(cell.data());
    data.truncate(cell.bit_len());
    tlb_ton::Cell {
        is_exotic: false,
        data,
        references: cell.refs().iter().map(|r| Arc::new(to_tlb(r))).collect(),
    }
}

proptest! {
    #[test]
    fn boc_roundtrip(cell in cell_tree(), crc32c in any::<bool>(), index in any::<bool>()) {
        let bytes = boc::encode(&cell, BocOptions { crc32c, index });
        let back = boc::decode_single(&bytes).unwrap();
        prop_assert_eq!(back.hash(), cell.hash());
        prop_assert_eq!(boc::encode(&back, BocOptions { crc32c, index }), bytes);
    }

    #[test]
    fn hashes_and_bocs_agree_with_tlb(cell in cell_tree()) {
        let theirs = to_tlb(&cell);
        prop_assert_eq!(theirs.hash(), cell.hash());
        // they read our BOC
        let parsed = BagOfCells::deserialize(cell.to_boc()).unwrap();
        prop_assert_eq!(parsed.single_root().unwrap().hash(), cell.hash());
        // we read theirs
        let their_bytes = BagOfCells::from_root(theirs)
            .serialize(BagOfCellsArgs { has_idx: false, has_crc32c: true })
            .unwrap();
        prop_assert_eq!(boc::decode_single(&their_bytes).unwrap().hash(), cell.hash());
    }

    #[test]
    fn friendly_addresses_agree_with_tlb(
        workchain in prop_oneof![Just(0i8), Just(-1i8), any::<i8>()],
        hash in any::<[u8; 32]>(),
        bounceable in any::<bool>(),
        testnet in any::<bool>(),
    ) {
        let ours = Address::new(workchain, hash);
        let theirs = MsgAddress { workchain_id: workchain.into(), address: hash };
        let flags = FriendlyFlags { bounceable, testnet };
        let text = ours.to_friendly(flags);
        prop_assert_eq!(&text, &theirs.to_base64_url_flags(!bounceable, testnet));
        prop_assert_eq!(ours.to_friendly_std(flags), theirs.to_base64_std_flags(!bounceable, testnet));
        let (back, back_flags) = Address::from_friendly(&text).unwrap();
        prop_assert_eq!(back, ours);
        prop_assert_eq!(back_flags, flags);
        prop_assert_eq!(ours.to_raw(), theirs.to_hex());
    }

    #[test]
    fn state_init_addresses_agree_with_tlb(code in cell_tree(), data in cell_tree()) {
        let ours = StateInit::new(code.clone(), data.clone()).address(0).unwrap();
        let theirs = MsgAddress::derive(
            0,
            TlbStateInit::<tlb_ton::Cell, tlb_ton::Cell> {
                code: Some(to_tlb(&code)),
                data: Some(to_tlb(&data)),
                ..Default::default()
            },
        )
        .unwrap();
        prop_assert_eq!(ours.hash(), &theirs.address);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = boc::decode(&bytes, BocLimits::default());
        let _ = Voucher::from_bytes(&bytes);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = text.parse::<Address>();
            let _ = Cell::from_boc_base64(text);
        }
    }

    #[test]
    fn mutated_bocs_fail_or_reencode(cell in cell_tree(), at in any::<usize>(), xor in 1u8..) {
        let mut bytes = boc::encode(&cell, BocOptions { crc32c: false, index: false });
        let i = at % bytes.len();
        bytes[i] ^= xor;
        if let Ok(roots) = boc::decode(&bytes, BocLimits::default()) {
            for root in roots {
                let again = boc::decode_single(&root.to_boc()).unwrap();
                prop_assert_eq!(again.hash(), root.hash());
            }
        }
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_cells(cell in cell_tree()) {
        let _ = ContractMessage::parse(&cell);
        let _ = SignedMessage::from_cell(&cell);
        let _ = ClientState::from_data_cell(&cell);
        let _ = WorkerState::from_data_cell(&cell);
        let _ = ProxyState::from_data_cell(&cell);
        let _ = RootState::from_data_cell(&cell);
    }

    #[test]
    fn every_voucher_bit_is_signed(
        kind in proptest::sample::select(VoucherKind::ALL.to_vec()),
        query_id in any::<u64>(),
        tokens in any::<u64>(),
        hash in any::<[u8; 32]>(),
        flip in 0usize..(cocoon_ton::voucher::VOUCHER_BYTES * 8),
    ) {
        let key = SigningKey::from_bytes(&[3; 32]);
        let public = key.verifying_key().to_bytes();
        let v = Voucher::sign(VoucherPayload::new(kind, query_id, tokens, Address::new(0, hash)), &key).unwrap();
        v.verify(&public).unwrap();
        let mut bytes = v.to_bytes();
        bytes[flip / 8] ^= 0x80 >> (flip % 8);
        let tampered = Voucher::from_bytes(&bytes).unwrap();
        prop_assert!(tampered.verify(&public).is_err());
    }
}

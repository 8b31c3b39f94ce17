//! Per-request and per-submission costs of settlement: the proxy signs a voucher after every
//! request and clients and workers verify it, so those two bound how many requests a core can
//! settle; deriving a client address, reading a client contract's state from its BOC and
//! signing a wallet transfer happen once per top-up or submission.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use cocoon_ton::{
    Address, Cell, InternalMessage, OutgoingMessage, SigningKey, Transfer, Voucher, VoucherKind,
    VoucherPayload, WalletV5R1,
    contracts::{self, ClientState, Params, ParamsCore},
};
use criterion::{Criterion, criterion_group, criterion_main};

fn params() -> Params {
    Params::with_embedded_codes(ParamsCore {
        struct_version: 1,
        params_version: 1,
        unique_id: 42,
        is_test: true,
        price_per_token: 1000,
        worker_fee_per_token: 800,
        prompt_multiplier: 10000,
        cached_multiplier: 1000,
        completion_multiplier: 80000,
        reasoning_multiplier: 80000,
        proxy_delay_before_close: 172_800,
        client_delay_before_close: 86_400,
        min_proxy_stake: 10_000_000_000,
        min_client_stake: 1_000_000_000,
    })
    .unwrap()
}

fn settlement(c: &mut Criterion) {
    let proxy_key = SigningKey::from_bytes(&[7; 32]);
    let public = proxy_key.verifying_key().to_bytes();
    let target = Address::new(0, [0x42; 32]);
    let mut tokens = 0u64;

    c.bench_function("voucher_sign", |b| {
        b.iter(|| {
            tokens += 4530;
            let payload = VoucherPayload::new(VoucherKind::ClientCharge, 1, tokens, target);
            black_box(Voucher::sign(black_box(payload), &proxy_key).unwrap())
        })
    });

    let voucher = Voucher::sign(
        VoucherPayload::new(VoucherKind::WorkerPayout, 1, 45_300_000, target),
        &proxy_key,
    )
    .unwrap();
    c.bench_function("voucher_check", |b| {
        b.iter(|| {
            black_box(&voucher)
                .check(&public, VoucherKind::WorkerPayout, &target)
                .unwrap()
        })
    });

    let p = params();
    let owner = Address::new(0, [1; 32]);
    let proxy = Address::new(0, [2; 32]);
    c.bench_function("client_address", |b| {
        b.iter(|| contracts::client_address(black_box(&owner), &proxy, &public, &p).unwrap())
    });

    let init = contracts::client_state_init(&owner, &proxy, &public, &p).unwrap();
    let data_boc = init.data.to_boc();
    c.bench_function("client_state_from_boc", |b| {
        b.iter(|| {
            let cell = Cell::from_boc(black_box(&data_boc)).unwrap();
            black_box(ClientState::from_data_cell(&cell).unwrap())
        })
    });

    let wallet_key = SigningKey::from_bytes(&[1; 32]);
    let wallet = WalletV5R1::new(wallet_key.verifying_key().to_bytes());
    let submit = voucher.to_message_body(&owner).unwrap();
    let transfer = Transfer {
        seqno: 3,
        valid_until: 1_700_000_600,
        messages: vec![OutgoingMessage::new(InternalMessage::new(
            target, 50_000_000, submit,
        ))],
    };
    c.bench_function("wallet_v5r1_transfer_boc", |b| {
        b.iter(|| {
            let signed = wallet
                .sign_transfer(&wallet_key, black_box(&transfer))
                .unwrap();
            black_box(signed.to_boc().unwrap())
        })
    });
}

criterion_group!(benches, settlement);
criterion_main!(benches);

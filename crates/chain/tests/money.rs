//! The worked example of `docs/money.md`, computed with the market crate's pricing and then
//! settled on the emulated chain with the real contracts: one request's adjusted tokens and
//! nanoTON split, then a thousand such requests settled by one client charge voucher and one
//! worker payout voucher. Every figure the document quotes is asserted here. Needs `node` and
//! `npm ci --prefix contracts`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cocoon_chain::emulator::{LocalNetwork, LocalNetworkSpec, ProxySpec, local_params_core};
use cocoon_chain::{Chain, EmulatedChain, InternalMessage, SidecarOptions, StackValue, TON};
use cocoon_market::{Coefficient, PricingParams, TokenCounts};
use cocoon_ton::contracts::{
    ClientData, ProxyData, WorkerData, client_address, gas, worker_address,
};
use cocoon_ton::messages::ClientMessage;
use cocoon_ton::{SigningKey, Voucher, VoucherKind, VoucherPayload};

/// 3,000 prompt tokens (1,000 of them cached) and 800 completion tokens (300 of them
/// reasoning) at a worker coefficient of 1.2×.
fn example() -> cocoon_market::Charge {
    let counts = TokenCounts {
        prompt: 3_000,
        cached: 1_000,
        completion: 800,
        reasoning: 300,
    };
    PricingParams::default()
        .charge(&counts, Coefficient::new(1_200).unwrap())
        .unwrap()
}

#[test]
fn one_request_in_adjusted_tokens_and_nanoton() {
    let pricing = PricingParams::default();
    assert_eq!(
        (pricing.price_per_token, pricing.worker_fee_per_token),
        (20, 16)
    );
    // the emulator's local parameters use the same prices and multipliers
    let core = local_params_core();
    assert_eq!(core.price_per_token, u128::from(pricing.price_per_token));
    assert_eq!(
        core.worker_fee_per_token,
        u128::from(pricing.worker_fee_per_token)
    );
    assert_eq!(
        [
            core.prompt_multiplier,
            core.cached_multiplier,
            core.completion_multiplier,
            core.reasoning_multiplier
        ],
        [
            pricing.prompt_multiplier,
            pricing.cached_multiplier,
            pricing.completion_multiplier,
            pricing.reasoning_multiplier
        ]
    );

    let charge = example();
    // 2,000 uncached × 1.2 × 1.0 + 1,000 cached × 1.2 × 0.1 + 500 completion × 1.2 × 4.0
    // + 300 reasoning × 1.2 × 4.0
    assert_eq!(charge.adjusted_total(), 2_400 + 120 + 2_400 + 1_440);
    assert_eq!(charge.adjusted_total(), 6_360);
    assert_eq!(charge.client_cost(), 127_200);
    assert_eq!(charge.worker_credit(), 101_760);
    assert_eq!(charge.proxy_commission(), 25_440);
    assert_eq!(charge.usage_costs().prompt_total_cost, 50_400);
    assert_eq!(charge.usage_costs().completion_total_cost, 76_800);
}

#[tokio::test]
async fn a_thousand_requests_settle_with_two_vouchers() {
    let per_request = example();
    let requests: u64 = 1_000;
    let tokens = per_request.adjusted_total() * requests; // cumulative count in both vouchers
    assert_eq!(tokens, 6_360_000);

    let chain = EmulatedChain::spawn_with(SidecarOptions {
        start_time: Some(1_700_000_000),
        ..SidecarOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("cannot start the emulated chain: {e}"));
    let proxy_key = SigningKey::from_bytes(&[7; 32]);
    let proxy_public = proxy_key.verifying_key().to_bytes();
    let net = LocalNetwork::setup(
        &chain,
        &LocalNetworkSpec {
            proxy: Some(ProxySpec {
                public_key: proxy_public,
                owner: None,
            }),
            named_wallets: vec![
                ("client".to_owned(), 100 * TON),
                ("worker".to_owned(), 10 * TON),
            ],
            ..LocalNetworkSpec::default()
        },
    )
    .await
    .unwrap();
    let proxy = net.proxy_contract.unwrap();
    let client_owner = net.wallets["client"];
    let worker_owner = net.wallets["worker"];
    let params = cocoon_chain::read_registry(&chain, &net.root)
        .await
        .unwrap()
        .params()
        .clone();

    // the client tops up 2 TON (its contract keeps a 1 TON stake inside that balance)
    let client = client_address(&client_owner, &proxy, &proxy_public, &params).unwrap();
    let init =
        cocoon_ton::contracts::client_state_init(&client_owner, &proxy, &proxy_public, &params)
            .unwrap();
    let top_up = ClientMessage::TopUp {
        query_id: 1,
        amount: 2 * TON,
        send_excesses_to: client_owner,
    }
    .to_cell()
    .unwrap();
    let r = chain
        .send_internal(
            &client_owner,
            &InternalMessage {
                dest: client,
                value: 2 * TON + gas::CHAIN_GAS + gas::MIN_CHILD_BALANCE,
                bounce: false,
                state_init: Some(init),
                body: Some(top_up),
            },
        )
        .await
        .unwrap();
    assert!(r.all_succeeded(), "{r:#?}");

    // the proxy has signed one charge voucher per request; the client submits only the last
    let charge = Voucher::sign(
        VoucherPayload::new(VoucherKind::ClientCharge, 2, tokens, client),
        &proxy_key,
    )
    .unwrap();
    let r = chain
        .send_internal(
            &client_owner,
            &InternalMessage {
                dest: client,
                value: gas::CHAIN_GAS,
                bounce: true,
                state_init: None,
                body: Some(charge.to_message_body(&client_owner).unwrap()),
            },
        )
        .await
        .unwrap();
    assert!(r.all_succeeded(), "{r:#?}");
    let data = ClientData::from_stack(
        &chain
            .run_get_method(&client, "get_client_data", &[] as &[StackValue])
            .await
            .unwrap()
            .stack,
    )
    .unwrap();
    let client_cost = u128::from(per_request.client_cost()) * u128::from(requests);
    assert_eq!(client_cost, 127_200_000);
    assert_eq!(data.tokens_used, tokens);
    assert_eq!(data.balance, 2 * TON - client_cost, "1.8728 TON left");
    assert_eq!(data.stake, TON);

    // the worker submits its payout voucher for the same cumulative count
    let worker = worker_address(&worker_owner, &proxy, &proxy_public, &params).unwrap();
    let worker_init =
        cocoon_ton::contracts::worker_state_init(&worker_owner, &proxy, &proxy_public, &params)
            .unwrap();
    let payout = Voucher::sign(
        VoucherPayload::new(VoucherKind::WorkerPayout, 3, tokens, worker),
        &proxy_key,
    )
    .unwrap();
    let r = chain
        .send_internal(
            &worker_owner,
            &InternalMessage {
                dest: worker,
                value: gas::CHAIN_GAS + gas::MIN_CHILD_BALANCE,
                bounce: false,
                state_init: Some(worker_init),
                body: Some(payout.to_message_body(&worker_owner).unwrap()),
            },
        )
        .await
        .unwrap();
    assert!(r.all_succeeded(), "{r:#?}");
    let worker_credit = u128::from(per_request.worker_credit()) * u128::from(requests);
    assert_eq!(worker_credit, 101_760_000);
    // the proxy contract's payout to the worker owner carries the credit (plus left-over gas)
    let paid = r
        .transactions
        .iter()
        .find(|t| t.account == proxy)
        .unwrap()
        .out_messages
        .iter()
        .find(|m| m.destination == Some(worker_owner))
        .unwrap()
        .value;
    assert!(
        paid >= worker_credit && paid < worker_credit + gas::CHAIN_GAS,
        "paid {paid}"
    );
    let w = WorkerData::from_stack(
        &chain
            .run_get_method(&worker, "get_worker_data", &[] as &[StackValue])
            .await
            .unwrap()
            .stack,
    )
    .unwrap();
    assert_eq!(w.tokens_paid, tokens);
    let p = ProxyData::from_stack(
        &chain
            .run_get_method(&proxy, "get_proxy_data", &[] as &[StackValue])
            .await
            .unwrap()
            .stack,
    )
    .unwrap();
    let commission = u128::from(per_request.proxy_commission()) * u128::from(requests);
    assert_eq!(commission, 25_440_000);
    assert_eq!(p.earned, commission);
    assert_eq!(client_cost, worker_credit + commission);
    assert_eq!((p.active_clients, p.active_workers), (1, 1));
}

//! Test fixtures: a small network (root registry, staked proxy contract, funded wallets) on the
//! emulated chain, built with `cocoon-ton`'s state inits and message bodies, so these tests also
//! check that what cocoon-ton builds is what the real contracts accept.
#![allow(
    dead_code,
    unused_imports,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used
)]

use cocoon_chain::{
    Address, Cell, Chain, ContractsDir, EmulatedChain, InternalMessage, Nanotons, SendReceipt,
    SidecarOptions, StateInit, TON,
};
use cocoon_ton::contracts::{
    Params, ParamsCore, client_state_init, proxy_state_init, root_state_init,
};
use cocoon_ton::messages::{ClientMessage, ProxyMessage, RootMessage};

pub use cocoon_ton::contracts::op;

pub const ERR_TOO_EARLY: i32 = 408;
pub const GAS: u128 = TON / 10;
pub const PROXY_KEY: [u8; 32] = [7; 32];

/// Starts a sidecar at a fixed clock, failing with the sidecar's own message (which says to
/// run `npm ci --prefix contracts` when the packages are missing).
pub async fn chain() -> EmulatedChain {
    match EmulatedChain::spawn_with(SidecarOptions {
        start_time: Some(1_700_000_000),
        ..SidecarOptions::default()
    })
    .await
    {
        Ok(c) => c,
        Err(e) => panic!("cannot start the emulated chain: {e}"),
    }
}

pub fn contracts() -> ContractsDir {
    ContractsDir::locate(None)
}

/// The test parameter set of contracts/tests/helpers/layout.mjs.
pub fn params() -> Params {
    Params::with_embedded_codes(ParamsCore {
        struct_version: 1,
        params_version: 1,
        unique_id: 42,
        is_test: true,
        price_per_token: 1000,
        worker_fee_per_token: 800,
        prompt_multiplier: 10_000,
        cached_multiplier: 1_000,
        completion_multiplier: 80_000,
        reasoning_multiplier: 80_000,
        proxy_delay_before_close: 2 * 86_400,
        client_delay_before_close: 86_400,
        min_proxy_stake: 10 * TON,
        min_client_stake: TON,
    })
    .unwrap()
}

pub fn top_up(amount: Nanotons, excesses_to: Address) -> Cell {
    ClientMessage::TopUp {
        query_id: 1,
        amount,
        send_excesses_to: excesses_to,
    }
    .to_cell()
    .unwrap()
}

pub fn request_refund() -> Cell {
    ClientMessage::RequestRefund { query_id: 2 }
        .to_cell()
        .unwrap()
}

pub fn proxy_increase_stake(amount: Nanotons) -> Cell {
    ProxyMessage::IncreaseStake {
        query_id: 3,
        amount,
    }
    .to_cell()
    .unwrap()
}

pub fn root_message(m: RootMessage) -> Cell {
    m.to_cell().unwrap()
}

pub struct Network {
    pub chain: EmulatedChain,
    pub params: Params,
    pub root_owner: Address,
    pub proxy_owner: Address,
    pub client_owner: Address,
    pub root: Address,
    pub proxy: Address,
}

impl Network {
    /// The client contract of `client_owner` at the proxy, as cocoon-ton derives it.
    pub fn client(&self) -> (StateInit, Address) {
        let init =
            client_state_init(&self.client_owner, &self.proxy, &PROXY_KEY, &self.params).unwrap();
        let address = init.address(0).unwrap();
        (init, address)
    }
}

/// The wallet `from` sends `body` with `value` to `to` (bounceable).
pub async fn send(
    chain: &EmulatedChain,
    from: Address,
    to: Address,
    value: u128,
    body: Cell,
    state_init: Option<StateInit>,
) -> SendReceipt {
    chain
        .send_internal(
            &from,
            &InternalMessage {
                dest: to,
                value,
                bounce: true,
                state_init,
                body: Some(body),
            },
        )
        .await
        .unwrap()
}

/// Root and a staked proxy contract, as contracts/tests/helpers/network.mjs sets them up.
pub async fn network() -> Network {
    let chain = chain().await;
    let params = params();
    let root_owner = chain.create_wallet("root-owner", 1000 * TON).await.unwrap();
    let proxy_owner = chain
        .create_wallet("proxy-owner", 1000 * TON)
        .await
        .unwrap();
    let client_owner = chain
        .create_wallet("client-owner", 1000 * TON)
        .await
        .unwrap();

    let root_init = root_state_init(&root_owner, &params).unwrap();
    let root = chain.deploy(&root_owner, &root_init, TON).await.unwrap();
    assert!(root.receipt.all_succeeded(), "{:#?}", root.receipt);
    assert_eq!(root.address, root_init.address(0).unwrap());

    let proxy_init = proxy_state_init(&proxy_owner, &PROXY_KEY, &root.address, &params).unwrap();
    let proxy = chain.deploy(&proxy_owner, &proxy_init, TON).await.unwrap();
    assert_eq!(
        proxy.address,
        proxy_init.address(0).unwrap(),
        "StateInit address derivation agrees"
    );
    let staked = send(
        &chain,
        proxy_owner,
        proxy.address,
        params.core().min_proxy_stake + GAS,
        proxy_increase_stake(params.core().min_proxy_stake),
        None,
    )
    .await;
    assert!(
        staked.transaction_on(&proxy.address).unwrap().succeeded(),
        "{staked:#?}"
    );

    Network {
        chain,
        params,
        root_owner,
        proxy_owner,
        client_owner,
        root: root.address,
        proxy: proxy.address,
    }
}

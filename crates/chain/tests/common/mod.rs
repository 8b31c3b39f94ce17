//! Test fixtures: the contracts' initial data and the messages the tests send, built with
//! `tlb-ton` after the layouts in docs/contracts.md (the same ones the JS tests mirror in
//! contracts/tests/helpers/layout.mjs). Message builders for production live in cocoon-ton.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use cocoon_chain::{
    Address, Boc, Chain, ContractsDir, EmulatedChain, InternalMessage, Nanotons, SendReceipt,
    SidecarOptions, TON,
};
use num_bigint::BigUint;
use std::sync::Arc;
use tlb_ton::bits::VarInt;
use tlb_ton::bits::ser::BitWriterExt as _;
use tlb_ton::ser::CellBuilder;
use tlb_ton::{BagOfCells, BagOfCellsArgs, Cell, Ref};

pub const OP_CLIENT_TOP_UP: u32 = 0xf172_e6c2;
pub const OP_CLIENT_REQUEST_REFUND: u32 = 0xfafa_6cc1;
pub const OP_PROXY_INCREASE_STAKE: u32 = 0x9713_f187;
pub const OP_ROOT_ADD_PROXY_IMAGE: u32 = 0xfba6_6403;
pub const OP_ROOT_ADD_WORKER_IMAGE: u32 = 0xfe7f_06eb;
pub const OP_ROOT_ADD_MODEL: u32 = 0x2334_623f;
pub const OP_ROOT_REGISTER_PROXY: u32 = 0xd72c_cafb;
pub const ERR_TOO_EARLY: i32 = 408;

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

pub fn code_cell(name: &str) -> Arc<Cell> {
    let compiled = contracts().compiled(name).expect("compiled contract");
    Arc::new(cell_of(&compiled.code))
}

pub fn cell_of(boc: &Boc) -> Cell {
    let bag = BagOfCells::deserialize(boc.as_bytes()).expect("trusted BOC");
    Arc::unwrap_or_clone(bag.into_single_root().expect("one root"))
}

pub fn boc(cell: Cell) -> Boc {
    Boc::new(
        BagOfCells::from_root(cell)
            .serialize(BagOfCellsArgs {
                has_idx: false,
                has_crc32c: true,
            })
            .expect("serialize"),
    )
}

pub fn coins(b: &mut CellBuilder, v: Nanotons) {
    b.pack_as::<_, &VarInt<4>>(&BigUint::from(v), ()).unwrap();
}

pub fn reference(b: &mut CellBuilder, c: &Arc<Cell>) {
    b.store_as::<_, Ref>(c, ()).unwrap();
}

/// The test parameter set of contracts/tests/helpers/layout.mjs.
#[derive(Debug, Clone)]
pub struct TestParams {
    pub price_per_token: Nanotons,
    pub worker_fee_per_token: Nanotons,
    pub min_proxy_stake: Nanotons,
    pub min_client_stake: Nanotons,
    pub proxy_delay: u32,
    pub client_delay: u32,
}

impl Default for TestParams {
    fn default() -> Self {
        Self {
            price_per_token: 1000,
            worker_fee_per_token: 800,
            min_proxy_stake: 10 * TON,
            min_client_stake: TON,
            proxy_delay: 2 * 86_400,
            client_delay: 86_400,
        }
    }
}

impl TestParams {
    pub fn core_cell(&self) -> Arc<Cell> {
        let mut b = Cell::builder();
        b.pack(1u8, ()).unwrap(); // struct version
        b.pack(1u32, ()).unwrap(); // params version
        b.pack(42u32, ()).unwrap(); // unique id
        b.pack(true, ()).unwrap(); // is test
        coins(&mut b, self.price_per_token);
        coins(&mut b, self.worker_fee_per_token);
        b.pack(10_000u32, ()).unwrap(); // prompt
        b.pack(1_000u32, ()).unwrap(); // cached
        b.pack(80_000u32, ()).unwrap(); // completion
        b.pack(80_000u32, ()).unwrap(); // reasoning
        b.pack(self.proxy_delay, ()).unwrap();
        b.pack(self.client_delay, ()).unwrap();
        coins(&mut b, self.min_proxy_stake);
        coins(&mut b, self.min_client_stake);
        Arc::new(b.into_cell())
    }

    pub fn cell(&self) -> Arc<Cell> {
        let mut b = Cell::builder();
        reference(&mut b, &self.core_cell());
        reference(&mut b, &code_cell("proxy"));
        reference(&mut b, &code_cell("worker"));
        reference(&mut b, &code_cell("client"));
        Arc::new(b.into_cell())
    }
}

pub fn root_data(owner: Address, params: &TestParams) -> Boc {
    let mut lists = Cell::builder();
    for _ in 0..4 {
        lists.pack(false, ()).unwrap(); // empty dictionaries
    }
    lists.pack(0u32, ()).unwrap(); // next proxy seqno
    let lists = Arc::new(lists.into_cell());
    let mut b = Cell::builder();
    b.pack(owner, ()).unwrap();
    b.pack(0u32, ()).unwrap(); // version
    reference(&mut b, &params.cell());
    reference(&mut b, &lists);
    boc(b.into_cell())
}

pub fn proxy_data(owner: Address, public_key: [u8; 32], root: Address, params: &TestParams) -> Boc {
    let mut identity = Cell::builder();
    identity.pack(owner, ()).unwrap();
    identity.pack(public_key, ()).unwrap();
    identity.pack(root, ()).unwrap();
    reference(&mut identity, &params.cell());
    let identity = Arc::new(identity.into_cell());
    let mut b = Cell::builder();
    b.pack_as::<_, tlb_ton::bits::NBits<2>>(0u8, ()).unwrap(); // state
    coins(&mut b, 0); // earned
    coins(&mut b, 0); // stake
    for _ in 0..4 {
        b.pack(0u32, ()).unwrap(); // unlock, active clients, active workers, saved seqno
    }
    b.pack([0u8; 32], ()).unwrap(); // saved state hash
    reference(&mut b, &identity);
    boc(b.into_cell())
}

pub fn client_data(
    owner: Address,
    proxy: Address,
    public_key: [u8; 32],
    params: &TestParams,
) -> Boc {
    let mut identity = Cell::builder();
    identity.pack(owner, ()).unwrap();
    identity.pack(proxy, ()).unwrap();
    identity.pack(public_key, ()).unwrap();
    reference(&mut identity, &params.core_cell());
    let identity = Arc::new(identity.into_cell());
    let mut b = Cell::builder();
    b.pack_as::<_, tlb_ton::bits::NBits<2>>(0u8, ()).unwrap(); // state
    b.pack(false, ()).unwrap(); // announced
    coins(&mut b, 0); // balance
    coins(&mut b, params.min_client_stake); // stake
    b.pack(0u64, ()).unwrap(); // tokens used
    b.pack(0u32, ()).unwrap(); // unlock time
    b.pack([0u8; 32], ()).unwrap(); // secret hash
    reference(&mut b, &identity);
    boc(b.into_cell())
}

/// `StateInit{code, data}` and the address it gives in workchain 0.
pub fn state_init(code: &Boc, data: &Boc) -> (Boc, Address) {
    let init = tlb_ton::state_init::StateInit::<Cell, Cell> {
        code: Some(cell_of(code)),
        data: Some(cell_of(data)),
        ..Default::default()
    };
    let address = Address::derive(0, init.clone()).expect("derive");
    let mut b = Cell::builder();
    b.store(&init, ()).unwrap();
    (boc(b.into_cell()), address)
}

fn op(op: u32, query_id: u64) -> CellBuilder {
    let mut b = Cell::builder();
    b.pack(op, ()).unwrap();
    b.pack(query_id, ()).unwrap();
    b
}

pub fn top_up(amount: Nanotons, excesses_to: Address) -> Boc {
    let mut b = op(OP_CLIENT_TOP_UP, 1);
    coins(&mut b, amount);
    b.pack(excesses_to, ()).unwrap();
    boc(b.into_cell())
}

pub fn request_refund() -> Boc {
    boc(op(OP_CLIENT_REQUEST_REFUND, 2).into_cell())
}

pub fn proxy_increase_stake(amount: Nanotons) -> Boc {
    let mut b = op(OP_PROXY_INCREASE_STAKE, 3);
    coins(&mut b, amount);
    boc(b.into_cell())
}

pub fn root_add_hash(op_code: u32, hash: [u8; 32]) -> Boc {
    let mut b = op(op_code, 4);
    b.pack(hash, ()).unwrap();
    boc(b.into_cell())
}

pub fn root_register_proxy(endpoint: &str) -> Boc {
    let mut text = Cell::builder();
    for byte in endpoint.bytes() {
        text.pack(byte, ()).unwrap();
    }
    let text = Arc::new(text.into_cell());
    let mut b = op(OP_ROOT_REGISTER_PROXY, 5);
    reference(&mut b, &text);
    boc(b.into_cell())
}

pub const GAS: u128 = TON / 10;
pub const PROXY_KEY: [u8; 32] = [7; 32];

pub struct Network {
    pub chain: EmulatedChain,
    pub params: TestParams,
    pub root_owner: Address,
    pub proxy_owner: Address,
    pub client_owner: Address,
    pub root: Address,
    pub proxy: Address,
}

pub async fn send(
    chain: &EmulatedChain,
    from: Address,
    to: Address,
    value: u128,
    body: Boc,
    state_init: Option<Boc>,
) -> SendReceipt {
    chain
        .send_internal(&InternalMessage {
            from,
            to,
            value,
            bounce: true,
            body: Some(body),
            state_init,
        })
        .await
        .unwrap()
}

/// Root and a staked proxy contract, as contracts/tests/helpers/network.mjs sets them up.
pub async fn network() -> Network {
    let chain = chain().await;
    let params = TestParams::default();
    let root_owner = chain.create_wallet("root-owner", 1000 * TON).await.unwrap();
    let proxy_owner = chain
        .create_wallet("proxy-owner", 1000 * TON)
        .await
        .unwrap();
    let client_owner = chain
        .create_wallet("client-owner", 1000 * TON)
        .await
        .unwrap();

    let root_code = contracts().compiled("root").unwrap().code;
    let root = chain
        .deploy(
            &root_owner,
            &root_code,
            &root_data(root_owner, &params),
            TON,
        )
        .await
        .unwrap();
    assert!(root.receipt.all_succeeded(), "{:#?}", root.receipt);

    let proxy_code = contracts().compiled("proxy").unwrap().code;
    let proxy_data = proxy_data(proxy_owner, PROXY_KEY, root.address, &params);
    let (_, expected_proxy) = state_init(&proxy_code, &proxy_data);
    let proxy = chain
        .deploy(&proxy_owner, &proxy_code, &proxy_data, TON)
        .await
        .unwrap();
    assert_eq!(
        proxy.address, expected_proxy,
        "StateInit address derivation agrees"
    );
    let staked = send(
        &chain,
        proxy_owner,
        proxy.address,
        params.min_proxy_stake + GAS,
        proxy_increase_stake(params.min_proxy_stake),
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

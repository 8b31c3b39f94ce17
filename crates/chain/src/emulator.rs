//! A local network on the emulated chain, set up the way local mode needs it: the root
//! registry with local parameters, optionally a staked proxy contract for a given proxy key,
//! and funded wallets. Used by the `cocoon-chain-emulator` binary (which then keeps serving
//! the chain to other processes) and by tests.

use crate::chain::Chain;
use crate::types::{Nanotons, TON};
use crate::{ChainError, EmulatedChain};
use cocoon_ton::contracts::{Params, ParamsCore, gas, proxy_state_init, root_state_init};
use cocoon_ton::messages::{ProxyMessage, RootMessage};
use cocoon_ton::{Address, InternalMessage, WalletV5R1};
use serde::Serialize;
use std::collections::BTreeMap;

/// The parameters local mode runs with: the market's default prices (20 nanoTON per adjusted
/// token, 16 of them to the worker), multipliers prompt 1.0×, cached 0.1×, completion and
/// reasoning 4.0×, a one-day client delay, a two-day proxy delay, stakes of 10 TON (proxy)
/// and 1 TON (client).
#[must_use]
pub fn local_params_core() -> ParamsCore {
    ParamsCore {
        struct_version: 1,
        params_version: 1,
        unique_id: 1,
        is_test: true,
        price_per_token: 20,
        worker_fee_per_token: 16,
        prompt_multiplier: 10_000,
        cached_multiplier: 1_000,
        completion_multiplier: 40_000,
        reasoning_multiplier: 40_000,
        proxy_delay_before_close: 2 * 86_400,
        client_delay_before_close: 86_400,
        min_proxy_stake: 10 * TON,
        min_client_stake: TON,
    }
}

/// What to set up.
#[derive(Debug, Clone, Default)]
pub struct LocalNetworkSpec {
    /// Parameters; default [`local_params_core`].
    pub params: Option<ParamsCore>,
    /// Deploy and stake a proxy contract for this proxy key.
    pub proxy: Option<ProxySpec>,
    /// Named local wallets (sandbox treasuries) to create with these balances.
    pub named_wallets: Vec<(String, Nanotons)>,
    /// Addresses (e.g. the V5R1 wallet of an operator key) to send this much TON to.
    pub fund: Vec<(Address, Nanotons)>,
    /// Allow-lists and registrations the root owner sends to the root after deploying it.
    pub root_updates: Vec<RootMessage>,
}

/// The proxy contract to deploy.
#[derive(Debug, Clone)]
pub struct ProxySpec {
    /// The proxy's Ed25519 public key.
    pub public_key: [u8; 32],
    /// Its owner; default the local wallet `proxy-owner`.
    pub owner: Option<Address>,
}

/// What was set up, printed as JSON by the emulator binary.
#[derive(Debug, Clone, Serialize)]
pub struct LocalNetwork {
    /// The TCP address other processes connect to (`--chain emulated=ADDR`).
    pub listen: Option<String>,
    /// The root registry.
    pub root: Address,
    /// Its owner (a local wallet).
    pub root_owner: Address,
    /// The proxy contract, when one was asked for.
    pub proxy_contract: Option<Address>,
    /// Its owner.
    pub proxy_owner: Option<Address>,
    /// Price per adjusted token (nanoTON).
    pub price_per_token: u128,
    /// Worker fee per adjusted token (nanoTON).
    pub worker_fee_per_token: u128,
    /// Named local wallets by name.
    pub wallets: BTreeMap<String, Address>,
    /// Funded addresses and their balances after funding (nanoTON, as strings).
    pub funded: BTreeMap<String, String>,
}

/// The V5R1 wallet address of an Ed25519 public key (what an operator command signs from).
///
/// # Errors
/// [`ChainError::Cell`] (never for a valid key).
pub fn v5r1_address(public_key: [u8; 32]) -> Result<Address, ChainError> {
    WalletV5R1::new(public_key)
        .address()
        .map_err(ChainError::cell("wallet address"))
}

impl LocalNetwork {
    /// Sets up `spec` on `chain`.
    ///
    /// # Errors
    /// Sidecar failures, or [`ChainError::UnexpectedState`] when a deploy or the proxy's
    /// stake is refused.
    pub async fn setup(chain: &EmulatedChain, spec: &LocalNetworkSpec) -> Result<Self, ChainError> {
        let core = spec.params.unwrap_or_else(local_params_core);
        let params = Params::with_embedded_codes(core).map_err(ChainError::cell("params"))?;
        let core = *params.core();
        let faucet = chain.create_wallet("faucet", 10_000_000 * TON).await?;
        let root_owner = chain.create_wallet("root-owner", 1_000 * TON).await?;
        let root_init = root_state_init(&root_owner, &params).map_err(ChainError::cell("root"))?;
        let root = chain.deploy(&root_owner, &root_init, TON).await?;
        require(
            root.receipt.all_succeeded(),
            &root.address,
            "root deploy failed",
        )?;

        for update in &spec.root_updates {
            let body = update.to_cell().map_err(ChainError::cell("root update"))?;
            let sent = chain
                .send_internal(
                    &root_owner,
                    &InternalMessage {
                        dest: root.address,
                        value: TON / 20,
                        bounce: true,
                        state_init: None,
                        body: Some(body),
                    },
                )
                .await?;
            require(
                sent.all_succeeded(),
                &root.address,
                &format!("root update refused: {update:?}"),
            )?;
        }

        let mut wallets = BTreeMap::new();
        wallets.insert("faucet".to_owned(), faucet);
        wallets.insert("root-owner".to_owned(), root_owner);
        for (name, balance) in &spec.named_wallets {
            wallets.insert(name.clone(), chain.create_wallet(name, *balance).await?);
        }

        let (mut proxy_contract, mut proxy_owner) = (None, None);
        if let Some(proxy) = &spec.proxy {
            let owner = match proxy.owner {
                Some(o) => o,
                None => {
                    let o = chain.create_wallet("proxy-owner", 1_000 * TON).await?;
                    wallets.insert("proxy-owner".to_owned(), o);
                    o
                }
            };
            let init = proxy_state_init(&owner, &proxy.public_key, &root.address, &params)
                .map_err(ChainError::cell("proxy"))?;
            let deployed = chain.deploy(&faucet, &init, TON).await?;
            require(
                deployed.receipt.all_succeeded(),
                &deployed.address,
                "proxy deploy failed",
            )?;
            let stake = ProxyMessage::IncreaseStake {
                query_id: 1,
                amount: core.min_proxy_stake,
            }
            .to_cell()
            .map_err(ChainError::cell("increase_stake"))?;
            let staked = chain
                .send_internal(
                    &faucet,
                    &InternalMessage {
                        dest: deployed.address,
                        value: core.min_proxy_stake + gas::CHAIN_GAS,
                        bounce: true,
                        state_init: None,
                        body: Some(stake),
                    },
                )
                .await?;
            require(
                staked
                    .transaction_on(&deployed.address)
                    .is_some_and(crate::Transaction::succeeded),
                &deployed.address,
                "proxy stake refused",
            )?;
            proxy_contract = Some(deployed.address);
            proxy_owner = Some(owner);
        }

        let mut funded = BTreeMap::new();
        for (address, amount) in &spec.fund {
            let sent = chain
                .send_internal(
                    &faucet,
                    &InternalMessage {
                        dest: *address,
                        value: *amount,
                        bounce: false,
                        state_init: None,
                        body: None,
                    },
                )
                .await?;
            require(
                sent.transaction_on(address).is_some(),
                address,
                "funding transfer did not arrive",
            )?;
            let balance = chain.account(address).await?.balance;
            funded.insert(address.to_raw(), balance.to_string());
        }

        Ok(Self {
            listen: chain.listen_addr().map(str::to_owned),
            root: root.address,
            root_owner,
            proxy_contract,
            proxy_owner,
            price_per_token: core.price_per_token,
            worker_fee_per_token: core.worker_fee_per_token,
            wallets,
            funded,
        })
    }
}

fn require(ok: bool, contract: &Address, detail: &str) -> Result<(), ChainError> {
    if ok {
        Ok(())
    } else {
        Err(ChainError::UnexpectedState {
            contract: contract.to_raw(),
            detail: detail.to_owned(),
        })
    }
}

//! Persistent data of each contract: builders for the initial data (which, with the code, is
//! the contract's address) and typed views of a deployed contract's data cell, so a chain
//! backend can read balances, counts and states from an account's data without running
//! get-methods.

use serde::Serialize;

use crate::{
    address::{Address, BASECHAIN},
    cell::{Cell, CellBuilder, read_snake_text},
    contracts::{ContractKind, Lifecycle, Params, StoredParamsCore},
    dict::{DEFAULT_MAX_ENTRIES, load_dict_e},
    error::{Error, Result},
    message::StateInit,
};

/// Longest proxy endpoint text read from the root ("ip:port [ip:port]" is far shorter).
const MAX_ENDPOINT_LEN: usize = 4096;

/// What defines a proxy contract: its owner, the proxy's Ed25519 key, the root it belongs to
/// and the parameters it was created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyIdentity {
    /// Receives the commission, the stake and, after a close, everything left.
    pub owner: Address,
    /// The proxy's Ed25519 public key (vouchers are signed with it).
    pub proxy_public_key: [u8; 32],
    /// The root registry.
    pub root: Address,
    /// Parameters (with the child codes).
    pub params: Params,
}

impl ProxyIdentity {
    fn to_cell(&self) -> Result<Cell> {
        let mut b = CellBuilder::new();
        b.store_address(&self.owner)?
            .store_bytes(&self.proxy_public_key)?
            .store_address(&self.root)?
            .store_ref(self.params.to_cell()?)?;
        b.build()
    }

    fn from_cell(cell: &Cell) -> Result<Self> {
        cell.parse_fully(|s| {
            Ok(Self {
                owner: s.load_address()?,
                proxy_public_key: s.load_array()?,
                root: s.load_address()?,
                params: Params::from_cell(&s.load_ref()?)?,
            })
        })
    }
}

/// What defines a client or worker contract: its owner and its proxy (contract and key), and
/// the core parameters of that proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildIdentity {
    /// The client's or worker's wallet.
    pub owner: Address,
    /// The proxy contract holding the money.
    pub proxy_contract: Address,
    /// The key that signs this child's vouchers.
    pub proxy_public_key: [u8; 32],
    /// The proxy's core parameters (the very cell the proxy holds).
    pub params: StoredParamsCore,
}

impl ChildIdentity {
    fn to_cell(&self) -> Result<Cell> {
        let mut b = CellBuilder::new();
        b.store_address(&self.owner)?
            .store_address(&self.proxy_contract)?
            .store_bytes(&self.proxy_public_key)?
            .store_ref(self.params.cell().clone())?;
        b.build()
    }

    fn from_cell(cell: &Cell) -> Result<Self> {
        cell.parse_fully(|s| {
            Ok(Self {
                owner: s.load_address()?,
                proxy_contract: s.load_address()?,
                proxy_public_key: s.load_array()?,
                params: StoredParamsCore::from_cell(s.load_ref()?)?,
            })
        })
    }
}

fn load_lifecycle(s: &mut crate::cell::CellSlice<'_>) -> Result<Lifecycle> {
    Lifecycle::from_u8(s.load_uint(2)? as u8)
}

/// Data of a proxy contract (`ProxyStorage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyState {
    /// Normal, closing or closed.
    pub lifecycle: Lifecycle,
    /// Commission credited by worker payouts, not yet paid to the owner (nanoTON).
    pub earned: u128,
    /// The proxy's stake (nanoTON).
    pub stake: u128,
    /// When a closing proxy may complete its close (unix seconds).
    pub unlock_time: u32,
    /// Client contracts that announced themselves and are not closed.
    pub active_clients: u32,
    /// Worker contracts that announced themselves and are not closed.
    pub active_workers: u32,
    /// Last anchored ledger seqno.
    pub saved_seqno: u32,
    /// Ledger hash anchored with `saved_seqno`.
    pub saved_state_hash: [u8; 32],
    /// Owner, key, root and parameters.
    pub identity: ProxyIdentity,
}

impl ProxyState {
    /// The data a proxy contract is deployed with.
    pub fn initial(identity: ProxyIdentity) -> Self {
        Self {
            lifecycle: Lifecycle::Normal,
            earned: 0,
            stake: 0,
            unlock_time: 0,
            active_clients: 0,
            active_workers: 0,
            saved_seqno: 0,
            saved_state_hash: [0; 32],
            identity,
        }
    }

    /// Serializes the data cell.
    pub fn to_data_cell(&self) -> Result<Cell> {
        let mut b = CellBuilder::new();
        b.store_uint(self.lifecycle.as_u8().into(), 2)?
            .store_coins(self.earned)?
            .store_coins(self.stake)?
            .store_u32(self.unlock_time)?
            .store_u32(self.active_clients)?
            .store_u32(self.active_workers)?
            .store_u32(self.saved_seqno)?
            .store_bytes(&self.saved_state_hash)?
            .store_ref(self.identity.to_cell()?)?;
        b.build()
    }

    /// Parses a proxy contract's data cell.
    pub fn from_data_cell(cell: &Cell) -> Result<Self> {
        cell.parse_fully(|s| {
            Ok(Self {
                lifecycle: load_lifecycle(s)?,
                earned: s.load_coins()?,
                stake: s.load_coins()?,
                unlock_time: s.load_u32()?,
                active_clients: s.load_u32()?,
                active_workers: s.load_u32()?,
                saved_seqno: s.load_u32()?,
                saved_state_hash: s.load_array()?,
                identity: ProxyIdentity::from_cell(&s.load_ref()?)?,
            })
        })
    }
}

/// Data of a client contract (`ClientStorage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientState {
    /// Normal, closing or closed.
    pub lifecycle: Lifecycle,
    /// The proxy contract counts this client as active.
    pub announced: bool,
    /// Client funds held by the proxy contract (nanoTON).
    pub balance: u128,
    /// Part of the balance that only leaves through a refund (nanoTON).
    pub stake: u128,
    /// Cumulative adjusted tokens charged so far.
    pub tokens_used: u64,
    /// When a closing client may take its stake back without the proxy (unix seconds).
    pub unlock_time: u32,
    /// SHA-256 of the short-auth secret.
    pub secret_hash: [u8; 32],
    /// Owner, proxy and parameters.
    pub identity: ChildIdentity,
}

impl ClientState {
    /// The data a client contract is deployed with: stake = the minimum client stake.
    pub fn initial(identity: ChildIdentity) -> Self {
        Self {
            lifecycle: Lifecycle::Normal,
            announced: false,
            balance: 0,
            stake: identity.params.core().min_client_stake,
            tokens_used: 0,
            unlock_time: 0,
            secret_hash: [0; 32],
            identity,
        }
    }

    /// Serializes the data cell.
    pub fn to_data_cell(&self) -> Result<Cell> {
        let mut b = CellBuilder::new();
        b.store_uint(self.lifecycle.as_u8().into(), 2)?
            .store_bit(self.announced)?
            .store_coins(self.balance)?
            .store_coins(self.stake)?
            .store_u64(self.tokens_used)?
            .store_u32(self.unlock_time)?
            .store_bytes(&self.secret_hash)?
            .store_ref(self.identity.to_cell()?)?;
        b.build()
    }

    /// Parses a client contract's data cell.
    pub fn from_data_cell(cell: &Cell) -> Result<Self> {
        cell.parse_fully(|s| {
            Ok(Self {
                lifecycle: load_lifecycle(s)?,
                announced: s.load_bit()?,
                balance: s.load_coins()?,
                stake: s.load_coins()?,
                tokens_used: s.load_u64()?,
                unlock_time: s.load_u32()?,
                secret_hash: s.load_array()?,
                identity: ChildIdentity::from_cell(&s.load_ref()?)?,
            })
        })
    }

    /// What the owner could withdraw now (`balance - stake`, or nothing).
    pub fn withdrawable(&self) -> u128 {
        self.balance.saturating_sub(self.stake)
    }
}

/// Data of a worker contract (`WorkerStorage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerState {
    /// Normal or closed.
    pub lifecycle: Lifecycle,
    /// The proxy contract counts this worker as active.
    pub announced: bool,
    /// Cumulative adjusted tokens paid out so far.
    pub tokens_paid: u64,
    /// Owner, proxy and parameters.
    pub identity: ChildIdentity,
}

impl WorkerState {
    /// The data a worker contract is deployed with.
    pub fn initial(identity: ChildIdentity) -> Self {
        Self {
            lifecycle: Lifecycle::Normal,
            announced: false,
            tokens_paid: 0,
            identity,
        }
    }

    /// Serializes the data cell.
    pub fn to_data_cell(&self) -> Result<Cell> {
        let mut b = CellBuilder::new();
        b.store_uint(self.lifecycle.as_u8().into(), 2)?
            .store_bit(self.announced)?
            .store_u64(self.tokens_paid)?
            .store_ref(self.identity.to_cell()?)?;
        b.build()
    }

    /// Parses a worker contract's data cell.
    pub fn from_data_cell(cell: &Cell) -> Result<Self> {
        cell.parse_fully(|s| {
            Ok(Self {
                lifecycle: load_lifecycle(s)?,
                announced: s.load_bit()?,
                tokens_paid: s.load_u64()?,
                identity: ChildIdentity::from_cell(&s.load_ref()?)?,
            })
        })
    }
}

/// A proxy registered in the root: its seqno and `"ip:port [ip:port]"` endpoint text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegisteredProxy {
    /// Registration number (never reused).
    pub seqno: u32,
    /// Where the proxy listens.
    pub endpoint: String,
}

/// Data of the root registry (`RootStorage` with its lists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootState {
    /// The only sender the root accepts updates from.
    pub owner: Address,
    /// Bumped by every accepted update: the config version nodes compare.
    pub version: u32,
    /// Current parameters.
    pub params: Params,
    /// Allowed proxy image hashes, ascending.
    pub proxy_image_hashes: Vec<[u8; 32]>,
    /// Allowed worker image hashes, ascending.
    pub worker_image_hashes: Vec<[u8; 32]>,
    /// Allowed model hashes, ascending.
    pub model_hashes: Vec<[u8; 32]>,
    /// Registered proxies, by ascending seqno.
    pub registered_proxies: Vec<RegisteredProxy>,
    /// Seqno the next registered proxy gets.
    pub next_proxy_seqno: u32,
}

fn key_256(key: Vec<u8>) -> Result<[u8; 32]> {
    key.try_into()
        .map_err(|_| Error::InvalidDictionary("key is not 256 bits"))
}

impl RootState {
    /// Parses the root's data cell.
    pub fn from_data_cell(cell: &Cell) -> Result<Self> {
        cell.parse_fully(|s| {
            let owner = s.load_address()?;
            let version = s.load_u32()?;
            let params = Params::from_cell(&s.load_ref()?)?;
            let lists = s.load_ref()?;
            lists.parse_fully(|l| {
                let unit = |_: &mut crate::cell::CellSlice<'_>| Ok(());
                let hashes = |entries: Vec<(Vec<u8>, ())>| {
                    entries
                        .into_iter()
                        .map(|(k, ())| key_256(k))
                        .collect::<Result<Vec<_>>>()
                };
                let proxy_image_hashes = hashes(load_dict_e(l, 256, DEFAULT_MAX_ENTRIES, unit)?)?;
                let worker_image_hashes = hashes(load_dict_e(l, 256, DEFAULT_MAX_ENTRIES, unit)?)?;
                let model_hashes = hashes(load_dict_e(l, 256, DEFAULT_MAX_ENTRIES, unit)?)?;
                let registered_proxies = load_dict_e(l, 32, DEFAULT_MAX_ENTRIES, |v| {
                    read_snake_text(&v.load_ref()?, MAX_ENDPOINT_LEN)
                })?
                .into_iter()
                .map(|(k, endpoint)| {
                    let seqno: [u8; 4] = k
                        .try_into()
                        .map_err(|_| Error::InvalidDictionary("key is not 32 bits"))?;
                    Ok(RegisteredProxy {
                        seqno: u32::from_be_bytes(seqno),
                        endpoint,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
                let next_proxy_seqno = l.load_u32()?;
                Ok(Self {
                    owner,
                    version,
                    params,
                    proxy_image_hashes,
                    worker_image_hashes,
                    model_hashes,
                    registered_proxies,
                    next_proxy_seqno,
                })
            })
        })
    }

    /// Whether a proxy image hash is allowed.
    pub fn is_proxy_image_allowed(&self, hash: &[u8; 32]) -> bool {
        self.proxy_image_hashes.binary_search(hash).is_ok()
    }

    /// Whether a worker image hash is allowed.
    pub fn is_worker_image_allowed(&self, hash: &[u8; 32]) -> bool {
        self.worker_image_hashes.binary_search(hash).is_ok()
    }

    /// Whether a model hash is allowed.
    pub fn is_model_allowed(&self, hash: &[u8; 32]) -> bool {
        self.model_hashes.binary_search(hash).is_ok()
    }
}

/// The root's initial data: `owner`, version 0, `params`, empty lists, next seqno 0.
pub fn root_initial_data(owner: &Address, params: &Params) -> Result<Cell> {
    let mut lists = CellBuilder::new();
    lists
        .store_bit(false)? // proxy image hashes
        .store_bit(false)? // worker image hashes
        .store_bit(false)? // model hashes
        .store_bit(false)? // registered proxies
        .store_u32(0)?; // next proxy seqno
    let mut b = CellBuilder::new();
    b.store_address(owner)?
        .store_u32(0)?
        .store_ref(params.to_cell()?)?
        .store_ref(lists.build()?)?;
    b.build()
}

/// State init of a root registry with the embedded root code.
pub fn root_state_init(owner: &Address, params: &Params) -> Result<StateInit> {
    Ok(StateInit::new(
        ContractKind::Root.code()?,
        root_initial_data(owner, params)?,
    ))
}

/// Address of a root registry with the embedded root code.
pub fn root_address(owner: &Address, params: &Params) -> Result<Address> {
    root_state_init(owner, params)?.address(BASECHAIN)
}

/// State init of the proxy contract of `proxy_public_key` (code from `params`).
pub fn proxy_state_init(
    owner: &Address,
    proxy_public_key: &[u8; 32],
    root: &Address,
    params: &Params,
) -> Result<StateInit> {
    let identity = ProxyIdentity {
        owner: *owner,
        proxy_public_key: *proxy_public_key,
        root: *root,
        params: params.clone(),
    };
    Ok(StateInit::new(
        params.proxy_code().clone(),
        ProxyState::initial(identity).to_data_cell()?,
    ))
}

/// Address of the proxy contract of `proxy_public_key`.
pub fn proxy_address(
    owner: &Address,
    proxy_public_key: &[u8; 32],
    root: &Address,
    params: &Params,
) -> Result<Address> {
    proxy_state_init(owner, proxy_public_key, root, params)?.address(BASECHAIN)
}

fn child_identity(
    owner: &Address,
    proxy_contract: &Address,
    proxy_public_key: &[u8; 32],
    params: &Params,
) -> ChildIdentity {
    ChildIdentity {
        owner: *owner,
        proxy_contract: *proxy_contract,
        proxy_public_key: *proxy_public_key,
        params: params.stored_core().clone(),
    }
}

/// State init of the client contract of `owner` at a proxy contract, given that proxy's
/// parameters (client code and core): what the proxy contract itself recomputes.
pub fn client_state_init(
    owner: &Address,
    proxy_contract: &Address,
    proxy_public_key: &[u8; 32],
    params: &Params,
) -> Result<StateInit> {
    let identity = child_identity(owner, proxy_contract, proxy_public_key, params);
    Ok(StateInit::new(
        params.client_code().clone(),
        ClientState::initial(identity).to_data_cell()?,
    ))
}

/// Address of the client contract of `owner` at a proxy contract.
pub fn client_address(
    owner: &Address,
    proxy_contract: &Address,
    proxy_public_key: &[u8; 32],
    params: &Params,
) -> Result<Address> {
    client_state_init(owner, proxy_contract, proxy_public_key, params)?.address(BASECHAIN)
}

/// State init of the worker contract of `owner` at a proxy contract.
pub fn worker_state_init(
    owner: &Address,
    proxy_contract: &Address,
    proxy_public_key: &[u8; 32],
    params: &Params,
) -> Result<StateInit> {
    let identity = child_identity(owner, proxy_contract, proxy_public_key, params);
    Ok(StateInit::new(
        params.worker_code().clone(),
        WorkerState::initial(identity).to_data_cell()?,
    ))
}

/// Address of the worker contract of `owner` at a proxy contract.
pub fn worker_address(
    owner: &Address,
    proxy_contract: &Address,
    proxy_public_key: &[u8; 32],
    params: &Params,
) -> Result<Address> {
    worker_state_init(owner, proxy_contract, proxy_public_key, params)?.address(BASECHAIN)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::contracts::ParamsCore;

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

    #[test]
    fn data_cells_roundtrip() {
        let p = params();
        let owner = Address::new(0, [1; 32]);
        let proxy = Address::new(0, [2; 32]);
        let identity = child_identity(&owner, &proxy, &[3; 32], &p);
        let mut client = ClientState::initial(identity.clone());
        client.balance = 5_000_000_000;
        client.tokens_used = 77;
        client.lifecycle = Lifecycle::Closing;
        assert_eq!(
            ClientState::from_data_cell(&client.to_data_cell().unwrap()).unwrap(),
            client
        );
        assert_eq!(client.withdrawable(), 4_000_000_000);
        let worker = WorkerState::initial(identity);
        assert_eq!(
            WorkerState::from_data_cell(&worker.to_data_cell().unwrap()).unwrap(),
            worker
        );
        let proxy_state = ProxyState::initial(ProxyIdentity {
            owner,
            proxy_public_key: [3; 32],
            root: Address::new(0, [4; 32]),
            params: p.clone(),
        });
        assert_eq!(
            ProxyState::from_data_cell(&proxy_state.to_data_cell().unwrap()).unwrap(),
            proxy_state
        );
        let root = RootState::from_data_cell(&root_initial_data(&owner, &p).unwrap()).unwrap();
        assert_eq!(root.owner, owner);
        assert_eq!(root.params, p);
        assert!(root.registered_proxies.is_empty());
    }

    #[test]
    fn children_of_different_owners_differ() {
        let p = params();
        let proxy = Address::new(0, [2; 32]);
        let a = client_address(&Address::new(0, [1; 32]), &proxy, &[3; 32], &p).unwrap();
        let b = client_address(&Address::new(0, [9; 32]), &proxy, &[3; 32], &p).unwrap();
        let w = worker_address(&Address::new(0, [1; 32]), &proxy, &[3; 32], &p).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, w);
    }
}

//! The root registry as every role reads it: allowed proxy and worker image hashes, allowed
//! model hashes, registered proxies with their endpoints, and the network parameters (prices,
//! multipliers, delays, stakes and the child contract codes), from the root contract's
//! `get_root_data` get-method (layouts in `docs/contracts.md`).

use crate::ChainError;
use crate::cell::{CellSlice, CellTree, walk_dict};
use crate::chain::Chain;
use crate::stack::{GetMethodResult, StackReader};
use crate::types::{Address, Boc, Nanotons};
use std::collections::{BTreeMap, BTreeSet};

/// The numeric parameters (`ParamsCore`): what client and worker contracts keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamsCore {
    /// Layout version of the parameters.
    pub struct_version: u8,
    /// Increases with every accepted parameter update.
    pub params_version: u32,
    /// Network id.
    pub unique_id: u32,
    /// A test network.
    pub is_test: bool,
    /// Nanotons a client pays per adjusted token.
    pub price_per_token: Nanotons,
    /// Nanotons a worker earns per adjusted token.
    pub worker_fee_per_token: Nanotons,
    /// Prompt token multiplier (10000 = 1.0×).
    pub prompt_multiplier: u32,
    /// Cached prompt token multiplier.
    pub cached_multiplier: u32,
    /// Completion token multiplier.
    pub completion_multiplier: u32,
    /// Reasoning token multiplier.
    pub reasoning_multiplier: u32,
    /// Seconds a proxy waits between starting and completing its close.
    pub proxy_delay_before_close: u32,
    /// Seconds a client waits before taking its stake back without the proxy.
    pub client_delay_before_close: u32,
    /// Smallest proxy stake, in nanotons.
    pub min_proxy_stake: Nanotons,
    /// Smallest client stake, in nanotons.
    pub min_client_stake: Nanotons,
}

/// The full parameters: the core and the three child contract codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// The numeric part.
    pub core: ParamsCore,
    /// Code of proxy contracts.
    pub proxy_code: Boc,
    /// Code of worker contracts.
    pub worker_code: Boc,
    /// Code of client contracts.
    pub client_code: Boc,
    /// Hash of `proxy_code`.
    pub proxy_code_hash: [u8; 32],
    /// Hash of `worker_code`.
    pub worker_code_hash: [u8; 32],
    /// Hash of `client_code`.
    pub client_code_hash: [u8; 32],
    /// The whole `Params` cell, as proxy contracts store it.
    pub cell: Boc,
}

/// A registered proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyEndpoint {
    /// Its registry seqno (never reused).
    pub seqno: u32,
    /// The text as registered: `"ip:port [ip:port]"`.
    pub endpoint: String,
}

impl ProxyEndpoint {
    /// The whitespace-separated addresses of the endpoint text.
    pub fn addresses(&self) -> impl Iterator<Item = &str> {
        self.endpoint.split_whitespace()
    }
}

/// The root registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// The root contract.
    pub root: Address,
    /// Who may change it.
    pub owner: Address,
    /// Config version: bumped by every accepted change.
    pub version: u32,
    /// Seqno the next registered proxy will get.
    pub next_proxy_seqno: u32,
    /// Current parameters.
    pub params: Params,
    /// Proxy TEE image hashes allowed by policy.
    pub proxy_image_hashes: BTreeSet<[u8; 32]>,
    /// Worker TEE image hashes allowed by policy.
    pub worker_image_hashes: BTreeSet<[u8; 32]>,
    /// Model hashes allowed on the network.
    pub model_hashes: BTreeSet<[u8; 32]>,
    /// Registered proxies by seqno.
    pub proxies: BTreeMap<u32, ProxyEndpoint>,
}

impl Registry {
    /// Parses `get_root_data`'s result stack.
    ///
    /// # Errors
    /// [`ChainError::Stack`], [`ChainError::Boc`] or [`ChainError::CellLayout`] when the stack
    /// or its cells are not what the root contract returns.
    pub fn from_root_data(root: Address, result: &GetMethodResult) -> Result<Self, ChainError> {
        let mut r: StackReader<'_> = result.reader();
        let owner = r.read_address()?;
        let version = r.read_u32()?;
        let next_proxy_seqno = r.read_u32()?;
        let params = parse_params(r.read_cell()?)?;
        let proxy_image_hashes = hash_set(r.read_cell_opt()?, "proxy image hashes")?;
        let worker_image_hashes = hash_set(r.read_cell_opt()?, "worker image hashes")?;
        let model_hashes = hash_set(r.read_cell_opt()?, "model hashes")?;
        let proxies = proxy_map(r.read_cell_opt()?)?;
        r.expect_end()?;
        Ok(Self {
            root,
            owner,
            version,
            next_proxy_seqno,
            params,
            proxy_image_hashes,
            worker_image_hashes,
            model_hashes,
            proxies,
        })
    }

    /// Whether a proxy image hash is allowed.
    #[must_use]
    pub fn is_proxy_image_allowed(&self, hash: &[u8; 32]) -> bool {
        self.proxy_image_hashes.contains(hash)
    }

    /// Whether a worker image hash is allowed.
    #[must_use]
    pub fn is_worker_image_allowed(&self, hash: &[u8; 32]) -> bool {
        self.worker_image_hashes.contains(hash)
    }

    /// Whether a model hash is allowed.
    #[must_use]
    pub fn is_model_allowed(&self, hash: &[u8; 32]) -> bool {
        self.model_hashes.contains(hash)
    }
}

/// Reads the root registry at `root` through any chain backend.
///
/// # Errors
/// The chain's errors, then those of [`Registry::from_root_data`].
pub async fn read_registry<C: Chain + ?Sized>(
    chain: &C,
    root: &Address,
) -> Result<Registry, ChainError> {
    let result = chain.run_get_method(root, "get_root_data", &[]).await?;
    Registry::from_root_data(*root, &result)
}

fn parse_params(boc: &Boc) -> Result<Params, ChainError> {
    const CTX: &str = "Params";
    let tree = CellTree::from_boc(boc.as_bytes())?;
    let mut s = tree.root();
    let core = parse_params_core(s.load_ref(CTX)?)?;
    let proxy = s.load_ref(CTX)?;
    let worker = s.load_ref(CTX)?;
    let client = s.load_ref(CTX)?;
    s.expect_end(CTX)?;
    Ok(Params {
        core,
        proxy_code: Boc::new(proxy.to_boc()),
        worker_code: Boc::new(worker.to_boc()),
        client_code: Boc::new(client.to_boc()),
        proxy_code_hash: proxy.cell_hash(),
        worker_code_hash: worker.cell_hash(),
        client_code_hash: client.cell_hash(),
        cell: boc.clone(),
    })
}

fn parse_params_core(mut s: CellSlice<'_>) -> Result<ParamsCore, ChainError> {
    const CTX: &str = "ParamsCore";
    let core = ParamsCore {
        struct_version: u8::try_from(s.load_uint(8, CTX)?)
            .map_err(|_| ChainError::layout(CTX, "struct version"))?,
        params_version: s.load_u32(32, CTX)?,
        unique_id: s.load_u32(32, CTX)?,
        is_test: s.load_bit(CTX)?,
        price_per_token: s.load_coins(CTX)?,
        worker_fee_per_token: s.load_coins(CTX)?,
        prompt_multiplier: s.load_u32(32, CTX)?,
        cached_multiplier: s.load_u32(32, CTX)?,
        completion_multiplier: s.load_u32(32, CTX)?,
        reasoning_multiplier: s.load_u32(32, CTX)?,
        proxy_delay_before_close: s.load_u32(32, CTX)?,
        client_delay_before_close: s.load_u32(32, CTX)?,
        min_proxy_stake: s.load_coins(CTX)?,
        min_client_stake: s.load_coins(CTX)?,
    };
    s.expect_end(CTX)?;
    Ok(core)
}

fn hash_set(dict: Option<&Boc>, context: &'static str) -> Result<BTreeSet<[u8; 32]>, ChainError> {
    let mut set = BTreeSet::new();
    let Some(boc) = dict else {
        return Ok(set);
    };
    let tree = CellTree::from_boc(boc.as_bytes())?;
    walk_dict(tree.root(), 256, |key, value| {
        value.expect_end(context)?;
        set.insert(key.bytes256());
        Ok(())
    })?;
    Ok(set)
}

fn proxy_map(dict: Option<&Boc>) -> Result<BTreeMap<u32, ProxyEndpoint>, ChainError> {
    const CTX: &str = "registered proxies";
    let mut map = BTreeMap::new();
    let Some(boc) = dict else {
        return Ok(map);
    };
    let tree = CellTree::from_boc(boc.as_bytes())?;
    walk_dict(tree.root(), 32, |key, mut value| {
        let seqno = u32::try_from(key.uint()).map_err(|_| ChainError::layout(CTX, "seqno"))?;
        let mut text = value.load_ref(CTX)?;
        value.expect_end(CTX)?;
        let endpoint = text.load_snake_string(CTX)?;
        map.insert(seqno, ProxyEndpoint { seqno, endpoint });
        Ok(())
    })?;
    Ok(map)
}

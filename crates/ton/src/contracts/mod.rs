//! The network's four contracts (root, proxy, client, worker) as Rust sees them: their compiled
//! code (embedded from `contracts/build/*.json`, exactly what the sandbox tests ran), their op
//! and exit codes, the parameter set, the initial data that fixes every child's address, and
//! typed views of their data cells and get-method results. Layouts mirror `contracts/src` and
//! `contracts/tests/helpers/layout.mjs`; the test vectors check both agree.

mod getters;
mod params;
mod state;

use std::sync::OnceLock;

pub use getters::{ClientData, ProxyData, StackValue, WorkerData};
pub use params::{Params, ParamsCore, StoredParamsCore};
pub use state::{
    ChildIdentity, ClientState, ProxyIdentity, ProxyState, RegisteredProxy, RootState, WorkerState,
    client_address, client_state_init, proxy_address, proxy_state_init, root_address,
    root_initial_data, root_state_init, worker_address, worker_state_init,
};

use crate::{
    cell::Cell,
    error::{Error, Result},
};

/// Op codes (the first 32 bits of a message body) our contracts accept or send.
pub mod op {
    /// Client: top up the balance (`top_up query_id amount send_excesses_to`).
    pub const CLIENT_TOP_UP: u32 = 0xf172_e6c2;
    /// Client: charge by a voucher signed by the proxy key.
    pub const CLIENT_CHARGE_SIGNED: u32 = 0xbb63_ff93;
    /// Client: the proxy's final count, refund the rest and close.
    pub const CLIENT_GRANT_REFUND_SIGNED: u32 = 0xefd7_11e1;
    /// Client: the owner acknowledges a nonce (long auth), logged on chain.
    pub const CLIENT_REGISTER: u32 = 0xc45f_9f3b;
    /// Client: set the short-auth secret hash.
    pub const CLIENT_CHANGE_SECRET_HASH: u32 = 0xa935_7034;
    /// Client: raise the stake.
    pub const CLIENT_INCREASE_STAKE: u32 = 0x6a1f_6a60;
    /// Client: withdraw what is above the stake.
    pub const CLIENT_WITHDRAW: u32 = 0xda06_8e78;
    /// Client: start (or, after the delay, finish) a refund.
    pub const CLIENT_REQUEST_REFUND: u32 = 0xfafa_6cc1;
    /// Worker: payout by a voucher signed by the proxy key.
    pub const WORKER_PAYOUT_SIGNED: u32 = 0xa040_ad28;
    /// Worker: final payout, closes the worker contract.
    pub const WORKER_LAST_PAYOUT_SIGNED: u32 = 0xf5f2_6a36;
    /// Worker: announce the worker to the proxy contract.
    pub const WORKER_REGISTER: u32 = 0x26ed_7f65;
    /// Proxy: the owner collects the earned commission.
    pub const PROXY_PAYOUT: u32 = 0x7610_e6eb;
    /// Proxy: add to the stake.
    pub const PROXY_INCREASE_STAKE: u32 = 0x9713_f187;
    /// Proxy: the owner starts or completes a close.
    pub const PROXY_OWNER_CLOSE: u32 = 0xb51d_5a01;
    /// Proxy: start a close, signed by the proxy key.
    pub const PROXY_CLOSE_SIGNED: u32 = 0x636a_4391;
    /// Proxy: complete a close, signed by the proxy key.
    pub const PROXY_CLOSE_COMPLETE_SIGNED: u32 = 0xe511_abc7;
    /// Proxy: ledger anchor (inside `do_not_process`), and the prefix of what the key signs.
    pub const PROXY_SAVE_STATE: u32 = 0x5310_9c0f;
    /// Client contract to proxy contract request.
    pub const CLIENT_PROXY_REQUEST: u32 = 0x6544_8ff4;
    /// Worker contract to proxy contract request.
    pub const WORKER_PROXY_REQUEST: u32 = 0x4d72_5d2c;
    /// Left-over gas returned to the sender.
    pub const EXCESSES: u32 = 0x2565_934c;
    /// Money paid to an owner.
    pub const PAYOUT: u32 = 0xc59a_7cd3;
    /// A note for chain readers; the proxy reads ledger anchors from it.
    pub const DO_NOT_PROCESS: u32 = 0x9a12_47c0;
    /// Root: allow a proxy image hash.
    pub const ROOT_ADD_PROXY_IMAGE: u32 = 0xfba6_6403;
    /// Root: disallow a proxy image hash.
    pub const ROOT_REMOVE_PROXY_IMAGE: u32 = 0xe1f4_9d33;
    /// Root: allow a worker image hash.
    pub const ROOT_ADD_WORKER_IMAGE: u32 = 0xfe7f_06eb;
    /// Root: disallow a worker image hash.
    pub const ROOT_REMOVE_WORKER_IMAGE: u32 = 0xd8bc_64be;
    /// Root: allow a model hash.
    pub const ROOT_ADD_MODEL: u32 = 0x2334_623f;
    /// Root: disallow a model hash.
    pub const ROOT_REMOVE_MODEL: u32 = 0x14ac_3dc7;
    /// Root: register a proxy endpoint under the next seqno.
    pub const ROOT_REGISTER_PROXY: u32 = 0xd72c_cafb;
    /// Root: change a registered proxy's endpoint.
    pub const ROOT_UPDATE_PROXY: u32 = 0x6d80_f083;
    /// Root: remove a registered proxy.
    pub const ROOT_REMOVE_PROXY: u32 = 0xb04b_86a0;
    /// Root: replace the parameters.
    pub const ROOT_UPDATE_PARAMS: u32 = 0xd7b8_b0db;
    /// Root: hand the registry to a new owner.
    pub const ROOT_CHANGE_OWNER: u32 = 0xed26_808e;
    /// Topic of the external log a client contract emits on `register`.
    pub const LOG_CLIENT_REGISTERED: u32 = 0x1ba0_2a0f;
}

/// Value to attach to messages (nanoTON), from `contracts/src/common/constants.tolk`.
pub mod gas {
    /// A client or worker contract keeps this much for its own storage fees; a message that
    /// deploys one must bring it on top of the rest.
    pub const MIN_CHILD_BALANCE: u128 = 20_000_000;
    /// Least value above any top-up for a request that goes on to the proxy contract (child,
    /// proxy, payout and excess); less is refused with exit code 409.
    pub const CHAIN_GAS: u128 = 50_000_000;
    /// Gas for an operation one contract handles alone (the proxy's `increase_stake` requires
    /// at least this much above the amount).
    pub const LOCAL_GAS: u128 = 10_000_000;
}

/// Exit codes with which our contracts refuse a message (the compute phase's exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExitCode {
    /// 401: sender is not the owner (or an unsigned anchor from someone else).
    NotOwner,
    /// 402: wrong state for this operation.
    WrongState,
    /// 403: bad signature.
    BadSignature,
    /// 404: voucher for another contract.
    WrongTarget,
    /// 405: voucher signed for another op.
    WrongVoucherOp,
    /// 406: voucher not newer than what is recorded.
    VoucherNotNewer,
    /// 407: nothing to withdraw.
    NothingToWithdraw,
    /// 408: unlock time not reached.
    TooEarly,
    /// 409: not enough value attached.
    LowValue,
    /// 410: sender is not a child contract of this proxy.
    NotAChild,
    /// 411: clients or workers still active.
    ActiveChildren,
    /// 412: stake too low.
    StakeTooLow,
    /// 413: anchored seqno not newer.
    SeqnoNotNewer,
    /// 414: inconsistent parameters.
    InvalidParams,
    /// 415: not found in the root's lists.
    NotFound,
    /// 416: already registered.
    AlreadyRegistered,
    /// 417: nothing to pay.
    NothingToPay,
    /// 418: wrong chain.
    WrongChain,
    /// 419: unknown request kind.
    UnknownRequest,
    /// 0xffff: unknown op.
    UnknownOp,
}

impl ExitCode {
    const ALL: [(i32, Self); 20] = [
        (401, Self::NotOwner),
        (402, Self::WrongState),
        (403, Self::BadSignature),
        (404, Self::WrongTarget),
        (405, Self::WrongVoucherOp),
        (406, Self::VoucherNotNewer),
        (407, Self::NothingToWithdraw),
        (408, Self::TooEarly),
        (409, Self::LowValue),
        (410, Self::NotAChild),
        (411, Self::ActiveChildren),
        (412, Self::StakeTooLow),
        (413, Self::SeqnoNotNewer),
        (414, Self::InvalidParams),
        (415, Self::NotFound),
        (416, Self::AlreadyRegistered),
        (417, Self::NothingToPay),
        (418, Self::WrongChain),
        (419, Self::UnknownRequest),
        (0xffff, Self::UnknownOp),
    ];

    /// The exit code our contracts throw for a reason, or `None` for codes they do not use
    /// (TVM's own codes, for instance).
    pub fn from_code(code: i32) -> Option<Self> {
        Self::ALL.iter().find(|(c, _)| *c == code).map(|(_, e)| *e)
    }

    /// The numeric exit code.
    pub fn code(self) -> i32 {
        Self::ALL
            .iter()
            .find(|(_, e)| *e == self)
            .map_or(0, |(c, _)| *c)
    }
}

/// Lifecycle of a proxy, client or worker contract (`state:uint2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// 0: working.
    Normal,
    /// 1: closing (refunds and last payouts only).
    Closing,
    /// 2: closed for good.
    Closed,
}

impl Lifecycle {
    /// From the stored value.
    pub fn from_u8(value: u8) -> Result<Self> {
        match value {
            0 => Ok(Self::Normal),
            1 => Ok(Self::Closing),
            2 => Ok(Self::Closed),
            v => Err(Error::InvalidField {
                field: "state",
                value: v.into(),
            }),
        }
    }

    /// The stored value.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::Normal => 0,
            Self::Closing => 1,
            Self::Closed => 2,
        }
    }
}

/// One of the network's contracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContractKind {
    /// The root registry.
    Root,
    /// A proxy contract.
    Proxy,
    /// A client contract.
    Client,
    /// A worker contract.
    Worker,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct BuildJson {
    name: String,
    code_boc64: String,
    code_hash_hex: String,
}

const ROOT_JSON: &str = include_str!("../../../../contracts/build/root.json");
const PROXY_JSON: &str = include_str!("../../../../contracts/build/proxy.json");
const CLIENT_JSON: &str = include_str!("../../../../contracts/build/client.json");
const WORKER_JSON: &str = include_str!("../../../../contracts/build/worker.json");

fn load_embedded(kind: ContractKind) -> Result<Cell> {
    let (name, json) = match kind {
        ContractKind::Root => ("root", ROOT_JSON),
        ContractKind::Proxy => ("proxy", PROXY_JSON),
        ContractKind::Client => ("client", CLIENT_JSON),
        ContractKind::Worker => ("worker", WORKER_JSON),
    };
    let parsed: BuildJson = serde_json::from_str(json).map_err(|_| Error::EmbeddedCode(name))?;
    if parsed.name != name {
        return Err(Error::EmbeddedCode(name));
    }
    let code = Cell::from_boc_base64(&parsed.code_boc64).map_err(|_| Error::EmbeddedCode(name))?;
    if hex::encode(code.hash()) != parsed.code_hash_hex.to_ascii_lowercase() {
        return Err(Error::EmbeddedCode(name));
    }
    Ok(code)
}

impl ContractKind {
    /// All four, in a fixed order.
    pub const ALL: [Self; 4] = [Self::Root, Self::Proxy, Self::Client, Self::Worker];

    /// The compiled code embedded in this crate (decoded and hash-checked once).
    pub fn code(self) -> Result<Cell> {
        static CODES: [OnceLock<Result<Cell>>; 4] = [
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
        ];
        let slot = match self {
            Self::Root => 0,
            Self::Proxy => 1,
            Self::Client => 2,
            Self::Worker => 3,
        };
        CODES[slot].get_or_init(|| load_embedded(self)).clone()
    }

    /// The contract's name as in `contracts/src/<name>.tolk`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::Proxy => "proxy",
            Self::Client => "client",
            Self::Worker => "worker",
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn embedded_codes_load_and_differ() {
        let hashes: Vec<[u8; 32]> = ContractKind::ALL
            .iter()
            .map(|k| k.code().unwrap().hash())
            .collect();
        for i in 0..4 {
            for j in i + 1..4 {
                assert_ne!(hashes[i], hashes[j]);
            }
        }
    }

    #[test]
    fn exit_codes_roundtrip() {
        for (code, e) in ExitCode::ALL {
            assert_eq!(ExitCode::from_code(code), Some(e));
            assert_eq!(e.code(), code);
        }
        assert_eq!(ExitCode::from_code(9), None);
    }

    #[test]
    fn lifecycle_values() {
        for v in 0..3 {
            assert_eq!(Lifecycle::from_u8(v).unwrap().as_u8(), v);
        }
        assert!(Lifecycle::from_u8(3).is_err());
    }
}

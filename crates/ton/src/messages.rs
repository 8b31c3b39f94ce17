//! Bodies of every message our contracts accept or send, as typed values that build the exact
//! cells `contracts/src` parses and parse the cells they send. Owners and submitters build
//! bodies here and wrap them in a wallet transfer; chain readers parse what they observe
//! (excesses, payouts, child → proxy requests, the client's `register` log).
//!
//! Layouts follow `docs/contracts.md`; every body is `op:32 query_id:64 ...`, except the
//! register log, whose topic is in its destination address.

use crate::{
    address::Address,
    cell::{Cell, CellBuilder, CellSlice, read_snake_text},
    contracts::{Params, op},
    error::{Error, Result},
    voucher::{LedgerAnchor, SignedMessage, VoucherKind},
};

/// Longest endpoint text accepted when parsing root messages.
const MAX_ENDPOINT_LEN: usize = 4096;

fn expect_op(found: u32, expected: u32) -> Result<()> {
    if found == expected {
        Ok(())
    } else {
        Err(Error::UnexpectedOp { expected, found })
    }
}

fn build(f: impl FnOnce(&mut CellBuilder) -> Result<()>) -> Result<Cell> {
    let mut b = CellBuilder::new();
    f(&mut b)?;
    b.build()
}

fn load_signed(code: u32, kind: VoucherKind, s: &mut CellSlice<'_>) -> Result<SignedMessage> {
    expect_op(code, kind.op())?;
    SignedMessage::load_after_op(code, s)
}

/// Checks that a signed message carries the op of the variant it is built as.
fn store_signed(b: &mut CellBuilder, kind: VoucherKind, m: &SignedMessage) -> Result<()> {
    expect_op(m.op, kind.op())?;
    b.store_u32(m.op)?;
    m.store_after_op(b)
}

fn endpoint_cell(endpoint: &str) -> Result<Cell> {
    build(|b| {
        b.store_text_tail(endpoint)?;
        Ok(())
    })
}

/// Messages a client contract accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// `top_up`: anyone adds `amount` to the balance; attach `amount` + 0.05 TON (+0.02 TON
    /// and the state init the first time).
    TopUp {
        /// Query id.
        query_id: u64,
        /// NanoTON added to the balance (kept by the proxy contract).
        amount: u128,
        /// Receives the left-over gas.
        send_excesses_to: Address,
    },
    /// `charge_signed`: a charge voucher.
    ChargeSigned(SignedMessage),
    /// `grant_refund_signed`: the proxy's final count; the rest is refunded, the contract
    /// closes.
    GrantRefundSigned(SignedMessage),
    /// `register`: the owner acknowledges `nonce`; the contract logs it.
    Register {
        /// Query id.
        query_id: u64,
        /// The nonce the proxy asked the owner to register (long auth).
        nonce: u64,
    },
    /// `change_secret_hash`: the owner sets the short-auth secret hash.
    ChangeSecretHash {
        /// Query id.
        query_id: u64,
        /// SHA-256 of the secret.
        secret_hash: [u8; 32],
    },
    /// `increase_stake`: the owner raises the stake.
    IncreaseStake {
        /// Query id.
        query_id: u64,
        /// The new stake (must exceed the current one).
        new_stake: u128,
    },
    /// `withdraw`: the owner takes `balance - stake`.
    Withdraw {
        /// Query id.
        query_id: u64,
    },
    /// `request_refund`: the owner starts a refund, or finishes it after the delay.
    RequestRefund {
        /// Query id.
        query_id: u64,
    },
}

impl ClientMessage {
    /// The body.
    pub fn to_cell(&self) -> Result<Cell> {
        build(|b| match self {
            Self::TopUp {
                query_id,
                amount,
                send_excesses_to,
            } => {
                b.store_u32(op::CLIENT_TOP_UP)?
                    .store_u64(*query_id)?
                    .store_coins(*amount)?
                    .store_address(send_excesses_to)?;
                Ok(())
            }
            Self::ChargeSigned(m) => store_signed(b, VoucherKind::ClientCharge, m),
            Self::GrantRefundSigned(m) => store_signed(b, VoucherKind::ClientGrantRefund, m),
            Self::Register { query_id, nonce } => {
                b.store_u32(op::CLIENT_REGISTER)?
                    .store_u64(*query_id)?
                    .store_u64(*nonce)?;
                Ok(())
            }
            Self::ChangeSecretHash {
                query_id,
                secret_hash,
            } => {
                b.store_u32(op::CLIENT_CHANGE_SECRET_HASH)?
                    .store_u64(*query_id)?
                    .store_bytes(secret_hash)?;
                Ok(())
            }
            Self::IncreaseStake {
                query_id,
                new_stake,
            } => {
                b.store_u32(op::CLIENT_INCREASE_STAKE)?
                    .store_u64(*query_id)?
                    .store_coins(*new_stake)?;
                Ok(())
            }
            Self::Withdraw { query_id } => {
                b.store_u32(op::CLIENT_WITHDRAW)?.store_u64(*query_id)?;
                Ok(())
            }
            Self::RequestRefund { query_id } => {
                b.store_u32(op::CLIENT_REQUEST_REFUND)?
                    .store_u64(*query_id)?;
                Ok(())
            }
        })
    }

    fn load(code: u32, s: &mut CellSlice<'_>) -> Result<Self> {
        Ok(match code {
            op::CLIENT_TOP_UP => Self::TopUp {
                query_id: s.load_u64()?,
                amount: s.load_coins()?,
                send_excesses_to: s.load_address()?,
            },
            op::CLIENT_CHARGE_SIGNED => {
                Self::ChargeSigned(load_signed(code, VoucherKind::ClientCharge, s)?)
            }
            op::CLIENT_GRANT_REFUND_SIGNED => {
                Self::GrantRefundSigned(load_signed(code, VoucherKind::ClientGrantRefund, s)?)
            }
            op::CLIENT_REGISTER => Self::Register {
                query_id: s.load_u64()?,
                nonce: s.load_u64()?,
            },
            op::CLIENT_CHANGE_SECRET_HASH => Self::ChangeSecretHash {
                query_id: s.load_u64()?,
                secret_hash: s.load_array()?,
            },
            op::CLIENT_INCREASE_STAKE => Self::IncreaseStake {
                query_id: s.load_u64()?,
                new_stake: s.load_coins()?,
            },
            op::CLIENT_WITHDRAW => Self::Withdraw {
                query_id: s.load_u64()?,
            },
            op::CLIENT_REQUEST_REFUND => Self::RequestRefund {
                query_id: s.load_u64()?,
            },
            other => return Err(Error::UnknownOp(other)),
        })
    }

    /// Parses a body (all of it).
    pub fn from_cell(cell: &Cell) -> Result<Self> {
        cell.parse_fully(|s| {
            let code = s.load_u32()?;
            Self::load(code, s)
        })
    }
}

/// Messages a worker contract accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerMessage {
    /// `payout_signed`: a payout voucher (cumulative count).
    PayoutSigned(SignedMessage),
    /// `last_payout_signed`: the final count; pays and closes.
    LastPayoutSigned(SignedMessage),
    /// `register`: the owner announces the worker to the proxy contract.
    Register {
        /// Query id.
        query_id: u64,
    },
}

impl WorkerMessage {
    /// The body.
    pub fn to_cell(&self) -> Result<Cell> {
        build(|b| match self {
            Self::PayoutSigned(m) => store_signed(b, VoucherKind::WorkerPayout, m),
            Self::LastPayoutSigned(m) => store_signed(b, VoucherKind::WorkerLastPayout, m),
            Self::Register { query_id } => {
                b.store_u32(op::WORKER_REGISTER)?.store_u64(*query_id)?;
                Ok(())
            }
        })
    }

    fn load(code: u32, s: &mut CellSlice<'_>) -> Result<Self> {
        Ok(match code {
            op::WORKER_PAYOUT_SIGNED => {
                Self::PayoutSigned(load_signed(code, VoucherKind::WorkerPayout, s)?)
            }
            op::WORKER_LAST_PAYOUT_SIGNED => {
                Self::LastPayoutSigned(load_signed(code, VoucherKind::WorkerLastPayout, s)?)
            }
            op::WORKER_REGISTER => Self::Register {
                query_id: s.load_u64()?,
            },
            other => return Err(Error::UnknownOp(other)),
        })
    }

    /// Parses a body (all of it).
    pub fn from_cell(cell: &Cell) -> Result<Self> {
        cell.parse_fully(|s| {
            let code = s.load_u32()?;
            Self::load(code, s)
        })
    }
}

/// Flags of a child → proxy request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RequestFlags(pub u8);

impl RequestFlags {
    /// First contact of this child: the proxy counts it as active.
    pub const ANNOUNCE: Self = Self(1);
    /// The child closed for good: the proxy stops counting it.
    pub const CLOSE: Self = Self(2);

    /// Whether the announce bit is set.
    pub fn announce(self) -> bool {
        self.0 & Self::ANNOUNCE.0 != 0
    }

    /// Whether the close bit is set.
    pub fn close(self) -> bool {
        self.0 & Self::CLOSE.0 != 0
    }
}

/// What a client contract asks of its proxy contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientRequestKind {
    /// 1: keep `amount` of the attached value as client funds.
    TopUp,
    /// 2: pay `amount` of client funds to the owner.
    PayOwner,
    /// 3: the same, and the client contract is now closed.
    FinalPay,
}

impl ClientRequestKind {
    fn as_u8(self) -> u8 {
        match self {
            Self::TopUp => 1,
            Self::PayOwner => 2,
            Self::FinalPay => 3,
        }
    }

    fn from_u8(v: u8) -> Result<Self> {
        match v {
            1 => Ok(Self::TopUp),
            2 => Ok(Self::PayOwner),
            3 => Ok(Self::FinalPay),
            v => Err(Error::InvalidField {
                field: "client request kind",
                value: v.into(),
            }),
        }
    }
}

/// What a worker contract asks of its proxy contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkerRequestKind {
    /// 1: the worker announces itself.
    Register,
    /// 2: pay `tokens` × worker fee to the owner.
    Payout,
    /// 3: the same, and the worker contract is now closed.
    LastPayout,
}

impl WorkerRequestKind {
    fn as_u8(self) -> u8 {
        match self {
            Self::Register => 1,
            Self::Payout => 2,
            Self::LastPayout => 3,
        }
    }

    fn from_u8(v: u8) -> Result<Self> {
        match v {
            1 => Ok(Self::Register),
            2 => Ok(Self::Payout),
            3 => Ok(Self::LastPayout),
            v => Err(Error::InvalidField {
                field: "worker request kind",
                value: v.into(),
            }),
        }
    }
}

/// `client_proxy_request`: sent by a client contract to its proxy contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientProxyRequest {
    /// Query id.
    pub query_id: u64,
    /// What to do.
    pub kind: ClientRequestKind,
    /// Top-up kept by the proxy, or payout sent to the owner (nanoTON).
    pub amount: u128,
    /// Announce / close.
    pub flags: RequestFlags,
    /// Owner of the client contract.
    pub owner: Address,
    /// Receives the left-over gas.
    pub send_excesses_to: Address,
}

/// `worker_proxy_request`: sent by a worker contract to its proxy contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerProxyRequest {
    /// Query id.
    pub query_id: u64,
    /// What to do.
    pub kind: WorkerRequestKind,
    /// Newly paid adjusted tokens (a delta).
    pub tokens: u64,
    /// Announce / close.
    pub flags: RequestFlags,
    /// Owner of the worker contract.
    pub owner: Address,
    /// Receives the left-over gas.
    pub send_excesses_to: Address,
}

/// Messages a proxy contract accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyMessage {
    /// `payout`: the owner collects the earned commission.
    Payout {
        /// Query id.
        query_id: u64,
    },
    /// `increase_stake`: adds `amount` (attach `amount` + 0.01 TON at least).
    IncreaseStake {
        /// Query id.
        query_id: u64,
        /// NanoTON added to the stake.
        amount: u128,
    },
    /// `owner_close`: the owner starts a close, or completes it after the delay.
    OwnerClose {
        /// Query id.
        query_id: u64,
    },
    /// `close_signed`: starts a close, signed by the proxy key.
    CloseSigned(SignedMessage),
    /// `close_complete_signed`: completes the close, signed by the proxy key.
    CloseCompleteSigned(SignedMessage),
    /// `do_not_process | query_id | save_state | seqno | state_hash [| ^signature]`: a ledger
    /// anchor, from the owner or signed by the proxy key.
    SaveState {
        /// Query id.
        query_id: u64,
        /// The anchor.
        anchor: LedgerAnchor,
        /// Signature by the proxy key (see [`LedgerAnchor::sign`]); needed unless the owner
        /// sends it.
        signature: Option<[u8; 64]>,
    },
    /// A `do_not_process` that is not an anchor: a note for chain readers.
    Note {
        /// Query id.
        query_id: u64,
        /// Whatever follows the query id.
        rest: Cell,
    },
    /// A client contract's request.
    ClientRequest(ClientProxyRequest),
    /// A worker contract's request.
    WorkerRequest(WorkerProxyRequest),
}

impl ProxyMessage {
    /// The body.
    pub fn to_cell(&self) -> Result<Cell> {
        build(|b| match self {
            Self::Payout { query_id } => {
                b.store_u32(op::PROXY_PAYOUT)?.store_u64(*query_id)?;
                Ok(())
            }
            Self::IncreaseStake { query_id, amount } => {
                b.store_u32(op::PROXY_INCREASE_STAKE)?
                    .store_u64(*query_id)?
                    .store_coins(*amount)?;
                Ok(())
            }
            Self::OwnerClose { query_id } => {
                b.store_u32(op::PROXY_OWNER_CLOSE)?.store_u64(*query_id)?;
                Ok(())
            }
            Self::CloseSigned(m) => store_signed(b, VoucherKind::ProxyClose, m),
            Self::CloseCompleteSigned(m) => store_signed(b, VoucherKind::ProxyCloseComplete, m),
            Self::SaveState {
                query_id,
                anchor,
                signature,
            } => {
                b.store_u32(op::DO_NOT_PROCESS)?
                    .store_u64(*query_id)?
                    .store_u32(op::PROXY_SAVE_STATE)?
                    .store_u32(anchor.seqno)?
                    .store_bytes(&anchor.state_hash)?;
                if let Some(sig) = signature {
                    b.store_ref(build(|s| {
                        s.store_bytes(sig)?;
                        Ok(())
                    })?)?;
                }
                Ok(())
            }
            Self::Note { query_id, rest } => {
                let mut probe = rest.parser();
                if probe.remaining_bits() >= 32 && probe.load_u32()? == op::PROXY_SAVE_STATE {
                    return Err(Error::InvalidField {
                        field: "note starting with save_state",
                        value: op::PROXY_SAVE_STATE.into(),
                    });
                }
                b.store_u32(op::DO_NOT_PROCESS)?
                    .store_u64(*query_id)?
                    .store_cell_contents(rest)?;
                Ok(())
            }
            Self::ClientRequest(r) => {
                b.store_u32(op::CLIENT_PROXY_REQUEST)?
                    .store_u64(r.query_id)?
                    .store_u8(r.kind.as_u8())?
                    .store_coins(r.amount)?
                    .store_u8(r.flags.0)?
                    .store_address(&r.owner)?
                    .store_address(&r.send_excesses_to)?;
                Ok(())
            }
            Self::WorkerRequest(r) => {
                b.store_u32(op::WORKER_PROXY_REQUEST)?
                    .store_u64(r.query_id)?
                    .store_u8(r.kind.as_u8())?
                    .store_u64(r.tokens)?
                    .store_u8(r.flags.0)?
                    .store_address(&r.owner)?
                    .store_address(&r.send_excesses_to)?;
                Ok(())
            }
        })
    }

    fn load(code: u32, s: &mut CellSlice<'_>) -> Result<Self> {
        Ok(match code {
            op::PROXY_PAYOUT => Self::Payout {
                query_id: s.load_u64()?,
            },
            op::PROXY_INCREASE_STAKE => Self::IncreaseStake {
                query_id: s.load_u64()?,
                amount: s.load_coins()?,
            },
            op::PROXY_OWNER_CLOSE => Self::OwnerClose {
                query_id: s.load_u64()?,
            },
            op::PROXY_CLOSE_SIGNED => {
                Self::CloseSigned(load_signed(code, VoucherKind::ProxyClose, s)?)
            }
            op::PROXY_CLOSE_COMPLETE_SIGNED => {
                Self::CloseCompleteSigned(load_signed(code, VoucherKind::ProxyCloseComplete, s)?)
            }
            op::DO_NOT_PROCESS => {
                let query_id = s.load_u64()?;
                if s.remaining_bits() < 32 || s.peek_u32()? != op::PROXY_SAVE_STATE {
                    let rest = s.to_cell()?;
                    // consume the rest: a note is whatever follows
                    while s.remaining_refs() > 0 {
                        s.load_ref()?;
                    }
                    s.skip_bits(s.remaining_bits())?;
                    return Ok(Self::Note { query_id, rest });
                }
                s.load_u32()?;
                let anchor = LedgerAnchor {
                    seqno: s.load_u32()?,
                    state_hash: s.load_array()?,
                };
                let signature = if s.remaining_refs() > 0 {
                    Some(s.load_ref()?.parse_fully(|sig| sig.load_array::<64>())?)
                } else {
                    None
                };
                Self::SaveState {
                    query_id,
                    anchor,
                    signature,
                }
            }
            op::CLIENT_PROXY_REQUEST => Self::ClientRequest(ClientProxyRequest {
                query_id: s.load_u64()?,
                kind: ClientRequestKind::from_u8(s.load_u8()?)?,
                amount: s.load_coins()?,
                flags: RequestFlags(s.load_u8()?),
                owner: s.load_address()?,
                send_excesses_to: s.load_address()?,
            }),
            op::WORKER_PROXY_REQUEST => Self::WorkerRequest(WorkerProxyRequest {
                query_id: s.load_u64()?,
                kind: WorkerRequestKind::from_u8(s.load_u8()?)?,
                tokens: s.load_u64()?,
                flags: RequestFlags(s.load_u8()?),
                owner: s.load_address()?,
                send_excesses_to: s.load_address()?,
            }),
            other => return Err(Error::UnknownOp(other)),
        })
    }

    /// Parses a body (all of it).
    pub fn from_cell(cell: &Cell) -> Result<Self> {
        cell.parse_fully(|s| {
            let code = s.load_u32()?;
            Self::load(code, s)
        })
    }
}

/// Messages the root registry accepts (owner only; each bumps the root's version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootMessage {
    /// Allow a proxy image hash.
    AddProxyImage {
        /// Query id.
        query_id: u64,
        /// Image hash.
        hash: [u8; 32],
    },
    /// Disallow a proxy image hash.
    RemoveProxyImage {
        /// Query id.
        query_id: u64,
        /// Image hash.
        hash: [u8; 32],
    },
    /// Allow a worker image hash.
    AddWorkerImage {
        /// Query id.
        query_id: u64,
        /// Image hash.
        hash: [u8; 32],
    },
    /// Disallow a worker image hash.
    RemoveWorkerImage {
        /// Query id.
        query_id: u64,
        /// Image hash.
        hash: [u8; 32],
    },
    /// Allow a model hash.
    AddModel {
        /// Query id.
        query_id: u64,
        /// Model hash.
        hash: [u8; 32],
    },
    /// Disallow a model hash.
    RemoveModel {
        /// Query id.
        query_id: u64,
        /// Model hash.
        hash: [u8; 32],
    },
    /// Register a proxy endpoint under the next seqno.
    RegisterProxy {
        /// Query id.
        query_id: u64,
        /// `"ip:port [ip:port]"`.
        endpoint: String,
    },
    /// Replace a registered proxy's endpoint.
    UpdateProxy {
        /// Query id.
        query_id: u64,
        /// The proxy's seqno.
        seqno: u32,
        /// New endpoint.
        endpoint: String,
    },
    /// Remove a registered proxy.
    RemoveProxy {
        /// Query id.
        query_id: u64,
        /// The proxy's seqno.
        seqno: u32,
    },
    /// Replace the parameters (the root checks consistency and a higher params version).
    UpdateParams {
        /// Query id.
        query_id: u64,
        /// The new parameters.
        params: Box<Params>,
    },
    /// Hand the registry to a new owner.
    ChangeOwner {
        /// Query id.
        query_id: u64,
        /// The new owner.
        new_owner: Address,
    },
}

impl RootMessage {
    /// The body.
    pub fn to_cell(&self) -> Result<Cell> {
        build(|b| {
            match self {
                Self::AddProxyImage { query_id, hash } => {
                    b.store_u32(op::ROOT_ADD_PROXY_IMAGE)?
                        .store_u64(*query_id)?
                        .store_bytes(hash)?;
                }
                Self::RemoveProxyImage { query_id, hash } => {
                    b.store_u32(op::ROOT_REMOVE_PROXY_IMAGE)?
                        .store_u64(*query_id)?
                        .store_bytes(hash)?;
                }
                Self::AddWorkerImage { query_id, hash } => {
                    b.store_u32(op::ROOT_ADD_WORKER_IMAGE)?
                        .store_u64(*query_id)?
                        .store_bytes(hash)?;
                }
                Self::RemoveWorkerImage { query_id, hash } => {
                    b.store_u32(op::ROOT_REMOVE_WORKER_IMAGE)?
                        .store_u64(*query_id)?
                        .store_bytes(hash)?;
                }
                Self::AddModel { query_id, hash } => {
                    b.store_u32(op::ROOT_ADD_MODEL)?
                        .store_u64(*query_id)?
                        .store_bytes(hash)?;
                }
                Self::RemoveModel { query_id, hash } => {
                    b.store_u32(op::ROOT_REMOVE_MODEL)?
                        .store_u64(*query_id)?
                        .store_bytes(hash)?;
                }
                Self::RegisterProxy { query_id, endpoint } => {
                    b.store_u32(op::ROOT_REGISTER_PROXY)?
                        .store_u64(*query_id)?
                        .store_ref(endpoint_cell(endpoint)?)?;
                }
                Self::UpdateProxy {
                    query_id,
                    seqno,
                    endpoint,
                } => {
                    b.store_u32(op::ROOT_UPDATE_PROXY)?
                        .store_u64(*query_id)?
                        .store_u32(*seqno)?
                        .store_ref(endpoint_cell(endpoint)?)?;
                }
                Self::RemoveProxy { query_id, seqno } => {
                    b.store_u32(op::ROOT_REMOVE_PROXY)?
                        .store_u64(*query_id)?
                        .store_u32(*seqno)?;
                }
                Self::UpdateParams { query_id, params } => {
                    b.store_u32(op::ROOT_UPDATE_PARAMS)?
                        .store_u64(*query_id)?
                        .store_ref(params.to_cell()?)?;
                }
                Self::ChangeOwner {
                    query_id,
                    new_owner,
                } => {
                    b.store_u32(op::ROOT_CHANGE_OWNER)?
                        .store_u64(*query_id)?
                        .store_address(new_owner)?;
                }
            }
            Ok(())
        })
    }

    fn load(code: u32, s: &mut CellSlice<'_>) -> Result<Self> {
        let query_id = s.load_u64()?;
        Ok(match code {
            op::ROOT_ADD_PROXY_IMAGE => Self::AddProxyImage {
                query_id,
                hash: s.load_array()?,
            },
            op::ROOT_REMOVE_PROXY_IMAGE => Self::RemoveProxyImage {
                query_id,
                hash: s.load_array()?,
            },
            op::ROOT_ADD_WORKER_IMAGE => Self::AddWorkerImage {
                query_id,
                hash: s.load_array()?,
            },
            op::ROOT_REMOVE_WORKER_IMAGE => Self::RemoveWorkerImage {
                query_id,
                hash: s.load_array()?,
            },
            op::ROOT_ADD_MODEL => Self::AddModel {
                query_id,
                hash: s.load_array()?,
            },
            op::ROOT_REMOVE_MODEL => Self::RemoveModel {
                query_id,
                hash: s.load_array()?,
            },
            op::ROOT_REGISTER_PROXY => Self::RegisterProxy {
                query_id,
                endpoint: read_snake_text(&s.load_ref()?, MAX_ENDPOINT_LEN)?,
            },
            op::ROOT_UPDATE_PROXY => Self::UpdateProxy {
                query_id,
                seqno: s.load_u32()?,
                endpoint: read_snake_text(&s.load_ref()?, MAX_ENDPOINT_LEN)?,
            },
            op::ROOT_REMOVE_PROXY => Self::RemoveProxy {
                query_id,
                seqno: s.load_u32()?,
            },
            op::ROOT_UPDATE_PARAMS => Self::UpdateParams {
                query_id,
                params: Box::new(Params::from_cell(&s.load_ref()?)?),
            },
            op::ROOT_CHANGE_OWNER => Self::ChangeOwner {
                query_id,
                new_owner: s.load_address()?,
            },
            other => return Err(Error::UnknownOp(other)),
        })
    }

    /// Parses a body (all of it).
    pub fn from_cell(cell: &Cell) -> Result<Self> {
        cell.parse_fully(|s| {
            let code = s.load_u32()?;
            Self::load(code, s)
        })
    }
}

/// Notifications our contracts send to owners and submitters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notification {
    /// `excesses`: left-over gas coming back.
    Excesses {
        /// Query id of the message that caused it.
        query_id: u64,
    },
    /// `payout`: money paid to an owner (the message value).
    Payout {
        /// Query id of the message that caused it.
        query_id: u64,
    },
}

impl Notification {
    /// The body.
    pub fn to_cell(&self) -> Result<Cell> {
        build(|b| {
            let (code, query_id) = match self {
                Self::Excesses { query_id } => (op::EXCESSES, query_id),
                Self::Payout { query_id } => (op::PAYOUT, query_id),
            };
            b.store_u32(code)?.store_u64(*query_id)?;
            Ok(())
        })
    }

    fn load(code: u32, s: &mut CellSlice<'_>) -> Result<Self> {
        Ok(match code {
            op::EXCESSES => Self::Excesses {
                query_id: s.load_u64()?,
            },
            op::PAYOUT => Self::Payout {
                query_id: s.load_u64()?,
            },
            other => return Err(Error::UnknownOp(other)),
        })
    }

    /// Parses a body (all of it).
    pub fn from_cell(cell: &Cell) -> Result<Self> {
        cell.parse_fully(|s| {
            let code = s.load_u32()?;
            Self::load(code, s)
        })
    }
}

/// Any body our contracts accept or send, recognised by its op code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContractMessage {
    /// For a client contract.
    Client(ClientMessage),
    /// For a worker contract.
    Worker(WorkerMessage),
    /// For a proxy contract.
    Proxy(ProxyMessage),
    /// For the root registry.
    Root(RootMessage),
    /// From a contract to an owner or submitter.
    Notification(Notification),
}

impl ContractMessage {
    /// Parses any body (all of it); unknown ops are [`Error::UnknownOp`].
    pub fn parse(cell: &Cell) -> Result<Self> {
        cell.parse_fully(|s| {
            let code = s.load_u32()?;
            match code {
                op::CLIENT_TOP_UP
                | op::CLIENT_CHARGE_SIGNED
                | op::CLIENT_GRANT_REFUND_SIGNED
                | op::CLIENT_REGISTER
                | op::CLIENT_CHANGE_SECRET_HASH
                | op::CLIENT_INCREASE_STAKE
                | op::CLIENT_WITHDRAW
                | op::CLIENT_REQUEST_REFUND => ClientMessage::load(code, s).map(Self::Client),
                op::WORKER_PAYOUT_SIGNED | op::WORKER_LAST_PAYOUT_SIGNED | op::WORKER_REGISTER => {
                    WorkerMessage::load(code, s).map(Self::Worker)
                }
                op::PROXY_PAYOUT
                | op::PROXY_INCREASE_STAKE
                | op::PROXY_OWNER_CLOSE
                | op::PROXY_CLOSE_SIGNED
                | op::PROXY_CLOSE_COMPLETE_SIGNED
                | op::DO_NOT_PROCESS
                | op::CLIENT_PROXY_REQUEST
                | op::WORKER_PROXY_REQUEST => ProxyMessage::load(code, s).map(Self::Proxy),
                op::ROOT_ADD_PROXY_IMAGE
                | op::ROOT_REMOVE_PROXY_IMAGE
                | op::ROOT_ADD_WORKER_IMAGE
                | op::ROOT_REMOVE_WORKER_IMAGE
                | op::ROOT_ADD_MODEL
                | op::ROOT_REMOVE_MODEL
                | op::ROOT_REGISTER_PROXY
                | op::ROOT_UPDATE_PROXY
                | op::ROOT_REMOVE_PROXY
                | op::ROOT_UPDATE_PARAMS
                | op::ROOT_CHANGE_OWNER => RootMessage::load(code, s).map(Self::Root),
                op::EXCESSES | op::PAYOUT => Notification::load(code, s).map(Self::Notification),
                other => Err(Error::UnknownOp(other)),
            }
        })
    }

    /// The body.
    pub fn to_cell(&self) -> Result<Cell> {
        match self {
            Self::Client(m) => m.to_cell(),
            Self::Worker(m) => m.to_cell(),
            Self::Proxy(m) => m.to_cell(),
            Self::Root(m) => m.to_cell(),
            Self::Notification(m) => m.to_cell(),
        }
    }
}

/// The external log a client contract emits on `register`: its owner acknowledged `nonce`.
/// The proxy watches for it to finish a client's long authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientRegisteredLog {
    /// The acknowledged nonce.
    pub nonce: u64,
    /// The client contract's owner.
    pub owner: Address,
}

impl ClientRegisteredLog {
    /// The log's destination: `addr_extern` of 256 bits, a zero byte then the 248-bit topic
    /// [`op::LOG_CLIENT_REGISTERED`] (Tolk's `ExtOutLogBucket`). Indexers list external-out
    /// messages by this address.
    pub fn destination_bits() -> [u8; 32] {
        let mut out = [0u8; 32];
        out[28..].copy_from_slice(&op::LOG_CLIENT_REGISTERED.to_be_bytes());
        out
    }

    /// The log body: `nonce:uint64 owner:address`.
    pub fn to_cell(&self) -> Result<Cell> {
        build(|b| {
            b.store_u64(self.nonce)?.store_address(&self.owner)?;
            Ok(())
        })
    }

    /// Parses the log body (all of it).
    pub fn from_cell(cell: &Cell) -> Result<Self> {
        cell.parse_fully(|s| {
            Ok(Self {
                nonce: s.load_u64()?,
                owner: s.load_address()?,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::voucher::{Voucher, VoucherPayload};
    use ed25519_dalek::SigningKey;

    fn a(n: u8) -> Address {
        Address::new(0, [n; 32])
    }

    fn signed(kind: VoucherKind) -> SignedMessage {
        let v = Voucher::sign(
            VoucherPayload::new(kind, 4, 100, a(1)),
            &SigningKey::from_bytes(&[1; 32]),
        )
        .unwrap();
        SignedMessage {
            op: kind.op(),
            query_id: 4,
            send_excesses_to: a(2),
            voucher: v,
        }
    }

    fn all_messages() -> Vec<ContractMessage> {
        use ContractMessage as M;
        vec![
            M::Client(ClientMessage::TopUp {
                query_id: 1,
                amount: 5_000_000_000,
                send_excesses_to: a(3),
            }),
            M::Client(ClientMessage::ChargeSigned(signed(
                VoucherKind::ClientCharge,
            ))),
            M::Client(ClientMessage::GrantRefundSigned(signed(
                VoucherKind::ClientGrantRefund,
            ))),
            M::Client(ClientMessage::Register {
                query_id: 2,
                nonce: 0xdead_beef,
            }),
            M::Client(ClientMessage::ChangeSecretHash {
                query_id: 3,
                secret_hash: [9; 32],
            }),
            M::Client(ClientMessage::IncreaseStake {
                query_id: 4,
                new_stake: 7,
            }),
            M::Client(ClientMessage::Withdraw { query_id: 5 }),
            M::Client(ClientMessage::RequestRefund { query_id: 6 }),
            M::Worker(WorkerMessage::PayoutSigned(signed(
                VoucherKind::WorkerPayout,
            ))),
            M::Worker(WorkerMessage::LastPayoutSigned(signed(
                VoucherKind::WorkerLastPayout,
            ))),
            M::Worker(WorkerMessage::Register { query_id: 7 }),
            M::Proxy(ProxyMessage::Payout { query_id: 8 }),
            M::Proxy(ProxyMessage::IncreaseStake {
                query_id: 9,
                amount: 10,
            }),
            M::Proxy(ProxyMessage::OwnerClose { query_id: 10 }),
            M::Proxy(ProxyMessage::CloseSigned(signed(VoucherKind::ProxyClose))),
            M::Proxy(ProxyMessage::CloseCompleteSigned(signed(
                VoucherKind::ProxyCloseComplete,
            ))),
            M::Proxy(ProxyMessage::SaveState {
                query_id: 11,
                anchor: LedgerAnchor {
                    seqno: 3,
                    state_hash: [4; 32],
                },
                signature: Some([5; 64]),
            }),
            M::Proxy(ProxyMessage::SaveState {
                query_id: 12,
                anchor: LedgerAnchor {
                    seqno: 4,
                    state_hash: [4; 32],
                },
                signature: None,
            }),
            M::Proxy(ProxyMessage::Note {
                query_id: 13,
                rest: Cell::builder()
                    .store_u32(0x1111_1111)
                    .unwrap()
                    .build()
                    .unwrap(),
            }),
            M::Proxy(ProxyMessage::ClientRequest(ClientProxyRequest {
                query_id: 14,
                kind: ClientRequestKind::FinalPay,
                amount: 3,
                flags: RequestFlags::CLOSE,
                owner: a(4),
                send_excesses_to: a(5),
            })),
            M::Proxy(ProxyMessage::WorkerRequest(WorkerProxyRequest {
                query_id: 15,
                kind: WorkerRequestKind::Payout,
                tokens: 1000,
                flags: RequestFlags::ANNOUNCE,
                owner: a(4),
                send_excesses_to: a(5),
            })),
            M::Root(RootMessage::AddProxyImage {
                query_id: 16,
                hash: [1; 32],
            }),
            M::Root(RootMessage::RemoveModel {
                query_id: 17,
                hash: [2; 32],
            }),
            M::Root(RootMessage::RegisterProxy {
                query_id: 18,
                endpoint: "10.0.0.2:11002 10.0.0.2:11001".into(),
            }),
            M::Root(RootMessage::UpdateProxy {
                query_id: 19,
                seqno: 1,
                endpoint: "x".repeat(300),
            }),
            M::Root(RootMessage::RemoveProxy {
                query_id: 20,
                seqno: 1,
            }),
            M::Root(RootMessage::ChangeOwner {
                query_id: 21,
                new_owner: a(6),
            }),
            M::Notification(Notification::Excesses { query_id: 22 }),
            M::Notification(Notification::Payout { query_id: 23 }),
        ]
    }

    #[test]
    fn every_message_roundtrips() {
        for m in all_messages() {
            let cell = m.to_cell().unwrap();
            assert_eq!(ContractMessage::parse(&cell).unwrap(), m, "{m:?}");
        }
    }

    #[test]
    fn signed_variant_must_match_its_op() {
        let wrong = ClientMessage::ChargeSigned(signed(VoucherKind::WorkerPayout));
        assert!(matches!(wrong.to_cell(), Err(Error::UnexpectedOp { .. })));
    }

    #[test]
    fn truncated_and_padded_bodies_fail() {
        for m in all_messages() {
            let cell = m.to_cell().unwrap();
            let mut b = CellBuilder::new();
            b.store_cell_contents(&cell).unwrap();
            if b.bits_left() > 0 {
                b.store_bit(false).unwrap();
                assert!(
                    ContractMessage::parse(&b.build().unwrap()).is_err()
                        || matches!(m, ContractMessage::Proxy(ProxyMessage::Note { .. })),
                    "{m:?}"
                );
            }
            if cell.bit_len() > 32 {
                let short =
                    Cell::new(cell.data(), cell.bit_len() - 1, cell.refs().to_vec()).unwrap();
                assert!(
                    ContractMessage::parse(&short).is_err()
                        || matches!(m, ContractMessage::Proxy(ProxyMessage::Note { .. })),
                    "{m:?}"
                );
            }
        }
    }

    #[test]
    fn register_log_roundtrip() {
        let log = ClientRegisteredLog {
            nonce: 7,
            owner: a(1),
        };
        assert_eq!(
            ClientRegisteredLog::from_cell(&log.to_cell().unwrap()).unwrap(),
            log
        );
        assert_eq!(
            hex::encode(&ClientRegisteredLog::destination_bits()[28..]),
            "1ba02a0f"
        );
    }
}

//! The sidecar's JSON shapes (see `contracts/sidecar/server.mjs`) and their conversion into the
//! crate's types. Everything the sidecar says is checked: it is another process.

use crate::ChainError;
use crate::stack::GetMethodResult;
use crate::types::{
    AccountState, AccountStatus, ComputePhase, MessageKind, MessageSummary, SendReceipt,
    Transaction, TransactionId, parse_address,
};
use cocoon_ton::Cell;
use cocoon_ton::contracts::StackValue;
use serde::{Deserialize, Serialize};

const SOURCE: &str = "sidecar";

fn bad(detail: impl Into<String>) -> ChainError {
    ChainError::bad_response(SOURCE, detail)
}

pub(crate) fn decimal_u128(text: &str, what: &str) -> Result<u128, ChainError> {
    text.parse::<u128>()
        .map_err(|_| bad(format!("{what} is not a decimal amount: {text:?}")))
}

pub(crate) fn decimal_u64(text: &str, what: &str) -> Result<u64, ChainError> {
    text.parse::<u64>()
        .map_err(|_| bad(format!("{what} is not a decimal integer: {text:?}")))
}

fn hash_hex(text: &str, what: &str) -> Result<[u8; 32], ChainError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out)
        .map_err(|_| bad(format!("{what} is not 32 hex bytes: {text:?}")))?;
    Ok(out)
}

fn cell(text: &str, what: &str) -> Result<Cell, ChainError> {
    Cell::from_boc_base64(text).map_err(|e| bad(format!("{what}: {e}")))
}

fn address(text: &str) -> Result<cocoon_ton::Address, ChainError> {
    parse_address(text).map_err(|e| bad(e.to_string()))
}

/// A stack value as the sidecar writes and reads it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum WireStackEntry {
    Int { value: String },
    Null,
    Nan,
    Cell { boc: String },
    Slice { boc: String },
    Builder { boc: String },
    Tuple { items: Vec<WireStackEntry> },
}

impl WireStackEntry {
    pub(crate) fn from_value(value: &StackValue) -> Self {
        match value {
            StackValue::Null => Self::Null,
            StackValue::Int(v) => Self::Int {
                value: v.to_string(),
            },
            StackValue::Cell(c) => Self::Cell {
                boc: c.to_boc_base64(),
            },
            StackValue::Slice(c) => Self::Slice {
                boc: c.to_boc_base64(),
            },
            StackValue::Tuple(items) => Self::Tuple {
                items: items.iter().map(Self::from_value).collect(),
            },
        }
    }

    pub(crate) fn into_value(self) -> Result<StackValue, ChainError> {
        Ok(match self {
            Self::Null => StackValue::Null,
            Self::Int { value } => StackValue::parse_int(&value)
                .map_err(|e| bad(format!("stack int {value:?}: {e}")))?,
            Self::Cell { boc } => StackValue::Cell(cell(&boc, "stack cell")?),
            Self::Slice { boc } => StackValue::Slice(cell(&boc, "stack slice")?),
            Self::Nan | Self::Builder { .. } => {
                return Err(bad("NaN and builders are not get-method results we read"));
            }
            Self::Tuple { items } => StackValue::Tuple(
                items
                    .into_iter()
                    .map(Self::into_value)
                    .collect::<Result<_, _>>()?,
            ),
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireGetMethod {
    exit_code: i32,
    gas_used: String,
    stack: Vec<WireStackEntry>,
}

impl WireGetMethod {
    pub(crate) fn into_result(self) -> Result<GetMethodResult, ChainError> {
        Ok(GetMethodResult {
            exit_code: self.exit_code,
            gas_used: decimal_u64(&self.gas_used, "gas_used")?,
            stack: self
                .stack
                .into_iter()
                .map(WireStackEntry::into_value)
                .collect::<Result<_, _>>()?,
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireAccount {
    address: String,
    status: String,
    balance: String,
    code: Option<String>,
    data: Option<String>,
    last_tx_lt: Option<String>,
    last_tx_hash: Option<String>,
}

impl WireAccount {
    pub(crate) fn into_state(self) -> Result<AccountState, ChainError> {
        let status = match self.status.as_str() {
            "nonexist" => AccountStatus::Nonexistent,
            "uninit" => AccountStatus::Uninit,
            "active" => AccountStatus::Active,
            "frozen" => AccountStatus::Frozen,
            other => return Err(bad(format!("account status {other:?}"))),
        };
        let last_transaction = match (self.last_tx_lt, self.last_tx_hash) {
            (Some(lt), Some(hash)) => Some(TransactionId {
                lt: decimal_u64(&lt, "last_tx_lt")?,
                hash: hash_hex(&hash, "last_tx_hash")?,
            }),
            _ => None,
        };
        Ok(AccountState {
            address: address(&self.address)?,
            status,
            balance: decimal_u128(&self.balance, "balance")?,
            code: self.code.as_deref().map(|c| cell(c, "code")).transpose()?,
            data: self.data.as_deref().map(|d| cell(d, "data")).transpose()?,
            last_transaction,
        })
    }
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    #[serde(rename = "type")]
    kind: String,
    src: Option<String>,
    dest: Option<String>,
    value: String,
    bounce: bool,
    bounced: bool,
    op: Option<u32>,
    body: Option<String>,
}

impl WireMessage {
    fn into_summary(self) -> Result<MessageSummary, ChainError> {
        let kind = match self.kind.as_str() {
            "internal" => MessageKind::Internal,
            "external-in" => MessageKind::ExternalIn,
            "external-out" => MessageKind::ExternalOut,
            other => return Err(bad(format!("message type {other:?}"))),
        };
        Ok(MessageSummary {
            kind,
            source: self.src.as_deref().map(address).transpose()?,
            destination: self.dest.as_deref().map(address).transpose()?,
            value: decimal_u128(&self.value, "message value")?,
            bounce: self.bounce,
            bounced: self.bounced,
            op: self.op,
            body: self
                .body
                .as_deref()
                .map(|b| cell(b, "message body"))
                .transpose()?,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum WireCompute {
    Skipped {
        reason: String,
    },
    Vm {
        success: bool,
        exit_code: i32,
        gas_used: String,
    },
}

#[derive(Debug, Deserialize)]
struct WireAction {
    success: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireTransaction {
    account: String,
    lt: String,
    hash: String,
    now: u32,
    in_msg: Option<WireMessage>,
    out_msgs: Vec<WireMessage>,
    compute: WireCompute,
    action: Option<WireAction>,
    aborted: bool,
    total_fees: String,
}

impl WireTransaction {
    pub(crate) fn into_transaction(self) -> Result<Transaction, ChainError> {
        Ok(Transaction {
            account: address(&self.account)?,
            id: TransactionId {
                lt: decimal_u64(&self.lt, "lt")?,
                hash: hash_hex(&self.hash, "transaction hash")?,
            },
            now: self.now,
            in_message: self.in_msg.map(WireMessage::into_summary).transpose()?,
            out_messages: self
                .out_msgs
                .into_iter()
                .map(WireMessage::into_summary)
                .collect::<Result<_, _>>()?,
            compute: match self.compute {
                WireCompute::Skipped { reason } => ComputePhase::Skipped { reason },
                WireCompute::Vm {
                    success,
                    exit_code,
                    gas_used,
                } => ComputePhase::Vm {
                    success,
                    exit_code,
                    gas_used: decimal_u64(&gas_used, "gas_used")?,
                },
            },
            action_success: self.action.map(|a| a.success),
            aborted: self.aborted,
            total_fees: decimal_u128(&self.total_fees, "total_fees")?,
        })
    }
}

pub(crate) fn transactions(list: Vec<WireTransaction>) -> Result<Vec<Transaction>, ChainError> {
    list.into_iter()
        .map(WireTransaction::into_transaction)
        .collect()
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireSent {
    message_hash: Option<String>,
    transactions: Vec<WireTransaction>,
}

impl WireSent {
    pub(crate) fn into_receipt(self) -> Result<SendReceipt, ChainError> {
        Ok(SendReceipt {
            message_hash: self
                .message_hash
                .as_deref()
                .map(|h| hash_hex(h, "message hash"))
                .transpose()?,
            transactions: transactions(self.transactions)?,
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireDeployed {
    pub(crate) address: String,
    #[serde(flatten)]
    pub(crate) sent: WireSent,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireTransactions {
    pub(crate) transactions: Vec<WireTransaction>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireStatus {
    pub(crate) now: u64,
    pub(crate) seqno: u64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireNow {
    pub(crate) now: u64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireAddress {
    pub(crate) address: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireSnapshot {
    pub(crate) snapshot: u64,
}

/// One line from the sidecar: an answer to a request, or an event (`ready`).
#[derive(Debug, Deserialize)]
pub(crate) struct WireLine {
    pub(crate) id: Option<u64>,
    pub(crate) event: Option<String>,
    pub(crate) result: Option<serde_json::Value>,
    pub(crate) error: Option<WireError>,
    pub(crate) protocol: Option<u32>,
    /// The TCP address the sidecar serves, when started with `COCOON_SIDECAR_LISTEN`.
    #[serde(default)]
    pub(crate) listen: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WireError {
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) exit_code: Option<i32>,
}

pub(crate) fn parse_address_field(text: &str) -> Result<cocoon_ton::Address, ChainError> {
    address(text)
}

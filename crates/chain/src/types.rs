//! Values every chain backend speaks in: addresses, BOC bytes, account states, transactions and
//! message summaries. They carry bytes and numbers, not cell objects, so message builders from
//! any crate (BOC in, BOC out) plug into every backend.

use crate::ChainError;
use crate::cell::CellTree;
use std::fmt;

/// A standard internal address (workchain + 256-bit account id), from `tlb-ton`.
pub use tlb_ton::MsgAddress as Address;

/// Parses an address in raw (`0:ab…`) or user-friendly (base64, 48 characters) form.
///
/// # Errors
/// [`ChainError::Address`] when the text is neither.
pub fn parse_address(text: &str) -> Result<Address, ChainError> {
    text.trim()
        .parse::<Address>()
        .map_err(|e| ChainError::Address {
            input: text.to_owned(),
            detail: e.to_string(),
        })
}

/// Amounts in nanotons (1 TON = 10⁹).
pub type Nanotons = u128;

/// One TON in nanotons.
pub const TON: Nanotons = 1_000_000_000;

/// A serialized bag of cells with one root, kept as bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Boc(Vec<u8>);

impl Boc {
    /// Wraps BOC bytes (not checked until read).
    #[must_use]
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Decodes base64 (standard or URL-safe, padding optional).
    ///
    /// # Errors
    /// [`ChainError::Boc`] when the text is not base64.
    pub fn from_base64(text: &str) -> Result<Self, ChainError> {
        crate::cell::decode_base64(text).map(Self)
    }

    /// Standard base64 with padding, as toncenter and the sidecar expect.
    #[must_use]
    pub fn to_base64(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&self.0)
    }

    /// The bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Gives the bytes back.
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// Decodes the cells (bounded, typed errors).
    ///
    /// # Errors
    /// [`ChainError::Boc`] when the bytes are not a single-root BOC within the limits.
    pub fn cells(&self) -> Result<CellTree, ChainError> {
        CellTree::from_boc(&self.0)
    }

    /// Representation hash of the root cell.
    ///
    /// # Errors
    /// As [`Self::cells`].
    pub fn root_hash(&self) -> Result<[u8; 32], ChainError> {
        Ok(self.cells()?.hash())
    }
}

impl fmt::Debug for Boc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b64 = self.to_base64();
        if b64.len() > 48 {
            write!(f, "Boc({}…, {} bytes)", &b64[..48], self.0.len())
        } else {
            write!(f, "Boc({b64})")
        }
    }
}

impl From<Vec<u8>> for Boc {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

/// Life-cycle state of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AccountStatus {
    /// Never seen on chain (no balance, no state).
    Nonexistent,
    /// Has a balance but no code yet.
    Uninit,
    /// Deployed: code and data are present.
    Active,
    /// Frozen for unpaid storage.
    Frozen,
}

/// Logical time and hash of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransactionId {
    /// Logical time.
    pub lt: u64,
    /// Transaction hash.
    pub hash: [u8; 32],
}

/// An account as the chain holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    /// The account.
    pub address: Address,
    /// Its life-cycle state.
    pub status: AccountStatus,
    /// Balance in nanotons.
    pub balance: Nanotons,
    /// Code, when active.
    pub code: Option<Boc>,
    /// Persistent data, when active.
    pub data: Option<Boc>,
    /// The last transaction, if there was one.
    pub last_transaction: Option<TransactionId>,
}

/// Where a message came from and went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageKind {
    /// Between two accounts, carrying value.
    Internal,
    /// From outside into an account (wallet commands, signed requests).
    ExternalIn,
    /// From an account to outside (logs, events).
    ExternalOut,
}

/// What a transaction's message carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSummary {
    /// Internal, external-in or external-out.
    pub kind: MessageKind,
    /// The sender (none for external-in).
    pub source: Option<Address>,
    /// The receiver (none for external-out).
    pub destination: Option<Address>,
    /// Attached value in nanotons (0 for external messages).
    pub value: Nanotons,
    /// Whether it asks to bounce on failure.
    pub bounce: bool,
    /// Whether it is itself a bounce.
    pub bounced: bool,
    /// The first 32 bits of the body, when it has them.
    pub op: Option<u32>,
    /// The body, when the backend reports it.
    pub body: Option<Boc>,
}

/// Outcome of a transaction's compute phase.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ComputePhase {
    /// The VM did not run (no state, no gas, ...).
    Skipped {
        /// The reason the backend gave.
        reason: String,
    },
    /// The VM ran.
    Vm {
        /// Whether it ended with exit code 0 or 1.
        success: bool,
        /// The exit code (`throw` argument on failure).
        exit_code: i32,
        /// Gas spent.
        gas_used: u64,
    },
}

/// One transaction of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// The account it ran on.
    pub account: Address,
    /// Logical time and hash.
    pub id: TransactionId,
    /// Unix time of its block.
    pub now: u32,
    /// The message that caused it (none for tick-tock).
    pub in_message: Option<MessageSummary>,
    /// Messages it sent.
    pub out_messages: Vec<MessageSummary>,
    /// The compute phase.
    pub compute: ComputePhase,
    /// Whether the action phase succeeded (`None` when it did not run).
    pub action_success: Option<bool>,
    /// Whether the transaction was aborted.
    pub aborted: bool,
    /// Total fees in nanotons.
    pub total_fees: Nanotons,
}

impl Transaction {
    /// The TVM exit code, when the VM ran.
    #[must_use]
    pub fn exit_code(&self) -> Option<i32> {
        match self.compute {
            ComputePhase::Vm { exit_code, .. } => Some(exit_code),
            ComputePhase::Skipped { .. } => None,
        }
    }

    /// True when the VM ran successfully, its actions applied and nothing aborted.
    #[must_use]
    pub fn succeeded(&self) -> bool {
        matches!(self.compute, ComputePhase::Vm { success: true, .. })
            && self.action_success != Some(false)
            && !self.aborted
    }

    /// The op code of the incoming message, when it had one.
    #[must_use]
    pub fn in_op(&self) -> Option<u32> {
        self.in_message.as_ref().and_then(|m| m.op)
    }
}

/// Where the chain is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainStatus {
    /// Unix time of the last block (the emulated chain's clock).
    pub now: u64,
    /// Seqno of the last masterchain block (on the emulated chain: sends processed so far).
    pub seqno: u64,
}

/// What sending a message gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    /// Hash of the message that entered the chain (for an internal message from a local
    /// wallet: of the wallet's external command).
    pub message_hash: Option<[u8; 32]>,
    /// The transactions it caused, in execution order, when the backend knows them at once
    /// (the emulated chain does; a real network answers before the message is processed).
    pub transactions: Vec<Transaction>,
}

impl SendReceipt {
    /// The first transaction on `account`, if any.
    #[must_use]
    pub fn transaction_on(&self, account: &Address) -> Option<&Transaction> {
        self.transactions.iter().find(|t| &t.account == account)
    }

    /// True when every transaction succeeded.
    #[must_use]
    pub fn all_succeeded(&self) -> bool {
        self.transactions.iter().all(Transaction::succeeded)
    }
}

/// An internal message a funded local wallet should send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalMessage {
    /// The wallet (from `create_wallet` on the emulated chain).
    pub from: Address,
    /// The receiver.
    pub to: Address,
    /// Value in nanotons; the wallet pays forwarding fees on top.
    pub value: Nanotons,
    /// Whether it should bounce if the receiver fails.
    pub bounce: bool,
    /// The body (an empty cell when absent).
    pub body: Option<Boc>,
    /// A `StateInit` cell to deploy the receiver with.
    pub state_init: Option<Boc>,
}

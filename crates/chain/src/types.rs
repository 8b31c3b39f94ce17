//! Values every chain backend speaks in: account states, transactions, message summaries and
//! send receipts. Cells, addresses and messages are `cocoon-ton`'s, so what its builders make
//! goes straight to any backend and what a backend returns goes straight to its parsers.

use crate::ChainError;
use cocoon_ton::{Address, Cell};

/// Parses an address in raw (`0:ab…`) or user-friendly (base64) form.
///
/// # Errors
/// [`ChainError::Address`] when the text is neither.
pub fn parse_address(text: &str) -> Result<Address, ChainError> {
    text.parse::<Address>().map_err(|e| ChainError::Address {
        input: text.to_owned(),
        detail: e.to_string(),
    })
}

/// Amounts in nanotons (1 TON = 10⁹).
pub type Nanotons = u128;

/// One TON in nanotons.
pub const TON: Nanotons = 1_000_000_000;

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
    pub code: Option<Cell>,
    /// Persistent data, when active.
    pub data: Option<Cell>,
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
    /// The body, when the backend reports it (parse it with `cocoon_ton::messages`).
    pub body: Option<Cell>,
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

/// An external-out message (a log) a contract sent: its body, and the transaction that sent
/// it. Contracts log events to the outside world this way (the client contract's `register`
/// log, `cocoon_ton::messages::ClientRegisteredLog`); anyone can read them, nobody but the
/// contract can make them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalLog {
    /// The contract that sent it.
    pub source: Address,
    /// The transaction that sent it.
    pub transaction: TransactionId,
    /// Unix time of that transaction's block.
    pub now: u32,
    /// The log's body (parse it with `cocoon_ton::messages`).
    pub body: Cell,
}

impl ExternalLog {
    /// The logs `contract` sent in `transactions`, in their order: external-out messages with
    /// a body, from transactions on `contract` that succeeded (a failed transaction's actions,
    /// logs included, never took effect).
    #[must_use]
    pub fn from_transactions(contract: &Address, transactions: &[Transaction]) -> Vec<Self> {
        transactions
            .iter()
            .filter(|t| &t.account == contract && t.succeeded())
            .flat_map(|t| {
                t.out_messages
                    .iter()
                    .filter(|m| m.kind == MessageKind::ExternalOut)
                    .filter_map(move |m| {
                        Some(Self {
                            source: *contract,
                            transaction: t.id,
                            now: t.now,
                            body: m.body.clone()?,
                        })
                    })
            })
            .collect()
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
    /// Hash of the message that entered the chain (for a transfer from a local wallet: of
    /// the wallet's external command).
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

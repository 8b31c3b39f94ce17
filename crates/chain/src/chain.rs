//! The one interface every role uses to reach TON, whatever is behind it: the emulated chain
//! in local mode and tests, toncenter on testnet and mainnet.

use crate::ChainError;
use crate::stack::GetMethodResult;
use crate::types::{AccountState, ChainStatus, ExternalLog, SendReceipt, Transaction};
use cocoon_ton::contracts::StackValue;
use cocoon_ton::{Address, Cell, InternalMessage};
use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// A boxed future, so chains can be used as trait objects (`Arc<dyn Chain>`).
pub type ChainFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ChainError>> + Send + 'a>>;

/// Access to a TON chain.
///
/// Cells, addresses, messages and stack values are `cocoon-ton`'s: a wallet transfer signed
/// there (`SignedTransfer::message.to_cell()`) is what [`Self::send_external`] takes, and a
/// get-method result goes straight to its typed readers.
pub trait Chain: Send + Sync + fmt::Debug {
    /// A short name for logs and errors (`emulated`, `toncenter`).
    fn backend(&self) -> &'static str;

    /// Sends a fully built external message (a `Message` cell).
    fn send_external<'a>(&'a self, message: &'a Cell) -> ChainFuture<'a, SendReceipt>;

    /// Has the funded local wallet `wallet` send `message`. Only the emulated chain has such
    /// wallets; a real network answers [`ChainError::Unsupported`] (sign a wallet transfer
    /// with `cocoon-ton` and use [`Self::send_external`] there).
    fn send_internal<'a>(
        &'a self,
        wallet: &'a Address,
        message: &'a InternalMessage,
    ) -> ChainFuture<'a, SendReceipt>;

    /// The account's balance, status, code and data.
    fn account<'a>(&'a self, address: &'a Address) -> ChainFuture<'a, AccountState>;

    /// Runs a get-method. An exit code other than 0 or 1 is
    /// [`ChainError::GetMethodFailed`]; an account without code is
    /// [`ChainError::AccountNotActive`].
    fn run_get_method<'a>(
        &'a self,
        address: &'a Address,
        method: &'a str,
        args: &'a [StackValue],
    ) -> ChainFuture<'a, GetMethodResult>;

    /// The account's most recent transactions, newest first, at most `limit`.
    fn transactions<'a>(
        &'a self,
        address: &'a Address,
        limit: u32,
    ) -> ChainFuture<'a, Vec<Transaction>>;

    /// The logs (external-out messages) `address` sent in its most recent `limit`
    /// transactions, newest first; failed transactions sent none.
    fn external_logs<'a>(
        &'a self,
        address: &'a Address,
        limit: u32,
    ) -> ChainFuture<'a, Vec<ExternalLog>>;

    /// The chain's current time and block seqno.
    fn status(&self) -> ChainFuture<'_, ChainStatus>;
}

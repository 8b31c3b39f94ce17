//! Names of the requests, clients and workers the market keeps books about, so that a request id
//! can never be passed where a worker id is expected.

use std::fmt;

use cocoon_protocol::tl::Int256;
use serde::{Deserialize, Serialize};

/// The 256-bit id of one inference request (`request_id` in `client.runQueryEx`).
///
/// Clients draw it at random, so the ledger uses it as the key that makes charging idempotent.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId(pub [u8; 32]);

impl From<Int256> for RequestId {
    fn from(id: Int256) -> Self {
        Self(id.0)
    }
}

impl From<RequestId> for Int256 {
    fn from(id: RequestId) -> Self {
        Int256(id.0)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({self})")
    }
}

/// A client's account at this proxy: the address of its client contract, as text.
///
/// The ledger does not parse it; any stable spelling works as long as the proxy always uses the
/// same one for the same contract.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(pub String);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientId({})", self.0)
    }
}

/// The account a worker is paid into: the address of its worker contract, as text.
///
/// Several worker instances (connections) of one owner share one worker contract, so this is not
/// the same thing as a [`WorkerId`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkerAccountId(pub String);

impl fmt::Display for WorkerAccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for WorkerAccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WorkerAccountId({})", self.0)
    }
}

/// One worker instance the proxy can route to (in practice: one worker connection).
///
/// The proxy assigns these; it should not reuse an id while requests dispatched to the previous
/// holder may still finish (the selector tolerates it, see [`crate::selection::Dispatch`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkerId(pub u64);

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "worker#{}", self.0)
    }
}

//! The root registry as every role reads it: allowed proxy and worker image hashes, allowed
//! model hashes, registered proxies with their endpoints, and the network parameters (prices,
//! multipliers, delays, stakes and the child contract codes). It is read from the root
//! account's data with `cocoon-ton`'s `RootState` parser (layout in `docs/contracts.md`), one
//! request on any backend.

use crate::ChainError;
use crate::chain::Chain;
use crate::types::{AccountState, AccountStatus, TransactionId};
use cocoon_ton::Address;
use cocoon_ton::contracts::{Params, RootState};
use std::ops::Deref;

/// The root registry at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// The root contract.
    pub root: Address,
    /// Its state: owner, config version, parameters, allowed hashes, registered proxies.
    pub state: RootState,
    /// The root's last transaction when it was read: unchanged means nothing changed.
    pub last_transaction: Option<TransactionId>,
}

impl Deref for Registry {
    type Target = RootState;

    fn deref(&self) -> &RootState {
        &self.state
    }
}

impl Registry {
    /// Parses the registry from the root account's state.
    ///
    /// # Errors
    /// [`ChainError::AccountNotActive`] when the root holds no data,
    /// [`ChainError::Cell`] when the data is not a root registry.
    pub fn from_account(account: &AccountState) -> Result<Self, ChainError> {
        let data = match (&account.status, &account.data) {
            (AccountStatus::Active, Some(data)) => data,
            _ => {
                return Err(ChainError::AccountNotActive {
                    address: account.address.to_raw(),
                });
            }
        };
        Ok(Self {
            root: account.address,
            state: RootState::from_data_cell(data)
                .map_err(ChainError::cell("root registry data"))?,
            last_transaction: account.last_transaction,
        })
    }

    /// The current parameters.
    #[must_use]
    pub fn params(&self) -> &Params {
        &self.state.params
    }

    /// Registered proxies as `(seqno, addresses)`, the endpoint text split at whitespace.
    pub fn proxy_endpoints(&self) -> impl Iterator<Item = (u32, Vec<&str>)> {
        self.state
            .registered_proxies
            .iter()
            .map(|p| (p.seqno, p.endpoint.split_whitespace().collect()))
    }
}

/// Reads the root registry at `root` through any chain backend.
///
/// # Errors
/// The chain's errors, then those of [`Registry::from_account`].
pub async fn read_registry<C: Chain + ?Sized>(
    chain: &C,
    root: &Address,
) -> Result<Registry, ChainError> {
    Registry::from_account(&chain.account(root).await?)
}

//! The network parameters as the contracts store them: `ParamsCore` (prices, multipliers,
//! delays, minimum stakes) and `Params` (the core by reference plus the three child codes).
//! Child addresses commit to the very core cell a proxy holds, so a parsed core keeps its
//! original cell next to the decoded fields.

use serde::{Deserialize, Serialize};

use crate::{
    cell::{Cell, CellBuilder, CellSlice},
    contracts::ContractKind,
    error::{Error, Result},
};

/// The numeric parameters (`ParamsCore` in `contracts/src/common/types.tolk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ParamsCore {
    /// Layout version of this struct.
    pub struct_version: u8,
    /// Increases with every parameter change the root accepts.
    pub params_version: u32,
    /// Distinguishes networks that share everything else.
    pub unique_id: u32,
    /// A test network.
    pub is_test: bool,
    /// NanoTON per adjusted token charged to clients.
    pub price_per_token: u128,
    /// NanoTON per adjusted token paid to workers.
    pub worker_fee_per_token: u128,
    /// Prompt token multiplier (10000 = 1.0x).
    pub prompt_multiplier: u32,
    /// Cached prompt token multiplier.
    pub cached_multiplier: u32,
    /// Completion token multiplier.
    pub completion_multiplier: u32,
    /// Reasoning token multiplier.
    pub reasoning_multiplier: u32,
    /// Seconds a closing proxy waits before it may complete its close.
    pub proxy_delay_before_close: u32,
    /// Seconds a closing client waits before it may take its stake back without the proxy.
    pub client_delay_before_close: u32,
    /// Stake a proxy contract needs before it accepts client money.
    pub min_proxy_stake: u128,
    /// Initial stake of every client contract.
    pub min_client_stake: u128,
}

impl ParamsCore {
    /// Writes the fields in contract order.
    pub fn store(&self, b: &mut CellBuilder) -> Result<()> {
        b.store_u8(self.struct_version)?
            .store_u32(self.params_version)?
            .store_u32(self.unique_id)?
            .store_bit(self.is_test)?
            .store_coins(self.price_per_token)?
            .store_coins(self.worker_fee_per_token)?
            .store_u32(self.prompt_multiplier)?
            .store_u32(self.cached_multiplier)?
            .store_u32(self.completion_multiplier)?
            .store_u32(self.reasoning_multiplier)?
            .store_u32(self.proxy_delay_before_close)?
            .store_u32(self.client_delay_before_close)?
            .store_coins(self.min_proxy_stake)?
            .store_coins(self.min_client_stake)?;
        Ok(())
    }

    /// Reads the fields in contract order.
    pub fn load(s: &mut CellSlice<'_>) -> Result<Self> {
        Ok(Self {
            struct_version: s.load_u8()?,
            params_version: s.load_u32()?,
            unique_id: s.load_u32()?,
            is_test: s.load_bit()?,
            price_per_token: s.load_coins()?,
            worker_fee_per_token: s.load_coins()?,
            prompt_multiplier: s.load_u32()?,
            cached_multiplier: s.load_u32()?,
            completion_multiplier: s.load_u32()?,
            reasoning_multiplier: s.load_u32()?,
            proxy_delay_before_close: s.load_u32()?,
            client_delay_before_close: s.load_u32()?,
            min_proxy_stake: s.load_coins()?,
            min_client_stake: s.load_coins()?,
        })
    }

    /// The core as its own cell.
    pub fn to_cell(&self) -> Result<Cell> {
        let mut b = CellBuilder::new();
        self.store(&mut b)?;
        b.build()
    }

    /// Parses a core cell (all of it).
    pub fn from_cell(cell: &Cell) -> Result<Self> {
        cell.parse_fully(Self::load)
    }

    /// The rules the root enforces on every new parameter set (`ParamsCore.isConsistent`).
    pub fn check_consistent(&self) -> Result<()> {
        if self.price_per_token == 0 {
            return Err(Error::InvalidParams("price_per_token must be positive"));
        }
        if self.worker_fee_per_token > self.price_per_token {
            return Err(Error::InvalidParams(
                "worker_fee_per_token must not exceed price_per_token",
            ));
        }
        if self.proxy_delay_before_close <= self.client_delay_before_close {
            return Err(Error::InvalidParams(
                "proxy_delay_before_close must exceed client_delay_before_close",
            ));
        }
        if [
            self.prompt_multiplier,
            self.cached_multiplier,
            self.completion_multiplier,
            self.reasoning_multiplier,
        ]
        .contains(&0)
        {
            return Err(Error::InvalidParams("every multiplier must be positive"));
        }
        Ok(())
    }
}

/// A [`ParamsCore`] together with the exact cell that stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredParamsCore {
    core: ParamsCore,
    cell: Cell,
}

impl StoredParamsCore {
    /// Serializes `core`.
    pub fn new(core: ParamsCore) -> Result<Self> {
        Ok(Self {
            cell: core.to_cell()?,
            core,
        })
    }

    /// Parses a stored core, keeping the cell as it is.
    pub fn from_cell(cell: Cell) -> Result<Self> {
        Ok(Self {
            core: ParamsCore::from_cell(&cell)?,
            cell,
        })
    }

    /// The decoded fields.
    pub fn core(&self) -> &ParamsCore {
        &self.core
    }

    /// The cell as stored (what child addresses commit to).
    pub fn cell(&self) -> &Cell {
        &self.cell
    }
}

/// The full parameters: the core and the proxy, worker and client codes, as the root and
/// every proxy contract keep them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    core: StoredParamsCore,
    proxy_code: Cell,
    worker_code: Cell,
    client_code: Cell,
}

impl Params {
    /// Parameters with explicit codes.
    pub fn new(
        core: ParamsCore,
        proxy_code: Cell,
        worker_code: Cell,
        client_code: Cell,
    ) -> Result<Self> {
        Ok(Self {
            core: StoredParamsCore::new(core)?,
            proxy_code,
            worker_code,
            client_code,
        })
    }

    /// Parameters with the contract codes embedded in this crate: what a network deployed
    /// from this source uses.
    pub fn with_embedded_codes(core: ParamsCore) -> Result<Self> {
        Self::new(
            core,
            ContractKind::Proxy.code()?,
            ContractKind::Worker.code()?,
            ContractKind::Client.code()?,
        )
    }

    /// The core parameters.
    pub fn core(&self) -> &ParamsCore {
        self.core.core()
    }

    /// The core as stored.
    pub fn stored_core(&self) -> &StoredParamsCore {
        &self.core
    }

    /// Code of proxy contracts.
    pub fn proxy_code(&self) -> &Cell {
        &self.proxy_code
    }

    /// Code of worker contracts.
    pub fn worker_code(&self) -> &Cell {
        &self.worker_code
    }

    /// Code of client contracts.
    pub fn client_code(&self) -> &Cell {
        &self.client_code
    }

    /// `params$_ core:^ParamsCore proxy_code:^Cell worker_code:^Cell client_code:^Cell`.
    pub fn to_cell(&self) -> Result<Cell> {
        let mut b = CellBuilder::new();
        b.store_ref(self.core.cell().clone())?
            .store_ref(self.proxy_code.clone())?
            .store_ref(self.worker_code.clone())?
            .store_ref(self.client_code.clone())?;
        b.build()
    }

    /// Parses a params cell (all of it).
    pub fn from_cell(cell: &Cell) -> Result<Self> {
        cell.parse_fully(|s| {
            Ok(Self {
                core: StoredParamsCore::from_cell(s.load_ref()?)?,
                proxy_code: s.load_ref()?,
                worker_code: s.load_ref()?,
                client_code: s.load_ref()?,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    pub(crate) fn sample_core() -> ParamsCore {
        ParamsCore {
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
            proxy_delay_before_close: 2 * 86400,
            client_delay_before_close: 86400,
            min_proxy_stake: 10_000_000_000,
            min_client_stake: 1_000_000_000,
        }
    }

    #[test]
    fn core_roundtrip_and_consistency() {
        let core = sample_core();
        assert_eq!(
            ParamsCore::from_cell(&core.to_cell().unwrap()).unwrap(),
            core
        );
        core.check_consistent().unwrap();
        let bad = ParamsCore {
            worker_fee_per_token: 1001,
            ..core
        };
        assert!(bad.check_consistent().is_err());
        let bad = ParamsCore {
            proxy_delay_before_close: 86400,
            ..core
        };
        assert!(bad.check_consistent().is_err());
    }

    #[test]
    fn params_roundtrip_keeps_core_cell() {
        let params = Params::with_embedded_codes(sample_core()).unwrap();
        let back = Params::from_cell(&params.to_cell().unwrap()).unwrap();
        assert_eq!(back, params);
        assert_eq!(back.stored_core().cell(), params.stored_core().cell());
    }
}

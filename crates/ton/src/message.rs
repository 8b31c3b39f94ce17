//! The envelopes around bodies: `StateInit` (which fixes a contract's address), internal
//! messages a wallet sends, and the external message that carries a signed wallet request to
//! the chain. Field placement (inline or by reference) follows `@ton/core`, so hashes of the
//! messages we build equal those of the JS tooling.

use crate::{
    address::Address,
    cell::{Cell, CellBuilder},
    error::{Error, Result},
};

/// Code and initial data of a contract: hashed, they are its address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StateInit {
    /// Contract code.
    pub code: Cell,
    /// Initial persistent data.
    pub data: Cell,
}

impl StateInit {
    /// A state init from code and data.
    pub fn new(code: Cell, data: Cell) -> Self {
        Self { code, data }
    }

    /// Writes `split_depth:nothing special:nothing code:^Cell data:^Cell library:empty`.
    pub fn store(&self, b: &mut CellBuilder) -> Result<()> {
        b.store_bit(false)? // split_depth
            .store_bit(false)? // special
            .store_maybe_ref(Some(self.code.clone()))?
            .store_maybe_ref(Some(self.data.clone()))?
            .store_bit(false)?; // library
        Ok(())
    }

    /// The state init as a cell.
    pub fn to_cell(&self) -> Result<Cell> {
        let mut b = CellBuilder::new();
        self.store(&mut b)?;
        b.build()
    }

    /// Reads a state init with code and data and nothing else (the only kind deployed here).
    pub fn from_cell(cell: &Cell) -> Result<Self> {
        cell.parse_fully(|s| {
            if s.load_bit()? {
                return Err(Error::InvalidField {
                    field: "state init split_depth",
                    value: 1,
                });
            }
            if s.load_bit()? {
                return Err(Error::InvalidField {
                    field: "state init special",
                    value: 1,
                });
            }
            let code = s.load_maybe_ref()?.ok_or(Error::InvalidField {
                field: "state init code",
                value: 0,
            })?;
            let data = s.load_maybe_ref()?.ok_or(Error::InvalidField {
                field: "state init data",
                value: 0,
            })?;
            if s.load_bit()? {
                return Err(Error::InvalidField {
                    field: "state init library",
                    value: 1,
                });
            }
            Ok(Self { code, data })
        })
    }

    /// The address of a contract deployed with this state init in `workchain`.
    pub fn address(&self, workchain: i8) -> Result<Address> {
        Ok(Address::new(workchain, self.to_cell()?.hash()))
    }
}

/// How an outgoing message pays its fees and what happens on errors (the `mode` byte of
/// `SENDRAWMSG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SendMode(pub u8);

impl SendMode {
    /// Fees come out of the message value.
    pub const REGULAR: Self = Self(0);
    /// Fees are paid separately from the value (the usual wallet mode with `IGNORE_ERRORS`).
    pub const PAY_FEES_SEPARATELY: Self = Self(1);
    /// Errors in the action phase skip the message instead of failing the transaction.
    pub const IGNORE_ERRORS: Self = Self(2);
    /// Destroy the account if its balance reaches zero.
    pub const DESTROY_IF_ZERO: Self = Self(32);
    /// Carry the remaining value of the incoming message.
    pub const CARRY_ALL_REMAINING_MESSAGE_VALUE: Self = Self(64);
    /// Carry the whole remaining balance.
    pub const CARRY_ALL_BALANCE: Self = Self(128);

    /// Both modes' bits.
    pub const fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// An internal message a wallet sends (`MessageRelaxed`: the chain fills in the source,
/// fees and times).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalMessage {
    /// Destination.
    pub dest: Address,
    /// Value in nanotons.
    pub value: u128,
    /// Whether the message bounces back if the destination fails (set for contracts; clear
    /// for transfers to addresses that may not be deployed).
    pub bounce: bool,
    /// Deploys the destination when it is not deployed yet.
    pub state_init: Option<StateInit>,
    /// Body (an empty cell when `None`).
    pub body: Option<Cell>,
}

impl InternalMessage {
    /// A message to `dest` carrying `value` with `body`, bounceable, no state init.
    pub fn new(dest: Address, value: u128, body: Cell) -> Self {
        Self {
            dest,
            value,
            bounce: true,
            state_init: None,
            body: Some(body),
        }
    }

    /// The message as a cell (`int_msg_info$0` with `src` = `addr_none`).
    pub fn to_cell(&self) -> Result<Cell> {
        let mut b = CellBuilder::new();
        b.store_bit(false)? // int_msg_info$0
            .store_bit(true)? // ihr_disabled
            .store_bit(self.bounce)?
            .store_bit(false)? // bounced
            .store_address_none()? // src: set by the chain
            .store_address(&self.dest)?
            .store_coins(self.value)?
            .store_bit(false)? // no extra currencies
            .store_coins(0)? // ihr_fee
            .store_coins(0)? // fwd_fee
            .store_u64(0)? // created_lt
            .store_u32(0)?; // created_at
        let body = self.body.clone().unwrap_or_default();
        match &self.state_init {
            None => {
                b.store_bit(false)?;
            }
            Some(init) => {
                b.store_bit(true)?;
                let init_cell = init.to_cell()?;
                if b.bits_left().saturating_sub(2) >= init_cell.bit_len() {
                    b.store_bit(false)?.store_cell_contents(&init_cell)?;
                } else {
                    b.store_bit(true)?.store_ref(init_cell)?;
                }
            }
        }
        store_body_relaxed(&mut b, &body)?;
        b.build()
    }
}

fn store_body_relaxed(b: &mut CellBuilder, body: &Cell) -> Result<()> {
    let fits_bits = b.bits_left().saturating_sub(1) >= body.bit_len();
    let fits_refs = b.refs_left() >= body.refs().len();
    if fits_bits && fits_refs {
        b.store_bit(false)?.store_cell_contents(body)?;
    } else {
        b.store_bit(true)?.store_ref(body.clone())?;
    }
    Ok(())
}

/// An inbound external message (`ext_in_msg_info$10`): how a signed wallet request reaches
/// the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalMessage {
    /// The wallet.
    pub dest: Address,
    /// Deploys the wallet with its first request.
    pub state_init: Option<StateInit>,
    /// The signed request.
    pub body: Cell,
}

impl ExternalMessage {
    fn store_header(&self, b: &mut CellBuilder) -> Result<()> {
        b.store_uint(0b10, 2)? // ext_in_msg_info$10
            .store_address_none()? // src
            .store_address(&self.dest)?
            .store_coins(0)?; // import_fee
        Ok(())
    }

    /// The message as a cell.
    pub fn to_cell(&self) -> Result<Cell> {
        let mut b = CellBuilder::new();
        self.store_header(&mut b)?;
        match &self.state_init {
            None => {
                b.store_bit(false)?;
            }
            Some(init) => {
                b.store_bit(true)?;
                let init_cell = init.to_cell()?;
                let needed = init_cell.bit_len() + self.body.bit_len();
                if b.bits_left().saturating_sub(2) < needed {
                    b.store_bit(true)?.store_ref(init_cell)?;
                } else {
                    b.store_bit(false)?.store_cell_contents(&init_cell)?;
                }
            }
        }
        let body_ref = b.bits_left().saturating_sub(1) < self.body.bit_len()
            || b.refs_left() < self.body.refs().len();
        if body_ref {
            b.store_bit(true)?.store_ref(self.body.clone())?;
        } else {
            b.store_bit(false)?.store_cell_contents(&self.body)?;
        }
        b.build()
    }

    /// The BOC to hand to `sendBoc` / `sendBocReturnHash`.
    pub fn to_boc(&self) -> Result<Vec<u8>> {
        Ok(self.to_cell()?.to_boc())
    }

    /// The representation hash of the message as sent.
    pub fn hash(&self) -> Result<[u8; 32]> {
        Ok(self.to_cell()?.hash())
    }

    /// The normalized hash of TEP-467 (`src` none, `import_fee` 0, no init, body by
    /// reference): what indexers such as toncenter v3 key external messages by, whatever
    /// form a provider relayed.
    pub fn normalized_hash(&self) -> Result<[u8; 32]> {
        let mut b = CellBuilder::new();
        self.store_header(&mut b)?;
        b.store_bit(false)? // init: nothing
            .store_bit(true)?
            .store_ref(self.body.clone())?;
        Ok(b.build()?.hash())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn state_init_roundtrip() {
        let init = StateInit::new(
            Cell::builder().store_u8(1).unwrap().build().unwrap(),
            Cell::builder().store_u8(2).unwrap().build().unwrap(),
        );
        let cell = init.to_cell().unwrap();
        assert_eq!(cell.bit_len(), 5);
        assert_eq!(StateInit::from_cell(&cell).unwrap(), init);
        assert_eq!(init.address(0).unwrap().hash(), &cell.hash());
    }

    #[test]
    fn large_bodies_go_by_reference() {
        let big = Cell::builder()
            .store_bits(&[0u8; 128], 1000)
            .unwrap()
            .build()
            .unwrap();
        let small = Cell::builder().store_u32(1).unwrap().build().unwrap();
        let dest = Address::new(0, [3; 32]);
        let with_big = InternalMessage::new(dest, 1, big).to_cell().unwrap();
        assert_eq!(with_big.refs().len(), 1);
        let with_small = InternalMessage::new(dest, 1, small).to_cell().unwrap();
        assert!(with_small.refs().is_empty());
    }
}

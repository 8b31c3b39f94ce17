//! Typed results of the contracts' get-methods (`get_proxy_data`, `get_client_data`,
//! `get_worker_data`, ...). A chain backend runs the method through its API, maps the returned
//! stack entries to [`StackValue`]s and gets a checked struct back instead of positional
//! numbers.

use num_bigint::{BigInt, Sign};

use crate::{
    address::Address,
    cell::Cell,
    contracts::Lifecycle,
    error::{Error, Result},
};

/// One TVM stack entry of a get-method result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackValue {
    /// `null` (a Tolk `T?` that is absent, an empty dictionary).
    Null,
    /// A 257-bit integer.
    Int(BigInt),
    /// A cell.
    Cell(Cell),
    /// A slice, given as the cell it spans (APIs return slices as BOCs).
    Slice(Cell),
    /// A tuple.
    Tuple(Vec<StackValue>),
}

/// A non-negative `BigInt` as `u128`, if it fits.
fn to_u128(v: &BigInt) -> Option<u128> {
    if v.sign() == Sign::Minus {
        return None;
    }
    let (_, bytes) = v.to_bytes_be();
    if bytes.len() > 16 {
        return None;
    }
    Some(
        bytes
            .iter()
            .fold(0u128, |acc, &b| (acc << 8) | u128::from(b)),
    )
}

impl StackValue {
    /// An integer from the text forms APIs use: decimal, or hex with a `0x` prefix, either
    /// with an optional leading `-`.
    pub fn parse_int(text: &str) -> Result<Self> {
        let text = text.trim();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let magnitude = match digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
        {
            Some(hex_digits) => BigInt::parse_bytes(hex_digits.as_bytes(), 16),
            None => BigInt::parse_bytes(digits.as_bytes(), 10),
        }
        .ok_or(Error::InvalidStack("not an integer"))?;
        if magnitude.bits() > 257 {
            return Err(Error::InvalidStack("integer wider than 257 bits"));
        }
        Ok(Self::Int(if negative { -magnitude } else { magnitude }))
    }

    fn int(&self) -> Result<&BigInt> {
        match self {
            Self::Int(v) => Ok(v),
            _ => Err(Error::InvalidStack("expected an integer")),
        }
    }

    /// A non-negative integer that fits in 128 bits (coins, counters).
    pub fn as_u128(&self) -> Result<u128> {
        to_u128(self.int()?).ok_or(Error::InvalidStack("integer out of range"))
    }

    /// A non-negative integer that fits in 64 bits.
    pub fn as_u64(&self) -> Result<u64> {
        u64::try_from(self.as_u128()?).map_err(|_| Error::InvalidStack("integer out of range"))
    }

    /// A non-negative integer that fits in 32 bits.
    pub fn as_u32(&self) -> Result<u32> {
        u32::try_from(self.as_u128()?).map_err(|_| Error::InvalidStack("integer out of range"))
    }

    /// A TVM boolean (-1 true, 0 false).
    pub fn as_bool(&self) -> Result<bool> {
        let v = self.int()?;
        if *v == BigInt::from(0) {
            Ok(false)
        } else if *v == BigInt::from(-1) {
            Ok(true)
        } else {
            Err(Error::InvalidStack("boolean is neither 0 nor -1"))
        }
    }

    /// An unsigned 256-bit integer (keys, hashes) as 32 big-endian bytes.
    pub fn as_u256(&self) -> Result<[u8; 32]> {
        let v = self.int()?;
        if v.sign() == Sign::Minus {
            return Err(Error::InvalidStack("negative 256-bit value"));
        }
        let (_, bytes) = v.to_bytes_be();
        if bytes.len() > 32 {
            return Err(Error::InvalidStack("integer wider than 256 bits"));
        }
        let mut out = [0u8; 32];
        out[32 - bytes.len()..].copy_from_slice(&bytes);
        Ok(out)
    }

    /// A cell (a cell or a slice entry).
    pub fn as_cell(&self) -> Result<Cell> {
        match self {
            Self::Cell(c) | Self::Slice(c) => Ok(c.clone()),
            _ => Err(Error::InvalidStack("expected a cell")),
        }
    }

    /// A cell or `null`.
    pub fn as_opt_cell(&self) -> Result<Option<Cell>> {
        match self {
            Self::Null => Ok(None),
            other => other.as_cell().map(Some),
        }
    }

    /// A standard address (a slice holding exactly `addr_std`).
    pub fn as_address(&self) -> Result<Address> {
        self.as_cell()?.parse_fully(|s| s.load_address())
    }
}

/// Reads entries in order, with one error for a short stack.
struct StackReader<'a> {
    entries: std::slice::Iter<'a, StackValue>,
}

impl<'a> StackReader<'a> {
    fn new(stack: &'a [StackValue]) -> Self {
        Self {
            entries: stack.iter(),
        }
    }

    fn next(&mut self) -> Result<&'a StackValue> {
        self.entries
            .next()
            .ok_or(Error::InvalidStack("fewer entries than expected"))
    }

    fn finish(mut self) -> Result<()> {
        match self.entries.next() {
            None => Ok(()),
            Some(_) => Err(Error::InvalidStack("more entries than expected")),
        }
    }

    fn lifecycle(&mut self) -> Result<Lifecycle> {
        let v = self.next()?.as_u32()?;
        Lifecycle::from_u8(u8::try_from(v).map_err(|_| Error::InvalidStack("state out of range"))?)
    }
}

/// Result of the proxy's `get_proxy_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyData {
    /// Normal, closing or closed.
    pub lifecycle: Lifecycle,
    /// Commission not yet paid to the owner (nanoTON).
    pub earned: u128,
    /// Stake (nanoTON).
    pub stake: u128,
    /// When a closing proxy may complete its close.
    pub unlock_time: u32,
    /// Active client contracts.
    pub active_clients: u32,
    /// Active worker contracts.
    pub active_workers: u32,
    /// Last anchored ledger seqno.
    pub saved_seqno: u32,
    /// Ledger hash of that anchor.
    pub saved_state_hash: [u8; 32],
    /// Owner.
    pub owner: Address,
    /// The proxy key.
    pub proxy_public_key: [u8; 32],
    /// The root registry.
    pub root: Address,
}

impl ProxyData {
    /// From the stack entries, first to last.
    pub fn from_stack(stack: &[StackValue]) -> Result<Self> {
        let mut r = StackReader::new(stack);
        let v = Self {
            lifecycle: r.lifecycle()?,
            earned: r.next()?.as_u128()?,
            stake: r.next()?.as_u128()?,
            unlock_time: r.next()?.as_u32()?,
            active_clients: r.next()?.as_u32()?,
            active_workers: r.next()?.as_u32()?,
            saved_seqno: r.next()?.as_u32()?,
            saved_state_hash: r.next()?.as_u256()?,
            owner: r.next()?.as_address()?,
            proxy_public_key: r.next()?.as_u256()?,
            root: r.next()?.as_address()?,
        };
        r.finish()?;
        Ok(v)
    }
}

/// Result of the client's `get_client_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientData {
    /// Normal, closing or closed.
    pub lifecycle: Lifecycle,
    /// Balance (nanoTON).
    pub balance: u128,
    /// Stake (nanoTON).
    pub stake: u128,
    /// Cumulative adjusted tokens charged.
    pub tokens_used: u64,
    /// When a closing client may take its stake back.
    pub unlock_time: u32,
    /// SHA-256 of the short-auth secret.
    pub secret_hash: [u8; 32],
    /// Owner.
    pub owner: Address,
    /// Proxy contract.
    pub proxy_contract: Address,
    /// Proxy key.
    pub proxy_public_key: [u8; 32],
    /// Counted as active by the proxy contract.
    pub announced: bool,
}

impl ClientData {
    /// From the stack entries, first to last.
    pub fn from_stack(stack: &[StackValue]) -> Result<Self> {
        let mut r = StackReader::new(stack);
        let v = Self {
            lifecycle: r.lifecycle()?,
            balance: r.next()?.as_u128()?,
            stake: r.next()?.as_u128()?,
            tokens_used: r.next()?.as_u64()?,
            unlock_time: r.next()?.as_u32()?,
            secret_hash: r.next()?.as_u256()?,
            owner: r.next()?.as_address()?,
            proxy_contract: r.next()?.as_address()?,
            proxy_public_key: r.next()?.as_u256()?,
            announced: r.next()?.as_bool()?,
        };
        r.finish()?;
        Ok(v)
    }
}

/// Result of the worker's `get_worker_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerData {
    /// Normal or closed.
    pub lifecycle: Lifecycle,
    /// Cumulative adjusted tokens paid.
    pub tokens_paid: u64,
    /// Owner.
    pub owner: Address,
    /// Proxy contract.
    pub proxy_contract: Address,
    /// Proxy key.
    pub proxy_public_key: [u8; 32],
    /// Counted as active by the proxy contract.
    pub announced: bool,
}

impl WorkerData {
    /// From the stack entries, first to last.
    pub fn from_stack(stack: &[StackValue]) -> Result<Self> {
        let mut r = StackReader::new(stack);
        let v = Self {
            lifecycle: r.lifecycle()?,
            tokens_paid: r.next()?.as_u64()?,
            owner: r.next()?.as_address()?,
            proxy_contract: r.next()?.as_address()?,
            proxy_public_key: r.next()?.as_u256()?,
            announced: r.next()?.as_bool()?,
        };
        r.finish()?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn addr_slice(a: &Address) -> StackValue {
        StackValue::Slice(Cell::builder().store_address(a).unwrap().build().unwrap())
    }

    #[test]
    fn integers_parse_in_api_forms() {
        assert_eq!(StackValue::parse_int("0x1f").unwrap().as_u32().unwrap(), 31);
        assert!(StackValue::parse_int("-0x1").unwrap().as_bool().unwrap());
        assert!(!StackValue::parse_int("0").unwrap().as_bool().unwrap());
        assert_eq!(
            StackValue::parse_int("12345").unwrap().as_u64().unwrap(),
            12345
        );
        assert!(StackValue::parse_int("0xzz").is_err());
        assert!(StackValue::parse_int("-5").unwrap().as_u64().is_err());
        let big = format!("0x1{}", "0".repeat(70));
        assert!(StackValue::parse_int(&big).is_err());
        let key = StackValue::parse_int(&format!("0x{}", "ab".repeat(32))).unwrap();
        assert_eq!(key.as_u256().unwrap(), [0xab; 32]);
    }

    #[test]
    fn worker_data_from_stack() {
        let owner = Address::new(0, [1; 32]);
        let proxy = Address::new(0, [2; 32]);
        let stack = vec![
            StackValue::parse_int("2").unwrap(),
            StackValue::parse_int("500").unwrap(),
            addr_slice(&owner),
            addr_slice(&proxy),
            StackValue::parse_int("0x07").unwrap(),
            StackValue::parse_int("-1").unwrap(),
        ];
        let d = WorkerData::from_stack(&stack).unwrap();
        assert_eq!(d.lifecycle, Lifecycle::Closed);
        assert_eq!(d.tokens_paid, 500);
        assert_eq!(d.owner, owner);
        assert_eq!(d.proxy_public_key[31], 7);
        assert!(d.announced);
        assert!(WorkerData::from_stack(&stack[..5]).is_err());
        let mut longer = stack.clone();
        longer.push(StackValue::Null);
        assert!(WorkerData::from_stack(&longer).is_err());
    }
}

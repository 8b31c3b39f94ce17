//! Get-method arguments and results. Values are `cocoon-ton`'s [`StackValue`]s, so a result
//! goes straight to its typed readers (`ProxyData::from_stack`, ...); [`StackReader`] reads
//! one value at a time with errors that name the offending position, and [`arg`] builds the
//! usual arguments.

use crate::ChainError;
use crate::types::Nanotons;
use cocoon_ton::contracts::StackValue;
use cocoon_ton::{Address, Cell};
use num_bigint::BigInt;

/// Builders of get-method arguments.
pub mod arg {
    use super::{Address, BigInt, ChainError, StackValue};

    /// An integer.
    #[must_use]
    pub fn int(value: impl Into<BigInt>) -> StackValue {
        StackValue::Int(value.into())
    }

    /// A 256-bit unsigned integer (a hash, a public key).
    #[must_use]
    pub fn uint256(bytes: [u8; 32]) -> StackValue {
        StackValue::Int(BigInt::from_bytes_be(num_bigint::Sign::Plus, &bytes))
    }

    /// An address: a slice holding `addr_std`.
    ///
    /// # Errors
    /// [`ChainError::Cell`] if the cell cannot be built (it always can).
    pub fn address(address: &Address) -> Result<StackValue, ChainError> {
        let mut b = cocoon_ton::CellBuilder::new();
        b.store_address(address)
            .map_err(ChainError::cell("address argument"))?;
        Ok(StackValue::Slice(
            b.build().map_err(ChainError::cell("address argument"))?,
        ))
    }
}

/// A short name of a value's kind, for error messages.
pub(crate) fn kind(value: &StackValue) -> &'static str {
    match value {
        StackValue::Null => "null",
        StackValue::Int(_) => "int",
        StackValue::Cell(_) => "cell",
        StackValue::Slice(_) => "slice",
        StackValue::Tuple(_) => "tuple",
    }
}

/// A get-method's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetMethodResult {
    /// The TVM exit code (0 or 1: success).
    pub exit_code: i32,
    /// Gas spent.
    pub gas_used: u64,
    /// The result stack, bottom first (the first value the method returned comes first).
    pub stack: Vec<StackValue>,
}

impl GetMethodResult {
    /// A reader over the result stack.
    #[must_use]
    pub fn reader(&self) -> StackReader<'_> {
        StackReader::new(&self.stack)
    }
}

/// Reads a result stack front to back. A failed read still consumes its entry.
#[derive(Debug, Clone)]
pub struct StackReader<'a> {
    entries: &'a [StackValue],
    pos: usize,
}

impl<'a> StackReader<'a> {
    /// A reader at the first entry.
    #[must_use]
    pub fn new(entries: &'a [StackValue]) -> Self {
        Self { entries, pos: 0 }
    }

    /// Entries not read yet.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.entries.len() - self.pos
    }

    /// The next entry, whatever it is.
    ///
    /// # Errors
    /// [`ChainError::Stack`] at the end of the stack.
    pub fn next_value(&mut self) -> Result<&'a StackValue, ChainError> {
        let index = self.pos;
        let value = self.entries.get(index).ok_or_else(|| ChainError::Stack {
            index,
            expected: "an entry",
            found: "the end of the stack".to_owned(),
        })?;
        self.pos += 1;
        Ok(value)
    }

    fn read<T>(
        &mut self,
        expected: &'static str,
        convert: impl FnOnce(&StackValue) -> cocoon_ton::Result<T>,
    ) -> Result<T, ChainError> {
        let index = self.pos;
        let value = self.next_value()?;
        convert(value).map_err(|e| ChainError::Stack {
            index,
            expected,
            found: match value {
                StackValue::Int(v) => format!("int {v} ({e})"),
                other => format!("{} ({e})", kind(other)),
            },
        })
    }

    /// The next integer.
    ///
    /// # Errors
    /// [`ChainError::Stack`] when the entry is not an integer.
    pub fn read_int(&mut self) -> Result<&'a BigInt, ChainError> {
        let index = self.pos;
        match self.next_value()? {
            StackValue::Int(v) => Ok(v),
            other => Err(ChainError::Stack {
                index,
                expected: "int",
                found: kind(other).to_owned(),
            }),
        }
    }

    /// The next integer as `u32`.
    ///
    /// # Errors
    /// [`ChainError::Stack`] when not an integer in range.
    pub fn read_u32(&mut self) -> Result<u32, ChainError> {
        self.read("int in u32 range", StackValue::as_u32)
    }

    /// The next integer as `u64`.
    ///
    /// # Errors
    /// [`ChainError::Stack`] when not an integer in range.
    pub fn read_u64(&mut self) -> Result<u64, ChainError> {
        self.read("int in u64 range", StackValue::as_u64)
    }

    /// The next integer as `i64`.
    ///
    /// # Errors
    /// [`ChainError::Stack`] when not an integer in range.
    pub fn read_i64(&mut self) -> Result<i64, ChainError> {
        let index = self.pos;
        let v = self.read_int()?;
        i64::try_from(v).map_err(|_| ChainError::Stack {
            index,
            expected: "int in i64 range",
            found: format!("int {v}"),
        })
    }

    /// The next integer as an amount of nanotons.
    ///
    /// # Errors
    /// [`ChainError::Stack`] when not a non-negative integer below 2¹²⁸.
    pub fn read_nanotons(&mut self) -> Result<Nanotons, ChainError> {
        self.read("non-negative int in u128 range", StackValue::as_u128)
    }

    /// The next integer as a TVM flag (-1 true, 0 false).
    ///
    /// # Errors
    /// [`ChainError::Stack`] for anything else.
    pub fn read_bool(&mut self) -> Result<bool, ChainError> {
        self.read("flag (0 or -1)", StackValue::as_bool)
    }

    /// The next integer as 32 big-endian bytes (hashes, public keys).
    ///
    /// # Errors
    /// [`ChainError::Stack`] when not an integer in `0..2²⁵⁶`.
    pub fn read_u256(&mut self) -> Result<[u8; 32], ChainError> {
        self.read("int in 0..2^256", StackValue::as_u256)
    }

    /// The next cell (a cell or a slice entry).
    ///
    /// # Errors
    /// [`ChainError::Stack`] when the entry holds no cell.
    pub fn read_cell(&mut self) -> Result<Cell, ChainError> {
        self.read("cell", StackValue::as_cell)
    }

    /// The next cell or null (a `Maybe` cell, a dictionary that may be empty).
    ///
    /// # Errors
    /// [`ChainError::Stack`] when the entry is neither.
    pub fn read_cell_opt(&mut self) -> Result<Option<Cell>, ChainError> {
        self.read("cell or null", StackValue::as_opt_cell)
    }

    /// The next address (a slice holding exactly `addr_std`).
    ///
    /// # Errors
    /// [`ChainError::Stack`] when the entry is not such a slice.
    pub fn read_address(&mut self) -> Result<Address, ChainError> {
        self.read("address slice", StackValue::as_address)
    }

    /// Fails unless every entry has been read.
    ///
    /// # Errors
    /// [`ChainError::Stack`] naming the first unread entry.
    pub fn expect_end(&self) -> Result<(), ChainError> {
        match self.entries.get(self.pos) {
            None => Ok(()),
            Some(v) => Err(ChainError::Stack {
                index: self.pos,
                expected: "the end of the stack",
                found: kind(v).to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn address_argument_reads_back() {
        for a in [Address::new(0, [0x5a; 32]), Address::new(-1, [0x01; 32])] {
            let entries = vec![arg::address(&a).unwrap()];
            assert_eq!(StackReader::new(&entries).read_address().unwrap(), a);
        }
    }

    #[test]
    fn typed_reads_name_the_position() {
        let entries = vec![
            arg::int(7u32),
            arg::int(-1),
            arg::uint256([0xff; 32]),
            StackValue::Null,
        ];
        let mut r = StackReader::new(&entries);
        assert_eq!(r.read_u32().unwrap(), 7);
        assert!(r.read_bool().unwrap());
        assert_eq!(r.read_u256().unwrap(), [0xff; 32]);
        assert_eq!(r.read_cell_opt().unwrap(), None);
        r.expect_end().unwrap();
        let err = r.read_u64().unwrap_err();
        assert!(matches!(err, ChainError::Stack { index: 4, .. }), "{err}");

        let mut r = StackReader::new(&entries);
        r.read_u32().unwrap();
        let err = r.read_u32().unwrap_err();
        assert!(matches!(err, ChainError::Stack { index: 1, .. }), "{err}");
        assert!(err.to_string().contains("int -1"), "{err}");
        assert!(r.expect_end().is_err());
    }
}

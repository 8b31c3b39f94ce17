//! TVM stack values for get-method arguments and results, and a typed reader that turns a
//! result stack into integers, flags, hashes, addresses and cells with errors that name the
//! offending position.

use crate::ChainError;
use crate::cell::CellTree;
use crate::types::{Address, Boc, Nanotons};
use num_bigint::{BigInt, Sign};

/// One value on the TVM stack.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StackEntry {
    /// `null` (also what an empty `Maybe` or a missing dictionary is).
    Null,
    /// A 257-bit signed integer.
    Int(BigInt),
    /// The integer "not a number".
    NaN,
    /// A cell.
    Cell(Boc),
    /// A slice (serialized as the cell holding its remaining bits and references).
    Slice(Boc),
    /// A builder (serialized as the cell it would build).
    Builder(Boc),
    /// A tuple.
    Tuple(Vec<StackEntry>),
}

impl StackEntry {
    /// An integer argument.
    #[must_use]
    pub fn int(value: impl Into<BigInt>) -> Self {
        Self::Int(value.into())
    }

    /// A 256-bit unsigned integer argument (a hash, a public key).
    #[must_use]
    pub fn uint256(bytes: [u8; 32]) -> Self {
        Self::Int(BigInt::from_bytes_be(Sign::Plus, &bytes))
    }

    /// An address argument: a slice holding `addr_std`.
    ///
    /// # Errors
    /// [`ChainError::Boc`] if the cell cannot be built (it always can for a standard address).
    pub fn address(address: &Address) -> Result<Self, ChainError> {
        use tlb_ton::bits::ser::BitWriterExt as _;
        let mut builder = tlb_ton::Cell::builder();
        builder
            .pack(*address, ())
            .map_err(|e| ChainError::Boc(format!("building an address slice: {e}")))?;
        let boc = tlb_ton::BagOfCells::from_root(builder.into_cell())
            .serialize(tlb_ton::BagOfCellsArgs {
                has_idx: false,
                has_crc32c: true,
            })
            .map_err(|e| ChainError::Boc(format!("serializing an address slice: {e}")))?;
        Ok(Self::Slice(Boc::new(boc)))
    }

    /// A short name of the variant, for error messages.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Int(_) => "int",
            Self::NaN => "NaN",
            Self::Cell(_) => "cell",
            Self::Slice(_) => "slice",
            Self::Builder(_) => "builder",
            Self::Tuple(_) => "tuple",
        }
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
    pub stack: Vec<StackEntry>,
}

impl GetMethodResult {
    /// A reader over the result stack.
    #[must_use]
    pub fn reader(&self) -> StackReader<'_> {
        StackReader::new(&self.stack)
    }
}

/// Reads a result stack front to back with typed accessors.
#[derive(Debug, Clone)]
pub struct StackReader<'a> {
    entries: &'a [StackEntry],
    pos: usize,
}

impl<'a> StackReader<'a> {
    /// A reader at the first entry.
    #[must_use]
    pub fn new(entries: &'a [StackEntry]) -> Self {
        Self { entries, pos: 0 }
    }

    /// Entries not read yet.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.entries.len() - self.pos
    }

    fn mismatch(&self, index: usize, expected: &'static str) -> ChainError {
        ChainError::Stack {
            index,
            expected,
            found: self.entries.get(index).map_or_else(
                || "the end of the stack".to_owned(),
                |e| e.kind().to_owned(),
            ),
        }
    }

    /// The next entry, whatever it is.
    ///
    /// # Errors
    /// [`ChainError::Stack`] at the end of the stack.
    pub fn next_entry(&mut self) -> Result<&'a StackEntry, ChainError> {
        let index = self.pos;
        let entry = self
            .entries
            .get(index)
            .ok_or_else(|| self.mismatch(index, "an entry"))?;
        self.pos += 1;
        Ok(entry)
    }

    /// The next integer.
    ///
    /// # Errors
    /// [`ChainError::Stack`] when the entry is not an integer.
    pub fn read_int(&mut self) -> Result<&'a BigInt, ChainError> {
        let index = self.pos;
        match self.next_entry()? {
            StackEntry::Int(v) => Ok(v),
            _ => Err(self.mismatch(index, "int")),
        }
    }

    fn read_converted<T: TryFrom<&'a BigInt>>(
        &mut self,
        expected: &'static str,
    ) -> Result<T, ChainError> {
        let index = self.pos;
        let v = self.read_int()?;
        T::try_from(v).map_err(|_| ChainError::Stack {
            index,
            expected,
            found: format!("int {v}"),
        })
    }

    /// The next integer as `u32`.
    ///
    /// # Errors
    /// [`ChainError::Stack`] when not an integer or out of range.
    pub fn read_u32(&mut self) -> Result<u32, ChainError> {
        self.read_converted("int in u32 range")
    }

    /// The next integer as `u64`.
    ///
    /// # Errors
    /// [`ChainError::Stack`] when not an integer or out of range.
    pub fn read_u64(&mut self) -> Result<u64, ChainError> {
        self.read_converted("int in u64 range")
    }

    /// The next integer as `i64`.
    ///
    /// # Errors
    /// [`ChainError::Stack`] when not an integer or out of range.
    pub fn read_i64(&mut self) -> Result<i64, ChainError> {
        self.read_converted("int in i64 range")
    }

    /// The next integer as an amount of nanotons.
    ///
    /// # Errors
    /// [`ChainError::Stack`] when not an integer or out of range.
    pub fn read_nanotons(&mut self) -> Result<Nanotons, ChainError> {
        self.read_converted("non-negative int in u128 range")
    }

    /// The next integer as a TVM flag: 0 is false, -1 (or any other value) is true.
    ///
    /// # Errors
    /// [`ChainError::Stack`] when not an integer.
    pub fn read_bool(&mut self) -> Result<bool, ChainError> {
        Ok(self.read_int()?.sign() != Sign::NoSign)
    }

    /// The next integer as 32 big-endian bytes (hashes, public keys).
    ///
    /// # Errors
    /// [`ChainError::Stack`] when not an integer in `0..2²⁵⁶`.
    pub fn read_u256(&mut self) -> Result<[u8; 32], ChainError> {
        let index = self.pos;
        let v = self.read_int()?;
        let (sign, bytes) = v.to_bytes_be();
        if sign == Sign::Minus || bytes.len() > 32 {
            return Err(ChainError::Stack {
                index,
                expected: "int in 0..2^256",
                found: format!("int {v}"),
            });
        }
        let mut out = [0u8; 32];
        out[32 - bytes.len()..].copy_from_slice(&bytes);
        Ok(out)
    }

    /// The next cell (a cell entry; a slice is accepted too, as toncenter may report one).
    ///
    /// # Errors
    /// [`ChainError::Stack`] when the entry holds no cell.
    pub fn read_cell(&mut self) -> Result<&'a Boc, ChainError> {
        let index = self.pos;
        match self.next_entry()? {
            StackEntry::Cell(b) | StackEntry::Slice(b) => Ok(b),
            _ => Err(self.mismatch(index, "cell")),
        }
    }

    /// The next cell or null (a `Maybe` cell, a dictionary that may be empty).
    ///
    /// # Errors
    /// [`ChainError::Stack`] when the entry is neither.
    pub fn read_cell_opt(&mut self) -> Result<Option<&'a Boc>, ChainError> {
        let index = self.pos;
        match self.next_entry()? {
            StackEntry::Null => Ok(None),
            StackEntry::Cell(b) | StackEntry::Slice(b) => Ok(Some(b)),
            _ => Err(self.mismatch(index, "cell or null")),
        }
    }

    /// The next address (a slice holding `addr_std`; `addr_none` is an error).
    ///
    /// # Errors
    /// [`ChainError::Stack`] when the entry is not a slice, [`ChainError::Boc`] or
    /// [`ChainError::CellLayout`] when it does not hold an address.
    pub fn read_address(&mut self) -> Result<Address, ChainError> {
        let index = self.pos;
        self.read_address_opt()?.ok_or_else(|| ChainError::Stack {
            index,
            expected: "address",
            found: "addr_none".to_owned(),
        })
    }

    /// The next address, `None` for `addr_none` or null.
    ///
    /// # Errors
    /// As [`Self::read_address`].
    pub fn read_address_opt(&mut self) -> Result<Option<Address>, ChainError> {
        let index = self.pos;
        let boc = match self.next_entry()? {
            StackEntry::Null => return Ok(None),
            StackEntry::Slice(b) | StackEntry::Cell(b) => b,
            _ => return Err(self.mismatch(index, "address slice")),
        };
        let tree = CellTree::from_boc(boc.as_bytes())?;
        let mut s = tree.root();
        let address = s.load_address("address slice")?;
        s.expect_end("address slice")?;
        Ok(address)
    }

    /// Fails unless every entry has been read.
    ///
    /// # Errors
    /// [`ChainError::Stack`] naming the first unread entry.
    pub fn expect_end(&self) -> Result<(), ChainError> {
        if self.pos == self.entries.len() {
            Ok(())
        } else {
            Err(self.mismatch(self.pos, "the end of the stack"))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn address_argument_reads_back() {
        let a = Address {
            workchain_id: 0,
            address: [0x5a; 32],
        };
        let entries = vec![StackEntry::address(&a).unwrap()];
        assert_eq!(StackReader::new(&entries).read_address().unwrap(), a);
        let b = Address {
            workchain_id: -1,
            address: [0x01; 32],
        };
        let entries = vec![StackEntry::address(&b).unwrap()];
        assert_eq!(StackReader::new(&entries).read_address().unwrap(), b);
    }

    #[test]
    fn typed_reads_name_the_position() {
        let entries = vec![
            StackEntry::int(7u32),
            StackEntry::int(-1),
            StackEntry::uint256([0xff; 32]),
            StackEntry::Null,
        ];
        let mut r = StackReader::new(&entries);
        assert_eq!(r.read_u32().unwrap(), 7);
        assert!(r.read_bool().unwrap());
        assert_eq!(r.read_u256().unwrap(), [0xff; 32]);
        assert_eq!(r.read_cell_opt().unwrap(), None);
        let err = r.read_u64().unwrap_err();
        assert!(matches!(err, ChainError::Stack { index: 4, .. }), "{err}");

        let mut r = StackReader::new(&entries);
        r.read_u32().unwrap();
        let err = r.read_u32().unwrap_err();
        assert!(matches!(err, ChainError::Stack { index: 1, .. }), "{err}");
    }
}

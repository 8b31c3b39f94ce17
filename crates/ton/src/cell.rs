//! TON cells: up to 1023 data bits and four references, identified by their representation
//! hash. Every message, contract state and voucher is a tree of cells, and every address and
//! signature commits to a cell hash, so this module is the base of the crate.
//!
//! A [`Cell`] computes its hash and depth once, when it is built, so hashing, comparing and
//! hashing into maps stay cheap even for cells that share subtrees (a hostile BOC can make a
//! tree whose naive expansion is exponential in its size). Only ordinary cells exist here:
//! exotic cells (pruned branches, library cells, Merkle proofs) never appear in the messages
//! and contract states this crate deals with, and are refused when decoding.

use std::{fmt, sync::Arc};

use sha2::{Digest, Sha256};

use crate::{
    address::Address,
    error::{Error, Result},
};

/// Maximum data bits of a cell.
pub const MAX_BITS: usize = 1023;
/// Maximum references of a cell.
pub const MAX_REFS: usize = 4;
/// Maximum depth of a cell tree (TVM's limit).
pub const MAX_DEPTH: u16 = 1024;
/// Largest value a `coins` field (`VarUInteger 16`) can hold, plus one: 2^120.
pub const COINS_LIMIT: u128 = 1 << 120;

/// An immutable, reference-counted ordinary cell.
///
/// Cloning is cheap (an `Arc`). Equality and hashing use the representation hash.
#[derive(Clone)]
pub struct Cell(Arc<CellInner>);

struct CellInner {
    /// `ceil(bit_len / 8)` bytes, bits past `bit_len` zero.
    data: Vec<u8>,
    bit_len: usize,
    refs: Vec<Cell>,
    hash: [u8; 32],
    depth: u16,
}

impl Cell {
    /// Builds a cell from left-aligned data bits and references, checking TON's limits.
    pub fn new(data: &[u8], bit_len: usize, refs: Vec<Cell>) -> Result<Self> {
        if bit_len > MAX_BITS {
            return Err(Error::BitOverflow {
                needed: bit_len,
                available: MAX_BITS,
            });
        }
        if refs.len() > MAX_REFS {
            return Err(Error::RefOverflow);
        }
        let byte_len = bit_len.div_ceil(8);
        if data.len() < byte_len {
            return Err(Error::CellUnderflow {
                needed: bit_len,
                remaining: data.len() * 8,
            });
        }
        let mut bytes = data[..byte_len].to_vec();
        if !bit_len.is_multiple_of(8)
            && let Some(last) = bytes.last_mut()
        {
            *last &= 0xffu8 << (8 - bit_len % 8);
        }
        let depth = match refs.iter().map(Cell::depth).max() {
            None => 0,
            Some(d) if d >= MAX_DEPTH => return Err(Error::DepthLimit { max: MAX_DEPTH }),
            Some(d) => d + 1,
        };
        let hash = representation_hash(&bytes, bit_len, &refs);
        Ok(Self(Arc::new(CellInner {
            data: bytes,
            bit_len,
            refs,
            hash,
            depth,
        })))
    }

    /// The empty cell (no bits, no references).
    pub fn empty() -> Self {
        Self(Arc::new(CellInner {
            data: Vec::new(),
            bit_len: 0,
            refs: Vec::new(),
            hash: representation_hash(&[], 0, &[]),
            depth: 0,
        }))
    }

    /// Starts a [`CellBuilder`].
    pub fn builder() -> CellBuilder {
        CellBuilder::new()
    }

    /// The representation hash: what addresses, signatures and the chain refer to.
    pub fn hash(&self) -> [u8; 32] {
        self.0.hash
    }

    /// Depth of the tree under this cell (0 without references).
    pub fn depth(&self) -> u16 {
        self.0.depth
    }

    /// Number of data bits.
    pub fn bit_len(&self) -> usize {
        self.0.bit_len
    }

    /// Data bits, left aligned; bits past [`Cell::bit_len`] are zero.
    pub fn data(&self) -> &[u8] {
        &self.0.data
    }

    /// The references.
    pub fn refs(&self) -> &[Cell] {
        &self.0.refs
    }

    /// Whether the cell has neither data nor references.
    pub fn is_empty(&self) -> bool {
        self.0.bit_len == 0 && self.0.refs.is_empty()
    }

    /// A reader over this cell's bits and references.
    pub fn parser(&self) -> CellSlice<'_> {
        CellSlice {
            cell: self,
            bit_pos: 0,
            ref_pos: 0,
        }
    }

    /// Runs `f` over this cell and checks that it read everything (the contracts' parsers are
    /// just as strict).
    pub fn parse_fully<T>(&self, f: impl FnOnce(&mut CellSlice<'_>) -> Result<T>) -> Result<T> {
        let mut slice = self.parser();
        let value = f(&mut slice)?;
        slice.ensure_empty()?;
        Ok(value)
    }

    /// Serializes this cell alone as a BOC (CRC32-C included), the form `sendBoc` and
    /// get-method arguments take.
    pub fn to_boc(&self) -> Vec<u8> {
        crate::boc::encode(self, crate::boc::BocOptions::default())
    }

    /// [`Cell::to_boc`] in standard base64.
    pub fn to_boc_base64(&self) -> String {
        crate::boc::to_base64(self)
    }

    /// Decodes a BOC with exactly one root under the default limits.
    pub fn from_boc(bytes: &[u8]) -> Result<Self> {
        crate::boc::decode_single(bytes)
    }

    /// Decodes a base64 BOC (standard or URL-safe alphabet) with exactly one root.
    pub fn from_boc_base64(text: &str) -> Result<Self> {
        crate::boc::from_base64(text)
    }
}

impl Default for Cell {
    fn default() -> Self {
        Self::empty()
    }
}

impl PartialEq for Cell {
    fn eq(&self, other: &Self) -> bool {
        self.0.hash == other.0.hash
    }
}

impl Eq for Cell {}

impl std::hash::Hash for Cell {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash.hash(state);
    }
}

impl fmt::Debug for Cell {
    // Not recursive on purpose: a shared subtree would be printed once per path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Cell({} bits x{}, {} refs, hash {})",
            self.0.bit_len,
            hex::encode(&self.0.data),
            self.0.refs.len(),
            hex::encode(&self.0.hash[..8])
        )
    }
}

/// Standard representation hash of an ordinary cell (level 0).
fn representation_hash(data: &[u8], bit_len: usize, refs: &[Cell]) -> [u8; 32] {
    let mut h = Sha256::new();
    // d1: reference count (ordinary cell, level 0); d2: floor(bits/8) + ceil(bits/8)
    let d2 = (bit_len / 8 + bit_len.div_ceil(8)) as u8;
    h.update([refs.len() as u8, d2]);
    if bit_len.is_multiple_of(8) {
        h.update(data);
    } else if let Some((last, full)) = data.split_last() {
        h.update(full);
        // completion tag: a one bit right after the data, then zeros
        h.update([*last | (0x80u8 >> (bit_len % 8))]);
    }
    for r in refs {
        h.update(r.depth().to_be_bytes());
    }
    for r in refs {
        h.update(r.hash());
    }
    h.finalize().into()
}

fn get_bit(data: &[u8], pos: usize) -> bool {
    data.get(pos / 8)
        .is_some_and(|b| b & (0x80 >> (pos % 8)) != 0)
}

/// Writes bits into a new cell. Every write checks the cell's limits and returns
/// [`Error::BitOverflow`] / [`Error::RefOverflow`] rather than panicking.
#[derive(Clone, Default)]
pub struct CellBuilder {
    data: Vec<u8>,
    bit_len: usize,
    refs: Vec<Cell>,
}

impl fmt::Debug for CellBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CellBuilder({} bits x{}, {} refs)",
            self.bit_len,
            hex::encode(&self.data),
            self.refs.len()
        )
    }
}

impl CellBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Data bits written so far.
    pub fn bit_len(&self) -> usize {
        self.bit_len
    }

    /// Data bits still free.
    pub fn bits_left(&self) -> usize {
        MAX_BITS - self.bit_len
    }

    /// References still free.
    pub fn refs_left(&self) -> usize {
        MAX_REFS - self.refs.len()
    }

    fn reserve(&self, bits: usize) -> Result<()> {
        if bits > self.bits_left() {
            return Err(Error::BitOverflow {
                needed: bits,
                available: self.bits_left(),
            });
        }
        Ok(())
    }

    fn push_bit_unchecked(&mut self, bit: bool) {
        if self.bit_len.is_multiple_of(8) {
            self.data.push(0);
        }
        if bit && let Some(last) = self.data.last_mut() {
            *last |= 0x80 >> (self.bit_len % 8);
        }
        self.bit_len += 1;
    }

    /// Appends one bit.
    pub fn store_bit(&mut self, bit: bool) -> Result<&mut Self> {
        self.reserve(1)?;
        self.push_bit_unchecked(bit);
        Ok(self)
    }

    /// Appends `bits` (at most 128) bits of an unsigned value, most significant first.
    pub fn store_uint(&mut self, value: u128, bits: usize) -> Result<&mut Self> {
        if bits > 128 {
            return Err(Error::FieldWidth { bits });
        }
        if bits < 128 && value >> bits != 0 {
            return Err(Error::ValueTooLarge { bits });
        }
        self.reserve(bits)?;
        for i in (0..bits).rev() {
            self.push_bit_unchecked((value >> i) & 1 == 1);
        }
        Ok(self)
    }

    /// Appends `bits` (1 to 128) bits of a signed value in two's complement.
    pub fn store_int(&mut self, value: i128, bits: usize) -> Result<&mut Self> {
        if bits == 0 || bits > 128 {
            return Err(Error::FieldWidth { bits });
        }
        if bits < 128 {
            let min = -(1i128 << (bits - 1));
            let max = (1i128 << (bits - 1)) - 1;
            if value < min || value > max {
                return Err(Error::ValueTooLarge { bits });
            }
        }
        self.reserve(bits)?;
        let raw = value as u128;
        for i in (0..bits).rev() {
            self.push_bit_unchecked((raw >> i) & 1 == 1);
        }
        Ok(self)
    }

    /// Appends a `u8`.
    pub fn store_u8(&mut self, value: u8) -> Result<&mut Self> {
        self.store_uint(value.into(), 8)
    }

    /// Appends a `u32` (op codes, seqnos, times).
    pub fn store_u32(&mut self, value: u32) -> Result<&mut Self> {
        self.store_uint(value.into(), 32)
    }

    /// Appends a `u64` (query ids, token counts).
    pub fn store_u64(&mut self, value: u64) -> Result<&mut Self> {
        self.store_uint(value.into(), 64)
    }

    /// Appends whole bytes.
    pub fn store_bytes(&mut self, bytes: &[u8]) -> Result<&mut Self> {
        self.store_bits(bytes, bytes.len() * 8)
    }

    /// Appends the first `bit_len` bits of `data` (left aligned).
    pub fn store_bits(&mut self, data: &[u8], bit_len: usize) -> Result<&mut Self> {
        if data.len() * 8 < bit_len {
            return Err(Error::CellUnderflow {
                needed: bit_len,
                remaining: data.len() * 8,
            });
        }
        self.reserve(bit_len)?;
        if self.bit_len.is_multiple_of(8) {
            // aligned: copy bytes, then trim the last one
            let bytes = bit_len.div_ceil(8);
            self.data.extend_from_slice(&data[..bytes]);
            self.bit_len += bit_len;
            if !bit_len.is_multiple_of(8)
                && let Some(last) = self.data.last_mut()
            {
                *last &= 0xffu8 << (8 - bit_len % 8);
            }
        } else {
            for i in 0..bit_len {
                self.push_bit_unchecked(get_bit(data, i));
            }
        }
        Ok(self)
    }

    /// Appends an amount of nanotons as `coins` (`VarUInteger 16`: 4-bit byte length, then
    /// the bytes).
    pub fn store_coins(&mut self, amount: u128) -> Result<&mut Self> {
        if amount >= COINS_LIMIT {
            return Err(Error::ValueTooLarge { bits: 120 });
        }
        let bytes = (128 - amount.leading_zeros() as usize).div_ceil(8);
        self.reserve(4 + bytes * 8)?;
        self.store_uint(bytes as u128, 4)?;
        self.store_uint(amount, bytes * 8)
    }

    /// Appends a standard internal address (`addr_std$10`, no anycast).
    pub fn store_address(&mut self, address: &Address) -> Result<&mut Self> {
        self.reserve(267)?;
        self.store_uint(0b10, 2)?
            .store_bit(false)?
            .store_int(address.workchain().into(), 8)?
            .store_bytes(address.hash())
    }

    /// Appends `addr_none$00`.
    pub fn store_address_none(&mut self) -> Result<&mut Self> {
        self.store_uint(0, 2)
    }

    /// Appends an address, or `addr_none` for `None`.
    pub fn store_maybe_address(&mut self, address: Option<&Address>) -> Result<&mut Self> {
        match address {
            Some(a) => self.store_address(a),
            None => self.store_address_none(),
        }
    }

    /// Appends a reference.
    pub fn store_ref(&mut self, cell: Cell) -> Result<&mut Self> {
        if self.refs.len() >= MAX_REFS {
            return Err(Error::RefOverflow);
        }
        self.refs.push(cell);
        Ok(self)
    }

    /// Appends `Maybe ^Cell`: a bit, and the reference when present.
    pub fn store_maybe_ref(&mut self, cell: Option<Cell>) -> Result<&mut Self> {
        match cell {
            Some(c) => {
                if self.refs.len() >= MAX_REFS {
                    return Err(Error::RefOverflow);
                }
                self.store_bit(true)?.store_ref(c)
            }
            None => self.store_bit(false),
        }
    }

    /// Appends the bits and references of a cell (inline, not as a reference).
    pub fn store_cell_contents(&mut self, cell: &Cell) -> Result<&mut Self> {
        if cell.refs().len() > self.refs_left() {
            return Err(Error::RefOverflow);
        }
        self.store_bits(cell.data(), cell.bit_len())?;
        self.refs.extend(cell.refs().iter().cloned());
        Ok(self)
    }

    /// Appends what is left of a slice (bits and references).
    pub fn store_slice(&mut self, slice: &CellSlice<'_>) -> Result<&mut Self> {
        let rest = slice.remaining_refs_slice();
        if rest.len() > self.refs_left() {
            return Err(Error::RefOverflow);
        }
        self.reserve(slice.remaining_bits())?;
        for i in slice.bit_pos..slice.cell.bit_len() {
            self.push_bit_unchecked(get_bit(slice.cell.data(), i));
        }
        self.refs.extend(rest.iter().cloned());
        Ok(self)
    }

    /// Appends text as a snake string: as many bytes as fit here, the rest in a chain of
    /// referenced cells (127 bytes each), as `@ton/core`'s `storeStringTail` does.
    pub fn store_text_tail(&mut self, text: &str) -> Result<&mut Self> {
        let bytes = text.as_bytes();
        let here = (self.bits_left() / 8).min(bytes.len());
        let (head, tail) = bytes.split_at(here);
        let tail_cell = if tail.is_empty() {
            None
        } else {
            Some(snake_chain(tail)?)
        };
        if tail_cell.is_some() && self.refs_left() == 0 {
            return Err(Error::RefOverflow);
        }
        self.store_bytes(head)?;
        if let Some(c) = tail_cell {
            self.store_ref(c)?;
        }
        Ok(self)
    }

    /// Finishes the cell.
    pub fn build(&self) -> Result<Cell> {
        Cell::new(&self.data, self.bit_len, self.refs.clone())
    }
}

/// A chain of cells holding `bytes`, 127 per cell, built from the tail up (no recursion).
fn snake_chain(bytes: &[u8]) -> Result<Cell> {
    const PER_CELL: usize = MAX_BITS / 8;
    let mut chunks: Vec<&[u8]> = bytes.chunks(PER_CELL).collect();
    let mut next: Option<Cell> = None;
    while let Some(chunk) = chunks.pop() {
        let mut b = CellBuilder::new();
        b.store_bytes(chunk)?;
        if let Some(c) = next.take() {
            b.store_ref(c)?;
        }
        next = Some(b.build()?);
    }
    Ok(next.unwrap_or_default())
}

/// A read cursor over a cell's bits and references.
#[derive(Clone)]
pub struct CellSlice<'a> {
    cell: &'a Cell,
    bit_pos: usize,
    ref_pos: usize,
}

impl fmt::Debug for CellSlice<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CellSlice(at bit {} / ref {} of {:?})",
            self.bit_pos, self.ref_pos, self.cell
        )
    }
}

impl<'a> CellSlice<'a> {
    /// Data bits not read yet.
    pub fn remaining_bits(&self) -> usize {
        self.cell.bit_len() - self.bit_pos
    }

    /// References not read yet.
    pub fn remaining_refs(&self) -> usize {
        self.cell.refs().len() - self.ref_pos
    }

    fn remaining_refs_slice(&self) -> &'a [Cell] {
        &self.cell.refs()[self.ref_pos..]
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.remaining_bits() == 0 && self.remaining_refs() == 0
    }

    /// Fails with [`Error::TrailingData`] unless everything was read.
    pub fn ensure_empty(&self) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Error::TrailingData {
                bits: self.remaining_bits(),
                refs: self.remaining_refs(),
            })
        }
    }

    fn need(&self, bits: usize) -> Result<()> {
        if bits > self.remaining_bits() {
            return Err(Error::CellUnderflow {
                needed: bits,
                remaining: self.remaining_bits(),
            });
        }
        Ok(())
    }

    /// Skips `bits` data bits.
    pub fn skip_bits(&mut self, bits: usize) -> Result<()> {
        self.need(bits)?;
        self.bit_pos += bits;
        Ok(())
    }

    /// Reads one bit.
    pub fn load_bit(&mut self) -> Result<bool> {
        self.need(1)?;
        let bit = get_bit(self.cell.data(), self.bit_pos);
        self.bit_pos += 1;
        Ok(bit)
    }

    /// Reads up to 128 bits as an unsigned value.
    pub fn load_u128(&mut self, bits: usize) -> Result<u128> {
        if bits > 128 {
            return Err(Error::FieldWidth { bits });
        }
        self.need(bits)?;
        let mut v: u128 = 0;
        for i in 0..bits {
            v = (v << 1) | u128::from(get_bit(self.cell.data(), self.bit_pos + i));
        }
        self.bit_pos += bits;
        Ok(v)
    }

    /// Reads up to 64 bits as an unsigned value.
    pub fn load_uint(&mut self, bits: usize) -> Result<u64> {
        if bits > 64 {
            return Err(Error::FieldWidth { bits });
        }
        Ok(self.load_u128(bits)? as u64)
    }

    /// Reads 1 to 64 bits as a signed (two's complement) value.
    pub fn load_int(&mut self, bits: usize) -> Result<i64> {
        if bits == 0 || bits > 64 {
            return Err(Error::FieldWidth { bits });
        }
        let raw = self.load_uint(bits)?;
        let shift = 64 - bits;
        Ok(((raw << shift) as i64) >> shift)
    }

    /// Reads a `u8`.
    pub fn load_u8(&mut self) -> Result<u8> {
        Ok(self.load_uint(8)? as u8)
    }

    /// Reads a `u32`.
    pub fn load_u32(&mut self) -> Result<u32> {
        Ok(self.load_uint(32)? as u32)
    }

    /// Reads a `u64`.
    pub fn load_u64(&mut self) -> Result<u64> {
        self.load_uint(64)
    }

    /// Reads `N` whole bytes.
    pub fn load_array<const N: usize>(&mut self) -> Result<[u8; N]> {
        self.need(N * 8)?;
        let mut out = [0u8; N];
        if self.bit_pos.is_multiple_of(8) {
            let start = self.bit_pos / 8;
            out.copy_from_slice(&self.cell.data()[start..start + N]);
            self.bit_pos += N * 8;
        } else {
            for byte in &mut out {
                *byte = self.load_u128(8)? as u8;
            }
        }
        Ok(out)
    }

    /// Reads `bit_len` bits, left aligned in the returned bytes.
    pub fn load_bits(&mut self, bit_len: usize) -> Result<Vec<u8>> {
        self.need(bit_len)?;
        let mut out = vec![0u8; bit_len.div_ceil(8)];
        for i in 0..bit_len {
            if get_bit(self.cell.data(), self.bit_pos + i) {
                out[i / 8] |= 0x80 >> (i % 8);
            }
        }
        self.bit_pos += bit_len;
        Ok(out)
    }

    /// Reads `coins` (`VarUInteger 16`).
    pub fn load_coins(&mut self) -> Result<u128> {
        let len = self.load_uint(4)? as usize;
        self.load_u128(len * 8)
    }

    /// Reads an address that must be a standard internal one (`addr_std`, no anycast): the only
    /// kind our contracts store.
    pub fn load_address(&mut self) -> Result<Address> {
        self.load_maybe_address()?
            .ok_or(Error::UnsupportedAddress("addr_none"))
    }

    /// Reads `addr_none` (as `None`) or a standard internal address.
    pub fn load_maybe_address(&mut self) -> Result<Option<Address>> {
        match self.load_uint(2)? {
            0b00 => Ok(None),
            0b01 => Err(Error::UnsupportedAddress("addr_extern")),
            0b11 => Err(Error::UnsupportedAddress("addr_var")),
            _ => {
                if self.load_bit()? {
                    return Err(Error::UnsupportedAddress("anycast"));
                }
                let workchain = self.load_int(8)? as i8;
                let hash = self.load_array::<32>()?;
                Ok(Some(Address::new(workchain, hash)))
            }
        }
    }

    /// Reads the next reference.
    pub fn load_ref(&mut self) -> Result<Cell> {
        let r = self
            .cell
            .refs()
            .get(self.ref_pos)
            .cloned()
            .ok_or(Error::RefUnderflow)?;
        self.ref_pos += 1;
        Ok(r)
    }

    /// Reads `Maybe ^Cell`.
    pub fn load_maybe_ref(&mut self) -> Result<Option<Cell>> {
        if self.load_bit()? {
            Ok(Some(self.load_ref()?))
        } else {
            Ok(None)
        }
    }

    /// Looks at the next 32 bits (an op code) without consuming them.
    pub fn peek_u32(&self) -> Result<u32> {
        let mut copy = self.clone();
        copy.load_u32()
    }

    /// The rest of this slice as a cell of its own.
    pub fn to_cell(&self) -> Result<Cell> {
        let mut b = CellBuilder::new();
        b.store_slice(self)?;
        b.build()
    }
}

/// Reads a snake string: the bytes of `cell`, then of its first reference, and so on. Fails on
/// bits that are not whole bytes, on more than one reference per cell, on invalid UTF-8 and on
/// text longer than `max_len` bytes.
pub fn read_snake_text(cell: &Cell, max_len: usize) -> Result<String> {
    let mut bytes = Vec::new();
    let mut current = cell.clone();
    loop {
        if !current.bit_len().is_multiple_of(8) {
            return Err(Error::InvalidText("bits are not whole bytes"));
        }
        if current.refs().len() > 1 {
            return Err(Error::InvalidText(
                "more than one reference in a snake cell",
            ));
        }
        if bytes.len() + current.data().len() > max_len {
            return Err(Error::InvalidText("text too long"));
        }
        bytes.extend_from_slice(current.data());
        match current.refs().first().cloned() {
            Some(next) => current = next,
            None => break,
        }
    }
    String::from_utf8(bytes).map_err(|_| Error::InvalidText("not UTF-8"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn empty_cell_hash_is_the_known_constant() {
        // sha256 of the two zero descriptor bytes
        assert_eq!(
            hex::encode(Cell::empty().hash()),
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"
        );
    }

    #[test]
    fn uint_roundtrip_and_bounds() {
        let mut b = CellBuilder::new();
        b.store_uint(5, 3).unwrap().store_int(-3, 7).unwrap();
        assert!(matches!(
            b.store_uint(8, 3),
            Err(Error::ValueTooLarge { bits: 3 })
        ));
        assert!(matches!(
            b.store_int(64, 7),
            Err(Error::ValueTooLarge { bits: 7 })
        ));
        let c = b.build().unwrap();
        let mut s = c.parser();
        assert_eq!(s.load_uint(3).unwrap(), 5);
        assert_eq!(s.load_int(7).unwrap(), -3);
        s.ensure_empty().unwrap();
    }

    #[test]
    fn builder_refuses_overflow() {
        let mut b = CellBuilder::new();
        b.store_bits(&[0xff; 128], 1023).unwrap();
        assert!(matches!(
            b.store_bit(true),
            Err(Error::BitOverflow { needed: 1, .. })
        ));
        for _ in 0..4 {
            b.store_ref(Cell::empty()).unwrap();
        }
        assert_eq!(b.store_ref(Cell::empty()).unwrap_err(), Error::RefOverflow);
    }

    #[test]
    fn coins_encoding() {
        for v in [0u128, 1, 255, 256, 1_000_000_000, COINS_LIMIT - 1] {
            let c = Cell::builder().store_coins(v).unwrap().build().unwrap();
            assert_eq!(c.parse_fully(|s| s.load_coins()).unwrap(), v);
        }
        assert!(Cell::builder().store_coins(COINS_LIMIT).is_err());
        // zero is just the 4-bit length
        assert_eq!(
            Cell::builder()
                .store_coins(0)
                .unwrap()
                .build()
                .unwrap()
                .bit_len(),
            4
        );
    }

    #[test]
    fn unaligned_bytes_roundtrip() {
        let mut b = CellBuilder::new();
        b.store_bit(true)
            .unwrap()
            .store_bytes(&[0xab, 0xcd])
            .unwrap();
        let c = b.build().unwrap();
        let mut s = c.parser();
        assert!(s.load_bit().unwrap());
        assert_eq!(s.load_array::<2>().unwrap(), [0xab, 0xcd]);
    }

    #[test]
    fn snake_text_roundtrip() {
        let long: String = "0123456789".repeat(40);
        let mut b = CellBuilder::new();
        b.store_u32(7).unwrap().store_text_tail(&long).unwrap();
        let c = b.build().unwrap();
        let mut s = c.parser();
        s.load_u32().unwrap();
        let rest = s.to_cell().unwrap();
        assert_eq!(read_snake_text(&rest, 10_000).unwrap(), long);
        assert!(read_snake_text(&rest, 100).is_err());
    }

    #[test]
    fn depth_limit_is_enforced() {
        let mut c = Cell::empty();
        for _ in 0..MAX_DEPTH {
            c = Cell::builder().store_ref(c).unwrap().build().unwrap();
        }
        assert_eq!(c.depth(), MAX_DEPTH);
        assert!(matches!(
            Cell::builder().store_ref(c).unwrap().build(),
            Err(Error::DepthLimit { .. })
        ));
    }
}

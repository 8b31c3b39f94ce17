//! A bounded, panic-free reader of bags of cells (BOC) and the few TL-B shapes the chain layer
//! reads from outside bytes: integers, coins, addresses, references, snake strings and
//! dictionaries.
//!
//! Get-method results and account states come from a sidecar process or a remote API, so their
//! BOCs are decoded here with explicit limits (cell count, depth, dictionary size) and every
//! malformed input is a typed error. `tlb` 0.11's decoder is not used for this: it panics on a
//! reference or root index past the cell list and recurses without a depth bound. Building cells
//! from trusted values (get-method arguments, test fixtures) still uses `tlb-ton`.

use crate::ChainError;
use sha2::{Digest, Sha256};

/// Most cells one BOC may hold.
pub const MAX_CELLS: usize = 1 << 18;
/// Deepest cell tree accepted (TVM's own limit on cell depth).
pub const MAX_DEPTH: u16 = 1024;
/// Most dictionary edges visited in one dictionary (shared sub-cells count every time).
pub const MAX_DICT_NODES: usize = 1 << 20;

const GENERIC_TAG: u32 = 0xb5ee_9c72;
const INDEXED_TAG: u32 = 0x68ff_65f3;
const INDEXED_CRC_TAG: u32 = 0xacc3_a728;
const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// One ordinary cell: up to 1023 data bits and up to 4 references (indices into the bag).
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawCell {
    data: Vec<u8>,
    bits: usize,
    refs: Vec<usize>,
    depth: u16,
    hash: [u8; 32],
}

/// A decoded bag of cells with its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellTree {
    cells: Vec<RawCell>,
    root: usize,
}

fn boc_err(detail: impl Into<String>) -> ChainError {
    ChainError::Boc(detail.into())
}

/// A byte cursor that reports running out as a typed error.
struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ChainError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| boc_err(format!("truncated at {what}")))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self, what: &str) -> Result<u8, ChainError> {
        Ok(self.take(1, what)?[0])
    }

    fn uint(&mut self, width: usize, what: &str) -> Result<usize, ChainError> {
        let mut v: usize = 0;
        for &b in self.take(width, what)? {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(usize::from(b)))
                .ok_or_else(|| boc_err(format!("{what} does not fit")))?;
        }
        Ok(v)
    }

    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }
}

impl CellTree {
    /// Decodes a BOC with exactly one root.
    ///
    /// # Errors
    /// [`ChainError::Boc`] on anything malformed, over the limits, with several roots, absent
    /// (pruned) cells or exotic cells.
    pub fn from_boc(boc: &[u8]) -> Result<Self, ChainError> {
        let mut r = Bytes { data: boc, pos: 0 };
        let magic = u32::from_be_bytes(
            r.take(4, "magic")?
                .try_into()
                .map_err(|_| boc_err("truncated at magic"))?,
        );
        let (has_idx, has_crc, size) = match magic {
            GENERIC_TAG => {
                let flags = r.byte("flags")?;
                (
                    flags & 0x80 != 0,
                    flags & 0x40 != 0,
                    usize::from(flags & 0x07),
                )
            }
            INDEXED_TAG => (true, false, usize::from(r.byte("size")?)),
            INDEXED_CRC_TAG => (true, true, usize::from(r.byte("size")?)),
            other => return Err(boc_err(format!("unknown magic {other:#010x}"))),
        };
        if !(1..=4).contains(&size) {
            return Err(boc_err(format!("reference size {size} not in 1..=4")));
        }
        let off_bytes = usize::from(r.byte("offset size")?);
        if !(1..=8).contains(&off_bytes) {
            return Err(boc_err(format!("offset size {off_bytes} not in 1..=8")));
        }
        let count = r.uint(size, "cell count")?;
        let roots = r.uint(size, "root count")?;
        let absent = r.uint(size, "absent count")?;
        let total = r.uint(off_bytes, "data size")?;
        if count == 0 || count > MAX_CELLS {
            return Err(boc_err(format!(
                "cell count {count} not in 1..={MAX_CELLS}"
            )));
        }
        if roots != 1 {
            return Err(boc_err(format!("{roots} roots; exactly one is expected")));
        }
        if absent != 0 {
            return Err(boc_err("absent (pruned) cells are not supported"));
        }
        let root = if magic == GENERIC_TAG {
            r.uint(size, "root index")?
        } else {
            0
        };
        if root >= count {
            return Err(boc_err(format!("root index {root} past {count} cells")));
        }
        if has_idx {
            let index_len = count
                .checked_mul(off_bytes)
                .ok_or_else(|| boc_err("index size overflows"))?;
            r.take(index_len, "index")?;
        }
        // Every cell takes at least two descriptor bytes: refuse counts the input cannot hold
        // before allocating for them.
        if total > r.remaining() || count > total / 2 {
            return Err(boc_err(format!(
                "{count} cells in {total} data bytes ({} left in input)",
                r.remaining()
            )));
        }
        let data = r.take(total, "cell data")?;
        if has_crc {
            let stored = r.take(4, "crc32c")?;
            let expected = CRC32C.checksum(&boc[..r.pos - 4]).to_le_bytes();
            if stored != expected {
                return Err(boc_err("crc32c mismatch"));
            }
        }
        if r.remaining() != 0 {
            return Err(boc_err(format!(
                "{} trailing bytes after the cells",
                r.remaining()
            )));
        }

        let mut cr = Bytes { data, pos: 0 };
        let mut cells = Vec::with_capacity(count);
        for i in 0..count {
            cells.push(read_raw_cell(&mut cr, i, count, size)?);
        }
        if cr.remaining() != 0 {
            return Err(boc_err(format!(
                "{} unused bytes in the cell data",
                cr.remaining()
            )));
        }
        // Children always have larger indices, so walking backwards sees them first.
        for i in (0..count).rev() {
            let mut depth: u16 = 0;
            let mut hasher = Sha256::new();
            let cell = &cells[i];
            let d1 = u8::try_from(cell.refs.len()).map_err(|_| boc_err("too many refs"))?;
            let full = cell.bits / 8;
            let d2 = u8::try_from(full * 2 + usize::from(cell.bits % 8 != 0))
                .map_err(|_| boc_err("cell too long"))?;
            hasher.update([d1, d2]);
            hasher.update(padded_data(cell));
            for &c in &cell.refs {
                depth = depth.max(cells[c].depth.saturating_add(1));
                hasher.update(cells[c].depth.to_be_bytes());
            }
            for &c in &cell.refs {
                hasher.update(cells[c].hash);
            }
            if depth > MAX_DEPTH {
                return Err(boc_err(format!("cell tree deeper than {MAX_DEPTH}")));
            }
            let hash: [u8; 32] = hasher.finalize().into();
            cells[i].depth = depth;
            cells[i].hash = hash;
        }
        Ok(Self { cells, root })
    }

    /// Decodes base64 (standard or URL-safe alphabet, padded or not) and then the BOC.
    ///
    /// # Errors
    /// [`ChainError::Boc`] when the text is not base64 or the bytes not a BOC.
    pub fn from_base64(text: &str) -> Result<Self, ChainError> {
        Self::from_boc(&decode_base64(text)?)
    }

    /// Representation hash of the root cell.
    #[must_use]
    pub fn hash(&self) -> [u8; 32] {
        self.cells[self.root].hash
    }

    /// Depth of the root cell.
    #[must_use]
    pub fn depth(&self) -> u16 {
        self.cells[self.root].depth
    }

    /// Number of cells in the bag.
    #[must_use]
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Always false: a bag has at least its root.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// A reader positioned at the start of the root cell.
    #[must_use]
    pub fn root(&self) -> CellSlice<'_> {
        self.slice(self.root)
    }

    fn slice(&self, cell: usize) -> CellSlice<'_> {
        CellSlice {
            tree: self,
            cell,
            bit: 0,
            next_ref: 0,
        }
    }
}

/// Decodes base64 in any of the alphabets toncenter and our tools use.
pub(crate) fn decode_base64(text: &str) -> Result<Vec<u8>, ChainError> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let standard = GeneralPurpose::new(&base64::alphabet::STANDARD, config);
    let url = GeneralPurpose::new(&base64::alphabet::URL_SAFE, config);
    let trimmed = text.trim();
    standard
        .decode(trimmed)
        .or_else(|_| url.decode(trimmed))
        .map_err(|e| boc_err(format!("not base64: {e}")))
}

fn padded_data(cell: &RawCell) -> Vec<u8> {
    let mut out = cell.data.clone();
    if !cell.bits.is_multiple_of(8) {
        let last = out.len() - 1;
        let used = cell.bits % 8;
        // clear everything after the data bits, then set the completion tag
        out[last] &= 0xffu8 << (8 - used);
        out[last] |= 0x80u8 >> used;
    }
    out
}

fn read_raw_cell(
    r: &mut Bytes<'_>,
    index: usize,
    count: usize,
    size: usize,
) -> Result<RawCell, ChainError> {
    let d1 = r.byte("cell descriptor")?;
    let d2 = r.byte("cell descriptor")?;
    let ref_count = usize::from(d1 & 7);
    let exotic = d1 & 8 != 0;
    let with_hashes = d1 & 16 != 0;
    let level_mask = d1 >> 5;
    if ref_count > 4 {
        return Err(boc_err(format!("cell {index}: {ref_count} references")));
    }
    if exotic {
        return Err(boc_err(format!(
            "cell {index}: exotic cells are not supported"
        )));
    }
    if level_mask != 0 {
        return Err(boc_err(format!("cell {index}: ordinary cell with a level")));
    }
    if with_hashes {
        // one hash and one depth per level; level 0 only
        r.take(32 + 2, "stored hash")?;
    }
    let byte_len = usize::from(d2).div_ceil(2);
    if byte_len > 128 {
        return Err(boc_err(format!("cell {index}: {byte_len} data bytes")));
    }
    let raw = r.take(byte_len, "cell data")?;
    let bits = if d2 % 2 == 0 {
        byte_len * 8
    } else {
        let last = raw.last().copied().unwrap_or(0);
        if last == 0 {
            return Err(boc_err(format!("cell {index}: missing completion tag")));
        }
        byte_len * 8 - 1 - last.trailing_zeros() as usize
    };
    if bits > 1023 {
        return Err(boc_err(format!("cell {index}: {bits} data bits")));
    }
    let mut data = raw.to_vec();
    data.truncate(bits.div_ceil(8));
    if bits % 8 != 0
        && let Some(last) = data.last_mut()
    {
        *last &= 0xffu8 << (8 - bits % 8);
    }
    let mut refs = Vec::with_capacity(ref_count);
    for _ in 0..ref_count {
        let target = r.uint(size, "reference")?;
        if target <= index || target >= count {
            return Err(boc_err(format!(
                "cell {index} refers to cell {target}: references must point forward within {count} cells"
            )));
        }
        refs.push(target);
    }
    Ok(RawCell {
        data,
        bits,
        refs,
        depth: 0,
        hash: [0; 32],
    })
}

/// A read position inside one cell of a [`CellTree`].
#[derive(Debug, Clone, Copy)]
pub struct CellSlice<'a> {
    tree: &'a CellTree,
    cell: usize,
    bit: usize,
    next_ref: usize,
}

impl<'a> CellSlice<'a> {
    fn raw(&self) -> &'a RawCell {
        &self.tree.cells[self.cell]
    }

    /// Data bits not read yet.
    #[must_use]
    pub fn remaining_bits(&self) -> usize {
        self.raw().bits - self.bit
    }

    /// References not read yet.
    #[must_use]
    pub fn remaining_refs(&self) -> usize {
        self.raw().refs.len() - self.next_ref
    }

    /// Representation hash of the cell this slice reads.
    #[must_use]
    pub fn cell_hash(&self) -> [u8; 32] {
        self.raw().hash
    }

    /// Reads one bit.
    ///
    /// # Errors
    /// [`ChainError::CellLayout`] when no bit is left.
    pub fn load_bit(&mut self, context: &'static str) -> Result<bool, ChainError> {
        if self.remaining_bits() == 0 {
            return Err(ChainError::layout(context, "no data bits left"));
        }
        let byte = self.raw().data[self.bit / 8];
        let v = byte & (0x80 >> (self.bit % 8)) != 0;
        self.bit += 1;
        Ok(v)
    }

    /// Reads an unsigned integer of `bits` ≤ 128 bits.
    ///
    /// # Errors
    /// [`ChainError::CellLayout`] when too few bits are left or `bits` > 128.
    pub fn load_uint(&mut self, bits: usize, context: &'static str) -> Result<u128, ChainError> {
        if bits > 128 {
            return Err(ChainError::layout(context, format!("{bits}-bit integer")));
        }
        if self.remaining_bits() < bits {
            return Err(ChainError::layout(
                context,
                format!("{bits} bits wanted, {} left", self.remaining_bits()),
            ));
        }
        let mut v: u128 = 0;
        for _ in 0..bits {
            v = (v << 1) | u128::from(self.load_bit(context)?);
        }
        Ok(v)
    }

    /// Reads an unsigned integer of at most 32 bits.
    ///
    /// # Errors
    /// As [`Self::load_uint`].
    pub fn load_u32(&mut self, bits: usize, context: &'static str) -> Result<u32, ChainError> {
        let v = self.load_uint(bits.min(32), context)?;
        u32::try_from(v).map_err(|_| ChainError::layout(context, "value exceeds 32 bits"))
    }

    /// Reads an unsigned 64-bit integer.
    ///
    /// # Errors
    /// As [`Self::load_uint`].
    pub fn load_u64(&mut self, context: &'static str) -> Result<u64, ChainError> {
        let v = self.load_uint(64, context)?;
        u64::try_from(v).map_err(|_| ChainError::layout(context, "value exceeds 64 bits"))
    }

    /// Reads 256 bits.
    ///
    /// # Errors
    /// [`ChainError::CellLayout`] when fewer than 256 bits are left.
    pub fn load_bits256(&mut self, context: &'static str) -> Result<[u8; 32], ChainError> {
        let mut out = [0u8; 32];
        for b in &mut out {
            *b = u8::try_from(self.load_uint(8, context)?)
                .map_err(|_| ChainError::layout(context, "byte overflow"))?;
        }
        Ok(out)
    }

    /// Reads `VarUInteger 16` (TON coins, in nanotons).
    ///
    /// # Errors
    /// [`ChainError::CellLayout`] when the bits run out.
    pub fn load_coins(&mut self, context: &'static str) -> Result<u128, ChainError> {
        let len = usize::try_from(self.load_uint(4, context)?)
            .map_err(|_| ChainError::layout(context, "length overflow"))?;
        self.load_uint(len * 8, context)
    }

    /// Reads a `MsgAddressInt` (`addr_std`, anycast skipped), or `None` for `addr_none`.
    ///
    /// # Errors
    /// [`ChainError::CellLayout`] for external or variable-length addresses and short data.
    pub fn load_address(
        &mut self,
        context: &'static str,
    ) -> Result<Option<tlb_ton::MsgAddress>, ChainError> {
        match self.load_uint(2, context)? {
            0b00 => Ok(None),
            0b10 => {
                if self.load_bit(context)? {
                    let depth = usize::try_from(self.load_uint(5, context)?)
                        .map_err(|_| ChainError::layout(context, "anycast depth"))?;
                    self.load_uint(depth, context)?;
                }
                let wc = self.load_uint(8, context)?;
                let workchain_id = i32::from(i8::from_be_bytes([u8::try_from(wc)
                    .map_err(|_| ChainError::layout(context, "workchain overflow"))?]));
                let address = self.load_bits256(context)?;
                Ok(Some(tlb_ton::MsgAddress {
                    workchain_id,
                    address,
                }))
            }
            0b01 => Err(ChainError::layout(
                context,
                "external address where an internal one was expected",
            )),
            _ => Err(ChainError::layout(
                context,
                "variable-length addresses are not supported",
            )),
        }
    }

    /// Reads the next reference as a slice of the referenced cell.
    ///
    /// # Errors
    /// [`ChainError::CellLayout`] when no reference is left.
    pub fn load_ref(&mut self, context: &'static str) -> Result<CellSlice<'a>, ChainError> {
        let raw = self.raw();
        let Some(&child) = raw.refs.get(self.next_ref) else {
            return Err(ChainError::layout(context, "no references left"));
        };
        self.next_ref += 1;
        Ok(self.tree.slice(child))
    }

    /// Reads `Maybe ^Cell`: one bit, then the reference when it is set.
    ///
    /// # Errors
    /// [`ChainError::CellLayout`] when the bit or the reference is missing.
    pub fn load_maybe_ref(
        &mut self,
        context: &'static str,
    ) -> Result<Option<CellSlice<'a>>, ChainError> {
        if self.load_bit(context)? {
            self.load_ref(context).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Reads a snake string: the rest of this cell's bytes, then its first reference's, and so
    /// on. Each cell must hold whole bytes.
    ///
    /// # Errors
    /// [`ChainError::CellLayout`] on a partial byte, a chain longer than the depth limit, or
    /// text that is not UTF-8.
    pub fn load_snake_string(&mut self, context: &'static str) -> Result<String, ChainError> {
        let mut bytes = Vec::new();
        let mut cur = *self;
        for _ in 0..=MAX_DEPTH {
            if !cur.remaining_bits().is_multiple_of(8) {
                return Err(ChainError::layout(
                    context,
                    "snake string with a partial byte",
                ));
            }
            while cur.remaining_bits() > 0 {
                bytes.push(
                    u8::try_from(cur.load_uint(8, context)?)
                        .map_err(|_| ChainError::layout(context, "byte overflow"))?,
                );
            }
            if cur.remaining_refs() == 0 {
                *self = cur;
                return String::from_utf8(bytes)
                    .map_err(|_| ChainError::layout(context, "text is not UTF-8"));
            }
            cur = cur.load_ref(context)?;
        }
        Err(ChainError::layout(context, "snake string chain too long"))
    }

    /// Serializes the whole cell this slice reads (from its first bit, with everything it
    /// references) as a BOC of its own, with a CRC32-C.
    #[must_use]
    pub fn to_boc(&self) -> Vec<u8> {
        let cells = &self.tree.cells;
        // Reachable cells in bag order: parents come before children there, as a BOC needs.
        let mut reach = vec![false; cells.len()];
        let mut stack = vec![self.cell];
        while let Some(i) = stack.pop() {
            if !reach[i] {
                reach[i] = true;
                stack.extend(cells[i].refs.iter().copied());
            }
        }
        let order: Vec<usize> = (0..cells.len()).filter(|&i| reach[i]).collect();
        let mut new_index = vec![0usize; cells.len()];
        for (n, &i) in order.iter().enumerate() {
            new_index[i] = n;
        }
        let size = byte_width(order.len());
        let mut body = Vec::new();
        for &i in &order {
            let cell = &cells[i];
            let d2 = cell.bits / 8 * 2 + usize::from(!cell.bits.is_multiple_of(8));
            body.push(u8::try_from(cell.refs.len()).unwrap_or(0));
            body.push(u8::try_from(d2).unwrap_or(0));
            body.extend(padded_data(cell));
            for &r in &cell.refs {
                body.extend(&new_index[r].to_be_bytes()[usize::BITS as usize / 8 - size..]);
            }
        }
        let off = byte_width(body.len());
        let mut out = GENERIC_TAG.to_be_bytes().to_vec();
        out.push(0x40 | u8::try_from(size).unwrap_or(4));
        out.push(u8::try_from(off).unwrap_or(8));
        let be = |v: usize, w: usize| v.to_be_bytes()[usize::BITS as usize / 8 - w..].to_vec();
        out.extend(be(order.len(), size));
        out.extend(be(1, size));
        out.extend(be(0, size));
        out.extend(be(body.len(), off));
        out.extend(be(0, size));
        out.extend(body);
        let crc = CRC32C.checksum(&out);
        out.extend(crc.to_le_bytes());
        out
    }

    /// Fails unless every bit and reference has been read.
    ///
    /// # Errors
    /// [`ChainError::CellLayout`] naming what is left over.
    pub fn expect_end(&self, context: &'static str) -> Result<(), ChainError> {
        if self.remaining_bits() != 0 || self.remaining_refs() != 0 {
            return Err(ChainError::layout(
                context,
                format!(
                    "{} bits and {} references left over",
                    self.remaining_bits(),
                    self.remaining_refs()
                ),
            ));
        }
        Ok(())
    }
}

/// A dictionary key of up to 256 bits, most significant bit first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DictKey {
    bytes: [u8; 32],
    len: usize,
}

impl DictKey {
    fn push(&mut self, bit: bool) {
        if bit {
            self.bytes[self.len / 8] |= 0x80 >> (self.len % 8);
        }
        self.len += 1;
    }

    /// The key as 32 bytes (for 256-bit keys).
    #[must_use]
    pub fn bytes256(&self) -> [u8; 32] {
        self.bytes
    }

    /// The key as an unsigned integer (for keys of at most 128 bits).
    #[must_use]
    pub fn uint(&self) -> u128 {
        let mut v: u128 = 0;
        for i in 0..self.len.min(128) {
            v = (v << 1) | u128::from(self.bytes[i / 8] & (0x80 >> (i % 8)) != 0);
        }
        v
    }
}

/// Bytes needed to write `v` (at least one).
fn byte_width(v: usize) -> usize {
    let bits = (usize::BITS - v.leading_zeros()) as usize;
    bits.div_ceil(8).max(1)
}

/// Number of bits needed to write any value in `0..=max`.
fn bits_for(max: usize) -> usize {
    (usize::BITS - max.leading_zeros()) as usize
}

/// Walks `Hashmap key_bits X` starting at `root` (the dictionary's root edge) and calls `leaf`
/// with every key and a slice positioned at its value. Iterative and bounded.
///
/// # Errors
/// [`ChainError::CellLayout`] on a malformed label or fork, more than [`MAX_DICT_NODES`] edges,
/// or whatever `leaf` returns.
pub fn walk_dict<'a>(
    root: CellSlice<'a>,
    key_bits: usize,
    mut leaf: impl FnMut(DictKey, CellSlice<'a>) -> Result<(), ChainError>,
) -> Result<(), ChainError> {
    const CTX: &str = "dictionary";
    if key_bits > 256 {
        return Err(ChainError::layout(CTX, "keys longer than 256 bits"));
    }
    let mut stack = vec![(
        root,
        DictKey {
            bytes: [0; 32],
            len: 0,
        },
        key_bits,
    )];
    let mut visited = 0usize;
    while let Some((mut s, mut key, n)) = stack.pop() {
        visited += 1;
        if visited > MAX_DICT_NODES {
            return Err(ChainError::layout(CTX, "too many dictionary nodes"));
        }
        // label:(HmLabel ~l n)
        let label_len;
        if !s.load_bit(CTX)? {
            // hml_short$0: unary length, then the bits
            let mut len = 0usize;
            while s.load_bit(CTX)? {
                len += 1;
                if len > n {
                    return Err(ChainError::layout(CTX, "label longer than the key"));
                }
            }
            for _ in 0..len {
                key.push(s.load_bit(CTX)?);
            }
            label_len = len;
        } else if !s.load_bit(CTX)? {
            // hml_long$10: explicit length, then the bits
            let len = usize::try_from(s.load_uint(bits_for(n), CTX)?)
                .map_err(|_| ChainError::layout(CTX, "label length"))?;
            if len > n {
                return Err(ChainError::layout(CTX, "label longer than the key"));
            }
            for _ in 0..len {
                key.push(s.load_bit(CTX)?);
            }
            label_len = len;
        } else {
            // hml_same$11: one bit repeated
            let bit = s.load_bit(CTX)?;
            let len = usize::try_from(s.load_uint(bits_for(n), CTX)?)
                .map_err(|_| ChainError::layout(CTX, "label length"))?;
            if len > n {
                return Err(ChainError::layout(CTX, "label longer than the key"));
            }
            for _ in 0..len {
                key.push(bit);
            }
            label_len = len;
        }
        let m = n - label_len;
        if m == 0 {
            leaf(key, s)?;
        } else {
            let left = s.load_ref(CTX)?;
            let right = s.load_ref(CTX)?;
            let mut rk = key;
            rk.push(true);
            let mut lk = key;
            lk.push(false);
            // pushed right first so keys come out in ascending order
            stack.push((right, rk, m - 1));
            stack.push((left, lk, m - 1));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// A single-cell BOC with `bits` data bits from `data`.
    fn one_cell(data: &[u8], bits: usize) -> Vec<u8> {
        let d2 = (bits / 8 * 2 + usize::from(!bits.is_multiple_of(8))) as u8;
        let mut cell = vec![0u8, d2];
        let mut bytes = data[..bits.div_ceil(8)].to_vec();
        if !bits.is_multiple_of(8) {
            let last = bytes.len() - 1;
            bytes[last] |= 0x80 >> (bits % 8);
        }
        cell.extend(bytes);
        let mut boc = vec![
            0xb5,
            0xee,
            0x9c,
            0x72,
            0x01,
            0x01,
            1,
            1,
            0,
            cell.len() as u8,
            0,
        ];
        boc.extend(cell);
        boc
    }

    #[test]
    fn empty_cell_hash_is_the_well_known_one() {
        let tree = CellTree::from_boc(&one_cell(&[], 0)).unwrap();
        assert_eq!(
            hex::encode(tree.hash()),
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"
        );
    }

    #[test]
    fn reads_partial_bytes() {
        let tree = CellTree::from_boc(&one_cell(&[0b1011_0000], 4)).unwrap();
        let mut s = tree.root();
        assert_eq!(s.remaining_bits(), 4);
        assert_eq!(s.load_uint(4, "t").unwrap(), 0b1011);
        s.expect_end("t").unwrap();
        assert!(s.load_bit("t").is_err());
    }

    #[test]
    fn refuses_out_of_range_references_and_roots() {
        // one cell with a reference to cell 7 of 1
        let bad_ref = [
            0xb5, 0xee, 0x9c, 0x72, 0x01, 0x01, 1, 1, 0, 3, 0, 0x01, 0x00, 7,
        ];
        assert!(matches!(
            CellTree::from_boc(&bad_ref),
            Err(ChainError::Boc(_))
        ));
        let bad_root = [
            0xb5, 0xee, 0x9c, 0x72, 0x01, 0x01, 1, 1, 0, 2, 5, 0x00, 0x00,
        ];
        assert!(matches!(
            CellTree::from_boc(&bad_root),
            Err(ChainError::Boc(_))
        ));
        let self_ref = [
            0xb5, 0xee, 0x9c, 0x72, 0x01, 0x01, 1, 1, 0, 3, 0, 0x01, 0x00, 0,
        ];
        assert!(matches!(
            CellTree::from_boc(&self_ref),
            Err(ChainError::Boc(_))
        ));
    }

    #[test]
    fn refuses_chains_deeper_than_the_limit() {
        let n: u32 = 2000;
        let mut v = vec![0xb5, 0xee, 0x9c, 0x72, 0x02, 0x04];
        v.extend_from_slice(&(n as u16).to_be_bytes());
        v.extend_from_slice(&[0, 1, 0, 0]);
        let total = (n - 1) * 4 + 2;
        v.extend_from_slice(&total.to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        for i in 0..n - 1 {
            v.extend_from_slice(&[1, 0]);
            v.extend_from_slice(&((i + 1) as u16).to_be_bytes());
        }
        v.extend_from_slice(&[0, 0]);
        let err = CellTree::from_boc(&v).unwrap_err();
        assert!(err.to_string().contains("deeper"), "{err}");
    }

    #[test]
    fn refuses_truncation_everywhere() {
        let good = one_cell(&[0xde, 0xad, 0xbe, 0xef], 32);
        assert!(CellTree::from_boc(&good).is_ok());
        for cut in 0..good.len() {
            assert!(CellTree::from_boc(&good[..cut]).is_err(), "cut at {cut}");
        }
    }
}

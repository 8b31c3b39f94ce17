//! Bags of cells: the byte form in which cells travel (`sendBoc`, get-method results, account
//! states, vouchers handed off chain). Decoding takes bytes from strangers, so it checks every
//! header field, index and size against the input and configurable limits and never panics;
//! encoding is deterministic and orders cells as `@ton/core` does, so our BOCs are byte for
//! byte the ones the JS tooling writes.

use std::collections::{HashMap, HashSet};

use base64::{
    Engine, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig, general_purpose::STANDARD},
};
use crc::{CRC_32_ISCSI, Crc};

use crate::{
    cell::{Cell, MAX_REFS},
    error::{Error, Result},
};

const BOC_MAGIC: u32 = 0xb5ee_9c72;
const CRC32C: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Limits applied while decoding untrusted BOCs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BocLimits {
    /// Most cells accepted in one BOC.
    pub max_cells: usize,
    /// Most root cells accepted in one BOC.
    pub max_roots: usize,
}

impl Default for BocLimits {
    /// 65 536 cells and 16 roots: far above any contract state or message of the network.
    fn default() -> Self {
        Self {
            max_cells: 1 << 16,
            max_roots: 16,
        }
    }
}

/// Encoding options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BocOptions {
    /// Append a CRC32-C of the whole BOC (`@ton/core`'s default, and what toncenter expects).
    pub crc32c: bool,
    /// Include the cell offset index.
    pub index: bool,
}

impl Default for BocOptions {
    fn default() -> Self {
        Self {
            crc32c: true,
            index: false,
        }
    }
}

/// A bounds-checked cursor over the input bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(Error::InvalidBoc("truncated"))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    /// A big-endian unsigned integer of `n` (at most 8) bytes.
    fn uint(&mut self, n: usize) -> Result<u64> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }
}

/// A cell as it appears in the BOC, before its references are resolved.
struct RawCell<'a> {
    data: &'a [u8],
    bit_len: usize,
    refs: [usize; MAX_REFS],
    ref_count: usize,
}

fn read_raw_cell<'a>(r: &mut Reader<'a>, ref_size: usize) -> Result<RawCell<'a>> {
    let d1 = r.u8()?;
    let d2 = r.u8()?;
    let ref_count = usize::from(d1 & 7);
    if ref_count > MAX_REFS {
        return Err(Error::InvalidBoc("more than 4 references"));
    }
    if d1 & 8 != 0 {
        return Err(Error::ExoticCell);
    }
    if d1 >> 5 != 0 {
        return Err(Error::InvalidBoc("level mask on an ordinary cell"));
    }
    if d1 & 16 != 0 {
        // stored hash and depth of a level-0 cell: recomputed anyway
        r.take(32 + 2)?;
    }
    let byte_len = usize::from(d2).div_ceil(2);
    let data = r.take(byte_len)?;
    let bit_len = if d2 % 2 == 0 {
        byte_len * 8
    } else {
        let last = data.last().copied().unwrap_or(0);
        if last == 0 {
            return Err(Error::InvalidBoc("missing completion tag"));
        }
        byte_len * 8 - (last.trailing_zeros() as usize + 1)
    };
    let mut refs = [0usize; MAX_REFS];
    for slot in refs.iter_mut().take(ref_count) {
        *slot = usize::try_from(r.uint(ref_size)?)
            .map_err(|_| Error::InvalidBoc("reference index too large"))?;
    }
    Ok(RawCell {
        data,
        bit_len,
        refs,
        ref_count,
    })
}

/// Decodes a BOC into its root cells.
pub fn decode(bytes: &[u8], limits: BocLimits) -> Result<Vec<Cell>> {
    let mut r = Reader { bytes, pos: 0 };
    let magic = r.uint(4)? as u32;
    if magic != BOC_MAGIC {
        return Err(Error::InvalidBoc("unknown magic"));
    }
    let flags = r.u8()?;
    let has_index = flags & 0x80 != 0;
    let has_crc = flags & 0x40 != 0;
    if flags & 0x18 != 0 {
        return Err(Error::InvalidBoc("reserved flags set"));
    }
    let ref_size = usize::from(flags & 7);
    if !(1..=4).contains(&ref_size) {
        return Err(Error::InvalidBoc("reference size must be 1 to 4 bytes"));
    }
    let off_size = usize::from(r.u8()?);
    if !(1..=8).contains(&off_size) {
        return Err(Error::InvalidBoc("offset size must be 1 to 8 bytes"));
    }
    // ref_size <= 4 bytes, so these fit in usize on every supported target
    let cell_count = r.uint(ref_size)? as usize;
    let root_count = r.uint(ref_size)? as usize;
    let absent = r.uint(ref_size)?;
    let total_size = r.uint(off_size)?;
    if cell_count > limits.max_cells {
        return Err(Error::BocLimit {
            what: "cells",
            max: limits.max_cells,
        });
    }
    if root_count == 0 || root_count > cell_count {
        return Err(Error::InvalidBoc("root count out of range"));
    }
    if root_count > limits.max_roots {
        return Err(Error::BocLimit {
            what: "roots",
            max: limits.max_roots,
        });
    }
    if absent != 0 {
        return Err(Error::InvalidBoc("absent cells are not supported"));
    }
    let mut roots = Vec::with_capacity(root_count);
    for _ in 0..root_count {
        let idx = r.uint(ref_size)? as usize;
        if idx >= cell_count {
            return Err(Error::InvalidBoc("root index out of range"));
        }
        roots.push(idx);
    }
    if has_index {
        let index_len = cell_count
            .checked_mul(off_size)
            .ok_or(Error::InvalidBoc("index too large"))?;
        r.take(index_len)?;
    }
    let total_size =
        usize::try_from(total_size).map_err(|_| Error::InvalidBoc("cell data too large"))?;
    // every cell takes at least its two descriptor bytes
    if cell_count.checked_mul(2).is_none_or(|min| min > total_size) {
        return Err(Error::InvalidBoc("cell data smaller than the cell count"));
    }
    let data_start = r.pos;
    let region = r.take(total_size)?;
    let mut cells_reader = Reader {
        bytes: region,
        pos: 0,
    };
    let mut raw = Vec::with_capacity(cell_count);
    for _ in 0..cell_count {
        raw.push(read_raw_cell(&mut cells_reader, ref_size)?);
    }
    if cells_reader.pos != region.len() {
        return Err(Error::InvalidBoc("cell data size mismatch"));
    }
    debug_assert_eq!(data_start + total_size, r.pos);
    if has_crc {
        let body_end = r.pos;
        let stored = u32::from_le_bytes(
            r.take(4)?
                .try_into()
                .map_err(|_| Error::InvalidBoc("truncated"))?,
        );
        if stored != CRC32C.checksum(&bytes[..body_end]) {
            return Err(Error::BocChecksum);
        }
    }
    if r.pos != bytes.len() {
        return Err(Error::InvalidBoc("trailing bytes"));
    }

    // References point forward, so build from the last cell to the first.
    let mut built: Vec<Option<Cell>> = vec![None; cell_count];
    for (i, rc) in raw.iter().enumerate().rev() {
        let mut refs = Vec::with_capacity(rc.ref_count);
        for &child in &rc.refs[..rc.ref_count] {
            if child <= i || child >= cell_count {
                return Err(Error::InvalidBoc("reference does not point forward"));
            }
            let c = built[child]
                .clone()
                .ok_or(Error::InvalidBoc("unresolved reference"))?;
            refs.push(c);
        }
        built[i] = Some(Cell::new(rc.data, rc.bit_len, refs)?);
    }
    roots
        .into_iter()
        .map(|i| built[i].clone().ok_or(Error::InvalidBoc("unresolved root")))
        .collect()
}

/// Decodes a BOC that must hold exactly one root, under the default limits.
pub fn decode_single(bytes: &[u8]) -> Result<Cell> {
    let mut roots = decode(bytes, BocLimits::default())?;
    match roots.len() {
        1 => roots.pop().ok_or(Error::RootCount(0)),
        n => Err(Error::RootCount(n)),
    }
}

/// Decodes base64 (standard or URL-safe alphabet, padding optional) holding a one-root BOC.
pub fn from_base64(text: &str) -> Result<Cell> {
    let text = text.trim();
    let bytes = if text.contains(['-', '_']) {
        URL_LENIENT.decode(text)
    } else {
        STD_LENIENT.decode(text)
    }
    .map_err(|_| Error::Base64)?;
    decode_single(&bytes)
}

/// Encodes a cell as a one-root BOC in standard base64.
pub fn to_base64(cell: &Cell) -> String {
    STANDARD.encode(encode(cell, BocOptions::default()))
}

/// Cells reachable from `root`, each once, parents before children, in `@ton/core`'s order
/// (reverse post-order of a depth-first walk that visits references last to first).
fn ordered_cells(root: &Cell) -> Vec<Cell> {
    let mut post_order = Vec::new();
    let mut done: HashSet<[u8; 32]> = HashSet::new();
    let mut stack: Vec<(Cell, usize)> = vec![(root.clone(), root.refs().len())];
    while let Some((cell, next)) = stack.last_mut() {
        if *next == 0 {
            let cell = cell.clone();
            stack.pop();
            if done.insert(cell.hash()) {
                post_order.push(cell);
            }
            continue;
        }
        *next -= 1;
        let child = cell.refs()[*next].clone();
        if !done.contains(&child.hash()) {
            let n = child.refs().len();
            stack.push((child, n));
        }
    }
    post_order.reverse();
    post_order
}

fn bytes_for(n: usize) -> usize {
    let bits = usize::BITS - n.leading_zeros();
    (bits as usize).div_ceil(8).max(1)
}

fn push_uint(out: &mut Vec<u8>, value: usize, size: usize) {
    let be = (value as u64).to_be_bytes();
    out.extend_from_slice(&be[8 - size..]);
}

/// Encodes one root cell as a BOC.
pub fn encode(root: &Cell, options: BocOptions) -> Vec<u8> {
    let cells = ordered_cells(root);
    let index: HashMap<[u8; 32], usize> = cells
        .iter()
        .enumerate()
        .map(|(i, c)| (c.hash(), i))
        .collect();
    let ref_size = bytes_for(cells.len());
    let sizes: Vec<usize> = cells
        .iter()
        .map(|c| 2 + c.data().len() + c.refs().len() * ref_size)
        .collect();
    let total: usize = sizes.iter().sum();
    let off_size = bytes_for(total);

    let mut out = Vec::with_capacity(total + 32);
    out.extend_from_slice(&BOC_MAGIC.to_be_bytes());
    let mut flags = ref_size as u8;
    if options.index {
        flags |= 0x80;
    }
    if options.crc32c {
        flags |= 0x40;
    }
    out.push(flags);
    out.push(off_size as u8);
    push_uint(&mut out, cells.len(), ref_size);
    push_uint(&mut out, 1, ref_size); // roots
    push_uint(&mut out, 0, ref_size); // absent
    push_uint(&mut out, total, off_size);
    push_uint(&mut out, 0, ref_size); // the root is cell 0
    if options.index {
        let mut end = 0;
        for s in &sizes {
            end += s;
            push_uint(&mut out, end, off_size);
        }
    }
    for cell in &cells {
        let bits = cell.bit_len();
        out.push(cell.refs().len() as u8);
        out.push((bits / 8 + bits.div_ceil(8)) as u8);
        out.extend_from_slice(cell.data());
        if bits % 8 != 0
            && let Some(last) = out.last_mut()
        {
            *last |= 0x80 >> (bits % 8);
        }
        for r in cell.refs() {
            // every reference is in `cells` by construction
            push_uint(
                &mut out,
                index.get(&r.hash()).copied().unwrap_or(0),
                ref_size,
            );
        }
    }
    if options.crc32c {
        let crc = CRC32C.checksum(&out);
        out.extend_from_slice(&crc.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn sample() -> Cell {
        let leaf = Cell::builder()
            .store_u32(0xdead_beef)
            .unwrap()
            .build()
            .unwrap();
        let mid = Cell::builder()
            .store_bit(true)
            .unwrap()
            .store_ref(leaf.clone())
            .unwrap()
            .build()
            .unwrap();
        Cell::builder()
            .store_uint(3, 5)
            .unwrap()
            .store_ref(mid)
            .unwrap()
            .store_ref(leaf)
            .unwrap()
            .build()
            .unwrap()
    }

    #[test]
    fn roundtrip_with_and_without_options() {
        let c = sample();
        for crc32c in [false, true] {
            for index in [false, true] {
                let bytes = encode(&c, BocOptions { crc32c, index });
                assert_eq!(decode_single(&bytes).unwrap(), c);
            }
        }
        // shared leaf is stored once
        assert_eq!(ordered_cells(&c).len(), 3);
    }

    #[test]
    fn base64_forms() {
        let c = sample();
        let text = to_base64(&c);
        assert_eq!(from_base64(&text).unwrap(), c);
        let url = URL_LENIENT.encode(c.to_boc());
        assert_eq!(from_base64(&url).unwrap(), c);
        assert_eq!(from_base64(text.trim_end_matches('=')).unwrap(), c);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample().to_boc();
        for n in 0..bytes.len() {
            assert!(decode_single(&bytes[..n]).is_err(), "prefix of {n} bytes");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_single(&longer).is_err());
    }

    #[test]
    fn checksum_and_reference_checks() {
        let mut bytes = sample().to_boc();
        let n = bytes.len();
        bytes[n - 6] ^= 0x01;
        assert!(decode_single(&bytes).is_err());

        // one cell whose reference points at index 5: out of range
        let bad = [
            0xb5, 0xee, 0x9c, 0x72, 0x01, 0x01, 0x01, 0x01, 0x00, 0x03, 0x00, 0x01, 0x00, 0x05,
        ];
        assert_eq!(
            decode_single(&bad).unwrap_err(),
            Error::InvalidBoc("reference does not point forward")
        );
    }

    #[test]
    fn shared_subtrees_stay_linear() {
        // a chain where every cell references the next one four times: 4^200 paths
        let mut c = Cell::empty();
        for _ in 0..200 {
            let mut b = Cell::builder();
            for _ in 0..4 {
                b.store_ref(c.clone()).unwrap();
            }
            c = b.build().unwrap();
        }
        let bytes = c.to_boc();
        let back = decode_single(&bytes).unwrap();
        assert_eq!(back.hash(), c.hash());
        assert_eq!(ordered_cells(&back).len(), 201);
    }
}

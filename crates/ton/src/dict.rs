//! Reading TVM dictionaries (`HashmapE n X`, Patricia trees over n-bit keys). The root contract
//! keeps its allowed image hashes, model hashes and registered proxies in dictionaries; a chain
//! backend reads them from the root's data cell. The walk is iterative and bounded by an entry
//! limit, because a hostile dictionary can share subtrees and describe astronomically many
//! keys in a few cells.

use crate::{
    cell::{Cell, CellSlice},
    error::{Error, Result},
};

/// Default limit on the entries read from one dictionary.
pub const DEFAULT_MAX_ENTRIES: usize = 1 << 16;

/// Bits needed to write a number in `0..=max` (`#<= max` in TL-B).
fn len_bits(max: usize) -> usize {
    (usize::BITS - max.leading_zeros()) as usize
}

/// Reads an `HmLabel ~n m` and appends its bits to `key`; returns n.
fn read_label(s: &mut CellSlice<'_>, max: usize, key: &mut Vec<bool>) -> Result<usize> {
    if !s.load_bit()? {
        // hml_short$0: unary length, then the bits
        let mut n = 0;
        while s.load_bit()? {
            n += 1;
            if n > max {
                return Err(Error::InvalidDictionary("label longer than the key"));
            }
        }
        for _ in 0..n {
            key.push(s.load_bit()?);
        }
        return Ok(n);
    }
    let same = s.load_bit()?;
    if !same {
        // hml_long$10
        let n = s.load_uint(len_bits(max))? as usize;
        if n > max {
            return Err(Error::InvalidDictionary("label longer than the key"));
        }
        for _ in 0..n {
            key.push(s.load_bit()?);
        }
        Ok(n)
    } else {
        // hml_same$11: one bit repeated
        let v = s.load_bit()?;
        let n = s.load_uint(len_bits(max))? as usize;
        if n > max {
            return Err(Error::InvalidDictionary("label longer than the key"));
        }
        key.extend(std::iter::repeat_n(v, n));
        Ok(n)
    }
}

fn bits_to_bytes(bits: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (i, &b) in bits.iter().enumerate() {
        if b {
            out[i / 8] |= 0x80 >> (i % 8);
        }
    }
    out
}

/// Reads every entry of a dictionary with `key_bits`-bit keys whose root is `root` (the cell a
/// `HashmapE` refers to). `value` parses one leaf's value from the rest of the leaf cell and
/// must read all of it. Keys come back left aligned (for a 32-bit key, 4 big-endian bytes),
/// in ascending key order.
pub fn read_dict<T>(
    root: &Cell,
    key_bits: usize,
    max_entries: usize,
    mut value: impl FnMut(&mut CellSlice<'_>) -> Result<T>,
) -> Result<Vec<(Vec<u8>, T)>> {
    let mut out = Vec::new();
    // (node, key bits so far); right children are pushed first so that left ones come out first
    let mut stack: Vec<(Cell, Vec<bool>)> = vec![(root.clone(), Vec::new())];
    while let Some((node, mut key)) = stack.pop() {
        let mut s = node.parser();
        let remaining = key_bits - key.len();
        let n = read_label(&mut s, remaining, &mut key)?;
        if n == remaining {
            if out.len() == max_entries {
                return Err(Error::TooManyEntries { max: max_entries });
            }
            let v = value(&mut s)?;
            s.ensure_empty()?;
            out.push((bits_to_bytes(&key), v));
            continue;
        }
        if s.remaining_bits() != 0 || s.remaining_refs() != 2 {
            return Err(Error::InvalidDictionary(
                "fork node needs exactly two references",
            ));
        }
        let left = s.load_ref()?;
        let right = s.load_ref()?;
        let mut right_key = key.clone();
        right_key.push(true);
        key.push(false);
        stack.push((right, right_key));
        stack.push((left, key));
        // every fork adds a leaf to the fully expanded tree: bound the pending work too
        if stack.len() > max_entries + key_bits {
            return Err(Error::TooManyEntries { max: max_entries });
        }
    }
    Ok(out)
}

/// Reads a `HashmapE` field (`Maybe ^Hashmap`) from a slice.
pub fn load_dict_e<T>(
    s: &mut CellSlice<'_>,
    key_bits: usize,
    max_entries: usize,
    value: impl FnMut(&mut CellSlice<'_>) -> Result<T>,
) -> Result<Vec<(Vec<u8>, T)>> {
    match s.load_maybe_ref()? {
        None => Ok(Vec::new()),
        Some(root) => read_dict(&root, key_bits, max_entries, value),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::cell::CellBuilder;

    fn leaf(label: impl FnOnce(&mut CellBuilder)) -> Cell {
        let mut b = CellBuilder::new();
        label(&mut b);
        b.build().unwrap()
    }

    #[test]
    fn two_keys_under_one_fork() {
        // 4-bit keys 0b1010 and 0b1011: common prefix 101 (hml_short), fork, empty labels
        let l0 = leaf(|b| {
            b.store_bit(false).unwrap().store_bit(false).unwrap(); // hml_short, n = 0
        });
        let l1 = l0.clone();
        let mut root = CellBuilder::new();
        root.store_bit(false).unwrap(); // hml_short
        root.store_uint(0b1110, 4).unwrap(); // unary 3
        root.store_uint(0b101, 3).unwrap();
        root.store_ref(l0).unwrap().store_ref(l1).unwrap();
        let root = root.build().unwrap();
        let entries = read_dict(&root, 4, 10, |_| Ok(())).unwrap();
        let keys: Vec<u8> = entries.iter().map(|(k, _)| k[0] >> 4).collect();
        assert_eq!(keys, vec![0b1010, 0b1011]);
        assert!(matches!(
            read_dict(&root, 4, 1, |_| Ok(())),
            Err(Error::TooManyEntries { max: 1 })
        ));
    }

    #[test]
    fn same_label_leaf() {
        // one 8-bit key 0xff written as hml_same v=1 n=8 (n in 4 bits)
        let root = leaf(|b| {
            b.store_uint(0b11, 2).unwrap();
            b.store_bit(true).unwrap();
            b.store_uint(8, 4).unwrap();
            b.store_u32(77).unwrap();
        });
        let entries = read_dict(&root, 8, 10, |s| s.load_u32()).unwrap();
        assert_eq!(entries, vec![(vec![0xff], 77)]);
    }

    #[test]
    fn shared_forks_hit_the_limit_not_the_clock() {
        // 256-bit keys, every level a fork to the same child: 2^256 keys described in 257 cells
        let mut node = leaf(|b| {
            b.store_bit(false).unwrap().store_bit(false).unwrap();
        });
        for _ in 0..256 {
            let child = node.clone();
            node = leaf(|b| {
                b.store_bit(false).unwrap().store_bit(false).unwrap();
                b.store_ref(child.clone())
                    .unwrap()
                    .store_ref(child)
                    .unwrap();
            });
        }
        assert!(matches!(
            read_dict(&node, 256, 1000, |_| Ok(())),
            Err(Error::TooManyEntries { .. })
        ));
    }
}

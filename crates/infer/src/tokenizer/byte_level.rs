//! The GPT-2 byte-to-character table of byte-level BPE vocabularies.
//!
//! Byte-level BPE works on bytes, but vocabularies store tokens as text: each
//! byte is written as one printable character. Bytes that are printable
//! Latin-1 (`!`..=`~`, `¡`..=`¬`, `®`..=`ÿ`) stand for themselves; the other
//! 68 (controls, space, soft hyphen, …) are numbered in order and written as
//! U+0100 upwards, so a space is `Ġ` (U+0120) and a newline `Ċ` (U+010A).
//! Decoding a token maps its characters back to bytes through this table.

/// Whether byte `b` is written as the character with the same code.
fn is_printable(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xa1..=0xac | 0xae..=0xff)
}

/// The byte a vocabulary character stands for, if it is one of the 256.
pub(super) fn char_byte(c: char) -> Option<u8> {
    let code = u32::from(c);
    if let Ok(b) = u8::try_from(code) {
        return is_printable(b).then_some(b);
    }
    // U+0100 + k is the k-th (from 0) non-printable byte.
    let k = code.checked_sub(256)?;
    (0u8..=255)
        .filter(|&b| !is_printable(b))
        .nth(usize::try_from(k).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The character each byte is written as, indexed by byte.
    fn byte_chars() -> [char; 256] {
        let mut table = ['\0'; 256];
        let mut next_extra = 0u32;
        for (b, slot) in (0u8..=255).zip(table.iter_mut()) {
            let code = if is_printable(b) {
                u32::from(b)
            } else {
                next_extra += 1;
                255 + next_extra
            };
            *slot = char::from_u32(code).unwrap_or('\0');
        }
        table
    }

    #[test]
    fn table_is_a_bijection_with_known_points() {
        let table = byte_chars();
        assert_eq!(table[usize::from(b' ')], 'Ġ');
        assert_eq!(table[usize::from(b'\n')], 'Ċ');
        assert_eq!(table[usize::from(b'a')], 'a');
        assert_eq!(table[0xad], 'Ń');
        for (b, c) in (0u8..=255).zip(table) {
            assert_eq!(char_byte(c), Some(b), "{b}");
        }
        assert_eq!(char_byte('世'), None);
        assert_eq!(char_byte(' '), None);
    }
}

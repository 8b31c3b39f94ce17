//! TL serialization in the TON dialect: the primitive encodings every COCOON message is built from.
//!
//! Structures serialize *bare* (fields only) through [`TlWrite`]/[`TlRead`]; a type with a
//! constructor id ([`TlConstructor`]) can also be written *boxed* (id first). Enumerations of
//! several constructors (TL "boxed types" such as `proxy.SignedPayment`) always carry their id.

use bytes::{Buf, Bytes};

use crate::error::Error;

/// TL `int256`: 32 raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Int256(pub [u8; 32]);

impl std::fmt::Debug for Int256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Display for Int256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// Longest `bytes`/`string` value TL can carry (3-byte length).
pub const MAX_BYTES_LEN: usize = (1 << 24) - 1;

/// Constructor id of `boolTrue`.
pub const BOOL_TRUE: u32 = 0x997275b5;
/// Constructor id of `boolFalse`.
pub const BOOL_FALSE: u32 = 0xbc799737;

/// Appends the bare TL encoding of a value.
pub trait TlWrite {
    /// Writes the value to `out`.
    fn tl_write(&self, out: &mut Vec<u8>);
}

/// Reads the bare TL encoding of a value.
pub trait TlRead: Sized {
    /// Reads one value, advancing the reader.
    fn tl_read(r: &mut TlReader) -> Result<Self, Error>;
}

/// A TL constructor with a fixed id: can be written and read boxed.
pub trait TlConstructor: TlWrite + TlRead {
    /// The constructor id (CRC32 of the schema line unless given explicitly).
    const ID: u32;
    /// The schema line the id is computed from.
    const SCHEMA: &'static str;

    /// Serializes the value boxed: constructor id, then the fields.
    fn to_boxed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&Self::ID.to_le_bytes());
        self.tl_write(&mut out);
        out
    }

    /// Parses a boxed value that must fill `bytes` exactly.
    fn from_boxed_bytes(bytes: impl Into<Bytes>) -> Result<Self, Error> {
        let mut r = TlReader::new(bytes.into());
        let id = r.read_u32()?;
        if id != Self::ID {
            return Err(Error::UnexpectedConstructor {
                expected: Self::ID,
                found: id,
            });
        }
        let v = Self::tl_read(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

/// Serializes any writable value (bare for structures, boxed for enumerations).
pub fn to_bytes<T: TlWrite + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    value.tl_write(&mut out);
    out
}

/// Parses a value that must fill `bytes` exactly.
pub fn from_bytes<T: TlRead>(bytes: impl Into<Bytes>) -> Result<T, Error> {
    let mut r = TlReader::new(bytes.into());
    let v = T::tl_read(&mut r)?;
    r.finish()?;
    Ok(v)
}

/// Reads the constructor id at the start of a boxed value without consuming it.
pub fn peek_constructor(bytes: &[u8]) -> Result<u32, Error> {
    match bytes.get(..4) {
        Some(b) => Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(Error::UnexpectedEof {
            needed: 4,
            remaining: bytes.len(),
        }),
    }
}

/// A cursor over received bytes; `bytes` fields are sliced out of it without copying.
#[derive(Debug, Clone)]
pub struct TlReader {
    buf: Bytes,
}

impl TlReader {
    /// Starts reading `buf`.
    pub fn new(buf: Bytes) -> Self {
        Self { buf }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<(), Error> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(Error::TrailingBytes(self.buf.len()))
        }
    }

    fn need(&self, n: usize) -> Result<(), Error> {
        if self.buf.len() < n {
            Err(Error::UnexpectedEof {
                needed: n,
                remaining: self.buf.len(),
            })
        } else {
            Ok(())
        }
    }

    /// Reads a little-endian `u32`.
    pub fn read_u32(&mut self) -> Result<u32, Error> {
        self.need(4)?;
        Ok(self.buf.get_u32_le())
    }

    /// Reads a little-endian `i32`.
    pub fn read_i32(&mut self) -> Result<i32, Error> {
        self.need(4)?;
        Ok(self.buf.get_i32_le())
    }

    /// Reads a little-endian `i64`.
    pub fn read_i64(&mut self) -> Result<i64, Error> {
        self.need(8)?;
        Ok(self.buf.get_i64_le())
    }

    /// Reads a little-endian `f64`.
    pub fn read_f64(&mut self) -> Result<f64, Error> {
        self.need(8)?;
        Ok(self.buf.get_f64_le())
    }

    /// Reads `n` raw bytes.
    pub fn read_raw(&mut self, n: usize) -> Result<Bytes, Error> {
        self.need(n)?;
        Ok(self.buf.split_to(n))
    }

    /// Reads a TL `bytes` value (length prefix, data, zero padding to 4).
    pub fn read_bytes(&mut self) -> Result<Bytes, Error> {
        self.need(1)?;
        let first = self.buf[0];
        let (len, prefix) = match first {
            0..=253 => (usize::from(first), 1),
            254 => {
                self.need(4)?;
                let len = usize::from(self.buf[1])
                    | usize::from(self.buf[2]) << 8
                    | usize::from(self.buf[3]) << 16;
                if len < 254 {
                    return Err(Error::NonCanonicalLength(len));
                }
                (len, 4)
            }
            255 => return Err(Error::InvalidLengthPrefix),
        };
        let padded = (prefix + len + 3) & !3;
        self.need(padded)?;
        self.buf.advance(prefix);
        let data = self.buf.split_to(len);
        let pad = padded - prefix - len;
        if self.buf[..pad].iter().any(|&b| b != 0) {
            return Err(Error::NonZeroPadding);
        }
        self.buf.advance(pad);
        Ok(data)
    }

    /// Reads a vector count, refusing counts the remaining bytes cannot hold.
    pub fn read_count(&mut self, min_item_size: usize) -> Result<usize, Error> {
        let n = self.read_i32()?;
        let n = usize::try_from(n).map_err(|_| Error::NegativeCount(n))?;
        if n.saturating_mul(min_item_size.max(1)) > self.buf.len() {
            return Err(Error::CountTooLarge {
                count: n,
                remaining: self.buf.len(),
            });
        }
        Ok(n)
    }
}

/// Appends a TL `bytes` value. Values longer than [`MAX_BYTES_LEN`] cannot be represented;
/// callers bound sizes before building messages (frames are smaller still), so the length is
/// truncated to 24 bits here only as a last resort and [`checked_bytes_len`] exists to test it.
pub fn write_bytes(out: &mut Vec<u8>, data: &[u8]) {
    let len = data.len();
    let prefix = if len < 254 {
        out.push(len as u8);
        1
    } else {
        let l = len.min(MAX_BYTES_LEN);
        out.extend_from_slice(&[254, l as u8, (l >> 8) as u8, (l >> 16) as u8]);
        4
    };
    out.extend_from_slice(data);
    let pad = (4 - (prefix + len) % 4) % 4;
    out.extend_from_slice(&[0u8; 3][..pad]);
}

/// Checks that a `bytes` value of this length can be encoded.
pub fn checked_bytes_len(len: usize) -> Result<(), Error> {
    if len > MAX_BYTES_LEN {
        Err(Error::BytesTooLong(len))
    } else {
        Ok(())
    }
}

/// Size of the TL encoding of a `bytes` value of `len` bytes.
pub fn bytes_encoded_len(len: usize) -> usize {
    let prefix = if len < 254 { 1 } else { 4 };
    (prefix + len + 3) & !3
}

impl TlWrite for i32 {
    fn tl_write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}
impl TlRead for i32 {
    fn tl_read(r: &mut TlReader) -> Result<Self, Error> {
        r.read_i32()
    }
}
impl TlWrite for u32 {
    fn tl_write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}
impl TlRead for u32 {
    fn tl_read(r: &mut TlReader) -> Result<Self, Error> {
        r.read_u32()
    }
}
impl TlWrite for i64 {
    fn tl_write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}
impl TlRead for i64 {
    fn tl_read(r: &mut TlReader) -> Result<Self, Error> {
        r.read_i64()
    }
}
impl TlWrite for f64 {
    fn tl_write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}
impl TlRead for f64 {
    fn tl_read(r: &mut TlReader) -> Result<Self, Error> {
        r.read_f64()
    }
}
impl TlWrite for bool {
    fn tl_write(&self, out: &mut Vec<u8>) {
        let id = if *self { BOOL_TRUE } else { BOOL_FALSE };
        out.extend_from_slice(&id.to_le_bytes());
    }
}
impl TlRead for bool {
    fn tl_read(r: &mut TlReader) -> Result<Self, Error> {
        match r.read_u32()? {
            BOOL_TRUE => Ok(true),
            BOOL_FALSE => Ok(false),
            other => Err(Error::InvalidBool(other)),
        }
    }
}
impl TlWrite for Int256 {
    fn tl_write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
}
impl TlRead for Int256 {
    fn tl_read(r: &mut TlReader) -> Result<Self, Error> {
        let b = r.read_raw(32)?;
        let mut a = [0u8; 32];
        a.copy_from_slice(&b);
        Ok(Int256(a))
    }
}
impl TlWrite for Bytes {
    fn tl_write(&self, out: &mut Vec<u8>) {
        write_bytes(out, self);
    }
}
impl TlRead for Bytes {
    fn tl_read(r: &mut TlReader) -> Result<Self, Error> {
        r.read_bytes()
    }
}
impl TlWrite for String {
    fn tl_write(&self, out: &mut Vec<u8>) {
        write_bytes(out, self.as_bytes());
    }
}
impl TlRead for String {
    fn tl_read(r: &mut TlReader) -> Result<Self, Error> {
        let b = r.read_bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| Error::InvalidUtf8)
    }
}
/// Items a vector reserves room for before any is read.
const MAX_VEC_PREALLOC: usize = 64;

impl<T: TlWrite> TlWrite for Vec<T> {
    fn tl_write(&self, out: &mut Vec<u8>) {
        let n = i32::try_from(self.len()).unwrap_or(i32::MAX);
        n.tl_write(out);
        for item in self {
            item.tl_write(out);
        }
    }
}
impl<T: TlRead> TlRead for Vec<T> {
    fn tl_read(r: &mut TlReader) -> Result<Self, Error> {
        let n = r.read_count(4)?;
        // The count is bounded by the input at four bytes an item, but an item in memory is
        // larger than that: preallocate only a little so a forged count cannot multiply the
        // memory a frame costs; real items grow the vector as they are read.
        let mut v = Vec::with_capacity(n.min(MAX_VEC_PREALLOC));
        for _ in 0..n {
            v.push(T::tl_read(r)?);
        }
        Ok(v)
    }
}

/// Computes a constructor id the way TL does: CRC32 (IEEE) of the normalized schema line.
pub const fn schema_crc32(schema: &str) -> u32 {
    let bytes = schema.as_bytes();
    let mut crc: u32 = 0xffff_ffff;
    let mut i = 0;
    while i < bytes.len() {
        crc ^= bytes[i] as u32;
        let mut k = 0;
        while k < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
            k += 1;
        }
        i += 1;
    }
    !crc
}

//! Metadata values: the parsed index kept per key, and borrowed views handed to callers.
//!
//! Strings and arrays are not copied out of the file: the index records where
//! they are (already validated), and views read them from the file bytes on demand.

use std::fmt;
use std::ops::Range;

/// The type code of a metadata value, as stored in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ValueType {
    /// `u8`.
    U8,
    /// `i8`.
    I8,
    /// `u16`.
    U16,
    /// `i16`.
    I16,
    /// `u32`.
    U32,
    /// `i32`.
    I32,
    /// `f32`.
    F32,
    /// A byte that is 0 or 1.
    Bool,
    /// A UTF-8 string with a `u64` length prefix.
    String,
    /// A typed array with a `u64` length prefix.
    Array,
    /// `u64`.
    U64,
    /// `i64`.
    I64,
    /// `f64`.
    F64,
}

impl ValueType {
    /// Decodes a type code; `None` for codes the format does not define.
    #[must_use]
    pub fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            0 => Self::U8,
            1 => Self::I8,
            2 => Self::U16,
            3 => Self::I16,
            4 => Self::U32,
            5 => Self::I32,
            6 => Self::F32,
            7 => Self::Bool,
            8 => Self::String,
            9 => Self::Array,
            10 => Self::U64,
            11 => Self::I64,
            12 => Self::F64,
            _ => return None,
        })
    }

    /// The code this type has in the file.
    #[must_use]
    pub fn code(self) -> u32 {
        match self {
            Self::U8 => 0,
            Self::I8 => 1,
            Self::U16 => 2,
            Self::I16 => 3,
            Self::U32 => 4,
            Self::I32 => 5,
            Self::F32 => 6,
            Self::Bool => 7,
            Self::String => 8,
            Self::Array => 9,
            Self::U64 => 10,
            Self::I64 => 11,
            Self::F64 => 12,
        }
    }

    /// Size in bytes of one value of a fixed-size type; `None` for strings and arrays.
    #[must_use]
    pub fn fixed_size(self) -> Option<usize> {
        match self {
            Self::U8 | Self::I8 | Self::Bool => Some(1),
            Self::U16 | Self::I16 => Some(2),
            Self::U32 | Self::I32 | Self::F32 => Some(4),
            Self::U64 | Self::I64 | Self::F64 => Some(8),
            Self::String | Self::Array => None,
        }
    }

    /// The fewest bytes one value of this type can occupy in the file.
    ///
    /// Used to bound element counts before allocating anything for them.
    pub(crate) fn min_encoded_size(self) -> usize {
        match self {
            Self::String => 8,
            // element type (u32) + count (u64)
            Self::Array => 12,
            other => other.fixed_size().unwrap_or(1),
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::U8 => "u8",
            Self::I8 => "i8",
            Self::U16 => "u16",
            Self::I16 => "i16",
            Self::U32 => "u32",
            Self::I32 => "i32",
            Self::F32 => "f32",
            Self::Bool => "bool",
            Self::String => "string",
            Self::Array => "array",
            Self::U64 => "u64",
            Self::I64 => "i64",
            Self::F64 => "f64",
        };
        f.write_str(name)
    }
}

/// A metadata value as recorded in the index: scalars inline, strings and
/// arrays as validated positions in the file.
#[derive(Debug, Clone)]
pub(crate) enum RawValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(Range<usize>),
    Array(RawArray),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// An array's element type, length and where its elements are.
#[derive(Debug, Clone)]
pub(crate) struct RawArray {
    pub(crate) elem: ValueType,
    pub(crate) len: usize,
    pub(crate) items: RawItems,
}

/// Element positions of an array.
#[derive(Debug, Clone)]
pub(crate) enum RawItems {
    /// Fixed-size elements stored back to back from `start` (bools already checked).
    Fixed { start: usize },
    /// The byte range of each string's text.
    Strings(Vec<Range<usize>>),
    /// Nested arrays.
    Arrays(Vec<RawArray>),
}

/// A metadata value, borrowing strings and arrays from the file bytes.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum MetadataValue<'a> {
    /// `u8`.
    U8(u8),
    /// `i8`.
    I8(i8),
    /// `u16`.
    U16(u16),
    /// `i16`.
    I16(i16),
    /// `u32`.
    U32(u32),
    /// `i32`.
    I32(i32),
    /// `f32`.
    F32(f32),
    /// Boolean.
    Bool(bool),
    /// UTF-8 string.
    String(&'a str),
    /// Array of values of one type.
    Array(MetadataArray<'a>),
    /// `u64`.
    U64(u64),
    /// `i64`.
    I64(i64),
    /// `f64`.
    F64(f64),
}

impl<'a> MetadataValue<'a> {
    pub(crate) fn from_raw(bytes: &'a [u8], raw: &'a RawValue) -> Self {
        match raw {
            RawValue::U8(v) => Self::U8(*v),
            RawValue::I8(v) => Self::I8(*v),
            RawValue::U16(v) => Self::U16(*v),
            RawValue::I16(v) => Self::I16(*v),
            RawValue::U32(v) => Self::U32(*v),
            RawValue::I32(v) => Self::I32(*v),
            RawValue::F32(v) => Self::F32(*v),
            RawValue::Bool(v) => Self::Bool(*v),
            RawValue::String(range) => Self::String(str_at(bytes, range)),
            RawValue::Array(array) => Self::Array(MetadataArray { bytes, raw: array }),
            RawValue::U64(v) => Self::U64(*v),
            RawValue::I64(v) => Self::I64(*v),
            RawValue::F64(v) => Self::F64(*v),
        }
    }

    /// The stored type of this value.
    #[must_use]
    pub fn value_type(&self) -> ValueType {
        match self {
            Self::U8(_) => ValueType::U8,
            Self::I8(_) => ValueType::I8,
            Self::U16(_) => ValueType::U16,
            Self::I16(_) => ValueType::I16,
            Self::U32(_) => ValueType::U32,
            Self::I32(_) => ValueType::I32,
            Self::F32(_) => ValueType::F32,
            Self::Bool(_) => ValueType::Bool,
            Self::String(_) => ValueType::String,
            Self::Array(_) => ValueType::Array,
            Self::U64(_) => ValueType::U64,
            Self::I64(_) => ValueType::I64,
            Self::F64(_) => ValueType::F64,
        }
    }

    /// The value as a string, if it is one.
    #[must_use]
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an array, if it is one.
    #[must_use]
    pub fn as_array(&self) -> Option<MetadataArray<'a>> {
        match self {
            Self::Array(a) => Some(*a),
            _ => None,
        }
    }

    /// The value as a boolean, if it is one.
    #[must_use]
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Any integer type whose value is non-negative, widened to `u64`.
    #[must_use]
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::U8(v) => Some(v.into()),
            Self::U16(v) => Some(v.into()),
            Self::U32(v) => Some(v.into()),
            Self::U64(v) => Some(v),
            Self::I8(v) => u64::try_from(v).ok(),
            Self::I16(v) => u64::try_from(v).ok(),
            Self::I32(v) => u64::try_from(v).ok(),
            Self::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer type, widened to `i64` when it fits.
    #[must_use]
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Self::U8(v) => Some(v.into()),
            Self::U16(v) => Some(v.into()),
            Self::U32(v) => Some(v.into()),
            Self::U64(v) => i64::try_from(v).ok(),
            Self::I8(v) => Some(v.into()),
            Self::I16(v) => Some(v.into()),
            Self::I32(v) => Some(v.into()),
            Self::I64(v) => Some(v),
            _ => None,
        }
    }

    /// Either float type, as `f64`.
    #[must_use]
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::F32(v) => Some(v.into()),
            Self::F64(v) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Debug for MetadataValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::U8(v) => write!(f, "{v}u8"),
            Self::I8(v) => write!(f, "{v}i8"),
            Self::U16(v) => write!(f, "{v}u16"),
            Self::I16(v) => write!(f, "{v}i16"),
            Self::U32(v) => write!(f, "{v}u32"),
            Self::I32(v) => write!(f, "{v}i32"),
            Self::F32(v) => write!(f, "{v}f32"),
            Self::Bool(v) => write!(f, "{v}"),
            Self::String(v) => write!(f, "{v:?}"),
            Self::Array(a) => a.fmt(f),
            Self::U64(v) => write!(f, "{v}u64"),
            Self::I64(v) => write!(f, "{v}i64"),
            Self::F64(v) => write!(f, "{v}f64"),
        }
    }
}

/// A borrowed view of a metadata array.
#[derive(Clone, Copy)]
pub struct MetadataArray<'a> {
    bytes: &'a [u8],
    raw: &'a RawArray,
}

impl<'a> MetadataArray<'a> {
    /// The type of every element.
    #[must_use]
    pub fn elem_type(&self) -> ValueType {
        self.raw.elem
    }

    /// Number of elements.
    #[must_use]
    pub fn len(&self) -> usize {
        self.raw.len
    }

    /// Whether the array has no elements.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.raw.len == 0
    }

    /// The element at `index`, or `None` past the end.
    #[must_use]
    pub fn get(&self, index: usize) -> Option<MetadataValue<'a>> {
        if index >= self.raw.len {
            return None;
        }
        match &self.raw.items {
            RawItems::Fixed { start } => {
                let size = self.raw.elem.fixed_size()?;
                let at = start.checked_add(index.checked_mul(size)?)?;
                let b = self.bytes.get(at..at.checked_add(size)?)?;
                fixed_value(self.raw.elem, b)
            }
            RawItems::Strings(ranges) => Some(MetadataValue::String(str_at(
                self.bytes,
                ranges.get(index)?,
            ))),
            RawItems::Arrays(arrays) => Some(MetadataValue::Array(MetadataArray {
                bytes: self.bytes,
                raw: arrays.get(index)?,
            })),
        }
    }

    /// Iterates over the elements.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = MetadataValue<'a>> + 'a {
        let this = *self;
        // `get` cannot fail for in-range indexes: the parser checked every element.
        (0..self.raw.len).map(move |i| this.get(i).unwrap_or(MetadataValue::Bool(false)))
    }

    /// The elements as strings, if this is an array of strings.
    #[must_use]
    pub fn as_strs(&self) -> Option<impl ExactSizeIterator<Item = &'a str> + 'a> {
        match &self.raw.items {
            RawItems::Strings(ranges) => {
                let bytes = self.bytes;
                Some(ranges.iter().map(move |r| str_at(bytes, r)))
            }
            _ => None,
        }
    }

    /// The elements as `i64`, if this is an array of any integer type
    /// (`u64` elements above `i64::MAX` make this `None`).
    #[must_use]
    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        match self.raw.elem {
            ValueType::U8
            | ValueType::I8
            | ValueType::U16
            | ValueType::I16
            | ValueType::U32
            | ValueType::I32
            | ValueType::U64
            | ValueType::I64 => self.iter().map(|v| v.as_i64()).collect(),
            _ => None,
        }
    }

    /// The elements as `f64`, if this is an array of `f32` or `f64`.
    #[must_use]
    pub fn to_f64_vec(&self) -> Option<Vec<f64>> {
        match self.raw.elem {
            ValueType::F32 | ValueType::F64 => self.iter().map(|v| v.as_f64()).collect(),
            _ => None,
        }
    }
}

impl fmt::Debug for MetadataArray<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 8;
        write!(f, "[{}; {}] ", self.raw.elem, self.raw.len)?;
        let mut list = f.debug_list();
        list.entries(self.iter().take(SHOWN));
        if self.raw.len > SHOWN {
            list.entry(&format_args!("…"));
        }
        list.finish()
    }
}

/// Decodes one fixed-size little-endian value; `None` if `b` has the wrong length.
pub(crate) fn fixed_value<'a>(ty: ValueType, b: &[u8]) -> Option<MetadataValue<'a>> {
    Some(match ty {
        ValueType::U8 => MetadataValue::U8(*b.first()?),
        ValueType::I8 => MetadataValue::I8(i8::from_le_bytes(b.try_into().ok()?)),
        ValueType::Bool => MetadataValue::Bool(*b.first()? != 0),
        ValueType::U16 => MetadataValue::U16(u16::from_le_bytes(b.try_into().ok()?)),
        ValueType::I16 => MetadataValue::I16(i16::from_le_bytes(b.try_into().ok()?)),
        ValueType::U32 => MetadataValue::U32(u32::from_le_bytes(b.try_into().ok()?)),
        ValueType::I32 => MetadataValue::I32(i32::from_le_bytes(b.try_into().ok()?)),
        ValueType::F32 => MetadataValue::F32(f32::from_le_bytes(b.try_into().ok()?)),
        ValueType::U64 => MetadataValue::U64(u64::from_le_bytes(b.try_into().ok()?)),
        ValueType::I64 => MetadataValue::I64(i64::from_le_bytes(b.try_into().ok()?)),
        ValueType::F64 => MetadataValue::F64(f64::from_le_bytes(b.try_into().ok()?)),
        ValueType::String | ValueType::Array => return None,
    })
}

/// The text at a range the parser already validated as UTF-8.
fn str_at<'a>(bytes: &'a [u8], range: &Range<usize>) -> &'a str {
    bytes
        .get(range.clone())
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or("")
}

//! The GGUF parser: turns file bytes into a validated index of metadata and
//! tensors, without copying strings, arrays or tensor data.
//!
//! Every count read from the file is checked against the bytes that remain
//! before anything is allocated for it, and every offset is computed with
//! checked arithmetic, so a corrupt or hostile file yields a [`GgufError`]
//! rather than a panic or an out-of-memory abort.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use crate::error::{GgufError, Result};
use crate::tensor::{GgmlType, TensorInfo, TensorView};
use crate::value::{MetadataArray, MetadataValue, RawArray, RawItems, RawValue, ValueType};

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";

/// Alignment of tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// The metadata key that overrides [`DEFAULT_ALIGNMENT`].
pub const ALIGNMENT_KEY: &str = "general.alignment";

/// Most dimensions a GGML tensor can have.
pub const MAX_DIMS: usize = 4;

/// Deepest nesting of metadata arrays accepted (bounds recursion).
pub const MAX_ARRAY_NESTING: usize = 16;

/// Smallest possible encoding of one key/value pair: key length, type, one byte.
const MIN_KV_BYTES: usize = 8 + 4 + 1;
/// Smallest possible tensor table entry: name length, n_dims, type, offset.
const MIN_TENSOR_INFO_BYTES: usize = 8 + 4 + 4 + 8;

/// A parsed GGUF file over some byte storage `B`: a `Vec<u8>` read from disk,
/// a borrowed `&[u8]`, or any memory map that derefs to bytes.
///
/// Parsing validates the whole layout up front, so every accessor afterwards
/// is infallible apart from lookups of absent or mistyped entries.
pub struct Gguf<B = Vec<u8>> {
    bytes: B,
    layout: Layout,
}

/// Everything the parser learned, as positions into the bytes.
struct Layout {
    version: u32,
    alignment: u64,
    data_start: usize,
    metadata: Vec<(String, RawValue)>,
    key_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
}

/// Reads a GGUF file from disk into memory and parses it.
///
/// # Errors
/// [`GgufError::Io`] if the file cannot be read, or any parse error.
pub fn open(path: impl AsRef<Path>) -> Result<Gguf<Vec<u8>>> {
    Gguf::open(path)
}

impl Gguf<Vec<u8>> {
    /// Reads a GGUF file from disk into memory and parses it.
    ///
    /// # Errors
    /// [`GgufError::Io`] if the file cannot be read, or any parse error.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(bytes)
    }
}

impl<B: AsRef<[u8]>> Gguf<B> {
    /// Parses and validates a whole GGUF file held in `bytes`.
    ///
    /// # Errors
    /// A [`GgufError`] describing the first problem found.
    pub fn parse(bytes: B) -> Result<Self> {
        let layout = Parser::new(bytes.as_ref()).parse()?;
        Ok(Self { bytes, layout })
    }

    /// The format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.layout.version
    }

    /// Alignment of tensor data in bytes.
    pub fn alignment(&self) -> u64 {
        self.layout.alignment
    }

    /// File offset where the tensor data section starts.
    pub fn data_offset(&self) -> u64 {
        self.layout.data_start as u64
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }

    /// Gives back the storage.
    pub fn into_inner(self) -> B {
        self.bytes
    }

    /// Number of metadata entries.
    pub fn metadata_len(&self) -> usize {
        self.layout.metadata.len()
    }

    /// All metadata entries in file order.
    pub fn metadata(&self) -> impl ExactSizeIterator<Item = (&str, MetadataValue<'_>)> {
        let bytes = self.bytes.as_ref();
        self.layout
            .metadata
            .iter()
            .map(move |(k, v)| (k.as_str(), MetadataValue::from_raw(bytes, v)))
    }

    /// Whether a metadata key is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.layout.key_index.contains_key(key)
    }

    /// The value of a metadata key, if present.
    pub fn get(&self, key: &str) -> Option<MetadataValue<'_>> {
        let index = *self.layout.key_index.get(key)?;
        let (_, raw) = self.layout.metadata.get(index)?;
        Some(MetadataValue::from_raw(self.bytes.as_ref(), raw))
    }

    /// The value of a metadata key that must be present.
    ///
    /// # Errors
    /// [`GgufError::MissingKey`].
    pub fn require(&self, key: &str) -> Result<MetadataValue<'_>> {
        self.get(key)
            .ok_or_else(|| GgufError::MissingKey(key.to_owned()))
    }

    /// A string value.
    ///
    /// # Errors
    /// [`GgufError::MissingKey`] or [`GgufError::WrongValueType`].
    pub fn get_str(&self, key: &str) -> Result<&str> {
        let value = self.require(key)?;
        value.as_str().ok_or_else(|| wrong(key, "string", &value))
    }

    /// A `u32` value (exactly that type).
    ///
    /// # Errors
    /// [`GgufError::MissingKey`] or [`GgufError::WrongValueType`].
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        match self.require(key)? {
            MetadataValue::U32(v) => Ok(v),
            other => Err(wrong(key, "u32", &other)),
        }
    }

    /// Any non-negative integer value, widened to `u64`.
    ///
    /// # Errors
    /// [`GgufError::MissingKey`] or [`GgufError::WrongValueType`] (also for negative values).
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        let value = self.require(key)?;
        value
            .as_u64()
            .ok_or_else(|| wrong(key, "non-negative integer", &value))
    }

    /// An `f32` value (exactly that type).
    ///
    /// # Errors
    /// [`GgufError::MissingKey`] or [`GgufError::WrongValueType`].
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        match self.require(key)? {
            MetadataValue::F32(v) => Ok(v),
            other => Err(wrong(key, "f32", &other)),
        }
    }

    /// A boolean value.
    ///
    /// # Errors
    /// [`GgufError::MissingKey`] or [`GgufError::WrongValueType`].
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        let value = self.require(key)?;
        value.as_bool().ok_or_else(|| wrong(key, "bool", &value))
    }

    /// An array value.
    ///
    /// # Errors
    /// [`GgufError::MissingKey`] or [`GgufError::WrongValueType`].
    pub fn get_array(&self, key: &str) -> Result<MetadataArray<'_>> {
        let value = self.require(key)?;
        value.as_array().ok_or_else(|| wrong(key, "array", &value))
    }

    /// An array of strings, collected.
    ///
    /// # Errors
    /// [`GgufError::MissingKey`] or [`GgufError::WrongValueType`].
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>> {
        let array = self.get_array(key)?;
        match array.as_strs() {
            Some(strs) => Ok(strs.collect()),
            None => Err(GgufError::WrongValueType {
                key: key.to_owned(),
                expected: "array of strings",
                found: array.elem_type(),
            }),
        }
    }

    /// The tensor table in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.layout.tensors
    }

    /// A tensor's description and bytes, if a tensor of that name exists.
    pub fn tensor(&self, name: &str) -> Option<TensorView<'_>> {
        let index = *self.layout.tensor_index.get(name)?;
        let info = self.layout.tensors.get(index)?;
        Some(TensorView::new(info, self.tensor_bytes(info)))
    }

    /// A tensor that must exist.
    ///
    /// # Errors
    /// [`GgufError::MissingTensor`].
    pub fn require_tensor(&self, name: &str) -> Result<TensorView<'_>> {
        self.tensor(name)
            .ok_or_else(|| GgufError::MissingTensor(name.to_owned()))
    }

    /// Views of all tensors in file order.
    pub fn tensor_views(&self) -> impl ExactSizeIterator<Item = TensorView<'_>> {
        self.layout
            .tensors
            .iter()
            .map(|info| TensorView::new(info, self.tensor_bytes(info)))
    }

    fn tensor_bytes(&self, info: &TensorInfo) -> &[u8] {
        // Bounds were validated at parse time; the fallback is unreachable.
        let start = self.layout.data_start as u64 + info.offset;
        let (Ok(start), Ok(size)) = (usize::try_from(start), usize::try_from(info.size)) else {
            return &[];
        };
        self.bytes
            .as_ref()
            .get(start..start.saturating_add(size))
            .unwrap_or(&[])
    }
}

impl<B> std::fmt::Debug for Gguf<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gguf")
            .field("version", &self.layout.version)
            .field("alignment", &self.layout.alignment)
            .field("metadata", &self.layout.metadata.len())
            .field("tensors", &self.layout.tensors.len())
            .finish_non_exhaustive()
    }
}

fn wrong(key: &str, expected: &'static str, found: &MetadataValue<'_>) -> GgufError {
    GgufError::WrongValueType {
        key: key.to_owned(),
        expected,
        found: found.value_type(),
    }
}

/// A read position over the file bytes with bounds-checked reads.
struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        let slice = self
            .pos
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.pos..end))
            .ok_or(GgufError::Truncated {
                offset: self.pos as u64,
                what,
                needed: n as u64,
                available: self.remaining() as u64,
            })?;
        self.pos += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let slice = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &'static str) -> Result<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// Reads a `u64` count of items each taking at least `min_item_bytes`,
    /// rejecting counts the rest of the file cannot hold.
    fn count(&mut self, what: &'static str, min_item_bytes: usize) -> Result<usize> {
        let offset = self.pos as u64;
        let count = self.u64(what)?;
        let available = self.remaining();
        let fits = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(min_item_bytes))
            .is_some_and(|bytes| bytes <= available);
        if !fits {
            return Err(GgufError::CountTooLarge {
                what,
                count,
                offset,
                available: available as u64,
            });
        }
        // `fits` implies the conversion succeeds.
        usize::try_from(count).map_err(|_| GgufError::CountTooLarge {
            what,
            count,
            offset,
            available: available as u64,
        })
    }

    /// Reads a length-prefixed UTF-8 string and returns where its text is.
    fn string(&mut self, what: &'static str) -> Result<Range<usize>> {
        let len = self.count(what, 1)?;
        let start = self.pos;
        let text = self.take(len, what)?;
        if std::str::from_utf8(text).is_err() {
            return Err(GgufError::InvalidUtf8 {
                offset: start as u64,
            });
        }
        Ok(start..start + len)
    }

    fn owned_string(&mut self, what: &'static str) -> Result<String> {
        let range = self.string(what)?;
        let text = self.bytes.get(range.clone()).unwrap_or_default();
        String::from_utf8(text.to_vec()).map_err(|_| GgufError::InvalidUtf8 {
            offset: range.start as u64,
        })
    }

    fn value_type(&mut self) -> Result<ValueType> {
        let offset = self.pos as u64;
        let code = self.u32("value type")?;
        ValueType::from_code(code).ok_or(GgufError::UnknownValueType { code, offset })
    }

    fn bool(&mut self) -> Result<bool> {
        let offset = self.pos as u64;
        let [value] = self.array::<1>("bool")?;
        match value {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(GgufError::InvalidBool { offset, value }),
        }
    }

    fn value(&mut self, ty: ValueType, depth: usize) -> Result<RawValue> {
        Ok(match ty {
            ValueType::U8 => RawValue::U8(u8::from_le_bytes(self.array("u8")?)),
            ValueType::I8 => RawValue::I8(i8::from_le_bytes(self.array("i8")?)),
            ValueType::U16 => RawValue::U16(u16::from_le_bytes(self.array("u16")?)),
            ValueType::I16 => RawValue::I16(i16::from_le_bytes(self.array("i16")?)),
            ValueType::U32 => RawValue::U32(u32::from_le_bytes(self.array("u32")?)),
            ValueType::I32 => RawValue::I32(i32::from_le_bytes(self.array("i32")?)),
            ValueType::F32 => RawValue::F32(f32::from_le_bytes(self.array("f32")?)),
            ValueType::U64 => RawValue::U64(u64::from_le_bytes(self.array("u64")?)),
            ValueType::I64 => RawValue::I64(i64::from_le_bytes(self.array("i64")?)),
            ValueType::F64 => RawValue::F64(f64::from_le_bytes(self.array("f64")?)),
            ValueType::Bool => RawValue::Bool(self.bool()?),
            ValueType::String => RawValue::String(self.string("string value")?),
            ValueType::Array => RawValue::Array(self.array_value(depth)?),
        })
    }

    fn array_value(&mut self, depth: usize) -> Result<RawArray> {
        let offset = self.pos as u64;
        if depth >= MAX_ARRAY_NESTING {
            return Err(GgufError::NestingTooDeep {
                max: MAX_ARRAY_NESTING,
                offset,
            });
        }
        let elem = self.value_type()?;
        let len = self.count("array length", elem.min_encoded_size())?;
        let items = match elem {
            ValueType::String => {
                let mut ranges = Vec::with_capacity(len);
                for _ in 0..len {
                    ranges.push(self.string("array string")?);
                }
                RawItems::Strings(ranges)
            }
            ValueType::Array => {
                let mut arrays = Vec::with_capacity(len);
                for _ in 0..len {
                    arrays.push(self.array_value(depth + 1)?);
                }
                RawItems::Arrays(arrays)
            }
            fixed => {
                let size = fixed.fixed_size().unwrap_or(1);
                let start = self.pos;
                // `count` guaranteed len * size fits in the remaining bytes.
                let data = self.take(len * size, "array elements")?;
                if fixed == ValueType::Bool
                    && let Some(i) = data.iter().position(|&b| b > 1)
                {
                    return Err(GgufError::InvalidBool {
                        offset: (start + i) as u64,
                        value: data.get(i).copied().unwrap_or_default(),
                    });
                }
                RawItems::Fixed { start }
            }
        };
        Ok(RawArray { elem, len, items })
    }

    fn header(&mut self) -> Result<u32> {
        let head = self.bytes.get(..4).unwrap_or(self.bytes);
        if head != &GGUF_MAGIC[..head.len()] {
            return Err(GgufError::BadMagic {
                found: head.to_vec(),
            });
        }
        self.take(4, "magic")?;
        let version = self.u32("version")?;
        match version {
            2 | 3 => Ok(version),
            // A big-endian file stores the small version number byte-swapped.
            v if (1..=3).contains(&v.swap_bytes()) => Err(GgufError::BigEndian(v.swap_bytes())),
            v => Err(GgufError::UnsupportedVersion(v)),
        }
    }

    fn parse(mut self) -> Result<Layout> {
        let version = self.header()?;
        let tensor_count = self.count("tensor count", MIN_TENSOR_INFO_BYTES)?;
        let kv_count = self.count("metadata count", MIN_KV_BYTES)?;

        let mut metadata = Vec::with_capacity(kv_count);
        let mut key_index = HashMap::with_capacity(kv_count);
        for _ in 0..kv_count {
            let key = self.owned_string("metadata key")?;
            let ty = self.value_type()?;
            let value = self.value(ty, 0)?;
            if key_index.contains_key(&key) {
                return Err(GgufError::DuplicateKey(key));
            }
            key_index.insert(key.clone(), metadata.len());
            metadata.push((key, value));
        }

        let alignment = match key_index.get(ALIGNMENT_KEY).and_then(|&i| metadata.get(i)) {
            None => DEFAULT_ALIGNMENT,
            Some((_, RawValue::U32(a))) => u64::from(*a),
            Some((key, other)) => {
                return Err(GgufError::WrongValueType {
                    key: key.clone(),
                    expected: "u32",
                    found: MetadataValue::from_raw(self.bytes, other).value_type(),
                });
            }
        };
        if !alignment.is_power_of_two() {
            return Err(GgufError::InvalidAlignment(alignment));
        }

        let mut tensors = Vec::with_capacity(tensor_count);
        let mut tensor_index = HashMap::with_capacity(tensor_count);
        for _ in 0..tensor_count {
            let info = self.tensor_info()?;
            if tensor_index.contains_key(&info.name) {
                return Err(GgufError::DuplicateTensor(info.name));
            }
            tensor_index.insert(info.name.clone(), tensors.len());
            tensors.push(info);
        }

        let file_len = self.bytes.len() as u64;
        let data_start = (self.pos as u64)
            .checked_next_multiple_of(alignment)
            .ok_or(GgufError::InvalidAlignment(alignment))?;
        let data_len = if data_start <= file_len {
            file_len - data_start
        } else if tensors.is_empty() {
            // A file without tensors may end right after its metadata.
            0
        } else {
            return Err(GgufError::MissingDataSection {
                start: data_start,
                len: file_len,
            });
        };
        check_tensor_placement(&tensors, alignment, data_len)?;

        Ok(Layout {
            version,
            alignment,
            data_start: usize::try_from(data_start.min(file_len)).unwrap_or(self.bytes.len()),
            metadata,
            key_index,
            tensors,
            tensor_index,
        })
    }

    fn tensor_info(&mut self) -> Result<TensorInfo> {
        let name = self.owned_string("tensor name")?;
        let n_dims = self.u32("tensor dimension count")?;
        if n_dims as usize > MAX_DIMS {
            return Err(GgufError::TooManyDimensions {
                tensor: name,
                n_dims,
                max: MAX_DIMS,
            });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(self.u64("tensor dimension")?);
        }
        let code = self.u32("tensor type")?;
        let ty = GgmlType::from_code(code).ok_or_else(|| GgufError::UnknownTensorType {
            tensor: name.clone(),
            code,
        })?;
        let offset = self.u64("tensor offset")?;

        let shape_error = |reason| GgufError::InvalidShape {
            tensor: name.clone(),
            dims: dims.clone(),
            reason,
        };
        let elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| i64::try_from(n).is_ok())
            .ok_or_else(|| shape_error("element count overflows"))?;
        let row_len = dims.first().copied().unwrap_or(1);
        if row_len % ty.block_len() as u64 != 0 {
            return Err(shape_error(
                "row length is not a multiple of the block length",
            ));
        }
        let size = ty
            .bytes_for(elements)
            .ok_or_else(|| shape_error("byte size overflows"))?;
        Ok(TensorInfo {
            name,
            dims,
            ty,
            offset,
            size,
        })
    }
}

/// Checks alignment, bounds and non-overlap of every tensor's data.
fn check_tensor_placement(tensors: &[TensorInfo], alignment: u64, data_len: u64) -> Result<()> {
    for t in tensors {
        if t.offset % alignment != 0 {
            return Err(GgufError::MisalignedTensor {
                tensor: t.name.clone(),
                offset: t.offset,
                alignment,
            });
        }
        let end = t.offset.checked_add(t.size);
        if end.is_none_or(|end| end > data_len) {
            return Err(GgufError::TensorOutOfBounds {
                tensor: t.name.clone(),
                offset: t.offset,
                size: t.size,
                available: data_len,
            });
        }
    }
    let mut order: Vec<&TensorInfo> = tensors.iter().filter(|t| t.size > 0).collect();
    order.sort_by_key(|t| t.offset);
    let mut furthest: Option<&TensorInfo> = None;
    for t in order {
        if let Some(prev) = furthest
            && t.offset < prev.offset + prev.size
        {
            return Err(GgufError::OverlappingTensors {
                first: prev.name.clone(),
                second: t.name.clone(),
            });
        }
        if furthest.is_none_or(|p| t.offset + t.size > p.offset + p.size) {
            furthest = Some(t);
        }
    }
    Ok(())
}

//! Writes GGUF v3 files: metadata and tensors laid out as the reader expects. Used to build
//! small synthetic models for tests, and to re-pack models.

use crate::error::{GgufError, Result};
use crate::reader::{DEFAULT_ALIGNMENT, GGUF_MAGIC};
use crate::tensor::GgmlType;
use crate::value::ValueType;

/// A metadata value to write.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WriteValue {
    /// `uint32`.
    U32(u32),
    /// `int32`.
    I32(i32),
    /// `uint64`.
    U64(u64),
    /// `float32`.
    F32(f32),
    /// `bool`.
    Bool(bool),
    /// `string`.
    Str(String),
    /// An array of strings.
    StrArray(Vec<String>),
    /// An array of `int32`.
    I32Array(Vec<i32>),
    /// An array of `float32`.
    F32Array(Vec<f32>),
}

/// A GGUF file under construction: call [`GgufWriter::metadata`] and
/// [`GgufWriter::tensor`], then [`GgufWriter::finish`].
#[derive(Debug, Clone, Default)]
pub struct GgufWriter {
    metadata: Vec<(String, WriteValue)>,
    tensors: Vec<(String, GgmlType, Vec<u64>, Vec<u8>)>,
}

impl GgufWriter {
    /// An empty file.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a metadata key.
    pub fn metadata(&mut self, key: impl Into<String>, value: WriteValue) -> &mut Self {
        self.metadata.push((key.into(), value));
        self
    }

    /// Adds a tensor with GGUF dims (fastest-varying first) and its encoded bytes.
    ///
    /// # Errors
    /// [`GgufError::LengthMismatch`] if `data` is not the size `ty` and `dims` call for.
    pub fn tensor(
        &mut self,
        name: impl Into<String>,
        ty: GgmlType,
        dims: &[u64],
        data: Vec<u8>,
    ) -> Result<&mut Self> {
        let elements = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let expected = elements.and_then(|n| ty.bytes_for(n));
        let expected = expected.and_then(|n| usize::try_from(n).ok());
        if expected != Some(data.len()) {
            return Err(GgufError::LengthMismatch {
                what: "tensor data for its type and dims",
                expected: expected.unwrap_or(0),
                actual: data.len(),
            });
        }
        self.tensors.push((name.into(), ty, dims.to_vec(), data));
        Ok(self)
    }

    /// Adds an `f32` tensor.
    ///
    /// # Errors
    /// As [`GgufWriter::tensor`].
    pub fn tensor_f32(
        &mut self,
        name: impl Into<String>,
        dims: &[u64],
        values: &[f32],
    ) -> Result<&mut Self> {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, GgmlType::F32, dims, data)
    }

    /// The file's bytes (alignment 32).
    #[must_use]
    pub fn finish(&self) -> Vec<u8> {
        let align = DEFAULT_ALIGNMENT as usize;
        let mut out = Vec::new();
        out.extend_from_slice(&GGUF_MAGIC);
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            put_str(&mut out, key);
            put_value(&mut out, value);
        }
        let mut offset = 0usize;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for (name, ty, dims, data) in &self.tensors {
            put_str(&mut out, name);
            out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&ty.code().to_le_bytes());
            out.extend_from_slice(&(offset as u64).to_le_bytes());
            offsets.push(offset);
            offset = (offset + data.len()).next_multiple_of(align);
        }
        out.resize(out.len().next_multiple_of(align), 0);
        let base = out.len();
        for ((_, _, _, data), at) in self.tensors.iter().zip(offsets) {
            out.resize(base + at, 0);
            out.extend_from_slice(data);
        }
        out
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_type(out: &mut Vec<u8>, ty: ValueType) {
    out.extend_from_slice(&ty.code().to_le_bytes());
}

fn put_value(out: &mut Vec<u8>, value: &WriteValue) {
    match value {
        WriteValue::U32(v) => {
            put_type(out, ValueType::U32);
            out.extend_from_slice(&v.to_le_bytes());
        }
        WriteValue::I32(v) => {
            put_type(out, ValueType::I32);
            out.extend_from_slice(&v.to_le_bytes());
        }
        WriteValue::U64(v) => {
            put_type(out, ValueType::U64);
            out.extend_from_slice(&v.to_le_bytes());
        }
        WriteValue::F32(v) => {
            put_type(out, ValueType::F32);
            out.extend_from_slice(&v.to_le_bytes());
        }
        WriteValue::Bool(v) => {
            put_type(out, ValueType::Bool);
            out.push(u8::from(*v));
        }
        WriteValue::Str(s) => {
            put_type(out, ValueType::String);
            put_str(out, s);
        }
        WriteValue::StrArray(items) => {
            put_type(out, ValueType::Array);
            put_type(out, ValueType::String);
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for s in items {
                put_str(out, s);
            }
        }
        WriteValue::I32Array(items) => {
            put_type(out, ValueType::Array);
            put_type(out, ValueType::I32);
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for v in items {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        WriteValue::F32Array(items) => {
            put_type(out, ValueType::Array);
            put_type(out, ValueType::F32);
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for v in items {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::Gguf;

    #[test]
    fn written_file_reads_back() {
        let mut w = GgufWriter::new();
        w.metadata("general.architecture", WriteValue::Str("qwen2".into()))
            .metadata("qwen2.block_count", WriteValue::U32(2))
            .metadata("qwen2.rope.freq_base", WriteValue::F32(1e6))
            .metadata("flag", WriteValue::Bool(true))
            .metadata("big", WriteValue::U64(1 << 40))
            .metadata("neg", WriteValue::I32(-4))
            .metadata(
                "tokens",
                WriteValue::StrArray(vec!["a".into(), "<b>".into()]),
            )
            .metadata("types", WriteValue::I32Array(vec![1, 3]))
            .metadata("scores", WriteValue::F32Array(vec![0.5, -1.0]));
        w.tensor_f32("a", &[3], &[1.0, 2.0, 3.0]).unwrap();
        w.tensor("b", GgmlType::Q8_0, &[32, 2], vec![0; 68])
            .unwrap();
        assert!(w.tensor("c", GgmlType::Q8_0, &[32], vec![0; 33]).is_err());
        let g = Gguf::parse(w.finish()).unwrap();
        assert_eq!(g.get_str("general.architecture").unwrap(), "qwen2");
        assert_eq!(g.get_u64("qwen2.block_count").unwrap(), 2);
        assert_eq!(g.get_f32("qwen2.rope.freq_base").unwrap(), 1e6);
        assert!(g.get_bool("flag").unwrap());
        assert_eq!(g.get_u64("big").unwrap(), 1 << 40);
        assert_eq!(g.get_str_array("tokens").unwrap(), vec!["a", "<b>"]);
        assert_eq!(
            g.get_array("types").unwrap().to_i64_vec().unwrap(),
            vec![1, 3]
        );
        assert_eq!(
            g.tensor("a").unwrap().to_f32_vec().unwrap(),
            [1.0, 2.0, 3.0]
        );
        let b = g.tensor("b").unwrap();
        assert_eq!(b.dims(), &[32, 2]);
        assert_eq!(b.data().len(), 68);
    }
}

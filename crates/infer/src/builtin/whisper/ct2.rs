//! A reader of CTranslate2's `model.bin`: the format the Whisper weights we ship come in.
//!
//! The file is a little-endian sequence: a format version (u32), the spec's name (u16 length
//! with its trailing NUL, then the bytes), a spec revision (u32), the variables (a count, then
//! for each a name, a rank (u8), the dimensions (u32 each), a type id (u8), a byte count (u32)
//! and the data) and aliases (a count, then pairs of names). Parsing is sans-IO over the
//! file's bytes; every length is checked against what remains, so bad input is a
//! [`WhisperError::Format`], never a panic or an allocation larger than the input.

use std::collections::HashMap;

use cocoon_gguf::quant::{bf16_to_f32, f16_to_f32};

use super::error::WhisperError;

/// The element type of a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 8-bit integer (flags, or quantized weights with a separate scale).
    I8,
    /// 16-bit integer.
    I16,
    /// 32-bit integer.
    I32,
    /// IEEE half float.
    F16,
    /// bfloat16.
    BF16,
}

impl DType {
    fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::I8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::F16,
            5 => Self::BF16,
            _ => return None,
        })
    }

    fn width(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::I16 | Self::F16 | Self::BF16 => 2,
            Self::F32 | Self::I32 => 4,
        }
    }
}

/// One variable: its shape, type and raw little-endian bytes.
#[derive(Debug, Clone)]
pub struct Variable<'a> {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
    /// The elements' bytes.
    pub data: &'a [u8],
}

impl Variable<'_> {
    /// The elements as f32 (float types converted, integers cast).
    pub fn to_f32(&self) -> Vec<f32> {
        let w = self.dtype.width();
        self.data
            .chunks_exact(w)
            .map(|b| match self.dtype {
                DType::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                DType::F16 => f16_to_f32(u16::from_le_bytes([b[0], b[1]])),
                DType::BF16 => bf16_to_f32(u16::from_le_bytes([b[0], b[1]])),
                DType::I8 => f32::from(b[0] as i8),
                DType::I16 => f32::from(i16::from_le_bytes([b[0], b[1]])),
                DType::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
            })
            .collect()
    }

    /// A scalar integer variable's value.
    pub fn scalar_int(&self) -> Option<i64> {
        if self.shape.iter().product::<usize>() != 1 {
            return None;
        }
        Some(match self.dtype {
            DType::I8 => i64::from(*self.data.first()? as i8),
            DType::I16 => i64::from(i16::from_le_bytes(self.data.get(..2)?.try_into().ok()?)),
            DType::I32 => i64::from(i32::from_le_bytes(self.data.get(..4)?.try_into().ok()?)),
            _ => return None,
        })
    }
}

/// A parsed `model.bin`.
#[derive(Debug)]
pub struct Ct2Model<'a> {
    /// The spec's name (`WhisperSpec` for Whisper).
    pub spec: String,
    /// The spec's revision.
    pub revision: u32,
    variables: HashMap<String, Variable<'a>>,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

fn short(what: &str) -> WhisperError {
    WhisperError::Format(format!("file ends inside {what}"))
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], WhisperError> {
        let end = self.at.checked_add(n).ok_or_else(|| short(what))?;
        let out = self.bytes.get(self.at..end).ok_or_else(|| short(what))?;
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8, WhisperError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, WhisperError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, WhisperError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, what: &str) -> Result<String, WhisperError> {
        let len = usize::from(self.u16(what)?);
        let b = self.take(len, what)?;
        let b = b.strip_suffix(&[0]).unwrap_or(b);
        String::from_utf8(b.to_vec())
            .map_err(|_| WhisperError::Format(format!("{what} is not UTF-8")))
    }
}

/// The format versions this reader understands.
const VERSIONS: std::ops::RangeInclusive<u32> = 5..=6;

impl<'a> Ct2Model<'a> {
    /// Parses the file's bytes.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WhisperError> {
        let mut c = Cursor { bytes, at: 0 };
        let version = c.u32("the header")?;
        if !VERSIONS.contains(&version) {
            return Err(WhisperError::Format(format!(
                "CTranslate2 format version {version} (read: {VERSIONS:?})"
            )));
        }
        let spec = c.string("the spec name")?;
        let revision = c.u32("the header")?;
        let count = c.u32("the variable count")?;
        let mut variables = HashMap::new();
        for _ in 0..count {
            let name = c.string("a variable name")?;
            let rank = c.u8("a variable header")?;
            let mut shape = Vec::with_capacity(usize::from(rank));
            for _ in 0..rank {
                shape.push(c.u32("a variable shape")? as usize);
            }
            let id = c.u8("a variable header")?;
            let dtype = DType::from_id(id)
                .ok_or_else(|| WhisperError::Format(format!("{name}: type id {id}")))?;
            let len = c.u32("a variable header")? as usize;
            let elements = shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .and_then(|n| n.checked_mul(dtype.width()));
            if elements != Some(len) {
                return Err(WhisperError::Format(format!(
                    "{name}: {len} bytes for shape {shape:?} of {dtype:?}"
                )));
            }
            let data = c.take(len, "variable data")?;
            variables.insert(name, Variable { shape, dtype, data });
        }
        let aliases = c.u32("the alias count")?;
        for _ in 0..aliases {
            let alias = c.string("an alias")?;
            let target = c.string("an alias")?;
            let v = variables
                .get(&target)
                .ok_or_else(|| WhisperError::Format(format!("alias {alias} of unknown {target}")))?
                .clone();
            variables.insert(alias, v);
        }
        Ok(Self {
            spec,
            revision,
            variables,
        })
    }

    /// A variable by name.
    pub fn get(&self, name: &str) -> Result<&Variable<'a>, WhisperError> {
        self.variables
            .get(name)
            .ok_or_else(|| WhisperError::Unsupported(format!("no variable {name}")))
    }

    /// Whether a variable exists.
    pub fn has(&self, name: &str) -> bool {
        self.variables.contains_key(name)
    }

    /// A float variable as f32, checked to have `shape`.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, WhisperError> {
        let v = self.get(name)?;
        if v.shape != shape {
            return Err(WhisperError::Unsupported(format!(
                "{name} has shape {:?}, expected {shape:?}",
                v.shape
            )));
        }
        if !matches!(v.dtype, DType::F32 | DType::F16 | DType::BF16) {
            return Err(WhisperError::Unsupported(format!(
                "{name} is {:?} (quantized weights are not read)",
                v.dtype
            )));
        }
        Ok(v.to_f32())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u16 + 1).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    fn file() -> Vec<u8> {
        let mut out = 6u32.to_le_bytes().to_vec();
        string(&mut out, "WhisperSpec");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&2u32.to_le_bytes());
        string(&mut out, "a/weight");
        out.push(2);
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&2u32.to_le_bytes());
        out.push(4);
        out.extend_from_slice(&4u32.to_le_bytes());
        out.extend_from_slice(&[0x00, 0x3c, 0x00, 0xc0]); // f16 1.0, -2.0
        string(&mut out, "heads");
        out.push(0);
        out.push(2);
        out.extend_from_slice(&2u32.to_le_bytes());
        out.extend_from_slice(&6i16.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        string(&mut out, "b/weight");
        string(&mut out, "a/weight");
        out
    }

    #[test]
    fn reads_variables_and_aliases() {
        let bytes = file();
        let m = Ct2Model::parse(&bytes).unwrap();
        assert_eq!((m.spec.as_str(), m.revision), ("WhisperSpec", 3));
        assert_eq!(m.tensor("a/weight", &[1, 2]).unwrap(), vec![1.0, -2.0]);
        assert_eq!(m.tensor("b/weight", &[1, 2]).unwrap(), vec![1.0, -2.0]);
        assert_eq!(m.get("heads").unwrap().scalar_int(), Some(6));
        assert!(matches!(
            m.tensor("a/weight", &[2, 1]),
            Err(WhisperError::Unsupported(_))
        ));
    }

    #[test]
    fn every_truncation_is_a_format_error() {
        let bytes = file();
        for n in 0..bytes.len() {
            assert!(
                matches!(Ct2Model::parse(&bytes[..n]), Err(WhisperError::Format(_))),
                "prefix of {n} bytes"
            );
        }
    }

    #[test]
    fn a_size_that_disagrees_with_the_shape_is_refused() {
        let mut bytes = file();
        // The byte count of `a/weight` (after its type id): 4 -> 6.
        let at = bytes.windows(2).position(|w| w == [4, 4]).unwrap() + 1;
        bytes[at] = 6;
        assert!(matches!(
            Ct2Model::parse(&bytes),
            Err(WhisperError::Format(_))
        ));
    }
}

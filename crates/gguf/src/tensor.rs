//! Tensor descriptions: GGML element types with their block layouts, the tensor
//! table entries, and zero-copy views of tensor bytes.

use std::fmt;

use crate::error::{GgufError, Result};
use crate::quant;

/// A GGML tensor element type.
///
/// Every type still defined by GGML is listed so the reader can validate the
/// byte size of any tensor, even one it cannot dequantize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(non_camel_case_types, missing_docs)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    IQ2_XXS,
    IQ2_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ2_S,
    IQ4_XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1_M,
    BF16,
    TQ1_0,
    TQ2_0,
    MXFP4,
}

impl GgmlType {
    /// Decodes a type code; `None` for unknown codes and for codes GGML has removed.
    #[must_use]
    pub fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            6 => Self::Q5_0,
            7 => Self::Q5_1,
            8 => Self::Q8_0,
            9 => Self::Q8_1,
            10 => Self::Q2_K,
            11 => Self::Q3_K,
            12 => Self::Q4_K,
            13 => Self::Q5_K,
            14 => Self::Q6_K,
            15 => Self::Q8_K,
            16 => Self::IQ2_XXS,
            17 => Self::IQ2_XS,
            18 => Self::IQ3_XXS,
            19 => Self::IQ1_S,
            20 => Self::IQ4_NL,
            21 => Self::IQ3_S,
            22 => Self::IQ2_S,
            23 => Self::IQ4_XS,
            24 => Self::I8,
            25 => Self::I16,
            26 => Self::I32,
            27 => Self::I64,
            28 => Self::F64,
            29 => Self::IQ1_M,
            30 => Self::BF16,
            34 => Self::TQ1_0,
            35 => Self::TQ2_0,
            39 => Self::MXFP4,
            _ => return None,
        })
    }

    /// The code this type has in the file.
    #[must_use]
    pub fn code(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q5_0 => 6,
            Self::Q5_1 => 7,
            Self::Q8_0 => 8,
            Self::Q8_1 => 9,
            Self::Q2_K => 10,
            Self::Q3_K => 11,
            Self::Q4_K => 12,
            Self::Q5_K => 13,
            Self::Q6_K => 14,
            Self::Q8_K => 15,
            Self::IQ2_XXS => 16,
            Self::IQ2_XS => 17,
            Self::IQ3_XXS => 18,
            Self::IQ1_S => 19,
            Self::IQ4_NL => 20,
            Self::IQ3_S => 21,
            Self::IQ2_S => 22,
            Self::IQ4_XS => 23,
            Self::I8 => 24,
            Self::I16 => 25,
            Self::I32 => 26,
            Self::I64 => 27,
            Self::F64 => 28,
            Self::IQ1_M => 29,
            Self::BF16 => 30,
            Self::TQ1_0 => 34,
            Self::TQ2_0 => 35,
            Self::MXFP4 => 39,
        }
    }

    /// Number of elements in one block (1 for plain element types).
    #[must_use]
    pub fn block_len(self) -> usize {
        match self {
            Self::F32
            | Self::F16
            | Self::BF16
            | Self::F64
            | Self::I8
            | Self::I16
            | Self::I32
            | Self::I64 => 1,
            Self::Q4_0
            | Self::Q4_1
            | Self::Q5_0
            | Self::Q5_1
            | Self::Q8_0
            | Self::Q8_1
            | Self::IQ4_NL
            | Self::MXFP4 => 32,
            Self::Q2_K
            | Self::Q3_K
            | Self::Q4_K
            | Self::Q5_K
            | Self::Q6_K
            | Self::Q8_K
            | Self::IQ2_XXS
            | Self::IQ2_XS
            | Self::IQ3_XXS
            | Self::IQ1_S
            | Self::IQ3_S
            | Self::IQ2_S
            | Self::IQ4_XS
            | Self::IQ1_M
            | Self::TQ1_0
            | Self::TQ2_0 => 256,
        }
    }

    /// Number of bytes one block occupies.
    #[must_use]
    pub fn block_bytes(self) -> usize {
        match self {
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::BF16 | Self::I16 => 2,
            Self::F64 | Self::I64 => 8,
            Self::I8 => 1,
            Self::Q4_0 => quant::Q4_0_BLOCK_BYTES,
            Self::Q4_1 => quant::Q4_1_BLOCK_BYTES,
            Self::Q5_0 => quant::Q5_0_BLOCK_BYTES,
            Self::Q5_1 => quant::Q5_1_BLOCK_BYTES,
            Self::Q8_0 => quant::Q8_0_BLOCK_BYTES,
            // two f16 (d, sum) + 32 quants
            Self::Q8_1 => 36,
            Self::Q2_K => quant::Q2_K_BLOCK_BYTES,
            Self::Q3_K => quant::Q3_K_BLOCK_BYTES,
            Self::Q4_K => quant::Q4_K_BLOCK_BYTES,
            Self::Q5_K => quant::Q5_K_BLOCK_BYTES,
            Self::Q6_K => quant::Q6_K_BLOCK_BYTES,
            Self::Q8_K => quant::Q8_K_BLOCK_BYTES,
            Self::IQ2_XXS => 66,
            Self::IQ2_XS => 74,
            Self::IQ3_XXS => 98,
            Self::IQ1_S => 50,
            Self::IQ4_NL => 18,
            Self::IQ3_S => 110,
            Self::IQ2_S => 82,
            Self::IQ4_XS => 136,
            Self::IQ1_M => 56,
            Self::TQ1_0 => 54,
            Self::TQ2_0 => 66,
            Self::MXFP4 => 17,
        }
    }

    /// Whether [`quant::dequantize`] can decode this type.
    #[must_use]
    pub fn can_dequantize(self) -> bool {
        quant::is_supported(self)
    }

    /// Bytes needed for `elements` elements, or `None` if `elements` is not a
    /// whole number of blocks or the size overflows.
    #[must_use]
    pub fn bytes_for(self, elements: u64) -> Option<u64> {
        let block_len = self.block_len() as u64;
        if !elements.is_multiple_of(block_len) {
            return None;
        }
        (elements / block_len).checked_mul(self.block_bytes() as u64)
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One entry of the tensor table, validated against the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions, innermost (contiguous) first, as GGML stores them: a
    /// matrix with `rows` rows of `cols` elements is `[cols, rows]`.
    pub dims: Vec<u64>,
    /// Element type.
    pub ty: GgmlType,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
    /// Size of the data in bytes.
    pub size: u64,
}

impl TensorInfo {
    /// Total number of elements.
    #[must_use]
    pub fn element_count(&self) -> u64 {
        // The parser checked that this product does not overflow.
        self.dims.iter().product()
    }

    /// Number of elements in one row (the innermost dimension); 1 for scalars.
    #[must_use]
    pub fn row_len(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }

    /// Number of rows (the product of all but the innermost dimension).
    #[must_use]
    pub fn row_count(&self) -> u64 {
        self.dims.iter().skip(1).product()
    }
}

/// A tensor's description together with its bytes, borrowed from the file.
#[derive(Debug, Clone, Copy)]
pub struct TensorView<'a> {
    info: &'a TensorInfo,
    data: &'a [u8],
}

impl<'a> TensorView<'a> {
    pub(crate) fn new(info: &'a TensorInfo, data: &'a [u8]) -> Self {
        Self { info, data }
    }

    /// The tensor table entry.
    #[must_use]
    pub fn info(&self) -> &'a TensorInfo {
        self.info
    }

    /// The tensor's name.
    #[must_use]
    pub fn name(&self) -> &'a str {
        &self.info.name
    }

    /// The element type.
    #[must_use]
    pub fn ty(&self) -> GgmlType {
        self.info.ty
    }

    /// Dimensions, innermost first.
    #[must_use]
    pub fn dims(&self) -> &'a [u64] {
        &self.info.dims
    }

    /// The raw stored bytes (quantized blocks for quantized types).
    #[must_use]
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Bytes of one row (the innermost dimension).
    #[must_use]
    pub fn row_bytes(&self) -> usize {
        let row_len = usize::try_from(self.info.row_len()).unwrap_or(usize::MAX);
        row_len / self.info.ty.block_len() * self.info.ty.block_bytes()
    }

    /// The raw bytes of row `index`, or `None` past the last row.
    #[must_use]
    pub fn row(&self, index: usize) -> Option<&'a [u8]> {
        let size = self.row_bytes();
        let start = index.checked_mul(size)?;
        self.data.get(start..start.checked_add(size)?)
    }

    /// Decodes the whole tensor to `f32`.
    ///
    /// # Errors
    /// [`GgufError::UnsupportedType`] for types this crate cannot decode.
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        quant::dequantize_to_vec(self.info.ty, self.data)
    }

    /// Decodes the whole tensor into `out`, which must hold exactly
    /// [`TensorInfo::element_count`] values.
    ///
    /// # Errors
    /// [`GgufError::UnsupportedType`] or [`GgufError::LengthMismatch`].
    pub fn dequantize_into(&self, out: &mut [f32]) -> Result<()> {
        let expected = usize::try_from(self.info.element_count()).unwrap_or(usize::MAX);
        if out.len() != expected {
            return Err(GgufError::LengthMismatch {
                what: "output length",
                expected,
                actual: out.len(),
            });
        }
        quant::dequantize(self.info.ty, self.data, out)
    }
}

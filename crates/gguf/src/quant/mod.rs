//! Decoding GGML tensor data to `f32`, and dot products computed directly on
//! quantized blocks.
//!
//! Each quantized format has a module with its block layout and two
//! block-level kernels, `decode` (one block to `f32`) and `dot` (one block
//! against `f32` activations), written on fixed-size arrays so the compiler
//! removes bounds checks and vectorizes the loops. The functions in this
//! module dispatch on [`GgmlType`] and check buffer sizes once per call.

mod float;
pub mod kquants;
pub mod legacy;
pub mod q8_act;

pub use float::{bf16_to_f32, f16_to_f32, round_to_f16};
pub use kquants::{q2_k, q3_k, q4_k, q5_k, q6_k, q8_k};
pub use legacy::{q4_0, q4_1, q5_0, q5_1, q8_0};

use crate::error::{GgufError, Result};
use crate::tensor::GgmlType;

/// Bytes in one Q4_0 block.
pub const Q4_0_BLOCK_BYTES: usize = q4_0::BLOCK_BYTES;
/// Bytes in one Q4_1 block.
pub const Q4_1_BLOCK_BYTES: usize = q4_1::BLOCK_BYTES;
/// Bytes in one Q5_0 block.
pub const Q5_0_BLOCK_BYTES: usize = q5_0::BLOCK_BYTES;
/// Bytes in one Q5_1 block.
pub const Q5_1_BLOCK_BYTES: usize = q5_1::BLOCK_BYTES;
/// Bytes in one Q8_0 block.
pub const Q8_0_BLOCK_BYTES: usize = q8_0::BLOCK_BYTES;
/// Bytes in one Q2_K block.
pub const Q2_K_BLOCK_BYTES: usize = q2_k::BLOCK_BYTES;
/// Bytes in one Q3_K block.
pub const Q3_K_BLOCK_BYTES: usize = q3_k::BLOCK_BYTES;
/// Bytes in one Q4_K block.
pub const Q4_K_BLOCK_BYTES: usize = q4_k::BLOCK_BYTES;
/// Bytes in one Q5_K block.
pub const Q5_K_BLOCK_BYTES: usize = q5_k::BLOCK_BYTES;
/// Bytes in one Q6_K block.
pub const Q6_K_BLOCK_BYTES: usize = q6_k::BLOCK_BYTES;
/// Bytes in one Q8_K block.
pub const Q8_K_BLOCK_BYTES: usize = q8_k::BLOCK_BYTES;

/// Whether [`dequantize`] and [`dot`] handle this type.
#[must_use]
pub fn is_supported(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::F32
            | GgmlType::F16
            | GgmlType::BF16
            | GgmlType::F64
            | GgmlType::I8
            | GgmlType::I16
            | GgmlType::I32
            | GgmlType::I64
            | GgmlType::Q4_0
            | GgmlType::Q4_1
            | GgmlType::Q5_0
            | GgmlType::Q5_1
            | GgmlType::Q8_0
            | GgmlType::Q2_K
            | GgmlType::Q3_K
            | GgmlType::Q4_K
            | GgmlType::Q5_K
            | GgmlType::Q6_K
            | GgmlType::Q8_K
    )
}

/// Checks that `data` holds whole blocks of `ty` and returns the element count.
fn element_count(ty: GgmlType, data: &[u8]) -> Result<usize> {
    let block_bytes = ty.block_bytes();
    if !data.len().is_multiple_of(block_bytes) {
        return Err(GgufError::LengthMismatch {
            what: "input bytes (not a whole number of blocks)",
            expected: data.len() / block_bytes * block_bytes,
            actual: data.len(),
        });
    }
    Ok(data.len() / block_bytes * ty.block_len())
}

/// Decodes `data` (whole blocks of `ty`) into `out`, which must have room for
/// exactly the encoded number of elements.
///
/// # Errors
/// [`GgufError::UnsupportedType`] or [`GgufError::LengthMismatch`].
pub fn dequantize(ty: GgmlType, data: &[u8], out: &mut [f32]) -> Result<()> {
    if !is_supported(ty) {
        return Err(GgufError::UnsupportedType(ty));
    }
    let n = element_count(ty, data)?;
    if out.len() != n {
        return Err(GgufError::LengthMismatch {
            what: "output length",
            expected: n,
            actual: out.len(),
        });
    }
    match ty {
        GgmlType::F32 => float::decode_f32(data, out),
        GgmlType::F16 => float::decode_f16(data, out),
        GgmlType::BF16 => float::decode_bf16(data, out),
        GgmlType::F64 => float::decode_f64(data, out),
        GgmlType::I8 => float::decode_i8(data, out),
        GgmlType::I16 => float::decode_i16(data, out),
        GgmlType::I32 => float::decode_i32(data, out),
        GgmlType::I64 => float::decode_i64(data, out),
        GgmlType::Q4_0 => decode_blocks(data, out, q4_0::decode),
        GgmlType::Q4_1 => decode_blocks(data, out, q4_1::decode),
        GgmlType::Q5_0 => decode_blocks(data, out, q5_0::decode),
        GgmlType::Q5_1 => decode_blocks(data, out, q5_1::decode),
        GgmlType::Q8_0 => decode_blocks(data, out, q8_0::decode),
        GgmlType::Q2_K => decode_blocks(data, out, q2_k::decode),
        GgmlType::Q3_K => decode_blocks(data, out, q3_k::decode),
        GgmlType::Q4_K => decode_blocks(data, out, q4_k::decode),
        GgmlType::Q5_K => decode_blocks(data, out, q5_k::decode),
        GgmlType::Q6_K => decode_blocks(data, out, q6_k::decode),
        GgmlType::Q8_K => decode_blocks(data, out, q8_k::decode),
        other => return Err(GgufError::UnsupportedType(other)),
    }
    Ok(())
}

/// Decodes `data` (whole blocks of `ty`) into a new vector.
///
/// # Errors
/// [`GgufError::UnsupportedType`] or [`GgufError::LengthMismatch`].
pub fn dequantize_to_vec(ty: GgmlType, data: &[u8]) -> Result<Vec<f32>> {
    if !is_supported(ty) {
        return Err(GgufError::UnsupportedType(ty));
    }
    let mut out = vec![0.0; element_count(ty, data)?];
    dequantize(ty, data, &mut out)?;
    Ok(out)
}

/// Dot product of encoded `data` (whole blocks of `ty`, e.g. one weight row)
/// with `x`, without materializing the decoded values.
///
/// # Errors
/// [`GgufError::UnsupportedType`] or [`GgufError::LengthMismatch`] when `x`
/// does not have exactly as many elements as `data` encodes.
pub fn dot(ty: GgmlType, data: &[u8], x: &[f32]) -> Result<f32> {
    if !is_supported(ty) {
        return Err(GgufError::UnsupportedType(ty));
    }
    let n = element_count(ty, data)?;
    if x.len() != n {
        return Err(GgufError::LengthMismatch {
            what: "activation length",
            expected: n,
            actual: x.len(),
        });
    }
    Ok(match ty {
        GgmlType::Q4_0 => dot_blocks(data, x, q4_0::dot),
        GgmlType::Q4_1 => dot_blocks(data, x, q4_1::dot),
        GgmlType::Q5_0 => dot_blocks(data, x, q5_0::dot),
        GgmlType::Q5_1 => dot_blocks(data, x, q5_1::dot),
        GgmlType::Q8_0 => dot_blocks(data, x, q8_0::dot),
        GgmlType::Q2_K => dot_blocks(data, x, q2_k::dot),
        GgmlType::Q3_K => dot_blocks(data, x, q3_k::dot),
        GgmlType::Q4_K => dot_blocks(data, x, q4_k::dot),
        GgmlType::Q5_K => dot_blocks(data, x, q5_k::dot),
        GgmlType::Q6_K => dot_blocks(data, x, q6_k::dot),
        GgmlType::Q8_K => dot_blocks(data, x, q8_k::dot),
        // Plain element types: decode in stack-sized pieces and accumulate.
        plain => {
            let bytes = plain.block_bytes();
            let mut buf = [0f32; 64];
            let mut total = 0f32;
            for (chunk, xs) in data.chunks(64 * bytes).zip(x.chunks(64)) {
                let out = buf.get_mut(..xs.len()).unwrap_or_default();
                dequantize(plain, chunk, out)?;
                total += dot_f32(out, xs);
            }
            total
        }
    })
}

/// Decodes consecutive blocks with a block kernel.
#[inline(always)]
fn decode_blocks<const BYTES: usize, const LEN: usize>(
    data: &[u8],
    out: &mut [f32],
    kernel: impl Fn(&[u8; BYTES], &mut [f32; LEN]),
) {
    let (blocks, _) = data.as_chunks::<BYTES>();
    let (outs, _) = out.as_chunks_mut::<LEN>();
    for (block, out) in blocks.iter().zip(outs) {
        kernel(block, out);
    }
}

/// Sums a block dot kernel over consecutive blocks.
#[inline(always)]
fn dot_blocks<const BYTES: usize, const LEN: usize>(
    data: &[u8],
    x: &[f32],
    kernel: impl Fn(&[u8; BYTES], &[f32; LEN]) -> f32,
) -> f32 {
    let (blocks, _) = data.as_chunks::<BYTES>();
    let (xs, _) = x.as_chunks::<LEN>();
    blocks
        .iter()
        .zip(xs)
        .map(|(block, x)| kernel(block, x))
        .sum()
}

/// Number of independent accumulators in dot kernels: wide enough for the
/// compiler to keep them in vector registers.
const LANES: usize = 8;

/// Adds lanes in a fixed tree order, so results do not depend on the target.
#[inline(always)]
fn sum_lanes(acc: [f32; LANES]) -> f32 {
    let [a, b, c, d, e, f, g, h] = acc;
    ((a + e) + (c + g)) + ((b + f) + (d + h))
}

/// Dot product of two `f32` slices of equal length, with lane-parallel accumulation.
#[must_use]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let (a_chunks, a_rest) = a.as_chunks::<LANES>();
    let (b_chunks, b_rest) = b.as_chunks::<LANES>();
    let mut acc = [0f32; LANES];
    for (a, b) in a_chunks.iter().zip(b_chunks) {
        for i in 0..LANES {
            acc[i] += a[i] * b[i];
        }
    }
    let tail: f32 = a_rest.iter().zip(b_rest).map(|(a, b)| a * b).sum();
    sum_lanes(acc) + tail
}

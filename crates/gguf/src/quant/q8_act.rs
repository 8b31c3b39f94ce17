//! Activations quantized to 8-bit blocks, and integer dot products of weight blocks against
//! them: the way llama.cpp multiplies quantized matrices on CPUs.
//!
//! A matrix-vector product reads every weight once but each activation once per output row,
//! so the activation row is quantized once ([`quantize_row`]) and each 32-element weight
//! block then meets a 32-element `i8` activation block in an integer dot product; the two
//! scales are applied once per block. Compared with decoding weights to `f32` this moves no
//! floating-point work into the inner loop, which the compiler turns into widening integer
//! multiply-adds.
//!
//! Formats with an offset (`d · q + m`) need `Σ x` per block, which [`ActBlock::sum`] keeps.
//! The kernels are `#[inline(always)]` so that a caller compiling them under wider target
//! features (AVX2 and up) gets them vectorized for that target.

use super::legacy::BLOCK_LEN;
use super::{f16_to_f32, round_to_f16};
use crate::error::{GgufError, Result};
use crate::tensor::GgmlType;

/// One block of 32 quantized activations: `x[i] ≈ scale · q[i]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActBlock {
    /// The scale.
    pub scale: f32,
    /// `scale · Σ q`, the block's sum as the quantized values represent it.
    pub sum: f32,
    /// The quantized values.
    pub q: [i8; BLOCK_LEN],
}

impl Default for ActBlock {
    fn default() -> Self {
        Self {
            scale: 0.0,
            sum: 0.0,
            q: [0; BLOCK_LEN],
        }
    }
}

/// Whether [`dot_row`] takes weights of this type.
#[must_use]
pub fn supports(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0
    )
}

/// Quantizes one block: the largest magnitude maps to ±127, rounding to nearest. The scale and
/// the sum are kept at half precision, as llama.cpp's 8-bit activation blocks store them, so
/// that products round the way the reference implementation's do.
#[inline(always)]
#[must_use]
pub fn quantize_block(x: &[f32; BLOCK_LEN]) -> ActBlock {
    let mut amax = 0f32;
    for &v in x {
        amax = amax.max(v.abs());
    }
    let exact_scale = amax / 127.0;
    let inv = if exact_scale > 0.0 {
        1.0 / exact_scale
    } else {
        0.0
    };
    let mut q = [0i8; BLOCK_LEN];
    let mut total = 0i32;
    for (q, &v) in q.iter_mut().zip(x) {
        // |v · inv| ≤ 127 (plus rounding), so the cast saturates nothing in practice.
        #[allow(clippy::cast_possible_truncation)]
        let r = (v * inv).round() as i8;
        *q = r;
        total += i32::from(r);
    }
    #[allow(clippy::cast_precision_loss)]
    let sum = round_to_f16(exact_scale * total as f32);
    ActBlock {
        scale: round_to_f16(exact_scale),
        sum,
        q,
    }
}

/// Quantizes `x` (whose length must be a multiple of 32) into `out`, replacing its contents.
///
/// # Errors
/// [`GgufError::LengthMismatch`] if `x` is not made of whole blocks.
pub fn quantize_row(x: &[f32], out: &mut Vec<ActBlock>) -> Result<()> {
    let (blocks, rest) = x.as_chunks::<BLOCK_LEN>();
    if !rest.is_empty() {
        return Err(GgufError::LengthMismatch {
            what: "activation row (not a whole number of 32-element blocks)",
            expected: blocks.len() * BLOCK_LEN,
            actual: x.len(),
        });
    }
    out.clear();
    out.extend(blocks.iter().map(quantize_block));
    Ok(())
}

#[inline(always)]
fn half(lo: u8, hi: u8) -> f32 {
    f16_to_f32(u16::from_le_bytes([lo, hi]))
}

/// `Σ lo_nibble(qs[j]) · a[j] + hi_nibble(qs[j]) · a[j + 16]`.
#[inline(always)]
fn nibble_dot(qs: &[u8; 16], a: &[i8; BLOCK_LEN]) -> i32 {
    // Products of a nibble and an i8 fit in i16 (|15 · 128| < 2^15): 16-bit multiplies
    // pack twice as many lanes as 32-bit ones.
    let mut acc = [0i32; 16];
    for j in 0..16 {
        let lo = i16::from(qs[j] & 0x0f) * i16::from(a[j]);
        let hi = i16::from(qs[j] >> 4) * i16::from(a[j + 16]);
        acc[j] = i32::from(lo) + i32::from(hi);
    }
    acc.iter().sum()
}

/// Like [`nibble_dot`] with a fifth bit per element from `qh` (bit `j` for element `j`).
#[inline(always)]
fn five_bit_dot(qs: &[u8; 16], qh: u32, a: &[i8; BLOCK_LEN]) -> i32 {
    let mut acc = [0i32; 16];
    for j in 0..16 {
        let h_lo = ((qh >> j) & 1) << 4;
        let h_hi = ((qh >> (j + 16)) & 1) << 4;
        #[allow(clippy::cast_possible_wrap)]
        let lo = (u32::from(qs[j] & 0x0f) | h_lo) as i32;
        #[allow(clippy::cast_possible_wrap)]
        let hi = (u32::from(qs[j] >> 4) | h_hi) as i32;
        acc[j] = lo * i32::from(a[j]) + hi * i32::from(a[j + 16]);
    }
    acc.iter().sum()
}

#[inline(always)]
fn sum_q(a: &[i8; BLOCK_LEN]) -> i32 {
    a.iter().map(|&q| i32::from(q)).sum()
}

#[allow(clippy::cast_precision_loss)]
#[inline(always)]
fn f(v: i32) -> f32 {
    v as f32
}

/// Q4_0 block (`d · (q − 8)`) against an activation block.
#[inline(always)]
#[must_use]
pub fn dot_q4_0(w: &[u8; 18], a: &ActBlock) -> f32 {
    let [d0, d1, qs @ ..] = w;
    let raw = nibble_dot(qs, &a.q) - 8 * sum_q(&a.q);
    half(*d0, *d1) * a.scale * f(raw)
}

/// Q4_1 block (`d · q + m`) against an activation block.
#[inline(always)]
#[must_use]
pub fn dot_q4_1(w: &[u8; 20], a: &ActBlock) -> f32 {
    let [d0, d1, m0, m1, qs @ ..] = w;
    half(*d0, *d1) * a.scale * f(nibble_dot(qs, &a.q)) + half(*m0, *m1) * a.sum
}

/// Q5_0 block (`d · (q − 16)`) against an activation block.
#[inline(always)]
#[must_use]
pub fn dot_q5_0(w: &[u8; 22], a: &ActBlock) -> f32 {
    let [d0, d1, h0, h1, h2, h3, qs @ ..] = w;
    let qh = u32::from_le_bytes([*h0, *h1, *h2, *h3]);
    let raw = five_bit_dot(qs, qh, &a.q) - 16 * sum_q(&a.q);
    half(*d0, *d1) * a.scale * f(raw)
}

/// Q5_1 block (`d · q + m`) against an activation block.
#[inline(always)]
#[must_use]
pub fn dot_q5_1(w: &[u8; 24], a: &ActBlock) -> f32 {
    let [d0, d1, m0, m1, h0, h1, h2, h3, qs @ ..] = w;
    let qh = u32::from_le_bytes([*h0, *h1, *h2, *h3]);
    half(*d0, *d1) * a.scale * f(five_bit_dot(qs, qh, &a.q)) + half(*m0, *m1) * a.sum
}

/// Q8_0 block (`d · q`) against an activation block.
#[inline(always)]
#[must_use]
pub fn dot_q8_0(w: &[u8; 34], a: &ActBlock) -> f32 {
    let [d0, d1, qs @ ..] = w;
    // |i8 · i8| ≤ 2^14: the products fit in i16.
    let mut acc = [0i32; BLOCK_LEN];
    for j in 0..BLOCK_LEN {
        #[allow(clippy::cast_possible_wrap)]
        let q = qs[j] as i8;
        acc[j] = i32::from(i16::from(q) * i16::from(a.q[j]));
    }
    half(*d0, *d1) * a.scale * f(acc.iter().sum())
}

#[inline(always)]
fn sum_blocks<const BYTES: usize>(
    row: &[u8],
    acts: &[ActBlock],
    kernel: impl Fn(&[u8; BYTES], &ActBlock) -> f32,
) -> f32 {
    let (blocks, _) = row.as_chunks::<BYTES>();
    let mut total = 0f32;
    for (w, a) in blocks.iter().zip(acts) {
        total += kernel(w, a);
    }
    total
}

/// Dot product of one weight row (whole blocks of `ty`) with a quantized activation row.
/// Inlined so that callers compiled for wider vector units get a vectorized copy.
///
/// # Errors
/// [`GgufError::UnsupportedType`] for a type [`supports`] rejects;
/// [`GgufError::LengthMismatch`] when the row and the activations differ in block count.
#[inline(always)]
pub fn dot_row(ty: GgmlType, row: &[u8], acts: &[ActBlock]) -> Result<f32> {
    if !supports(ty) {
        return Err(GgufError::UnsupportedType(ty));
    }
    let bytes = ty.block_bytes();
    if row.len() != acts.len() * bytes {
        return Err(GgufError::LengthMismatch {
            what: "weight row bytes for the activation blocks",
            expected: acts.len() * bytes,
            actual: row.len(),
        });
    }
    Ok(match ty {
        GgmlType::Q4_0 => sum_blocks(row, acts, dot_q4_0),
        GgmlType::Q4_1 => sum_blocks(row, acts, dot_q4_1),
        GgmlType::Q5_0 => sum_blocks(row, acts, dot_q5_0),
        GgmlType::Q5_1 => sum_blocks(row, acts, dot_q5_1),
        _ => sum_blocks(row, acts, dot_q8_0),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

    use super::*;
    use crate::quant::{dequantize_to_vec, dot_f32};

    /// Deterministic pseudo-random bytes.
    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (s >> 33) as u8
            })
            .collect()
    }

    /// Blocks of `ty` with random quants and small finite scales.
    fn weights(ty: GgmlType, blocks: usize, seed: u64) -> Vec<u8> {
        let bb = ty.block_bytes();
        let mut data = bytes(blocks * bb, seed);
        let scale_bytes = match ty {
            GgmlType::Q4_1 | GgmlType::Q5_1 => 4,
            _ => 2,
        };
        for b in 0..blocks {
            for s in (0..scale_bytes).step_by(2) {
                // f16 in [2^-7, 2^-6) with a random sign: exponent 8, random mantissa.
                let mant = u16::from(data[b * bb + s]) << 2;
                let sign = u16::from(data[b * bb + s + 1] & 1) << 15;
                let bits = sign | (8 << 10) | mant;
                data[b * bb + s..b * bb + s + 2].copy_from_slice(&bits.to_le_bytes());
            }
        }
        data
    }

    fn activations(n: usize, seed: u64) -> Vec<f32> {
        bytes(n, seed)
            .iter()
            .map(|&b| (f32::from(b) - 127.5) / 40.0)
            .collect()
    }

    #[test]
    fn quantized_activations_round_trip_within_half_a_step() {
        let x = activations(64, 3);
        let mut q = Vec::new();
        quantize_row(&x, &mut q).unwrap();
        assert_eq!(q.len(), 2);
        for (block, xs) in q.iter().zip(x.chunks(32)) {
            let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
            // The scale is amax / 127 stored at half precision (relative error ≤ 2^-11).
            assert_eq!(block.scale, round_to_f16(amax / 127.0));
            assert!((block.scale - amax / 127.0).abs() <= amax / 127.0 / 2048.0);
            let mut total = 0.0;
            for (&qi, &v) in block.q.iter().zip(xs) {
                let back = f32::from(qi) * block.scale;
                // Half a step, plus what the half-precision scale moves 127 steps.
                assert!(
                    (back - v).abs() <= block.scale * 0.5 + amax / 2048.0 + 1e-6,
                    "{back} vs {v}"
                );
                total += f32::from(qi);
            }
            let exact_sum = total * amax / 127.0;
            assert!((exact_sum - block.sum).abs() <= exact_sum.abs() / 2048.0 + 1e-6);
        }
        assert!(quantize_row(&x[..40], &mut q).is_err());
        quantize_row(&[0.0; 32], &mut q).unwrap();
        assert_eq!(q[0], ActBlock::default());
    }

    #[test]
    fn integer_dots_match_dequantized_float_dots() {
        for ty in [
            GgmlType::Q4_0,
            GgmlType::Q4_1,
            GgmlType::Q5_0,
            GgmlType::Q5_1,
            GgmlType::Q8_0,
        ] {
            for seed in 0..8 {
                let blocks = 6;
                let w = weights(ty, blocks, seed);
                let x = activations(blocks * 32, seed + 100);
                let mut acts = Vec::new();
                quantize_row(&x, &mut acts).unwrap();
                // The exact product of the weights with the quantized activations.
                let xq: Vec<f32> = acts
                    .iter()
                    .flat_map(|a| a.q.map(|q| f32::from(q) * a.scale))
                    .collect();
                let wf = dequantize_to_vec(ty, &w).unwrap();
                let expected = dot_f32(&wf, &xq);
                let got = dot_row(ty, &w, &acts).unwrap();
                let magnitude: f32 = wf.iter().zip(&xq).map(|(a, b)| (a * b).abs()).sum();
                assert!(
                    (got - expected).abs() <= 1e-5 * magnitude.max(1.0),
                    "{ty:?} seed {seed}: {got} vs {expected}"
                );
                // And close to the float activations too.
                let float = dot_f32(&wf, &x);
                assert!(
                    (got - float).abs() <= 0.02 * magnitude.max(1.0),
                    "{ty:?} seed {seed}: {got} vs {float}"
                );
            }
        }
    }

    #[test]
    fn mismatched_rows_and_types_are_errors() {
        let acts = vec![ActBlock::default(); 2];
        assert!(dot_row(GgmlType::Q4_1, &[0; 20], &acts).is_err());
        assert!(dot_row(GgmlType::Q6_K, &[0; 420], &acts).is_err());
        assert!(supports(GgmlType::Q8_0));
        assert!(!supports(GgmlType::F32));
    }
}

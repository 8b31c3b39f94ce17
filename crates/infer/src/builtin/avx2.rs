//! Hand-vectorized AVX2 dot products of 4- and 8-bit weight rows with quantized activation
//! rows: the hot loop of CPU decoding. The portable kernels of `cocoon_gguf::quant::q8_act`
//! leave vectorization to the compiler, which reduces every 32-element block horizontally;
//! here a whole block is one `maddubs` (unsigned × signed bytes, pairwise into 16 bits), one
//! `madd` into 32 bits and one fused multiply-add of its scale into eight `f32` lanes that are
//! summed once per row. Written with `pulp`'s safe wrappers of the intrinsics: no unsafe code.

use core::arch::x86_64::{__m128i, __m256, __m256i};

use cocoon_gguf::GgmlType;
use cocoon_gguf::quant::f16_to_f32;
use cocoon_gguf::quant::q8_act::ActBlock;
use pulp::x86::V3;

/// Whether [`dot_row`] has a kernel for weights of this type.
pub(crate) fn supports(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0)
}

#[cfg(test)]
#[inline(always)]
fn half(lo: u8, hi: u8) -> f32 {
    f16_to_f32(u16::from_le_bytes([lo, hi]))
}

/// Every half-precision value as `f32` (256 KiB, built once): a block's scales are one load
/// each instead of a dozen integer operations.
type HalfTable = [f32; 1 << 16];

fn half_table() -> &'static HalfTable {
    static TABLE: std::sync::OnceLock<Box<HalfTable>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = Box::new([0f32; 1 << 16]);
        for (bits, value) in (0..=u16::MAX).zip(table.iter_mut()) {
            *value = f16_to_f32(bits);
        }
        table
    })
}

#[inline(always)]
fn looked_up(table: &HalfTable, lo: u8, hi: u8) -> f32 {
    table[usize::from(u16::from_le_bytes([lo, hi]))]
}

/// The 32 unsigned 4-bit values of a block: low nibbles first, then high nibbles (the order
/// of the activation block they meet).
#[inline(always)]
fn nibbles(simd: V3, qs: &[u8; 16]) -> __m256i {
    let packed: __m128i = bytemuck::cast(*qs);
    let mask = simd.sse2._mm_set1_epi8(0x0f);
    let lo = simd.sse2._mm_and_si128(packed, mask);
    let hi = simd
        .sse2
        ._mm_and_si128(simd.sse2._mm_srli_epi16::<4>(packed), mask);
    simd.avx._mm256_set_m128i(hi, lo)
}

/// Σ w[j] · a[j] over 32 lanes into eight `i32` sums converted to `f32`, for `w` unsigned.
#[inline(always)]
fn dot_unsigned(simd: V3, w: __m256i, a: __m256i) -> __m256 {
    // |w · a| ≤ 255 · 128 per product, two per 16-bit lane: no saturation for w ≤ 127
    // (4-bit values and absolute 8-bit values here).
    let pairs = simd.avx2._mm256_maddubs_epi16(w, a);
    let quads = simd
        .avx2
        ._mm256_madd_epi16(pairs, simd.avx._mm256_set1_epi16(1));
    simd.avx._mm256_cvtepi32_ps(quads)
}

/// As [`dot_unsigned`] for signed `w`: the sign moves onto the activations.
#[cfg(test)]
fn dot_signed(simd: V3, w: __m256i, a: __m256i) -> __m256 {
    let abs = simd.avx2._mm256_sign_epi8(w, w);
    let signed_a = simd.avx2._mm256_sign_epi8(a, w);
    dot_unsigned(simd, abs, signed_a)
}

#[inline(always)]
fn horizontal_sum(simd: V3, v: __m256) -> f32 {
    let lanes: [f32; 8] = bytemuck::cast(v);
    let _ = simd;
    let pairs = [
        lanes[0] + lanes[4],
        lanes[1] + lanes[5],
        lanes[2] + lanes[6],
        lanes[3] + lanes[7],
    ];
    (pairs[0] + pairs[2]) + (pairs[1] + pairs[3])
}

/// Dot product of one weight row of `ty` (whole blocks, as many as `acts`) with a quantized
/// activation row; `None` for a type without a kernel here or a length that does not match.
/// The one-row kernel, kept as the plain statement of what [`dot_rows`] computes.
#[cfg(test)]
fn dot_row(simd: V3, ty: GgmlType, row: &[u8], acts: &[ActBlock]) -> Option<f32> {
    if row.len() != acts.len() * ty.block_bytes() {
        return None;
    }
    let mut acc = simd.avx._mm256_setzero_ps();
    match ty {
        GgmlType::Q4_1 => {
            let mut offsets = 0f32;
            let (blocks, _) = row.as_chunks::<20>();
            for (w, a) in blocks.iter().zip(acts) {
                let [d0, d1, m0, m1, qs @ ..] = w;
                let x: __m256i = bytemuck::cast(a.q);
                let products = dot_unsigned(simd, nibbles(simd, qs), x);
                let scale = simd.avx._mm256_set1_ps(half(*d0, *d1) * a.scale);
                acc = simd.fma._mm256_fmadd_ps(products, scale, acc);
                offsets += half(*m0, *m1) * a.sum;
            }
            Some(horizontal_sum(simd, acc) + offsets)
        }
        GgmlType::Q4_0 => {
            let (blocks, _) = row.as_chunks::<18>();
            let eight = simd.avx._mm256_set1_epi8(8);
            for (w, a) in blocks.iter().zip(acts) {
                let [d0, d1, qs @ ..] = w;
                let x: __m256i = bytemuck::cast(a.q);
                let centered = simd.avx2._mm256_sub_epi8(nibbles(simd, qs), eight);
                let products = dot_signed(simd, centered, x);
                let scale = simd.avx._mm256_set1_ps(half(*d0, *d1) * a.scale);
                acc = simd.fma._mm256_fmadd_ps(products, scale, acc);
            }
            Some(horizontal_sum(simd, acc))
        }
        GgmlType::Q8_0 => {
            let (blocks, _) = row.as_chunks::<34>();
            for (w, a) in blocks.iter().zip(acts) {
                let [d0, d1, qs @ ..] = w;
                let q: __m256i = bytemuck::cast(*qs);
                let x: __m256i = bytemuck::cast(a.q);
                let products = dot_signed(simd, q, x);
                let scale = simd.avx._mm256_set1_ps(half(*d0, *d1) * a.scale);
                acc = simd.fma._mm256_fmadd_ps(products, scale, acc);
            }
            Some(horizontal_sum(simd, acc))
        }
        _ => None,
    }
}

/// A weight block ready for the products: its 32 values (unsigned, or signed when `signed`),
/// scale and offset (`w = d · q + m`).
struct WeightBlock {
    q: __m256i,
    signed: bool,
    d: f32,
    m: f32,
}

#[inline(always)]
fn q4_1_block(simd: V3, table: &HalfTable, w: &[u8; 20]) -> WeightBlock {
    let [d0, d1, m0, m1, qs @ ..] = w;
    WeightBlock {
        q: nibbles(simd, qs),
        signed: false,
        d: looked_up(table, *d0, *d1),
        m: looked_up(table, *m0, *m1),
    }
}

#[inline(always)]
fn q4_0_block(simd: V3, table: &HalfTable, w: &[u8; 18]) -> WeightBlock {
    let [d0, d1, qs @ ..] = w;
    WeightBlock {
        q: simd
            .avx2
            ._mm256_sub_epi8(nibbles(simd, qs), simd.avx._mm256_set1_epi8(8)),
        signed: true,
        d: looked_up(table, *d0, *d1),
        m: 0.0,
    }
}

#[inline(always)]
fn q8_0_block(_simd: V3, table: &HalfTable, w: &[u8; 34]) -> WeightBlock {
    let [d0, d1, qs @ ..] = w;
    WeightBlock {
        q: bytemuck::cast(*qs),
        signed: true,
        d: looked_up(table, *d0, *d1),
        m: 0.0,
    }
}

/// Activation rows handled together at most: each weight block is unpacked once for all of
/// them, and their accumulators stay in registers.
const GROUP: usize = 4;

/// Products of one weight row of `ty` with `outs.len()` activation rows of `per_row` blocks
/// each (`acts` holds them one after the other): `outs[i] = row · acts[i]`. Returns `false`,
/// leaving `outs` alone, for a type without a kernel here or lengths that do not match.
/// Inlined so that it runs in the caller's AVX2 context.
#[inline(always)]
pub(crate) fn dot_rows(
    simd: V3,
    ty: GgmlType,
    row: &[u8],
    acts: &[ActBlock],
    per_row: usize,
    outs: &mut [f32],
) -> bool {
    if !supports(ty)
        || row.len() != per_row * ty.block_bytes()
        || acts.len() != per_row * outs.len()
    {
        return false;
    }
    let table = half_table();
    match ty {
        GgmlType::Q4_1 => rows_of(simd, table, row.as_chunks().0, acts, outs, q4_1_block),
        GgmlType::Q4_0 => rows_of(simd, table, row.as_chunks().0, acts, outs, q4_0_block),
        _ => rows_of(simd, table, row.as_chunks().0, acts, outs, q8_0_block),
    }
    true
}

#[inline(always)]
fn rows_of<const B: usize>(
    simd: V3,
    table: &HalfTable,
    blocks: &[[u8; B]],
    acts: &[ActBlock],
    outs: &mut [f32],
    unpack: impl Fn(V3, &HalfTable, &[u8; B]) -> WeightBlock + Copy,
) {
    let per_row = blocks.len();
    for (g, outs) in outs.chunks_mut(GROUP).enumerate() {
        let acts = &acts[g * GROUP * per_row..];
        match outs.len() {
            1 => group::<B, 1>(simd, table, blocks, acts, outs, unpack),
            2 => group::<B, 2>(simd, table, blocks, acts, outs, unpack),
            3 => group::<B, 3>(simd, table, blocks, acts, outs, unpack),
            _ => group::<B, GROUP>(simd, table, blocks, acts, outs, unpack),
        }
    }
}

/// `outs[j] = blocks · acts[j · per_row..][..per_row]` for `j < G`, each weight block
/// unpacked once.
#[inline(always)]
fn group<const B: usize, const G: usize>(
    simd: V3,
    table: &HalfTable,
    blocks: &[[u8; B]],
    acts: &[ActBlock],
    outs: &mut [f32],
    unpack: impl Fn(V3, &HalfTable, &[u8; B]) -> WeightBlock,
) {
    let per_row = blocks.len();
    let rows: [&[ActBlock]; G] = std::array::from_fn(|j| &acts[j * per_row..(j + 1) * per_row]);
    let mut acc = [simd.avx._mm256_setzero_ps(); G];
    let mut offsets = [0f32; G];
    for (b, w) in blocks.iter().enumerate() {
        let block = unpack(simd, table, w);
        let unsigned = if block.signed {
            simd.avx2._mm256_sign_epi8(block.q, block.q)
        } else {
            block.q
        };
        for j in 0..G {
            let a = &rows[j][b];
            let mut x: __m256i = bytemuck::cast(a.q);
            if block.signed {
                x = simd.avx2._mm256_sign_epi8(x, block.q);
            }
            let products = dot_unsigned(simd, unsigned, x);
            let scale = simd.avx._mm256_set1_ps(block.d * a.scale);
            acc[j] = simd.fma._mm256_fmadd_ps(products, scale, acc[j]);
            offsets[j] += block.m * a.sum;
        }
    }
    for j in 0..G {
        outs[j] = horizontal_sum(simd, acc[j]) + offsets[j];
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

    use super::*;
    use cocoon_gguf::quant::q8_act;

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

    /// Blocks with random quants and small finite f16 scales.
    fn weights(ty: GgmlType, blocks: usize, seed: u64) -> Vec<u8> {
        let bb = ty.block_bytes();
        let mut data = bytes(blocks * bb, seed);
        let scales = if ty == GgmlType::Q4_1 { 4 } else { 2 };
        for b in 0..blocks {
            for s in (0..scales).step_by(2) {
                let mant = u16::from(data[b * bb + s]) << 2;
                let sign = u16::from(data[b * bb + s + 1] & 1) << 15;
                let bits = sign | (8 << 10) | mant;
                data[b * bb + s..b * bb + s + 2].copy_from_slice(&bits.to_le_bytes());
            }
        }
        data
    }

    #[test]
    fn matches_the_portable_kernels() {
        let Some(simd) = V3::try_new() else {
            eprintln!("skipping: no AVX2 here");
            return;
        };
        for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0] {
            for seed in 0..16 {
                let blocks = 18;
                let w = weights(ty, blocks, seed);
                let x: Vec<f32> = bytes(blocks * 32, seed + 99)
                    .iter()
                    .map(|&b| (f32::from(b) - 127.5) / 37.0)
                    .collect();
                let mut acts = Vec::new();
                q8_act::quantize_row(&x, &mut acts).unwrap();
                let portable = q8_act::dot_row(ty, &w, &acts).unwrap();
                let fast = dot_row(simd, ty, &w, &acts).unwrap();
                let scale = portable.abs().max(1.0);
                assert!(
                    (fast - portable).abs() <= 1e-4 * scale,
                    "{ty:?} seed {seed}: {fast} vs {portable}"
                );
            }
        }
    }

    #[test]
    fn batched_rows_match_single_rows() {
        let Some(simd) = V3::try_new() else { return };
        for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0] {
            let per_row = 18;
            let w = weights(ty, per_row, 7);
            for n in [1, 3, 4, 5, 9] {
                let mut acts = Vec::new();
                let mut row = Vec::new();
                for i in 0..n {
                    let x: Vec<f32> = bytes(per_row * 32, 1000 + i as u64)
                        .iter()
                        .map(|&b| (f32::from(b) - 127.5) / 29.0)
                        .collect();
                    q8_act::quantize_row(&x, &mut row).unwrap();
                    acts.extend_from_slice(&row);
                }
                let mut outs = vec![0f32; n];
                assert!(dot_rows(simd, ty, &w, &acts, per_row, &mut outs));
                for (i, got) in outs.iter().enumerate() {
                    let one = &acts[i * per_row..(i + 1) * per_row];
                    let expected = q8_act::dot_row(ty, &w, one).unwrap();
                    assert!(
                        (got - expected).abs() <= 1e-4 * expected.abs().max(1.0),
                        "{ty:?} n {n} row {i}: {got} vs {expected}"
                    );
                }
            }
            let mut outs = vec![0f32; 2];
            assert!(!dot_rows(
                simd,
                ty,
                &w,
                &[ActBlock::default(); 3],
                per_row,
                &mut outs
            ));
        }
    }

    #[test]
    fn mismatched_lengths_and_other_types_have_no_kernel() {
        let Some(simd) = V3::try_new() else { return };
        let acts = vec![ActBlock::default(); 2];
        assert!(dot_row(simd, GgmlType::Q4_1, &[0; 20], &acts).is_none());
        assert!(dot_row(simd, GgmlType::Q6_K, &[0; 420], &acts).is_none());
        assert!(dot_row(simd, GgmlType::Q8_0, &[0; 68], &acts).is_some());
        assert!(supports(GgmlType::Q4_0) && !supports(GgmlType::F16));
    }
}

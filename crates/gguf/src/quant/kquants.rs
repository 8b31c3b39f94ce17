//! The 256-element "k-quant" super-block formats: Q2_K, Q3_K, Q4_K, Q5_K,
//! Q6_K and Q8_K.
//!
//! A super-block holds one or two `f16` scales and a set of small per-sub-block
//! scales; the kernels index fixed-size block arrays with constant-bounded
//! offsets, so no bounds check survives compilation.

use super::{f16_to_f32, legacy::sum16};

/// Elements per super-block in every format of this module.
pub const BLOCK_LEN: usize = 256;

#[inline(always)]
fn half(lo: u8, hi: u8) -> f32 {
    f16_to_f32(u16::from_le_bytes([lo, hi]))
}

/// Dot product of 32 decoded values with 32 activations, lane-parallel.
#[inline(always)]
fn dot32(v: &[f32], x: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    for (j, a) in acc.iter_mut().enumerate() {
        *a = v[j] * x[j] + v[j + 16] * x[j + 16];
    }
    sum16(&acc)
}

/// Fallback dot: decode the super-block on the stack, then multiply.
#[inline(always)]
fn dot_decoded(decoded: &[f32; BLOCK_LEN], x: &[f32; BLOCK_LEN]) -> f32 {
    let mut total = 0f32;
    for s in 0..BLOCK_LEN / 32 {
        total += dot32(&decoded[32 * s..32 * s + 32], &x[32 * s..32 * s + 32]);
    }
    total
}

/// Unpacks the eight 6-bit scales and eight 6-bit minimums of Q4_K and Q5_K.
///
/// Bytes 0–3 hold scales 0–3 in their low six bits, bytes 4–7 minimums 0–3;
/// bytes 8–11 hold the low four bits of scales 4–7 (low nibble) and of
/// minimums 4–7 (high nibble), whose top two bits sit in the spare top bits
/// of bytes 0–7.
#[inline(always)]
#[must_use]
pub fn unpack_k_scales(s: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for j in 0..4 {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (s[j + 8] & 0x0f) | ((s[j] >> 6) << 4);
        mn[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4);
    }
    (sc, mn)
}

/// Q2_K: 16 bytes of 4-bit scale/min pairs, 64 bytes of 2-bit quants, `f16 d`, `f16 dmin`.
pub mod q2_k {
    use super::{BLOCK_LEN, dot_decoded, half};

    /// Bytes per super-block.
    pub const BLOCK_BYTES: usize = 84;

    /// Decodes one super-block.
    #[inline(always)]
    pub fn decode(block: &[u8; BLOCK_BYTES], out: &mut [f32; BLOCK_LEN]) {
        let d = half(block[80], block[81]);
        let dmin = half(block[82], block[83]);
        for h in 0..2 {
            for s in 0..4 {
                for k in 0..2 {
                    let sc = block[8 * h + 2 * s + k];
                    let dl = d * f32::from(sc & 0x0f);
                    let ml = dmin * f32::from(sc >> 4);
                    for l in 0..16 {
                        let i = 16 * k + l;
                        let q = (block[16 + 32 * h + i] >> (2 * s)) & 3;
                        out[128 * h + 32 * s + i] = dl * f32::from(q) - ml;
                    }
                }
            }
        }
    }

    /// Dot product of one super-block with 256 activations.
    #[inline(always)]
    #[must_use]
    pub fn dot(block: &[u8; BLOCK_BYTES], x: &[f32; BLOCK_LEN]) -> f32 {
        let mut decoded = [0f32; BLOCK_LEN];
        decode(block, &mut decoded);
        dot_decoded(&decoded, x)
    }
}

/// Q3_K: 32 bytes of high bits, 64 bytes of 2-bit low quants, 12 bytes of
/// 6-bit signed scales, `f16 d`.
pub mod q3_k {
    use super::{BLOCK_LEN, dot_decoded, half};

    /// Bytes per super-block.
    pub const BLOCK_BYTES: usize = 110;

    /// The 16 signed 6-bit scales: low four bits from bytes 0–7 (low nibbles
    /// for scales 0–7, high nibbles for 8–15), top two bits from bytes 8–11.
    #[inline(always)]
    fn scales(s: &[u8]) -> [i8; 16] {
        let mut out = [0i8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            let low = if i < 8 { s[i] & 0x0f } else { s[i - 8] >> 4 };
            let high = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
            *o = ((low | (high << 4)) as i8) - 32;
        }
        out
    }

    /// Decodes one super-block.
    #[inline(always)]
    pub fn decode(block: &[u8; BLOCK_BYTES], out: &mut [f32; BLOCK_LEN]) {
        let d = half(block[108], block[109]);
        let sc = scales(&block[96..108]);
        for h in 0..2 {
            for s in 0..4 {
                let bit = 4 * h + s;
                for k in 0..2 {
                    let dl = d * f32::from(sc[8 * h + 2 * s + k]);
                    for l in 0..16 {
                        let i = 16 * k + l;
                        let low = ((block[32 + 32 * h + i] >> (2 * s)) & 3) as i8;
                        // A clear high bit means the value is offset by −4.
                        let high = if (block[i] >> bit) & 1 == 0 { 4 } else { 0 };
                        out[128 * h + 32 * s + i] = dl * f32::from(low - high);
                    }
                }
            }
        }
    }

    /// Dot product of one super-block with 256 activations.
    #[inline(always)]
    #[must_use]
    pub fn dot(block: &[u8; BLOCK_BYTES], x: &[f32; BLOCK_LEN]) -> f32 {
        let mut decoded = [0f32; BLOCK_LEN];
        decode(block, &mut decoded);
        dot_decoded(&decoded, x)
    }
}

/// Q4_K: `f16 d`, `f16 dmin`, 12 bytes of packed 6-bit scales and minimums,
/// 128 bytes of nibbles; value = `d·scale·q − dmin·min` per 32-element sub-block.
pub mod q4_k {
    use super::{BLOCK_LEN, half, sum16, unpack_k_scales};

    /// Bytes per super-block.
    pub const BLOCK_BYTES: usize = 144;

    #[inline(always)]
    fn header(block: &[u8; BLOCK_BYTES]) -> (f32, f32, [u8; 8], [u8; 8]) {
        let [d0, d1, m0, m1, s @ ..] = block;
        let mut packed = [0u8; 12];
        packed.copy_from_slice(&s[..12]);
        let (sc, mn) = unpack_k_scales(&packed);
        (half(*d0, *d1), half(*m0, *m1), sc, mn)
    }

    /// Decodes one super-block.
    #[inline(always)]
    pub fn decode(block: &[u8; BLOCK_BYTES], out: &mut [f32; BLOCK_LEN]) {
        let (d, dmin, sc, mn) = header(block);
        for g in 0..4 {
            let d1 = d * f32::from(sc[2 * g]);
            let m1 = dmin * f32::from(mn[2 * g]);
            let d2 = d * f32::from(sc[2 * g + 1]);
            let m2 = dmin * f32::from(mn[2 * g + 1]);
            for l in 0..32 {
                let q = block[16 + 32 * g + l];
                out[64 * g + l] = d1 * f32::from(q & 0x0f) - m1;
                out[64 * g + 32 + l] = d2 * f32::from(q >> 4) - m2;
            }
        }
    }

    /// Dot product of one super-block with 256 activations:
    /// per sub-block `d·scale·Σ q·x − dmin·min·Σ x`.
    #[inline(always)]
    #[must_use]
    pub fn dot(block: &[u8; BLOCK_BYTES], x: &[f32; BLOCK_LEN]) -> f32 {
        let (d, dmin, sc, mn) = header(block);
        let mut scaled = 0f32;
        let mut offset = 0f32;
        for g in 0..4 {
            let mut lo = [0f32; 16];
            let mut hi = [0f32; 16];
            let mut slo = [0f32; 16];
            let mut shi = [0f32; 16];
            for l in 0..16 {
                let a = block[16 + 32 * g + l];
                let b = block[16 + 32 * g + l + 16];
                let xa = x[64 * g + l];
                let xb = x[64 * g + l + 16];
                let ya = x[64 * g + 32 + l];
                let yb = x[64 * g + 48 + l];
                lo[l] = f32::from(a & 0x0f) * xa + f32::from(b & 0x0f) * xb;
                hi[l] = f32::from(a >> 4) * ya + f32::from(b >> 4) * yb;
                slo[l] = xa + xb;
                shi[l] = ya + yb;
            }
            scaled += f32::from(sc[2 * g]) * sum16(&lo) + f32::from(sc[2 * g + 1]) * sum16(&hi);
            offset += f32::from(mn[2 * g]) * sum16(&slo) + f32::from(mn[2 * g + 1]) * sum16(&shi);
        }
        d * scaled - dmin * offset
    }
}

/// Q5_K: like Q4_K plus 32 bytes holding the fifth bit of every quant.
pub mod q5_k {
    use super::{BLOCK_LEN, dot_decoded, half, unpack_k_scales};

    /// Bytes per super-block.
    pub const BLOCK_BYTES: usize = 176;

    /// Decodes one super-block.
    #[inline(always)]
    pub fn decode(block: &[u8; BLOCK_BYTES], out: &mut [f32; BLOCK_LEN]) {
        let d = half(block[0], block[1]);
        let dmin = half(block[2], block[3]);
        let mut packed = [0u8; 12];
        packed.copy_from_slice(&block[4..16]);
        let (sc, mn) = unpack_k_scales(&packed);
        for g in 0..4 {
            let d1 = d * f32::from(sc[2 * g]);
            let m1 = dmin * f32::from(mn[2 * g]);
            let d2 = d * f32::from(sc[2 * g + 1]);
            let m2 = dmin * f32::from(mn[2 * g + 1]);
            for l in 0..32 {
                let q = block[48 + 32 * g + l];
                let h = block[16 + l];
                let lo = (q & 0x0f) | (((h >> (2 * g)) & 1) << 4);
                let hi = (q >> 4) | (((h >> (2 * g + 1)) & 1) << 4);
                out[64 * g + l] = d1 * f32::from(lo) - m1;
                out[64 * g + 32 + l] = d2 * f32::from(hi) - m2;
            }
        }
    }

    /// Dot product of one super-block with 256 activations.
    #[inline(always)]
    #[must_use]
    pub fn dot(block: &[u8; BLOCK_BYTES], x: &[f32; BLOCK_LEN]) -> f32 {
        let mut decoded = [0f32; BLOCK_LEN];
        decode(block, &mut decoded);
        dot_decoded(&decoded, x)
    }
}

/// Q6_K: 128 bytes of low nibbles, 64 bytes of 2-bit high parts, 16 signed
/// 8-bit scales, `f16 d`; value = `d·scale·(q − 32)` per 16-element group.
pub mod q6_k {
    use super::{BLOCK_LEN, half, sum16};

    /// Bytes per super-block.
    pub const BLOCK_BYTES: usize = 210;

    /// The four 6-bit quants (already offset by −32) that share low-nibble
    /// bytes `l`, `l + 32` and high-bits byte `l` of half `n`.
    #[inline(always)]
    fn quad(block: &[u8; BLOCK_BYTES], n: usize, l: usize) -> [f32; 4] {
        let a = block[64 * n + l];
        let b = block[64 * n + l + 32];
        let h = block[128 + 32 * n + l];
        let q = |low: u8, shift: u32| f32::from(((low | (((h >> shift) & 3) << 4)) as i8) - 32);
        [q(a & 0x0f, 0), q(b & 0x0f, 2), q(a >> 4, 4), q(b >> 4, 6)]
    }

    #[inline(always)]
    fn scale(block: &[u8; BLOCK_BYTES], i: usize) -> f32 {
        f32::from(block[192 + i].cast_signed())
    }

    /// Decodes one super-block.
    #[inline(always)]
    pub fn decode(block: &[u8; BLOCK_BYTES], out: &mut [f32; BLOCK_LEN]) {
        let d = half(block[208], block[209]);
        for n in 0..2 {
            for k in 0..2 {
                let ds = [
                    d * scale(block, 8 * n + k),
                    d * scale(block, 8 * n + k + 2),
                    d * scale(block, 8 * n + k + 4),
                    d * scale(block, 8 * n + k + 6),
                ];
                for i in 0..16 {
                    let l = 16 * k + i;
                    let q = quad(block, n, l);
                    for (r, (q, ds)) in q.iter().zip(ds).enumerate() {
                        out[128 * n + 32 * r + l] = ds * q;
                    }
                }
            }
        }
    }

    /// Dot product of one super-block with 256 activations.
    #[inline(always)]
    #[must_use]
    pub fn dot(block: &[u8; BLOCK_BYTES], x: &[f32; BLOCK_LEN]) -> f32 {
        let mut total = 0f32;
        for n in 0..2 {
            for k in 0..2 {
                // One accumulator set per row r: elements 128n + 32r + 16k + i.
                let mut acc = [[0f32; 16]; 4];
                for i in 0..16 {
                    let l = 16 * k + i;
                    let q = quad(block, n, l);
                    for (r, (acc, q)) in acc.iter_mut().zip(q).enumerate() {
                        acc[i] = q * x[128 * n + 32 * r + l];
                    }
                }
                for (r, acc) in acc.iter().enumerate() {
                    total += scale(block, 8 * n + k + 2 * r) * sum16(acc);
                }
            }
        }
        half(block[208], block[209]) * total
    }
}

/// Q8_K: `f32 d`, 256 signed bytes, 16 `i16` group sums (unused for decoding).
pub mod q8_k {
    use super::{BLOCK_LEN, dot_decoded};

    /// Bytes per super-block.
    pub const BLOCK_BYTES: usize = 292;

    /// Decodes one super-block.
    #[inline(always)]
    pub fn decode(block: &[u8; BLOCK_BYTES], out: &mut [f32; BLOCK_LEN]) {
        let d = f32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        for (i, o) in out.iter_mut().enumerate() {
            *o = d * f32::from(block[4 + i].cast_signed());
        }
    }

    /// Dot product of one super-block with 256 activations.
    #[inline(always)]
    #[must_use]
    pub fn dot(block: &[u8; BLOCK_BYTES], x: &[f32; BLOCK_LEN]) -> f32 {
        let mut decoded = [0f32; BLOCK_LEN];
        decode(block, &mut decoded);
        dot_decoded(&decoded, x)
    }
}

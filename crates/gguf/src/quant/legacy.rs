//! The original 32-element block formats: Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0.
//!
//! In the 4- and 5-bit formats byte `j` of the packed quants holds element
//! `j` in its low nibble and element `j + 16` in its high nibble.

use super::f16_to_f32;

/// Elements per block in every format of this module.
pub const BLOCK_LEN: usize = 32;

#[inline(always)]
fn half(lo: u8, hi: u8) -> f32 {
    f16_to_f32(u16::from_le_bytes([lo, hi]))
}

/// Sums 16 lanes in a fixed tree order.
#[inline(always)]
pub(super) fn sum16(acc: &[f32; 16]) -> f32 {
    let mut lanes = [0f32; 8];
    for i in 0..8 {
        lanes[i] = acc[i] + acc[i + 8];
    }
    super::sum_lanes(lanes)
}

/// Q4_0: `f16 d`, 16 bytes of nibbles; value = `d · (q − 8)`.
pub mod q4_0 {
    use super::{BLOCK_LEN, half, sum16};

    /// Bytes per block.
    pub const BLOCK_BYTES: usize = 18;

    /// Decodes one block.
    #[inline(always)]
    pub fn decode(block: &[u8; BLOCK_BYTES], out: &mut [f32; BLOCK_LEN]) {
        let [d0, d1, qs @ ..] = block;
        let d = half(*d0, *d1);
        for j in 0..16 {
            out[j] = f32::from(i16::from(qs[j] & 0x0f) - 8) * d;
            out[j + 16] = f32::from(i16::from(qs[j] >> 4) - 8) * d;
        }
    }

    /// Dot product of one block with 32 activations.
    #[inline(always)]
    #[must_use]
    pub fn dot(block: &[u8; BLOCK_BYTES], x: &[f32; BLOCK_LEN]) -> f32 {
        let [d0, d1, qs @ ..] = block;
        let mut acc = [0f32; 16];
        for j in 0..16 {
            let lo = f32::from(i16::from(qs[j] & 0x0f) - 8);
            let hi = f32::from(i16::from(qs[j] >> 4) - 8);
            acc[j] = lo * x[j] + hi * x[j + 16];
        }
        half(*d0, *d1) * sum16(&acc)
    }
}

/// Q4_1: `f16 d`, `f16 m`, 16 bytes of nibbles; value = `d · q + m`.
pub mod q4_1 {
    use super::{BLOCK_LEN, half, sum16};

    /// Bytes per block.
    pub const BLOCK_BYTES: usize = 20;

    /// Decodes one block.
    #[inline(always)]
    pub fn decode(block: &[u8; BLOCK_BYTES], out: &mut [f32; BLOCK_LEN]) {
        let [d0, d1, m0, m1, qs @ ..] = block;
        let d = half(*d0, *d1);
        let m = half(*m0, *m1);
        for j in 0..16 {
            out[j] = f32::from(qs[j] & 0x0f) * d + m;
            out[j + 16] = f32::from(qs[j] >> 4) * d + m;
        }
    }

    /// Dot product of one block with 32 activations:
    /// `d · Σ q·x + m · Σ x`.
    #[inline(always)]
    #[must_use]
    pub fn dot(block: &[u8; BLOCK_BYTES], x: &[f32; BLOCK_LEN]) -> f32 {
        let [d0, d1, m0, m1, qs @ ..] = block;
        let mut qx = [0f32; 16];
        let mut sx = [0f32; 16];
        for j in 0..16 {
            qx[j] = f32::from(qs[j] & 0x0f) * x[j] + f32::from(qs[j] >> 4) * x[j + 16];
            sx[j] = x[j] + x[j + 16];
        }
        half(*d0, *d1) * sum16(&qx) + half(*m0, *m1) * sum16(&sx)
    }
}

/// Q5_0: `f16 d`, 32 high bits (`u32`), 16 bytes of low nibbles; value = `d · (q − 16)`.
pub mod q5_0 {
    use super::{BLOCK_LEN, half, sum16};

    /// Bytes per block.
    pub const BLOCK_BYTES: usize = 22;

    #[inline(always)]
    fn quants(block: &[u8; BLOCK_BYTES]) -> (f32, [i16; BLOCK_LEN]) {
        let [d0, d1, h0, h1, h2, h3, qs @ ..] = block;
        let qh = u32::from_le_bytes([*h0, *h1, *h2, *h3]);
        let mut q = [0i16; BLOCK_LEN];
        for j in 0..16 {
            let hi_lo = ((qh >> j) & 1) << 4;
            let hi_hi = ((qh >> (j + 16)) & 1) << 4;
            q[j] = i16::from(qs[j] & 0x0f) + hi_lo as i16 - 16;
            q[j + 16] = i16::from(qs[j] >> 4) + hi_hi as i16 - 16;
        }
        (half(*d0, *d1), q)
    }

    /// Decodes one block.
    #[inline(always)]
    pub fn decode(block: &[u8; BLOCK_BYTES], out: &mut [f32; BLOCK_LEN]) {
        let (d, q) = quants(block);
        for j in 0..BLOCK_LEN {
            out[j] = f32::from(q[j]) * d;
        }
    }

    /// Dot product of one block with 32 activations.
    #[inline(always)]
    #[must_use]
    pub fn dot(block: &[u8; BLOCK_BYTES], x: &[f32; BLOCK_LEN]) -> f32 {
        let (d, q) = quants(block);
        let mut acc = [0f32; 16];
        for j in 0..16 {
            acc[j] = f32::from(q[j]) * x[j] + f32::from(q[j + 16]) * x[j + 16];
        }
        d * sum16(&acc)
    }
}

/// Q5_1: `f16 d`, `f16 m`, 32 high bits, 16 bytes of low nibbles; value = `d · q + m`.
pub mod q5_1 {
    use super::{BLOCK_LEN, half, sum16};

    /// Bytes per block.
    pub const BLOCK_BYTES: usize = 24;

    #[inline(always)]
    fn quants(block: &[u8; BLOCK_BYTES]) -> (f32, f32, [u8; BLOCK_LEN]) {
        let [d0, d1, m0, m1, h0, h1, h2, h3, qs @ ..] = block;
        let qh = u32::from_le_bytes([*h0, *h1, *h2, *h3]);
        let mut q = [0u8; BLOCK_LEN];
        for j in 0..16 {
            let hi_lo = (((qh >> j) & 1) << 4) as u8;
            let hi_hi = (((qh >> (j + 16)) & 1) << 4) as u8;
            q[j] = (qs[j] & 0x0f) | hi_lo;
            q[j + 16] = (qs[j] >> 4) | hi_hi;
        }
        (half(*d0, *d1), half(*m0, *m1), q)
    }

    /// Decodes one block.
    #[inline(always)]
    pub fn decode(block: &[u8; BLOCK_BYTES], out: &mut [f32; BLOCK_LEN]) {
        let (d, m, q) = quants(block);
        for j in 0..BLOCK_LEN {
            out[j] = f32::from(q[j]) * d + m;
        }
    }

    /// Dot product of one block with 32 activations.
    #[inline(always)]
    #[must_use]
    pub fn dot(block: &[u8; BLOCK_BYTES], x: &[f32; BLOCK_LEN]) -> f32 {
        let (d, m, q) = quants(block);
        let mut qx = [0f32; 16];
        let mut sx = [0f32; 16];
        for j in 0..16 {
            qx[j] = f32::from(q[j]) * x[j] + f32::from(q[j + 16]) * x[j + 16];
            sx[j] = x[j] + x[j + 16];
        }
        d * sum16(&qx) + m * sum16(&sx)
    }
}

/// Q8_0: `f16 d`, 32 signed bytes; value = `d · q`.
pub mod q8_0 {
    use super::{BLOCK_LEN, half, sum16};

    /// Bytes per block.
    pub const BLOCK_BYTES: usize = 34;

    /// Decodes one block.
    #[inline(always)]
    pub fn decode(block: &[u8; BLOCK_BYTES], out: &mut [f32; BLOCK_LEN]) {
        let [d0, d1, qs @ ..] = block;
        let d = half(*d0, *d1);
        for j in 0..BLOCK_LEN {
            out[j] = f32::from(qs[j].cast_signed()) * d;
        }
    }

    /// Dot product of one block with 32 activations.
    #[inline(always)]
    #[must_use]
    pub fn dot(block: &[u8; BLOCK_BYTES], x: &[f32; BLOCK_LEN]) -> f32 {
        let [d0, d1, qs @ ..] = block;
        let mut acc = [0f32; 16];
        for j in 0..16 {
            acc[j] = f32::from(qs[j].cast_signed()) * x[j]
                + f32::from(qs[j + 16].cast_signed()) * x[j + 16];
        }
        half(*d0, *d1) * sum16(&acc)
    }
}

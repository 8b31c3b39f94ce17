//! Conversions of the plain element types (half floats, doubles, integers) to `f32`.

/// `2^-24`: the value of the last mantissa bit of a half subnormal.
const HALF_SUBNORMAL_UNIT: f32 = f32::from_bits((127 - 24) << 23);

/// Converts IEEE-754 half-precision bits to `f32`, exactly, for every input
/// (zeros, subnormals, infinities and NaN payloads included).
///
/// Normal values are rebiased with integer arithmetic, and subnormals are
/// converted from their integer mantissa, so no floating-point operation ever
/// sees a denormal operand: on x86 those take a microcode assist of ~100
/// cycles, and when the compiler packs several conversions into one vector
/// instruction even unused lanes can trigger it. The three cases are selects,
/// so loops over this function vectorize.
#[inline(always)]
#[must_use]
pub fn f16_to_f32(bits: u16) -> f32 {
    let h = u32::from(bits);
    let sign = (h & 0x8000) << 16;
    let exponent = h & 0x7c00;
    let shifted = (h & 0x7fff) << 13;
    // Exponent bias 15 → 127.
    let normal = shifted + ((127 - 15) << 23);
    // Infinity and NaN keep their mantissa (the NaN payload).
    let special = shifted | 0x7f80_0000;
    // Zero and subnormals: mantissa · 2^-24, exact in f32.
    #[allow(clippy::cast_precision_loss)]
    let subnormal = ((h & 0x03ff) as f32 * HALF_SUBNORMAL_UNIT).to_bits();
    let value = if exponent == 0x7c00 {
        special
    } else if exponent == 0 {
        subnormal
    } else {
        normal
    };
    f32::from_bits(sign | value)
}

/// Rounds `x` to the nearest half-precision value (ties to even) and returns it as `f32`:
/// what storing it in an IEEE-754 half and reading it back gives. Beyond the half range the
/// result is an infinity; NaN stays NaN.
#[inline(always)]
#[must_use]
pub fn round_to_f16(x: f32) -> f32 {
    /// `2^-14`, the smallest normal half.
    const HALF_MIN_NORMAL: f32 = f32::from_bits((127 - 14) << 23);
    /// 65504 plus half a step: from here on a half rounds to infinity.
    const HALF_OVERFLOW: f32 = 65520.0;
    let magnitude = x.abs();
    if magnitude.is_nan() {
        return x;
    }
    if magnitude >= HALF_OVERFLOW {
        return f32::INFINITY.copysign(x);
    }
    if magnitude < HALF_MIN_NORMAL {
        // Subnormal halves are multiples of 2^-24; scaling by powers of two is exact.
        return (x / HALF_SUBNORMAL_UNIT).round_ties_even() * HALF_SUBNORMAL_UNIT;
    }
    // Keep 10 of the 23 mantissa bits, rounding the 13 dropped ones to nearest, ties to even
    // (a carry into the exponent is the right answer).
    let bits = x.to_bits();
    let rounded = bits + 0x0fff + ((bits >> 13) & 1);
    f32::from_bits(rounded & !0x1fff)
}

/// Converts bfloat16 bits to `f32` (exact: bfloat16 is the top half of an `f32`).
#[inline(always)]
#[must_use]
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

pub(super) fn decode_f32(data: &[u8], out: &mut [f32]) {
    let (chunks, _) = data.as_chunks::<4>();
    for (o, c) in out.iter_mut().zip(chunks) {
        *o = f32::from_le_bytes(*c);
    }
}

pub(super) fn decode_f16(data: &[u8], out: &mut [f32]) {
    let (chunks, _) = data.as_chunks::<2>();
    for (o, c) in out.iter_mut().zip(chunks) {
        *o = f16_to_f32(u16::from_le_bytes(*c));
    }
}

pub(super) fn decode_bf16(data: &[u8], out: &mut [f32]) {
    let (chunks, _) = data.as_chunks::<2>();
    for (o, c) in out.iter_mut().zip(chunks) {
        *o = bf16_to_f32(u16::from_le_bytes(*c));
    }
}

#[allow(clippy::cast_possible_truncation)]
pub(super) fn decode_f64(data: &[u8], out: &mut [f32]) {
    let (chunks, _) = data.as_chunks::<8>();
    for (o, c) in out.iter_mut().zip(chunks) {
        *o = f64::from_le_bytes(*c) as f32;
    }
}

pub(super) fn decode_i8(data: &[u8], out: &mut [f32]) {
    for (o, &b) in out.iter_mut().zip(data) {
        *o = f32::from(b.cast_signed());
    }
}

pub(super) fn decode_i16(data: &[u8], out: &mut [f32]) {
    let (chunks, _) = data.as_chunks::<2>();
    for (o, c) in out.iter_mut().zip(chunks) {
        *o = f32::from(i16::from_le_bytes(*c));
    }
}

#[allow(clippy::cast_precision_loss)]
pub(super) fn decode_i32(data: &[u8], out: &mut [f32]) {
    let (chunks, _) = data.as_chunks::<4>();
    for (o, c) in out.iter_mut().zip(chunks) {
        *o = i32::from_le_bytes(*c) as f32;
    }
}

#[allow(clippy::cast_precision_loss)]
pub(super) fn decode_i64(data: &[u8], out: &mut [f32]) {
    let (chunks, _) = data.as_chunks::<8>();
    for (o, c) in out.iter_mut().zip(chunks) {
        *o = i64::from_le_bytes(*c) as f32;
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn every_half_survives_rounding_and_midpoints_go_to_even() {
        for bits in 0..=u16::MAX {
            let h = f16_to_f32(bits);
            let r = round_to_f16(h);
            if h.is_nan() {
                assert!(r.is_nan());
                continue;
            }
            assert_eq!(r.to_bits(), h.to_bits(), "half {bits:#06x}");
            // Between this half and the next one away from zero, the midpoint rounds to the
            // one with an even mantissa; a quarter of the way rounds back.
            if bits & 0x7fff >= 0x7bff {
                continue;
            }
            let next = f16_to_f32(bits + 1);
            let mid = (h + next) / 2.0;
            let even = if bits & 1 == 0 { h } else { next };
            assert_eq!(
                round_to_f16(mid).to_bits(),
                even.to_bits(),
                "mid after {bits:#06x}"
            );
            let quarter = h + (next - h) / 4.0;
            assert_eq!(
                round_to_f16(quarter).to_bits(),
                h.to_bits(),
                "after {bits:#06x}"
            );
        }
        assert_eq!(round_to_f16(65519.0), 65504.0);
        assert_eq!(round_to_f16(65520.0), f32::INFINITY);
        assert_eq!(round_to_f16(-1e9), f32::NEG_INFINITY);
        assert!(round_to_f16(f32::NAN).is_nan());
        assert_eq!(round_to_f16(1e-10), 0.0);
    }
    use super::*;

    /// Reference value of a half from its definition, computed in `f64`.
    fn half_by_definition(bits: u16) -> f64 {
        let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
        let exp = i32::from((bits >> 10) & 0x1f);
        let mant = f64::from(bits & 0x3ff);
        match exp {
            0 => sign * mant * 2f64.powi(-24),
            31 if mant == 0.0 => sign * f64::INFINITY,
            31 => f64::NAN,
            e => sign * (1.0 + mant / 1024.0) * 2f64.powi(e - 15),
        }
    }

    #[test]
    fn every_half_converts_exactly() {
        for bits in 0..=u16::MAX {
            let got = f16_to_f32(bits);
            let want = half_by_definition(bits);
            if want.is_nan() {
                assert!(got.is_nan(), "{bits:#06x}");
                // The payload is kept, shifted into the f32 mantissa.
                assert_eq!(got.to_bits() & 0x007f_e000, u32::from(bits & 0x3ff) << 13);
            } else {
                assert_eq!(f64::from(got), want, "{bits:#06x}");
                assert_eq!(got.is_sign_negative(), bits & 0x8000 != 0, "{bits:#06x}");
            }
        }
    }

    #[test]
    fn bf16_is_the_high_half() {
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
        assert_eq!(bf16_to_f32(0xc000), -2.0);
        assert!(bf16_to_f32(0x7fc0).is_nan());
    }
}

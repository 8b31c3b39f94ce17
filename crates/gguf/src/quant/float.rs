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

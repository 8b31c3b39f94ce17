//! Prints a GGUF file's metadata and tensor table, then decodes every tensor
//! it can and reports how long reading, parsing and decoding took.
//!
//! `cargo run --release -p cocoon-gguf --example inspect -- MODEL.gguf`

use std::collections::BTreeMap;
use std::time::Instant;

use cocoon_gguf::{Gguf, MetadataValue};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: inspect FILE.gguf");
        std::process::exit(2);
    };
    let start = Instant::now();
    let bytes = std::fs::read(&path)?;
    let read = start.elapsed();
    let start = Instant::now();
    let gguf = Gguf::parse(bytes)?;
    let parsed = start.elapsed();

    println!(
        "GGUF v{}, alignment {}, data at {}, {} metadata entries, {} tensors",
        gguf.version(),
        gguf.alignment(),
        gguf.data_offset(),
        gguf.metadata_len(),
        gguf.tensors().len()
    );
    for (key, value) in gguf.metadata() {
        match value {
            MetadataValue::String(s) if s.len() > 120 => {
                println!("  {key} = string of {} bytes", s.len());
            }
            other => println!("  {key} = {other:?}"),
        }
    }
    let mut by_type: BTreeMap<String, (usize, u64, u64)> = BTreeMap::new();
    for t in gguf.tensors() {
        let entry = by_type.entry(t.ty.to_string()).or_default();
        entry.0 += 1;
        entry.1 += t.element_count();
        entry.2 += t.size;
    }
    for (ty, (count, elements, bytes)) in &by_type {
        println!("  {count:4} tensors {ty:6} {elements:12} elements {bytes:12} bytes");
    }

    let start = Instant::now();
    let mut decoded = 0u64;
    let mut skipped = Vec::new();
    let mut buffer = Vec::new();
    for view in gguf.tensor_views() {
        if !view.ty().can_dequantize() {
            skipped.push(view.name().to_owned());
            continue;
        }
        buffer.resize(usize::try_from(view.info().element_count())?, 0.0);
        view.dequantize_into(&mut buffer)?;
        decoded += view.info().element_count();
    }
    let decode = start.elapsed();
    println!(
        "read {:.1} ms, parse {:.1} ms, decode {decoded} values {:.1} ms ({:.2} Gvalues/s)",
        read.as_secs_f64() * 1e3,
        parsed.as_secs_f64() * 1e3,
        decode.as_secs_f64() * 1e3,
        decoded as f64 / decode.as_secs_f64() / 1e9
    );
    if !skipped.is_empty() {
        println!("no decoder for {} tensors: {:?}", skipped.len(), skipped);
    }
    Ok(())
}

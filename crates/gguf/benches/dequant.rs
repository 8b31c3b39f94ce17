//! Dequantization and quantized dot-product throughput per tensor type, on
//! 1 Mi elements of synthetic blocks (about the size of one SmolLM2 FFN matrix).
#![allow(missing_docs, clippy::unwrap_used)]

use cocoon_gguf::GgmlType;
use cocoon_gguf::quant::{dequantize, dot};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const ELEMENTS: usize = 1 << 20;

/// Deterministic block bytes; every f16 field a block has is set to a small
/// finite scale so the decoded values are ordinary numbers.
fn blocks(ty: GgmlType) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let n = ELEMENTS / ty.block_len() * ty.block_bytes();
    let mut bytes: Vec<u8> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let halves: &[usize] = match ty {
        GgmlType::Q4_0 | GgmlType::Q8_0 | GgmlType::Q5_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        // plain halves: keep them finite by clearing the top exponent bit
        GgmlType::F16 => {
            for pair in bytes.chunks_mut(2) {
                pair[1] &= 0xbf;
            }
            &[]
        }
        _ => &[],
    };
    for block in bytes.chunks_mut(ty.block_bytes()) {
        for &at in halves {
            block[at..at + 2].copy_from_slice(&0x2c00u16.to_le_bytes()); // 1/16
        }
    }
    bytes
}

fn bench(c: &mut Criterion) {
    let types = [
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ];
    let mut group = c.benchmark_group("dequantize");
    group.throughput(Throughput::Elements(ELEMENTS as u64));
    let mut out = vec![0f32; ELEMENTS];
    for ty in types {
        let data = blocks(ty);
        group.bench_function(ty.to_string(), |b| {
            b.iter(|| dequantize(ty, &data, &mut out).unwrap());
        });
    }
    group.finish();

    let mut group = c.benchmark_group("dot");
    group.throughput(Throughput::Elements(ELEMENTS as u64));
    let x: Vec<f32> = (0..ELEMENTS).map(|i| (i % 13) as f32 * 0.1 - 0.6).collect();
    for ty in types {
        let data = blocks(ty);
        group.bench_function(ty.to_string(), |b| {
            b.iter(|| dot(ty, &data, &x).unwrap());
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

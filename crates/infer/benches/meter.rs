//! Cost of metering one answer: the reference benchmark's 50 chunks of 128 bytes of content,
//! as vLLM-style SSE (with the final usage chunk and `[DONE]`) and as the reference's NDJSON,
//! fed to [`UsageMeter`] one network chunk at a time as the relay would. For scale, the same
//! SSE answer with every event parsed into a `serde_json::Value`, the naive way to meter.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use cocoon_infer::usage::{BodyFormat, UsageMeter, UsageSource};

const CHUNKS: usize = 50;
const CHUNK_BYTES: usize = 128;

fn content(i: usize) -> String {
    let word = format!("w{i} ");
    word.repeat(CHUNK_BYTES / word.len() + 1)[..CHUNK_BYTES].to_owned()
}

/// The answer as the network delivers it: one piece per event.
fn sse_answer() -> Vec<Vec<u8>> {
    let mut pieces = Vec::new();
    for i in 0..CHUNKS {
        let event = serde_json::json!({
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "Qwen/Qwen3-8B",
            "choices": [{
                "index": 0,
                "delta": {"content": content(i)},
                "logprobs": null,
                "finish_reason": if i + 1 == CHUNKS { Some("stop") } else { None },
            }],
        });
        pieces.push(format!("data: {event}\n\n").into_bytes());
    }
    let usage = serde_json::json!({
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "Qwen/Qwen3-8B",
        "choices": [],
        "usage": {
            "prompt_tokens": 20, "completion_tokens": 50, "total_tokens": 70,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    });
    pieces.push(format!("data: {usage}\n\n").into_bytes());
    pieces.push(b"data: [DONE]\n\n".to_vec());
    pieces
}

fn ndjson_answer() -> Vec<Vec<u8>> {
    let mut pieces: Vec<Vec<u8>> = (0..CHUNKS)
        .map(|i| format!("{}\n", serde_json::json!({"delta": content(i), "i": i})).into_bytes())
        .collect();
    pieces.push(
        b"{\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":50,\"total_tokens\":70}}\n"
            .to_vec(),
    );
    pieces
}

fn meter(pieces: &[Vec<u8>], format: BodyFormat) -> u64 {
    let mut meter = UsageMeter::new(format);
    for piece in pieces {
        meter.feed(black_box(piece));
    }
    let metered = meter.metered();
    assert_eq!(metered.source, UsageSource::Reported);
    metered.usage.completion_tokens
}

fn naive(pieces: &[Vec<u8>]) -> u64 {
    let mut completion = 0;
    for piece in pieces {
        let Some(payload) = piece.strip_prefix(b"data: ") else {
            continue;
        };
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(payload)
            && let Some(tokens) = value["usage"]["completion_tokens"].as_u64()
        {
            completion = tokens;
        }
    }
    completion
}

fn bench(c: &mut Criterion) {
    let sse = sse_answer();
    let ndjson = ndjson_answer();
    let mut group = c.benchmark_group("meter_per_request");
    let sse_bytes: usize = sse.iter().map(Vec::len).sum();
    group.throughput(Throughput::Bytes(sse_bytes as u64));
    group.bench_function("sse_50x128", |b| b.iter(|| meter(&sse, BodyFormat::Sse)));
    group.bench_function("sse_50x128_auto", |b| {
        b.iter(|| meter(&sse, BodyFormat::Auto))
    });
    group.bench_function("serde_value_every_event_50x128", |b| b.iter(|| naive(&sse)));
    let ndjson_bytes: usize = ndjson.iter().map(Vec::len).sum();
    group.throughput(Throughput::Bytes(ndjson_bytes as u64));
    group.bench_function("ndjson_50x128", |b| {
        b.iter(|| meter(&ndjson, BodyFormat::Auto))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

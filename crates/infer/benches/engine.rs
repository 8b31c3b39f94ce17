//! Speed of the built-in engine on the default model, greedy, CPU: prompt (prefill) tokens
//! per second, decode tokens per second at batch 1 and at batch 8 (eight sequences sharing
//! each forward pass), and peak resident memory. Prints one line per figure; skipped when
//! the model is not cached.
//!
//! `cargo bench -p cocoon-infer --bench engine -- [PROMPT_TOKENS] [DECODE_TOKENS] [ROUNDS] [THREADS]`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use cocoon_infer::builtin::sampling::argmax;
use cocoon_infer::builtin::{
    BatchStep, CpuBackend, LoadOptions, ModelStore, SMOLLM2_135M_Q4_1, TextModel,
};

fn arg(args: &[usize], i: usize, default: usize) -> usize {
    args.get(i).copied().unwrap_or(default)
}

/// Peak resident set size of this process, MiB (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; numeric arguments are ours.
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (prompt_len, decode_len, rounds, threads) = (
        arg(&args, 0, 128),
        arg(&args, 1, 128),
        arg(&args, 2, 3),
        arg(&args, 3, 0),
    );
    let path = ModelStore::user_default()
        .unwrap()
        .path_of(&SMOLLM2_135M_Q4_1);
    if !path.exists() {
        eprintln!("skipping: {} not found", path.display());
        return;
    }
    let start = Instant::now();
    let options = LoadOptions {
        threads,
        ..LoadOptions::default()
    };
    let model = TextModel::<CpuBackend>::open_with(&path, &Default::default(), options).unwrap();
    println!("load: {:.2} s", start.elapsed().as_secs_f64());

    // A prompt of exactly `prompt_len` tokens: ordinary text, repeated.
    let text =
        "The quick brown fox jumps over the lazy dog while the city sleeps. ".repeat(prompt_len);
    let mut prompt = model.encode_text(&text).unwrap();
    prompt.truncate(prompt_len);

    let mut prefill = Vec::new();
    let mut decode = Vec::new();
    for _ in 0..rounds {
        let mut cache = model.new_cache();
        let t = Instant::now();
        let mut logits = model.forward(&prompt, &mut cache).unwrap();
        prefill.push(t.elapsed());
        let t = Instant::now();
        for _ in 0..decode_len {
            let next = argmax(&logits).unwrap();
            logits = model.forward(&[next], &mut cache).unwrap();
        }
        decode.push(t.elapsed());
    }
    let p = median(&mut prefill);
    let d = median(&mut decode);
    println!(
        "prompt {prompt_len} tokens: {:.1} tok/s (median of {rounds}, {:.0} ms)",
        prompt_len as f64 / p.as_secs_f64(),
        p.as_secs_f64() * 1e3
    );
    println!(
        "decode {decode_len} tokens: {:.1} tok/s (median of {rounds}, {:.0} ms)",
        decode_len as f64 / d.as_secs_f64(),
        d.as_secs_f64() * 1e3
    );

    // Batch 8: eight sequences with different short prompts, decoded together.
    let batch = 8;
    let mut batched = Vec::new();
    for _ in 0..rounds {
        let mut caches: Vec<_> = (0..batch).map(|_| model.new_cache()).collect();
        let mut next: Vec<u32> = Vec::new();
        for (i, cache) in caches.iter_mut().enumerate() {
            let logits = model.forward(&prompt[i..i + 16], cache).unwrap();
            next.push(argmax(&logits).unwrap());
        }
        let t = Instant::now();
        for _ in 0..decode_len {
            let tokens: Vec<[u32; 1]> = next.iter().map(|&id| [id]).collect();
            let mut steps: Vec<BatchStep<'_, CpuBackend>> = caches
                .iter_mut()
                .zip(&tokens)
                .map(|(cache, t)| BatchStep {
                    tokens: t,
                    cache,
                    logits: true,
                })
                .collect();
            let logits = model.forward_batch(&mut steps).unwrap();
            next = logits
                .iter()
                .map(|l| argmax(l.as_deref().unwrap()).unwrap())
                .collect();
        }
        batched.push(t.elapsed());
    }
    let b = median(&mut batched);
    println!(
        "decode batch {batch} x {decode_len} tokens: {:.1} tok/s (median of {rounds}, {:.0} ms)",
        (batch * decode_len) as f64 / b.as_secs_f64(),
        b.as_secs_f64() * 1e3
    );
    if let Some(rss) = peak_rss_mib() {
        println!("peak RSS: {rss:.0} MiB");
    }
}

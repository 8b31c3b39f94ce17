//! Batch-1 speed of the built-in engine on the default model: prompt (prefill) and decode
//! tokens per second, greedy, on the CPU backend. Prints one line per measurement; skipped
//! when the model is not cached.
//!
//! `cargo bench -p cocoon-infer --bench engine -- [PROMPT_TOKENS] [DECODE_TOKENS] [ROUNDS]`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use cocoon_infer::builtin::{CpuBackend, ModelStore, SMOLLM2_135M_Q4_1, TextModel};

fn arg(args: &[usize], i: usize, default: usize) -> usize {
    args.get(i).copied().unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; numeric arguments are ours.
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (prompt_len, decode_len, rounds) =
        (arg(&args, 0, 128), arg(&args, 1, 128), arg(&args, 2, 3));
    let path = ModelStore::user_default()
        .unwrap()
        .path_of(&SMOLLM2_135M_Q4_1);
    if !path.exists() {
        eprintln!("skipping: {} not found", path.display());
        return;
    }
    let start = Instant::now();
    let model = TextModel::<CpuBackend>::open(&path, &Default::default()).unwrap();
    println!("load: {:.2} s", start.elapsed().as_secs_f64());
    let llama = model.llama();

    // A prompt of exactly `prompt_len` tokens: ordinary text, repeated.
    let text =
        "The quick brown fox jumps over the lazy dog while the city sleeps. ".repeat(prompt_len);
    let mut prompt = model.encode_text(&text).unwrap();
    prompt.truncate(prompt_len);

    let mut prefill = Vec::new();
    let mut decode = Vec::new();
    for _ in 0..rounds {
        let mut cache = llama.new_cache();
        let t = Instant::now();
        let mut logits = llama.forward(&prompt, &mut cache).unwrap();
        prefill.push(t.elapsed());
        let t = Instant::now();
        for _ in 0..decode_len {
            let next = cocoon_infer::builtin::sampling::argmax(&logits).unwrap();
            logits = llama.forward(&[next], &mut cache).unwrap();
        }
        decode.push(t.elapsed());
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
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
}

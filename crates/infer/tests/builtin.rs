//! The built-in engine on the real default model: greedy outputs must match the reference
//! texts recorded with llama.cpp (see the design notes on the model). Skipped, with a
//! message, when the model file is not in the local cache.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::OnceLock;

use cocoon_infer::builtin::{
    CpuBackend, FinishReason, ModelStore, SMOLLM2_135M_Q4_1, Sampler, TextModel,
};
use cocoon_infer::tokenizer::{ChatMessage, ChatTemplate, Role};

fn model_path() -> Option<PathBuf> {
    let store = ModelStore::user_default().ok()?;
    let path = store.path_of(&SMOLLM2_135M_Q4_1);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "skipping: {} not found (run the model fetch first)",
            path.display()
        );
        None
    }
}

fn model() -> Option<&'static TextModel<CpuBackend>> {
    static MODEL: OnceLock<Option<TextModel<CpuBackend>>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let path = model_path()?;
            let mut model = TextModel::open(&path, &Default::default()).unwrap();
            model.set_template(ChatTemplate::chatml());
            Some(model)
        })
        .as_ref()
}

#[test]
fn cached_default_model_has_pinned_digest() {
    let Some(path) = model_path() else { return };
    let store = ModelStore::new(path.parent().unwrap());
    assert_eq!(store.cached(&SMOLLM2_135M_Q4_1).unwrap(), Some(path));
}

#[test]
fn greedy_chat_answer_matches_reference() {
    let Some(model) = model() else { return };
    let messages = [
        ChatMessage::new(Role::System, "You are a helpful assistant."),
        ChatMessage::new(Role::User, "What is the capital of France?"),
    ];
    let prompt = model.encode_chat(&messages).unwrap();
    let mut streamed = String::new();
    let out = model
        .generate(&prompt, 64, &mut Sampler::greedy(), |piece| {
            streamed.push_str(piece);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(out.text, "The capital of France is Paris.");
    assert_eq!(streamed, out.text);
    assert_eq!(out.finish, FinishReason::Stop);
    assert_eq!(out.prompt_tokens, prompt.len());
}

#[test]
fn greedy_plain_continuation_matches_reference() {
    let Some(model) = model() else { return };
    let prompt = model.encode_text("Once upon a time").unwrap();
    let out = model
        .generate(&prompt, 12, &mut Sampler::greedy(), |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
    assert!(
        out.text
            .starts_with(", the city of Nova Haven was a thriving metropolis"),
        "got {:?}",
        out.text
    );
    assert_eq!(out.finish, FinishReason::Length);
    assert_eq!(out.tokens.len(), 12);
}

#[test]
fn incremental_decoding_equals_one_pass_prefill() {
    let Some(model) = model() else { return };
    let llama = model;
    let ids = model.encode_text("The quick brown fox jumps").unwrap();
    let mut whole = llama.new_cache();
    let full = llama.forward(&ids, &mut whole).unwrap();
    let mut step = llama.new_cache();
    let mut last = Vec::new();
    for id in &ids {
        last = llama.forward(&[*id], &mut step).unwrap();
    }
    assert_eq!(step.len(), ids.len());
    let max_diff = full
        .iter()
        .zip(&last)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(max_diff < 1e-2, "logits differ by {max_diff}");
}

#[test]
fn stopping_from_the_callback_cancels() {
    let Some(model) = model() else { return };
    let prompt = model.encode_text("Once upon a time").unwrap();
    let mut calls = 0;
    let out = model
        .generate(&prompt, 50, &mut Sampler::greedy(), |_| {
            calls += 1;
            if calls == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(out.finish, FinishReason::Cancelled);
    assert_eq!(out.tokens.len(), 3);
}

//! Tokenizers built from untrusted GGUF metadata, and SentencePiece encoding of arbitrary
//! text: building must fail with an error or succeed, never panic; a built tokenizer must
//! encode and decode any text; SentencePiece with every byte token must decode its own
//! encoding back to the text behind the leading space (text without a literal `▁`).

#![no_main]

use std::sync::OnceLock;

use cocoon_gguf::{Gguf, GgufWriter, WriteValue};
use cocoon_infer::tokenizer::{Specials, Tokenizer};
use libfuzzer_sys::fuzz_target;

/// A small SentencePiece vocabulary: `<unk>`, `<s>`, `</s>`, the 256 byte tokens and a few
/// pieces whose scores make merges compete.
fn sentence_piece() -> &'static Tokenizer {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>"].map(String::from).into();
        let mut types = vec![2, 3, 3];
        for b in 0..=255u8 {
            tokens.push(format!("<0x{b:02X}>"));
            types.push(6);
        }
        for piece in [
            "▁", "a", "b", "ab", "▁a", "▁ab", "ba", "aba", "▁▁", "é", "日本",
        ] {
            tokens.push(piece.to_owned());
            types.push(1);
        }
        let scores = (0..tokens.len()).map(|i| -(i as f32 % 7.0)).collect();
        let mut writer = GgufWriter::new();
        writer
            .metadata("tokenizer.ggml.model", WriteValue::Str("llama".into()))
            .metadata("tokenizer.ggml.tokens", WriteValue::StrArray(tokens))
            .metadata("tokenizer.ggml.token_type", WriteValue::I32Array(types))
            .metadata("tokenizer.ggml.scores", WriteValue::F32Array(scores));
        let gguf = Gguf::parse(writer.finish()).expect("the vocabulary is well-formed");
        Tokenizer::from_gguf(&gguf).expect("the vocabulary is supported")
    })
}

fuzz_target!(|input: &[u8]| {
    match input.split_first() {
        Some((0, text)) => {
            let text = String::from_utf8_lossy(text);
            // A literal `▁` decodes as a space: SentencePiece cannot tell them apart.
            if text.contains('▁') {
                return;
            }
            let t = sentence_piece();
            let ids = t
                .encode(&text, Specials::AsText)
                .expect("byte tokens cover all text");
            assert_eq!(
                t.decode(&ids, true).expect("ids in range"),
                format!(" {text}")
            );
        }
        Some((_, gguf)) => {
            let Ok(gguf) = Gguf::parse(gguf) else { return };
            let Ok(t) = Tokenizer::from_gguf(&gguf) else {
                return;
            };
            for specials in [Specials::Parse, Specials::AsText] {
                if let Ok(ids) = t.encode("Hello wörld 😀 12345 <s> <|im_end|>\n\t", specials) {
                    let _ = t.decode(&ids, true);
                }
            }
        }
        None => {}
    }
});

//! Speech model files (CTranslate2 `model.bin`) and vocabularies from outside: parsing any
//! bytes must give a model or a typed error, never a panic or an allocation beyond the
//! input, and every variable's data has the size its shape and type say.

#![no_main]

use cocoon_infer::builtin::whisper::ct2::Ct2Model;
use cocoon_infer::builtin::whisper::vocab::Vocabulary;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = Ct2Model::parse(data) {
        for name in ["encoder/conv1/weight", "decoder/embeddings/weight", "encoder/num_heads"] {
            if let Ok(v) = model.get(name) {
                let _ = v.scalar_int();
                let n: usize = v.shape.iter().product();
                assert_eq!(v.to_f32().len(), n);
            }
        }
    }
    if let Ok(vocab) = Vocabulary::parse(&String::from_utf8_lossy(data)) {
        let ids: Vec<u32> = data.iter().map(|&b| u32::from(b)).collect();
        let _ = vocab.decode(&ids, u32::MAX);
    }
});

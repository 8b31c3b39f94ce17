//! Fuzzes the GGUF parser and everything reachable from a parsed file:
//! metadata views, tensor views and dequantization.
#![no_main]

use cocoon_gguf::{Gguf, MetadataValue, quant};
use libfuzzer_sys::fuzz_target;

fn walk(value: MetadataValue<'_>) -> usize {
    match value {
        MetadataValue::Array(array) => array.iter().map(walk).sum::<usize>() + 1,
        MetadataValue::String(s) => s.len(),
        _ => 1,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(gguf) = Gguf::parse(data) else { return };
    let mut seen = 0usize;
    for (key, value) in gguf.metadata() {
        seen += key.len() + walk(value);
        let _ = format!("{value:?}");
    }
    for view in gguf.tensor_views() {
        assert_eq!(view.data().len() as u64, view.info().size);
        if !view.ty().can_dequantize() {
            continue;
        }
        let values = view.to_f32_vec().expect("validated tensor decodes");
        assert_eq!(values.len() as u64, view.info().element_count());
        let x = vec![1.0f32; values.len()];
        quant::dot(view.ty(), view.data(), &x).expect("validated tensor dots");
        seen += values.len();
    }
    std::hint::black_box(seen);
});

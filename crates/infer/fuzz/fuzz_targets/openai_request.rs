//! OpenAI request bodies from outside: any bytes parse into a checked request or a typed
//! error naming why, never a panic; a parsed request turned back into its body parses into the
//! same request, and that body is the one that came (the typed fields are forwarded exactly as
//! they were written).

#![no_main]

use cocoon_infer::Endpoint;
use cocoon_infer::request::OpenAiRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    // The first byte picks the endpoint; the rest is the body.
    let Some((&pick, bytes)) = input.split_first() else {
        return;
    };
    let endpoint = if pick & 1 == 0 {
        Endpoint::ChatCompletions
    } else {
        Endpoint::Completions
    };
    let extra = ["n_predict".to_owned()];
    let Ok(request) = OpenAiRequest::parse(endpoint, bytes, &extra) else {
        return;
    };
    let body = request.clone().into_body();
    // Compared as values: serde_json reads some floats it wrote back one unit off.
    let again = OpenAiRequest::from_object(endpoint, body.clone(), &extra);
    assert_eq!(again.ok(), Some(request));
    let came: serde_json::Value = serde_json::from_slice(bytes).expect("it parsed once");
    assert_eq!(serde_json::Value::Object(body), came);
});

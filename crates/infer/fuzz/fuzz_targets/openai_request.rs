//! OpenAI request bodies from outside: any bytes parse into a checked request or a typed
//! error naming why, never a panic; a parsed request turned back into its body (and into the
//! bytes an upstream is sent) parses into the same request, and that body is the one that came
//! (the typed fields are forwarded exactly as they were written).

#![no_main]

use cocoon_infer::Endpoint;
use cocoon_infer::request::OpenAiRequest;
use libfuzzer_sys::fuzz_target;

fn body_of(input: &[u8]) -> &[u8] {
    input.split_first().map_or(&[], |(_, body)| body)
}

fuzz_target!(|input: &[u8]| {
    // The first byte picks the endpoint; the rest is the body.
    let Some((&pick, body)) = input.split_first() else {
        return;
    };
    let endpoint = if pick & 1 == 0 {
        Endpoint::ChatCompletions
    } else {
        Endpoint::Completions
    };
    let extra = ["n_predict".to_owned()];
    let Ok(request) = OpenAiRequest::parse(endpoint, body, &extra) else {
        return;
    };
    let body = request.clone().into_body();
    let bytes = serde_json::to_vec(&body).expect("a JSON map encodes");
    let again = OpenAiRequest::parse(endpoint, &bytes, &extra);
    assert_eq!(again.ok(), Some(request.clone()));
    let came: serde_json::Value = serde_json::from_slice(body_of(input)).expect("it parsed once");
    assert_eq!(serde_json::Value::Object(body), came);
});

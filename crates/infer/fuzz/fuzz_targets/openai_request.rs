//! OpenAI request bodies from outside: any bytes parse into a checked request or a typed
//! error naming why, never a panic; a parsed request turned back into its body parses into the
//! same request.

#![no_main]

use cocoon_infer::Endpoint;
use cocoon_infer::request::OpenAiRequest;
use libfuzzer_sys::fuzz_target;

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
    let again = OpenAiRequest::from_object(endpoint, request.clone().into_body(), &extra);
    assert_eq!(again.ok(), Some(request));
});

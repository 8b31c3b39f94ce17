#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;

use super::*;

fn meter_whole(body: &[u8]) -> UsageMeter {
    let mut meter = UsageMeter::default();
    meter.feed(body);
    meter
}

fn meter_at(body: &[u8], cuts: &[usize]) -> UsageMeter {
    let mut meter = UsageMeter::default();
    let mut start = 0;
    for &cut in cuts {
        let cut = cut.clamp(start, body.len());
        meter.feed(&body[start..cut]);
        start = cut;
    }
    meter.feed(&body[start..]);
    meter
}

fn usage(prompt: u64, cached: u64, completion: u64, reasoning: u64) -> TokenUsage {
    TokenUsage {
        prompt_tokens: prompt,
        cached_tokens: cached,
        completion_tokens: completion,
        reasoning_tokens: reasoning,
    }
}

/// Feeds `body` whole, then cut at every single position and at every pair of positions
/// around the interesting middle, and checks each way gives the same result.
fn same_everywhere(body: &[u8]) -> MeteredUsage {
    let whole = meter_whole(body);
    let expected = whole.metered();
    for cut in 0..=body.len() {
        let split = meter_at(body, &[cut]);
        assert_eq!(split.metered(), expected, "cut at {cut}");
        assert_eq!(split.stats(), whole.stats(), "cut at {cut}");
        assert_eq!(split.saw_done(), whole.saw_done(), "cut at {cut}");
    }
    let bytewise: Vec<usize> = (1..body.len()).collect();
    assert_eq!(
        meter_at(body, &bytewise).metered(),
        expected,
        "byte by byte"
    );
    expected
}

const VLLM_CHAT: &str = concat!(
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",",
    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",",
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hé\"},\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",",
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"llo \\\"usage\\\": {}\"},\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",",
    "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],",
    "\"usage\":{\"prompt_tokens\":17,\"total_tokens\":20,\"completion_tokens\":3,",
    "\"prompt_tokens_details\":{\"cached_tokens\":16}}}\n\n",
    "data: [DONE]\n\n",
);

#[test]
fn vllm_sse_with_final_usage_chunk() {
    let metered = same_everywhere(VLLM_CHAT.as_bytes());
    assert_eq!(metered.source, UsageSource::Reported);
    assert_eq!(metered.usage, usage(17, 16, 3, 0));
    assert_eq!(metered.reported_total, Some(20));
    let meter = meter_whole(VLLM_CHAT.as_bytes());
    assert!(meter.saw_done());
    let stats = meter.stats();
    assert_eq!(stats.values, 6, "five chunks and [DONE]");
    assert_eq!(
        stats.content_values, 2,
        "role-only and finish-only chunks carry no text"
    );
    assert_eq!(stats.usage_objects, 1);
}

#[test]
fn the_same_stream_without_usage_is_estimated_from_its_chunks() {
    let body = VLLM_CHAT.replace(
        "\"usage\":{\"prompt_tokens\"",
        "\"x_usage\":{\"prompt_tokens\"",
    );
    let metered = same_everywhere(body.as_bytes());
    assert_eq!(metered.source, UsageSource::Estimated);
    assert_eq!(metered.usage, usage(0, 0, 2, 0));
    assert_eq!(metered.reported_total, None);
}

/// llama.cpp's stream with `timings_per_token` and `include_usage`, shortened: running
/// `timings` in every token chunk, `usage` (and the same timings) in the last.
const LLAMA_CPP_CHAT: &str = concat!(
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null}}],\"object\":\"chat.completion.chunk\"}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"timings\":{\"cache_n\":20,\"prompt_n\":11,\"prompt_ms\":12.5,\"predicted_n\":1,\"predicted_ms\":0.001}}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"!\"}}],\"timings\":{\"cache_n\":20,\"prompt_n\":11,\"prompt_ms\":12.5,\"predicted_n\":2,\"predicted_ms\":40.7}}\n\n",
    "data: {\"choices\":[],\"usage\":{\"completion_tokens\":3,\"prompt_tokens\":31,\"total_tokens\":34,\"prompt_tokens_details\":{\"cached_tokens\":20}},\"timings\":{\"cache_n\":20,\"prompt_n\":11,\"predicted_n\":3}}\n\n",
    "data: [DONE]\n\n",
);

#[test]
fn llama_cpp_timings_give_the_running_usage_before_its_final_usage() {
    let whole = same_everywhere(LLAMA_CPP_CHAT.as_bytes());
    assert_eq!(whole.source, UsageSource::Reported);
    assert_eq!(whole.usage, usage(31, 20, 3, 0));
    // Stopped before the usage chunk: llama.cpp's own running counts, not the estimate.
    let cut = LLAMA_CPP_CHAT.find("data: {\"choices\":[],").unwrap();
    let stopped = same_everywhere(&LLAMA_CPP_CHAT.as_bytes()[..cut]);
    assert_eq!(stopped.source, UsageSource::Reported);
    assert_eq!(stopped.usage, usage(31, 20, 2, 0));
    assert_eq!(stopped.reported_total, None);
    // Malformed timings leave the estimate.
    let broken = LLAMA_CPP_CHAT[..cut].replace("\"predicted_n\":", "\"predicted\":");
    let estimated = same_everywhere(broken.as_bytes());
    assert_eq!(estimated.source, UsageSource::Estimated);
    assert_eq!(estimated.usage, usage(0, 0, 2, 0));
}

#[test]
fn crlf_comments_other_fields_and_multiline_data() {
    let body = concat!(
        ": keep-alive comment with data: {\"usage\":{\"prompt_tokens\":999}}\r\n",
        "event: message\r\nid: 7\r\n",
        "data: {\"choices\":[{\"text\":\"one\"}],\r\n",
        "data:  \"usage\": {\"prompt_tokens\": 5,\r\n",
        "data: \"completion_tokens\": 1}}\r\n\r\n",
        "retry: 10\r\r",
        "data:[DONE]\r\n\r\n",
    );
    let metered = same_everywhere(body.as_bytes());
    assert_eq!(metered.usage, usage(5, 0, 1, 0));
    assert!(meter_whole(body.as_bytes()).saw_done());
}

#[test]
fn a_field_name_after_leading_blanks_is_not_data() {
    let body = "   data: {\"usage\":{\"prompt_tokens\":3}}\n\n";
    let metered = same_everywhere(body.as_bytes());
    assert_eq!(metered.source, UsageSource::Estimated);
    let body = "\n\n data: {\"usage\":{\"prompt_tokens\":3}}\n\n";
    assert_eq!(
        same_everywhere(body.as_bytes()).source,
        UsageSource::Estimated
    );
    let body = " \n\ndata: {\"usage\":{\"prompt_tokens\":3}}\n\n";
    assert_eq!(same_everywhere(body.as_bytes()).usage, usage(3, 0, 0, 0));
}

#[test]
fn done_must_be_the_whole_event() {
    for (body, done) in [
        ("data: [DONE]\n\n", true),
        ("data: [DONE]\r\n\r\n", true),
        ("data: [DONE] \n\n", false),
        ("data: [DON\n\n", false),
        ("data: [DONE]\ndata: x\n\n", false),
        ("data: [DONE]", false),
    ] {
        assert_eq!(meter_whole(body.as_bytes()).saw_done(), done, "{body:?}");
    }
}

#[test]
fn single_pretty_json_document_with_reasoning() {
    let body = r#"
    {
      "id": "chatcmpl-2",
      "object": "chat.completion",
      "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Forty-two.",
          "reasoning_content": "The question is old."}, "finish_reason": "stop"}
      ],
      "usage": {
        "prompt_tokens": 30,
        "completion_tokens": 25,
        "total_tokens": 55,
        "prompt_tokens_details": null,
        "completion_tokens_details": {"reasoning_tokens": 20}
      }
    }
    "#;
    let metered = same_everywhere(body.as_bytes());
    assert_eq!(metered.source, UsageSource::Reported);
    assert_eq!(metered.usage, usage(30, 0, 25, 20));
}

#[test]
fn single_json_document_without_usage_is_estimated_from_its_text() {
    let body = r#"{"choices":[{"message":{"content":"0123456789"}}]}"#;
    let metered = same_everywhere(body.as_bytes());
    assert_eq!(metered.source, UsageSource::Estimated);
    assert_eq!(
        metered.usage.completion_tokens, 3,
        "10 bytes at 4 per token"
    );
}

#[test]
fn reference_ndjson_stream() {
    let mut body = String::new();
    for i in 0..5 {
        body.push_str(&format!("{{\"delta\":\"chunk {i} ünïcode\",\"i\":{i}}}\n"));
    }
    body.push_str(
        "{\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":5,\"total_tokens\":13,\
         \"prompt_tokens_details\":{\"cached_tokens\":2},\"reasoning_tokens\":1}}\n",
    );
    let metered = same_everywhere(body.as_bytes());
    assert_eq!(metered.usage, usage(8, 2, 5, 1));
    let without = body.lines().take(5).collect::<Vec<_>>().join("\n");
    let estimated = same_everywhere(without.as_bytes());
    assert_eq!(estimated.source, UsageSource::Estimated);
    assert_eq!(estimated.usage.completion_tokens, 5);
}

#[test]
fn running_usage_totals_keep_the_last() {
    let body = concat!(
        "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1}}\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2}}\n\n",
    );
    assert_eq!(same_everywhere(body.as_bytes()).usage, usage(4, 0, 2, 0));
}

#[test]
fn counts_are_derived_and_capped() {
    let cases = [
        (
            r#"{"usage":{"prompt_tokens":10,"total_tokens":15}}"#,
            usage(10, 0, 5, 0),
        ),
        (
            r#"{"usage":{"completion_tokens":4,"total_tokens":15}}"#,
            usage(11, 0, 4, 0),
        ),
        (r#"{"usage":{"total_tokens":15}}"#, usage(15, 0, 0, 0)),
        (
            r#"{"usage":{"prompt_tokens":3,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":9},"completion_tokens_details":{"reasoning_tokens":7}}}"#,
            usage(3, 3, 2, 2),
        ),
        (
            r#"{"usage":{"prompt_tokens":3,"completion_tokens":2,"completion_tokens_details":{"reasoning_tokens":null},"reasoning_tokens":1}}"#,
            usage(3, 0, 2, 1),
        ),
    ];
    for (body, expected) in cases {
        let metered = meter_whole(body.as_bytes()).metered();
        assert_eq!(metered.source, UsageSource::Reported, "{body}");
        assert_eq!(metered.usage, expected, "{body}");
    }
}

#[test]
fn malformed_usage_is_ignored_and_counted() {
    for body in [
        r#"{"usage":{"prompt_tokens":-1,"completion_tokens":2}}"#,
        r#"{"usage":{"prompt_tokens":1.5}}"#,
        r#"{"usage":{"prompt_tokens":"3"}}"#,
        r#"{"usage":{}}"#,
        r#"{"usage":{"prompt_tokens":1,}}"#,
    ] {
        let meter = meter_whole(body.as_bytes());
        assert_eq!(meter.metered().source, UsageSource::Estimated, "{body}");
        assert_eq!(meter.stats().malformed_usage, 1, "{body}");
    }
    // A later good one still counts.
    let body = "{\"usage\":{\"prompt_tokens\":-1}}\n{\"usage\":{\"prompt_tokens\":1}}\n";
    assert_eq!(
        meter_whole(body.as_bytes()).metered().usage,
        usage(1, 0, 0, 0)
    );
}

#[test]
fn a_truncated_event_does_not_poison_the_next() {
    let body = concat!(
        "data: {\"choices\":[{\"delta\":{\"content\":\"cut\n\n",
        "data: {\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":1}}\n\n",
    );
    let metered = same_everywhere(body.as_bytes());
    assert_eq!(metered.usage, usage(2, 0, 1, 0));
}

#[test]
fn a_stream_cut_mid_chunk_counts_the_open_chunk() {
    let mut meter = UsageMeter::default();
    meter.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n");
    meter.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"b");
    let metered = meter.metered();
    assert_eq!(metered.source, UsageSource::Estimated);
    assert_eq!(metered.usage.completion_tokens, 2);
}

#[test]
fn hostile_bodies_stay_bounded_and_do_not_panic() {
    // One endless SSE line, an endless usage object, deep nesting, binary noise.
    let mut meter = UsageMeter::new(BodyFormat::Sse);
    meter.feed(b"data: {\"usage\":{\"x\":\"");
    for _ in 0..1000 {
        meter.feed(&[b'y'; 1024]);
    }
    meter.feed(b"\"}}\n\n");
    assert_eq!(meter.stats().oversized_usage, 1);
    assert_eq!(meter.metered().source, UsageSource::Estimated);

    let mut meter = UsageMeter::new(BodyFormat::Json);
    for _ in 0..1000 {
        meter.feed(&[b'['; 1024]);
    }
    meter.feed(&[0xff, 0x00, b'"', b'\\']);
    assert_eq!(meter.metered().usage, TokenUsage::default());
}

#[test]
fn format_follows_the_content_type_and_the_first_byte() {
    assert_eq!(
        BodyFormat::from_content_type(Some("text/event-stream; charset=utf-8")),
        BodyFormat::Sse
    );
    assert_eq!(
        BodyFormat::from_content_type(Some("application/json")),
        BodyFormat::Auto
    );
    assert_eq!(BodyFormat::from_content_type(None), BodyFormat::Auto);
    // A JSON body given to an SSE meter is not read as JSON.
    let mut meter = UsageMeter::new(BodyFormat::Sse);
    meter.feed(br#"{"usage":{"prompt_tokens":1}}"#);
    assert_eq!(meter.metered().source, UsageSource::Estimated);
}

/// One chunk of a generated stream.
#[derive(Debug, Clone)]
struct GeneratedChunk {
    text: String,
}

#[derive(Debug, Clone, Copy)]
enum Framing {
    SseLf,
    SseCrlf,
    Ndjson,
    PrettyDocument,
}

fn render(framing: Framing, chunks: &[GeneratedChunk], reported: Option<TokenUsage>) -> Vec<u8> {
    let usage_value = reported.map(|u| {
        serde_json::json!({
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "total_tokens": u.total(),
            "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        })
    });
    let mut out = Vec::new();
    match framing {
        Framing::SseLf | Framing::SseCrlf => {
            let eol = if matches!(framing, Framing::SseCrlf) {
                "\r\n"
            } else {
                "\n"
            };
            let mut event = |value: &serde_json::Value| {
                out.extend_from_slice(format!("data: {value}{eol}{eol}").as_bytes());
            };
            for chunk in chunks {
                event(&serde_json::json!({
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": {"content": chunk.text}}],
                    "usage": null,
                }));
            }
            if let Some(usage) = &usage_value {
                event(&serde_json::json!({"choices": [], "usage": usage}));
            }
            out.extend_from_slice(format!("data: [DONE]{eol}{eol}").as_bytes());
        }
        Framing::Ndjson => {
            for (i, chunk) in chunks.iter().enumerate() {
                out.extend_from_slice(
                    format!("{}\n", serde_json::json!({"delta": chunk.text, "i": i})).as_bytes(),
                );
            }
            if let Some(usage) = &usage_value {
                out.extend_from_slice(
                    format!("{}\n", serde_json::json!({"usage": usage})).as_bytes(),
                );
            }
        }
        Framing::PrettyDocument => {
            let text: String = chunks.iter().map(|c| c.text.as_str()).collect();
            let mut document = serde_json::json!({
                "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
            });
            if let Some(usage) = usage_value {
                document["usage"] = usage;
            }
            out = serde_json::to_vec_pretty(&document).unwrap_or_default();
        }
    }
    out
}

fn framing() -> impl Strategy<Value = Framing> {
    prop_oneof![
        Just(Framing::SseLf),
        Just(Framing::SseCrlf),
        Just(Framing::Ndjson),
        Just(Framing::PrettyDocument),
    ]
}

fn reported_usage() -> impl Strategy<Value = Option<TokenUsage>> {
    proptest::option::of(
        (0..1u64 << 40, 0..1u64 << 40, 0..1u64 << 40, 0..1u64 << 40)
            .prop_map(|(p, c, cached, reasoning)| usage(p, cached.min(p), c, reasoning.min(c))),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Cutting a body anywhere, any number of times, never changes what is metered, and the
    /// reported numbers always come through exactly.
    #[test]
    fn splitting_never_changes_the_usage(
        framing in framing(),
        texts in proptest::collection::vec("(?s).{0,24}", 0..12),
        reported in reported_usage(),
        mut cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..24),
    ) {
        let chunks: Vec<GeneratedChunk> =
            texts.into_iter().map(|text| GeneratedChunk { text }).collect();
        let body = render(framing, &chunks, reported);
        let whole = meter_whole(&body);
        let mut positions: Vec<usize> = cuts.drain(..).map(|i| i.index(body.len() + 1)).collect();
        positions.sort_unstable();
        let split = meter_at(&body, &positions);
        prop_assert_eq!(split.metered(), whole.metered());
        prop_assert_eq!(split.stats(), whole.stats());
        prop_assert_eq!(split.saw_done(), whole.saw_done());
        match reported {
            Some(expected) => {
                prop_assert_eq!(whole.metered().source, UsageSource::Reported);
                prop_assert_eq!(whole.metered().usage, expected);
                prop_assert_eq!(whole.metered().reported_total, Some(expected.total()));
            }
            None => {
                prop_assert_eq!(whole.metered().source, UsageSource::Estimated);
                let expected = match framing {
                    Framing::PrettyDocument => {
                        // Content bytes as written in JSON, escapes included.
                        let text: String = chunks.iter().map(|c| c.text.as_str()).collect();
                        let written = serde_json::to_string(&text).unwrap_or_default();
                        (written.len() as u64 - 2).div_ceil(ESTIMATE_BYTES_PER_TOKEN)
                    }
                    Framing::Ndjson if chunks.len() == 1 => {
                        // A single JSON value is estimated as a document.
                        let written = serde_json::to_string(&chunks[0].text).unwrap_or_default();
                        (written.len() as u64 - 2).div_ceil(ESTIMATE_BYTES_PER_TOKEN)
                    }
                    _ => chunks.iter().filter(|c| !c.text.is_empty()).count() as u64,
                };
                prop_assert_eq!(whole.metered().usage.completion_tokens, expected);
            }
        }
        if matches!(framing, Framing::SseLf | Framing::SseCrlf) {
            prop_assert!(whole.saw_done());
        }
    }

    /// Arbitrary bytes never panic, and are metered the same however they are cut.
    #[test]
    fn arbitrary_bytes_are_cut_invariant(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        cut in any::<prop::sample::Index>(),
    ) {
        let whole = meter_whole(&body);
        let split = meter_at(&body, &[cut.index(body.len() + 1)]);
        prop_assert_eq!(split.metered(), whole.metered());
        prop_assert_eq!(split.stats(), whole.stats());
    }
}

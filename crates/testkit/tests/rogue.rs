//! The rogue worker's command line and the frames it answers with: SSE events for a streamed
//! request, byte ranges of one JSON document otherwise, with the honest counts behind each frame
//! and what each usage report turns them into.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use clap::Parser;
use cocoon_protocol::messages::http;
use cocoon_testkit::TestkitError;
use cocoon_testkit::rogue::{
    AnswerPlan, ChatView, DEFAULT_ANSWER_TEXT, RogueArgs, RogueConfig, TokenCounts, UsageReport,
};
use serde_json::{Value, json};

const MODEL: &str = "Qwen/Qwen3-8B";

fn parse(extra: &[&str]) -> Result<RogueArgs, clap::Error> {
    let mut argv = vec![
        "cocoon-rogue-worker",
        "--proxy",
        "127.0.0.1:9000",
        "--model",
        MODEL,
        "--owner",
        "owner-1",
    ];
    argv.extend_from_slice(extra);
    RogueArgs::try_parse_from(argv)
}

fn config(extra: &[&str]) -> RogueConfig {
    parse(extra).unwrap().config().unwrap()
}

#[test]
fn defaults_are_an_honest_worker() {
    let c = config(&[]);
    assert_eq!(c.proxy, "127.0.0.1:9000");
    assert_eq!(c.model, MODEL);
    assert_eq!(c.owner, "owner-1");
    assert_eq!(c.coefficient, 1000);
    assert_eq!(
        c.protocol_version,
        cocoon_protocol::version::MAX_VERSION,
        "offers the newest version"
    );
    assert_eq!(c.usage, UsageReport::Honest);
    assert_eq!(c.answer_text, DEFAULT_ANSWER_TEXT);
    assert!(!c.ignore_cancel && !c.no_final && !c.replay_receipt);
    assert!(!c.announce_unusable_sealing_key);
    assert_eq!(c.stats_listen, None);
}

#[test]
fn every_misbehaviour_has_its_flag() {
    let c = config(&[
        "--coefficient",
        "2500",
        "--max-active",
        "3",
        "--protocol-version",
        "2",
        "--answer-text",
        "one two three",
        "--parts",
        "7",
        "--part-delay-ms",
        "250",
        "--over-report",
        "100",
        "--ignore-cancel",
        "--no-final",
        "--replay-receipt",
        "--announce-unusable-sealing-key",
        "--stats-listen",
        "127.0.0.1:7777",
    ]);
    assert_eq!(c.coefficient, 2500);
    assert_eq!(c.max_active, 3);
    assert_eq!(c.protocol_version, 2);
    assert_eq!(c.answer_text, "one two three");
    assert_eq!(c.parts, 7);
    assert_eq!(c.part_delay, std::time::Duration::from_millis(250));
    assert_eq!(c.usage, UsageReport::Scaled(100));
    assert!(c.ignore_cancel && c.no_final && c.replay_receipt);
    assert!(c.announce_unusable_sealing_key);
    assert_eq!(c.stats_listen, Some("127.0.0.1:7777".parse().unwrap()));

    let fixed = config(&["--usage", "5, 70"]);
    assert_eq!(
        fixed.usage,
        UsageReport::Fixed(TokenCounts {
            prompt: 5,
            completion: 70
        })
    );
}

#[test]
fn bad_command_lines_are_refused_with_a_reason() {
    // Two usage reports at once, malformed counts, missing required flags: clap refuses.
    assert!(parse(&["--usage", "1,2", "--over-report", "3"]).is_err());
    for bad in ["5", "a,b", "1,-2", ""] {
        let e = parse(&["--usage", bad]).unwrap_err();
        assert!(e.to_string().contains("--usage"), "{e}");
    }
    assert!(RogueArgs::try_parse_from(["cocoon-rogue-worker", "--model", MODEL]).is_err());
    assert!(parse(&["--parts", "many"]).is_err());

    // Values clap takes but the worker cannot use: a typed error naming the flag.
    for (flags, named) in [
        (&["--parts", "0"][..], "--parts"),
        (&["--protocol-version", "9"], "--protocol-version"),
        (&["--protocol-version=-1"], "--protocol-version"),
        (&["--coefficient", "0"], "--coefficient"),
        (&["--max-active", "0"], "--max-active"),
        (&["--over-report", "0"], "--over-report"),
        (&["--answer-text", "   "], "--answer-text"),
    ] {
        match parse(flags).unwrap().config() {
            Err(TestkitError::InvalidRogue { reason }) => {
                assert!(reason.contains(named), "{flags:?}: {reason}");
            }
            other => panic!("{flags:?}: expected InvalidRogue, got {other:?}"),
        }
    }
}

fn body(stream: bool, extra: Value) -> Vec<u8> {
    let mut b = json!({
        "model": MODEL,
        "messages": [
            { "role": "system", "content": "be brief" },
            { "role": "user", "content": "what is a fox" },
        ],
        "stream": stream,
    });
    if let (Value::Object(b), Value::Object(extra)) = (&mut b, extra) {
        b.extend(extra);
    }
    serde_json::to_vec(&b).unwrap()
}

fn view(stream: bool, extra: Value) -> ChatView {
    ChatView::from_body(&body(stream, extra), MODEL).unwrap()
}

/// The `data:` payloads of an SSE body, in order.
fn sse_events(bytes: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(bytes).unwrap();
    assert!(text.ends_with("\n\n"), "events end with a blank line");
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .expect("every event is data")
                .to_owned()
        })
        .collect()
}

#[test]
fn a_json_answer_is_one_document_cut_into_byte_ranges() {
    let c = config(&["--parts", "5"]);
    let v = view(false, json!({}));
    assert_eq!(v.prompt_tokens, 6, "every message's words");
    let plan = AnswerPlan::new(&c, &v, None, 1_700_000_000);
    assert_eq!(plan.content_type, "application/json");
    assert_eq!(plan.parts.len(), 5);
    assert!(plan.parts.iter().all(|p| !p.is_empty()));
    let doc: Value = serde_json::from_slice(&plan.body()).unwrap();
    assert_eq!(doc["object"], "chat.completion");
    assert_eq!(doc["model"], MODEL);
    assert_eq!(doc["created"], 1_700_000_000);
    assert_eq!(doc["choices"][0]["message"]["content"], DEFAULT_ANSWER_TEXT);
    assert_eq!(doc["choices"][0]["finish_reason"], "stop");
    let words = DEFAULT_ANSWER_TEXT.split_whitespace().count() as u64;
    assert_eq!(
        plan.honest,
        TokenCounts {
            prompt: 6,
            completion: words
        }
    );
    assert_eq!(plan.reported, plan.honest);
    assert_eq!(doc["usage"]["prompt_tokens"], 6);
    assert_eq!(doc["usage"]["completion_tokens"], words);
    assert_eq!(doc["usage"]["total_tokens"], 6 + words);
    // Generated whole before the first byte: every frame stands for the whole answer.
    assert_eq!(plan.completion_after, vec![words; 5]);
    // Identical requests, identical bytes.
    assert_eq!(plan, AnswerPlan::new(&c, &v, None, 1_700_000_000));
}

#[test]
fn a_streamed_answer_is_sse_with_its_words_shared_over_the_parts() {
    let c = config(&["--parts", "4", "--answer-text", "a b c d e f g h i j"]);
    let v = view(true, json!({ "stream_options": { "include_usage": true } }));
    let plan = AnswerPlan::new(&c, &v, None, 7);
    assert_eq!(plan.content_type, "text/event-stream");
    assert_eq!(plan.parts.len(), 4);
    let mut content = String::new();
    let mut chunks = Vec::new();
    for (i, part) in plan.parts.iter().enumerate() {
        let events = sse_events(part);
        if i + 1 < plan.parts.len() {
            assert_eq!(events.len(), 1, "one content event per part");
        } else {
            // content, finish, usage, [DONE]
            assert_eq!(events.len(), 4, "{events:?}");
            assert_eq!(events[3], "[DONE]");
        }
        for e in events.iter().filter(|e| *e != "[DONE]") {
            let chunk: Value = serde_json::from_str(e).unwrap();
            assert_eq!(chunk["object"], "chat.completion.chunk");
            if let Some(text) = chunk["choices"][0]["delta"]["content"].as_str() {
                content.push_str(text);
            }
            chunks.push(chunk);
        }
    }
    assert_eq!(content, "a b c d e f g h i j");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 10);
    // The words produced once each part is out: 10 words over 4 parts.
    assert_eq!(plan.completion_after, vec![2, 5, 7, 10]);

    // Without include_usage there is no usage chunk.
    let plain = AnswerPlan::new(&c, &view(true, json!({})), None, 7);
    let last = sse_events(plain.parts.last().unwrap());
    assert_eq!(last.len(), 3, "{last:?}");
    assert!(
        !String::from_utf8(plain.body())
            .unwrap()
            .contains("\"usage\"")
    );
}

#[test]
fn more_parts_than_words_still_frames_every_part() {
    let c = config(&["--parts", "6", "--answer-text", "one two"]);
    let plan = AnswerPlan::new(&c, &view(true, json!({})), None, 0);
    assert_eq!(plan.parts.len(), 6);
    let content: String = plan
        .parts
        .iter()
        .flat_map(|p| sse_events(p))
        .filter(|e| e != "[DONE]")
        .filter_map(|e| {
            let v: Value = serde_json::from_str(&e).unwrap();
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(content, "one two");
    assert_eq!(*plan.completion_after.last().unwrap(), 2);
}

#[test]
fn the_answer_is_cut_to_max_tokens_and_to_the_proxys_token_limit() {
    let c = config(&["--answer-text", "w1 w2 w3 w4 w5 w6 w7 w8"]);
    let v = view(false, json!({ "max_tokens": 5 }));
    let plan = AnswerPlan::new(&c, &v, None, 0);
    assert_eq!(plan.honest.completion, 5);
    assert_eq!(plan.content, "w1 w2 w3 w4 w5");
    assert_eq!(plan.finish_reason, "length");
    // The smaller of the two limits wins; max_completion_tokens replaces max_tokens.
    assert_eq!(AnswerPlan::new(&c, &v, Some(3), 0).honest.completion, 3);
    assert_eq!(AnswerPlan::new(&c, &v, Some(50), 0).honest.completion, 5);
    let v = view(
        false,
        json!({ "max_tokens": 5, "max_completion_tokens": 2 }),
    );
    assert_eq!(AnswerPlan::new(&c, &v, None, 0).honest.completion, 2);
    let plan = AnswerPlan::new(&c, &view(false, json!({})), None, 0);
    assert_eq!((plan.honest.completion, plan.finish_reason), (8, "stop"));
}

#[test]
fn usage_reports_lie_as_configured_in_the_body_and_after_a_cancel() {
    let v = view(true, json!({ "stream_options": { "include_usage": true } }));
    let over = config(&[
        "--over-report",
        "100",
        "--parts",
        "3",
        "--answer-text",
        "a b c",
    ]);
    let plan = AnswerPlan::new(&over, &v, None, 0);
    assert_eq!(
        plan.honest,
        TokenCounts {
            prompt: 6,
            completion: 3
        }
    );
    assert_eq!(
        plan.reported,
        TokenCounts {
            prompt: 600,
            completion: 300
        }
    );
    assert!(
        String::from_utf8(plan.body())
            .unwrap()
            .contains("\"completion_tokens\":300")
    );
    // A cancel after the first part: the words sent so far, scaled.
    assert_eq!(
        plan.reported_after(1, over.usage),
        TokenCounts {
            prompt: 600,
            completion: 100
        }
    );
    assert_eq!(
        plan.reported_after(0, UsageReport::Honest),
        TokenCounts {
            prompt: 6,
            completion: 0
        }
    );

    let fixed = config(&["--usage", "1,2"]);
    let plan = AnswerPlan::new(&fixed, &v, None, 0);
    assert_eq!(
        plan.reported,
        TokenCounts {
            prompt: 1,
            completion: 2
        }
    );
    assert_eq!(plan.reported_after(1, fixed.usage), plan.reported);
}

#[test]
fn requests_the_worker_does_not_serve_are_refused_with_their_code() {
    let request = |method: &str, url: &str, payload: Vec<u8>| http::Request {
        method: method.into(),
        url: url.into(),
        http_version: "HTTP/1.1".into(),
        headers: Vec::new(),
        payload: payload.into(),
    };
    let ok = ChatView::from_request(
        &request("POST", "/v1/chat/completions", body(false, json!({}))),
        MODEL,
    );
    assert!(ok.is_ok(), "{ok:?}");
    let code = |r: Result<ChatView, cocoon_testkit::rogue::Refusal>| r.unwrap_err().code;
    assert_eq!(
        code(ChatView::from_request(
            &request("GET", "/v1/chat/completions", body(false, json!({}))),
            MODEL
        )),
        405
    );
    assert_eq!(
        code(ChatView::from_request(
            &request("POST", "/v1/embeddings", body(false, json!({}))),
            MODEL
        )),
        404
    );
    assert_eq!(
        code(ChatView::from_body(
            &body(false, json!({ "model": "other/model" })),
            MODEL
        )),
        404
    );
    assert_eq!(code(ChatView::from_body(b"not json", MODEL)), 400);
    assert_eq!(code(ChatView::from_body(b"{\"model\":\"x\"}", MODEL)), 400);
    // A variant of the served model is the same base model.
    assert!(
        ChatView::from_body(&body(false, json!({ "model": "Qwen/Qwen3-8B@q4" })), MODEL).is_ok()
    );
}

//! Transcriptions at the worker, against a scripted version 3 proxy and the fake upstream: the
//! worker measures the WAV itself, bills its duration as prompt tokens whatever the upstream
//! reports, refuses audio longer than the request declared, and refuses bad forms by field.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use cocoon_protocol::Message;
use cocoon_protocol::audio::{AudioFile, ResponseFormat, TranscriptionForm, WavAudio};
use cocoon_protocol::messages::{AUDIO_UNITS_FLAG, ext, http};
use cocoon_protocol::tl::{Int256, TlConstructor};
use support::*;

/// A transcription of `seconds` of 16 kHz audio, with the given form tweaks.
fn transcription(seconds: f64, edit: impl FnOnce(&mut TranscriptionForm)) -> Bytes {
    let frames = (seconds * 16_000.0) as u32;
    let mut form = TranscriptionForm {
        model: MODEL.into(),
        file: AudioFile {
            filename: "a.wav".into(),
            content_type: Some("audio/wav".into()),
            data: Bytes::from(WavAudio::silence(16_000, 1, frames)),
        },
        language: None,
        prompt: None,
        temperature: None,
        response_format: ResponseFormat::Json,
        timestamp_granularities: Vec::new(),
    };
    edit(&mut form);
    let (content_type, body) = form.to_multipart("worker-test-boundary");
    let request = http::Request {
        method: "POST".into(),
        url: "/v1/audio/transcriptions".into(),
        http_version: "HTTP/1.1".into(),
        headers: vec![http::Header {
            name: "Content-Type".into(),
            value: content_type,
        }],
        payload: body,
    };
    Bytes::from(request.to_boxed_bytes())
}

/// A transcription as a version 3 proxy passes it on: declared (`AUDIO_UNITS_FLAG`).
fn run(query: Bytes, request_id: u8, token_limit: i64) -> ext::WorkerRunQuery {
    run_flagged(query, request_id, token_limit, AUDIO_UNITS_FLAG)
}

fn run_flagged(query: Bytes, request_id: u8, token_limit: i64, flags: u32) -> ext::WorkerRunQuery {
    ext::WorkerRunQuery {
        query,
        coefficient: 1000,
        timeout: 30.0,
        request_id: Int256([request_id; 32]),
        client_request_id: Int256([request_id ^ 0xFF; 32]),
        token_limit,
        flags,
        enable_debug: None,
    }
}

/// A chat request in an `http.request`.
fn chat() -> Bytes {
    let body = serde_json::json!({
        "model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5
    });
    Bytes::from(
        http::Request::json_post("/v1/chat/completions", Bytes::from(body.to_string()))
            .to_boxed_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_declared_a_transcription_must_be_one_and_the_other_way_round() {
    // The attack: a chat request flagged as audio would be charged its limit in prompt tokens
    // and no completion tokens at all by the proxy. The worker refuses it unserved, and
    // refuses an unflagged transcription too (it would be charged as chat).
    let up = upstream(small_answer()).await;
    let (mut proxy, _) = net(&up).await;
    for (id, query, flags, says) in [
        (30u8, chat(), AUDIO_UNITS_FLAG, "not one"),
        (31, transcription(1.0, |_| {}), 0, "must be declared"),
    ] {
        proxy.send(run_flagged(query, id, 1_000, flags)).await;
        let (_, last) = proxy.finish(Int256([id; 32])).await;
        let Message::ProxyQueryAnswerErrorEx(e) = last else {
            panic!("{last:?}")
        };
        assert_eq!(
            (e.error_code, e.error.contains(says)),
            (400, true),
            "{}",
            e.error
        );
        let used = e.final_info.unwrap().tokens_used;
        assert_eq!(
            (used.prompt_tokens_used, used.completion_tokens_used),
            (0, 0)
        );
    }
    assert!(
        up.recorded_requests().is_empty(),
        "nothing reached the engine"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_bills_its_own_measure_and_refuses_what_was_not_declared() {
    let up = upstream(small_answer()).await;
    let (mut proxy, _) = net(&up).await;

    // 2 s = 20 units declared and measured: answered, billed 20 prompt tokens, although the
    // fake upstream's answer says `"usage": {"type": "duration", "seconds": 2}`.
    proxy.send(run(transcription(2.0, |_| {}), 1, 20)).await;
    let (receipt, last) = proxy.finish(Int256([1; 32])).await;
    let final_info = match last {
        Message::ProxyQueryAnswerEx(m) => m.final_info,
        Message::ProxyQueryAnswerPartEx(m) => m.final_info,
        other => panic!("{other:?}"),
    }
    .unwrap();
    assert_eq!(final_info.tokens_used.prompt_tokens_used, 20);
    assert_eq!(final_info.tokens_used.completion_tokens_used, 0);
    assert!(receipt.is_some());
    // The upstream got a form the worker wrote, with the audio intact.
    let recorded = up.recorded_requests();
    let sent = recorded.last().unwrap();
    assert_eq!(sent.path, "/v1/audio/transcriptions");
    let content_type = sent.headers["content-type"].to_str().unwrap();
    let limits = cocoon_protocol::audio::FormLimits {
        max_file_bytes: 1 << 24,
    };
    let form = TranscriptionForm::parse(content_type, &sent.body, limits).unwrap();
    assert_eq!(WavAudio::parse(&form.file.data).unwrap().frames, 32_000);

    // The same audio declared as 19 units: refused before the engine, nothing billed.
    let before = up.recorded_requests().len();
    proxy.send(run(transcription(2.0, |_| {}), 2, 19)).await;
    let (_, last) = proxy.finish(Int256([2; 32])).await;
    let Message::ProxyQueryAnswerErrorEx(e) = last else {
        panic!("{last:?}")
    };
    assert_eq!(e.error_code, 400);
    assert!(
        e.error.contains("20 units") && e.error.contains("19 units"),
        "{}",
        e.error
    );
    assert_eq!(e.final_info.unwrap().tokens_used.prompt_tokens_used, 0);
    assert_eq!(up.recorded_requests().len(), before);

    // Bad forms, refused by field: not a WAV, another model, an unknown format.
    let cases: [(Bytes, i32, &str); 3] = [
        (
            transcription(1.0, |f| f.file.data = Bytes::from_static(b"ID3 mp3")),
            400,
            "RIFF/WAVE",
        ),
        (
            transcription(1.0, |f| f.model = "other-model".into()),
            404,
            "other-model",
        ),
        (
            {
                let q = transcription(1.0, |_| {});
                let mut r = http::Request::from_boxed_bytes(q).unwrap();
                let text =
                    String::from_utf8_lossy(&r.payload).replace("\r\njson\r\n", "\r\nmp3\r\n");
                r.payload = Bytes::from(text.into_bytes());
                Bytes::from(r.to_boxed_bytes())
            },
            400,
            "response_format",
        ),
    ];
    for (i, (query, code, says)) in cases.into_iter().enumerate() {
        let id = 10 + i as u8;
        proxy.send(run(query, id, 1_000)).await;
        let (_, last) = proxy.finish(Int256([id; 32])).await;
        let Message::ProxyQueryAnswerErrorEx(e) = last else {
            panic!("{last:?}")
        };
        assert_eq!(
            (e.error_code, e.error.contains(says)),
            (code, true),
            "{}",
            e.error
        );
    }
}

//! Codec cost on the hot relay path: encoding and decoding a streamed answer part and a
//! run-query request, and splitting a received byte stream into frames.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use cocoon_protocol::messages::{Message, client, http, tcp};
use cocoon_protocol::tl::{self, Int256, TlConstructor};
use cocoon_protocol::{FrameDecoder, FrameEncoder};

fn answer_part() -> Message {
    Message::ClientQueryAnswerPartEx(client::QueryAnswerPartEx {
        request_id: Int256([0x5a; 32]),
        answer: Bytes::from(vec![b'x'; 128]),
        flags: 0,
        final_info: None,
    })
}

fn run_query_ex() -> Message {
    let body = Bytes::from(vec![b'{'; 1024]);
    let request = http::Request::json_post("/v1/chat/completions", body);
    Message::ClientRunQueryEx(client::RunQueryEx {
        model_name: "Qwen/Qwen3-8B".into(),
        query: Bytes::from(request.to_boxed_bytes()),
        max_coefficient: 4000,
        max_tokens: 1000,
        timeout: 120.0,
        request_id: Int256([7; 32]),
        min_config_version: 0,
        flags: 1,
        enable_debug: Some(false),
        public_key: None,
    })
}

fn bench_message(c: &mut Criterion, name: &str, message: &Message) {
    let encoded = Bytes::from(tl::to_bytes(message));
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(encoded.len() as u64));
    group.bench_function("encode", |b| {
        b.iter(|| tl::to_bytes(black_box(message)));
    });
    group.bench_function("decode", |b| {
        b.iter(|| tl::from_bytes::<Message>(black_box(encoded.clone())).unwrap());
    });
    group.finish();
}

fn codec(c: &mut Criterion) {
    bench_message(c, "answer_part_128", &answer_part());
    bench_message(c, "run_query_ex_1k", &run_query_ex());

    // A stream of 1,000 answer parts as the proxy sends them to a client.
    let payload = tl::to_bytes(&answer_part());
    let packet = tl::to_bytes(&tcp::AnyPacket::Packet(tcp::Packet {
        data: Bytes::from(payload),
    }));
    let mut encoder = FrameEncoder::new();
    let mut stream = BytesMut::new();
    for _ in 0..1000 {
        encoder.encode(&packet, &mut stream).unwrap();
    }
    let stream = stream.freeze();

    let mut group = c.benchmark_group("frames_1000_answer_parts");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("split", |b| {
        b.iter_batched(
            || BytesMut::from(&stream[..]),
            |mut buf| {
                let mut decoder = FrameDecoder::default();
                let mut n = 0;
                while let Some(frame) = decoder.decode(&mut buf).unwrap() {
                    black_box(&frame);
                    n += 1;
                }
                assert_eq!(n, 1000);
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("split_and_decode", |b| {
        b.iter_batched(
            || BytesMut::from(&stream[..]),
            |mut buf| {
                let mut decoder = FrameDecoder::default();
                while let Some(frame) = decoder.decode(&mut buf).unwrap() {
                    let packet: tcp::AnyPacket = tl::from_bytes(frame.body).unwrap();
                    if let tcp::AnyPacket::Packet(p) = packet {
                        black_box(tl::from_bytes::<Message>(p.data).unwrap());
                    }
                }
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

/// A transcription form with 15 MiB of audio (the most a request may carry): parsing it must
/// cost little next to moving it, since both the client and the worker parse it.
fn transcription_form(c: &mut Criterion) {
    use cocoon_protocol::audio::{
        AudioFile, FormLimits, MAX_AUDIO_BYTES, ResponseFormat, TranscriptionForm, WavAudio,
    };
    let frames = u32::try_from((MAX_AUDIO_BYTES - 44) / 2).unwrap_or(u32::MAX);
    let mut wav = WavAudio::silence(16_000, 1, frames);
    // Noise, with dashes and line breaks, so the boundary search cannot skip ahead.
    for (i, b) in wav.iter_mut().enumerate().skip(44) {
        *b = [b'-', b'\r', b'\n', (i % 251) as u8][i % 4];
    }
    let form = TranscriptionForm {
        model: "whisper-1".into(),
        file: AudioFile {
            filename: "a.wav".into(),
            content_type: None,
            data: Bytes::from(wav),
        },
        language: None,
        prompt: None,
        temperature: None,
        response_format: ResponseFormat::Json,
        timestamp_granularities: Vec::new(),
    };
    let (content_type, body) = form.to_multipart(&form.boundary_for(1));
    let limits = FormLimits {
        max_file_bytes: MAX_AUDIO_BYTES,
    };
    let mut group = c.benchmark_group("transcription");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.sample_size(20);
    group.bench_function("parse_form_15MiB", |b| {
        b.iter(|| TranscriptionForm::parse(&content_type, &body, limits))
    });
    group.finish();
    // The header only: its cost does not grow with the audio.
    c.bench_function("transcription/measure_wav", |b| {
        b.iter(|| WavAudio::parse(&form.file.data))
    });
}

criterion_group!(benches, codec, transcription_form);
criterion_main!(benches);

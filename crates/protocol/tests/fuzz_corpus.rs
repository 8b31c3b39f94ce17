//! Keeps the committed fuzz seeds (`fuzz/seeds/`) in step with the recorded transcripts, and
//! builds a fuller corpus on request.
//!
//! Each seed is a one-frame stream (seqno 0) carrying the first recorded frame of one inner
//! constructor, named after it. With `COCOON_FUZZ_CORPUS=<dir>` this test also writes every
//! recorded frame and every whole stream there (see `fuzz/README.md`); with
//! `COCOON_FUZZ_SEEDS=<dir>` it writes the seed files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use cocoon_protocol::messages::{Message, tcp};
use cocoon_protocol::tl;
use cocoon_protocol::{FrameDecoder, FrameEncoder};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/interop/");
const SEEDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/");

/// `(stream file name, stream bytes from its first frame)`.
fn streams() -> Vec<(String, Vec<u8>)> {
    include_str!("data/interop/streams.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let mut f = l.split(' ');
            let file = f.next().unwrap().to_owned();
            let offset: usize = f.next().unwrap().parse().unwrap();
            let raw = std::fs::read(format!("{DIR}{file}")).unwrap();
            (file, raw[offset..].to_vec())
        })
        .collect()
}

fn frames(stream: &[u8]) -> Vec<Bytes> {
    let mut buf = BytesMut::from(stream);
    let mut decoder = FrameDecoder::default();
    let mut out = Vec::new();
    while let Some(f) = decoder.decode(&mut buf).unwrap() {
        out.push(f.body);
    }
    out
}

/// The name of what a frame carries: the inner message for payload-carrying packets.
fn carried_name(body: &Bytes) -> String {
    let packet: tcp::AnyPacket = tl::from_bytes(body.clone()).unwrap();
    let inner = match &packet {
        tcp::AnyPacket::Packet(p) => &p.data,
        tcp::AnyPacket::Query(q) => &q.data,
        tcp::AnyPacket::QueryAnswer(a) => &a.data,
        other => return other.constructor_name().to_owned(),
    };
    tl::from_bytes::<Message>(inner.clone())
        .unwrap()
        .constructor_name()
        .to_owned()
}

/// One frame as a stream of its own.
fn single_frame_stream(body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    FrameEncoder::new().encode(body, &mut out).unwrap();
    out.to_vec()
}

/// Seed file name → contents: the first frame of each carried constructor, from the proxy-side
/// recordings; and from the hand-made 9060ce5 streams, the first frame of each constructor whose
/// shape they change (named `handmade-9060ce5.<constructor>.bin`).
fn seeds() -> BTreeMap<String, Vec<u8>> {
    let mut seeds = BTreeMap::new();
    for (file, stream) in streams() {
        if !file.contains("-proxy.") {
            continue;
        }
        for body in frames(&stream) {
            seeds
                .entry(format!("{}.bin", carried_name(&body)))
                .or_insert_with(|| single_frame_stream(&body));
        }
    }
    const CHANGED: [&str; 5] = [
        "client.runQueryEx",
        "proxy.runQueryEx",
        "worker.connectToProxy",
        "worker.changeModel",
        "worker.changedModel",
    ];
    for side in ["client_to_proxy", "proxy_to_worker", "worker_to_proxy"] {
        let stream = std::fs::read(format!("{DIR}handmade-9060ce5.{side}.bin")).unwrap();
        for body in frames(&stream) {
            let name = carried_name(&body);
            if CHANGED.contains(&name.as_str()) {
                seeds
                    .entry(format!("handmade-9060ce5.{name}.bin"))
                    .or_insert_with(|| single_frame_stream(&body));
            }
        }
    }
    seeds
}

fn write_all(dir: &Path, files: &BTreeMap<String, Vec<u8>>) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn committed_seeds_match_the_transcripts() {
    let expected = seeds();
    if let Ok(dir) = std::env::var("COCOON_FUZZ_SEEDS") {
        write_all(Path::new(&dir), &expected);
    }
    let mut committed = BTreeMap::new();
    for entry in std::fs::read_dir(SEEDS).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        committed.insert(name, std::fs::read(entry.path()).unwrap());
    }
    assert_eq!(
        committed.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "regenerate with COCOON_FUZZ_SEEDS={SEEDS}"
    );
    assert_eq!(committed, expected);
    assert!(expected.len() >= 25, "{}", expected.len());
}

#[test]
fn full_corpus_covers_every_recorded_frame() {
    let mut files = seeds();
    let mut frame_count = 0;
    for (file, stream) in streams() {
        for (i, body) in frames(&stream).iter().enumerate() {
            let single = single_frame_stream(body);
            assert_eq!(frames(&single), vec![body.clone()]);
            files.insert(format!("{file}.{i:03}"), single);
            frame_count += 1;
        }
        files.insert(format!("{file}.stream"), stream);
    }
    assert_eq!(frame_count, 2 * (18 + 45 + 41 + 18));
    assert_eq!(files.len(), seeds().len() + frame_count + streams().len());
    if let Ok(dir) = std::env::var("COCOON_FUZZ_CORPUS") {
        write_all(Path::new(&dir), &files);
        println!("wrote {} corpus files to {dir}", files.len());
    }
}

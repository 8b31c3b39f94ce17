//! Hand-made transcripts of reference 9060ce5's new shapes, kept beside the recorded b75d444
//! ones: NOT recorded from a reference node (none was available), but built from the facts of
//! the design notes by splicing bytes into the recorded streams with the small TL helpers below,
//! which share no code with the codec under test. Each `handmade-9060ce5.*.bin` stream is a
//! recorded stream with:
//!
//! - `client_to_proxy`: every `client.runQueryEx` given flag bit 1 and a `public_key` after
//!   `enable_debug`;
//! - `proxy_to_worker`: every `proxy.runQueryEx` given flag bit 1 and a `private_key`, then a
//!   `worker.changeModel` query appended;
//! - `worker_to_proxy`: `worker.params` (inside `worker.connectToProxy`) given flag bit 2 and a
//!   `machine_description_json`, then the `worker.changedModel` answer appended.
//!
//! The keys are arbitrary 32-byte values (codec shapes, not cryptography). The description's
//! content is the shape our worker sends; the reference's own content is not in the facts.
//! `COCOON_HANDMADE=<dir>` writes the streams (and `handmade-9060ce5.streams.txt`) there;
//! otherwise the test checks the committed files are exactly what this builder makes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use cocoon_protocol::messages::{Message, client, proxy, tcp, worker};
use cocoon_protocol::tl::{self, TlConstructor};
use cocoon_protocol::{FrameDecoder, FrameEncoder};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/interop/");
const PREFIX: &str = "handmade-9060ce5";

/// The `public_key` spliced into every `client.runQueryEx`.
const PUBLIC_KEY: [u8; 32] = [0x5a; 32];
/// The `private_key` spliced into every `proxy.runQueryEx`.
const PRIVATE_KEY: [u8; 32] = [0xa5; 32];
/// The description spliced into `worker.params`.
const DESCRIPTION: &str = r#"{"cpu":{"model":"AMD EPYC 9654 96-Core Processor","count":16},"memory_bytes":137438953472,"gpus":[{"model":"NVIDIA H100 80GB HBM3","memory_bytes":85520809984}],"engine":"upstream","attested":true}"#;
/// The model `worker.changeModel` asks for, and the query id it travels under.
const NEW_MODEL: &str = "Qwen/Qwen3-32B";
const CHANGE_QUERY_ID: u64 = 0x0123_4567_89ab_cdef;

const TCP_PACKET: u32 = 0x9c17baf8;
const TCP_QUERY: u32 = 0x3af51908;
const TCP_QUERY_ANSWER: u32 = 0xc048c311;
const CLIENT_RUN_QUERY_EX: u32 = 0xf54cb74b;
const PROXY_RUN_QUERY_EX: u32 = 0xc805e7e2;
const WORKER_CONNECT_TO_PROXY: u32 = 0xcc484c5d;
const WORKER_CHANGE_MODEL: u32 = 0x72662cee;
const WORKER_CHANGED_MODEL: u32 = 0x34029366;
const BOOL_TRUE: u32 = 0x997275b5;
const BOOL_FALSE: u32 = 0xbc799737;

// --- Independent TL and frame helpers (no codec calls) ---

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn tl_bytes(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if data.len() < 254 {
        out.push(data.len() as u8);
    } else {
        out.push(254);
        out.extend_from_slice(&(data.len() as u32).to_le_bytes()[..3]);
    }
    out.extend_from_slice(data);
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out
}

/// A TL `bytes` at the start of `b`: (data, bytes used).
fn read_tl_bytes(b: &[u8]) -> (Vec<u8>, usize) {
    let (len, head) = if b[0] < 254 {
        (b[0] as usize, 1)
    } else {
        (
            b[1] as usize | (b[2] as usize) << 8 | (b[3] as usize) << 16,
            4,
        )
    };
    (b[head..head + len].to_vec(), (head + len).div_ceil(4) * 4)
}

/// Frame bodies of a raw stream (`u32 length | i32 seqno | body`).
fn raw_frames(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        let len = u32_at(stream, at) as usize;
        assert_eq!(u32_at(stream, at + 4) as usize, out.len(), "seqno");
        out.push(stream[at + 8..at + 8 + len].to_vec());
        at += 8 + len;
    }
    out
}

fn raw_stream(bodies: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (seqno, body) in bodies.iter().enumerate() {
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&(seqno as u32).to_le_bytes());
        out.extend_from_slice(body);
    }
    out
}

/// Applies `edit` to the message inside a `tcp.packet` or `tcp.query` body, if it edits it.
fn edit_carried(body: &[u8], edit: &dyn Fn(&[u8]) -> Option<Vec<u8>>) -> Vec<u8> {
    let head = match u32_at(body, 0) {
        TCP_PACKET => 4,
        TCP_QUERY => 12,
        _ => return body.to_vec(),
    };
    let (data, used) = read_tl_bytes(&body[head..]);
    assert_eq!(head + used, body.len());
    match edit(&data) {
        Some(new) => [&body[..head], &tl_bytes(&new)[..]].concat(),
        None => body.to_vec(),
    }
}

/// Where the `flags` word of a `runQueryEx` is: last, or before a trailing `enable_debug`.
fn run_query_flags_at(m: &[u8]) -> usize {
    let last = u32_at(m, m.len() - 4);
    let before = u32_at(m, m.len() - 8);
    if (last == BOOL_TRUE || last == BOOL_FALSE) && before & 1 == 1 && before < 4 {
        m.len() - 8
    } else {
        assert_eq!(last & !1, 0, "flags word of a b75d444 runQueryEx");
        assert_eq!(last & 1, 0);
        m.len() - 4
    }
}

/// Sets flag bit 1 of a `runQueryEx` with id `id` and appends `key` (an int256) after it.
fn add_key(id: u32, key: [u8; 32]) -> impl Fn(&[u8]) -> Option<Vec<u8>> {
    move |m: &[u8]| {
        if u32_at(m, 0) != id {
            return None;
        }
        let at = run_query_flags_at(m);
        let mut out = m.to_vec();
        let flags = u32_at(m, at) | 0b10;
        out[at..at + 4].copy_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&key);
        Some(out)
    }
}

/// Sets flag bit 2 of the `worker.params` inside `worker.connectToProxy` and appends the
/// description (the params are the query's last field, the description their last).
fn add_description(m: &[u8]) -> Option<Vec<u8>> {
    if u32_at(m, 0) != WORKER_CONNECT_TO_PROXY {
        return None;
    }
    let mut out = m.to_vec();
    let flags = u32_at(m, 4);
    assert_eq!(flags & !0b11, 0, "flags word of a b75d444 worker.params");
    out[4..8].copy_from_slice(&(flags | 0b100).to_le_bytes());
    out.extend_from_slice(&tl_bytes(DESCRIPTION.as_bytes()));
    Some(out)
}

fn recorded(file: &str) -> Vec<Vec<u8>> {
    let streams = std::fs::read_to_string(format!("{DIR}streams.txt")).unwrap();
    let line = streams.lines().find(|l| l.starts_with(file)).unwrap();
    let offset: usize = line.split(' ').nth(1).unwrap().parse().unwrap();
    let raw = std::fs::read(format!("{DIR}{file}")).unwrap();
    raw_frames(&raw[offset..])
}

/// File name → stream bytes.
fn build() -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();

    let add_public = add_key(CLIENT_RUN_QUERY_EX, PUBLIC_KEY);
    let client: Vec<Vec<u8>> = recorded("client-proxy.client_to_proxy.bin")
        .iter()
        .map(|b| edit_carried(b, &add_public))
        .collect();
    out.insert(format!("{PREFIX}.client_to_proxy.bin"), raw_stream(&client));

    let add_private = add_key(PROXY_RUN_QUERY_EX, PRIVATE_KEY);
    let mut to_worker: Vec<Vec<u8>> = recorded("worker-proxy.proxy_to_worker.bin")
        .iter()
        .map(|b| edit_carried(b, &add_private))
        .collect();
    let mut change = WORKER_CHANGE_MODEL.to_le_bytes().to_vec();
    change.extend_from_slice(&tl_bytes(NEW_MODEL.as_bytes()));
    let mut query = TCP_QUERY.to_le_bytes().to_vec();
    query.extend_from_slice(&CHANGE_QUERY_ID.to_le_bytes());
    query.extend_from_slice(&tl_bytes(&change));
    to_worker.push(query);
    out.insert(
        format!("{PREFIX}.proxy_to_worker.bin"),
        raw_stream(&to_worker),
    );

    let mut from_worker: Vec<Vec<u8>> = recorded("worker-proxy.worker_to_proxy.bin")
        .iter()
        .map(|b| edit_carried(b, &add_description))
        .collect();
    let mut answer = TCP_QUERY_ANSWER.to_le_bytes().to_vec();
    answer.extend_from_slice(&CHANGE_QUERY_ID.to_le_bytes());
    answer.extend_from_slice(&tl_bytes(&WORKER_CHANGED_MODEL.to_le_bytes()));
    from_worker.push(answer);
    out.insert(
        format!("{PREFIX}.worker_to_proxy.bin"),
        raw_stream(&from_worker),
    );
    out
}

#[test]
fn committed_handmade_streams_are_what_the_builder_makes() {
    let built = build();
    if let Ok(dir) = std::env::var("COCOON_HANDMADE") {
        for (name, bytes) in &built {
            std::fs::write(format!("{dir}/{name}"), bytes).unwrap();
        }
    }
    for (name, bytes) in &built {
        let committed = std::fs::read(format!("{DIR}{name}"))
            .unwrap_or_else(|e| panic!("{name}: {e}; regenerate with COCOON_HANDMADE={DIR}"));
        assert!(committed == *bytes, "{name} differs from the builder");
    }
}

/// Every frame of a committed hand-made stream, decoded by the codec: (packet, carried message).
fn decoded(name: &str) -> Vec<(tcp::AnyPacket, Option<Message>)> {
    let raw = std::fs::read(format!("{DIR}{PREFIX}.{name}.bin")).unwrap();
    let mut buf = BytesMut::from(&raw[..]);
    let mut dec = FrameDecoder::default();
    let mut enc = FrameEncoder::new();
    let mut again = BytesMut::new();
    let mut out = Vec::new();
    while let Some(frame) = dec.decode(&mut buf).unwrap() {
        enc.encode(&frame.body, &mut again).unwrap();
        let packet: tcp::AnyPacket = tl::from_bytes(frame.body.clone()).unwrap();
        assert_eq!(tl::to_bytes(&packet), frame.body.as_ref());
        let data: Option<Bytes> = match &packet {
            tcp::AnyPacket::Packet(p) => Some(p.data.clone()),
            tcp::AnyPacket::Query(q) => Some(q.data.clone()),
            tcp::AnyPacket::QueryAnswer(a) => Some(a.data.clone()),
            _ => None,
        };
        let message = data.map(|d| {
            let m: Message = tl::from_bytes(d.clone())
                .unwrap_or_else(|e| panic!("{name}: {e}: {}", hex::encode(&d)));
            assert_eq!(tl::to_bytes(&m), d.as_ref(), "{name}: re-encoding");
            m
        });
        out.push((packet, message));
    }
    assert!(buf.is_empty());
    assert_eq!(
        &again[..],
        &raw[..],
        "{name}: frames re-encode byte for byte"
    );
    out
}

#[test]
fn reference_client_runqueryex_with_public_key_decodes() {
    let frames = decoded("client_to_proxy");
    let queries: Vec<&client::RunQueryEx> = frames
        .iter()
        .filter_map(|(_, m)| match m {
            Some(Message::ClientRunQueryEx(q)) => Some(q),
            _ => None,
        })
        .collect();
    assert_eq!(queries.len(), 3);
    for q in queries {
        assert_eq!(q.flags & 0b10, 0b10);
        assert_eq!(q.public_key.map(|k| k.0), Some(PUBLIC_KEY));
        // The HTTP request inside is untouched.
        let request =
            cocoon_protocol::messages::http::Request::from_boxed_bytes(q.query.clone()).unwrap();
        assert_eq!(request.method, "POST");
    }
}

#[test]
fn reference_proxy_runqueryex_with_private_key_and_change_model_decode() {
    let frames = decoded("proxy_to_worker");
    let runs: Vec<&proxy::RunQueryEx> = frames
        .iter()
        .filter_map(|(_, m)| match m {
            Some(Message::ProxyRunQueryEx(q)) => Some(q),
            _ => None,
        })
        .collect();
    assert_eq!(runs.len(), 2);
    for q in runs {
        assert_eq!(q.private_key.map(|k| k.0), Some(PRIVATE_KEY));
    }
    let (packet, message) = frames.last().unwrap();
    assert!(matches!(packet, tcp::AnyPacket::Query(q) if q.id == CHANGE_QUERY_ID as i64));
    assert_eq!(
        message,
        &Some(Message::WorkerChangeModel(worker::ChangeModel {
            new_model: NEW_MODEL.into()
        }))
    );
}

#[test]
fn reference_worker_params_with_description_and_changed_model_decode() {
    let frames = decoded("worker_to_proxy");
    let Some(Message::WorkerConnectToProxy(c)) = &frames[1].1 else {
        panic!("second frame is worker.connectToProxy");
    };
    assert_eq!(c.params.flags, 0b111);
    assert_eq!(
        c.params.machine_description_json.as_deref(),
        Some(DESCRIPTION)
    );
    assert!(c.params.max_proto_version.is_some());
    let (packet, message) = frames.last().unwrap();
    assert!(matches!(packet, tcp::AnyPacket::QueryAnswer(a) if a.id == CHANGE_QUERY_ID as i64));
    assert_eq!(
        message,
        &Some(Message::WorkerChangedModel(worker::ChangedModel {}))
    );
}

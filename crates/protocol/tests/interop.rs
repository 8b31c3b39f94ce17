//! Every frame recorded from the reference implementation decodes with our codec and re-encodes
//! to the same bytes, and carries the message the recording says it does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use cocoon_protocol::messages::{Message, http, tcp};
use cocoon_protocol::tl::{self, TlConstructor};
use cocoon_protocol::{FrameDecoder, FrameEncoder};

struct Stream {
    file: String,
    offset: usize,
    count: usize,
    names: Vec<String>,
}

fn streams() -> Vec<Stream> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/interop/");
    std::fs::read_to_string(format!("{dir}streams.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Stream {
                file: format!("{dir}{}", f[0]),
                offset: f[1].parse().unwrap(),
                count: f[2].parse().unwrap(),
                names: f[3].split(',').map(str::to_owned).collect(),
            }
        })
        .collect()
}

/// Decodes `data` as `T` and checks it re-encodes identically.
fn roundtrip_message(data: &Bytes) -> Message {
    let m: Message =
        tl::from_bytes(data.clone()).unwrap_or_else(|e| panic!("{e}: {}", hex::encode(data)));
    assert_eq!(
        tl::to_bytes(&m),
        data.as_ref(),
        "re-encoding {}",
        m.constructor_name()
    );
    m
}

fn check_inner(m: &Message) -> usize {
    // The HTTP envelope inside run-query messages and first answers decodes too.
    match m {
        Message::ClientRunQueryEx(q) => {
            let req = http::Request::from_boxed_bytes(q.query.clone()).unwrap();
            assert_eq!(req.to_boxed_bytes(), q.query.as_ref());
            assert_eq!(req.method, "POST");
            1
        }
        Message::ProxyRunQueryEx(q) => {
            let req = http::Request::from_boxed_bytes(q.query.clone()).unwrap();
            assert_eq!(req.to_boxed_bytes(), q.query.as_ref());
            1
        }
        Message::ProxyQueryAnswerEx(a) => {
            let (resp, _payload) = cocoon_protocol::http::split_response(&a.answer).unwrap();
            assert_eq!(resp.status_code, 200);
            1
        }
        Message::ClientQueryAnswerEx(a) => {
            let (resp, _payload) = cocoon_protocol::http::split_response(&a.answer).unwrap();
            assert_eq!(resp.status_code, 200);
            1
        }
        _ => 0,
    }
}

#[test]
fn every_recorded_frame_roundtrips() {
    let mut total = 0;
    let mut inner_checked = 0;
    for s in streams() {
        let raw = std::fs::read(&s.file).unwrap();
        let mut buf = BytesMut::from(&raw[s.offset..]);
        let mut dec = FrameDecoder::default();
        let mut enc = FrameEncoder::new();
        let mut reencoded = BytesMut::new();
        let mut names = Vec::new();
        while let Some(frame) = dec.decode(&mut buf).unwrap() {
            enc.encode(&frame.body, &mut reencoded).unwrap();
            let packet: tcp::AnyPacket = tl::from_bytes(frame.body.clone()).unwrap();
            assert_eq!(tl::to_bytes(&packet), frame.body.as_ref());
            let name = match &packet {
                tcp::AnyPacket::Query(q) => {
                    let m = roundtrip_message(&q.data);
                    inner_checked += check_inner(&m);
                    m.constructor_name().to_owned()
                }
                tcp::AnyPacket::Packet(p) => {
                    let m = roundtrip_message(&p.data);
                    inner_checked += check_inner(&m);
                    m.constructor_name().to_owned()
                }
                tcp::AnyPacket::QueryAnswer(a) => {
                    roundtrip_message(&a.data).constructor_name().to_owned()
                }
                other => other.constructor_name().to_owned(),
            };
            names.push(name);
        }
        assert!(buf.is_empty(), "{}: {} bytes left over", s.file, buf.len());
        assert_eq!(names.len(), s.count, "{}", s.file);
        assert_eq!(names, s.names, "{}", s.file);
        assert_eq!(
            &reencoded[..],
            &raw[s.offset..],
            "{}: frames re-encode byte for byte",
            s.file
        );
        total += names.len();
    }
    assert_eq!(total, 2 * (18 + 45 + 41 + 18));
    assert!(inner_checked > 10);
}

#[test]
fn handshake_sequences_match_the_reference() {
    let all = streams();
    let worker = all
        .iter()
        .find(|s| s.file.ends_with("worker-proxy.worker_to_proxy.bin"))
        .unwrap();
    assert_eq!(
        &worker.names[..4],
        [
            "tcp.connect",
            "worker.connectToProxy",
            "worker.compareBalanceWithProxy",
            "worker.proxyHandshakeComplete"
        ]
    );
    let client = all
        .iter()
        .find(|s| s.file.ends_with("client-proxy.client_to_proxy.bin"))
        .unwrap();
    assert_eq!(
        &client.names[..3],
        [
            "tcp.connect",
            "client.connectToProxy",
            "client.authorizeWithProxyShort"
        ]
    );
}

//! Malformed input from a peer yields a precise typed error and never a panic: truncated and
//! padded transcript frames, every TL encoding rule broken once, bad frame headers, streams fed
//! one byte at a time, and proof-of-work messages that do not follow the rules.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use proptest::test_runner::Config;

use cocoon_protocol::frame::{FRAME_HEADER_LEN, MAX_FRAME_LEN, MIN_FRAME_LEN};
use cocoon_protocol::messages::{Message, client, tcp, worker};
use cocoon_protocol::pow::{self, PowAnswer, PowChallenge};
use cocoon_protocol::sample::Sample;
use cocoon_protocol::tl::{self, BOOL_FALSE, BOOL_TRUE, TlConstructor};
use cocoon_protocol::{Error, FrameDecoder, FrameEncoder};

/// The recorded streams of the reference, from their first frame on.
fn transcript_streams() -> Vec<(String, Bytes)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/interop/");
    include_str!("data/interop/streams.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let mut f = l.split(' ');
            let file = f.next().unwrap();
            let offset: usize = f.next().unwrap().parse().unwrap();
            let raw = std::fs::read(format!("{dir}{file}")).unwrap();
            (file.to_owned(), Bytes::from(raw).slice(offset..))
        })
        .collect()
}

fn frames_of(stream: &Bytes) -> Vec<Bytes> {
    let mut buf = BytesMut::from(&stream[..]);
    let mut dec = FrameDecoder::default();
    let mut out = Vec::new();
    while let Some(f) = dec.decode(&mut buf).unwrap() {
        out.push(f.body);
    }
    assert!(buf.is_empty());
    out
}

/// One frame body per distinct inner constructor, from the proxy-side recordings (the node-side
/// ones carry the same frames).
fn distinct_frames() -> Vec<Bytes> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (name, stream) in transcript_streams() {
        if !name.contains("-proxy.") {
            continue;
        }
        for body in frames_of(&stream) {
            let key = match inner_payload(&body) {
                Some(data) => tl::peek_constructor(&data).unwrap(),
                None => tl::peek_constructor(&body).unwrap(),
            };
            if seen.insert(key) {
                out.push(body);
            }
        }
    }
    assert!(out.len() >= 25, "only {} distinct frames", out.len());
    out
}

fn inner_payload(body: &Bytes) -> Option<Bytes> {
    match tl::from_bytes::<tcp::AnyPacket>(body.clone()).unwrap() {
        tcp::AnyPacket::Packet(p) => Some(p.data),
        tcp::AnyPacket::Query(q) => Some(q.data),
        tcp::AnyPacket::QueryAnswer(a) => Some(a.data),
        _ => None,
    }
}

fn boxed(id: u32, rest: &[u8]) -> Vec<u8> {
    let mut v = id.to_le_bytes().to_vec();
    v.extend_from_slice(rest);
    v
}

#[test]
fn truncation_at_every_offset_is_unexpected_eof() {
    let mut checked = 0;
    for body in distinct_frames() {
        for cut in 0..body.len() {
            match tl::from_bytes::<tcp::AnyPacket>(body.slice(..cut)) {
                Err(Error::UnexpectedEof { .. }) => {}
                other => panic!("cut at {cut} of {}: {other:?}", body.len()),
            }
            checked += 1;
        }
        if let Some(data) = inner_payload(&body) {
            for cut in 0..data.len() {
                match tl::from_bytes::<Message>(data.slice(..cut)) {
                    Err(Error::UnexpectedEof { .. }) => {}
                    // A cut inside a vector can leave fewer bytes than its count needs: that
                    // is refused before reading the items.
                    Err(Error::CountTooLarge { .. }) => {}
                    other => panic!("inner cut at {cut} of {}: {other:?}", data.len()),
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 5000, "{checked}");
}

#[test]
fn trailing_bytes_are_refused() {
    for body in distinct_frames() {
        for extra in 1..=8usize {
            let mut long = body.to_vec();
            long.extend(std::iter::repeat_n(0u8, extra));
            assert_eq!(
                tl::from_bytes::<tcp::AnyPacket>(long),
                Err(Error::TrailingBytes(extra))
            );
        }
        if let Some(data) = inner_payload(&body) {
            let mut long = data.to_vec();
            long.extend_from_slice(&[1, 2, 3, 4]);
            assert_eq!(
                tl::from_bytes::<Message>(long),
                Err(Error::TrailingBytes(4))
            );
        }
    }
}

#[test]
fn unknown_and_unexpected_constructors() {
    let junk = boxed(0xdead_beef, &[0; 8]);
    assert_eq!(
        tl::from_bytes::<tcp::AnyPacket>(junk.clone()),
        Err(Error::UnknownConstructor {
            id: 0xdead_beef,
            context: "tcp.Packet"
        })
    );
    assert!(matches!(
        tl::from_bytes::<Message>(junk.clone()),
        Err(Error::UnknownConstructor {
            id: 0xdead_beef,
            ..
        })
    ));
    assert_eq!(
        tcp::Ping::from_boxed_bytes(junk),
        Err(Error::UnexpectedConstructor {
            expected: tcp::Ping::ID,
            found: 0xdead_beef
        })
    );
    // A valid constructor in the wrong place: a message id where a packet is expected.
    let ping_as_message = tl::to_bytes(&Message::WorkerNewCoefficient(worker::NewCoefficient {
        new_coefficient: 1000,
    }));
    assert!(matches!(
        tl::from_bytes::<tcp::AnyPacket>(ping_as_message),
        Err(Error::UnknownConstructor { id: 0x6af092b0, .. })
    ));
    // Fewer than four bytes cannot even hold an id.
    for n in 0..4 {
        assert_eq!(
            tl::peek_constructor(&[0u8; 3][..n]),
            Err(Error::UnexpectedEof {
                needed: 4,
                remaining: n
            })
        );
    }
}

#[test]
fn bool_must_be_bool_true_or_bool_false() {
    for (value, ok) in [
        (BOOL_TRUE, Some(true)),
        (BOOL_FALSE, Some(false)),
        (0, None),
        (1, None),
        (BOOL_TRUE ^ 1, None),
        (0xffff_ffff, None),
    ] {
        let bytes = boxed(worker::ProxyHandshakeComplete::ID, &value.to_le_bytes());
        let got = worker::ProxyHandshakeComplete::from_boxed_bytes(bytes);
        match ok {
            Some(b) => assert_eq!(got.unwrap().is_disabled, b),
            None => assert_eq!(got, Err(Error::InvalidBool(value))),
        }
    }
    // The same corruption inside a recorded frame is caught through the packet wrapper.
    for body in distinct_frames() {
        let Some(data) = inner_payload(&body) else {
            continue;
        };
        if tl::peek_constructor(&data).unwrap() != worker::ProxyHandshakeComplete::ID {
            continue;
        }
        let mut bad = data.to_vec();
        bad[4] ^= 0x40;
        let expected = u32::from_le_bytes([bad[4], bad[5], bad[6], bad[7]]);
        assert_eq!(
            tl::from_bytes::<Message>(bad),
            Err(Error::InvalidBool(expected))
        );
        return;
    }
    panic!("no worker.proxyHandshakeComplete in the transcripts");
}

/// `tcp.packet` with a hand-made `data` encoding.
fn packet_with_raw_data(raw: &[u8]) -> Vec<u8> {
    boxed(tcp::Packet::ID, raw)
}

#[test]
fn bytes_length_prefix_rules() {
    // 0xff is never a valid prefix.
    assert_eq!(
        tl::from_bytes::<tcp::AnyPacket>(packet_with_raw_data(&[0xff, 0, 0, 0])),
        Err(Error::InvalidLengthPrefix)
    );
    // The long form for lengths that fit the short form is refused, up to 253.
    for len in [0usize, 1, 3, 253] {
        let mut raw = vec![0xfe, len as u8, 0, 0];
        raw.extend(std::iter::repeat_n(b'a', len));
        raw.resize(raw.len().next_multiple_of(4), 0);
        assert_eq!(
            tl::from_bytes::<tcp::AnyPacket>(packet_with_raw_data(&raw)),
            Err(Error::NonCanonicalLength(len))
        );
    }
    // 254 is the first length that takes the long form.
    let mut raw = vec![0xfe, 254, 0, 0];
    raw.extend(std::iter::repeat_n(b'a', 254));
    raw.resize(raw.len().next_multiple_of(4), 0);
    let p = tl::from_bytes::<tcp::AnyPacket>(packet_with_raw_data(&raw)).unwrap();
    assert!(matches!(p, tcp::AnyPacket::Packet(ref p) if p.data.len() == 254));
    // A long form announcing more than is there.
    assert!(matches!(
        tl::from_bytes::<tcp::AnyPacket>(packet_with_raw_data(&[0xfe, 0xff, 0xff, 0xff])),
        Err(Error::UnexpectedEof { .. })
    ));
}

#[test]
fn padding_must_be_zero() {
    // One data byte, two padding bytes: each padding byte set in turn.
    for i in 2..4 {
        let mut raw = [1u8, b'x', 0, 0];
        raw[i] = 1;
        assert_eq!(
            tl::from_bytes::<tcp::AnyPacket>(packet_with_raw_data(&raw)),
            Err(Error::NonZeroPadding)
        );
    }
    // Long form: 255 bytes of data leave one byte of padding.
    let mut raw = vec![0xfe, 255, 0, 0];
    raw.extend(std::iter::repeat_n(7u8, 255));
    raw.push(9);
    assert_eq!(
        tl::from_bytes::<tcp::AnyPacket>(packet_with_raw_data(&raw)),
        Err(Error::NonZeroPadding)
    );
    // Missing padding is a truncation.
    assert!(matches!(
        tl::from_bytes::<tcp::AnyPacket>(packet_with_raw_data(&[1, b'x'])),
        Err(Error::UnexpectedEof { .. })
    ));
}

#[test]
fn strings_must_be_utf8() {
    for bad in [
        &[0xc3, 0x28][..],
        &[0xff],
        &[0xed, 0xa0, 0x80],
        &[0xe2, 0x82],
    ] {
        let mut raw = (-7i64).to_le_bytes().to_vec(); // id
        raw.extend_from_slice(&500i32.to_le_bytes()); // code
        raw.push(bad.len() as u8);
        raw.extend_from_slice(bad);
        raw.resize(raw.len().next_multiple_of(4), 0);
        assert_eq!(
            tl::from_bytes::<tcp::AnyPacket>(boxed(tcp::QueryError::ID, &raw)),
            Err(Error::InvalidUtf8),
            "{bad:x?}"
        );
    }
    // `bytes` fields take the same data without complaint.
    let ok = tl::from_bytes::<tcp::AnyPacket>(packet_with_raw_data(&[2, 0xc3, 0x28, 0]));
    assert!(ok.is_ok());
}

#[test]
fn vector_counts_are_checked_before_allocating() {
    let workers = |count: i32, rest: &[u8]| {
        let mut raw = count.to_le_bytes().to_vec();
        raw.extend_from_slice(rest);
        boxed(client::WorkerTypes::ID, &raw)
    };
    assert_eq!(
        tl::from_bytes::<Message>(workers(-1, &[])),
        Err(Error::NegativeCount(-1))
    );
    assert_eq!(
        tl::from_bytes::<Message>(workers(i32::MIN, &[0; 64])),
        Err(Error::NegativeCount(i32::MIN))
    );
    // Counts no remaining input could hold are refused at once, whatever their size.
    for count in [i32::MAX, 1 << 24, 17] {
        assert_eq!(
            tl::from_bytes::<Message>(workers(count, &[0; 64])),
            Err(Error::CountTooLarge {
                count: count as usize,
                remaining: 64
            })
        );
    }
    // A plausible count whose items are missing runs out of input instead.
    assert!(matches!(
        tl::from_bytes::<Message>(workers(16, &[0; 64])),
        Err(Error::UnexpectedEof { .. })
    ));
    // An empty vector is fine.
    assert_eq!(
        tl::from_bytes::<Message>(workers(0, &[])),
        Ok(Message::ClientWorkerTypes(client::WorkerTypes {
            types: vec![]
        }))
    );
}

fn header(len: u32, seqno: i32) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_u32_le(len);
    b.put_i32_le(seqno);
    b
}

#[test]
fn frame_length_bounds() {
    for len in 0..MIN_FRAME_LEN {
        let mut buf = header(len, 0);
        buf.extend_from_slice(&[0; 4]);
        assert_eq!(
            FrameDecoder::default().decode(&mut buf),
            Err(Error::BadLength {
                len,
                min: MIN_FRAME_LEN,
                max: MAX_FRAME_LEN
            })
        );
    }
    // Too long: refused from the header alone, before any body is buffered.
    for len in [MAX_FRAME_LEN + 1, u32::MAX] {
        let mut buf = header(len, 0);
        assert_eq!(
            FrameDecoder::default().decode(&mut buf),
            Err(Error::BadLength {
                len,
                min: MIN_FRAME_LEN,
                max: MAX_FRAME_LEN
            })
        );
    }
    // A local limit below the protocol's.
    let mut dec = FrameDecoder::new(100);
    assert_eq!(
        dec.decode(&mut header(101, 0)),
        Err(Error::BadLength {
            len: 101,
            min: MIN_FRAME_LEN,
            max: 100
        })
    );
    // Limits outside the protocol's bounds are clamped.
    let mut dec = FrameDecoder::new(0);
    let mut buf = header(5, 0);
    assert!(matches!(
        dec.decode(&mut buf),
        Err(Error::BadLength { max: 4, .. })
    ));
    let mut dec = FrameDecoder::new(u32::MAX);
    assert!(matches!(
        dec.decode(&mut header(MAX_FRAME_LEN + 1, 0)),
        Err(Error::BadLength { .. })
    ));
    // The exact bounds are accepted.
    let mut buf = header(MIN_FRAME_LEN, 0);
    buf.extend_from_slice(&[1, 2, 3, 4]);
    assert_eq!(
        FrameDecoder::default()
            .decode(&mut buf)
            .unwrap()
            .unwrap()
            .body,
        Bytes::from_static(&[1, 2, 3, 4])
    );
    let mut buf = header(MAX_FRAME_LEN, 0);
    assert_eq!(FrameDecoder::default().decode(&mut buf), Ok(None));
    assert_eq!(
        FrameDecoder::default().bytes_needed(&buf),
        FRAME_HEADER_LEN + MAX_FRAME_LEN as usize
    );
    // The encoder refuses what the decoder would.
    let mut out = BytesMut::new();
    let mut enc = FrameEncoder::new();
    assert!(matches!(
        enc.encode(&[0; 3], &mut out),
        Err(Error::BadLength { len: 3, .. })
    ));
    assert!(matches!(
        enc.encode(&vec![0; MAX_FRAME_LEN as usize + 1], &mut out),
        Err(Error::BadLength { .. })
    ));
    assert!(out.is_empty());
    assert_eq!(enc.next_seqno(), 0, "a refused frame takes no seqno");
}

#[test]
fn seqno_must_count_up_from_zero() {
    let frame = |seqno: i32| {
        let mut b = header(4, seqno);
        b.extend_from_slice(&tcp::Ping::ID.to_le_bytes());
        b
    };
    for first in [1, -1, i32::MAX, 2] {
        assert_eq!(
            FrameDecoder::default().decode(&mut frame(first)),
            Err(Error::BadSeqno {
                expected: 0,
                found: first
            })
        );
    }
    let mut dec = FrameDecoder::default();
    dec.decode(&mut frame(0)).unwrap().unwrap();
    dec.decode(&mut frame(1)).unwrap().unwrap();
    // Replayed, skipped.
    assert_eq!(
        dec.decode(&mut frame(1)),
        Err(Error::BadSeqno {
            expected: 2,
            found: 1
        })
    );
    assert_eq!(
        dec.decode(&mut frame(3)),
        Err(Error::BadSeqno {
            expected: 2,
            found: 3
        })
    );
    // The seqno is checked from the header, before the body arrives.
    let mut dec = FrameDecoder::default();
    assert!(matches!(
        dec.decode(&mut header(1000, 5)),
        Err(Error::BadSeqno { .. })
    ));
}

#[test]
fn streams_fed_one_byte_at_a_time() {
    for (name, stream) in transcript_streams() {
        let whole = frames_of(&stream);
        let mut dec = FrameDecoder::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in stream.iter() {
            buf.put_u8(b);
            let needed = dec.bytes_needed(&buf);
            match dec.decode(&mut buf).unwrap() {
                Some(frame) => {
                    assert_eq!(frame.seqno, i32::try_from(got.len()).unwrap());
                    got.push(frame.body);
                }
                // Until a frame is complete the decoder asks for more than is there.
                None => assert!(needed > buf.len(), "{name}"),
            }
        }
        assert!(buf.is_empty(), "{name}");
        assert_eq!(got, whole, "{name}");
        // A stream cut short leaves a partial frame and no error.
        let mut dec = FrameDecoder::default();
        let mut buf = BytesMut::from(&stream[..stream.len() - 1]);
        let mut n = 0;
        while dec.decode(&mut buf).unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, whole.len() - 1, "{name}");
        assert!(!buf.is_empty());
    }
}

#[test]
fn proof_of_work_rules() {
    let challenge = PowChallenge {
        difficulty: 8,
        salt: *b"0123456789abcdef",
    };
    // Bad magic on either message.
    let mut c = challenge.encode();
    c[3] ^= 0x80;
    assert!(matches!(
        PowChallenge::decode(&c),
        Err(Error::BadMagic {
            expected: pow::CHALLENGE_MAGIC,
            ..
        })
    ));
    let answer = challenge.solve(pow::MAX_CLIENT_DIFFICULTY).unwrap();
    challenge.verify(&answer).unwrap();
    let mut a = answer.encode();
    a[0] ^= 1;
    assert!(matches!(
        PowAnswer::decode(&a),
        Err(Error::BadMagic {
            expected: pow::ANSWER_MAGIC,
            ..
        })
    ));
    // A challenge's bytes are not an answer and the other way round.
    let mut swapped = [0u8; pow::ANSWER_LEN];
    swapped.copy_from_slice(&challenge.encode()[..pow::ANSWER_LEN]);
    assert!(matches!(
        PowAnswer::decode(&swapped),
        Err(Error::BadMagic { .. })
    ));

    // Insufficient work.
    let hard = PowChallenge {
        difficulty: 24,
        salt: [3; 16],
    };
    let weak = (0..).find(|n| !hard.is_solved_by(*n)).unwrap();
    assert_eq!(
        hard.verify(&PowAnswer { nonce: weak }),
        Err(Error::Insufficient(24))
    );
    // A nonce solving an easier challenge is not enough for a harder one with the same salt.
    let easy = PowChallenge {
        difficulty: 4,
        salt: [3; 16],
    };
    let cheap = easy.solve(pow::MAX_CLIENT_DIFFICULTY).unwrap();
    if !hard.is_solved_by(cheap.nonce) {
        assert_eq!(hard.verify(&cheap), Err(Error::Insufficient(24)));
    }

    // The solver refuses more than the client's limit, at once.
    for difficulty in [29, 40, 64] {
        let c = PowChallenge {
            difficulty,
            salt: [0; 16],
        };
        assert_eq!(
            c.solve(pow::MAX_CLIENT_DIFFICULTY),
            Err(Error::TooDifficult {
                difficulty,
                limit: 28
            })
        );
    }
    // Difficulties that cannot be met at all are refused when decoding.
    for difficulty in [-1, 65, i32::MIN, i32::MAX] {
        let mut c = challenge.encode();
        c[4..8].copy_from_slice(&difficulty.to_le_bytes());
        assert_eq!(
            PowChallenge::decode(&c),
            Err(Error::InvalidDifficulty(difficulty))
        );
    }
    // Difficulty 0 is met by any nonce.
    let free = PowChallenge {
        difficulty: 0,
        salt: [9; 16],
    };
    assert_eq!(free.solve(0), Ok(PowAnswer { nonce: 0 }));
}

/// Decoding must never panic; whatever does decode must re-encode to the same bytes.
fn decode_message_checked(bytes: Vec<u8>) -> Result<(), TestCaseError> {
    if let Ok(m) = tl::from_bytes::<Message>(bytes.clone()) {
        prop_assert_eq!(tl::to_bytes(&m), bytes);
    }
    Ok(())
}

/// Bytes that start with a real constructor id, so decoding gets past the first check.
fn bytes_with_known_id() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::sample::select(Message::IDS),
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(id, rest)| boxed(id, &rest))
}

proptest! {
    #![proptest_config(Config { cases: 512, failure_persistence: None, ..Config::default() })]

    #[test]
    fn random_bytes_never_panic_the_tl_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_message_checked(bytes.clone())?;
        let _ = tl::from_bytes::<tcp::AnyPacket>(bytes);
    }

    #[test]
    fn random_bodies_of_known_constructors_never_panic(bytes in bytes_with_known_id()) {
        decode_message_checked(bytes)?;
    }

    /// Valid messages with a few bytes overwritten, removed or inserted.
    #[test]
    fn mutated_messages_never_panic(
        message in Message::sample(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut bytes = tl::to_bytes(&message);
        for (at, byte, op) in edits {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => { bytes.remove(i); }
                _ => bytes.insert(i, byte),
            }
        }
        decode_message_checked(bytes)?;
    }

    #[test]
    fn random_bytes_never_panic_the_frame_decoder(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        max_len in prop_oneof![Just(MAX_FRAME_LEN), 0u32..64, any::<u32>()],
        chunk in 1usize..64,
    ) {
        let mut dec = FrameDecoder::new(max_len);
        let mut buf = BytesMut::new();
        let mut expected_seqno = 0;
        'feed: for piece in bytes.chunks(chunk) {
            buf.extend_from_slice(piece);
            loop {
                let _ = dec.bytes_needed(&buf);
                match dec.decode(&mut buf) {
                    Ok(Some(frame)) => {
                        prop_assert_eq!(frame.seqno, expected_seqno);
                        prop_assert!(frame.body.len() >= MIN_FRAME_LEN as usize);
                        prop_assert!(frame.body.len() <= max_len.max(MIN_FRAME_LEN) as usize);
                        expected_seqno += 1;
                        let _ = tl::from_bytes::<tcp::AnyPacket>(frame.body);
                    }
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
    }
}

//! Feeds arbitrary bytes to the receive path of a connection after TLS: the frame decoder, then
//! every frame body as `tcp.Packet`, every packet payload as a `Message`, and the HTTP envelope
//! inside run-query messages and first answers; each payload also as the reference's
//! `rootConfig.Config`. Nothing may panic, and whatever decodes must re-encode to exactly the
//! bytes it came from (the codec is strict, so this holds by design).

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;

use cocoon_protocol::messages::{Message, http, root_config, tcp};
use cocoon_protocol::tl::{self, TlConstructor};
use cocoon_protocol::{Error, Frame, FrameDecoder, FrameEncoder};

/// Decodes `input` fed in pieces of `chunk` bytes; returns the frames, the error that stopped
/// decoding (if any) and how many input bytes the frames used.
fn split(input: &[u8], chunk: usize) -> (Vec<Frame>, Option<Error>, usize) {
    let mut decoder = FrameDecoder::default();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut used = 0;
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    used += 8 + frame.body.len();
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(e) => return (frames, Some(e), used),
            }
        }
    }
    (frames, None, used)
}

fn check_message(data: &Bytes) {
    if let Ok(config) = tl::from_bytes::<root_config::AnyConfig>(data.clone()) {
        assert_eq!(tl::to_bytes(&config), &data[..], "root config re-encodes");
    }
    let Ok(message) = tl::from_bytes::<Message>(data.clone()) else {
        return;
    };
    assert_eq!(tl::to_bytes(&message), &data[..], "message re-encodes");
    match &message {
        Message::ClientRunQuery(q) => check_request(&q.query),
        Message::ClientRunQueryEx(q) => check_request(&q.query),
        Message::ProxyRunQuery(q) => check_request(&q.query),
        Message::ProxyRunQueryEx(q) => check_request(&q.query),
        Message::ClientQueryAnswerEx(a) => check_response(&a.answer),
        Message::ProxyQueryAnswerEx(a) => check_response(&a.answer),
        Message::ClientQueryAnswer(a) => check_response(&a.answer),
        Message::ProxyQueryAnswer(a) => check_response(&a.answer),
        _ => {}
    }
}

fn check_request(query: &Bytes) {
    if let Ok(request) = http::Request::from_boxed_bytes(query.clone()) {
        assert_eq!(
            request.to_boxed_bytes(),
            &query[..],
            "http.request re-encodes"
        );
        let _ = request.header("content-type");
    }
}

fn check_response(answer: &Bytes) {
    if let Ok((response, rest)) = cocoon_protocol::http::split_response(answer) {
        let mut again = response.to_boxed_bytes();
        again.extend_from_slice(&rest);
        assert_eq!(
            again,
            &answer[..],
            "http.response head and payload re-encode"
        );
        let _ = response.header("content-type");
    }
}

fuzz_target!(|input: &[u8]| {
    let (frames, error, used) = split(input, input.len().max(1));

    // The same stream in small pieces decodes to the same frames and stops at the same error.
    let chunk = 1 + input.len() % 13;
    let (pieces, piece_error, _) = split(input, chunk);
    assert_eq!(
        pieces, frames,
        "frames do not depend on how the bytes arrive"
    );
    assert_eq!(piece_error, error);

    // The frames re-encode to the bytes they were cut from.
    let mut encoder = FrameEncoder::new();
    let mut again = BytesMut::new();
    for frame in &frames {
        assert_eq!(frame.seqno, encoder.next_seqno());
        encoder
            .encode(&frame.body, &mut again)
            .expect("a decoded body is a valid body");
    }
    assert_eq!(&again[..], &input[..used], "frames re-encode");

    for frame in &frames {
        // Whatever the body, it may also be read as a message directly.
        check_message(&frame.body);
        let Ok(packet) = tl::from_bytes::<tcp::AnyPacket>(frame.body.clone()) else {
            continue;
        };
        assert_eq!(tl::to_bytes(&packet), &frame.body[..], "packet re-encodes");
        match &packet {
            tcp::AnyPacket::Packet(p) => check_message(&p.data),
            tcp::AnyPacket::Query(q) => check_message(&q.data),
            tcp::AnyPacket::QueryAnswer(a) => check_message(&a.data),
            _ => {}
        }
    }

    // Inputs too short to be a frame are still worth a direct look.
    if frames.is_empty() {
        check_message(&Bytes::copy_from_slice(input));
    }
});

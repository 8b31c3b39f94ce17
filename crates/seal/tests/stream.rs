//! Chunk stream behaviour: round trips, and one distinct error for each way a relay can
//! interfere with a stream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cocoon_seal::stream::{CHUNK_HEADER_LEN, CHUNK_OVERHEAD, MAX_CHUNK_PLAINTEXT};
use cocoon_seal::{ChunkView, ReplyKey, SealError, StreamId};
use common::TestRng;

fn stream(key: &ReplyKey, id: u8, parts: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut sealer = key.sealer_with_stream_id(StreamId([id; 16]));
    let (last, init) = parts.split_last().unwrap();
    let mut out: Vec<Vec<u8>> = init.iter().map(|p| sealer.seal(p).unwrap()).collect();
    out.push(sealer.seal_final(last).unwrap());
    out
}

fn key(n: u8) -> ReplyKey {
    ReplyKey::from_bytes([n; 32])
}

const PARTS: &[&[u8]] = &[b"one", b"two", b"three", b"four"];

#[test]
fn round_trip_in_order() {
    let k = key(1);
    let chunks = stream(&k, 7, PARTS);
    let mut opener = k.opener();
    for (i, chunk) in chunks.iter().enumerate() {
        let opened = opener.open(chunk).unwrap();
        assert_eq!(opened.seq, i as u64);
        assert_eq!(opened.plaintext, PARTS[i]);
        assert_eq!(opened.is_final, i == PARTS.len() - 1);
    }
    assert!(opener.is_complete());
    assert_eq!(opener.stream_id(), Some(StreamId([7; 16])));
    assert_eq!(opener.finish().unwrap(), 4);
}

#[test]
fn layout_overhead() {
    let k = key(1);
    let chunk = k
        .sealer_with_stream_id(StreamId([0; 16]))
        .seal(b"abc")
        .unwrap();
    assert_eq!(chunk.len(), 3 + CHUNK_OVERHEAD);
    assert_eq!(CHUNK_HEADER_LEN, 30);
    let view = ChunkView::parse(&chunk).unwrap();
    assert_eq!(
        (view.seq, view.is_final, view.ciphertext.len()),
        (0, false, 19)
    );
    assert_eq!(ChunkView::frame_len(&chunk[..29]).unwrap(), None);
    assert_eq!(ChunkView::frame_len(&chunk).unwrap(), Some(chunk.len()));
}

#[test]
fn single_empty_final_chunk() {
    let k = key(2);
    let chunks = stream(&k, 1, &[b""]);
    let mut opener = k.opener();
    let opened = opener.open(&chunks[0]).unwrap();
    assert!(opened.is_final && opened.plaintext.is_empty());
    opener.finish().unwrap();
}

#[test]
fn reordering_is_out_of_order() {
    let k = key(3);
    let c = stream(&k, 1, PARTS);
    let mut opener = k.opener();
    opener.open(&c[0]).unwrap();
    assert_eq!(
        opener.open(&c[2]).unwrap_err(),
        SealError::ChunkOutOfOrder {
            expected: 1,
            got: 2
        }
    );
    // Fail closed: the late chunk 1 is not accepted afterwards.
    assert_eq!(opener.open(&c[1]).unwrap_err(), SealError::StreamFailed);
    assert_eq!(opener.finish().unwrap_err(), SealError::StreamFailed);
}

#[test]
fn duplication_is_replay() {
    let k = key(4);
    let c = stream(&k, 1, PARTS);
    let mut opener = k.opener();
    opener.open(&c[0]).unwrap();
    opener.open(&c[1]).unwrap();
    assert_eq!(
        opener.open(&c[1]).unwrap_err(),
        SealError::ChunkReplayed { seq: 1 }
    );
}

#[test]
fn dropping_a_middle_chunk_is_out_of_order() {
    let k = key(5);
    let c = stream(&k, 1, PARTS);
    let mut opener = k.opener();
    opener.open(&c[0]).unwrap();
    opener.open(&c[1]).unwrap();
    assert_eq!(
        opener.open(&c[3]).unwrap_err(),
        SealError::ChunkOutOfOrder {
            expected: 2,
            got: 3
        }
    );
}

#[test]
fn dropping_the_tail_is_truncation() {
    let k = key(6);
    let c = stream(&k, 1, PARTS);
    let mut opener = k.opener();
    for chunk in &c[..3] {
        opener.open(chunk).unwrap();
    }
    assert!(!opener.is_complete());
    assert_eq!(
        opener.finish().unwrap_err(),
        SealError::StreamTruncated { delivered: 3 }
    );
    assert_eq!(
        k.opener().finish().unwrap_err(),
        SealError::StreamTruncated { delivered: 0 }
    );
}

#[test]
fn chunks_after_the_final_one_are_refused() {
    let k = key(7);
    let c = stream(&k, 1, &[b"a", b"b"]);
    let mut opener = k.opener();
    opener.open(&c[0]).unwrap();
    opener.open(&c[1]).unwrap();
    // A replay of the final chunk after the end is still "after final".
    assert_eq!(
        opener.open(&c[1]).unwrap_err(),
        SealError::ChunkAfterFinal { seq: 1 }
    );
}

#[test]
fn splicing_between_streams_is_a_mismatch() {
    // Two answer streams under the same reply key (as if a request were replayed).
    let k = key(8);
    let a = stream(&k, 0xaa, PARTS);
    let b = stream(&k, 0xbb, PARTS);
    let mut opener = k.opener();
    opener.open(&a[0]).unwrap();
    assert_eq!(
        opener.open(&b[1]).unwrap_err(),
        SealError::StreamMismatch {
            expected: StreamId([0xaa; 16]),
            found: StreamId([0xbb; 16])
        }
    );
    // Rewriting the foreign chunk's stream id to ours does not make it authentic.
    let mut opener = k.opener_for(StreamId([0xaa; 16]));
    opener.open(&a[0]).unwrap();
    let mut forged = b[1].clone();
    forged[2..18].copy_from_slice(&[0xaa; 16]);
    assert_eq!(
        opener.open(&forged).unwrap_err(),
        SealError::ChunkAuthentication { seq: 1 }
    );
    // A pinned opener refuses another stream from the first chunk on.
    let mut pinned = k.opener_for(StreamId([0xaa; 16]));
    assert!(matches!(
        pinned.open(&b[0]),
        Err(SealError::StreamMismatch { .. })
    ));
}

#[test]
fn splicing_from_another_reply_key_fails_authentication() {
    let a = stream(&key(9), 1, PARTS);
    let b = stream(&key(10), 1, PARTS); // same stream id, different reply key
    let mut opener = key(9).opener();
    opener.open(&a[0]).unwrap();
    assert_eq!(
        opener.open(&b[1]).unwrap_err(),
        SealError::ChunkAuthentication { seq: 1 }
    );
}

#[test]
fn rewriting_header_fields_fails_authentication() {
    let k = key(11);
    let c = stream(&k, 1, PARTS);
    // Turn chunk 1 into a final chunk (early end), or renumber it.
    let mut early_end = c[1].clone();
    early_end[1] = 1;
    let mut renumbered = c[2].clone();
    renumbered[25] = 1;
    for forged in [early_end, renumbered] {
        let mut opener = k.opener();
        opener.open(&c[0]).unwrap();
        assert_eq!(
            opener.open(&forged).unwrap_err(),
            SealError::ChunkAuthentication { seq: 1 }
        );
    }
    // Clearing the final flag of the last chunk.
    let mut not_final = c[3].clone();
    not_final[1] = 0;
    let mut opener = k.opener();
    for chunk in &c[..3] {
        opener.open(chunk).unwrap();
    }
    assert_eq!(
        opener.open(&not_final).unwrap_err(),
        SealError::ChunkAuthentication { seq: 3 }
    );
}

#[test]
fn malformed_chunks_are_parse_errors() {
    let k = key(12);
    let good = stream(&k, 1, &[b"payload"]).remove(0);
    let mut v = good.clone();
    v[0] = 9;
    assert_eq!(
        ChunkView::parse(&v).unwrap_err(),
        SealError::UnsupportedVersion {
            structure: "chunk",
            found: 9
        }
    );
    let mut v = good.clone();
    v[1] = 0x81;
    assert_eq!(
        ChunkView::parse(&v).unwrap_err(),
        SealError::ReservedFlags { flags: 0x81 }
    );
    let mut v = good.clone();
    v.push(0);
    assert!(matches!(
        ChunkView::parse(&v),
        Err(SealError::TrailingBytes { extra: 1, .. })
    ));
    let mut v = good.clone();
    v[26..30].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        ChunkView::parse(&v),
        Err(SealError::TooLong { .. })
    ));
    let mut v = good.clone();
    v[26..30].copy_from_slice(&15u32.to_be_bytes());
    assert!(matches!(
        ChunkView::parse(&v),
        Err(SealError::Truncated { .. })
    ));
    for cut in 0..good.len() {
        assert!(ChunkView::parse(&good[..cut]).is_err());
    }
    // And the opener fails closed on them.
    let mut opener = k.opener();
    assert!(opener.open(&good[..10]).is_err());
    assert_eq!(opener.open(&good).unwrap_err(), SealError::StreamFailed);
}

#[test]
fn sealer_state_machine() {
    let k = key(13);
    let mut sealer = k.sealer(&mut TestRng::new(1)).unwrap();
    assert_eq!(sealer.next_sequence(), 0);
    sealer.seal(b"x").unwrap();
    sealer.seal_final(b"y").unwrap();
    assert!(sealer.is_finished());
    assert_eq!(sealer.seal(b"z").unwrap_err(), SealError::StreamFinished);
    assert_eq!(
        sealer.seal_final(b"z").unwrap_err(),
        SealError::StreamFinished
    );
    let big = vec![0u8; MAX_CHUNK_PLAINTEXT + 1];
    let mut sealer = k.sealer(&mut TestRng::new(2)).unwrap();
    assert!(matches!(sealer.seal(&big), Err(SealError::TooLong { .. })));
    // A refused chunk does not consume a sequence number.
    assert_eq!(sealer.next_sequence(), 0);
}

#[test]
fn random_stream_ids_differ() {
    let k = key(14);
    let mut rng = TestRng::new(3);
    let a = k.sealer(&mut rng).unwrap().stream_id();
    let b = k.sealer(&mut rng).unwrap().stream_id();
    assert_ne!(a, b);
}

#[test]
fn open_into_appends_and_leaves_the_buffer_alone_on_error() {
    let k = key(15);
    let c = stream(&k, 1, PARTS);
    let mut opener = k.opener();
    let mut out = b"prefix:".to_vec();
    opener.open_into(&c[0], &mut out).unwrap();
    assert_eq!(out, b"prefix:one");
    assert!(opener.open_into(&c[2], &mut out).is_err());
    assert_eq!(out, b"prefix:one");
}

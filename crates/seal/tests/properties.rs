//! Property tests: round trips for envelopes and chunk streams, and every tampering class, over
//! random sizes, recipients, positions and bit flips.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cocoon_seal::stream::CHUNK_HEADER_LEN;
use cocoon_seal::{ChunkOpener, Envelope, ReplyKey, SealError, SealingKeyPair, StreamId};
use common::TestRng;
use proptest::prelude::*;

fn keys(n: usize, rng: &mut TestRng) -> Vec<SealingKeyPair> {
    (0..n)
        .map(|_| SealingKeyPair::generate(rng).unwrap())
        .collect()
}

fn seal_stream(key: &ReplyKey, id: StreamId, parts: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut sealer = key.sealer_with_stream_id(id);
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if i + 1 == parts.len() {
                sealer.seal_final(p).unwrap()
            } else {
                sealer.seal(p).unwrap()
            }
        })
        .collect()
}

/// Feeds chunks until one is refused; returns the delivered plaintexts and the error, if any.
fn feed(
    opener: &mut ChunkOpener,
    chunks: &[Vec<u8>],
) -> (Vec<Vec<u8>>, Option<(usize, SealError)>) {
    let mut delivered = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        match opener.open(chunk) {
            Ok(opened) => delivered.push(opened.plaintext),
            Err(e) => return (delivered, Some((i, e))),
        }
    }
    (delivered, None)
}

fn parts_strategy() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn envelope_round_trip(
        seed in any::<u64>(),
        k in 1usize..6,
        body in prop::collection::vec(any::<u8>(), 0..2048),
        aad in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut rng = TestRng::new(seed);
        let workers = keys(k, &mut rng);
        let recipients: Vec<_> = workers.iter().map(|w| (w.key_id(), w.public())).collect();
        let sealed = Envelope::seal(&recipients, &aad, &body, &mut rng).unwrap();
        for w in &workers {
            let opened = Envelope::open(&sealed.bytes, w.key_id(), w, &aad).unwrap();
            prop_assert_eq!(&opened.plaintext, &body);
            // The worker's reply key and the client's copy agree.
            let chunk = opened.reply_key.sealer(&mut rng).unwrap().seal_final(b"ok").unwrap();
            let mut client = sealed.reply_keys.get(&w.key_id()).unwrap().opener();
            prop_assert_eq!(client.open(&chunk).unwrap().plaintext, b"ok".to_vec());
        }
    }

    #[test]
    fn envelope_bit_flips_never_open(
        seed in any::<u64>(),
        k in 1usize..4,
        body in prop::collection::vec(any::<u8>(), 0..256),
        position in any::<prop::sample::Index>(),
        bit in 0u8..8,
        who in any::<prop::sample::Index>(),
    ) {
        let mut rng = TestRng::new(seed);
        let workers = keys(k, &mut rng);
        let recipients: Vec<_> = workers.iter().map(|w| (w.key_id(), w.public())).collect();
        let mut bytes = Envelope::seal(&recipients, b"aad", &body, &mut rng).unwrap().bytes;
        let at = position.index(bytes.len());
        bytes[at] ^= 1 << bit;
        let w = &workers[who.index(k)];
        let err = Envelope::open(&bytes, w.key_id(), w, b"aad").unwrap_err();
        let expected_kind = matches!(
            err,
            SealError::UnsupportedVersion { .. }
                | SealError::UnsupportedSuite { .. }
                | SealError::RecipientCount { .. }
                | SealError::Truncated { .. }
                | SealError::TrailingBytes { .. }
                | SealError::TooLong { .. }
                | SealError::DuplicateKeyId(_)
                | SealError::RecipientNotFound(_)
                | SealError::NonContributoryKey
                | SealError::UnwrapFailed(_)
                | SealError::BodyAuthentication
        );
        prop_assert!(expected_kind, "byte {} bit {}: {:?}", at, bit, err);
    }

    #[test]
    fn envelope_truncation_and_extension_never_open(
        seed in any::<u64>(),
        body in prop::collection::vec(any::<u8>(), 0..256),
        cut in any::<prop::sample::Index>(),
        extra in prop::collection::vec(any::<u8>(), 1..16),
    ) {
        let mut rng = TestRng::new(seed);
        let workers = keys(2, &mut rng);
        let recipients: Vec<_> = workers.iter().map(|w| (w.key_id(), w.public())).collect();
        let bytes = Envelope::seal(&recipients, b"", &body, &mut rng).unwrap().bytes;
        let short = &bytes[..cut.index(bytes.len())];
        prop_assert!(Envelope::open(short, workers[0].key_id(), &workers[0], b"").is_err());
        let mut long = bytes.clone();
        long.extend_from_slice(&extra);
        prop_assert_eq!(
            Envelope::open(&long, workers[0].key_id(), &workers[0], b"").unwrap_err(),
            SealError::TrailingBytes { structure: "envelope", extra: extra.len() }
        );
    }

    #[test]
    fn envelope_wrong_aad_is_body_failure(
        seed in any::<u64>(),
        aad in prop::collection::vec(any::<u8>(), 0..32),
        other in prop::collection::vec(any::<u8>(), 0..32),
    ) {
        prop_assume!(aad != other);
        let mut rng = TestRng::new(seed);
        let workers = keys(1, &mut rng);
        let sealed = Envelope::seal(&[(workers[0].key_id(), workers[0].public())], &aad, b"body", &mut rng).unwrap();
        prop_assert_eq!(
            Envelope::open(&sealed.bytes, workers[0].key_id(), &workers[0], &other).unwrap_err(),
            SealError::BodyAuthentication
        );
    }

    #[test]
    fn stream_round_trip(key in any::<[u8; 32]>(), id in any::<[u8; 16]>(), parts in parts_strategy()) {
        let key = ReplyKey::from_bytes(key);
        let chunks = seal_stream(&key, StreamId(id), &parts);
        let mut opener = key.opener();
        let (delivered, error) = feed(&mut opener, &chunks);
        prop_assert!(error.is_none(), "{:?}", error);
        prop_assert_eq!(&delivered, &parts);
        prop_assert_eq!(opener.finish().unwrap(), parts.len() as u64);
    }

    #[test]
    fn stream_bit_flip_is_caught_at_that_chunk(
        key in any::<[u8; 32]>(),
        parts in parts_strategy(),
        which in any::<prop::sample::Index>(),
        position in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let key = ReplyKey::from_bytes(key);
        let mut chunks = seal_stream(&key, StreamId([1; 16]), &parts);
        let i = which.index(chunks.len());
        let at = position.index(chunks[i].len());
        chunks[i][at] ^= 1 << bit;
        let mut opener = key.opener();
        let (delivered, error) = feed(&mut opener, &chunks);
        prop_assert_eq!(&delivered[..], &parts[..i]);
        let (failed_at, err) = error.unwrap();
        prop_assert_eq!(failed_at, i);
        let seq = i as u64;
        match at {
            0 => prop_assert!(matches!(err, SealError::UnsupportedVersion { .. }), "{:?}", err),
            1 if bit > 0 => prop_assert!(matches!(err, SealError::ReservedFlags { .. }), "{:?}", err),
            1 => prop_assert_eq!(err, SealError::ChunkAuthentication { seq }),
            2..18 if i > 0 => prop_assert!(matches!(err, SealError::StreamMismatch { .. }), "{:?}", err),
            2..18 => prop_assert_eq!(err, SealError::ChunkAuthentication { seq }),
            18..26 => prop_assert!(matches!(err, SealError::ChunkAuthentication { .. }), "{:?}", err),
            26..CHUNK_HEADER_LEN => prop_assert!(
                matches!(err, SealError::Truncated { .. } | SealError::TrailingBytes { .. } | SealError::TooLong { .. }),
                "{:?}", err
            ),
            _ => prop_assert_eq!(err, SealError::ChunkAuthentication { seq }),
        }
    }

    #[test]
    fn stream_reordering(parts in parts_strategy(), a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>()) {
        let key = ReplyKey::from_bytes([3; 32]);
        let mut chunks = seal_stream(&key, StreamId([3; 16]), &parts);
        let (i, j) = (a.index(chunks.len()), b.index(chunks.len()));
        prop_assume!(i != j);
        let (lo, hi) = (i.min(j), i.max(j));
        chunks.swap(lo, hi);
        let (delivered, error) = feed(&mut key.opener(), &chunks);
        prop_assert_eq!(delivered.len(), lo);
        prop_assert_eq!(error.unwrap(), (lo, SealError::ChunkOutOfOrder { expected: lo as u64, got: hi as u64 }));
    }

    #[test]
    fn stream_duplication(parts in parts_strategy(), which in any::<prop::sample::Index>()) {
        let key = ReplyKey::from_bytes([4; 32]);
        let mut chunks = seal_stream(&key, StreamId([4; 16]), &parts);
        let i = which.index(chunks.len());
        chunks.insert(i + 1, chunks[i].clone());
        let (delivered, error) = feed(&mut key.opener(), &chunks);
        prop_assert_eq!(delivered.len(), i + 1);
        let expected = if i + 1 == parts.len() {
            SealError::ChunkAfterFinal { seq: i as u64 }
        } else {
            SealError::ChunkReplayed { seq: i as u64 }
        };
        prop_assert_eq!(error.unwrap(), (i + 1, expected));
    }

    #[test]
    fn stream_dropping(parts in parts_strategy(), which in any::<prop::sample::Index>()) {
        let key = ReplyKey::from_bytes([5; 32]);
        let mut chunks = seal_stream(&key, StreamId([5; 16]), &parts);
        let i = which.index(chunks.len());
        chunks.remove(i);
        let mut opener = key.opener();
        let (delivered, error) = feed(&mut opener, &chunks);
        prop_assert_eq!(delivered.len(), i);
        if i + 1 == parts.len() {
            // The final chunk went missing: only the end of the transport reveals it.
            prop_assert!(error.is_none());
            prop_assert_eq!(opener.finish().unwrap_err(), SealError::StreamTruncated { delivered: i as u64 });
        } else {
            prop_assert_eq!(error.unwrap(), (i, SealError::ChunkOutOfOrder { expected: i as u64, got: i as u64 + 1 }));
        }
    }

    #[test]
    fn stream_truncation(parts in parts_strategy(), keep in any::<prop::sample::Index>()) {
        let key = ReplyKey::from_bytes([6; 32]);
        let chunks = seal_stream(&key, StreamId([6; 16]), &parts);
        let m = keep.index(chunks.len()); // strictly fewer than all chunks
        let mut opener = key.opener();
        let (delivered, error) = feed(&mut opener, &chunks[..m]);
        prop_assert!(error.is_none());
        prop_assert_eq!(delivered.len(), m);
        prop_assert_eq!(opener.finish().unwrap_err(), SealError::StreamTruncated { delivered: m as u64 });
    }

    #[test]
    fn stream_splicing(
        parts in parts_strategy(),
        other_parts in parts_strategy(),
        which in any::<prop::sample::Index>(),
        same_key in any::<bool>(),
    ) {
        prop_assume!(parts.len() > 1);
        let key = ReplyKey::from_bytes([7; 32]);
        let chunks = seal_stream(&key, StreamId([7; 16]), &parts);
        // Position 1.. so the opener has already bound itself to our stream.
        let i = 1 + which.index(chunks.len() - 1);
        let mut spliced = chunks.clone();
        let (other_key, other_id) = if same_key {
            (ReplyKey::from_bytes([7; 32]), StreamId([8; 16]))
        } else {
            // Another request's stream, disguised with our stream id.
            (ReplyKey::from_bytes([9; 32]), StreamId([7; 16]))
        };
        let foreign = seal_stream(&other_key, other_id, &other_parts);
        spliced[i] = foreign[i.min(foreign.len() - 1)].clone();
        let (delivered, error) = feed(&mut key.opener(), &spliced);
        prop_assert_eq!(delivered.len(), i);
        let (at, err) = error.unwrap();
        prop_assert_eq!(at, i);
        if same_key {
            prop_assert_eq!(err, SealError::StreamMismatch { expected: StreamId([7; 16]), found: StreamId([8; 16]) });
        } else {
            prop_assert!(matches!(err, SealError::ChunkAuthentication { .. }), "{:?}", err);
        }
    }
}

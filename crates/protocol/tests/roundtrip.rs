//! Property tests: every constructor, filled with random valid values, survives encode → decode →
//! encode, bare and boxed, inside every `tcp.Packet` wrapper and through the frame codec.
//!
//! Values come from the hidden `sample` module, which the declaration macros implement for every
//! message, so a newly declared message is covered here without touching this file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Debug;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use cocoon_protocol::messages::{Message, client, proxy, tcp};
use cocoon_protocol::sample::{ConstructorVisitor, Constructors, Sample};
use cocoon_protocol::tl::{self, TlConstructor, TlRead, TlWrite};
use cocoon_protocol::{FrameDecoder, FrameEncoder};

/// Cases per constructor: 64 unless `PROPTEST_CASES` asks for another number.
fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Runs `check` on values of every constructor of `T`, each constructor separately so none is
/// left to chance.
fn for_each_constructor<T: Sample>(check: impl Fn(T) -> Result<(), TestCaseError>) -> usize {
    let variants = T::sample_variants();
    let n = variants.len();
    for (name, strategy) in variants {
        let mut runner = TestRunner::new(config());
        if let Err(e) = runner.run(&strategy, &check) {
            panic!("{name}: {e}");
        }
    }
    n
}

/// Checks the concrete constructor inside a boxed value: bare and boxed encodings, and that the
/// boxed one is the id followed by the bare one.
struct BareAndBoxed<'a> {
    boxed_by_enum: &'a [u8],
}

impl ConstructorVisitor for BareAndBoxed<'_> {
    type Output = Result<(), TestCaseError>;

    fn visit<T>(&mut self, value: &T) -> Self::Output
    where
        T: TlConstructor + Sample + Clone + PartialEq + Debug,
    {
        let bare = tl::to_bytes(value);
        let decoded: T = tl::from_bytes(bare.clone())
            .map_err(|e| TestCaseError::fail(format!("bare decode: {e}")))?;
        prop_assert_eq!(&decoded, value);
        prop_assert_eq!(tl::to_bytes(&decoded), bare.clone());

        let boxed = value.to_boxed_bytes();
        prop_assert_eq!(&boxed[..4], &T::ID.to_le_bytes()[..]);
        prop_assert_eq!(&boxed[4..], &bare[..]);
        prop_assert_eq!(&boxed[..], self.boxed_by_enum);
        let decoded = T::from_boxed_bytes(boxed.clone())
            .map_err(|e| TestCaseError::fail(format!("boxed decode: {e}")))?;
        prop_assert_eq!(&decoded, value);
        Ok(())
    }
}

/// The full check for one message.
fn check_message(message: Message) -> Result<(), TestCaseError> {
    let encoded = tl::to_bytes(&message);
    prop_assert_eq!(encoded.len() % 4, 0, "TL values are 4-byte aligned");
    prop_assert_eq!(
        tl::peek_constructor(&encoded).unwrap(),
        message.constructor_id()
    );
    let decoded: Message = tl::from_bytes(encoded.clone())
        .map_err(|e| TestCaseError::fail(format!("{}: {e}", message.constructor_name())))?;
    prop_assert_eq!(&decoded, &message);
    prop_assert_eq!(tl::to_bytes(&decoded), encoded.clone());

    message.visit(&mut BareAndBoxed {
        boxed_by_enum: &encoded,
    })?;

    // Every way a payload travels inside `tcp.Packet`.
    let data = Bytes::from(encoded);
    for packet in [
        tcp::AnyPacket::Packet(tcp::Packet { data: data.clone() }),
        tcp::AnyPacket::Query(tcp::Query {
            id: 0x0123_4567_89ab_cdef,
            data: data.clone(),
        }),
        tcp::AnyPacket::QueryAnswer(tcp::QueryAnswer {
            id: -1,
            data: data.clone(),
        }),
    ] {
        let body = tl::to_bytes(&packet);
        let back: tcp::AnyPacket = tl::from_bytes(body.clone())
            .map_err(|e| TestCaseError::fail(format!("packet: {e}")))?;
        prop_assert_eq!(&back, &packet);
        prop_assert_eq!(tl::to_bytes(&back), body.clone());
        let inner = match back {
            tcp::AnyPacket::Packet(p) => p.data,
            tcp::AnyPacket::Query(q) => q.data,
            tcp::AnyPacket::QueryAnswer(a) => a.data,
            other => return Err(TestCaseError::fail(format!("{other:?}"))),
        };
        let inner: Message = tl::from_bytes(inner).unwrap();
        prop_assert_eq!(&inner, &message);

        // And through the frame codec.
        let mut stream = BytesMut::new();
        FrameEncoder::new().encode(&body, &mut stream).unwrap();
        let frame = FrameDecoder::default()
            .decode(&mut stream)
            .unwrap()
            .unwrap();
        prop_assert!(stream.is_empty());
        prop_assert_eq!(frame.seqno, 0);
        prop_assert_eq!(&frame.body[..], &body[..]);
    }
    Ok(())
}

#[test]
fn every_message_roundtrips_bare_boxed_and_wrapped() {
    let n = for_each_constructor::<Message>(check_message);
    assert_eq!(n, Message::IDS.len());
}

/// A boxed type round-trips on its own, for each of its constructors.
fn check_boxed_type<T>() -> usize
where
    T: Sample + TlRead + TlWrite + PartialEq + Debug,
{
    for_each_constructor::<T>(|value| {
        let encoded = tl::to_bytes(&value);
        let decoded: T =
            tl::from_bytes(encoded.clone()).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(&decoded, &value);
        prop_assert_eq!(tl::to_bytes(&decoded), encoded);
        Ok(())
    })
}

#[test]
fn every_boxed_type_roundtrips() {
    let counts = [
        check_boxed_type::<tcp::AnyPacket>(),
        check_boxed_type::<client::AnyProxyConnectionAuth>(),
        check_boxed_type::<client::AnyAuthorizationWithProxy>(),
        check_boxed_type::<client::AnyQueryAnswer>(),
        check_boxed_type::<client::AnyQueryAnswerPart>(),
        check_boxed_type::<client::AnyQueryAnswerEx>(),
        check_boxed_type::<client::AnyRefund>(),
        check_boxed_type::<proxy::AnySignedPayment>(),
        check_boxed_type::<proxy::AnyQueryAnswer>(),
        check_boxed_type::<proxy::AnyQueryAnswerPart>(),
        check_boxed_type::<proxy::AnyQueryAnswerEx>(),
        check_boxed_type::<proxy::AnyWorkerRequestPayment>(),
    ];
    assert_eq!(counts, [8, 2, 2, 2, 2, 3, 2, 2, 2, 2, 3, 2]);
}

/// A boxed type rejects the constructors of other types with a typed error.
#[test]
fn boxed_types_reject_foreign_constructors() {
    let foreign = tl::to_bytes(&Message::WorkerUpdatePaymentStatus(Default::default()));
    let err = tl::from_bytes::<proxy::AnySignedPayment>(foreign.clone()).unwrap_err();
    assert!(
        matches!(
            err,
            cocoon_protocol::Error::UnknownConstructor {
                context: "proxy.SignedPayment",
                ..
            }
        ),
        "{err:?}"
    );
    let err = tl::from_bytes::<tcp::AnyPacket>(foreign).unwrap_err();
    assert!(matches!(
        err,
        cocoon_protocol::Error::UnknownConstructor {
            context: "tcp.Packet",
            ..
        }
    ));
}

proptest! {
    #![proptest_config(Config { failure_persistence: None, ..Config::default() })]

    /// A sequence of frames, cut into arbitrary pieces, comes back whole and numbered.
    #[test]
    fn frames_survive_arbitrary_cuts(
        bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 4..600), 1..12),
        cuts in proptest::collection::vec(1usize..97, 1..40),
    ) {
        let mut encoder = FrameEncoder::new();
        let mut stream = BytesMut::new();
        for body in &bodies {
            encoder.encode(body, &mut stream).unwrap();
        }
        prop_assert_eq!(encoder.next_seqno(), i32::try_from(bodies.len()).unwrap());
        let stream = stream.freeze();

        let mut decoder = FrameDecoder::default();
        let mut buf = BytesMut::new();
        let mut received = Vec::new();
        let mut pos = 0;
        let mut cut = cuts.iter().cycle();
        while pos < stream.len() {
            let end = (pos + cut.next().unwrap()).min(stream.len());
            buf.extend_from_slice(&stream[pos..end]);
            pos = end;
            while let Some(frame) = decoder.decode(&mut buf).unwrap() {
                received.push(frame);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(received.len(), bodies.len());
        for (i, (frame, body)) in received.iter().zip(&bodies).enumerate() {
            prop_assert_eq!(frame.seqno, i32::try_from(i).unwrap());
            prop_assert_eq!(&frame.body[..], &body[..]);
        }
    }
}

//! The schema changes of reference 9060ce5: new optional fields behind new flag bits (with the
//! changed queries' ids pinned), `worker.changeModel` / `worker.changedModel`, the
//! `rootConfig.` types, and the rule that a flag bit no field uses is a typed error rather than
//! a misread of what follows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use proptest::test_runner::{Config, TestRunner};

use cocoon_protocol::messages::{
    AUDIO_UNITS_FLAG, CLIENT_EXTENSION_FLAGS, Message, client, ext, proxy, root_config, worker,
};
use cocoon_protocol::sample::Sample;
use cocoon_protocol::tl::{self, Int256, TlConstructor};
use cocoon_protocol::{Error, TlRead, TlWrite};

/// For each flag bit the type does not know: a value whose stored flags hold only that bit
/// encodes (the encoder writes the stored word), and decoding it is `UnknownFlagBits` naming the
/// constructor and the bit. Returns how many bits were tried.
fn unknown_bits_are_refused<T>(extension: u32, mut set_flags: impl FnMut(&mut T, u32)) -> u32
where
    T: TlConstructor + TlRead + TlWrite + Default + std::fmt::Debug,
{
    let known = known_flags::<T>() | extension;
    let mut tried = 0;
    for bit in 0..32 {
        let mask = 1u32 << bit;
        if known & mask != 0 {
            continue;
        }
        let mut value = T::default();
        set_flags(&mut value, mask);
        let bytes = tl::to_bytes(&value);
        let err = tl::from_bytes::<T>(Bytes::from(bytes)).unwrap_err();
        assert_eq!(
            err,
            Error::UnknownFlagBits {
                id: T::ID,
                unknown: mask
            },
            "{}",
            T::SCHEMA
        );
        tried += 1;
    }
    tried
}

/// The known bits, read from the schema line (`flags.N?`), independently of the macro's mask.
fn known_flags<T: TlConstructor>() -> u32 {
    T::SCHEMA
        .split(' ')
        .filter_map(|f| f.split_once(":flags.")?.1.split_once('?'))
        .map(|(bit, _)| 1u32 << bit.parse::<u32>().unwrap())
        .fold(0, |a, b| a | b)
}

#[test]
fn every_flags_word_refuses_bits_it_does_not_know() {
    macro_rules! check {
        ($($ty:ty => $known:expr),* $(,)?) => {{
            let mut types = 0;
            $(
                assert_eq!(<$ty>::KNOWN_FLAGS, $known, "mask of {}", <$ty>::SCHEMA);
                // Extension bits carry no field, so the schema line does not show them.
                assert_eq!(
                    known_flags::<$ty>(),
                    $known & !CLIENT_EXTENSION_FLAGS,
                    "{}",
                    <$ty>::SCHEMA
                );
                let tried = unknown_bits_are_refused::<$ty>(
                    <$ty>::KNOWN_FLAGS & CLIENT_EXTENSION_FLAGS,
                    |v, f| v.flags = f,
                );
                assert_eq!(tried, 32 - ($known as u32).count_ones());
                types += 1;
            )*
            types
        }};
    }
    let types = check![
        client::Params => 0b11,
        client::QueryFinalInfo => 0b11,
        client::QueryAnswerEx => 0b1,
        client::QueryAnswerErrorEx => 0b1,
        client::QueryAnswerPartEx => 0b1,
        client::WorkerInstanceV2 => 0,
        client::RunQueryEx => 0b11 | CLIENT_EXTENSION_FLAGS,
        proxy::Params => 0b11,
        proxy::QueryFinalInfo => 0b11,
        proxy::QueryAnswerEx => 0b1,
        proxy::QueryAnswerErrorEx => 0b1,
        proxy::QueryAnswerPartEx => 0b1,
        proxy::RunQueryEx => 0b11,
        worker::Params => 0b111,
        ext::RunSealedQuery => 0b1 | CLIENT_EXTENSION_FLAGS,
        ext::WorkerRunQuery => 0b1 | AUDIO_UNITS_FLAG,
        ext::WorkerRunSealedQuery => 0b1 | AUDIO_UNITS_FLAG,
    ];
    // Every constructor with a flags word is listed above.
    let with_flags = Message::SCHEMAS
        .iter()
        .filter(|s| s.contains(" flags:# "))
        .count();
    assert_eq!(types, with_flags);
}

#[test]
fn a_b75d444_decoder_would_lose_the_stream_and_ours_reads_the_new_fields() {
    // client.runQueryEx with public_key: the 32 key bytes follow enable_debug.
    let key = Int256([7; 32]);
    let q = client::RunQueryEx {
        model_name: "m".into(),
        query: Bytes::from_static(b"q"),
        request_id: Int256([1; 32]),
        enable_debug: Some(true),
        public_key: Some(key),
        ..Default::default()
    };
    let bytes = tl::to_bytes(&q);
    let old = tl::to_bytes(&client::RunQueryEx {
        public_key: None,
        ..q.clone()
    });
    assert_eq!(bytes.len(), old.len() + 32);
    assert_eq!(&bytes[old.len()..], &key.0[..]);
    let back: client::RunQueryEx = tl::from_bytes(Bytes::from(bytes)).unwrap();
    assert_eq!(back.flags, 0b11);
    assert_eq!(back.public_key, Some(key));

    let p = proxy::RunQueryEx {
        private_key: Some(Int256([9; 32])),
        ..Default::default()
    };
    let back: proxy::RunQueryEx = tl::from_bytes(Bytes::from(tl::to_bytes(&p))).unwrap();
    assert_eq!(back.flags, 0b10);
    assert_eq!(back.private_key, Some(Int256([9; 32])));
    assert_eq!(back.enable_debug, None);

    let w = worker::Params {
        model: "m".into(),
        min_proto_version: Some(0),
        max_proto_version: Some(3),
        machine_description_json: Some("{\"cpu\":\"x\"}".into()),
        ..Default::default()
    };
    let bytes = tl::to_bytes(&w);
    let back: worker::Params = tl::from_bytes(Bytes::from(bytes.clone())).unwrap();
    assert_eq!(back.flags, 0b110);
    assert_eq!(back, worker::Params { flags: 0b110, ..w });
    // The description is the last field.
    assert!(bytes.ends_with(b"\x0b{\"cpu\":\"x\"}"));
}

#[test]
fn the_changed_queries_keep_their_pinned_ids() {
    assert_eq!(client::RunQueryEx::ID, 0xf54cb74b);
    assert_eq!(proxy::RunQueryEx::ID, 0xc805e7e2);
    assert_eq!(worker::Params::ID, 0x869c73ed);
    // Pinned: they are the CRC32 of the declarations before the new fields.
    assert_eq!(
        tl::schema_crc32(&client::RunQueryEx::SCHEMA.replace(" public_key:flags.1?int256", "")),
        client::RunQueryEx::ID
    );
    assert_eq!(
        tl::schema_crc32(&proxy::RunQueryEx::SCHEMA.replace(" private_key:flags.1?int256", "")),
        proxy::RunQueryEx::ID
    );
}

#[test]
fn change_model_query_and_answer() {
    let q = Message::WorkerChangeModel(worker::ChangeModel {
        new_model: "Qwen/Qwen3-8B".into(),
    });
    let bytes = tl::to_bytes(&q);
    assert_eq!(&bytes[..4], &0x72662ceeu32.to_le_bytes());
    assert_eq!(tl::from_bytes::<Message>(Bytes::from(bytes)).unwrap(), q);
    let a = tl::to_bytes(&Message::WorkerChangedModel(worker::ChangedModel {}));
    assert_eq!(a, 0x34029366u32.to_le_bytes());
}

fn cases() -> Config {
    Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    }
}

#[test]
fn root_config_roundtrips_both_versions() {
    for (name, strategy) in root_config::AnyConfig::sample_variants() {
        let mut runner = TestRunner::new(cases());
        runner
            .run(&strategy, |value| {
                let bytes = tl::to_bytes(&value);
                let back: root_config::AnyConfig = tl::from_bytes(Bytes::from(bytes.clone()))
                    .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
                proptest::prop_assert_eq!(&back, &value);
                proptest::prop_assert_eq!(tl::to_bytes(&back), bytes);
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for (schema, id) in root_config::AnyConfig::SCHEMAS
        .iter()
        .zip(root_config::AnyConfig::IDS)
    {
        assert_eq!(tl::schema_crc32(schema), *id);
    }
}

#[test]
fn config_v7_places_the_key_manager_fields_between_stakes_and_codes() {
    let key = root_config::RegisteredPublicKey {
        public_key: Int256([3; 32]),
        key_type: 1,
        expire_at: 1_800_000_000,
    };
    let v7 = root_config::ConfigV7 {
        min_client_stake: 0x0102_0304_0506_0708,
        registered_public_keys: vec![key.clone()],
        key_manager_public_key: Int256([4; 32]),
        key_manager_image_hash: Int256([5; 32]),
        key_manager_address: "EQkm".into(),
        verified_worker_keys: vec![Int256([6; 32])],
        proxy_sc_code: Bytes::from_static(&[0xb5, 0xee, 0x9c, 0x72]),
        ..Default::default()
    };
    let bytes = tl::to_bytes(&v7);
    let stake = 0x0102_0304_0506_0708i64.to_le_bytes();
    let at = bytes.windows(8).position(|w| w == stake).unwrap();
    let mut expected = Vec::new();
    expected.extend_from_slice(&stake);
    1i32.tl_write(&mut expected); // one registered key
    key.tl_write(&mut expected);
    expected.extend_from_slice(&[4; 32]);
    expected.extend_from_slice(&[5; 32]);
    "EQkm".to_owned().tl_write(&mut expected);
    expected.extend_from_slice(&0i32.to_le_bytes()); // verified_proxy_keys
    expected.extend_from_slice(&1i32.to_le_bytes());
    expected.extend_from_slice(&[6; 32]);
    expected.extend_from_slice(&0i32.to_le_bytes()); // verified_key_manager_keys
    expected.extend_from_slice(&[4, 0xb5, 0xee, 0x9c, 0x72, 0, 0, 0]); // proxy_sc_code
    assert_eq!(&bytes[at..at + expected.len()], &expected[..]);
    // A contract code that is not UTF-8 is still a valid TL string.
    let boxed = root_config::AnyConfig::ConfigV7(v7);
    let back: root_config::AnyConfig = tl::from_bytes(Bytes::from(tl::to_bytes(&boxed))).unwrap();
    assert_eq!(back, boxed);
}

//! Random valid values of every message, so property tests cover each constructor the macros
//! declare without a hand-written generator per message.
//!
//! Built only for this crate's tests and with the `sample` feature (which pulls in `proptest`);
//! it is not part of the supported API. `tl_struct!` and `tl_enum!` implement [`Sample`] for
//! every type they declare, and [`Constructors`] for every boxed type, so a message added to the
//! schema is sampled and round-tripped automatically.

use std::fmt::Debug;

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;

use crate::tl::{Int256, TlConstructor};

/// A type with a strategy for random values that encode to valid TL.
pub trait Sample: Sized + Debug + 'static {
    /// Random values of this type; optional fields are present exactly when their flag bit is set.
    fn sample() -> BoxedStrategy<Self>;

    /// One strategy per constructor, named by schema name (boxed types); a single unnamed one for
    /// everything else.
    fn sample_variants() -> Vec<(&'static str, BoxedStrategy<Self>)> {
        vec![("", Self::sample())]
    }
}

/// Receives the constructor a boxed value holds, with its concrete type.
pub trait ConstructorVisitor {
    /// What a visit returns.
    type Output;

    /// Called with the constructor value inside the boxed value.
    fn visit<T>(&mut self, value: &T) -> Self::Output
    where
        T: TlConstructor + Sample + Clone + PartialEq + Debug;
}

/// A boxed TL type whose held constructor can be visited with its concrete type.
pub trait Constructors {
    /// Calls `visitor` with the constructor value held.
    fn visit<V: ConstructorVisitor>(&self, visitor: &mut V) -> V::Output;
}

/// The constructor name at the start of a schema line.
pub fn schema_name(schema: &'static str) -> &'static str {
    match schema.find(' ') {
        Some(i) => &schema[..i],
        None => schema,
    }
}

/// Lengths for `bytes` and `string` values: short ones, ones around the 253/254 switch from the
/// one-byte to the four-byte length prefix (every padding remainder on both sides), and larger
/// ones up to 4 KiB.
pub fn sample_len() -> BoxedStrategy<usize> {
    prop_oneof![
        3 => 0usize..=8,
        3 => 248usize..=260,
        1 => 0usize..=4096,
    ]
    .boxed()
}

/// A string of exactly `len` bytes: random Unicode scalars, topped up with ASCII so that the
/// byte length lands where [`sample_len`] aimed.
fn string_of_len(len: usize) -> BoxedStrategy<String> {
    (vec(any::<char>(), 0..=len), any::<u8>())
        .prop_map(move |(chars, fill)| {
            let mut s = String::with_capacity(len);
            for c in chars {
                if s.len() + c.len_utf8() > len {
                    break;
                }
                s.push(c);
            }
            let fill = char::from(b' ' + fill % 95);
            while s.len() < len {
                s.push(fill);
            }
            s
        })
        .boxed()
}

impl Sample for i32 {
    fn sample() -> BoxedStrategy<Self> {
        any::<i32>().boxed()
    }
}

impl Sample for u32 {
    fn sample() -> BoxedStrategy<Self> {
        // Flags words: mostly a few low bits (the defined ones), sometimes any bits at all.
        prop_oneof![3 => 0u32..16, 1 => any::<u32>()].boxed()
    }
}

impl Sample for i64 {
    fn sample() -> BoxedStrategy<Self> {
        any::<i64>().boxed()
    }
}

impl Sample for f64 {
    fn sample() -> BoxedStrategy<Self> {
        // Everything but NaN, which round-trips bit for bit but never compares equal.
        use proptest::num::f64::{INFINITE, NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
        (POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO | INFINITE).boxed()
    }
}

impl Sample for bool {
    fn sample() -> BoxedStrategy<Self> {
        any::<bool>().boxed()
    }
}

impl Sample for Int256 {
    fn sample() -> BoxedStrategy<Self> {
        any::<[u8; 32]>().prop_map(Int256).boxed()
    }
}

impl Sample for Bytes {
    fn sample() -> BoxedStrategy<Self> {
        sample_len()
            .prop_flat_map(|len| vec(any::<u8>(), len))
            .prop_map(Bytes::from)
            .boxed()
    }
}

impl Sample for String {
    fn sample() -> BoxedStrategy<Self> {
        sample_len().prop_flat_map(string_of_len).boxed()
    }
}

impl<T: Sample> Sample for Vec<T> {
    fn sample() -> BoxedStrategy<Self> {
        vec(T::sample(), 0..4).boxed()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use proptest::test_runner::TestRunner;

    use super::*;
    use crate::messages::{Message, worker};

    #[test]
    fn strings_hit_the_length_prefix_boundary() {
        let mut runner = TestRunner::deterministic();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let s = String::sample().new_tree(&mut runner).unwrap().current();
            seen.insert(s.len());
        }
        assert!(seen.contains(&253) && seen.contains(&254), "{seen:?}");
    }

    #[test]
    fn optional_fields_follow_their_flag_bits() {
        let mut runner = TestRunner::deterministic();
        for _ in 0..500 {
            let p = worker::Params::sample()
                .new_tree(&mut runner)
                .unwrap()
                .current();
            let bit0 = p.flags & 1 != 0;
            let bit1 = p.flags & 2 != 0;
            assert_eq!(p.is_test.is_some(), bit0);
            assert_eq!(p.proxy_cnt.is_some(), bit0);
            assert_eq!(p.max_active_requests.is_some(), bit0);
            assert_eq!(p.min_proto_version.is_some(), bit1);
            assert_eq!(p.max_proto_version.is_some(), bit1);
        }
    }

    #[test]
    fn every_message_constructor_has_a_named_strategy() {
        let names: Vec<&str> = Message::sample_variants()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names.len(), Message::IDS.len());
        let schema_names: Vec<&str> = Message::SCHEMAS.iter().map(|s| schema_name(s)).collect();
        assert_eq!(names, schema_names);
    }
}

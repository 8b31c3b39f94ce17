//! Serde helpers that read and write a `Duration` as (fractional) seconds, the unit every role's
//! configuration file uses.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Writes a duration as seconds.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Reads seconds (integer or fractional) as a duration.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v = f64::deserialize(d)?;
    Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom)
}

//! Protocol version negotiation. Reference versions: 0 (tokens in every answer), 1 (`Ex`
//! messages and final info), 2 (start/end times). Version 3 and up are this project's extensions
//! (sealed requests and receipts), used only when both sides advertise them.

use crate::Error;

/// Lowest version this implementation speaks.
pub const MIN_VERSION: i32 = 0;
/// Highest reference version.
pub const REFERENCE_MAX_VERSION: i32 = 2;
/// First version with this project's extensions.
pub const SEALED_VERSION: i32 = 3;
/// Highest version this implementation speaks.
pub const MAX_VERSION: i32 = 3;

/// Agrees on `min(own_max, remote_max)` when that is within both ranges.
pub fn negotiate(
    own_min: i32,
    own_max: i32,
    remote_min: i32,
    remote_max: i32,
) -> Result<i32, Error> {
    let v = own_max.min(remote_max);
    if v < own_min || v < remote_min || own_min > own_max || remote_min > remote_max {
        return Err(Error::NoOverlap {
            own_min,
            own_max,
            remote_min,
            remote_max,
        });
    }
    Ok(v)
}

/// What a negotiated version allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// `…Ex` answers with final info.
    pub ex_answers: bool,
    /// Start and end times in final info.
    pub timings: bool,
    /// Sealed requests, attested worker keys and receipts.
    pub sealed: bool,
}

impl Features {
    /// Features of a negotiated version.
    pub fn of(version: i32) -> Self {
        Self {
            ex_answers: version >= 1,
            timings: version >= 2,
            sealed: version >= SEALED_VERSION,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_lower_max() {
        assert_eq!(negotiate(0, 3, 0, 2), Ok(2));
        assert_eq!(negotiate(0, 2, 1, 3), Ok(2));
        assert_eq!(negotiate(0, 3, 0, 3), Ok(3));
        assert!(negotiate(3, 3, 0, 2).is_err());
        assert!(Features::of(3).sealed && !Features::of(2).sealed);
    }
}

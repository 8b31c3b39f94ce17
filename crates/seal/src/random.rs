//! Randomness plumbing: every random value in this crate comes from a caller-supplied RNG so tests
//! can be deterministic, and the operating system's generator is one name away.

use rand_core::TryCryptoRng;

use crate::error::{Result, SealError};

/// The operating system's random number generator (`getrandom`'s `SysRng`), the right choice
/// outside tests: pass `&mut SystemRng` wherever this crate asks for an RNG.
pub use getrandom::SysRng as SystemRng;

/// Fills `buf` from `rng`, turning an RNG failure into [`SealError::RandomSource`].
pub(crate) fn fill<R: TryCryptoRng + ?Sized>(rng: &mut R, buf: &mut [u8]) -> Result<()> {
    rng.try_fill_bytes(buf).map_err(|_| SealError::RandomSource)
}

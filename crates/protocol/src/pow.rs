//! The proof-of-work gate a connection passes before TLS: the acceptor sends a challenge, the
//! dialer finds a nonce. It makes opening many connections costly for an attacker while costing
//! an honest client a fraction of a second once per connection.

use sha2::{Digest, Sha256};

use crate::Error;

/// Magic of the server's challenge.
pub const CHALLENGE_MAGIC: u32 = 0x418e1291;
/// Magic of the client's answer.
pub const ANSWER_MAGIC: u32 = 0x01827319;
/// Encoded size of a challenge.
pub const CHALLENGE_LEN: usize = 24;
/// Encoded size of an answer.
pub const ANSWER_LEN: usize = 12;
/// The reference's default difficulty.
pub const DEFAULT_DIFFICULTY: i32 = 20;
/// The highest difficulty a client accepts by default.
pub const MAX_CLIENT_DIFFICULTY: i32 = 28;

/// The server's challenge: leading zero bits required and a random salt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowChallenge {
    /// Leading zero bits the answer's hash must have.
    pub difficulty: i32,
    /// Random salt chosen by the server.
    pub salt: [u8; 16],
}

/// The client's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowAnswer {
    /// Nonce that satisfies the challenge.
    pub nonce: i64,
}

impl PowChallenge {
    /// Encodes the challenge for the wire.
    pub fn encode(&self) -> [u8; CHALLENGE_LEN] {
        let mut b = [0u8; CHALLENGE_LEN];
        b[..4].copy_from_slice(&CHALLENGE_MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&self.difficulty.to_le_bytes());
        b[8..].copy_from_slice(&self.salt);
        b
    }

    /// Decodes a challenge.
    pub fn decode(b: &[u8; CHALLENGE_LEN]) -> Result<Self, Error> {
        let magic = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if magic != CHALLENGE_MAGIC {
            return Err(Error::BadMagic {
                expected: CHALLENGE_MAGIC,
                found: magic,
            });
        }
        let difficulty = i32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        if !(0..=64).contains(&difficulty) {
            return Err(Error::InvalidDifficulty(difficulty));
        }
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&b[8..]);
        Ok(Self { difficulty, salt })
    }

    /// Whether `nonce` satisfies this challenge.
    pub fn is_solved_by(&self, nonce: i64) -> bool {
        leading_zero_bits(&self.salt, nonce) >= self.difficulty.clamp(0, 64) as u32
    }

    /// Checks an answer.
    pub fn verify(&self, answer: &PowAnswer) -> Result<(), Error> {
        if self.is_solved_by(answer.nonce) {
            Ok(())
        } else {
            Err(Error::Insufficient(self.difficulty))
        }
    }

    /// Finds a nonce, refusing difficulties above `limit`. Expected work is 2^difficulty hashes.
    pub fn solve(&self, limit: i32) -> Result<PowAnswer, Error> {
        if self.difficulty > limit {
            return Err(Error::TooDifficult {
                difficulty: self.difficulty,
                limit,
            });
        }
        let mut nonce: i64 = 0;
        loop {
            if self.is_solved_by(nonce) {
                return Ok(PowAnswer { nonce });
            }
            nonce = nonce.wrapping_add(1);
        }
    }
}

impl PowAnswer {
    /// Encodes the answer for the wire.
    pub fn encode(&self) -> [u8; ANSWER_LEN] {
        let mut b = [0u8; ANSWER_LEN];
        b[..4].copy_from_slice(&ANSWER_MAGIC.to_le_bytes());
        b[4..].copy_from_slice(&self.nonce.to_le_bytes());
        b
    }

    /// Decodes an answer.
    pub fn decode(b: &[u8; ANSWER_LEN]) -> Result<Self, Error> {
        let magic = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if magic != ANSWER_MAGIC {
            return Err(Error::BadMagic {
                expected: ANSWER_MAGIC,
                found: magic,
            });
        }
        let mut n = [0u8; 8];
        n.copy_from_slice(&b[4..]);
        Ok(Self {
            nonce: i64::from_le_bytes(n),
        })
    }
}

/// Leading zero bits of the first 8 bytes of SHA-256(salt ‖ nonce LE), read as a LE u64.
fn leading_zero_bits(salt: &[u8; 16], nonce: i64) -> u32 {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(nonce.to_le_bytes());
    let d = h.finalize();
    let v = u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
    v.leading_zeros()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn solve_and_verify() {
        let c = PowChallenge {
            difficulty: 12,
            salt: [7; 16],
        };
        let a = c.solve(MAX_CLIENT_DIFFICULTY).unwrap();
        c.verify(&a).unwrap();
        let decoded = PowAnswer::decode(&a.encode()).unwrap();
        assert_eq!(decoded, a);
        assert_eq!(PowChallenge::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn refuses_too_difficult() {
        let c = PowChallenge {
            difficulty: 29,
            salt: [0; 16],
        };
        assert_eq!(
            c.solve(28),
            Err(Error::TooDifficult {
                difficulty: 29,
                limit: 28
            })
        );
    }

    #[test]
    fn rejects_bad_magic_and_wrong_nonce() {
        let mut b = PowChallenge {
            difficulty: 3,
            salt: [1; 16],
        }
        .encode();
        b[0] ^= 1;
        assert!(matches!(
            PowChallenge::decode(&b),
            Err(Error::BadMagic { .. })
        ));
        let c = PowChallenge {
            difficulty: 20,
            salt: [9; 16],
        };
        // A nonce that fails (almost surely) at difficulty 20: find the first failing one.
        let bad = (0..).find(|n| !c.is_solved_by(*n)).unwrap();
        assert_eq!(
            c.verify(&PowAnswer { nonce: bad }),
            Err(Error::Insufficient(20))
        );
    }
}

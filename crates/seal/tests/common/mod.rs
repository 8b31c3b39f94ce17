//! Shared test helpers: a deterministic RNG (so failures reproduce) and a parser for the RFC's
//! test-vector text.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::convert::Infallible;

use cocoon_seal::rand_core::{TryCryptoRng, TryRng};
use sha2::{Digest, Sha256};

/// SHA-256 in counter mode over a seed: deterministic, and good enough to stand in for a CSPRNG
/// in tests (never outside them).
pub struct TestRng {
    seed: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl TestRng {
    pub fn new(seed: u64) -> Self {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&seed.to_be_bytes());
        Self::from_seed(s)
    }

    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            seed,
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }
}

impl TryRng for TestRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for byte in dst {
            if self.used == 32 {
                self.block = Sha256::new()
                    .chain_update(self.seed)
                    .chain_update(self.counter.to_be_bytes())
                    .finalize()
                    .into();
                self.counter += 1;
                self.used = 0;
            }
            *byte = self.block[self.used];
            self.used += 1;
        }
        Ok(())
    }
}

impl TryCryptoRng for TestRng {}

/// An RNG that always fails, to check that failures surface as errors.
pub struct FailingRng;

#[derive(Debug)]
pub struct RngDown;

impl core::fmt::Display for RngDown {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("rng down")
    }
}

impl core::error::Error for RngDown {}

impl TryRng for FailingRng {
    type Error = RngDown;

    fn try_next_u32(&mut self) -> Result<u32, RngDown> {
        Err(RngDown)
    }

    fn try_next_u64(&mut self) -> Result<u64, RngDown> {
        Err(RngDown)
    }

    fn try_fill_bytes(&mut self, _dst: &mut [u8]) -> Result<(), RngDown> {
        Err(RngDown)
    }
}

impl TryCryptoRng for FailingRng {}

/// One record of the RFC text: `key: value` lines, values continued on following lines.
pub type Record = BTreeMap<String, String>;

/// One `A.1.x` section: setup record, encryption records, export records.
#[derive(Debug, Default)]
pub struct RfcSection {
    pub setup: Record,
    pub encryptions: Vec<Record>,
    pub exports: Vec<Record>,
}

/// Parses the appendix A.1 text (as committed under `tests/fixtures/rfc9180-a1.txt`).
pub fn parse_rfc_a1(text: &str) -> Vec<RfcSection> {
    let mut sections: Vec<RfcSection> = Vec::new();
    // 0 = setup, 1 = encryptions, 2 = exports
    let mut part = 0usize;
    let mut records: Vec<Record> = Vec::new();
    let mut current = Record::new();
    let mut last_key: Option<String> = None;

    let flush = |sections: &mut Vec<RfcSection>, part: usize, records: &mut Vec<Record>| {
        if let Some(section) = sections.last_mut() {
            match part {
                0 => {
                    if let Some(r) = records.pop() {
                        section.setup = r;
                    }
                }
                1 => section.encryptions.append(records),
                _ => section.exports.append(records),
            }
        }
        records.clear();
    };

    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(rest) = line.strip_prefix("A.1.") {
            if !current.is_empty() {
                records.push(std::mem::take(&mut current));
            }
            flush(&mut sections, part, &mut records);
            last_key = None;
            if rest.contains("Setup Information") {
                sections.push(RfcSection::default());
                part = 0;
            } else if rest.contains("Encryptions") {
                part = 1;
            } else {
                part = 2;
            }
            continue;
        }
        if sections.is_empty() {
            continue; // preamble
        }
        if trimmed.is_empty() {
            if !current.is_empty() {
                records.push(std::mem::take(&mut current));
            }
            last_key = None;
            continue;
        }
        if let Some((key, value)) = trimmed.split_once(':') {
            current.insert(key.to_string(), value.trim().to_string());
            last_key = Some(key.to_string());
        } else if let Some(v) = last_key.as_ref().and_then(|key| current.get_mut(key)) {
            v.push_str(trimmed);
        }
    }
    if !current.is_empty() {
        records.push(current);
    }
    flush(&mut sections, part, &mut records);
    sections
}

pub fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("bad hex {s:?}: {e}"))
}

pub fn unhex32(s: &str) -> [u8; 32] {
    unhex(s)
        .try_into()
        .unwrap_or_else(|v: Vec<u8>| panic!("expected 32 bytes, got {}", v.len()))
}

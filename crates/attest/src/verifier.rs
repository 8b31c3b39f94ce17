//! Turns evidence bytes into [`VerifiedEvidence`]: decode, dispatch to the TDX, SEV-SNP or
//! simulated path, and remember successes in a cache keyed by SHA-256 of the evidence that
//! forgets each entry when its collateral (or certificate) expires.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use crate::error::AttestError;
use crate::evidence::{Evidence, EvidenceKind};
use crate::measurements::Measurements;
use crate::snp;
use crate::tdx::{self, CollateralProvider, NoCollateral};

/// What cryptographic verification established about a piece of evidence. Policy is applied
/// separately (see [`Policy::check`](crate::policy::Policy::check)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedEvidence {
    /// Technology.
    pub kind: EvidenceKind,
    /// Measured identity.
    pub measurements: Measurements,
    /// The 64 bytes the TEE bound into the evidence.
    pub report_data: [u8; 64],
    /// Unix time after which this result must not be used (collateral or certificate expiry;
    /// `u64::MAX` for simulated evidence).
    pub valid_until: u64,
}

/// Reference COCOON keeps 10000 verification results.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;
/// Upper bound on how long any result is reused, whatever the collateral says.
pub const DEFAULT_CACHE_MAX_TTL_SECS: u64 = 24 * 3600;

/// Verifies evidence, with a cache.
#[derive(Debug)]
pub struct EvidenceVerifier {
    collateral: Arc<dyn CollateralProvider>,
    cache: VerificationCache,
    certificates: crate::ratls::checked::CheckedCertificates,
}

impl Default for EvidenceVerifier {
    fn default() -> Self {
        Self::new(Arc::new(NoCollateral))
    }
}

impl EvidenceVerifier {
    /// A verifier that takes TDX collateral from `collateral` when the evidence carries none.
    pub fn new(collateral: Arc<dyn CollateralProvider>) -> Self {
        Self {
            collateral,
            cache: VerificationCache::new(DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_MAX_TTL_SECS),
            certificates: crate::ratls::checked::CheckedCertificates::default(),
        }
    }

    /// Replaces the cache (for example with capacity 0 to disable it).
    pub fn with_cache(mut self, cache: VerificationCache) -> Self {
        self.cache = cache;
        self
    }

    /// The cache, for statistics.
    pub fn cache(&self) -> &VerificationCache {
        &self.cache
    }

    /// The RA-TLS certificates already parsed and signature-checked beside this evidence.
    pub fn certificates(&self) -> &crate::ratls::checked::CheckedCertificates {
        &self.certificates
    }

    /// Verifies encoded evidence at `now` (unix seconds), answering from the cache when an
    /// unexpired result for the same bytes exists.
    pub fn verify(&self, evidence: &[u8], now: u64) -> Result<Arc<VerifiedEvidence>, AttestError> {
        let key: [u8; 32] = Sha256::digest(evidence).into();
        if let Some(hit) = self.cache.get(&key, now) {
            return Ok(hit);
        }
        let decoded = Evidence::decode(evidence)?;
        let verified = Arc::new(self.verify_decoded(&decoded, now)?);
        self.cache.insert(key, verified.clone(), now);
        Ok(verified)
    }

    /// Verifies decoded evidence at `now`, without the cache.
    pub fn verify_decoded(
        &self,
        evidence: &Evidence,
        now: u64,
    ) -> Result<VerifiedEvidence, AttestError> {
        match evidence {
            Evidence::Tdx(tdx) => tdx::verify_with_provider(
                &tdx.quote,
                tdx.collateral.as_ref(),
                self.collateral.as_ref(),
                now,
            ),
            Evidence::SevSnp(snp) => snp::verify_report(&snp.report, &snp.vcek_der, now),
            Evidence::Simulated(sim) => Ok(VerifiedEvidence {
                kind: EvidenceKind::Simulated,
                measurements: Measurements::Tdx(sim.measurements.clone()),
                report_data: sim.report_data,
                valid_until: u64::MAX,
            }),
        }
    }
}

/// Bounded cache of verification results keyed by SHA-256 of the evidence bytes. Entries
/// expire at the earlier of the result's `valid_until` and a maximum TTL; time is always
/// passed in, never read.
#[derive(Debug)]
pub struct VerificationCache {
    inner: Mutex<CacheInner>,
    capacity: usize,
    max_ttl: u64,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug, Default)]
struct CacheInner {
    map: HashMap<[u8; 32], CacheEntry>,
    order: VecDeque<([u8; 32], u64)>,
    next_seq: u64,
}

#[derive(Debug)]
struct CacheEntry {
    evidence: Arc<VerifiedEvidence>,
    expires_at: u64,
    seq: u64,
}

/// Counters of a [`VerificationCache`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that had to verify.
    pub misses: u64,
    /// Entries held now.
    pub entries: usize,
}

impl VerificationCache {
    /// A cache of at most `capacity` entries, each kept at most `max_ttl_secs`.
    pub fn new(capacity: usize, max_ttl_secs: u64) -> Self {
        Self {
            inner: Mutex::new(CacheInner::default()),
            capacity,
            max_ttl: max_ttl_secs,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        // A panic while holding the lock cannot leave the map inconsistent in a way that
        // matters for a cache: keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The unexpired result for `key` at `now`, if any.
    pub fn get(&self, key: &[u8; 32], now: u64) -> Option<Arc<VerifiedEvidence>> {
        let mut inner = self.lock();
        let found = match inner.map.get(key) {
            Some(entry) if now < entry.expires_at => Some(entry.evidence.clone()),
            Some(_) => {
                inner.map.remove(key);
                None
            }
            None => None,
        };
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores a result verified at `now`.
    pub fn insert(&self, key: [u8; 32], evidence: Arc<VerifiedEvidence>, now: u64) {
        if self.capacity == 0 {
            return;
        }
        let expires_at = evidence.valid_until.min(now.saturating_add(self.max_ttl));
        if expires_at <= now {
            return;
        }
        let mut inner = self.lock();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.map.insert(
            key,
            CacheEntry {
                evidence,
                expires_at,
                seq,
            },
        );
        inner.order.push_back((key, seq));
        while inner.map.len() > self.capacity {
            let Some((old_key, old_seq)) = inner.order.pop_front() else {
                break;
            };
            if inner.map.get(&old_key).is_some_and(|e| e.seq == old_seq) {
                inner.map.remove(&old_key);
            }
        }
        // Keep the order queue from growing without bound when keys are re-inserted.
        if inner.order.len() > self.capacity.saturating_mul(2) {
            let CacheInner { map, order, .. } = &mut *inner;
            order.retain(|(k, s)| map.get(k).is_some_and(|e| e.seq == *s));
        }
    }

    /// Drops every entry.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.map.clear();
        inner.order.clear();
    }

    /// Current counters.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.lock().map.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::evidence::{SimulatedEvidence, simulated_measurements};

    fn verified(valid_until: u64) -> Arc<VerifiedEvidence> {
        Arc::new(VerifiedEvidence {
            kind: EvidenceKind::Simulated,
            measurements: Measurements::Tdx(simulated_measurements()),
            report_data: [0; 64],
            valid_until,
        })
    }

    #[test]
    fn entries_expire_with_validity_and_ttl() {
        let cache = VerificationCache::new(10, 100);
        cache.insert([1; 32], verified(50), 10);
        assert!(cache.get(&[1; 32], 49).is_some());
        assert!(
            cache.get(&[1; 32], 50).is_none(),
            "expires with the collateral"
        );
        cache.insert([2; 32], verified(u64::MAX), 10);
        assert!(cache.get(&[2; 32], 109).is_some());
        assert!(
            cache.get(&[2; 32], 110).is_none(),
            "max TTL caps everything"
        );
        cache.insert([3; 32], verified(5), 10);
        assert!(
            cache.get(&[3; 32], 10).is_none(),
            "already expired is not stored"
        );
        let stats = cache.stats();
        assert_eq!(stats.hits, 2);
        assert_eq!(stats.misses, 3);
    }

    #[test]
    fn capacity_evicts_oldest() {
        let cache = VerificationCache::new(2, 1000);
        cache.insert([1; 32], verified(u64::MAX), 0);
        cache.insert([2; 32], verified(u64::MAX), 0);
        cache.insert([1; 32], verified(u64::MAX), 0); // refresh key 1
        cache.insert([3; 32], verified(u64::MAX), 0);
        assert!(
            cache.get(&[2; 32], 1).is_none(),
            "2 was the oldest live entry"
        );
        assert!(cache.get(&[1; 32], 1).is_some());
        assert!(cache.get(&[3; 32], 1).is_some());
        assert_eq!(cache.stats().entries, 2);
        for i in 0..100u8 {
            cache.insert([i; 32], verified(u64::MAX), 0);
        }
        assert_eq!(cache.stats().entries, 2);
        assert!(cache.lock().order.len() <= 4);
    }

    #[test]
    fn zero_capacity_disables() {
        let cache = VerificationCache::new(0, 1000);
        cache.insert([1; 32], verified(u64::MAX), 0);
        assert!(cache.get(&[1; 32], 1).is_none());
    }

    #[test]
    fn verifier_caches_simulated_results() {
        let verifier = EvidenceVerifier::default();
        let bytes = Evidence::Simulated(SimulatedEvidence::new([5; 64])).encode();
        let a = verifier.verify(&bytes, 100).unwrap();
        let b = verifier.verify(&bytes, 101).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.report_data, [5; 64]);
        assert_eq!(verifier.cache().stats().hits, 1);
    }
}

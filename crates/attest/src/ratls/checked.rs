//! Certificates already parsed and signature-checked, keyed by SHA-256 of their bytes.
//!
//! The same peer certificate comes back again and again: in the second pass after each
//! handshake and inside every receipt a worker signs (a client checks one per answer). Its
//! structure and self-signature depend only on its bytes, so they are checked once; the
//! validity window is still judged at every use, against the time of that use.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use crate::error::AttestError;
use crate::ratls::cert::{RaTlsCertificate, parse_certificate};

/// Certificates remembered at most (the oldest is forgotten first).
pub const CHECKED_CERTIFICATES: usize = 1024;

/// A bounded memory of certificates that passed [`parse_certificate`].
#[derive(Debug, Default)]
pub struct CheckedCertificates {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<[u8; 32], Arc<RaTlsCertificate>>,
    order: VecDeque<[u8; 32]>,
}

/// A certificate that passed the checks, and whether this was the first time it was seen.
#[derive(Debug, Clone)]
pub struct Checked {
    /// Its RA-TLS content.
    pub certificate: Arc<RaTlsCertificate>,
    /// `true` when it was parsed and checked now rather than remembered.
    pub first_seen: bool,
}

impl CheckedCertificates {
    /// [`parse_certificate`] of `der` at `now`, from memory when these bytes passed before
    /// (the validity window is checked against `now` either way).
    pub fn check(&self, der: &[u8], now: u64) -> Result<Checked, AttestError> {
        let key: [u8; 32] = Sha256::digest(der).into();
        let known = self.lock().map.get(&key).cloned();
        if let Some(certificate) = known {
            let now_i = i64::try_from(now).unwrap_or(i64::MAX);
            if now_i < certificate.not_before {
                return Err(AttestError::CertificateNotYetValid {
                    not_before: certificate.not_before,
                    now,
                });
            }
            if now_i > certificate.not_after {
                return Err(AttestError::CertificateExpired {
                    not_after: certificate.not_after,
                    now,
                });
            }
            return Ok(Checked {
                certificate,
                first_seen: false,
            });
        }
        let certificate = Arc::new(parse_certificate(der, now)?);
        let mut inner = self.lock();
        if inner.map.insert(key, certificate.clone()).is_none() {
            inner.order.push_back(key);
        }
        while inner.order.len() > CHECKED_CERTIFICATES {
            if let Some(old) = inner.order.pop_front() {
                inner.map.remove(&old);
            }
        }
        Ok(Checked {
            certificate,
            first_seen: true,
        })
    }

    /// Certificates remembered now.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Each critical section leaves the map and the order consistent: keep serving.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ratls::cert::TlsKeyPair;
    use crate::ratls::identity::CertificateIssuer;

    fn issued(seed: u8, now: u64) -> Vec<u8> {
        CertificateIssuer::unattested(TlsKeyPair::from_seed(&[seed; 32]).unwrap())
            .issue(now)
            .unwrap()
            .der
            .to_vec()
    }

    #[test]
    fn a_certificate_is_checked_once_and_its_validity_at_every_use() {
        let checked = CheckedCertificates::default();
        let der = issued(3, 50_000);
        let first = checked.check(&der, 50_000).unwrap();
        assert!(first.first_seen);
        let again = checked.check(&der, 50_001).unwrap();
        assert!(!again.first_seen);
        assert_eq!(again.certificate, first.certificate);
        assert_eq!(checked.len(), 1);
        // Remembered, and still refused outside its validity window.
        assert!(matches!(
            checked.check(
                &der,
                u64::try_from(first.certificate.not_after).unwrap() + 1
            ),
            Err(AttestError::CertificateExpired { .. })
        ));
        assert!(matches!(
            checked.check(
                &der,
                u64::try_from(first.certificate.not_before).unwrap() - 1
            ),
            Err(AttestError::CertificateNotYetValid { .. })
        ));
    }

    #[test]
    fn altered_bytes_are_checked_afresh_and_refused() {
        let checked = CheckedCertificates::default();
        let der = issued(4, 50_000);
        checked.check(&der, 50_000).unwrap();
        let mut tampered = der.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(checked.check(&tampered, 50_000).is_err());
        assert_eq!(checked.len(), 1);
    }

    #[test]
    fn memory_is_bounded() {
        let checked = CheckedCertificates::default();
        let first = issued(5, 50_000);
        checked.check(&first, 50_000).unwrap();
        for n in 0..CHECKED_CERTIFICATES as u64 {
            checked.check(&issued(6, 50_000 + n), 50_000 + n).unwrap();
        }
        assert_eq!(checked.len(), CHECKED_CERTIFICATES);
        assert!(checked.check(&first, 50_000).unwrap().first_seen);
    }
}

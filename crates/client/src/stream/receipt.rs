//! The worker's signed receipt for an answer: what it must name of the request and the answer,
//! and its check under the client's attestation policy.

use bytes::Bytes;

use cocoon_protocol::messages::TokensUsed;

use crate::config::ClientError;
use crate::stream::machine::ReceiptCheck;

/// What a receipt must name for the answer it comes with.
pub(crate) struct ExpectedReceipt<'a> {
    /// This client's request id.
    pub(crate) client_request_id: &'a [u8; 32],
    /// SHA-256 of the sealed envelope sent; `None` for a request in clear.
    pub(crate) envelope_hash: Option<&'a [u8; 32]>,
    /// SHA-256 of the request body sent.
    pub(crate) request_hash: &'a [u8; 32],
    /// SHA-256 of the answer body received.
    pub(crate) answer_hash: &'a [u8; 32],
    /// The weights pinned for the model (`pinned_weights`), which the receipt must name.
    pub(crate) weights: Option<[u8; 32]>,
    /// The usage the proxy reported for the answer, when the caller is shown one: each count
    /// must be at most what the receipt signs (fewer is a proxy charging at its bound).
    pub(crate) usage: Option<&'a TokensUsed>,
}

/// Oldest receipt accepted with an answer: a worker signs it just before its last part.
const RECEIPT_MAX_AGE_SECS: u64 = 300;

/// Verifies a receipt under `workers`' policy, at this client's time `now` (unix seconds) and
/// no older than [`RECEIPT_MAX_AGE_SECS`], and checks that it names exactly the request and
/// answer `expected` describes.
pub(crate) fn check_receipt(
    encoded: &[u8],
    workers: &cocoon_attest::RaTlsVerifier,
    expected: &ExpectedReceipt<'_>,
    now: u64,
) -> Result<(), ClientError> {
    let claims = verify_signature(encoded, workers, now)?;
    check_claims(&claims, expected)
}

/// Verifies a receipt's certificate, evidence and signature under `workers`' policy at `now`,
/// no older than [`RECEIPT_MAX_AGE_SECS`]; answers what it signs.
fn verify_signature(
    encoded: &[u8],
    workers: &cocoon_attest::RaTlsVerifier,
    now: u64,
) -> Result<cocoon_attest::ReceiptClaims, ClientError> {
    cocoon_attest::Receipt::from_bytes(encoded)
        .and_then(|r| {
            r.verify_live(
                &workers.policy(),
                workers.evidence_verifier(),
                now,
                RECEIPT_MAX_AGE_SECS,
            )
        })
        .map(|v| v.claims)
        .map_err(|e| ClientError::ReceiptInvalid(e.to_string()))
}

/// A receipt as it arrives, before the answer ends: signed by a certificate whose evidence
/// satisfied `workers`' policy when it signed, and naming the request `binding` describes (its
/// id, its sealed envelope, its body). What it signs may then bound the request's charge,
/// whatever way the answer ends. Its age is judged by the end's check (for the caller), not
/// here: a caller reading slowly, or a skewed clock, must not turn an honest charge into an
/// overcharge; this client's fresh request id already stops a replayed receipt.
pub(crate) fn verify_on_arrival(
    encoded: &[u8],
    workers: &cocoon_attest::RaTlsVerifier,
    binding: &crate::stream::machine::ReceiptBinding,
) -> Result<cocoon_attest::ReceiptClaims, ClientError> {
    let claims = cocoon_attest::Receipt::from_bytes(encoded)
        .and_then(|r| r.verify(&workers.policy(), workers.evidence_verifier()))
        .map(|v| v.claims)
        .map_err(|e| ClientError::ReceiptInvalid(e.to_string()))?;
    cocoon_attest::receipt::check_request(
        &claims,
        &binding.client_request_id,
        binding.envelope_hash.as_ref(),
    )
    .map_err(|_| ClientError::ReceiptForAnotherRequest("request id or sealed envelope"))?;
    if claims.request_hash != binding.request_hash {
        return Err(ClientError::ReceiptForAnotherRequest("request body"));
    }
    Ok(claims)
}

/// Refuses claims issued more than [`RECEIPT_MAX_AGE_SECS`] before `now`, or in the future
/// beyond clock skew, as [`cocoon_attest::Receipt::verify_live`] does.
fn check_fresh(claims: &cocoon_attest::ReceiptClaims, now: u64) -> Result<(), ClientError> {
    let issued_at = claims.issued_at;
    if issued_at > now.saturating_add(cocoon_attest::policy::CLAIMS_FUTURE_SKEW_SECS)
        || now.saturating_sub(issued_at) > RECEIPT_MAX_AGE_SECS
    {
        let stale = cocoon_attest::AttestError::ReceiptStale {
            issued_at,
            now,
            max_age_secs: RECEIPT_MAX_AGE_SECS,
        };
        return Err(ClientError::ReceiptInvalid(stale.to_string()));
    }
    Ok(())
}

/// Checks that verified `claims` name exactly the request and answer `expected` describes.
fn check_claims(
    claims: &cocoon_attest::ReceiptClaims,
    expected: &ExpectedReceipt<'_>,
) -> Result<(), ClientError> {
    if &claims.client_request_id != expected.client_request_id {
        return Err(ClientError::ReceiptForAnotherRequest("request id"));
    }
    if claims.envelope_hash.as_ref() != expected.envelope_hash {
        return Err(ClientError::ReceiptForAnotherRequest("sealed envelope"));
    }
    if &claims.request_hash != expected.request_hash {
        return Err(ClientError::ReceiptForAnotherRequest("request body"));
    }
    if &claims.answer_hash != expected.answer_hash {
        return Err(ClientError::ReceiptForAnotherRequest("answer"));
    }
    if expected.weights.is_some_and(|w| w != claims.model_hash) {
        return Err(ClientError::ReceiptForAnotherRequest("model weights"));
    }
    if let Some(usage) = expected.usage {
        check_usage(usage, claims)?;
    }
    Ok(())
}

/// Refuses a reported usage with any count above the receipt's (or below zero): the worker
/// signed what it served, and a proxy may bill less but never more.
fn check_usage(
    usage: &TokensUsed,
    claims: &cocoon_attest::ReceiptClaims,
) -> Result<(), ClientError> {
    let signed_total = claims
        .prompt_tokens
        .saturating_add(claims.completion_tokens);
    let counts = [
        ("prompt", usage.prompt_tokens_used, claims.prompt_tokens),
        ("cached", usage.cached_tokens_used, claims.cached_tokens),
        (
            "completion",
            usage.completion_tokens_used,
            claims.completion_tokens,
        ),
        (
            "reasoning",
            usage.reasoning_tokens_used,
            claims.reasoning_tokens,
        ),
        ("total", usage.total_tokens_used, signed_total),
    ];
    for (tokens, reported, signed) in counts {
        if u64::try_from(reported).map_or(true, |r| r > signed) {
            return Err(ClientError::ReceiptBelowUsage {
                tokens,
                reported,
                signed,
            });
        }
    }
    Ok(())
}

/// The worker's signed receipt for an answer, and whether it checked out.
#[derive(Debug, Clone)]
pub struct AnswerReceipt {
    /// The receipt bytes (`cocoon_attest::Receipt`); `cocoon-client verify-receipt` checks
    /// them again offline.
    pub encoded: Bytes,
    /// `Ok` when the receipt's certificate satisfied this client's attestation policy, its
    /// signature verified, and it names exactly the request sent (its id, its sealed envelope,
    /// its body) and the answer received; otherwise [`ClientError::ReceiptInvalid`] or
    /// [`ClientError::ReceiptForAnotherRequest`]. A refused receipt is logged and counted in
    /// the client's stats, and the answer is marked as having no valid receipt.
    pub verified: Result<(), ClientError>,
    /// This client's id of the request, which a valid receipt names
    /// (`cocoon-client verify-receipt --request-id`).
    pub request_id: [u8; 32],
    /// SHA-256 of the sealed envelope sent, which a valid receipt names; `None` for a request
    /// sent in clear (`cocoon-client verify-receipt --envelope-sha256`).
    pub envelope_sha256: Option<[u8; 32]>,
}

impl ReceiptCheck {
    /// Checks the receipt under `workers`' policy at unix time `now`, against the request and
    /// the answer the machine saw. `verified`: the same bytes' claims, verified when they
    /// arrived, whose signature is not checked again.
    pub(crate) fn verify(
        &self,
        workers: &cocoon_attest::RaTlsVerifier,
        now: u64,
        verified: Option<&(Bytes, cocoon_attest::ReceiptClaims)>,
    ) -> Result<(), ClientError> {
        if self.encoded.is_empty() {
            return Err(ClientError::ReceiptMissing);
        }
        let expected = ExpectedReceipt {
            client_request_id: &self.binding.client_request_id,
            envelope_hash: self.binding.envelope_hash.as_ref(),
            request_hash: &self.binding.request_hash,
            answer_hash: &self.answer_hash,
            weights: self.binding.weights,
            usage: Some(&self.usage),
        };
        match verified {
            Some((bytes, claims)) if bytes == &self.encoded => {
                check_fresh(claims, now)?;
                check_claims(claims, &expected)
            }
            _ => check_receipt(&self.encoded, workers, &expected, now),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use cocoon_attest::ratls::{CertificateIssuer, RaTlsVerifier, TlsKeyPair};
    use cocoon_attest::receipt::body_hash;
    use cocoon_attest::{EvidenceVerifier, Policy, Receipt, ReceiptClaims, SimulatedAttester};

    use super::*;

    /// A simulated worker's receipt for request `id` (sealed when `envelope` is given), served
    /// at 1.0×.
    pub(crate) fn receipt(id: [u8; 32], envelope: Option<[u8; 32]>) -> Vec<u8> {
        receipt_at(id, envelope, Some(1000))
    }

    /// [`receipt`] signing `coefficient` (`None`: a version-2 receipt, which signs none).
    pub(crate) fn receipt_at(
        id: [u8; 32],
        envelope: Option<[u8; 32]>,
        coefficient: Option<u32>,
    ) -> Vec<u8> {
        let issuer = CertificateIssuer::new(
            TlsKeyPair::from_seed(&[5; 32]).unwrap(),
            Arc::new(SimulatedAttester::new()),
        );
        let now = cocoon_net::unix_time() as u64;
        let issued = issuer.issue(now).unwrap();
        let image = SimulatedAttester::new().measurements().image_hash();
        let claims = ReceiptClaims {
            client_request_id: id,
            envelope_hash: envelope,
            request_hash: body_hash(b"same prompt"),
            answer_hash: body_hash(b"same answer"),
            model: "m".into(),
            model_hash: cocoon_attest::receipt::body_hash(b"weights"),
            prompt_tokens: 3,
            cached_tokens: 0,
            completion_tokens: 5,
            reasoning_tokens: 0,
            worker_image_hash: *image.as_bytes(),
            issued_at: now,
            coefficient,
        };
        Receipt::sign(claims, issuer.key(), issued.der.to_vec())
            .unwrap()
            .to_bytes()
    }

    pub(crate) fn workers() -> RaTlsVerifier {
        RaTlsVerifier::new(
            Policy::local_simulated(),
            Arc::new(EvidenceVerifier::default()),
        )
    }

    fn check(
        encoded: &[u8],
        id: &[u8; 32],
        envelope: Option<&[u8; 32]>,
    ) -> Result<(), ClientError> {
        let expected = ExpectedReceipt {
            client_request_id: id,
            envelope_hash: envelope,
            request_hash: &body_hash(b"same prompt"),
            answer_hash: &body_hash(b"same answer"),
            weights: None,
            usage: None,
        };
        check_receipt(
            encoded,
            &workers(),
            &expected,
            cocoon_net::unix_time() as u64,
        )
    }

    #[test]
    fn a_receipt_for_this_request_is_accepted() {
        let envelope = body_hash(b"envelope A");
        check(
            &receipt([0xA; 32], Some(envelope)),
            &[0xA; 32],
            Some(&envelope),
        )
        .unwrap();
        check(&receipt([0xA; 32], None), &[0xA; 32], None).unwrap();
    }

    #[test]
    fn a_receipt_of_request_a_is_refused_for_request_b() {
        // Same body, same answer, same worker: only the request differs.
        let envelope_a = body_hash(b"envelope A");
        let envelope_b = body_hash(b"envelope B");
        let of_a = receipt([0xA; 32], Some(envelope_a));
        assert_eq!(
            check(&of_a, &[0xB; 32], Some(&envelope_a)),
            Err(ClientError::ReceiptForAnotherRequest("request id"))
        );
        assert_eq!(
            check(&of_a, &[0xA; 32], Some(&envelope_b)),
            Err(ClientError::ReceiptForAnotherRequest("sealed envelope"))
        );
        // A receipt for a request in clear does not cover a sealed one, nor the reverse.
        assert_eq!(
            check(&receipt([0xA; 32], None), &[0xA; 32], Some(&envelope_a)),
            Err(ClientError::ReceiptForAnotherRequest("sealed envelope"))
        );
        assert_eq!(
            check(&of_a, &[0xA; 32], None),
            Err(ClientError::ReceiptForAnotherRequest("sealed envelope"))
        );
    }

    #[test]
    fn another_body_or_answer_is_refused() {
        let encoded = receipt([0xA; 32], None);
        let expected = ExpectedReceipt {
            client_request_id: &[0xA; 32],
            envelope_hash: None,
            request_hash: &body_hash(b"another prompt"),
            answer_hash: &body_hash(b"same answer"),
            weights: None,
            usage: None,
        };
        assert_eq!(
            check_receipt(
                &encoded,
                &workers(),
                &expected,
                cocoon_net::unix_time() as u64
            ),
            Err(ClientError::ReceiptForAnotherRequest("request body"))
        );
        let expected = ExpectedReceipt {
            request_hash: &body_hash(b"same prompt"),
            answer_hash: &body_hash(b"another answer"),
            ..expected
        };
        assert_eq!(
            check_receipt(
                &encoded,
                &workers(),
                &expected,
                cocoon_net::unix_time() as u64
            ),
            Err(ClientError::ReceiptForAnotherRequest("answer"))
        );
        // Weights pinned for the model: a receipt naming others is refused, the same accepted.
        let expected = ExpectedReceipt {
            answer_hash: &body_hash(b"same answer"),
            request_hash: &body_hash(b"same prompt"),
            ..expected
        };
        let now = cocoon_net::unix_time() as u64;
        assert_eq!(check_receipt(&encoded, &workers(), &expected, now), Ok(()));
        let named = ExpectedReceipt {
            weights: Some(body_hash(b"weights")),
            ..expected
        };
        let other = ExpectedReceipt {
            weights: Some(body_hash(b"other weights")),
            ..expected
        };
        assert_eq!(check_receipt(&encoded, &workers(), &named, now), Ok(()));
        assert_eq!(
            check_receipt(&encoded, &workers(), &other, now),
            Err(ClientError::ReceiptForAnotherRequest("model weights"))
        );
    }

    #[test]
    fn a_tampered_request_id_is_refused() {
        let mut encoded = receipt([0xA; 32], None);
        // The request id follows the magic and the version; rewrite it to this request's.
        encoded[5..37].copy_from_slice(&[0xB; 32]);
        assert!(matches!(
            check(&encoded, &[0xB; 32], None),
            Err(ClientError::ReceiptInvalid(_))
        ));
        assert!(matches!(
            check(b"CRCP\x01not a receipt", &[0xB; 32], None),
            Err(ClientError::ReceiptInvalid(_))
        ));
    }

    /// A receipt bounds a charge once it verifies and names the request, however late it is
    /// read: its age is for the caller's flag, judged at the end (a slow reader or a skewed clock
    /// must not turn an honest charge into an overcharge).
    #[test]
    fn a_receipt_bounds_the_charge_when_it_names_the_request_whatever_its_age() {
        use crate::stream::machine::{ReceiptBinding, ReceiptCheck};
        let binding = ReceiptBinding {
            client_request_id: [0xA; 32],
            envelope_hash: None,
            request_hash: body_hash(b"same prompt"),
            weights: None,
        };
        let encoded = receipt([0xA; 32], None);
        let claims = verify_on_arrival(&encoded, &workers(), &binding).unwrap();
        assert_eq!(claims.coefficient, Some(1000));
        // Another request's receipt, or another body's, bounds nothing.
        let other = receipt([0xB; 32], None);
        assert!(verify_on_arrival(&other, &workers(), &binding).is_err());
        let elsewhere = ReceiptBinding {
            request_hash: body_hash(b"another prompt"),
            ..binding
        };
        assert!(verify_on_arrival(&encoded, &workers(), &elsewhere).is_err());
        // Read an hour later: still the bound, but the caller is told it is stale.
        let check = ReceiptCheck {
            encoded: Bytes::from(encoded.clone()),
            binding,
            answer_hash: body_hash(b"same answer"),
            usage: cocoon_protocol::messages::TokensUsed {
                prompt_tokens_used: 3,
                cached_tokens_used: 0,
                completion_tokens_used: 5,
                reasoning_tokens_used: 0,
                total_tokens_used: 8,
            },
        };
        let cached = (Bytes::from(encoded), claims);
        let now = cocoon_net::unix_time() as u64;
        assert_eq!(check.verify(&workers(), now, Some(&cached)), Ok(()));
        assert!(matches!(
            check.verify(&workers(), now + 3_600, Some(&cached)),
            Err(ClientError::ReceiptInvalid(m)) if m.contains("stale") || m.contains("issued")
        ));
    }
}

//! Signed receipts: a worker's statement, signed with its attested TLS key, of what it ran for
//! one request — the client's id of the request, hashes of the request body, of the sealed
//! envelope (for sealed requests) and of the answer, the model, the tokens it billed, its image
//! hash and the time. The receipt carries the worker's RA-TLS certificate, so anyone can later
//! check, without talking to the network, that an attested worker (under their own policy)
//! produced exactly this answer for exactly this request. The request id and envelope hash bind
//! it to one request: two requests with the same body (a retried prompt) get receipts that
//! cannot be swapped.
//!
//! Since version 3 the receipt also signs the coefficient the worker served at (the one the
//! proxy offered, which a worker accepts only when it is its own): the proxy reports the
//! coefficient to the client, and without the worker's word on it a proxy could charge the
//! client at a higher coefficient than the worker's and keep the difference.
//!
//! # Encoding (version 3, all integers big-endian)
//!
//! ```text
//! "CRCP" | u8 version=3
//! client_request_id[32] | u8 flags (bit 0: sealed; other bits 0)
//! envelope_hash[32]  (present only when sealed)
//! request_hash[32] | answer_hash[32] | model_hash[32] | worker_image_hash[32]
//! prompt_tokens u64 | cached_tokens u64 | completion_tokens u64 | reasoning_tokens u64
//! issued_at u64 (unix seconds)
//! coefficient u32 (1000 = 1.0×)
//! u16 model name length | model name (UTF-8, ≤ 256 bytes)
//! u32 certificate length | certificate DER (≤ 64 KiB)
//! signature[64]  (Ed25519 over "cocoon-receipt-v3" ‖ every byte above)
//! ```
//!
//! Version 2 is the same without `coefficient`, signed under `"cocoon-receipt-v2"`; it is still
//! read and verified (its claims carry no coefficient), so receipts of older workers stay
//! checkable. Version 1 (no request id, no envelope hash) is refused: such a receipt could be
//! presented for any request with the same body.

use sha2::{Digest as _, Sha256};

use crate::digest::ImageHash;
use crate::error::AttestError;
use crate::policy::Policy;
use crate::ratls::cert::TlsKeyPair;
use crate::ratls::verifier::{VerifiedPeer, verified_peer};
use crate::verifier::EvidenceVerifier;

const MAGIC: &[u8; 4] = b"CRCP";
/// The version written when the claims carry a coefficient, and its signing context.
const VERSION: u8 = 3;
const SIGNING_CONTEXT: &[u8] = b"cocoon-receipt-v3";
/// The version before the coefficient was signed, still read.
const VERSION_2: u8 = 2;
const SIGNING_CONTEXT_2: &[u8] = b"cocoon-receipt-v2";
/// Flag bit: the request was sealed, and the envelope hash follows.
const FLAG_SEALED: u8 = 0x01;
/// Longest model name a receipt carries.
pub const MAX_MODEL_LEN: usize = 256;
/// Largest certificate a receipt carries.
pub const MAX_CERTIFICATE_LEN: usize = 64 * 1024;

/// What a worker attests about one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptClaims {
    /// The client's id of the request (`client.runQueryEx`'s or `ext.runSealedQuery`'s
    /// `request_id`), as the proxy forwarded it.
    pub client_request_id: [u8; 32],
    /// SHA-256 of the sealed envelope as the worker received it; `None` for requests in clear.
    pub envelope_hash: Option<[u8; 32]>,
    /// SHA-256 of the request body the worker ran.
    pub request_hash: [u8; 32],
    /// SHA-256 of the answer body the worker sent, every byte in order.
    pub answer_hash: [u8; 32],
    /// Model name as served.
    pub model: String,
    /// SHA-256 identifying the model (of its weights file where the engine knows it, else of
    /// the model name).
    pub model_hash: [u8; 32],
    /// Prompt tokens billed.
    pub prompt_tokens: u64,
    /// Of which served from cache.
    pub cached_tokens: u64,
    /// Completion tokens billed.
    pub completion_tokens: u64,
    /// Of which reasoning.
    pub reasoning_tokens: u64,
    /// Image hash of the worker's TEE evidence.
    pub worker_image_hash: [u8; 32],
    /// When the worker signed, unix seconds.
    pub issued_at: u64,
    /// The coefficient the worker served the request at, as the proxy offered it (1000 =
    /// 1.0×); `None` only in a version-2 receipt, which did not sign it.
    pub coefficient: Option<u32>,
}

/// A signed receipt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The statement.
    pub claims: ReceiptClaims,
    /// The worker's RA-TLS certificate (DER), whose key signed.
    pub certificate: Vec<u8>,
    /// Ed25519 signature.
    pub signature: [u8; 64],
}

/// A receipt whose signature, certificate and evidence were checked.
#[derive(Clone, Debug)]
pub struct VerifiedReceipt {
    /// The statement.
    pub claims: ReceiptClaims,
    /// The worker as its certificate proved it at signing time.
    pub worker: VerifiedPeer,
}

/// SHA-256 of `bytes`: how request and answer bodies are hashed for receipts.
pub fn body_hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Receipt {
    /// Signs `claims` with `key`, whose RA-TLS certificate is `certificate`.
    pub fn sign(
        claims: ReceiptClaims,
        key: &TlsKeyPair,
        certificate: Vec<u8>,
    ) -> Result<Self, AttestError> {
        if claims.model.len() > MAX_MODEL_LEN || certificate.len() > MAX_CERTIFICATE_LEN {
            return Err(AttestError::ReceiptMalformed(
                "model name or certificate too long".into(),
            ));
        }
        let mut receipt = Self {
            claims,
            certificate,
            signature: [0; 64],
        };
        receipt.signature = key.sign(&receipt.signed_message());
        Ok(receipt)
    }

    fn unsigned_bytes(&self) -> Vec<u8> {
        let c = &self.claims;
        let mut out = Vec::with_capacity(256 + c.model.len() + self.certificate.len());
        out.extend_from_slice(MAGIC);
        out.push(if c.coefficient.is_some() {
            VERSION
        } else {
            VERSION_2
        });
        out.extend_from_slice(&c.client_request_id);
        match &c.envelope_hash {
            Some(h) => {
                out.push(FLAG_SEALED);
                out.extend_from_slice(h);
            }
            None => out.push(0),
        }
        out.extend_from_slice(&c.request_hash);
        out.extend_from_slice(&c.answer_hash);
        out.extend_from_slice(&c.model_hash);
        out.extend_from_slice(&c.worker_image_hash);
        for v in [
            c.prompt_tokens,
            c.cached_tokens,
            c.completion_tokens,
            c.reasoning_tokens,
            c.issued_at,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        if let Some(coefficient) = c.coefficient {
            out.extend_from_slice(&coefficient.to_be_bytes());
        }
        // Lengths were bounded at signing and parsing.
        out.extend_from_slice(&(c.model.len() as u16).to_be_bytes());
        out.extend_from_slice(c.model.as_bytes());
        out.extend_from_slice(&(self.certificate.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.certificate);
        out
    }

    fn signed_message(&self) -> Vec<u8> {
        let mut m = if self.claims.coefficient.is_some() {
            SIGNING_CONTEXT.to_vec()
        } else {
            SIGNING_CONTEXT_2.to_vec()
        };
        m.extend_from_slice(&self.unsigned_bytes());
        m
    }

    /// The encoding above.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.unsigned_bytes();
        out.extend_from_slice(&self.signature);
        out
    }

    /// Parses the encoding, refusing anything malformed, truncated or followed by extra bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AttestError> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(4)? != MAGIC {
            return Err(AttestError::ReceiptMalformed(
                "not a receipt (bad magic)".into(),
            ));
        }
        let version = r.take(1)?[0];
        if version != VERSION && version != VERSION_2 {
            return Err(AttestError::ReceiptMalformed(format!(
                "unsupported receipt version {version}"
            )));
        }
        let client_request_id = r.array32()?;
        let envelope_hash = match r.take(1)?[0] {
            0 => None,
            FLAG_SEALED => Some(r.array32()?),
            flags => {
                return Err(AttestError::ReceiptMalformed(format!(
                    "unknown receipt flags {flags:#04x}"
                )));
            }
        };
        let request_hash = r.array32()?;
        let answer_hash = r.array32()?;
        let model_hash = r.array32()?;
        let worker_image_hash = r.array32()?;
        let prompt_tokens = r.u64()?;
        let cached_tokens = r.u64()?;
        let completion_tokens = r.u64()?;
        let reasoning_tokens = r.u64()?;
        let issued_at = r.u64()?;
        let coefficient = if version == VERSION {
            let b = r.take(4)?;
            Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        } else {
            None
        };
        let model_len = usize::from(u16::from_be_bytes([r.take(1)?[0], r.take(1)?[0]]));
        if model_len > MAX_MODEL_LEN {
            return Err(AttestError::ReceiptMalformed("model name too long".into()));
        }
        let model = std::str::from_utf8(r.take(model_len)?)
            .map_err(|_| AttestError::ReceiptMalformed("model name is not UTF-8".into()))?
            .to_owned();
        let cert_len = r.take(4)?;
        let cert_len = u32::from_be_bytes([cert_len[0], cert_len[1], cert_len[2], cert_len[3]]);
        let cert_len = usize::try_from(cert_len).unwrap_or(usize::MAX);
        if cert_len > MAX_CERTIFICATE_LEN {
            return Err(AttestError::ReceiptMalformed("certificate too long".into()));
        }
        let certificate = r.take(cert_len)?.to_vec();
        let mut signature = [0u8; 64];
        signature.copy_from_slice(r.take(64)?);
        if r.pos != bytes.len() {
            return Err(AttestError::ReceiptMalformed(format!(
                "{} bytes after the signature",
                bytes.len() - r.pos
            )));
        }
        Ok(Self {
            claims: ReceiptClaims {
                client_request_id,
                envelope_hash,
                request_hash,
                answer_hash,
                model,
                model_hash,
                prompt_tokens,
                cached_tokens,
                completion_tokens,
                reasoning_tokens,
                worker_image_hash,
                issued_at,
                coefficient,
            },
            certificate,
            signature,
        })
    }

    /// Checks a receipt as it arrives with its answer, at the verifier's time `now`: issued at
    /// most `max_age_secs` ago (and not in the future beyond clock skew), its certificate valid
    /// and its evidence satisfying `policy` now, the image hash the one the evidence measured,
    /// and every byte signed by the certificate's key. An old receipt replayed as new fails.
    pub fn verify_live(
        &self,
        policy: &Policy,
        evidence: &EvidenceVerifier,
        now: u64,
        max_age_secs: u64,
    ) -> Result<VerifiedReceipt, AttestError> {
        let issued_at = self.claims.issued_at;
        if issued_at > now.saturating_add(crate::policy::CLAIMS_FUTURE_SKEW_SECS)
            || now.saturating_sub(issued_at) > max_age_secs
        {
            return Err(AttestError::ReceiptStale {
                issued_at,
                now,
                max_age_secs,
            });
        }
        self.verify_at(policy, evidence, now)
    }

    /// Checks the receipt as an auditor does later: the certificate was valid and its evidence
    /// satisfied `policy` when the receipt was issued, the image hash is the one the evidence
    /// measured, and the certificate's key signed every byte.
    pub fn verify(
        &self,
        policy: &Policy,
        evidence: &EvidenceVerifier,
    ) -> Result<VerifiedReceipt, AttestError> {
        self.verify_at(policy, evidence, self.claims.issued_at)
    }

    fn verify_at(
        &self,
        policy: &Policy,
        evidence: &EvidenceVerifier,
        at: u64,
    ) -> Result<VerifiedReceipt, AttestError> {
        let certificate = rustls::pki_types::CertificateDer::from(self.certificate.as_slice());
        let worker = verified_peer(&[certificate], policy, evidence, at)?;
        match worker.image_hash {
            Some(h) if h == ImageHash(self.claims.worker_image_hash.into()) => {}
            _ => return Err(AttestError::ReceiptImageMismatch),
        }
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &worker.public_key)
            .verify(&self.signed_message(), &self.signature)
            .map_err(|_| AttestError::ReceiptSignature)?;
        Ok(VerifiedReceipt {
            claims: self.claims.clone(),
            worker,
        })
    }
}

impl VerifiedReceipt {
    /// Checks that the receipt was issued for the request the client knows as
    /// `client_request_id`, and for the sealed envelope whose SHA-256 is `envelope_hash` (`None`
    /// for a request sent in clear: a receipt naming an envelope is then refused, as is one
    /// naming none or another for a sealed request).
    pub fn check_request(
        &self,
        client_request_id: &[u8; 32],
        envelope_hash: Option<&[u8; 32]>,
    ) -> Result<(), AttestError> {
        check_request(&self.claims, client_request_id, envelope_hash)
    }

    /// Checks that `request_body` and `answer_body` are the ones the receipt names.
    pub fn check_bodies(
        &self,
        request_body: Option<&[u8]>,
        answer_body: Option<&[u8]>,
    ) -> Result<(), AttestError> {
        if let Some(body) = request_body
            && body_hash(body) != self.claims.request_hash
        {
            return Err(AttestError::ReceiptBodyMismatch("request"));
        }
        if let Some(body) = answer_body
            && body_hash(body) != self.claims.answer_hash
        {
            return Err(AttestError::ReceiptBodyMismatch("answer"));
        }
        Ok(())
    }
}

/// [`VerifiedReceipt::check_request`] on claims (also usable before verification, to say which
/// request a receipt names).
pub fn check_request(
    claims: &ReceiptClaims,
    client_request_id: &[u8; 32],
    envelope_hash: Option<&[u8; 32]>,
) -> Result<(), AttestError> {
    if &claims.client_request_id != client_request_id {
        return Err(AttestError::ReceiptRequestMismatch("request id"));
    }
    if claims.envelope_hash.as_ref() != envelope_hash {
        return Err(AttestError::ReceiptRequestMismatch("sealed envelope"));
    }
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], AttestError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| AttestError::ReceiptMalformed("truncated".into()))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array32(&mut self) -> Result<[u8; 32], AttestError> {
        let mut a = [0u8; 32];
        a.copy_from_slice(self.take(32)?);
        Ok(a)
    }

    fn u64(&mut self) -> Result<u64, AttestError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use super::*;
    use crate::attester::SimulatedAttester;
    use crate::ratls::CertificateIssuer;

    fn signed() -> (Receipt, u64) {
        signed_for([0xA1; 32], Some(body_hash(b"envelope")))
    }

    fn signed_for(client_request_id: [u8; 32], envelope_hash: Option<[u8; 32]>) -> (Receipt, u64) {
        let issuer = CertificateIssuer::new(
            TlsKeyPair::from_seed(&[7; 32]).unwrap(),
            Arc::new(SimulatedAttester::new()),
        );
        let now = 1_790_000_000;
        let issued = issuer.issue(now).unwrap();
        let image = SimulatedAttester::new().measurements().image_hash();
        let claims = ReceiptClaims {
            client_request_id,
            envelope_hash,
            request_hash: body_hash(b"request"),
            answer_hash: body_hash(b"answer"),
            model: "SmolLM2-135M-Instruct".into(),
            model_hash: body_hash(b"weights"),
            prompt_tokens: 31,
            cached_tokens: 0,
            completion_tokens: 8,
            reasoning_tokens: 0,
            worker_image_hash: *image.as_bytes(),
            issued_at: now,
            coefficient: Some(1500),
        };
        (
            Receipt::sign(claims, issuer.key(), issued.der.to_vec()).unwrap(),
            now,
        )
    }

    #[test]
    fn round_trip_and_verify() {
        let (receipt, _) = signed();
        let back = Receipt::from_bytes(&receipt.to_bytes()).unwrap();
        assert_eq!(back, receipt);
        let verified = back
            .verify(&Policy::local_simulated(), &EvidenceVerifier::default())
            .unwrap();
        verified
            .check_bodies(Some(b"request"), Some(b"answer"))
            .unwrap();
        assert!(matches!(
            verified.check_bodies(None, Some(b"answer!")),
            Err(AttestError::ReceiptBodyMismatch("answer"))
        ));
        assert!(matches!(
            verified.check_bodies(Some(b"other"), None),
            Err(AttestError::ReceiptBodyMismatch("request"))
        ));
    }

    #[test]
    fn a_live_receipt_is_judged_by_the_verifiers_clock_with_a_maximum_age() {
        let (receipt, issued) = signed();
        let (policy, evidence) = (Policy::local_simulated(), EvidenceVerifier::default());
        receipt
            .verify_live(&policy, &evidence, issued + 10, 300)
            .unwrap();
        // Replayed an hour later, or dated in the future: stale.
        for now in [issued + 301, issued - 3_600] {
            assert!(matches!(
                receipt.verify_live(&policy, &evidence, now, 300),
                Err(AttestError::ReceiptStale { .. })
            ));
        }
        // An auditor still checks it at the time it was issued.
        receipt.verify(&policy, &evidence).unwrap();
    }

    #[test]
    fn round_trip_of_a_receipt_for_a_request_in_clear() {
        let (receipt, _) = signed_for([0x0C; 32], None);
        let bytes = receipt.to_bytes();
        let back = Receipt::from_bytes(&bytes).unwrap();
        assert_eq!(back, receipt);
        assert_eq!(back.to_bytes(), bytes);
        let verified = back
            .verify(&Policy::local_simulated(), &EvidenceVerifier::default())
            .unwrap();
        verified.check_request(&[0x0C; 32], None).unwrap();
        // A request in clear is not a sealed one.
        assert!(matches!(
            verified.check_request(&[0x0C; 32], Some(&body_hash(b"envelope"))),
            Err(AttestError::ReceiptRequestMismatch("sealed envelope"))
        ));
    }

    #[test]
    fn a_receipt_of_one_request_is_refused_for_another() {
        // Same body, same answer, same worker: only the request id and the envelope differ.
        let (receipt_a, _) = signed_for([0xAA; 32], Some(body_hash(b"envelope A")));
        let verified = receipt_a
            .verify(&Policy::local_simulated(), &EvidenceVerifier::default())
            .unwrap();
        verified
            .check_request(&[0xAA; 32], Some(&body_hash(b"envelope A")))
            .unwrap();
        assert!(matches!(
            verified.check_request(&[0xBB; 32], Some(&body_hash(b"envelope A"))),
            Err(AttestError::ReceiptRequestMismatch("request id"))
        ));
        assert!(matches!(
            verified.check_request(&[0xAA; 32], Some(&body_hash(b"envelope B"))),
            Err(AttestError::ReceiptRequestMismatch("sealed envelope"))
        ));
        assert!(matches!(
            verified.check_request(&[0xAA; 32], None),
            Err(AttestError::ReceiptRequestMismatch("sealed envelope"))
        ));
    }

    #[test]
    fn a_rewritten_request_id_breaks_the_signature() {
        let (receipt, _) = signed_for([0xAA; 32], None);
        let mut forged = receipt.clone();
        forged.claims.client_request_id = [0xBB; 32];
        let forged = Receipt::from_bytes(&forged.to_bytes()).unwrap();
        assert!(matches!(
            forged.verify(&Policy::local_simulated(), &EvidenceVerifier::default()),
            Err(AttestError::ReceiptSignature)
        ));
        // Dropping the envelope hash (turning a sealed receipt into a clear one) as well.
        let (sealed, _) = signed();
        let mut stripped = sealed.clone();
        stripped.claims.envelope_hash = None;
        assert!(matches!(
            stripped.verify(&Policy::local_simulated(), &EvidenceVerifier::default()),
            Err(AttestError::ReceiptSignature)
        ));
    }

    #[test]
    fn unknown_flags_and_the_old_version_are_refused() {
        let (receipt, _) = signed_for([1; 32], None);
        let bytes = receipt.to_bytes();
        let flags_at = 4 + 1 + 32;
        for flags in [0x02_u8, 0x80, 0xFF] {
            let mut m = bytes.clone();
            m[flags_at] = flags;
            assert!(matches!(
                Receipt::from_bytes(&m),
                Err(AttestError::ReceiptMalformed(_))
            ));
        }
        let mut v1 = bytes;
        v1[4] = 1;
        assert!(matches!(
            Receipt::from_bytes(&v1),
            Err(AttestError::ReceiptMalformed(m)) if m.contains("version 1")
        ));
    }

    #[test]
    fn the_coefficient_is_signed_and_a_version_2_receipt_still_verifies() {
        let (receipt, _) = signed();
        let bytes = receipt.to_bytes();
        assert_eq!(bytes[4], 3);
        assert_eq!(
            Receipt::from_bytes(&bytes).unwrap().claims.coefficient,
            Some(1500)
        );
        // The coefficient follows `issued_at`; a proxy that raises it breaks the signature.
        let coefficient_at = 4 + 1 + 32 + 1 + 32 + 4 * 32 + 5 * 8;
        assert_eq!(
            &bytes[coefficient_at..coefficient_at + 4],
            &1500u32.to_be_bytes()
        );
        let mut raised = bytes.clone();
        raised[coefficient_at..coefficient_at + 4].copy_from_slice(&4000u32.to_be_bytes());
        let raised = Receipt::from_bytes(&raised).unwrap();
        assert!(matches!(
            raised.verify(&Policy::local_simulated(), &EvidenceVerifier::default()),
            Err(AttestError::ReceiptSignature)
        ));
        // Relabelled as version 2 (which signs no coefficient), it no longer parses whole.
        let mut relabelled = bytes;
        relabelled[4] = 2;
        assert!(
            Receipt::from_bytes(&relabelled)
                .and_then(|r| r.verify(&Policy::local_simulated(), &EvidenceVerifier::default()))
                .is_err()
        );
        // An older worker's version-2 receipt: read, verified, no coefficient claimed.
        let issuer = CertificateIssuer::new(
            TlsKeyPair::from_seed(&[7; 32]).unwrap(),
            Arc::new(SimulatedAttester::new()),
        );
        let mut claims = receipt.claims.clone();
        claims.coefficient = None;
        let v2 = Receipt::sign(claims, issuer.key(), receipt.certificate.clone()).unwrap();
        let v2_bytes = v2.to_bytes();
        assert_eq!(v2_bytes[4], 2);
        assert_eq!(v2_bytes.len() + 4, receipt.to_bytes().len());
        let back = Receipt::from_bytes(&v2_bytes).unwrap();
        assert_eq!(back.claims.coefficient, None);
        back.verify(&Policy::local_simulated(), &EvidenceVerifier::default())
            .unwrap();
    }

    #[test]
    fn production_policy_refuses_a_simulated_worker() {
        let (receipt, _) = signed();
        assert!(matches!(
            receipt.verify(&Policy::production(), &EvidenceVerifier::default()),
            Err(AttestError::SimulatedEvidenceRefused)
        ));
    }

    #[test]
    fn changing_any_signed_byte_fails() {
        let (receipt, _) = signed();
        let bytes = receipt.to_bytes();
        let cert_start = bytes.len() - 64 - receipt.certificate.len();
        // Every byte before the certificate, a byte inside it, and the signature.
        let positions = (0..cert_start).chain([cert_start + 200, bytes.len() - 1]);
        for i in positions {
            let mut m = bytes.clone();
            m[i] ^= 0x01;
            let outcome = Receipt::from_bytes(&m)
                .and_then(|r| r.verify(&Policy::local_simulated(), &EvidenceVerifier::default()));
            assert!(outcome.is_err(), "flipping byte {i} went unnoticed");
        }
    }

    #[test]
    fn truncated_and_padded_receipts_are_refused() {
        let (receipt, _) = signed();
        let bytes = receipt.to_bytes();
        for n in 0..bytes.len() {
            assert!(Receipt::from_bytes(&bytes[..n]).is_err());
        }
        let mut padded = bytes;
        padded.push(0);
        assert!(Receipt::from_bytes(&padded).is_err());
    }
}

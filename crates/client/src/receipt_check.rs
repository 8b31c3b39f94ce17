//! Checking a worker's signed receipt offline, away from any session: that it verifies under an
//! attestation policy, and that it names what the caller expects (request id, sealed envelope,
//! request and answer bodies). `cocoon-client verify-receipt` runs it; it lives in the library
//! so that an integrator's auditing tool checks receipts the same way and reports them in the
//! same text and JSON.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use cocoon_attest::receipt::VerifiedReceipt;
use cocoon_attest::{AttestError, EvidenceVerifier, Policy, Receipt};
use serde_json::{Value, json};

/// The receipt's bytes from what a caller holds: base64 text (standard or URL-safe, padded or
/// not, whitespace ignored) or the raw receipt.
///
/// # Errors
/// The decoder's reason when the text is not base64.
pub fn decode_receipt(raw: &[u8]) -> Result<Vec<u8>, base64::DecodeError> {
    if raw.starts_with(b"CRCP") {
        return Ok(raw.to_vec());
    }
    let text: String = String::from_utf8_lossy(raw)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD
        .decode(text.as_bytes())
        .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
}

/// What a receipt must name besides being valid; each one unset is not checked.
#[derive(Debug, Clone, Default)]
pub struct ReceiptExpectations {
    /// The client's request id (`cocoon_receipt.request_id`).
    pub request_id: Option<[u8; 32]>,
    /// SHA-256 of the sealed envelope sent (`cocoon_receipt.envelope_sha256`).
    pub envelope_sha256: Option<[u8; 32]>,
    /// The request body that was sent.
    pub request_body: Option<Vec<u8>>,
    /// The answer body as the worker sent it.
    pub answer_body: Option<Vec<u8>>,
}

impl ReceiptExpectations {
    /// Verifies `receipt` (its bytes) under `policy` and checks what it names.
    ///
    /// # Errors
    /// The [`AttestError`] saying why the receipt is malformed, invalid, or names another
    /// request ([`AttestError::ReceiptRequestMismatch`], [`AttestError::ReceiptBodyMismatch`]).
    pub fn check(&self, receipt: &[u8], policy: &Policy) -> Result<CheckedReceipt, AttestError> {
        let verified =
            Receipt::from_bytes(receipt)?.verify(policy, &EvidenceVerifier::default())?;
        if let Some(id) = &self.request_id
            && &verified.claims.client_request_id != id
        {
            return Err(AttestError::ReceiptRequestMismatch("request id"));
        }
        if let Some(hash) = &self.envelope_sha256
            && verified.claims.envelope_hash.as_ref() != Some(hash)
        {
            return Err(AttestError::ReceiptRequestMismatch("sealed envelope"));
        }
        verified.check_bodies(self.request_body.as_deref(), self.answer_body.as_deref())?;
        Ok(CheckedReceipt {
            verified,
            request_id_checked: self.request_id.is_some(),
            envelope_checked: self.envelope_sha256.is_some(),
            request_checked: self.request_body.is_some(),
            answer_checked: self.answer_body.is_some(),
        })
    }
}

/// A receipt that verified, and what was checked of it.
#[derive(Debug, Clone)]
pub struct CheckedReceipt {
    /// The receipt's claims and the worker that signed it.
    pub verified: VerifiedReceipt,
    /// Whether it was found to name the expected request id.
    pub request_id_checked: bool,
    /// Whether it was found to name the expected sealed envelope.
    pub envelope_checked: bool,
    /// Whether the request body was found to match.
    pub request_checked: bool,
    /// Whether the answer body was found to match.
    pub answer_checked: bool,
}

impl CheckedReceipt {
    /// The report as one JSON object (`"valid": true` and the claims).
    pub fn to_json(&self) -> Value {
        let v = &self.verified;
        let c = &v.claims;
        json!({
            "valid": true,
            "model": c.model,
            "model_hash": hex::encode(c.model_hash),
            "request_id": hex::encode(c.client_request_id),
            "sealed": c.envelope_hash.is_some(),
            "envelope_sha256": c.envelope_hash.map(hex::encode),
            "request_hash": hex::encode(c.request_hash),
            "answer_hash": hex::encode(c.answer_hash),
            "prompt_tokens": c.prompt_tokens,
            "cached_tokens": c.cached_tokens,
            "completion_tokens": c.completion_tokens,
            "reasoning_tokens": c.reasoning_tokens,
            "coefficient": c.coefficient,
            "worker_image_hash": hex::encode(c.worker_image_hash),
            "worker_key": hex::encode(v.worker.public_key),
            "attestation": v.worker.evidence_kind.as_token(),
            "issued_at": c.issued_at,
            "request_id_checked": self.request_id_checked,
            "envelope_checked": self.envelope_checked,
            "request_checked": self.request_checked,
            "answer_checked": self.answer_checked,
        })
    }
}

impl fmt::Display for CheckedReceipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = &self.verified;
        let c = &v.claims;
        writeln!(f, "receipt valid")?;
        writeln!(
            f,
            "  attestation:       {}",
            v.worker.evidence_kind.as_token()
        )?;
        writeln!(
            f,
            "  worker key:        {}",
            hex::encode(v.worker.public_key)
        )?;
        writeln!(
            f,
            "  worker image hash: {}",
            hex::encode(c.worker_image_hash)
        )?;
        writeln!(
            f,
            "  model:             {} ({})",
            c.model,
            hex::encode(c.model_hash)
        )?;
        writeln!(
            f,
            "  tokens:            prompt {} (cached {}), completion {} (reasoning {})",
            c.prompt_tokens, c.cached_tokens, c.completion_tokens, c.reasoning_tokens
        )?;
        match c.coefficient {
            Some(k) => writeln!(f, "  coefficient:       {k} (1000 = 1.0x)")?,
            None => writeln!(f, "  coefficient:       not signed (a version-2 receipt)")?,
        }
        writeln!(
            f,
            "  request id:        {}",
            hex::encode(c.client_request_id)
        )?;
        match &c.envelope_hash {
            Some(h) => writeln!(f, "  sealed envelope:   {}", hex::encode(h))?,
            None => writeln!(f, "  sealed envelope:   none (request sent in clear)")?,
        }
        writeln!(f, "  request hash:      {}", hex::encode(c.request_hash))?;
        writeln!(f, "  answer hash:       {}", hex::encode(c.answer_hash))?;
        write!(f, "  issued at:         {} (unix)", c.issued_at)?;
        if self.request_id_checked {
            write!(f, "\n  request id:        matches")?;
        }
        if self.envelope_checked {
            write!(f, "\n  sealed envelope:   matches")?;
        }
        for (what, checked) in [
            ("request", self.request_checked),
            ("answer", self.answer_checked),
        ] {
            if checked {
                write!(f, "\n  {what} body:      matches")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn receipts_decode_from_either_base64_or_raw_bytes() {
        let raw = b"CRCP\x00\x01rest".to_vec();
        assert_eq!(decode_receipt(&raw).unwrap(), raw);
        let text = STANDARD.encode(&raw);
        assert_eq!(decode_receipt(text.as_bytes()).unwrap(), raw);
        let wrapped = format!(" {}\n{} \n", &text[..4], &text[4..]);
        assert_eq!(decode_receipt(wrapped.as_bytes()).unwrap(), raw);
        let url_safe = URL_SAFE_NO_PAD.encode([0xFB_u8, 0xFF, 0xFE]);
        assert_eq!(
            decode_receipt(url_safe.as_bytes()).unwrap(),
            [0xFB, 0xFF, 0xFE]
        );
        assert!(decode_receipt(b"not base64 !").is_err());
    }

    #[test]
    fn garbage_is_not_a_receipt() {
        let err = ReceiptExpectations::default()
            .check(b"CRCP garbage", &Policy::local_simulated())
            .unwrap_err();
        assert!(!err.to_string().is_empty());
    }
}

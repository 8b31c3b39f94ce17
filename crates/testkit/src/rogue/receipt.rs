//! The receipt a version-3 worker signs for a request it served, made exactly as the real worker
//! makes it (its attested RA-TLS key, the request and answer hashes, the tokens reported), in
//! one function so that a change of the receipt's claims lands in one place here too.

use bytes::Bytes;
use cocoon_attest::ReceiptClaims;
use cocoon_net::LocalIdentity;

use super::TokenCounts;
use crate::TestkitError;

/// What one receipt names of its request and answer.
#[derive(Debug, Clone, Copy)]
pub struct Served {
    /// The client's request id (the request is in clear).
    pub client_request_id: [u8; 32],
    /// SHA-256 of the request body.
    pub request_hash: [u8; 32],
    /// SHA-256 of every answer byte in order.
    pub answer_hash: [u8; 32],
    /// The coefficient the proxy offered.
    pub coefficient: Option<u32>,
}

/// Signs the receipt for one answer, `served` as it says, `usage` as reported, `issued_at` in
/// unix seconds. Answers the encoded `cocoon_attest::Receipt`.
///
/// # Errors
/// [`TestkitError::Receipt`] when the identity has no verifiable evidence to sign with.
pub fn sign_receipt(
    identity: &LocalIdentity,
    model: &str,
    served: Served,
    usage: TokenCounts,
    issued_at: u64,
) -> Result<Bytes, TestkitError> {
    let claims = ReceiptClaims {
        client_request_id: served.client_request_id,
        envelope_hash: None,
        request_hash: served.request_hash,
        answer_hash: served.answer_hash,
        model: model.to_owned(),
        // Unpinned weights, as a local worker without a pinned model hash signs.
        model_hash: [0; 32],
        prompt_tokens: usage.prompt,
        cached_tokens: 0,
        completion_tokens: usage.completion,
        reasoning_tokens: 0,
        // Filled in by the identity from its own evidence.
        worker_image_hash: [0; 32],
        issued_at,
        coefficient: served.coefficient,
    };
    let receipt = identity
        .sign_receipt(claims)
        .map_err(TestkitError::Receipt)?;
    Ok(Bytes::from(receipt.to_bytes()))
}

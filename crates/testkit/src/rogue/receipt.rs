//! The receipt a version-3 worker signs for a request it served, made exactly as the real worker
//! makes it (its attested RA-TLS key, the request and answer hashes, the tokens reported), in
//! one function so that a change of the receipt's claims lands in one place here too.

use bytes::Bytes;
use cocoon_attest::ReceiptClaims;
use cocoon_net::LocalIdentity;

use super::TokenCounts;
use crate::TestkitError;

/// Signs the receipt for one answer to the client's request `client_request_id` (in clear):
/// `request_hash` of the request body, `answer_hash` of every answer byte in order, `usage` as
/// reported, `issued_at` in unix seconds. Answers the encoded `cocoon_attest::Receipt`.
///
/// # Errors
/// [`TestkitError::Receipt`] when the identity has no verifiable evidence to sign with.
pub fn sign_receipt(
    identity: &LocalIdentity,
    model: &str,
    client_request_id: [u8; 32],
    request_hash: [u8; 32],
    answer_hash: [u8; 32],
    usage: TokenCounts,
    issued_at: u64,
) -> Result<Bytes, TestkitError> {
    let claims = ReceiptClaims {
        client_request_id,
        envelope_hash: None,
        request_hash,
        answer_hash,
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
    };
    let receipt = identity
        .sign_receipt(claims)
        .map_err(TestkitError::Receipt)?;
    Ok(Bytes::from(receipt.to_bytes()))
}

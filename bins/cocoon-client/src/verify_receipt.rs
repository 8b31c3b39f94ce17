//! `cocoon-client verify-receipt`: checks a worker's signed receipt offline — its certificate
//! and TEE evidence under a policy, its signature, and optionally that it names exactly the
//! given request id, sealed envelope, request and answer bodies.

use std::io::Read;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cocoon_attest::{AttestError, EvidenceVerifier, Policy, Receipt};

/// Verify a receipt returned by the client (`X-Cocoon-Receipt` header or `cocoon_receipt.receipt`
/// field), read as base64 from --receipt, --file or standard input.
#[derive(clap::Args, Debug)]
pub(crate) struct VerifyReceipt {
    /// The receipt, base64.
    #[arg(long, conflicts_with = "file")]
    receipt: Option<String>,
    /// A file holding the receipt (base64 text or raw bytes).
    #[arg(long)]
    file: Option<PathBuf>,
    /// The request body that was sent (checked against the receipt's request hash).
    #[arg(long)]
    request: Option<PathBuf>,
    /// The answer body as the worker sent it (checked against the receipt's answer hash).
    #[arg(long)]
    answer: Option<PathBuf>,
    /// The client's request id, 64 hex digits (`cocoon_receipt.request_id`): the receipt must
    /// name it.
    #[arg(long, value_name = "HEX")]
    request_id: Option<String>,
    /// SHA-256 of the sealed envelope sent, 64 hex digits (`cocoon_receipt.envelope_sha256`):
    /// the receipt must name it.
    #[arg(long = "envelope-sha256", value_name = "HEX")]
    envelope_sha256: Option<String>,
    /// Accept SIMULATED evidence (receipts from a local network). Never for production.
    #[arg(long)]
    local: bool,
    /// JSON attestation policy (allowed image hashes, measurements...) instead of the preset.
    #[arg(long)]
    policy_file: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs the subcommand.
pub(crate) fn run(args: &VerifyReceipt) -> Result<(), String> {
    let raw = match (&args.receipt, &args.file) {
        (Some(text), _) => text.clone().into_bytes(),
        (None, Some(path)) => {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
        }
        (None, None) => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| format!("cannot read standard input: {e}"))?;
            buf
        }
    };
    let bytes = decode(&raw)?;
    let policy = match &args.policy_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            Policy::from_json(&text).map_err(|e| e.to_string())?
        }
        None if args.local => Policy::local_simulated(),
        None => Policy::production(),
    };
    let read = |p: &Option<PathBuf>| -> Result<Option<Vec<u8>>, String> {
        p.as_ref()
            .map(|p| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display())))
            .transpose()
    };
    let (request, answer) = (read(&args.request)?, read(&args.answer)?);
    let request_id = args
        .request_id
        .as_deref()
        .map(|h| hex32("--request-id", h))
        .transpose()?;
    let envelope = args
        .envelope_sha256
        .as_deref()
        .map(|h| hex32("--envelope-sha256", h))
        .transpose()?;

    let outcome = Receipt::from_bytes(&bytes)
        .and_then(|r| r.verify(&policy, &EvidenceVerifier::default()))
        .and_then(|v| {
            if let Some(id) = &request_id
                && &v.claims.client_request_id != id
            {
                return Err(AttestError::ReceiptRequestMismatch("request id"));
            }
            if let Some(hash) = &envelope
                && v.claims.envelope_hash.as_ref() != Some(hash)
            {
                return Err(AttestError::ReceiptRequestMismatch("sealed envelope"));
            }
            v.check_bodies(request.as_deref(), answer.as_deref())?;
            Ok(v)
        });
    match outcome {
        Ok(v) => {
            let c = &v.claims;
            if args.json {
                let out = serde_json::json!({
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
                    "worker_image_hash": hex::encode(c.worker_image_hash),
                    "worker_key": hex::encode(v.worker.public_key),
                    "attestation": v.worker.evidence_kind.as_token(),
                    "issued_at": c.issued_at,
                    "request_id_checked": request_id.is_some(),
                    "envelope_checked": envelope.is_some(),
                    "request_checked": request.is_some(),
                    "answer_checked": answer.is_some(),
                });
                println!("{out}");
            } else {
                println!("receipt valid");
                println!("  attestation:       {}", v.worker.evidence_kind.as_token());
                println!("  worker key:        {}", hex::encode(v.worker.public_key));
                println!("  worker image hash: {}", hex::encode(c.worker_image_hash));
                println!(
                    "  model:             {} ({})",
                    c.model,
                    hex::encode(c.model_hash)
                );
                println!(
                    "  tokens:            prompt {} (cached {}), completion {} (reasoning {})",
                    c.prompt_tokens, c.cached_tokens, c.completion_tokens, c.reasoning_tokens
                );
                println!("  request id:        {}", hex::encode(c.client_request_id));
                match &c.envelope_hash {
                    Some(h) => println!("  sealed envelope:   {}", hex::encode(h)),
                    None => println!("  sealed envelope:   none (request sent in clear)"),
                }
                println!("  request hash:      {}", hex::encode(c.request_hash));
                println!("  answer hash:       {}", hex::encode(c.answer_hash));
                println!("  issued at:         {} (unix)", c.issued_at);
                if request_id.is_some() {
                    println!("  request id:        matches");
                }
                if envelope.is_some() {
                    println!("  sealed envelope:   matches");
                }
                for (what, checked) in
                    [("request", request.is_some()), ("answer", answer.is_some())]
                {
                    if checked {
                        println!("  {what} body:      matches");
                    }
                }
            }
            Ok(())
        }
        Err(e) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({ "valid": false, "error": e.to_string() })
                );
            }
            Err(format!("receipt invalid: {e}"))
        }
    }
}

/// 32 bytes written as 64 hex digits (`flag` names the option in errors).
fn hex32(flag: &str, text: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(text.trim()).map_err(|e| format!("{flag}: not hex: {e}"))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("{flag}: expected 64 hex digits, got {}", bytes.len() * 2))
}

/// Base64 text (standard or URL-safe, padded or not, surrounding whitespace ignored) or the raw
/// receipt bytes.
fn decode(raw: &[u8]) -> Result<Vec<u8>, String> {
    if raw.starts_with(b"CRCP") {
        return Ok(raw.to_vec());
    }
    let text: String = String::from_utf8_lossy(raw)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    BASE64
        .decode(text.as_bytes())
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim_end_matches('='))
        })
        .map_err(|e| format!("the receipt is not base64: {e}"))
}

//! `cocoon-client verify-receipt`: checks a worker's signed receipt offline — its certificate
//! and TEE evidence under a policy, its signature, and optionally that it names exactly the
//! given request and answer bodies.

use std::io::Read;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::Parser;
use cocoon_attest::{EvidenceVerifier, Policy, Receipt};

/// Verify a receipt returned by the client (`X-Cocoon-Receipt` header or `cocoon_receipt.receipt`
/// field), read as base64 from --receipt, --file or standard input.
#[derive(Parser, Debug)]
#[command(name = "cocoon-client verify-receipt")]
struct Args {
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

/// Runs the subcommand on `args` (the words after `verify-receipt`).
pub(crate) fn run(args: impl IntoIterator<Item = String>) -> Result<(), String> {
    let args = Args::parse_from(std::iter::once("verify-receipt".to_owned()).chain(args));
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

    let outcome = Receipt::from_bytes(&bytes)
        .and_then(|r| r.verify(&policy, &EvidenceVerifier::default()))
        .and_then(|v| {
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
                println!("  request hash:      {}", hex::encode(c.request_hash));
                println!("  answer hash:       {}", hex::encode(c.answer_hash));
                println!("  issued at:         {} (unix)", c.issued_at);
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

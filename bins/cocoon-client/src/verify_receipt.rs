//! `cocoon-client verify-receipt`: checks a worker's signed receipt offline — its certificate
//! and TEE evidence under a policy, its signature, and optionally that it names exactly the
//! given request id, sealed envelope, request and answer bodies. The flags become a
//! `cocoon_client::receipt_check::ReceiptExpectations`, which does the checking and the
//! report.

use std::io::Read;
use std::path::PathBuf;

use cocoon_attest::Policy;
use cocoon_client::receipt_check::{ReceiptExpectations, decode_receipt};

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
    let bytes = decode_receipt(&raw).map_err(|e| format!("the receipt is not base64: {e}"))?;
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
    let expected = ReceiptExpectations {
        request_id: args
            .request_id
            .as_deref()
            .map(|h| hex32("--request-id", h))
            .transpose()?,
        envelope_sha256: args
            .envelope_sha256
            .as_deref()
            .map(|h| hex32("--envelope-sha256", h))
            .transpose()?,
        request_body: read(&args.request)?,
        answer_body: read(&args.answer)?,
    };
    match expected.check(&bytes, &policy) {
        Ok(checked) if args.json => {
            println!("{}", checked.to_json());
            Ok(())
        }
        Ok(checked) => {
            println!("{checked}");
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

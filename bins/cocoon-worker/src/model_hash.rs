//! `cocoon-worker model-hash PATH`: prints the SHA-256 that names a model's weights (a GGUF
//! file, or a directory of an upstream server's model files), the value to pin as `model_hash`
//! and to list in the root registry.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Print the SHA-256 naming a model's weights.
#[derive(Parser, Debug)]
#[command(name = "cocoon-worker model-hash")]
struct ModelHash {
    /// A GGUF file, or a model directory (safetensors shards, config, tokenizer).
    path: PathBuf,
}

/// Runs `model-hash` when the first argument names it; `None` otherwise.
pub(crate) fn dispatch() -> Option<ExitCode> {
    if std::env::args().nth(1)? != "model-hash" {
        return None;
    }
    let args = ModelHash::parse_from(std::env::args().skip(1));
    Some(match cocoon_infer::WeightsDigest::of_path(&args.path) {
        Ok(digest) => {
            println!("{digest}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cocoon-worker model-hash: {e}");
            ExitCode::FAILURE
        }
    })
}

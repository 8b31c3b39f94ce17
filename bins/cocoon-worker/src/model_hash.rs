//! `cocoon-worker model-hash PATH`: prints the SHA-256 that names a model's weights (a GGUF
//! file, or a directory of an upstream server's model files), the value to pin as `model_hash`
//! and to list in the root registry.

use std::path::PathBuf;
use std::process::ExitCode;

/// Print the SHA-256 naming a model's weights.
#[derive(clap::Args, Debug)]
pub(crate) struct ModelHash {
    /// A GGUF file, or a model directory (safetensors shards, config, tokenizer).
    path: PathBuf,
}

/// Runs `model-hash`.
pub(crate) fn run(args: &ModelHash) -> ExitCode {
    match cocoon_infer::WeightsDigest::of_path(&args.path) {
        Ok(digest) => {
            println!("{digest}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cocoon-worker model-hash: {e}");
            ExitCode::FAILURE
        }
    }
}

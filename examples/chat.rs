//! Sends one chat completion through a COCOON network from Rust, without the HTTP API.
//!
//! Start a network first (`scripts/local-network`), then:
//! `cargo run -p cocoon-examples --example chat -- [PROXY_HOST:PORT] [MODEL]`.

use std::time::Duration;

use cocoon_client::{ChatMessage, ChatRequest, Client, ClientConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let proxy = args.next().unwrap_or_else(|| "127.0.0.1:11002".into());
    let model = args.next().unwrap_or_else(|| "Qwen/Qwen3-8B".into());

    let client = Client::start(ClientConfig {
        listen: None,
        proxy,
        // The local network's proxy runs in no TEE and presents SIMULATED evidence; a client
        // of a real network keeps the default (production) policy and refuses such a proxy.
        attestation: cocoon_net::AttestationConfig::client_local(),
        ..ClientConfig::default()
    })?;
    client.wait_ready(Duration::from_secs(10)).await?;
    let answer = client
        .chat(ChatRequest {
            model,
            messages: vec![
                ChatMessage::new("system", "You are a helpful assistant."),
                ChatMessage::new("user", "What is the capital of France?"),
            ],
            temperature: Some(0.0),
            max_tokens: Some(64),
            ..ChatRequest::default()
        })
        .await?;
    println!("{}", answer.content);
    println!(
        "tokens: {} prompt + {} completion; cost: {} nanoTON",
        answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_cost
    );
    client.shutdown();
    Ok(())
}

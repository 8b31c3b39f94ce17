//! Examples of embedding the cocoon-rs crates; run them with
//! `cargo run -p cocoon-examples --example NAME` against a running network
//! (`scripts/local-network`). The use cases are the network's own: chat, translating a message,
//! summarising a long post, transcribing speech.

use std::time::Duration;

use cocoon_client::{ChatAnswer, ChatMessage, ChatRequest, Client, ClientConfig, ClientError};

/// A client of the proxy at `proxy` (`host:port` of its client port), ready to send.
///
/// The local network's proxy runs in no TEE and presents SIMULATED evidence, which this client
/// accepts (`client_local`); a client of a real network keeps the default production policy
/// and refuses such a proxy.
pub async fn connect(proxy: String) -> Result<Client, ClientError> {
    let client = Client::start(ClientConfig {
        listen: None,
        proxy,
        attestation: cocoon_node::AttestationConfig::client_local(),
        ..ClientConfig::default()
    })?;
    client.wait_ready(Duration::from_secs(10)).await?;
    Ok(client)
}

/// One greedy chat turn: `instruction` as the system message, `text` as the user's.
pub async fn instructed(
    client: &Client,
    model: &str,
    instruction: &str,
    text: &str,
    max_tokens: u32,
) -> Result<ChatAnswer, ClientError> {
    client
        .chat(ChatRequest {
            model: model.to_owned(),
            messages: vec![
                ChatMessage::new("system", instruction),
                ChatMessage::new("user", text),
            ],
            temperature: Some(0.0),
            max_tokens: Some(max_tokens),
            ..ChatRequest::default()
        })
        .await
}

/// Prints what an answer cost.
pub fn print_cost(answer: &ChatAnswer) {
    println!(
        "tokens: {} prompt + {} completion; cost: {} nanoTON",
        answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_cost
    );
}

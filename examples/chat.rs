//! Sends one chat completion through a COCOON network from Rust, without the HTTP API.
//!
//! Start a network first (`scripts/local-network`), then:
//! `cargo run -p cocoon-examples --example chat -- [PROXY_HOST:PORT] [MODEL]`.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let proxy = args.next().unwrap_or_else(|| "127.0.0.1:11002".into());
    let model = args
        .next()
        .unwrap_or_else(|| "SmolLM2-135M-Instruct".into());

    let client = cocoon_examples::connect(proxy).await?;
    let answer = cocoon_examples::instructed(
        &client,
        &model,
        "You are a helpful assistant.",
        "What is the capital of France?",
        64,
    )
    .await?;
    println!("{}", answer.content);
    cocoon_examples::print_cost(&answer);
    client.shutdown();
    Ok(())
}

//! Translates a message through a COCOON network, as Telegram's message translation does: the
//! request is sealed to an attested worker, so neither the proxy nor the GPU's owner reads it.
//!
//! Start a network first (`scripts/local-network`), then:
//! `cargo run -p cocoon-examples --example translate -- PROXY_HOST:PORT MODEL LANGUAGE TEXT...`
//! (defaults: 127.0.0.1:11002, SmolLM2-135M-Instruct, French, a short greeting).

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let proxy = args.next().unwrap_or_else(|| "127.0.0.1:11002".into());
    let model = args
        .next()
        .unwrap_or_else(|| "SmolLM2-135M-Instruct".into());
    let language = args.next().unwrap_or_else(|| "French".into());
    let text: Vec<String> = args.collect();
    let text = if text.is_empty() {
        "Good morning! See you at the station at eight.".to_owned()
    } else {
        text.join(" ")
    };

    let client = cocoon_examples::connect(proxy).await?;
    let instruction =
        format!("Translate the user's message into {language}. Reply with the translation only.");
    let answer = cocoon_examples::instructed(&client, &model, &instruction, &text, 256).await?;
    println!("{}", answer.content.trim());
    cocoon_examples::print_cost(&answer);
    client.shutdown();
    Ok(())
}

//! Summarises a long post through a COCOON network, as Telegram's summaries of long channel
//! posts do. The post is read from a file (or standard input with `-`).
//!
//! Start a network first (`scripts/local-network`), then:
//! `cargo run -p cocoon-examples --example summarize -- POST_FILE [PROXY_HOST:PORT] [MODEL]`.

use std::io::Read;

/// Longest post sent, in bytes: a longer one is cut at a character boundary (and says so),
/// since the model's context is finite.
const MAX_POST_BYTES: usize = 16 * 1024;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: summarize POST_FILE [PROXY] [MODEL]")?;
    let proxy = args.next().unwrap_or_else(|| "127.0.0.1:11002".into());
    let model = args
        .next()
        .unwrap_or_else(|| "SmolLM2-135M-Instruct".into());
    let mut post = String::new();
    if path == "-" {
        std::io::stdin().read_to_string(&mut post)?;
    } else {
        post = std::fs::read_to_string(&path)?;
    }
    if post.len() > MAX_POST_BYTES {
        let mut cut = MAX_POST_BYTES;
        while !post.is_char_boundary(cut) {
            cut -= 1;
        }
        post.truncate(cut);
        eprintln!("the post is longer than {MAX_POST_BYTES} bytes: summarising its beginning");
    }

    let client = cocoon_examples::connect(proxy).await?;
    let answer = cocoon_examples::instructed(
        &client,
        &model,
        "Summarise the user's post in two or three sentences.",
        &post,
        200,
    )
    .await?;
    println!("{}", answer.content.trim());
    cocoon_examples::print_cost(&answer);
    client.shutdown();
    Ok(())
}

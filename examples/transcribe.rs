//! Transcribes a WAV file through a COCOON network from Rust, without the HTTP API: the form is
//! written, checked and measured by the client, sealed to the worker, and charged by the audio's
//! duration.
//!
//! Start a network whose worker forwards to a speech server (an upstream that answers
//! `/v1/audio/transcriptions`), then:
//! `cargo run -p cocoon-examples --example transcribe -- FILE.wav [PROXY_HOST:PORT] [MODEL]`.

use cocoon_client::RequestOptions;
use cocoon_protocol::audio::{AudioFile, ResponseFormat, TranscriptionForm, WavAudio};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: transcribe FILE.wav [PROXY_HOST:PORT] [MODEL]")?;
    let proxy = args.next().unwrap_or_else(|| "127.0.0.1:11002".into());
    let model = args.next().unwrap_or_else(|| "whisper-1".into());

    let audio = std::fs::read(&path)?;
    let measured = WavAudio::parse(&audio)?;
    eprintln!(
        "{path}: {:.2} s of {}-channel {} Hz audio",
        measured.seconds(),
        measured.channels,
        measured.sample_rate
    );
    let form = TranscriptionForm {
        model,
        file: AudioFile {
            filename: "audio.wav".into(),
            content_type: Some("audio/wav".into()),
            data: audio.into(),
        },
        language: None,
        prompt: None,
        temperature: None,
        response_format: ResponseFormat::Text,
        timestamp_granularities: Vec::new(),
    };
    let (content_type, body) = form.to_multipart(&form.boundary_for(1));

    let client = cocoon_examples::connect(proxy).await?;
    let mut answer = client
        .transcribe(&content_type, body, RequestOptions::default())
        .await?;
    let text = answer.collect_body().await?;
    if answer.status != 200 {
        return Err(format!(
            "answered {}: {}",
            answer.status,
            String::from_utf8_lossy(&text)
        )
        .into());
    }
    println!("{}", String::from_utf8_lossy(&text).trim());
    let usage = answer.usage();
    println!(
        "tokens: {} prompt + {} completion; cost: {} nanoTON",
        usage.prompt_tokens, usage.completion_tokens, usage.total_cost
    );
    client.shutdown();
    Ok(())
}

//! The `cocoon-rogue-worker` command line, parsed into a [`RogueConfig`]. Kept in the library
//! so that tests check the parsing without starting a process.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use super::{DEFAULT_ANSWER_TEXT, RogueConfig, TokenCounts, UsageReport};
use crate::TestkitError;

/// A worker for attack tests: honest by default, misbehaving only as told.
#[derive(Debug, Clone, Parser)]
#[command(name = "cocoon-rogue-worker", version)]
pub struct RogueArgs {
    /// The proxy's worker port.
    #[arg(long, value_name = "HOST:PORT")]
    pub proxy: String,
    /// The model announced and served.
    #[arg(long, value_name = "M")]
    pub model: String,
    /// The owner address announced.
    #[arg(long, value_name = "ADDR")]
    pub owner: String,
    /// The coefficient announced (1000 = 1.0×).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub coefficient: i32,
    /// Requests served at once; more get 429.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub max_active: u32,
    /// Highest protocol version offered.
    #[arg(long, value_name = "N", default_value_t = cocoon_protocol::version::MAX_VERSION)]
    pub protocol_version: i32,
    /// The answer's text (its words are the completion tokens).
    #[arg(long, value_name = "TEXT", default_value = DEFAULT_ANSWER_TEXT)]
    pub answer_text: String,
    /// Answer frames per request.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub parts: u32,
    /// Pause before each frame after the first, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub part_delay_ms: u64,
    /// Report these counts whatever was used.
    #[arg(long, value_name = "PROMPT,COMPLETION", value_parser = parse_counts)]
    pub usage: Option<TokenCounts>,
    /// Report FACTOR × the honest counts.
    #[arg(long, value_name = "FACTOR", conflicts_with = "usage")]
    pub over_report: Option<u64>,
    /// Never acknowledge ext.cancelQuery; keep streaming.
    #[arg(long)]
    pub ignore_cancel: bool,
    /// Never send the part that ends a request.
    #[arg(long)]
    pub no_final: bool,
    /// Sign a receipt for the first request and send that same receipt for every later one.
    #[arg(long)]
    pub replay_receipt: bool,
    /// Sign these counts in the receipt, whatever usage is reported.
    #[arg(long, value_name = "PROMPT,COMPLETION", value_parser = parse_counts)]
    pub receipt_signs: Option<TokenCounts>,
    /// Sign this coefficient in the receipt, whatever the proxy offered (1000 = 1.0×).
    #[arg(long, value_name = "N")]
    pub receipt_coefficient: Option<u32>,
    /// Announce a sealing key this worker cannot open envelopes with.
    #[arg(long)]
    pub announce_unusable_sealing_key: bool,
    /// Serve the requests seen as JSON at http://HOST:PORT/jsonstats.
    #[arg(long, value_name = "HOST:PORT")]
    pub stats_listen: Option<SocketAddr>,
    /// Send this text as `machine_description_json` in `worker.params` (flag bit 2), unchecked.
    #[arg(long, value_name = "TEXT")]
    pub machine_description: Option<String>,
    /// Log as JSON lines (logs go to stderr; RUST_LOG filters).
    #[arg(long)]
    pub log_json: bool,
}

/// Why a `--counts` value is not two token counts.
#[derive(Debug, thiserror::Error)]
enum BadCounts {
    /// No comma.
    #[error("{0:?}: expected PROMPT,COMPLETION")]
    Shape(String),
    /// A side is not a number.
    #[error("{text:?} is not a token count: {source}")]
    Count {
        text: String,
        source: std::num::ParseIntError,
    },
}

/// `PROMPT,COMPLETION`, two counts.
fn parse_counts(text: &str) -> Result<TokenCounts, BadCounts> {
    let (prompt, completion) = text
        .split_once(',')
        .ok_or_else(|| BadCounts::Shape(text.to_owned()))?;
    let count = |s: &str| {
        s.trim().parse::<u64>().map_err(|source| BadCounts::Count {
            text: s.to_owned(),
            source,
        })
    };
    Ok(TokenCounts {
        prompt: count(prompt)?,
        completion: count(completion)?,
    })
}

impl RogueArgs {
    /// The configuration these arguments describe.
    ///
    /// # Errors
    /// [`TestkitError::InvalidRogue`] for a setting out of range.
    pub fn config(&self) -> Result<RogueConfig, TestkitError> {
        let invalid = |reason: String| Err(TestkitError::InvalidRogue { reason });
        let versions =
            cocoon_protocol::version::MIN_VERSION..=cocoon_protocol::version::MAX_VERSION;
        if !versions.contains(&self.protocol_version) {
            return invalid(format!(
                "--protocol-version {} is outside {}..={}",
                self.protocol_version,
                versions.start(),
                versions.end()
            ));
        }
        if self.coefficient <= 0 {
            return invalid(format!(
                "--coefficient {} must be positive",
                self.coefficient
            ));
        }
        if self.max_active == 0 {
            return invalid("--max-active must be at least 1".into());
        }
        if self.parts == 0 {
            return invalid("--parts must be at least 1".into());
        }
        if self.over_report == Some(0) {
            return invalid("--over-report must be at least 1".into());
        }
        if self.answer_text.split_whitespace().next().is_none() {
            return invalid("--answer-text must hold at least one word".into());
        }
        if self.model.trim().is_empty() {
            return invalid("--model must not be empty".into());
        }
        let usage = match (self.usage, self.over_report) {
            (Some(counts), _) => UsageReport::Fixed(counts),
            (None, Some(factor)) => UsageReport::Scaled(factor),
            (None, None) => UsageReport::Honest,
        };
        Ok(RogueConfig {
            proxy: self.proxy.clone(),
            model: self.model.clone(),
            owner: self.owner.clone(),
            coefficient: self.coefficient,
            max_active: self.max_active,
            protocol_version: self.protocol_version,
            answer_text: self.answer_text.clone(),
            parts: self.parts,
            part_delay: Duration::from_millis(self.part_delay_ms),
            usage,
            ignore_cancel: self.ignore_cancel,
            no_final: self.no_final,
            replay_receipt: self.replay_receipt,
            receipt_signs: self.receipt_signs,
            receipt_coefficient: self.receipt_coefficient,
            announce_unusable_sealing_key: self.announce_unusable_sealing_key,
            stats_listen: self.stats_listen,
            machine_description: self.machine_description.clone(),
        })
    }
}

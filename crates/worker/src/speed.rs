//! Measures how fast the engine a worker serves from really is, for
//! `cocoon-worker estimate --measure`: the earnings estimate then starts from the speed of this
//! machine and engine rather than a figure the operator guessed. A batch of completions runs
//! at once (as a busy worker's would), first with one token each to time the prompts, then with
//! a full answer each to time generation; the tokens counted are the engine's own usage.

use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;

use cocoon_infer::{BodyEvent, Endpoint, Engine, InferenceRequest, TokenUsage};

use crate::WorkerError;

/// A text long enough that prompt processing is measured, not its fixed costs.
const PROMPT: &str = "The harbour town woke slowly. Fishing boats rocked against the stone quay, \
    gulls argued over the night's catch, and the baker on the corner pulled the first loaves \
    from an oven older than anyone in the street. Down by the water a girl sat on an upturned \
    crate, mending a net with quick fingers, while her grandfather told the same story about \
    the winter storm he told every morning. Write what happened next:";

/// What was measured.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Speed {
    /// Requests run at once.
    pub concurrency: usize,
    /// Prompt tokens per second with every request prefilling together.
    pub prompt_tokens_per_sec: f64,
    /// Completion tokens per second with every request generating together.
    pub completion_tokens_per_sec: f64,
    /// Completion tokens generated in the timed run.
    pub completion_tokens: u64,
    /// Wall time of the timed generation run.
    pub seconds: f64,
}

/// Runs `concurrency` requests for `model` twice (one token each, then `max_tokens` each) and
/// answers the engine's speed; every request must finish within `deadline`.
pub async fn measure(
    engine: &dyn Engine,
    model: &str,
    concurrency: usize,
    max_tokens: u64,
    deadline: Duration,
) -> Result<Speed, WorkerError> {
    if concurrency == 0 || max_tokens == 0 {
        return Err(WorkerError::Estimate(
            "measuring needs at least one request and one token",
        ));
    }
    // A first request warms caches and lazy initialisation, and is not counted.
    batch(engine, model, 1, 1, deadline).await?;
    let (prefill, took) = batch(engine, model, concurrency, 1, deadline).await?;
    let (usage, generation) = batch(engine, model, concurrency, max_tokens, deadline).await?;
    let per_sec = |tokens: u64, d: Duration| tokens as f64 / d.as_secs_f64().max(1e-9);
    Ok(Speed {
        concurrency,
        prompt_tokens_per_sec: per_sec(prefill.prompt_tokens, took),
        completion_tokens_per_sec: per_sec(usage.completion_tokens, generation),
        completion_tokens: usage.completion_tokens,
        seconds: generation.as_secs_f64(),
    })
}

/// Runs `n` requests at once and answers their summed usage and the wall time.
async fn batch(
    engine: &dyn Engine,
    model: &str,
    n: usize,
    max_tokens: u64,
    deadline: Duration,
) -> Result<(TokenUsage, Duration), WorkerError> {
    let started = Instant::now();
    let runs = (0..n).map(|i| one(engine, model, i as u64, max_tokens));
    let results = tokio::time::timeout(deadline, futures::future::join_all(runs))
        .await
        .map_err(|_| WorkerError::Measure(format!("no answer within {deadline:?}")))?;
    let took = started.elapsed();
    let mut total = TokenUsage::default();
    for usage in results {
        let usage = usage?;
        total.prompt_tokens += usage.prompt_tokens;
        total.completion_tokens += usage.completion_tokens;
    }
    Ok((total, took))
}

async fn one(
    engine: &dyn Engine,
    model: &str,
    seed: u64,
    max_tokens: u64,
) -> Result<TokenUsage, WorkerError> {
    let body = json!({
        "model": model,
        "prompt": PROMPT,
        "max_tokens": max_tokens,
        "temperature": 0.8,
        "seed": seed,
    });
    let request = InferenceRequest::from_json(Endpoint::Completions, body)
        .map_err(|e| WorkerError::Measure(e.to_string()))?;
    let mut response = engine
        .run(request)
        .await
        .map_err(|e| WorkerError::Measure(e.to_string()))?;
    if response.status != 200 {
        return Err(WorkerError::Measure(format!(
            "the engine answered {}",
            response.status
        )));
    }
    while let Some(event) = response.body.recv().await {
        match event {
            BodyEvent::Data(_) => {}
            BodyEvent::End(usage) => return Ok(usage),
            BodyEvent::Failed { error, .. } => return Err(WorkerError::Measure(error)),
            BodyEvent::Stopped(_) => {
                return Err(WorkerError::Measure("the engine stopped unasked".into()));
            }
        }
    }
    Err(WorkerError::Measure(
        "the answer ended without usage".into(),
    ))
}

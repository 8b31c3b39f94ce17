//! The outcome of a load run, printable for people and as one JSON line for scripts.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::FailureKind;
use super::histogram::LatencyHistogram;
use crate::TestkitError;

/// What a load run measured.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoadReport {
    /// The URL loaded.
    pub url: String,
    /// Workers used.
    pub concurrency: usize,
    /// Whether connections were reused.
    pub keepalive: bool,
    /// Wall time from the first request to the last answer.
    pub elapsed: Duration,
    /// Requests served in full (2xx, whole body, `[DONE]` for SSE).
    pub ok: u64,
    /// Requests that failed, of any [`FailureKind`].
    pub errors: u64,
    /// Latency of served requests, in microseconds.
    pub latency: LatencyHistogram,
    /// Responses received, by status code (failed ones included when a status arrived).
    pub statuses: BTreeMap<u16, u64>,
    /// Failed requests by cause.
    pub failures: BTreeMap<FailureKind, u64>,
    /// Body bytes received by served requests.
    pub body_bytes: u64,
}

#[derive(Serialize)]
struct JsonLine<'a> {
    url: &'a str,
    concurrency: usize,
    keepalive: bool,
    elapsed_s: f64,
    requests: u64,
    ok: u64,
    errors: u64,
    rps: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    mean_ms: f64,
    min_ms: f64,
    body_bytes: u64,
    statuses: BTreeMap<String, u64>,
    failures: BTreeMap<&'static str, u64>,
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

impl LoadReport {
    /// Served requests per second of wall time.
    #[must_use]
    pub fn requests_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }

    /// Requests finished, served or failed.
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.ok + self.errors
    }

    /// The report as one line of JSON (latencies in milliseconds, `rps` of served requests).
    ///
    /// # Errors
    /// [`TestkitError::Render`] never in practice.
    pub fn to_json_line(&self) -> Result<String, TestkitError> {
        let line = JsonLine {
            url: &self.url,
            concurrency: self.concurrency,
            keepalive: self.keepalive,
            elapsed_s: self.elapsed.as_secs_f64(),
            requests: self.requests(),
            ok: self.ok,
            errors: self.errors,
            rps: self.requests_per_second(),
            p50_ms: ms(self.latency.percentile(0.50)),
            p90_ms: ms(self.latency.percentile(0.90)),
            p99_ms: ms(self.latency.percentile(0.99)),
            max_ms: ms(self.latency.max()),
            mean_ms: self.latency.mean() / 1000.0,
            min_ms: ms(self.latency.min()),
            body_bytes: self.body_bytes,
            statuses: self
                .statuses
                .iter()
                .map(|(s, n)| (s.to_string(), *n))
                .collect(),
            failures: self.failures.iter().map(|(k, n)| (k.name(), *n)).collect(),
        };
        Ok(serde_json::to_string(&line)?)
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let connections = if self.keepalive {
            "one kept-alive connection per worker"
        } else {
            "a new connection per request"
        };
        writeln!(
            f,
            "{} with {} workers, {connections}",
            self.url, self.concurrency
        )?;
        writeln!(
            f,
            "  served    {} in {:.3} s, {} failed",
            self.ok,
            self.elapsed.as_secs_f64(),
            self.errors
        )?;
        writeln!(f, "  rate      {:.1} req/s", self.requests_per_second())?;
        writeln!(
            f,
            "  latency   p50 {:.2} ms   p90 {:.2} ms   p99 {:.2} ms   max {:.2} ms   mean {:.2} ms",
            ms(self.latency.percentile(0.50)),
            ms(self.latency.percentile(0.90)),
            ms(self.latency.percentile(0.99)),
            ms(self.latency.max()),
            self.latency.mean() / 1000.0,
        )?;
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        writeln!(f, "  statuses  {}", statuses.join(", "))?;
        if !self.failures.is_empty() {
            let failures: Vec<String> = self
                .failures
                .iter()
                .map(|(k, n)| format!("{}: {n}", k.name()))
                .collect();
            writeln!(f, "  failures  {}", failures.join(", "))?;
        }
        write!(
            f,
            "  received  {:.1} MiB of bodies",
            self.body_bytes as f64 / f64::from(1u32 << 20)
        )
    }
}

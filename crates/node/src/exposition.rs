//! Prometheus text exposition shared by every role's `/metrics` endpoint, so each role only
//! lists its numbers.

use std::fmt::Write;

use crate::histogram::HistogramSnapshot;

/// Kind of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, sum and count of observations (see [`MetricsText::histogram`]).
    Histogram,
}

/// Collects metrics and renders them in the Prometheus text format.
#[derive(Debug, Default)]
pub struct MetricsText {
    out: String,
}

impl MetricsText {
    /// An empty page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a metric without labels.
    pub fn metric(&mut self, name: &str, kind: MetricKind, help: &str, value: f64) -> &mut Self {
        self.header(name, kind, help);
        let _ = writeln!(self.out, "{name} {value}");
        self
    }

    /// Adds a metric with one sample per label set.
    pub fn labeled(
        &mut self,
        name: &str,
        kind: MetricKind,
        help: &str,
        samples: &[(Vec<(&str, String)>, f64)],
    ) -> &mut Self {
        self.header(name, kind, help);
        for (labels, value) in samples {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = writeln!(self.out, "{name}{{{}}} {value}", labels.join(","));
        }
        self
    }

    /// Adds a histogram: cumulative `_bucket{le=...}` samples ending in `+Inf`, `_sum` and
    /// `_count`.
    pub fn histogram(&mut self, name: &str, help: &str, h: &HistogramSnapshot) -> &mut Self {
        self.header(name, MetricKind::Histogram, help);
        for (bound, cum) in h.bounds.iter().zip(&h.cumulative) {
            let _ = writeln!(self.out, "{name}_bucket{{le=\"{bound}\"}} {cum}");
        }
        let _ = writeln!(self.out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(self.out, "{name}_sum {}", h.sum_seconds);
        let _ = writeln!(self.out, "{name}_count {}", h.count);
        self
    }

    fn header(&mut self, name: &str, kind: MetricKind, help: &str) {
        let kind = match kind {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        };
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// The rendered page.
    pub fn finish(self) -> String {
        self.out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_text_format() {
        let mut m = MetricsText::new();
        m.metric("a_total", MetricKind::Counter, "A things.", 3.0);
        m.labeled(
            "b",
            MetricKind::Gauge,
            "B.",
            &[(vec![("model", "x\"y".to_string())], 1.5)],
        );
        let t = m.finish();
        assert!(t.contains("# TYPE a_total counter\na_total 3\n"));
        assert!(t.contains("b{model=\"x\\\"y\"} 1.5\n"));
    }

    #[test]
    fn renders_a_histogram_with_cumulative_buckets() {
        let h = crate::histogram::Histogram::new(&[0.000_05, 0.001]);
        h.observe(std::time::Duration::from_micros(20));
        h.observe(std::time::Duration::from_micros(500));
        h.observe(std::time::Duration::from_millis(3));
        let mut m = MetricsText::new();
        m.histogram("x_seconds", "X time.", &h.snapshot());
        let t = m.finish();
        assert_eq!(
            t,
            "# HELP x_seconds X time.\n# TYPE x_seconds histogram\n\
             x_seconds_bucket{le=\"0.00005\"} 1\nx_seconds_bucket{le=\"0.001\"} 2\n\
             x_seconds_bucket{le=\"+Inf\"} 3\nx_seconds_sum 0.00352\nx_seconds_count 3\n"
        );
    }
}

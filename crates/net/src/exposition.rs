//! Prometheus text exposition shared by every role's `/metrics` endpoint, so each role only
//! lists its numbers.

use std::fmt::Write;

/// Kind of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
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

    fn header(&mut self, name: &str, kind: MetricKind, help: &str) {
        let kind = match kind {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
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
}

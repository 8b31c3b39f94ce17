//! The dashboard page: key numbers as plain HTML text, history as inline SVG drawn here, one
//! small stylesheet inline, and nothing fetched from anywhere.

use std::fmt::Write;
use std::time::Duration;

use crate::History;

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 120.0;
const COLOURS: [&str; 6] = [
    "#2b6cb0", "#c05621", "#2f855a", "#9b2c2c", "#6b46c1", "#4a5568",
];
const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1a202c;max-width:1300px}\
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.2em 0 .4em}\
.warn{background:#fed7d7;border:1px solid #c53030;padding:.5em;font-weight:bold}\
.row{display:flex;flex-wrap:wrap;gap:0 2em}section{min-width:300px}\
dl{display:grid;grid-template-columns:auto auto;gap:.1em 1em;margin:0}dt{color:#4a5568}dd{margin:0;font-weight:600;font-variant-numeric:tabular-nums}\
table{border-collapse:collapse}td,th{border-bottom:1px solid #e2e8f0;padding:.15em .6em;text-align:left}\
figure{margin:0 0 1em 0}figcaption{font-weight:600}svg{background:#f7fafc;border:1px solid #e2e8f0}\
.legend span{margin-right:1em}.muted{color:#718096;font-size:.9em}";

/// Escapes `text` for HTML element content and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The id a figure's value gets: its label in lower case, runs of anything but letters and
/// digits made one `-` (`"tokens served"` → `tokens-served`), so that tests and scrapers can
/// find it.
fn slug(label: &str) -> String {
    let mut out = String::new();
    for c in label.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

/// A figure's value as people read it: integers whole, others with up to three decimals.
pub(crate) fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// One chart: the series of a [`History`] drawn over its window on a shared scale.
#[derive(Debug, Clone)]
pub struct Chart {
    title: String,
    lines: Vec<(String, String)>,
}

impl Chart {
    /// A chart called `title`, with no line yet.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            lines: Vec::new(),
        }
    }

    /// Draws the history's series `key`, named `label` in the legend.
    pub fn line(mut self, key: impl Into<String>, label: impl Into<String>) -> Self {
        self.lines.push((key.into(), label.into()));
        self
    }
}

/// A dashboard page being built; [`Page::finish`] gives the HTML.
#[derive(Debug)]
pub struct Page {
    head: String,
    body: String,
    /// The class of the flex row open now (`figures` or `charts`), if any.
    row: Option<&'static str>,
}

impl Page {
    /// A page titled `title` that reloads itself every `refresh` (no reload when zero).
    pub fn new(title: &str, refresh: Duration) -> Self {
        let mut head =
            String::from("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
        let _ = write!(head, "<title>{}</title>", escape(title));
        if !refresh.is_zero() {
            let _ = write!(
                head,
                "<meta http-equiv=\"refresh\" content=\"{}\">",
                refresh.as_secs().max(1)
            );
        }
        let _ = write!(
            head,
            "<style>{STYLE}</style></head><body><h1>{}</h1>",
            escape(title)
        );
        Self {
            head,
            body: String::new(),
            row: None,
        }
    }

    /// A line of small text under the title (what node, since when).
    pub fn note(&mut self, text: &str) -> &mut Self {
        self.close_row();
        let _ = write!(self.body, "<p class=\"muted\">{}</p>", escape(text));
        self
    }

    /// A warning in a red box (simulated attestation, a failing ledger).
    pub fn warning(&mut self, text: &str) -> &mut Self {
        self.close_row();
        let _ = write!(self.body, "<p class=\"warn\">{}</p>", escape(text));
        self
    }

    /// A block of labelled key numbers, side by side with the blocks next to it. Each value
    /// gets the id of its label (see [`Page::finish`]'s page: `tokens served` → `tokens-served`).
    pub fn figures(&mut self, heading: &str, rows: &[(&str, String)]) -> &mut Self {
        self.open_row("figures");
        let _ = write!(self.body, "<section><h2>{}</h2><dl>", escape(heading));
        for (label, value) in rows {
            let _ = write!(
                self.body,
                "<dt>{}</dt><dd id=\"{}\">{}</dd>",
                escape(label),
                slug(label),
                escape(value)
            );
        }
        self.body.push_str("</dl></section>");
        self
    }

    /// A table (workers, proxies); `empty` is shown instead when there are no rows.
    pub fn table(
        &mut self,
        heading: &str,
        columns: &[&str],
        rows: &[Vec<String>],
        empty: &str,
    ) -> &mut Self {
        self.close_row();
        let _ = write!(self.body, "<h2>{}</h2>", escape(heading));
        if rows.is_empty() {
            let _ = write!(self.body, "<p class=\"muted\">{}</p>", escape(empty));
            return self;
        }
        self.body.push_str("<table><tr>");
        for c in columns {
            let _ = write!(self.body, "<th>{}</th>", escape(c));
        }
        self.body.push_str("</tr>");
        for row in rows {
            self.body.push_str("<tr>");
            for cell in row {
                let _ = write!(self.body, "<td>{}</td>", escape(cell));
            }
            self.body.push_str("</tr>");
        }
        self.body.push_str("</table>");
        self
    }

    /// A heading over the charts that follow.
    pub fn heading(&mut self, text: &str) -> &mut Self {
        self.close_row();
        let _ = write!(self.body, "<h2>{}</h2>", escape(text));
        self
    }

    /// Draws `chart` from `history` over the window ending at `now`.
    pub fn chart(&mut self, history: &History, now: Duration, chart: &Chart) -> &mut Self {
        self.open_row("charts");
        let window = history.window().as_secs_f64().max(1.0);
        let start = now.as_secs_f64() - window;
        let series: Vec<_> = chart
            .lines
            .iter()
            .map(|(key, label)| (label, history.points(key, now)))
            .collect();
        let values = series
            .iter()
            .flat_map(|(_, pts)| pts.iter().map(|p| p.value));
        let (lo, hi) = values.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let span = if hi > lo { hi - lo } else { 1.0 };
        let _ = write!(
            self.body,
            "<figure><figcaption>{}</figcaption><svg width=\"{WIDTH}\" height=\"{}\" viewBox=\"0 0 {WIDTH} {}\" role=\"img\"><title>{}</title>",
            escape(&chart.title),
            HEIGHT + 16.0,
            HEIGHT + 16.0,
            escape(&chart.title),
        );
        for (i, (_, pts)) in series.iter().enumerate() {
            if pts.is_empty() {
                continue;
            }
            let coords: Vec<String> = pts
                .iter()
                .map(|p| {
                    let x = ((p.at.as_secs_f64() - start) / window * WIDTH).clamp(0.0, WIDTH);
                    let y = 4.0 + (HEIGHT - 8.0) * (1.0 - (p.value - lo) / span);
                    format!("{x:.1},{y:.1}")
                })
                .collect();
            let _ = write!(
                self.body,
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>",
                COLOURS[i % COLOURS.len()],
                coords.join(" ")
            );
        }
        let _ = write!(
            self.body,
            "<text x=\"4\" y=\"12\" font-size=\"10\" fill=\"#4a5568\">{}</text>\
             <text x=\"4\" y=\"{}\" font-size=\"10\" fill=\"#4a5568\">{} min ago</text>\
             <text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"#4a5568\" text-anchor=\"end\">now</text></svg>",
            number(hi),
            HEIGHT + 13.0,
            (window / 60.0).round(),
            WIDTH - 4.0,
            HEIGHT + 13.0,
        );
        self.body.push_str("<div class=\"legend\">");
        for (i, (label, pts)) in series.iter().enumerate() {
            let last = pts.last().map_or("-".to_owned(), |p| number(p.value));
            let _ = write!(
                self.body,
                "<span><span style=\"color:{}\">&#9632;</span> {} {}</span>",
                COLOURS[i % COLOURS.len()],
                escape(label),
                last
            );
        }
        self.body.push_str("</div></figure>");
        self
    }

    /// Blocks of one kind sit side by side in a wrapping row.
    fn open_row(&mut self, class: &'static str) {
        if self.row != Some(class) {
            self.close_row();
            let _ = write!(self.body, "<div class=\"row {class}\">");
            self.row = Some(class);
        }
    }

    fn close_row(&mut self) {
        if self.row.take().is_some() {
            self.body.push_str("</div>");
        }
    }

    /// The finished HTML document.
    pub fn finish(mut self) -> String {
        self.close_row();
        let mut out = self.head;
        out.push_str(&self.body);
        out.push_str("</body></html>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn peer_strings_are_escaped_everywhere() {
        let evil = "<script>alert(\"x\")</script>";
        let mut h = History::last_hour(secs(10));
        h.record(secs(10), [(evil, 1.0)]);
        let mut p = Page::new(evil, secs(10));
        p.note(evil)
            .warning(evil)
            .figures(evil, &[(evil, evil.to_owned())])
            .table(evil, &[evil], &[vec![evil.to_owned()]], evil)
            .chart(&h, secs(10), &Chart::new(evil).line(evil, evil));
        let html = p.finish();
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
        // The page names nothing outside itself.
        assert!(!html.contains("src="));
        assert!(!html.contains("href="));
        assert!(!html.contains("http:"));
        assert!(!html.contains("<script"));
    }

    #[test]
    fn figures_are_plain_text_with_ids() {
        let mut p = Page::new("cocoon-worker", secs(10));
        p.figures(
            "Earnings",
            &[
                ("tokens served", "1234".into()),
                ("paid tokens", "1000".into()),
            ],
        );
        let html = p.finish();
        assert!(
            html.contains("<dd id=\"tokens-served\">1234</dd>"),
            "{html}"
        );
        assert!(html.contains("<dd id=\"paid-tokens\">1000</dd>"));
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"10\">"));
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.ends_with("</body></html>\n"));
    }

    #[test]
    fn charts_plot_the_window_and_show_the_latest_value() {
        let mut h = History::last_hour(secs(10));
        h.record(secs(0), [("load", 0.0)]);
        h.record(secs(1800), [("load", 0.5)]);
        h.record(secs(3600), [("load", 1.0)]);
        let mut p = Page::new("t", Duration::ZERO);
        p.chart(
            &h,
            secs(3600),
            &Chart::new("Load").line("load", "utilisation"),
        );
        let html = p.finish();
        assert!(!html.contains("http-equiv"));
        // Oldest point at the left edge and bottom, newest at the right edge and top.
        assert!(
            html.contains("points=\"0.0,116.0 300.0,60.0 600.0,4.0\""),
            "{html}"
        );
        assert!(html.contains("utilisation 1</span>"));
        assert!(html.contains("60 min ago"));
    }

    #[test]
    fn an_empty_history_draws_an_empty_chart() {
        let h = History::last_hour(secs(10));
        let mut p = Page::new("t", secs(5));
        p.chart(&h, secs(5), &Chart::new("Load").line("load", "utilisation"));
        let html = p.finish();
        assert!(!html.contains("<polyline"));
        assert!(html.contains("utilisation -</span>"));
    }

    #[test]
    fn numbers_and_slugs_read_well() {
        assert_eq!(number(12.0), "12");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(1.0 / 3.0), "0.333");
        assert_eq!(slug("Tokens served (paid)"), "tokens-served-paid");
    }
}

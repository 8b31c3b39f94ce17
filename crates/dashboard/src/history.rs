//! The last hour of a node's figures: one bounded ring of timed points per named series, fed by
//! the node's sampler with the time passed in.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// Most series one [`History`] keeps; samples of further names are dropped (names may come from
/// peers, such as per-model series, and must not grow memory without bound).
pub const MAX_SERIES: usize = 64;

/// One sample of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// When it was taken, on the node's monotonic clock (any origin, the same for every point).
    pub at: Duration,
    /// The figure then.
    pub value: f64,
}

/// Timed samples of named figures over a sliding window (an hour on the dashboards).
#[derive(Debug, Clone)]
pub struct History {
    window: Duration,
    capacity: usize,
    series: BTreeMap<String, VecDeque<Point>>,
}

impl History {
    /// Keeps `window` of samples taken every `interval`: `window / interval + 1` points per
    /// series at most (at least 2; an `interval` of zero counts as one second).
    pub fn new(window: Duration, interval: Duration) -> Self {
        let interval = if interval.is_zero() {
            Duration::from_secs(1)
        } else {
            interval
        };
        let per_window = window.as_nanos() / interval.as_nanos();
        let capacity = usize::try_from(per_window)
            .unwrap_or(usize::MAX)
            .saturating_add(1)
            .max(2);
        Self {
            window,
            capacity,
            series: BTreeMap::new(),
        }
    }

    /// The dashboards' history: the last hour, sampled every `interval`.
    pub fn last_hour(interval: Duration) -> Self {
        Self::new(Duration::from_secs(3600), interval)
    }

    /// How far back the history reaches.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Most points kept per series.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Adds the samples taken at `at`, then forgets what is older than the window (series left
    /// empty included). Samples that are not finite, go back in time, or would start a series
    /// beyond [`MAX_SERIES`] are dropped.
    pub fn record<'a>(&mut self, at: Duration, samples: impl IntoIterator<Item = (&'a str, f64)>) {
        for (name, value) in samples {
            if !value.is_finite() {
                continue;
            }
            let full = self.series.len() >= MAX_SERIES;
            let ring = match self.series.get_mut(name) {
                Some(ring) => ring,
                None if full => continue,
                None => self.series.entry(name.to_owned()).or_default(),
            };
            if ring.back().is_some_and(|last| last.at > at) {
                continue;
            }
            if ring.len() >= self.capacity {
                ring.pop_front();
            }
            ring.push_back(Point { at, value });
        }
        self.forget_before(at.saturating_sub(self.window));
    }

    fn forget_before(&mut self, oldest: Duration) {
        self.series.retain(|_, ring| {
            while ring.front().is_some_and(|p| p.at < oldest) {
                ring.pop_front();
            }
            !ring.is_empty()
        });
    }

    /// The points of `name` within the window ending at `now`, oldest first.
    pub fn points(&self, name: &str, now: Duration) -> Vec<Point> {
        let oldest = now.saturating_sub(self.window);
        self.series.get(name).map_or_else(Vec::new, |ring| {
            ring.iter()
                .filter(|p| p.at >= oldest && p.at <= now)
                .copied()
                .collect()
        })
    }

    /// The newest value of `name`.
    pub fn latest(&self, name: &str) -> Option<f64> {
        self.series
            .get(name)
            .and_then(|r| r.back())
            .map(|p| p.value)
    }

    /// How much a counter `name` grew within the window ending at `now` (newest minus oldest
    /// point; `None` with fewer than two points).
    pub fn growth(&self, name: &str, now: Duration) -> Option<f64> {
        let points = self.points(name, now);
        match (points.first(), points.last()) {
            (Some(a), Some(b)) if points.len() >= 2 => Some(b.value - a.value),
            _ => None,
        }
    }

    /// Names of the series held.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.series.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn each_series_is_a_bounded_ring() {
        let mut h = History::new(secs(100), secs(10));
        assert_eq!(h.capacity(), 11);
        for t in 0..1000 {
            // Samples far faster than the interval must still not grow memory.
            h.record(Duration::from_millis(t * 10), [("x", t as f64)]);
        }
        let pts = h.points("x", secs(10));
        assert_eq!(pts.len(), 11);
        assert_eq!(pts.last().map(|p| p.value), Some(999.0));
        assert_eq!(pts.first().map(|p| p.value), Some(989.0));
    }

    #[test]
    fn keeps_the_last_hour_only() {
        let mut h = History::last_hour(secs(10));
        assert_eq!(h.capacity(), 361);
        for t in (0..=7200).step_by(10) {
            h.record(secs(t), [("requests", t as f64)]);
        }
        let pts = h.points("requests", secs(7200));
        assert_eq!(pts.first().map(|p| p.at), Some(secs(3600)));
        assert_eq!(pts.last().map(|p| p.at), Some(secs(7200)));
        assert_eq!(pts.len(), 361);
        assert_eq!(h.growth("requests", secs(7200)), Some(3600.0));
        // A window ending earlier sees only what it covers of what is kept.
        assert_eq!(h.points("requests", secs(3700)).len(), 11);
    }

    #[test]
    fn a_series_left_silent_for_the_window_is_forgotten() {
        let mut h = History::new(secs(60), secs(10));
        h.record(secs(0), [("gone", 1.0), ("kept", 1.0)]);
        h.record(secs(61), [("kept", 2.0)]);
        assert_eq!(h.names().collect::<Vec<_>>(), ["kept"]);
        assert_eq!(h.latest("gone"), None);
        assert_eq!(h.latest("kept"), Some(2.0));
    }

    #[test]
    fn drops_non_finite_and_backward_samples_and_extra_series() {
        let mut h = History::last_hour(secs(10));
        h.record(
            secs(20),
            [("x", 1.0), ("x", f64::NAN), ("y", f64::INFINITY)],
        );
        h.record(secs(10), [("x", 5.0)]);
        assert_eq!(
            h.points("x", secs(20)),
            [Point {
                at: secs(20),
                value: 1.0
            }]
        );
        assert_eq!(h.latest("y"), None);
        let names: Vec<String> = (0..MAX_SERIES * 2).map(|i| format!("s{i}")).collect();
        h.record(secs(30), names.iter().map(|n| (n.as_str(), 1.0)));
        assert_eq!(h.names().count(), MAX_SERIES);
        assert_eq!(h.growth("x", secs(30)), None);
    }
}

//! A lock-free latency histogram for `/metrics`: each role records how long a request spent in
//! it (its own work, not the next hop's), and Prometheus, or `scripts/bench-relay`, reads the
//! buckets. Recording is a few relaxed atomic adds, so it can sit on every request's path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds, in seconds, for the time a role adds to a request: 50 µs to 1 s.
pub const OVERHEAD_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_2, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0,
];

/// The time from `start` to `end`, two Unix times in seconds as the hops report them; zero when
/// they are out of order or not finite (a zero span counts the whole hop as overhead, never less).
pub fn reported_span(start: f64, end: f64) -> Duration {
    Duration::try_from_secs_f64(end - start).unwrap_or(Duration::ZERO)
}

/// Counts of observed durations by bucket, with their sum and count.
#[derive(Debug)]
pub struct Histogram {
    /// Increasing upper bounds in seconds; one more bucket (`+Inf`) follows the last.
    bounds: &'static [f64],
    /// Observations per bucket, not cumulative; `bounds.len() + 1` of them.
    buckets: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Default for Histogram {
    /// A histogram with [`OVERHEAD_BUCKETS`].
    fn default() -> Self {
        Self::new(OVERHEAD_BUCKETS)
    }
}

impl Histogram {
    /// A histogram with these upper bounds (seconds, increasing). Bounds that are not finite or
    /// not above the one before are dropped, so every bucket means what its `le` says.
    pub fn new(bounds: &'static [f64]) -> Self {
        let valid = bounds
            .iter()
            .enumerate()
            .take_while(|(i, b)| b.is_finite() && (*i == 0 || bounds[*i - 1] < **b))
            .count();
        let bounds = &bounds[..valid];
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self.bounds.partition_point(|b| *b < secs);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now. Taken without a lock, so under load the buckets may run one observation
    /// ahead of or behind `count`; the `+Inf` bucket is `count` as Prometheus requires.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let count = self.count.load(Ordering::Relaxed);
        let mut running = 0u64;
        let cumulative = self.buckets[..self.bounds.len()]
            .iter()
            .map(|b| {
                running += b.load(Ordering::Relaxed);
                running.min(count)
            })
            .collect();
        HistogramSnapshot {
            bounds: self.bounds.to_vec(),
            cumulative,
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            count,
        }
    }
}

/// A histogram's counts at one moment, in Prometheus's form.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Upper bounds in seconds.
    pub bounds: Vec<f64>,
    /// Observations at or below each bound (same length as `bounds`).
    pub cumulative: Vec<u64>,
    /// Sum of all observations, in seconds.
    pub sum_seconds: f64,
    /// Number of observations (the `+Inf` bucket).
    pub count: u64,
}

impl HistogramSnapshot {
    /// The `q` quantile (0..=1) estimated as Prometheus's `histogram_quantile` does: linear
    /// within the bucket that holds it, the first bucket starting at 0. `None` without
    /// observations; the last finite bound when the quantile lies in `+Inf`.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * self.count as f64;
        let mut below = 0u64;
        let mut lower = 0.0;
        for (bound, cum) in self.bounds.iter().zip(&self.cumulative) {
            if *cum as f64 >= rank && *cum > below {
                let in_bucket = (*cum - below) as f64;
                return Some(lower + (bound - lower) * (rank - below as f64) / in_bucket);
            }
            below = *cum;
            lower = *bound;
        }
        self.bounds.last().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_fall_in_the_first_bucket_at_or_above_them() {
        let h = Histogram::new(&[0.001, 0.01, 0.1]);
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(1)); // on the bound: `le` is inclusive
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_secs(2)); // beyond the last bound
        let s = h.snapshot();
        assert_eq!(s.cumulative, vec![2, 3, 3]);
        assert_eq!(s.count, 4);
        assert!((s.sum_seconds - 2.0065).abs() < 1e-9, "{}", s.sum_seconds);
    }

    #[test]
    fn bad_bounds_are_dropped_from_the_first_bad_one() {
        let h = Histogram::new(&[0.1, 0.05, 1.0]);
        assert_eq!(h.snapshot().bounds, vec![0.1]);
        let h = Histogram::new(&[f64::NAN, 1.0]);
        h.observe(Duration::from_secs(3));
        let s = h.snapshot();
        assert!(s.bounds.is_empty());
        assert_eq!(s.count, 1);
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket() {
        let h = Histogram::new(&[0.001, 0.002, 0.004]);
        for _ in 0..10 {
            h.observe(Duration::from_micros(1500));
        }
        for _ in 0..10 {
            h.observe(Duration::from_micros(3000));
        }
        let s = h.snapshot();
        // The median is the 10th of 20: the top of the (1 ms, 2 ms] bucket.
        let close = |q: f64, want: f64| (s.quantile(q).unwrap_or(f64::NAN) - want).abs() < 1e-12;
        assert!(close(0.5, 0.002), "{:?}", s.quantile(0.5));
        // The 75th percentile is halfway through (2 ms, 4 ms].
        assert!(close(0.75, 0.003), "{:?}", s.quantile(0.75));
        assert_eq!(s.quantile(1.5), None);
        assert_eq!(Histogram::default().snapshot().quantile(0.5), None);
        h.observe(Duration::from_secs(9));
        h.observe(Duration::from_secs(9));
        assert_eq!(h.snapshot().quantile(0.99), Some(0.004));
    }

    #[test]
    fn reported_spans_are_never_negative() {
        assert_eq!(reported_span(10.0, 10.5), Duration::from_millis(500));
        assert_eq!(reported_span(10.5, 10.0), Duration::ZERO);
        assert_eq!(reported_span(0.0, f64::NAN), Duration::ZERO);
    }

    #[test]
    fn the_default_buckets_run_from_50_microseconds_to_a_second() {
        let s = Histogram::default().snapshot();
        assert_eq!(s.bounds.first(), Some(&0.000_05));
        assert_eq!(s.bounds.last(), Some(&1.0));
        assert_eq!(s.bounds.len(), OVERHEAD_BUCKETS.len());
    }
}

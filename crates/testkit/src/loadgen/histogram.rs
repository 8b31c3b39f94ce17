//! A latency histogram of constant memory with a relative error below 0.8%, so a load run of
//! any length keeps its percentiles without keeping every sample.
//!
//! Values (microseconds) below 256 are kept exactly; above, each power of two is split into
//! 128 equal buckets, so a bucket is never wider than 1/128 of its lower bound.

/// Bits of sub-bucket resolution per power of two.
const SUB_BITS: u32 = 7;
/// Sub-buckets per power of two.
const SUB_BUCKETS: usize = 1 << SUB_BITS;
/// Values below this are their own bucket.
const EXACT_BELOW: u64 = 2 << SUB_BITS;

/// Counts of latencies in microseconds, mergeable across workers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: Vec<u64>,
    total: u64,
    min: u64,
    max: u64,
    sum: u128,
}

fn bucket_of(value: u64) -> usize {
    if value < EXACT_BELOW {
        return value as usize;
    }
    let magnitude = 63 - value.leading_zeros();
    let shift = magnitude - SUB_BITS;
    // In [SUB_BUCKETS, 2 * SUB_BUCKETS): the top SUB_BITS + 1 bits of the value.
    let sub = (value >> shift) as usize;
    shift as usize * SUB_BUCKETS + sub
}

/// The largest value that falls into `bucket`.
fn bucket_ceiling(bucket: usize) -> u64 {
    if (bucket as u64) < EXACT_BELOW {
        return bucket as u64;
    }
    let shift = (bucket / SUB_BUCKETS - 1) as u32;
    let sub = (bucket % SUB_BUCKETS + SUB_BUCKETS) as u64;
    // For the top bucket of u64 this is exactly u64::MAX, computed without overflow.
    (sub << shift) + ((1u64 << shift) - 1)
}

impl LatencyHistogram {
    /// An empty histogram.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one sample.
    pub fn record(&mut self, micros: u64) {
        let bucket = bucket_of(micros);
        if self.counts.len() <= bucket {
            self.counts.resize(bucket + 1, 0);
        }
        self.counts[bucket] += 1;
        if self.total == 0 || micros < self.min {
            self.min = micros;
        }
        self.max = self.max.max(micros);
        self.total += 1;
        self.sum += u128::from(micros);
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Self) {
        if other.total == 0 {
            return;
        }
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.min = if self.total == 0 {
            other.min
        } else {
            self.min.min(other.min)
        };
        self.max = self.max.max(other.max);
        self.total += other.total;
        self.sum += other.sum;
    }

    /// Samples recorded.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Smallest sample, exactly; 0 when empty.
    #[must_use]
    pub fn min(&self) -> u64 {
        self.min
    }

    /// Largest sample, exactly; 0 when empty.
    #[must_use]
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Mean of the samples; 0 when empty.
    #[must_use]
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at or below which a fraction `quantile` (0..=1) of samples lie, as the upper
    /// edge of its bucket capped by the true maximum; 0 when empty.
    #[must_use]
    pub fn percentile(&self, quantile: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let quantile = quantile.clamp(0.0, 1.0);
        let rank = ((quantile * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0u64;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bucket_ceiling(bucket).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        let mut previous_ceiling = None;
        for bucket in 0..=bucket_of(u64::MAX) {
            let ceiling = bucket_ceiling(bucket);
            if let Some(previous) = previous_ceiling {
                assert!(ceiling > previous, "bucket {bucket}");
                assert_eq!(bucket_of(previous + 1), bucket, "bucket {bucket}");
            }
            assert_eq!(bucket_of(ceiling), bucket, "bucket {bucket}");
            previous_ceiling = Some(ceiling);
        }
        assert_eq!(bucket_ceiling(bucket_of(u64::MAX)), u64::MAX);
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        let histogram = LatencyHistogram::new();
        assert_eq!(
            (
                histogram.percentile(0.5),
                histogram.max(),
                histogram.count()
            ),
            (0, 0, 0)
        );
    }

    #[test]
    fn merge_equals_recording_everything_once() {
        let mut left = LatencyHistogram::new();
        let mut right = LatencyHistogram::new();
        let mut both = LatencyHistogram::new();
        for v in [3u64, 900, 5_000, 70_000] {
            left.record(v);
            both.record(v);
        }
        for v in [1u64, 250, 1_000_000] {
            right.record(v);
            both.record(v);
        }
        left.merge(&right);
        assert_eq!(left, both);
        assert_eq!((left.min(), left.max(), left.count()), (1, 1_000_000, 7));
    }

    proptest! {
        #[test]
        fn percentiles_are_within_one_percent(
            mut samples in proptest::collection::vec(0u64..50_000_000, 1..400),
            quantile in 0.0f64..=1.0,
        ) {
            let mut histogram = LatencyHistogram::new();
            for s in &samples {
                histogram.record(*s);
            }
            samples.sort_unstable();
            let rank = ((quantile * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            let exact = samples[rank - 1];
            let estimate = histogram.percentile(quantile);
            prop_assert!(estimate >= exact);
            prop_assert!(estimate - exact <= exact / 100, "exact {exact}, estimate {estimate}");
        }
    }
}

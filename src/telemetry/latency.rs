//! [`LatencyHistogram`]: one-way or round-trip latencies in an
//! [HdrHistogram](https://docs.rs/hdrhistogram) (3 significant digits, 1 ns to 100 s), its
//! headline figures and its logarithmic buckets.
#![forbid(unsafe_code)]

use hdrhistogram::Histogram;

/// Largest latency recorded; larger values are clamped to it (100 s).
const MAX_LATENCY_NS: u64 = 100_000_000_000;

/// One-way or round-trip latencies in nanoseconds.
///
/// # Examples
///
/// ```
/// use perdix_transport::telemetry::LatencyHistogram;
///
/// let mut hist = LatencyHistogram::new();
/// for ns in 1..=1000 {
///     hist.record(ns);
/// }
/// let summary = hist.summary();
/// assert_eq!(summary.count, 1000);
/// assert!((495..=505).contains(&summary.p50_ns));
/// assert!(LatencyHistogram::new().summary().p99_ns == 0); // empty: zeros, never NaN
/// ```
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    hist: Histogram<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    /// An empty histogram.
    #[must_use]
    pub fn new() -> Self {
        // `new_with_bounds` fails only for low < 1, high < 2 * low or sigfig > 5: never for
        // these constants (and a unit test builds one).
        match Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3) {
            Ok(hist) => Self { hist },
            Err(err) => unreachable!("constant histogram bounds rejected: {err}"),
        }
    }

    /// Records one latency (clamped to 1 ns..100 s).
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.hist.saturating_record(ns.clamp(1, MAX_LATENCY_NS));
    }

    /// Records `count` equal latencies.
    pub fn record_n(&mut self, ns: u64, count: u64) {
        // Out-of-range values are clamped first, so recording cannot fail.
        let _ = self.hist.record_n(ns.clamp(1, MAX_LATENCY_NS), count);
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Self) {
        // Same bounds on both sides, so `add` cannot fail.
        let _ = self.hist.add(&other.hist);
    }

    /// The samples recorded since `earlier`, an earlier state of this histogram (a window
    /// between two cumulative snapshots). When `earlier` is not one (it has a sample this one
    /// lacks), all of `self`.
    ///
    /// # Examples
    ///
    /// ```
    /// use perdix_transport::telemetry::LatencyHistogram;
    ///
    /// let mut hist = LatencyHistogram::new();
    /// hist.record(1_000);
    /// let earlier = hist.clone();
    /// hist.record(5_000);
    /// let window = hist.since(&earlier);
    /// assert_eq!(window.len(), 1);
    /// assert!((4_995..=5_005).contains(&window.quantile_ns(0.5))); // 3 significant digits
    /// ```
    #[must_use]
    pub fn since(&self, earlier: &Self) -> Self {
        let mut window = self.clone();
        if window.hist.subtract(&earlier.hist).is_err() {
            return self.clone();
        }
        window
    }

    /// Forgets every sample.
    pub fn clear(&mut self) {
        self.hist.reset();
    }

    /// Samples recorded.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    /// Whether no sample was recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// The latency at quantile `q` (0.0..=1.0) in ns; 0 when empty.
    #[must_use]
    pub fn quantile_ns(&self, q: f64) -> u64 {
        if self.hist.is_empty() {
            0
        } else {
            self.hist.value_at_quantile(q.clamp(0.0, 1.0))
        }
    }

    /// Count, mean, p50, p99, p99.9 and max.
    #[must_use]
    pub fn summary(&self) -> LatencySummary {
        let empty = self.hist.is_empty();
        LatencySummary {
            count: self.hist.len(),
            mean_ns: if empty { 0.0 } else { self.hist.mean() },
            p50_ns: self.quantile_ns(0.50),
            p99_ns: self.quantile_ns(0.99),
            p999_ns: self.quantile_ns(0.999),
            max_ns: if empty { 0 } else { self.hist.max() },
        }
    }

    /// Counts in logarithmic buckets (`per_decade` per factor of ten), from the smallest to the
    /// largest non-empty one; empty when there are no samples.
    #[must_use]
    pub fn buckets(&self, per_decade: u32) -> Vec<LatencyBucket> {
        if self.hist.is_empty() {
            return Vec::new();
        }
        let per_decade = per_decade.max(1) as f64;
        let lo_exp = (self.hist.min().max(1) as f64).log10();
        let hi_exp = (self.hist.max().max(1) as f64).log10();
        let first = (lo_exp * per_decade).floor() as i64;
        let last = (hi_exp * per_decade).floor() as i64;
        (first..=last)
            .map(|k| {
                let lo = 10f64.powf(k as f64 / per_decade).round() as u64;
                let hi = 10f64.powf((k + 1) as f64 / per_decade).round() as u64;
                let count = self.hist.count_between(lo, hi.saturating_sub(1).max(lo));
                LatencyBucket {
                    lo_ns: lo,
                    hi_ns: hi,
                    count,
                }
            })
            .collect()
    }

    /// For each of `bounds_ns` (ascending), the samples of at most it: the cumulative buckets
    /// `le` of a Prometheus histogram, in one pass over the recorded values. To the
    /// histogram's 3 significant digits: a sample up to 0.1 % above a bound may count in it.
    /// Nondecreasing; all 0 when empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use perdix_transport::telemetry::LatencyHistogram;
    ///
    /// let mut hist = LatencyHistogram::new();
    /// hist.record(1_000);
    /// hist.record(5_000);
    /// assert_eq!(hist.counts_at_most(&[999, 1_000, 10_000]), [0, 1, 2]);
    /// ```
    #[must_use]
    pub fn counts_at_most(&self, bounds_ns: &[u64]) -> Vec<u64> {
        let mut counts = vec![0u64; bounds_ns.len()];
        for value in self.hist.iter_recorded() {
            let lowest = self.hist.lowest_equivalent(value.value_iterated_to());
            // The first bound the sample's bucket reaches; it counts there and above.
            let first = bounds_ns.partition_point(|&bound| bound < lowest);
            if let Some(count) = counts.get_mut(first) {
                *count = count.saturating_add(value.count_at_value());
            }
        }
        let mut below = 0u64;
        for count in &mut counts {
            below = below.saturating_add(*count);
            *count = below;
        }
        counts
    }
}

/// Headline figures of a [`LatencyHistogram`]; all zero when it is empty.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Mean in ns.
    pub mean_ns: f64,
    /// Median in ns.
    pub p50_ns: u64,
    /// 99th percentile in ns.
    pub p99_ns: u64,
    /// 99.9th percentile in ns.
    pub p999_ns: u64,
    /// Largest sample in ns.
    pub max_ns: u64,
}

/// One bar of a latency histogram: samples in `lo_ns..hi_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatencyBucket {
    /// Lower bound, inclusive.
    pub lo_ns: u64,
    /// Upper bound, exclusive.
    pub hi_ns: u64,
    /// Samples in the bucket.
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::LatencyHistogram;

    #[test]
    fn counts_at_most_agree_with_count_between() {
        let mut hist = LatencyHistogram::new();
        for i in 0..5_000u64 {
            hist.record(1 + i * i * 3_911 % 40_000_000_000);
        }
        let bounds = [
            1,
            999,
            1_000,
            2_047,
            2_048,
            65_000,
            1_000_000,
            7_777_777,
            99_999_999_999,
        ];
        let expected: Vec<u64> = bounds
            .iter()
            .map(|&b| hist.hist.count_between(1, b))
            .collect();
        assert_eq!(hist.counts_at_most(&bounds), expected);
        assert_eq!(*expected.last().unwrap(), 5_000);
        assert_eq!(LatencyHistogram::new().counts_at_most(&bounds), [0; 9]);
    }
}

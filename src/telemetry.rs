//! Counters, rates and a latency histogram, shared by the bins, the Bevy plugin and the
//! dashboard.
//!
//! A [`Telemetry`] recorder turns cumulative totals ([`Totals`]) sampled now and then into
//! per-second rates kept over a bounded history, and collects one-way latencies in an
//! [HdrHistogram](https://docs.rs/hdrhistogram) (3 significant digits, 1 ns to 100 s).
//! [`TelemetrySnapshot`] is a plain copy of all of it for display.
#![forbid(unsafe_code)]

use std::collections::VecDeque;

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

/// Cumulative totals of a transport at one moment; [`Telemetry::update`] turns two of them into
/// rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Messages delivered to the consumer.
    pub messages: u64,
    /// Payload bytes delivered.
    pub bytes: u64,
    /// Times a producer found the ring full.
    pub stalls: u64,
    /// Messages dropped by `DropNewest`.
    pub drops: u64,
    /// Messages of a kind nobody registered (Bevy plugin).
    pub unrouted: u64,
    /// Messages waiting in the ring now.
    pub occupancy: u64,
    /// Slots in the ring(s).
    pub capacity: u64,
}

/// Rates over one sampling interval.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sample {
    /// Seconds since the recorder started.
    pub t_s: f64,
    /// Messages per second.
    pub msgs_per_sec: f64,
    /// Payload bytes per second.
    pub bytes_per_sec: f64,
    /// Ring fill, 0.0..=1.0.
    pub occupancy: f64,
    /// Full-ring events per second.
    pub stalls_per_sec: f64,
    /// Drops per second.
    pub drops_per_sec: f64,
    /// Unrouted messages per second.
    pub unrouted_per_sec: f64,
}

/// Turns totals into rates and keeps a bounded history, plus a latency histogram.
///
/// # Examples
///
/// ```
/// use perdix_transport::telemetry::{Telemetry, Totals};
///
/// let mut telemetry = Telemetry::new("host", 60);
/// telemetry.update(0.0, Totals { capacity: 8, ..Totals::default() });
/// let sample = telemetry.update(0.5, Totals { messages: 50, bytes: 1600, occupancy: 4, capacity: 8, ..Totals::default() });
/// assert_eq!(sample.msgs_per_sec, 100.0);
/// assert_eq!(sample.occupancy, 0.5);
/// assert_eq!(telemetry.snapshot().history.len(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct Telemetry {
    backend: String,
    device: String,
    history: VecDeque<Sample>,
    history_len: usize,
    last: Option<(f64, Totals)>,
    latency: LatencyHistogram,
}

impl Telemetry {
    /// A recorder for a transport on `backend`, keeping `history_len` samples.
    #[must_use]
    pub fn new(backend: impl Into<String>, history_len: usize) -> Self {
        Self {
            backend: backend.into(),
            device: String::new(),
            history: VecDeque::with_capacity(history_len.min(4096)),
            history_len: history_len.max(1),
            last: None,
            latency: LatencyHistogram::new(),
        }
    }

    /// Names the device (GPU name, or "cpu").
    pub fn set_device(&mut self, device: impl Into<String>) {
        self.device = device.into();
    }

    /// Names the backend.
    pub fn set_backend(&mut self, backend: impl Into<String>) {
        self.backend = backend.into();
    }

    /// Records one message latency.
    #[inline]
    pub fn record_latency(&mut self, ns: u64) {
        self.latency.record(ns);
    }

    /// The latency histogram collected so far.
    #[must_use]
    pub fn latency(&self) -> &LatencyHistogram {
        &self.latency
    }

    /// Mutable access to the latency histogram (to merge per-thread histograms into it).
    pub fn latency_mut(&mut self) -> &mut LatencyHistogram {
        &mut self.latency
    }

    /// Takes totals at `t_s` seconds; returns (and keeps) the rates since the previous call.
    /// The first call only sets the baseline and returns a zero-rate sample.
    pub fn update(&mut self, t_s: f64, totals: Totals) -> Sample {
        let occupancy = if totals.capacity == 0 {
            0.0
        } else {
            (totals.occupancy as f64 / totals.capacity as f64).clamp(0.0, 1.0)
        };
        let Some((t0, before)) = self.last.replace((t_s, totals)) else {
            return Sample {
                t_s,
                occupancy,
                ..Sample::default()
            };
        };
        let dt = t_s - t0;
        let rate = |now: u64, then: u64| {
            if dt > 0.0 {
                now.saturating_sub(then) as f64 / dt
            } else {
                0.0
            }
        };
        let sample = Sample {
            t_s,
            msgs_per_sec: rate(totals.messages, before.messages),
            bytes_per_sec: rate(totals.bytes, before.bytes),
            occupancy,
            stalls_per_sec: rate(totals.stalls, before.stalls),
            drops_per_sec: rate(totals.drops, before.drops),
            unrouted_per_sec: rate(totals.unrouted, before.unrouted),
        };
        if self.history.len() == self.history_len {
            self.history.pop_front();
        }
        self.history.push_back(sample);
        sample
    }

    /// Forgets history, baseline and latencies.
    pub fn reset(&mut self) {
        self.history.clear();
        self.last = None;
        self.latency.clear();
    }

    /// A copy of everything, for display.
    #[must_use]
    pub fn snapshot(&self) -> TelemetrySnapshot {
        TelemetrySnapshot {
            backend: self.backend.clone(),
            device: self.device.clone(),
            history: self.history.iter().copied().collect(),
            latency: self.latency.summary(),
            latency_buckets: self.latency.buckets(10),
            totals: self.last.map(|(_, t)| t).unwrap_or_default(),
        }
    }
}

/// Everything a dashboard shows, copied out of a [`Telemetry`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TelemetrySnapshot {
    /// Memory backend / producer kind ("host", "cuda-pinned", ...).
    pub backend: String,
    /// Device name ("cpu", or the GPU's name).
    pub device: String,
    /// Rates, oldest first.
    pub history: Vec<Sample>,
    /// Latency headline figures.
    pub latency: LatencySummary,
    /// Latency histogram, 10 buckets per decade.
    pub latency_buckets: Vec<LatencyBucket>,
    /// Latest totals.
    pub totals: Totals,
}

impl TelemetrySnapshot {
    /// The latest sample, or zeros.
    #[must_use]
    pub fn latest(&self) -> Sample {
        self.history.last().copied().unwrap_or_default()
    }
}

//! [`Telemetry`]: rates from two [`Counters`] taken apart in time, over a bounded history, and
//! [`TelemetrySnapshot`], a plain copy of it for display.
#![forbid(unsafe_code)]

use std::collections::VecDeque;

use super::counters::Counters;
use super::latency::{LatencyBucket, LatencyHistogram, LatencySummary};

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

impl Sample {
    /// The rates from `before` to `now`, `dt_s` seconds apart (zero rates when `dt_s` is not
    /// positive), and `now`'s fill, at `t_s`: the one place two counters become rates (the
    /// recorder's history and the `perdix/*` diagnostics).
    #[must_use]
    pub fn between(t_s: f64, dt_s: f64, before: &Counters, now: &Counters) -> Self {
        let rate = |now: u64, then: u64| {
            if dt_s > 0.0 {
                now.saturating_sub(then) as f64 / dt_s
            } else {
                0.0
            }
        };
        Self {
            t_s,
            msgs_per_sec: rate(now.messages, before.messages),
            bytes_per_sec: rate(now.bytes, before.bytes),
            occupancy: now.fill(),
            stalls_per_sec: rate(now.stalls, before.stalls),
            drops_per_sec: rate(now.drops, before.drops),
            unrouted_per_sec: rate(now.unrouted, before.unrouted),
        }
    }
}

/// Turns totals into rates and keeps a bounded history, plus a latency histogram.
///
/// # Examples
///
/// ```
/// use perdix_transport::telemetry::{Telemetry, Counters};
///
/// let mut telemetry = Telemetry::new("host", 60);
/// telemetry.update(0.0, Counters { capacity: 8, ..Counters::default() });
/// let sample = telemetry.update(0.5, Counters { messages: 50, bytes: 1600, occupancy: 4, capacity: 8, ..Counters::default() });
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
    last: Option<(f64, Counters)>,
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
    pub fn update(&mut self, t_s: f64, totals: Counters) -> Sample {
        let Some((t0, before)) = self.last.replace((t_s, totals)) else {
            return Sample {
                t_s,
                occupancy: totals.fill(),
                ..Sample::default()
            };
        };
        let sample = Sample::between(t_s, t_s - t0, &before, &totals);
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
    pub totals: Counters,
}

impl TelemetrySnapshot {
    /// The latest sample, or zeros.
    #[must_use]
    pub fn latest(&self) -> Sample {
        self.history.last().copied().unwrap_or_default()
    }
}

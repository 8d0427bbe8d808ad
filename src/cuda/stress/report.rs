//! `GpuStressReport`: what a GPU stress run measured.

use std::time::Duration;

use super::config::GpuStress;
use crate::clock::ClockMapping;
use crate::cuda::GpuCounters;
use crate::telemetry::LatencyHistogram;
use crate::testing::stress::{Throughput, VerifyReport};
use crate::{Backend, Error};

/// What a [`GpuStress`] run measured.
#[derive(Debug, Clone)]
pub struct GpuStressReport {
    /// The device's name.
    pub device: String,
    /// Ring memory backend.
    pub backend: Backend,
    /// The configuration that ran.
    pub config: GpuStress,
    /// From the launch until the last message was consumed.
    pub elapsed: Duration,
    /// Everything the consumers checked, merged, with every message a producer says it sent
    /// and no consumer saw counted as lost.
    pub verify: VerifyReport,
    /// The device counters after the run.
    pub counters: GpuCounters,
    /// Attempts the producer threads counted (must equal `counters.attempted()`).
    pub attempts: u64,
    /// Messages the producer threads say they sent (must equal `counters.emitted`).
    pub sent: u64,
    /// Messages each consumer thread read.
    pub per_consumer: Vec<u64>,
    /// One-way latency GPU stamp → CPU read (empty unless `latency_every > 0`).
    pub latency: LatencyHistogram,
    /// Latency samples whose stamp was later than the reading (calibration error).
    pub early_stamps: u64,
    /// The clock mapping in force at the end of the run (its `error_ns` bounds every stamp, its
    /// `fit_rms_ns` is the calibration noise).
    pub clock: Option<ClockMapping>,
    /// After the run: the mapping's error against a fresh calibration, in ns (drift residual).
    pub clock_residual_ns: Option<i64>,
    /// The first consumer error other than the end of the stream (a corrupt slot).
    pub consumer_error: Option<Error>,
}

impl Throughput for GpuStressReport {
    fn verified(&self) -> (&VerifyReport, Duration) {
        (&self.verify, self.elapsed)
    }
}

impl GpuStressReport {
    /// `emitted + dropped == attempted`, and the consumers saw exactly what was emitted.
    #[must_use]
    pub fn counts_exact(&self) -> bool {
        self.counters.attempted() == self.attempts
            && self.counters.emitted == self.sent
            && self.verify.messages == self.sent
    }

    /// No loss, duplicate, reorder or corruption, exact counts, and no consumer error.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.verify.is_clean() && self.counts_exact() && self.consumer_error.is_none()
    }
}

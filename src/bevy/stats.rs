//! What the drain counts beyond the rings' own counters ([`Counts`]: frames, deferred messages,
//! the latest frame's, the cumulative latency histogram), and the
//! [`CountersSnapshot`] of the resource's rings built from both.
#![forbid(unsafe_code)]

use std::sync::Arc;

use super::drain::{DrainedRing, Taken};
use super::header::ring_index;
use crate::telemetry::{AppCounters, Counters, CountersSnapshot, LatencyHistogram, RingCounters};

/// The drain's own counts as the resource keeps them: the plugin's counters (the parts the
/// drain owns), the frame being drained, and the latencies sampled since the start.
#[derive(Debug)]
pub(crate) struct Counts {
    app: AppCounters,
    /// Messages taken in the current frame.
    frame_messages: u64,
    /// The largest payload taken in the current frame, in bytes.
    frame_largest: u64,
    /// Sampled latencies since the start, shared with the snapshots taken (a drain that
    /// records while a reader holds one copies it first).
    latency: Arc<LatencyHistogram>,
}

impl Counts {
    pub(crate) fn new() -> Self {
        Self {
            app: AppCounters::default(),
            frame_messages: 0,
            frame_largest: 0,
            latency: Arc::default(),
        }
    }

    /// Folds a drain's take in; with the budget spent (`full`), what is still waiting
    /// (`backlog()`) counts as deferred.
    pub(crate) fn close_drain(&mut self, taken: &Taken, full: bool, backlog: impl FnOnce() -> u64) {
        if !taken.latencies.is_empty() {
            let latency = Arc::make_mut(&mut self.latency);
            for ns in &taken.latencies {
                latency.record(*ns);
            }
        }
        self.frame_messages += taken.count as u64;
        self.frame_largest = self.frame_largest.max(taken.largest);
        if full {
            let left = backlog();
            self.app.deferred = left;
            if left > 0 {
                self.app.deferred_frames += 1;
            }
        } else {
            self.app.deferred = 0;
        }
    }

    /// Closes a frame's accounting (the drain's `close_frame` system, in `Last`).
    pub(crate) fn end_frame(&mut self) {
        self.app.frames += 1;
        self.app.max_frame = self.app.max_frame.max(self.frame_messages);
        self.app.frame_messages = core::mem::take(&mut self.frame_messages);
        self.app.frame_largest = core::mem::take(&mut self.frame_largest);
    }

    /// The snapshot of `rings` now, with the drain's counts and `app`'s other fields (the
    /// resource's: faults, warnings, skipped launches, held bytes).
    pub(crate) fn snapshot(&self, rings: &[DrainedRing], app: AppCounters) -> CountersSnapshot {
        CountersSnapshot {
            at_ns: crate::clock::now_ns(),
            rings: rings
                .iter()
                .enumerate()
                .map(|(idx, ring)| ring_counters(idx, ring))
                .collect(),
            app: AppCounters {
                frames: self.app.frames,
                deferred_frames: self.app.deferred_frames,
                deferred: self.app.deferred,
                max_frame: self.app.max_frame,
                frame_messages: self.app.frame_messages,
                frame_largest: self.app.frame_largest,
                ..app
            },
            latency: Arc::clone(&self.latency),
        }
    }

    /// The latencies sampled since the start.
    pub(crate) fn latency(&self) -> &LatencyHistogram {
        &self.latency
    }
}

/// Ring `idx`'s counters: its own (stalls, drops, corrupt slots, fill: a GPU ring's drops and
/// stalls are its kernels', the device counters), what the frame took of it, and the routing's.
fn ring_counters(idx: usize, ring: &DrainedRing) -> RingCounters {
    let mut counters = Counters::from(ring.monitor.stats());
    counters.messages = ring.messages;
    counters.bytes = ring.bytes;
    counters.unrouted = ring.unrouted;
    counters.lost = ring.lost;
    counters.malformed = ring.malformed;
    RingCounters {
        ring: ring_index(idx),
        name: Arc::clone(&ring.name),
        device: ring.device,
        counters,
    }
}

/// Where each snapshot the rate history samples (~100 ms, in `close_frame`) also goes: an
/// exporter (the Prometheus plugin), at no cost to the frames in between.
#[derive(Default)]
pub(crate) struct CountersSink(Option<Box<dyn Fn(CountersSnapshot) + Send + Sync>>);

impl CountersSink {
    /// A sink that calls `sink`.
    #[cfg(feature = "prometheus")]
    pub(crate) fn new(sink: impl Fn(CountersSnapshot) + Send + Sync + 'static) -> Self {
        Self(Some(Box::new(sink)))
    }

    /// Hands `snapshot` to the sink, if there is one.
    pub(crate) fn send(&self, snapshot: CountersSnapshot) {
        if let Some(sink) = &self.0 {
            sink(snapshot);
        }
    }
}

impl std::fmt::Debug for CountersSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "CountersSink(set)"
        } else {
            "CountersSink(none)"
        })
    }
}

//! What the drain counted: [`DrainStats`] over all rings (kept, with the frame's count and the
//! latency window, as [`Counts`]), [`DeviceTotals`] per CUDA device, and the totals the
//! telemetry samples.
#![forbid(unsafe_code)]

use super::drain::{DrainedRing, Taken};
use crate::telemetry::{LatencyHistogram, Totals};

/// Cumulative counts of the drain, over all rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DrainStats {
    /// Frames the drain ran.
    pub frames: u64,
    /// Messages taken out of the rings (routed, raw, unrouted, malformed or via
    /// [`PerdixRings::drain_with`](super::PerdixRings::drain_with)).
    pub messages: u64,
    /// Payload bytes taken out of the rings.
    pub bytes: u64,
    /// Messages of a kind nobody registered (delivered as raw
    /// [`PerdixMessage`](super::PerdixMessage)).
    pub unrouted: u64,
    /// Messages of a registered kind whose length did not match the type (dropped).
    pub malformed: u64,
    /// Frames that used their whole budget and left ready messages in the rings.
    pub deferred_frames: u64,
    /// Ready messages left behind at the end of the latest frame (0 unless the budget ran out).
    pub deferred: u64,
    /// Most messages taken in one frame.
    pub max_frame: u64,
}

/// What the drain took from one CUDA device's rings
/// ([`PerdixRings::device_totals`](super::PerdixRings::device_totals)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceTotals {
    /// Device ordinal.
    pub device: u32,
    /// Rings of this device.
    pub rings: usize,
    /// Messages taken out of them.
    pub messages: u64,
    /// Payload bytes taken out of them.
    pub bytes: u64,
    /// Messages its kernels dropped (`DropNewest`, `perdix_try_emit`): the rings' device
    /// counters.
    pub drops: u64,
    /// Times its kernels found a ring full and waited (`Block`): the rings' device counters.
    pub stalls: u64,
}

/// The drain's counts as the resource keeps them: the cumulative stats (messages and bytes are
/// the rings' own counts, summed when read), this frame's messages, the latency window.
#[derive(Debug)]
pub(crate) struct Counts {
    stats: DrainStats,
    /// Messages taken in the current frame (reset by the diagnostics system).
    frame_messages: u64,
    /// Latencies since the last diagnostics sample.
    window: LatencyHistogram,
    /// The largest payload taken since the last diagnostics sample, in bytes.
    window_largest: u64,
}

impl Counts {
    pub(crate) fn new() -> Self {
        Self {
            stats: DrainStats::default(),
            frame_messages: 0,
            window: LatencyHistogram::new(),
            window_largest: 0,
        }
    }

    /// The cumulative counts, with the messages and bytes of `rings`.
    pub(crate) fn stats(&self, rings: &[DrainedRing]) -> DrainStats {
        DrainStats {
            messages: rings.iter().map(|ring| ring.messages).sum(),
            bytes: rings.iter().map(|ring| ring.bytes).sum(),
            ..self.stats
        }
    }

    /// Folds a drain's take in; with the budget spent (`full`), what is still waiting
    /// (`backlog()`) counts as deferred.
    pub(crate) fn close_drain(&mut self, taken: &Taken, full: bool, backlog: impl FnOnce() -> u64) {
        for ns in &taken.latencies {
            self.window.record(*ns);
        }
        self.frame_messages += taken.count as u64;
        self.window_largest = self.window_largest.max(taken.largest);
        if full {
            let left = backlog();
            self.stats.deferred = left;
            if left > 0 {
                self.stats.deferred_frames += 1;
            }
        } else {
            self.stats.deferred = 0;
        }
    }

    /// Adds the routing counts of a frame.
    pub(crate) fn count_routing(&mut self, unrouted: u64, malformed: u64) {
        self.stats.unrouted += unrouted;
        self.stats.malformed += malformed;
    }

    /// Closes a frame's accounting.
    pub(crate) fn end_frame(&mut self) {
        self.stats.frames += 1;
        self.stats.max_frame = self.stats.max_frame.max(self.frame_messages);
        self.frame_messages = 0;
    }

    /// The latencies and the largest payload since the last call (the window starts anew).
    pub(crate) fn take_window(&mut self) -> (LatencyHistogram, u64) {
        (
            core::mem::take(&mut self.window),
            core::mem::take(&mut self.window_largest),
        )
    }
}

/// Messages and bytes taken so far, drops and stalls counted so far, per CUDA device, ordered
/// by device (rings of no device are left out).
pub(crate) fn device_totals(rings: &[DrainedRing]) -> Vec<DeviceTotals> {
    let mut totals: Vec<DeviceTotals> = Vec::new();
    for ring in rings {
        let Some(device) = ring.device else { continue };
        let entry = match totals.iter().position(|t| t.device == device) {
            Some(idx) => &mut totals[idx],
            None => {
                totals.push(DeviceTotals {
                    device,
                    ..DeviceTotals::default()
                });
                let last = totals.len() - 1;
                &mut totals[last]
            }
        };
        let counted = ring.monitor.stats();
        entry.rings += 1;
        entry.messages += ring.messages;
        entry.bytes += ring.bytes;
        entry.drops = entry.drops.saturating_add(counted.drops);
        entry.stalls = entry.stalls.saturating_add(counted.full_events);
    }
    totals.sort_by_key(|t| t.device);
    totals
}

/// Totals over every ring now (for the telemetry), from the drain's `stats`.
pub(crate) fn totals(stats: DrainStats, rings: &[DrainedRing]) -> Totals {
    let mut totals = Totals {
        messages: stats.messages,
        bytes: stats.bytes,
        unrouted: stats.unrouted,
        ..Totals::default()
    };
    for drained in rings {
        // A GPU ring's drops and stalls are its kernels' (the device counters, in the ring's
        // stats), a host ring's its producer's.
        let ring = drained.monitor.stats();
        totals.stalls = totals.stalls.saturating_add(ring.full_events);
        totals.drops = totals.drops.saturating_add(ring.drops);
        // The ring's own fill: batches a drain thread already holds are not in the ring (they
        // are backlog, reported as deferred), and counting them read as fills above 100 %.
        totals.occupancy += ring.occupancy().min(ring.capacity);
        totals.capacity += ring.capacity;
    }
    totals
}

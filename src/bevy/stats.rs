//! What the drain counted: [`DrainStats`] over all rings, [`DeviceTotals`] per CUDA device, and
//! the totals the telemetry samples.
#![forbid(unsafe_code)]

use super::drain::DrainedRing;
use crate::telemetry::Totals;

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
}

/// Messages and bytes taken so far per CUDA device, ordered by device (rings of no device are
/// left out).
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
        entry.rings += 1;
        entry.messages += ring.messages;
        entry.bytes += ring.bytes;
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
        let ring = drained.monitor.stats();
        totals.stalls += ring.full_events;
        totals.drops += ring.drops;
        // The ring's own fill: batches a drain thread already holds are not in the ring (they
        // are backlog, reported as deferred), and counting them read as fills above 100 %.
        totals.occupancy += ring.occupancy().min(ring.capacity);
        totals.capacity += ring.capacity;
    }
    totals
}

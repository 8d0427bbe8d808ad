//! One set of counters, one vocabulary: [`Counters`] (of a ring, of a device, or summed),
//! [`RingCounters`] and [`DeviceCounters`] (whose counters they are), [`AppCounters`] (what the
//! Bevy plugin counts beyond its rings), and [`CountersSnapshot`]: all of it at one moment.
//!
//! Every count is monotonic; the gauges (`occupancy`, `capacity`, `held_bytes`, `deferred`,
//! the latest frame's) say so. A snapshot is a copy: any number of readers take their own, and
//! rates, windows and plots come from two snapshots apart in time (the `perdix/*`
//! diagnostics, [`Telemetry`](super::Telemetry), the dashboard and the exporters all do).
#![forbid(unsafe_code)]

use std::sync::Arc;

use super::latency::LatencyHistogram;
use crate::RingStats;

/// The counters of one ring, one device's rings, or all of them.
///
/// # Examples
///
/// ```
/// use perdix_transport::telemetry::Counters;
/// use perdix_transport::Buffer;
///
/// let (mut producer, mut consumer) = Buffer::new(8)?.into_split();
/// producer.try_produce(b"four")?;
/// producer.try_produce(b"six!!!")?;
/// consumer.drain(1, |_| {});
/// let counters = Counters::from(consumer.stats());
/// assert_eq!((counters.messages, counters.bytes, counters.occupancy), (1, 4, 1));
/// # Ok::<(), perdix_transport::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Messages taken out of the ring(s) by their consumer (`perdix_messages_total`); in the
    /// Bevy plugin, taken by the frame (a drain thread's batches count once the frame takes
    /// them).
    pub messages: u64,
    /// Payload bytes of those messages.
    pub bytes: u64,
    /// Times a producer found its ring full: it waited (`Block`) or was refused (`try_*`),
    /// CPU producers and GPU warps alike (a GPU ring's device counter).
    pub stalls: u64,
    /// Messages a producer dropped because its ring was full (`DropNewest`,
    /// `perdix_try_emit`).
    pub drops: u64,
    /// Corrupt slots found (each fails its ring).
    pub corrupt: u64,
    /// Messages lost before they reached the ring: a remote stream's gaps, counted exactly
    /// from its batch numbers and message indexes (`zenoh` feature; 0 for a local ring).
    pub lost: u64,
    /// Messages of a kind no route takes (the Bevy plugin; delivered raw).
    pub unrouted: u64,
    /// Messages of a routed kind whose length does not fit its type (the Bevy plugin;
    /// dropped).
    pub malformed: u64,
    /// Gauge: slots published and not yet taken, now (at most `capacity`).
    pub occupancy: u64,
    /// Gauge: slots.
    pub capacity: u64,
}

impl Counters {
    /// Adds `other`, saturating (a GPU ring's counts are words its kernels wrote).
    pub fn add(&mut self, other: &Self) {
        let add = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        add(&mut self.messages, other.messages);
        add(&mut self.bytes, other.bytes);
        add(&mut self.stalls, other.stalls);
        add(&mut self.drops, other.drops);
        add(&mut self.corrupt, other.corrupt);
        add(&mut self.lost, other.lost);
        add(&mut self.unrouted, other.unrouted);
        add(&mut self.malformed, other.malformed);
        add(&mut self.occupancy, other.occupancy);
        add(&mut self.capacity, other.capacity);
    }

    /// The fill, 0.0..=1.0 (0 with no capacity).
    #[must_use]
    pub fn fill(&self) -> f64 {
        if self.capacity == 0 {
            0.0
        } else {
            (self.occupancy as f64 / self.capacity as f64).clamp(0.0, 1.0)
        }
    }
}

impl From<RingStats> for Counters {
    /// A ring's counters from its stats (`lost`, `unrouted` and `malformed` are the plugin's:
    /// 0).
    fn from(stats: RingStats) -> Self {
        Self {
            messages: stats.messages,
            bytes: stats.bytes,
            stalls: stats.stalls,
            drops: stats.drops,
            corrupt: stats.corrupt,
            lost: 0,
            unrouted: 0,
            malformed: 0,
            occupancy: stats.occupancy().min(stats.capacity),
            capacity: stats.capacity,
        }
    }
}

/// One ring's counters, with what names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingCounters {
    /// The ring's index (the `ring` of a delivered message's header).
    pub ring: u32,
    /// The name it was added with.
    pub name: Arc<str>,
    /// The CUDA device that writes it, if any.
    pub device: Option<u32>,
    /// Its counters.
    pub counters: Counters,
}

/// One CUDA device's rings, summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceCounters {
    /// Device ordinal.
    pub device: u32,
    /// Rings it writes.
    pub rings: u32,
    /// Their counters, summed.
    pub counters: Counters,
}

/// What the Bevy plugin counts beyond its rings (all zero outside it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AppCounters {
    /// Frames the drain closed.
    pub frames: u64,
    /// Frames that spent the whole budget and left ready messages in the rings.
    pub deferred_frames: u64,
    /// Gauge: ready messages the budget left behind at the end of the latest drain.
    pub deferred: u64,
    /// Most messages taken in one frame.
    pub max_frame: u64,
    /// Gauge: messages taken in the latest closed frame.
    pub frame_messages: u64,
    /// Gauge: the largest payload taken in the latest closed frame, bytes.
    pub frame_largest: u64,
    /// Gauge: bytes the plugin holds outside its rings.
    pub held_bytes: u64,
    /// Faults reported (`PerdixEvent`s that are faults).
    pub errors: u64,
    /// Warnings reported (`PerdixEvent`s that are not).
    pub warnings: u64,
    /// Launches skipped because a producer's previous launch still ran.
    pub launches_skipped: u64,
}

/// Every ring's counters, the plugin's, and the latency histogram, at one moment.
///
/// # Examples
///
/// A plain consumer's snapshot (the Bevy plugin's is `PerdixRings::counters()`):
///
/// ```
/// use perdix_transport::telemetry::{CountersSnapshot, RingCounters};
/// use perdix_transport::Buffer;
///
/// let (mut producer, mut consumer) = Buffer::new(8)?.into_split();
/// producer.try_produce(b"hi")?;
/// consumer.drain(8, |_| {});
/// let snapshot = CountersSnapshot::of_rings([RingCounters {
///     ring: 0,
///     name: "cpu".into(),
///     device: None,
///     counters: consumer.stats().into(),
/// }]);
/// assert_eq!(snapshot.total().messages, 1);
/// # Ok::<(), perdix_transport::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct CountersSnapshot {
    /// When it was taken, on [`clock::now_ns`](crate::clock::now_ns)'s scale (0: not stamped;
    /// `PerdixRings::counters()` stamps its snapshots, [`of_rings`](Self::of_rings) does not).
    pub at_ns: u64,
    /// Each ring's counters, by index.
    pub rings: Vec<RingCounters>,
    /// The plugin's.
    pub app: AppCounters,
    /// One-way latencies (producer stamp to the consumer taking the message) of the sampled
    /// messages since the start: cumulative, like every count (a window is
    /// [`LatencyHistogram::since`] an earlier snapshot's). Shared, not copied, by snapshots.
    pub latency: Arc<LatencyHistogram>,
}

impl CountersSnapshot {
    /// A snapshot of `rings`, with no plugin counts, no latencies and no stamp (`at_ns` 0:
    /// set it if rates are taken from it). The telemetry layer reads no clock.
    #[must_use]
    pub fn of_rings(rings: impl IntoIterator<Item = RingCounters>) -> Self {
        Self {
            rings: rings.into_iter().collect(),
            ..Self::default()
        }
    }

    /// Every ring's counters, summed.
    #[must_use]
    pub fn total(&self) -> Counters {
        let mut total = Counters::default();
        for ring in &self.rings {
            total.add(&ring.counters);
        }
        total
    }

    /// Each CUDA device's rings, summed, ordered by device (rings of no device left out).
    #[must_use]
    pub fn devices(&self) -> Vec<DeviceCounters> {
        let mut devices: Vec<DeviceCounters> = Vec::new();
        for ring in &self.rings {
            let Some(device) = ring.device else { continue };
            let at = match devices.iter().position(|d| d.device == device) {
                Some(at) => at,
                None => {
                    devices.push(DeviceCounters {
                        device,
                        ..DeviceCounters::default()
                    });
                    devices.len() - 1
                }
            };
            devices[at].rings += 1;
            devices[at].counters.add(&ring.counters);
        }
        devices.sort_by_key(|d| d.device);
        devices
    }
}

#[cfg(test)]
mod tests {
    use super::{Counters, CountersSnapshot, RingCounters};

    fn ring(ring: u32, device: Option<u32>, messages: u64) -> RingCounters {
        RingCounters {
            ring,
            name: format!("r{ring}").into(),
            device,
            counters: Counters {
                messages,
                capacity: 8,
                ..Counters::default()
            },
        }
    }

    #[test]
    fn totals_and_devices_sum_the_rings() {
        let snapshot = CountersSnapshot::of_rings([
            ring(0, Some(1), 5),
            ring(1, None, 7),
            ring(2, Some(1), 9),
        ]);
        assert_eq!(snapshot.total().messages, 21);
        assert_eq!(snapshot.total().capacity, 24);
        let devices = snapshot.devices();
        assert_eq!(devices.len(), 1);
        assert_eq!((devices[0].device, devices[0].rings), (1, 2));
        assert_eq!(devices[0].counters.messages, 14);
    }

    #[test]
    fn sums_saturate() {
        let mut a = Counters {
            drops: u64::MAX,
            ..Counters::default()
        };
        a.add(&a.clone());
        assert_eq!(a.drops, u64::MAX);
    }
}

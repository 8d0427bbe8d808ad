//! Counters, rates and a latency histogram, shared by the bins, the Bevy plugin, the dashboard
//! and the exporters.
//!
//! [`Counters`] is the one vocabulary of what a transport counted (messages, bytes, stalls,
//! drops, corrupt, unrouted, malformed; occupancy and capacity as gauges), per ring
//! ([`RingCounters`]), per device ([`DeviceCounters`]) or summed; a [`CountersSnapshot`] holds
//! every ring's at one moment with the plugin's own ([`AppCounters`]) and the cumulative
//! [`LatencyHistogram`] (3 significant digits, 1 ns to 100 s). Everything else derives from
//! snapshots: a [`Telemetry`] recorder turns two of them into per-second rates kept over a
//! bounded history, and [`TelemetrySnapshot`] is a plain copy of that for display.
#![forbid(unsafe_code)]

mod counters;
mod latency;
mod recorder;

pub use counters::{AppCounters, Counters, CountersSnapshot, DeviceCounters, RingCounters};
pub use latency::{LatencyBucket, LatencyHistogram, LatencySummary};
pub use recorder::{Sample, Telemetry, TelemetrySnapshot};

//! A [`CountersSnapshot`] in the Prometheus text format: [`PerdixCollector`], a
//! prometheus-client [`Collector`] over whatever snapshot its source returns at scrape time, and
//! [`encode_text`] for one snapshot.
//!
//! The snapshot's values are already cumulative, so they are exported as they are
//! (`ConstCounter`, `ConstGauge`, a histogram from the cumulative [`LatencyHistogram`]): nothing
//! is incremented here, and any number of scrapes read the same counts.
#![forbid(unsafe_code)]

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::telemetry::{AppCounters, Counters, CountersSnapshot, LatencyHistogram};

/// The `Content-Type` of [`encode_text`]'s output (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds of `perdix_latency_seconds`' buckets, in ns: 1 µs to 10 s, 1-2.5-5 per decade
/// (22 buckets and `+Inf`, for every scrape: low cardinality, and rates of buckets add up
/// across restarts).
pub const LATENCY_BUCKETS_NS: [u64; 22] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Where a [`PerdixCollector`] gets the snapshot it encodes, at each scrape.
type Source = Box<dyn Fn() -> Arc<CountersSnapshot> + Send + Sync>;

/// A prometheus-client [`Collector`] of perdix's counters: at each scrape it asks its source
/// for a [`CountersSnapshot`] and encodes every counter, gauge and the latency histogram (the
/// README's table lists them).
///
/// Ring metrics carry two labels: `ring` (the ring's name, escaped by prometheus-client) and
/// `device` (`cpu`, or `gpu<N>` for CUDA device N). Rings with the same name and device are
/// one series (their counts summed: a scrape never repeats a series). Per-device totals are a
/// query away (`sum by (device) (perdix_messages_total)`), so they are not exported twice. There
/// is no `kind` label: the snapshot does not count per kind. The app-level metrics are the Bevy
/// plugin's ([`AppCounters`]) and stay 0 outside it; the latency histogram has no labels (the
/// snapshot samples one histogram for all rings).
///
/// Register it in your own [`Registry`] to serve perdix's metrics beside yours;
/// [`MetricsServer`](super::MetricsServer) does that for you.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use perdix_transport::export::PerdixCollector;
/// use perdix_transport::telemetry::CountersSnapshot;
/// use prometheus_client::registry::Registry;
///
/// let mut registry = Registry::default();
/// registry.register_collector(Box::new(PerdixCollector::new(|| {
///     Arc::new(CountersSnapshot::default())
/// })));
/// let mut text = String::new();
/// prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
/// assert!(text.contains("# TYPE perdix_latency_seconds histogram"));
/// # Ok::<(), std::fmt::Error>(())
/// ```
pub struct PerdixCollector {
    source: Source,
}

impl PerdixCollector {
    /// A collector that encodes what `source` returns, called once per scrape (on the
    /// scraping thread: keep it short).
    #[must_use]
    pub fn new(source: impl Fn() -> Arc<CountersSnapshot> + Send + Sync + 'static) -> Self {
        Self {
            source: Box::new(source),
        }
    }
}

impl fmt::Debug for PerdixCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PerdixCollector").finish_non_exhaustive()
    }
}

impl Collector for PerdixCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> fmt::Result {
        encode_snapshot(&(self.source)(), encoder)
    }
}

/// `snapshot` in the Prometheus text format (version 0.0.4, [`CONTENT_TYPE`]).
///
/// # Errors
///
/// [`fmt::Error`] if prometheus-client refuses to encode (it does not for these metric names
/// and any label value).
///
/// # Examples
///
/// ```
/// use perdix_transport::export::encode_text;
/// use perdix_transport::telemetry::{Counters, CountersSnapshot, RingCounters};
///
/// let snapshot = CountersSnapshot::of_rings([RingCounters {
///     ring: 0,
///     name: "say \"hi\"".into(),
///     device: Some(1),
///     counters: Counters { messages: 3, ..Counters::default() },
/// }]);
/// let text = encode_text(&snapshot)?;
/// assert!(text.contains("perdix_messages_total{ring=\"say \\\"hi\\\"\",device=\"gpu1\"} 3\n"));
/// # Ok::<(), std::fmt::Error>(())
/// ```
pub fn encode_text(snapshot: &CountersSnapshot) -> Result<String, fmt::Error> {
    let snapshot = Arc::new(snapshot.clone());
    let mut registry = Registry::default();
    registry.register_collector(Box::new(PerdixCollector::new(move || snapshot.clone())));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
    Ok(text)
}

/// One series of ring metrics: a ring's name and device, and the counters of every ring that
/// has both.
struct Series<'a> {
    name: &'a str,
    device: String,
    counters: Counters,
}

/// The rings of `snapshot` as series, in ring order, rings of one name and device summed.
fn series(snapshot: &CountersSnapshot) -> Vec<Series<'_>> {
    let mut series: Vec<Series<'_>> = Vec::with_capacity(snapshot.rings.len());
    for ring in &snapshot.rings {
        let device = match ring.device {
            Some(n) => format!("gpu{n}"),
            None => "cpu".to_owned(),
        };
        match series
            .iter_mut()
            .find(|s| s.name == &*ring.name && s.device == device)
        {
            Some(same) => same.counters.add(&ring.counters),
            None => series.push(Series {
                name: &ring.name,
                device,
                counters: ring.counters,
            }),
        }
    }
    series
}

/// A metric of `T`: its name, help and value.
type Metric<T> = (&'static str, &'static str, fn(&T) -> u64);

/// Ring counters (`_total` is added by the encoder).
const RING_COUNTERS: [Metric<Counters>; 8] = [
    (
        "perdix_messages",
        "Messages taken out of the ring by its consumer.",
        |c| c.messages,
    ),
    ("perdix_bytes", "Payload bytes of those messages.", |c| {
        c.bytes
    }),
    (
        "perdix_stalls",
        "Times a producer found the ring full (waited or was refused).",
        |c| c.stalls,
    ),
    (
        "perdix_drops",
        "Messages a producer dropped because the ring was full.",
        |c| c.drops,
    ),
    (
        "perdix_corrupt",
        "Corrupt slots found (each fails its ring).",
        |c| c.corrupt,
    ),
    (
        "perdix_lost",
        "Messages lost before they reached the ring (a remote stream's gaps).",
        |c| c.lost,
    ),
    (
        "perdix_unrouted",
        "Messages of a kind no route takes (Bevy plugin; delivered raw).",
        |c| c.unrouted,
    ),
    (
        "perdix_malformed",
        "Messages whose length does not fit their routed type (Bevy plugin; dropped).",
        |c| c.malformed,
    ),
];

/// Ring gauges.
const RING_GAUGES: [Metric<Counters>; 2] = [
    (
        "perdix_ring_occupancy_slots",
        "Slots published and not yet taken, now.",
        |c| c.occupancy,
    ),
    ("perdix_ring_capacity_slots", "Slots in the ring.", |c| {
        c.capacity
    }),
];

/// The Bevy plugin's counters (`_total` added by the encoder).
const APP_COUNTERS: [Metric<AppCounters>; 5] = [
    ("perdix_frames", "Frames the plugin's drain closed.", |a| {
        a.frames
    }),
    (
        "perdix_deferred_frames",
        "Frames that spent the whole budget and left ready messages in the rings.",
        |a| a.deferred_frames,
    ),
    ("perdix_errors", "Faults the plugin reported.", |a| a.errors),
    ("perdix_warnings", "Warnings the plugin reported.", |a| {
        a.warnings
    }),
    (
        "perdix_launches_skipped",
        "Launches skipped because a producer's previous launch still ran.",
        |a| a.launches_skipped,
    ),
];

/// The Bevy plugin's gauges.
const APP_GAUGES: [Metric<AppCounters>; 5] = [
    (
        "perdix_deferred_messages",
        "Ready messages the budget left in the rings at the end of the latest drain.",
        |a| a.deferred,
    ),
    (
        "perdix_held_bytes",
        "Bytes the plugin holds outside its rings.",
        |a| a.held_bytes,
    ),
    (
        "perdix_frame_messages",
        "Messages taken in the latest closed frame.",
        |a| a.frame_messages,
    ),
    (
        "perdix_frame_max_messages",
        "Most messages taken in one frame so far.",
        |a| a.max_frame,
    ),
    (
        "perdix_frame_largest_bytes",
        "Largest payload taken in the latest closed frame.",
        |a| a.frame_largest,
    ),
];

/// Every metric of `snapshot`, in the order of the README's table.
fn encode_snapshot(snapshot: &CountersSnapshot, mut encoder: DescriptorEncoder) -> fmt::Result {
    let series = series(snapshot);
    for (name, help, field) in RING_COUNTERS {
        let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for s in &series {
            let labels = [("ring", s.name), ("device", s.device.as_str())];
            ConstCounter::new(field(&s.counters)).encode(metric.encode_family(&labels)?)?;
        }
    }
    for (name, help, field) in RING_GAUGES {
        let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for s in &series {
            let labels = [("ring", s.name), ("device", s.device.as_str())];
            ConstGauge::new(field(&s.counters)).encode(metric.encode_family(&labels)?)?;
        }
    }
    for (name, help, field) in APP_COUNTERS {
        let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        ConstCounter::new(field(&snapshot.app)).encode(metric)?;
    }
    for (name, help, field) in APP_GAUGES {
        let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        ConstGauge::new(field(&snapshot.app)).encode(metric)?;
    }
    let (sum, count, buckets) = latency_buckets(&snapshot.latency);
    encoder
        .encode_descriptor(
            "perdix_latency_seconds",
            "One-way latency of the sampled messages, producer stamp to consumer.",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
}

/// The histogram's sum in seconds, count, and each bucket's own count by upper bound in
/// seconds (the encoder accumulates them and adds `+Inf` with the count).
fn latency_buckets(hist: &LatencyHistogram) -> (f64, u64, Vec<(f64, u64)>) {
    let count = hist.len();
    let sum = hist.summary().mean_ns * count as f64 / 1e9;
    let mut below = 0;
    let buckets = LATENCY_BUCKETS_NS
        .iter()
        .zip(hist.counts_at_most(&LATENCY_BUCKETS_NS))
        .map(|(&ns, at_most)| {
            let own = at_most.saturating_sub(below);
            below = below.max(at_most);
            (ns as f64 / 1e9, own)
        })
        .collect();
    (sum, count, buckets)
}

#[cfg(test)]
mod tests;

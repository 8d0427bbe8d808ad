use std::sync::Arc;

use super::{encode_text, LATENCY_BUCKETS_NS};
use crate::telemetry::{AppCounters, Counters, CountersSnapshot, LatencyHistogram, RingCounters};

fn ring(ring: u32, name: &str, device: Option<u32>, messages: u64) -> RingCounters {
    RingCounters {
        ring,
        name: name.into(),
        device,
        counters: Counters {
            messages,
            bytes: messages * 10,
            stalls: 1,
            drops: 2,
            corrupt: 0,
            lost: 6,
            unrouted: 3,
            malformed: 4,
            occupancy: 5,
            capacity: 64,
        },
    }
}

fn snapshot(rings: Vec<RingCounters>, latencies: &[u64]) -> CountersSnapshot {
    let mut latency = LatencyHistogram::new();
    for &ns in latencies {
        latency.record(ns);
    }
    CountersSnapshot {
        at_ns: 1,
        rings,
        app: AppCounters {
            frames: 11,
            held_bytes: 4096,
            ..AppCounters::default()
        },
        latency: Arc::new(latency),
    }
}

/// The lines of `text` from the one starting with `from`, `n` of them.
fn section(text: &str, from: &str, n: usize) -> String {
    let start = text
        .find(from)
        .unwrap_or_else(|| panic!("no {from} in:\n{text}"));
    text[start..]
        .lines()
        .take(n)
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn ring_counters_are_labelled_by_ring_and_device_and_escaped() {
    let text = encode_text(&snapshot(
        vec![
            ring(0, "cpu", None, 7),
            ring(1, "gpu \"a\"\nb\\", Some(1), 9),
        ],
        &[],
    ))
    .unwrap();
    assert_eq!(
        section(&text, "# HELP perdix_messages_total", 6),
        "# HELP perdix_messages_total Messages taken out of the ring by its consumer.\n\
         # TYPE perdix_messages_total counter\n\
         perdix_messages_total{ring=\"cpu\",device=\"cpu\"} 7\n\
         perdix_messages_total{ring=\"gpu \\\"a\\\"\\nb\\\\\",device=\"gpu1\"} 9\n\
         # HELP perdix_bytes_total Payload bytes of those messages.\n\
         # TYPE perdix_bytes_total counter\n"
    );
    for series in [
        "perdix_bytes_total{ring=\"cpu\",device=\"cpu\"} 70\n",
        "perdix_stalls_total{ring=\"cpu\",device=\"cpu\"} 1\n",
        "perdix_drops_total{ring=\"cpu\",device=\"cpu\"} 2\n",
        "perdix_corrupt_total{ring=\"cpu\",device=\"cpu\"} 0\n",
        "perdix_lost_total{ring=\"cpu\",device=\"cpu\"} 6\n",
        "perdix_unrouted_total{ring=\"cpu\",device=\"cpu\"} 3\n",
        "perdix_malformed_total{ring=\"cpu\",device=\"cpu\"} 4\n",
        "# TYPE perdix_ring_occupancy_slots gauge\n",
        "perdix_ring_occupancy_slots{ring=\"cpu\",device=\"cpu\"} 5\n",
        "perdix_ring_capacity_slots{ring=\"cpu\",device=\"cpu\"} 64\n",
        "# TYPE perdix_frames_total counter\nperdix_frames_total 11\n",
        "# TYPE perdix_held_bytes gauge\nperdix_held_bytes 4096\n",
        "perdix_deferred_messages 0\n",
        "perdix_errors_total 0\n",
        "perdix_warnings_total 0\n",
        "perdix_launches_skipped_total 0\n",
    ] {
        assert!(text.contains(series), "no {series:?} in:\n{text}");
    }
}

#[test]
fn rings_of_one_name_and_device_are_one_series() {
    let text = encode_text(&snapshot(
        vec![
            ring(0, "p", None, 7),
            ring(1, "p", None, 9),
            ring(2, "p", Some(0), 1),
        ],
        &[],
    ))
    .unwrap();
    assert!(text.contains("perdix_messages_total{ring=\"p\",device=\"cpu\"} 16\n"));
    assert!(text.contains("perdix_messages_total{ring=\"p\",device=\"gpu0\"} 1\n"));
    assert!(text.contains("perdix_ring_capacity_slots{ring=\"p\",device=\"cpu\"} 128\n"));
    assert_eq!(text.matches("perdix_messages_total{").count(), 2);
}

/// The sum is the histogram's mean times its count: exact to its 3 significant digits (20 s
/// is kept as 20.0066 s).
#[test]
fn latency_is_a_cumulative_histogram_in_seconds() {
    let text = encode_text(&snapshot(vec![], &[1_500, 2_000_000, 20_000_000_000])).unwrap();
    assert_eq!(
        section(&text, "# TYPE perdix_latency_seconds", 27),
        "# TYPE perdix_latency_seconds histogram\n\
         perdix_latency_seconds_bucket{le=\"1e-06\"} 0\n\
         perdix_latency_seconds_bucket{le=\"2.5e-06\"} 1\n\
         perdix_latency_seconds_bucket{le=\"5e-06\"} 1\n\
         perdix_latency_seconds_bucket{le=\"1e-05\"} 1\n\
         perdix_latency_seconds_bucket{le=\"2.5e-05\"} 1\n\
         perdix_latency_seconds_bucket{le=\"5e-05\"} 1\n\
         perdix_latency_seconds_bucket{le=\"0.0001\"} 1\n\
         perdix_latency_seconds_bucket{le=\"0.00025\"} 1\n\
         perdix_latency_seconds_bucket{le=\"0.0005\"} 1\n\
         perdix_latency_seconds_bucket{le=\"0.001\"} 1\n\
         perdix_latency_seconds_bucket{le=\"0.0025\"} 2\n\
         perdix_latency_seconds_bucket{le=\"0.005\"} 2\n\
         perdix_latency_seconds_bucket{le=\"0.01\"} 2\n\
         perdix_latency_seconds_bucket{le=\"0.025\"} 2\n\
         perdix_latency_seconds_bucket{le=\"0.05\"} 2\n\
         perdix_latency_seconds_bucket{le=\"0.1\"} 2\n\
         perdix_latency_seconds_bucket{le=\"0.25\"} 2\n\
         perdix_latency_seconds_bucket{le=\"0.5\"} 2\n\
         perdix_latency_seconds_bucket{le=\"1\"} 2\n\
         perdix_latency_seconds_bucket{le=\"2.5\"} 2\n\
         perdix_latency_seconds_bucket{le=\"5\"} 2\n\
         perdix_latency_seconds_bucket{le=\"10\"} 2\n\
         perdix_latency_seconds_bucket{le=\"+Inf\"} 3\n\
         perdix_latency_seconds_sum 20.008831964\n\
         perdix_latency_seconds_count 3\n"
    );
}

#[test]
fn latency_buckets_never_decrease_and_end_at_the_count() {
    let latencies: Vec<u64> = (0..2_000u64).map(|i| 1 + i * i * 7_919).collect();
    let text = encode_text(&snapshot(vec![], &latencies)).unwrap();
    let counts: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("perdix_latency_seconds_bucket"))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(counts.len(), LATENCY_BUCKETS_NS.len() + 1);
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    assert_eq!(counts.last(), Some(&2_000));
}

#[test]
fn an_empty_snapshot_has_every_family_and_no_series() {
    let text = encode_text(&CountersSnapshot::default()).unwrap();
    assert_eq!(text.matches("# TYPE ").count(), 8 + 2 + 5 + 5 + 1);
    assert!(!text.contains("perdix_messages_total{"));
    assert!(text.contains("perdix_latency_seconds_bucket{le=\"+Inf\"} 0\n"));
    assert!(text.contains("perdix_latency_seconds_count 0\n"));
}

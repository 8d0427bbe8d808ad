//! The samples the panel plots: non-finite values zeroed, long histories decimated.

use crate::telemetry::Sample;

/// Most points per plotted series: longer histories are reduced to a min/max envelope, which
/// keeps spikes visible and bounds the panel's cost per frame (see `benches/dashboard_panel.rs`).
pub(super) const MAX_POINTS: usize = 240;

/// `[t - now, value]` points of `history`, at most `max_points` (≥ 2) of them: when there are
/// more samples, each run of consecutive samples contributes its minimum and its maximum, in
/// time order.
pub(super) fn decimate(
    history: &[Sample],
    max_points: usize,
    now: f64,
    value: impl Fn(&Sample) -> f64,
) -> Vec<[f64; 2]> {
    let point = |s: &Sample| [s.t_s - now, value(s)];
    let max_points = max_points.max(2);
    if history.len() <= max_points {
        return history.iter().map(point).collect();
    }
    let per_bucket = history.len().div_ceil(max_points / 2);
    let mut out = Vec::with_capacity(max_points);
    for bucket in history.chunks(per_bucket) {
        let (mut lo, mut hi) = (0, 0);
        for (i, s) in bucket.iter().enumerate() {
            if value(s) < value(&bucket[lo]) {
                lo = i;
            }
            if value(s) > value(&bucket[hi]) {
                hi = i;
            }
        }
        let (a, b) = (lo.min(hi), lo.max(hi));
        out.push(point(&bucket[a]));
        if b != a {
            out.push(point(&bucket[b]));
        }
    }
    out
}

/// `v`, or 0 when it is NaN or infinite.
pub(super) fn finite(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

/// A sample with every non-finite field zeroed and occupancy clamped to 0..=1.
pub(super) fn sanitize(s: Sample) -> Sample {
    Sample {
        t_s: finite(s.t_s),
        msgs_per_sec: finite(s.msgs_per_sec).max(0.0),
        bytes_per_sec: finite(s.bytes_per_sec).max(0.0),
        occupancy: finite(s.occupancy).clamp(0.0, 1.0),
        stalls_per_sec: finite(s.stalls_per_sec).max(0.0),
        drops_per_sec: finite(s.drops_per_sec).max(0.0),
        unrouted_per_sec: finite(s.unrouted_per_sec).max(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimate_keeps_envelope_and_order() {
        let history: Vec<Sample> = (0..600)
            .map(|i| Sample {
                t_s: f64::from(i) / 10.0,
                msgs_per_sec: if i == 301 { 1e9 } else { f64::from(i % 7) },
                ..Sample::default()
            })
            .collect();
        let points = decimate(&history, 240, 59.9, |s| s.msgs_per_sec);
        assert!(points.len() <= 240, "{} points", points.len());
        assert!(
            points.windows(2).all(|w| w[0][0] <= w[1][0]),
            "not in time order"
        );
        assert!(points.iter().any(|p| p[1] == 1e9), "spike lost");
        assert!((points[0][0] + 59.9).abs() < 1e-9);
        // Short histories pass through untouched.
        assert_eq!(decimate(&history[..10], 240, 0.0, |s| s.t_s).len(), 10);
        assert!(decimate(&[], 240, 0.0, |s| s.t_s).is_empty());
    }

    #[test]
    fn sanitize_clamps() {
        let s = sanitize(Sample {
            t_s: f64::NAN,
            msgs_per_sec: f64::INFINITY,
            bytes_per_sec: -1.0,
            occupancy: 7.0,
            stalls_per_sec: f64::NEG_INFINITY,
            drops_per_sec: 1.0,
            unrouted_per_sec: 0.0,
        });
        assert_eq!(s.t_s, 0.0);
        assert_eq!(s.msgs_per_sec, 0.0);
        assert_eq!(s.bytes_per_sec, 0.0);
        assert_eq!(s.occupancy, 1.0);
        assert_eq!(s.stalls_per_sec, 0.0);
        assert_eq!(s.drops_per_sec, 1.0);
    }
}

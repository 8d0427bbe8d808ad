//! `ClockMapping`: a GPU→CPU clock mapping, and the least-squares fit through calibrations.

/// Tick of `%globaltimer` on recent GPUs, added to every error bound.
pub(super) const TIMER_TICK_NS: u64 = 32;

/// A GPU→CPU clock mapping: `cpu_ns = g + offset + (((g - g0) * slope) >> 32)`.
///
/// Made by [`calibrate`](crate::clock::calibrate) and installed into a producer with
/// [`GpuProducer::set_clock`](crate::cuda::GpuProducer::set_clock).
///
/// # Examples
///
/// ```
/// use perdix_transport::clock::ClockMapping;
///
/// // The CPU clock reads 1,000 ns ahead of the GPU's, and no drift is fitted.
/// let mapping = ClockMapping { offset: 1_000, g0: 5_000, ..ClockMapping::default() };
/// assert_eq!(mapping.to_cpu(6_000), 7_000);
/// assert_eq!(mapping.drift_ppm(), 0.0);
/// // A GPU reading before `g0` maps as well (the arithmetic wraps, never overflows).
/// assert_eq!(mapping.to_cpu(0), 1_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClockMapping {
    /// CPU ns minus GPU ns at `g0`.
    pub offset: i64,
    /// GPU ns the slope is anchored at.
    pub g0: u64,
    /// Drift of the CPU clock against the GPU's, in units of 2^-32 (0: none fitted).
    pub slope: i64,
    /// Bound on the mapping's error at `g0`, in ns (half the tightest round trip plus a tick).
    pub error_ns: u64,
    /// The tightest round trip seen, in ns.
    pub best_round_trip_ns: u64,
    /// RMS residual of the offsets around a fitted line, in ns (0 for a single calibration): the
    /// calibration's noise, on top of the `error_ns` bound.
    pub fit_rms_ns: u64,
}

impl ClockMapping {
    /// Maps a GPU `%globaltimer` reading onto the CPU clock.
    #[must_use]
    pub fn to_cpu(&self, g: u64) -> u64 {
        let dg = g.wrapping_sub(self.g0) as i64 as i128;
        let corr = ((dg * i128::from(self.slope)) >> 32) as i64;
        g.wrapping_add(self.offset as u64).wrapping_add(corr as u64)
    }

    /// The fitted drift in parts per million.
    #[must_use]
    pub fn drift_ppm(&self) -> f64 {
        self.slope as f64 / 4_294_967_296.0 * 1e6
    }
}

/// Least-squares line through the calibrations' offsets against `g`, from the points whose round
/// trip is within 25 % of the tightest; anchored at the newest point.
pub(super) fn fit(points: &[ClockMapping]) -> ClockMapping {
    let Some(newest) = points.last().copied() else {
        return ClockMapping::default();
    };
    let best = points
        .iter()
        .map(|p| p.best_round_trip_ns)
        .min()
        .unwrap_or(0);
    let good: Vec<&ClockMapping> = points
        .iter()
        .filter(|p| p.best_round_trip_ns <= best + best / 4)
        .collect();
    if good.len() < 2 {
        return newest;
    }
    let n = good.len() as f64;
    let gx = |p: &ClockMapping| p.g0.wrapping_sub(newest.g0) as i64 as f64;
    let oy = |p: &ClockMapping| p.offset.wrapping_sub(newest.offset) as f64;
    let mx = good.iter().map(|p| gx(p)).sum::<f64>() / n;
    let my = good.iter().map(|p| oy(p)).sum::<f64>() / n;
    let sxx: f64 = good.iter().map(|p| (gx(p) - mx).powi(2)).sum();
    let sxy: f64 = good.iter().map(|p| (gx(p) - mx) * (oy(p) - my)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let at_newest = my - slope * mx; // the fitted offset at g = newest.g0, relative to newest
    let rms = (good
        .iter()
        .map(|p| (oy(p) - (at_newest + slope * gx(p))).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    ClockMapping {
        offset: newest.offset.wrapping_add(at_newest.round() as i64),
        g0: newest.g0,
        slope: (slope * 4_294_967_296.0).round() as i64,
        error_ns: best.div_ceil(2) + TIMER_TICK_NS,
        best_round_trip_ns: best,
        fit_rms_ns: rms.round() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::{fit, ClockMapping};

    fn point(g: u64, offset: i64, rtt: u64) -> ClockMapping {
        ClockMapping {
            offset,
            g0: g,
            best_round_trip_ns: rtt,
            ..ClockMapping::default()
        }
    }

    #[test]
    fn fit_recovers_offset_and_drift_and_skips_loose_rounds() {
        // 20 ppm drift: the offset grows 20 ns per ms of GPU time.
        let mut points: Vec<ClockMapping> = (0..50u64)
            .map(|i| {
                point(
                    1_000_000_000 + i * 20_000_000,
                    5_000 + (i * 400) as i64,
                    2_000,
                )
            })
            .collect();
        points[10] = point(points[10].g0, 1_000_000, 9_000); // a loose round trip: ignored
        let m = fit(&points);
        assert!((m.drift_ppm() - 20.0).abs() < 0.01, "{}", m.drift_ppm());
        assert_eq!(m.g0, points[49].g0);
        assert!((m.offset - points[49].offset).abs() <= 1, "{m:?}");
        assert!(m.fit_rms_ns <= 1);
        assert_eq!(m.error_ns, 1_000 + 32);
        // The mapping predicts the last point's CPU time.
        let g = points[49].g0 + 1_000_000;
        let expected = g as i64 + points[49].offset + 20;
        assert!((m.to_cpu(g) as i64 - expected).abs() <= 1);
    }

    #[test]
    fn fit_of_one_point_is_that_point() {
        let p = point(42, 7, 2_000);
        assert_eq!(fit(&[p]), p);
        assert_eq!(fit(&[]), ClockMapping::default());
    }
}

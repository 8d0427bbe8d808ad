//! The GPU clock (`%globaltimer`) mapped onto [`now_ns`](crate::clock::now_ns), and the
//! CPU→GPU→CPU ping-pong that measures it.
//!
//! A probe kernel waits for the host to write a round number into pinned memory, answers with
//! its `%globaltimer` and the round number; the host timestamps its write (`t0`) and the moment it
//! sees the answer (`t1`). The GPU read its clock somewhere in `[t0, t1]`, so the midpoint maps it
//! with an error of at most `(t1 - t0) / 2` plus the timer's 32 ns tick; the tightest of many
//! rounds is kept. `%globaltimer` drifts against the CPU clock (~19 ppm measured on an H100), so
//! [`calibrate_drift`] measures twice and fits the slope; long runs should recalibrate.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cudarc::driver::{CudaFunction, CudaStream, LaunchConfig, PushKernelArg};

use super::block::ClockSetter;
use super::memory::{CudaPinned, DeviceMemory};
use super::producer::GpuProducer;
use super::{driver, module, GpuContext};
use crate::telemetry::LatencyHistogram;
use crate::{clock, Error, RingMemory};

/// Tick of `%globaltimer` on recent GPUs, added to every error bound.
const TIMER_TICK_NS: u64 = 32;

/// A GPU→CPU clock mapping: `cpu_ns = g + offset + (((g - g0) * slope) >> 32)`.
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

/// The probe kernel with its pinned cells and stream, made once and reused: allocating and
/// freeing pinned memory while other kernels run can synchronize with them.
struct Prober {
    gpu: GpuContext,
    func: CudaFunction,
    cells: CudaPinned,
    stream: Arc<CudaStream>,
}

impl Prober {
    fn new(gpu: &GpuContext) -> Result<Self, Error> {
        let arch = gpu.arch();
        let key = module::cache_key(module::PROBE_CU, &arch);
        let func = gpu.function(
            key,
            || module::compile_ptx(module::PROBE_CU, "probe.cu", &arch),
            "perdix_clock_probe",
        )?;
        Ok(Self {
            gpu: gpu.clone(),
            func,
            cells: CudaPinned::alloc(gpu, 4096)?,
            stream: gpu.new_stream()?,
        })
    }

    /// Runs the probe kernel for `rounds` rounds, calling `on_round(t0, t1, g)` for each.
    fn run(&self, rounds: u32, mut on_round: impl FnMut(u64, u64, u64)) -> Result<(), Error> {
        let base = self.cells.as_ptr().as_ptr().cast::<u64>();
        // SAFETY: `base` is page-aligned pinned memory of 4096 bytes owned by `cells`, which
        // outlives every use below; the probe kernel touches these words only with 64-bit
        // accesses, and no other probe runs on these cells (`&self` runs are sequential: the
        // stream is synchronized before `run` returns).
        let (req, resp, stamp) = unsafe {
            (
                AtomicU64::from_ptr(base),
                AtomicU64::from_ptr(base.add(1)),
                AtomicU64::from_ptr(base.add(2)),
            )
        };
        req.store(0, Ordering::Relaxed);
        resp.store(0, Ordering::Relaxed);
        stamp.store(0, Ordering::Relaxed);
        let dptr: u64 = self.cells.device_ptr();
        let timeout_ns: u64 = 2_000_000_000;
        let mut builder = self.stream.launch_builder(&self.func);
        builder.arg(&dptr).arg(&rounds).arg(&timeout_ns);
        let cfg = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (1, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: `perdix_clock_probe(u64* cells, unsigned rounds, unsigned long long timeout)`
        // takes exactly these arguments; `cells` outlives the kernel (we synchronize the stream
        // below, and the kernel gives up after `timeout_ns` without a request).
        unsafe { builder.launch(cfg) }.map_err(driver::classify)?;
        let mut outcome = Ok(());
        for round in 1..=u64::from(rounds) {
            let t0 = clock::now_ns();
            // Release: pairs with the kernel's `ld.relaxed.sys` poll (nothing else to publish).
            req.store(round, Ordering::Release);
            let started = Instant::now();
            // Acquire: pairs with the kernel's system fence before it stores the round number,
            // so `stamp` below is this round's.
            while resp.load(Ordering::Acquire) != round {
                if started.elapsed() > Duration::from_secs(2) {
                    outcome = Err(Error::Driver(cudarc::driver::DriverError(
                        cudarc::driver::sys::cudaError_enum::CUDA_ERROR_LAUNCH_TIMEOUT,
                    )));
                    break;
                }
                core::hint::spin_loop();
            }
            if outcome.is_err() {
                break;
            }
            let t1 = clock::now_ns();
            on_round(t0, t1, stamp.load(Ordering::Relaxed));
        }
        self.gpu.bind()?;
        // SAFETY: the stream is live; the kernel ends after its last round or its timeout.
        let synced = unsafe { driver::stream_synchronize(self.stream.cu_stream()) }
            .map_err(driver::classify);
        if let Err(err) = &outcome {
            tracing::warn!(%err, "perdix: clock probe got no answer");
        }
        outcome.and(synced)
    }

    /// One calibration: the tightest of `rounds` rounds, no slope.
    fn calibrate(&self, rounds: u32) -> Result<ClockMapping, Error> {
        let mut best: Option<(u64, u64, u64)> = None;
        self.run(rounds.max(1), |t0, t1, g| {
            if best.is_none_or(|(b0, b1, _)| t1 - t0 < b1 - b0) {
                best = Some((t0, t1, g));
            }
        })?;
        let (t0, t1, g) = best.unwrap_or((0, 0, 0));
        let mid = t0 + (t1 - t0) / 2;
        Ok(ClockMapping {
            offset: mid.wrapping_sub(g) as i64,
            g0: g,
            slope: 0,
            error_ns: (t1 - t0).div_ceil(2) + TIMER_TICK_NS,
            best_round_trip_ns: t1 - t0,
            fit_rms_ns: 0,
        })
    }
}

/// One calibration: the tightest of `rounds` probe rounds, no slope.
///
/// # Errors
///
/// [`Error::Compile`] / [`Error::NoDevice`] for the probe kernel; [`Error::Driver`] when it does
/// not answer within 2 s; [`Error::KernelFault`].
pub fn calibrate(gpu: &GpuContext, rounds: u32) -> Result<ClockMapping, Error> {
    Prober::new(gpu)?.calibrate(rounds)
}

/// Two calibrations `gap` apart, with the drift between them fitted as the slope; the mapping
/// is anchored at the second.
///
/// # Errors
///
/// As [`calibrate`].
pub fn calibrate_drift(
    gpu: &GpuContext,
    rounds: u32,
    gap: Duration,
) -> Result<ClockMapping, Error> {
    let first = calibrate(gpu, rounds)?;
    std::thread::sleep(gap);
    let mut second = calibrate(gpu, rounds)?;
    let dg = second.g0.wrapping_sub(first.g0) as i64;
    if dg > 0 {
        let doff = i128::from(second.offset.wrapping_sub(first.offset));
        second.slope = ((doff << 32) / i128::from(dg)) as i64;
    }
    Ok(second)
}

/// CPU→GPU→CPU round trips through pinned memory: the host writes a number, a GPU thread
/// polling for it answers, the host sees the answer. `rounds` samples, in ns.
///
/// # Errors
///
/// As [`calibrate`].
pub fn round_trip(gpu: &GpuContext, rounds: u32) -> Result<LatencyHistogram, Error> {
    let mut hist = LatencyHistogram::new();
    Prober::new(gpu)?.run(rounds.max(1), |t0, t1, _| hist.record(t1 - t0))?;
    Ok(hist)
}

/// Keeps a producer's clock mapping fresh while it runs: a thread calibrates every `period`
/// (32 probe rounds, on its own stream) and installs the least-squares fit of offset and drift
/// over the last `window` calibrations whose round trip was within 25 % of the tightest.
///
/// One calibration alone leaves the stamps drifting by ~20 ppm (20 µs a second); refitting every
/// 20 ms keeps the mapping within the fit's residual of the truth, plus the bound every
/// calibration has (half the tightest round trip: which leg of the round trip is longer is
/// unknown).
///
/// The probe is a one-thread kernel on its own stream: it needs room for one block next to the
/// producer's kernels (a grid of one block per SM leaves plenty); a probe that gets no answer
/// within 2 s ends the tracker with an error, which [`finish`](Self::finish) returns.
#[derive(Debug)]
pub struct ClockTracker {
    stop: Arc<AtomicBool>,
    latest: Arc<Mutex<ClockMapping>>,
    handle: Option<JoinHandle<Result<u64, Error>>>,
}

impl ClockTracker {
    /// Starts tracking for `producer` (installing each new mapping there), from `initial`.
    ///
    /// # Errors
    ///
    /// As [`calibrate`] (the probe is set up before the thread starts).
    pub fn start(
        producer: &GpuProducer,
        initial: ClockMapping,
        period: Duration,
        window: usize,
    ) -> Result<Self, Error> {
        let prober = Prober::new(producer.context())?;
        let setter = producer.clock_setter();
        let stop = Arc::new(AtomicBool::new(false));
        let latest = Arc::new(Mutex::new(initial));
        let handle = {
            let stop = Arc::clone(&stop);
            let latest = Arc::clone(&latest);
            std::thread::Builder::new()
                .name("perdix-clock".into())
                .spawn(move || track(&prober, &setter, &stop, &latest, period, window.max(2)))
                .map_err(|_| Error::Alloc {
                    bytes: 0,
                    backend: "clock thread",
                })?
        };
        Ok(Self {
            stop,
            latest,
            handle: Some(handle),
        })
    }

    /// The mapping installed last.
    #[must_use]
    pub fn latest(&self) -> ClockMapping {
        *self
            .latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stops the thread; returns how many calibrations it made.
    ///
    /// # Errors
    ///
    /// The first error the thread met (it stops at the first).
    pub fn finish(mut self) -> Result<u64, Error> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(Error::Disconnected),
            None => Ok(0),
        }
    }
}

impl Drop for ClockTracker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn track(
    prober: &Prober,
    setter: &ClockSetter,
    stop: &AtomicBool,
    latest: &Mutex<ClockMapping>,
    period: Duration,
    window: usize,
) -> Result<u64, Error> {
    let mut points: std::collections::VecDeque<ClockMapping> = std::collections::VecDeque::new();
    let mut made = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let point = prober.calibrate(32)?;
        made += 1;
        points.push_back(point);
        while points.len() > window {
            points.pop_front();
        }
        if points.len() >= 3 {
            let mapping = fit(points.make_contiguous());
            setter.set(&mapping)?;
            *latest
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = mapping;
        }
        std::thread::sleep(period);
    }
    Ok(made)
}

/// Least-squares line through the calibrations' offsets against `g`, from the points whose round
/// trip is within 25 % of the tightest; anchored at the newest point.
pub(crate) fn fit(points: &[ClockMapping]) -> ClockMapping {
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

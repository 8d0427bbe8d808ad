//! The GPU clock (`%globaltimer`) mapped onto [`clock::now_ns`](crate::clock::now_ns), and the
//! CPU→GPU→CPU ping-pong that measures it.
//!
//! A probe kernel waits for the host to write a round number into pinned memory, answers with
//! its `%globaltimer` and the round number; the host timestamps its write (`t0`) and the moment it
//! sees the answer (`t1`). The GPU read its clock somewhere in `[t0, t1]`, so the midpoint maps it
//! with an error of at most `(t1 - t0) / 2` plus the timer's 32 ns tick; the tightest of many
//! rounds is kept. `%globaltimer` drifts against the CPU clock (~19 ppm measured on an H100), so
//! [`calibrate_drift`] measures twice and fits the slope; long runs should recalibrate.

use core::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cudarc::driver::{LaunchConfig, PushKernelArg};

use super::memory::{CudaPinned, DeviceMemory};
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

/// Runs the probe kernel for `rounds` rounds, calling `on_round(t0, t1, g)` for each.
fn probe(
    gpu: &GpuContext,
    rounds: u32,
    mut on_round: impl FnMut(u64, u64, u64),
) -> Result<(), Error> {
    let arch = gpu.arch();
    let key = module::cache_key(module::PROBE_CU, &arch);
    let func = gpu.function(
        key,
        || module::compile_ptx(module::PROBE_CU, "probe.cu", &arch),
        "perdix_clock_probe",
    )?;
    let cells = CudaPinned::alloc(gpu, 4096)?;
    let base = cells.as_ptr().as_ptr().cast::<u64>();
    // SAFETY: `base` is page-aligned pinned memory of 4096 bytes owned by `cells`, which outlives
    // every use below; the probe kernel touches these words only with 64-bit accesses.
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
    let stream = gpu.new_stream()?;
    let dptr: u64 = cells.device_ptr();
    let timeout_ns: u64 = 2_000_000_000;
    let mut builder = stream.launch_builder(&func);
    builder.arg(&dptr).arg(&rounds).arg(&timeout_ns);
    let cfg = LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (1, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: `perdix_clock_probe(u64* cells, unsigned rounds, unsigned long long timeout)` takes
    // exactly these arguments; `cells` outlives the kernel (we synchronize the stream below,
    // and the kernel gives up after `timeout_ns` without a request).
    unsafe { builder.launch(cfg) }.map_err(driver::classify)?;
    let mut outcome = Ok(());
    for round in 1..=u64::from(rounds) {
        let t0 = clock::now_ns();
        // Release: pairs with the kernel's `ld.relaxed.sys` poll (nothing else to publish).
        req.store(round, Ordering::Release);
        let started = Instant::now();
        // Acquire: pairs with the kernel's system fence before it stores the round number, so
        // `stamp` below is this round's.
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
    gpu.bind()?;
    // SAFETY: the stream is live; the kernel ends after its last round or its timeout.
    let synced =
        unsafe { driver::stream_synchronize(stream.cu_stream()) }.map_err(driver::classify);
    if let Err(err) = &outcome {
        tracing::warn!(%err, "perdix: clock probe got no answer");
    }
    outcome.and(synced)
}

/// One calibration: the tightest of `rounds` probe rounds, no slope.
///
/// # Errors
///
/// [`Error::Compile`] / [`Error::NoDevice`] for the probe kernel; [`Error::Driver`] when it does
/// not answer within 2 s; [`Error::KernelFault`].
pub fn calibrate(gpu: &GpuContext, rounds: u32) -> Result<ClockMapping, Error> {
    let mut best: Option<(u64, u64, u64)> = None;
    probe(gpu, rounds.max(1), |t0, t1, g| {
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
    })
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
    probe(gpu, rounds.max(1), |t0, t1, _| hist.record(t1 - t0))?;
    Ok(hist)
}

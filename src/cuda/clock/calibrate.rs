//! Calibration: the CPU→GPU→CPU ping-pong with the clock probe kernel (`perdix_clock_probe` in
//! `kernels/probe.cu`) and the mapping it yields (the method: [`crate::clock`]).

use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cudarc::driver::sys::cudaError_enum;
use cudarc::driver::{CudaFunction, CudaStream, DriverError, LaunchConfig, PushKernelArg};

use super::mapping::{ClockMapping, TIMER_TICK_NS};
use crate::cuda::memory::{CudaPinned, DeviceMemory};
use crate::cuda::teardown::kernels_finished;
use crate::cuda::{driver, module, GpuContext};
use crate::{clock, Error, RingMemory};

/// How long the probe kernel waits for a request before it gives up (the host is gone), and how
/// long the host waits for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the end of a run waits for the probe kernel: it ends at once after its last round,
/// or [`PROBE_TIMEOUT`] after the last request it saw (a kernel that has not started yet, behind
/// kernels that hold every SM, is not waited for past this: its cells are leaked instead).
const SETTLE_WAIT: Duration = Duration::from_secs(5);

/// The error of a probe that got no answer, or did not end, in time.
fn timed_out() -> Error {
    Error::Driver(DriverError(cudaError_enum::CUDA_ERROR_LAUNCH_TIMEOUT))
}

/// The probe kernel with its pinned cells and stream, made once and reused: allocating and
/// freeing pinned memory while other kernels run can synchronize with them.
pub(super) struct Prober {
    gpu: GpuContext,
    func: CudaFunction,
    /// The request, answer and stamp words. A launch in flight holds a clone, which it leaks if
    /// the kernel cannot be shown to have ended, so the kernel never writes freed memory.
    cells: Arc<CudaPinned>,
    stream: Arc<CudaStream>,
    /// Set when a probe kernel could not be shown to have ended: its cells are leaked, it may
    /// still poll them, and the prober runs no other probe on them (every later run returns
    /// this error).
    abandoned: OnceLock<Error>,
    /// Failures the tests inject.
    #[cfg(test)]
    faults: tests::Faults,
}

impl Prober {
    pub(super) fn new(gpu: &GpuContext) -> Result<Self, Error> {
        let arch = gpu.arch();
        let key = module::cache_key(module::PROBE_CU, &arch);
        let (func, _params) = gpu.function(
            key,
            || module::compile_ptx(module::PROBE_CU, "probe.cu", &arch),
            "perdix_clock_probe",
        )?;
        Ok(Self {
            gpu: gpu.clone(),
            func,
            cells: Arc::new(CudaPinned::alloc(gpu, 4096)?),
            stream: gpu.new_stream()?,
            abandoned: OnceLock::new(),
            #[cfg(test)]
            faults: tests::Faults::default(),
        })
    }

    /// Makes the context current (a test may make it fail).
    fn bind(&self) -> Result<(), Error> {
        #[cfg(test)]
        if let Some(err) = self.faults.bind() {
            return Err(err);
        }
        self.gpu.bind()
    }

    /// Whether the cells were leaked (a launch in flight still holds its clone).
    #[cfg(test)]
    fn cells_leaked(&self) -> bool {
        Arc::strong_count(&self.cells) > 1
    }

    /// Runs the probe kernel for `rounds` rounds, calling `on_round(t0, t1, g)` for each.
    ///
    /// Returns only once the kernel is known to have ended (its stream idle, or a kernel fault),
    /// on every path after the launch; when that cannot be shown, the cells are leaked (with a
    /// warning) and the error is returned.
    fn run(&mut self, rounds: u32, mut on_round: impl FnMut(u64, u64, u64)) -> Result<(), Error> {
        if let Some(err) = self.abandoned.get() {
            return Err(err.clone());
        }
        let base = self.cells.as_ptr().as_ptr().cast::<u64>();
        // SAFETY: `base` is page-aligned pinned memory of 4096 bytes owned by `cells`, which
        // outlives every use below (the launch's guard holds a clone until the kernel has
        // ended, or leaks it); the probe kernel touches these words only with 64-bit accesses,
        // and no other probe runs on these cells (`run` takes `&mut self`, a run ends only once
        // its kernel has, and a prober whose kernel may still run refuses to run again).
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
        let timeout_ns = PROBE_TIMEOUT.as_nanos() as u64;
        let mut builder = self.stream.launch_builder(&self.func);
        builder.arg(&dptr).arg(&rounds).arg(&timeout_ns);
        let cfg = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (1, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: `perdix_clock_probe(u64* cells, unsigned rounds, unsigned long long timeout)`
        // takes exactly these arguments; `cells` outlives the kernel: the guard made next holds
        // a clone and settles the launch on every path out of `run` (waiting for the stream, or
        // leaking the clone), and the kernel gives up after `timeout_ns` without a request.
        unsafe { builder.launch(cfg) }.map_err(driver::classify)?;
        let flight = InFlight {
            prober: self,
            cells: Some(Arc::clone(&self.cells)),
        };
        let mut outcome = Ok(());
        for round in 1..=u64::from(rounds) {
            #[cfg(test)]
            if self.faults.unanswered(round) {
                outcome = Err(timed_out());
                break;
            }
            let t0 = clock::now_ns();
            // Release: pairs with the kernel's `ld.relaxed.sys` poll (nothing else to publish).
            req.store(round, Ordering::Release);
            let started = Instant::now();
            // Acquire: pairs with the kernel's system fence before it stores the round number,
            // so `stamp` below is this round's.
            while resp.load(Ordering::Acquire) != round {
                if started.elapsed() > PROBE_TIMEOUT {
                    outcome = Err(timed_out());
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
        if let Err(err) = &outcome {
            tracing::warn!(%err, "perdix: clock probe got no answer");
        }
        // The kernel ends after its last round or its timeout.
        let settled = flight.finish();
        outcome.and(settled)
    }

    /// Waits, boundedly, for the probe's stream: `Ok(true)` once idle, `Ok(false)` if still
    /// busy after [`SETTLE_WAIT`].
    fn wait_stream(&self) -> Result<bool, Error> {
        let deadline = Instant::now().checked_add(SETTLE_WAIT);
        let mut nap = Duration::from_micros(20);
        loop {
            self.bind()?;
            // SAFETY: the stream is live (`self` holds it) and the context current (bound above).
            let idle = unsafe { driver::stream_query(self.stream.cu_stream()) }
                .map_err(driver::classify)?;
            if idle {
                return Ok(true);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(1));
        }
    }

    /// Ends a launch on `cells` (a clone of `self.cells`): waits for the stream, and leaks
    /// `cells` when the kernel cannot be shown to have ended.
    fn settle(&self, cells: Arc<CudaPinned>) -> Result<(), Error> {
        settled(self.wait_stream(), |err| {
            tracing::warn!(
                %err,
                "perdix: the clock probe kernel cannot be shown to have ended; leaking its \
                 pinned cells so it cannot write freed memory"
            );
            core::mem::forget(cells);
            let _ = self.abandoned.set(err.clone());
        })
    }

    /// One calibration: the tightest of `rounds` rounds, no slope.
    pub(super) fn calibrate(&mut self, rounds: u32) -> Result<ClockMapping, Error> {
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

/// A probe kernel in flight on the prober's cells: settled (its stream waited for, or its cells
/// leaked) by [`finish`](Self::finish), or by `Drop` on any other path out of `run` (an early
/// return, a panic), so no path frees the cells under a running kernel.
struct InFlight<'a> {
    prober: &'a Prober,
    /// The cells the kernel was launched on; taken when the launch is settled.
    cells: Option<Arc<CudaPinned>>,
}

impl InFlight<'_> {
    /// Settles the launch and returns how: `Ok` once the kernel is known to have ended.
    fn finish(mut self) -> Result<(), Error> {
        match self.cells.take() {
            Some(cells) => self.prober.settle(cells),
            None => Ok(()),
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(cells) = self.cells.take() {
            let _ = self.prober.settle(cells);
        }
    }
}

/// What the end of a probe launch comes to, from the wait for its stream (`Ok(true)`: idle;
/// `Ok(false)`: still running at the deadline). `Ok` once the kernel is known to have ended;
/// otherwise (by the rule `teardown.rs` uses: only an idle stream or a kernel fault proves it)
/// `leak` runs first, given the error returned, so the cells outlive the kernel.
fn settled(waited: Result<bool, Error>, leak: impl FnOnce(&Error)) -> Result<(), Error> {
    let finished = kernels_finished(&waited);
    let result = waited.and_then(|idle| if idle { Ok(()) } else { Err(timed_out()) });
    if let (false, Err(err)) = (finished, &result) {
        leak(err);
    }
    result
}

/// One calibration: the tightest of `rounds` probe rounds, no slope.
///
/// # Errors
///
/// [`Error::Compile`] / [`Error::NoDevice`] for the probe kernel; [`Error::Driver`] when it does
/// not answer within 2 s, or its stream cannot be shown idle within 5 s after the last round (its
/// 4 KiB of pinned cells are then leaked, with a warning, rather than freed under a kernel that
/// may still run); [`Error::KernelFault`].
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

/// CPU→GPU→CPU round trips through pinned memory, `rounds` samples in ns: the host writes a
/// number, the probe kernel polling for it answers, the host sees the answer (the latency of the
/// link and of both sides' polling; [`harness::round_trip`](crate::testing::harness::round_trip)
/// is the CPU echo-thread counterpart).
///
/// # Errors
///
/// As [`calibrate`].
#[cfg(feature = "testing")]
pub fn ping_pong(
    gpu: &GpuContext,
    rounds: u32,
) -> Result<crate::telemetry::LatencyHistogram, Error> {
    let mut hist = crate::telemetry::LatencyHistogram::new();
    Prober::new(gpu)?.run(rounds.max(1), |t0, t1, _| hist.record(t1 - t0))?;
    Ok(hist)
}

#[cfg(test)]
mod tests {
    use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use cudarc::driver::sys::cudaError_enum;
    use cudarc::driver::DriverError;

    use super::{settled, Prober};
    use crate::cuda::context::test_device;
    use crate::cuda::driver;
    use crate::Error;

    /// Failures a test injects into a [`Prober`].
    #[derive(Debug, Default)]
    pub(super) struct Faults {
        /// Every `bind` fails, as it would once the context is broken.
        fail_bind: AtomicBool,
        /// Rounds after this one go unanswered at once (the host gives up as after 2 s without
        /// an answer) while the kernel still waits for their requests; 0: none.
        answered: AtomicU64,
    }

    impl Faults {
        pub(super) fn bind(&self) -> Option<Error> {
            self.fail_bind
                .load(Ordering::Relaxed)
                .then_some(Error::Driver(DriverError(
                    cudaError_enum::CUDA_ERROR_INVALID_CONTEXT,
                )))
        }

        pub(super) fn unanswered(&self, round: u64) -> bool {
            let answered = self.answered.load(Ordering::Relaxed);
            answered > 0 && round > answered
        }
    }

    #[test]
    fn a_probe_is_settled_only_when_idle_or_faulted_and_its_cells_leak_otherwise() {
        use cudarc::driver::sys::cudaError_enum as E;
        // (The errors are not printed: a `DriverError`'s text needs libcuda.)
        let code = |err: &Error| match err {
            Error::Driver(DriverError(code)) | Error::KernelFault(DriverError(code)) => *code,
            _ => panic!("a driver error or a kernel fault"),
        };
        let fault = || Error::KernelFault(DriverError(E::CUDA_ERROR_LAUNCH_FAILED));
        let broken = || Error::Driver(DriverError(E::CUDA_ERROR_INVALID_CONTEXT));
        /// What the wait gave, the code returned, whether the cells leak.
        type Case = (&'static str, Result<bool, Error>, Option<E>, bool);
        let cases: [Case; 4] = [
            ("idle", Ok(true), None, false),
            (
                "still running",
                Ok(false),
                Some(E::CUDA_ERROR_LAUNCH_TIMEOUT),
                true,
            ),
            (
                "kernel fault",
                Err(fault()),
                Some(E::CUDA_ERROR_LAUNCH_FAILED),
                false,
            ),
            (
                "wait failed",
                Err(broken()),
                Some(E::CUDA_ERROR_INVALID_CONTEXT),
                true,
            ),
        ];
        for (what, waited, returned, leaks) in cases {
            let mut leaked = None;
            let result = settled(waited, |err| leaked = Some(code(err)));
            assert_eq!(
                result.as_ref().err().map(code),
                returned,
                "{what}: returned"
            );
            assert_eq!(leaked.is_some(), leaks, "{what}: leaked");
            if leaks {
                assert_eq!(
                    leaked, returned,
                    "{what}: the error the leak is told is the one returned"
                );
            }
        }
    }

    /// Whether the prober's stream has nothing left to run.
    fn idle(prober: &Prober) -> bool {
        prober.gpu.bind().expect("bind");
        // SAFETY: the stream is live (the prober holds it) and the context current.
        unsafe { driver::stream_query(prober.stream.cu_stream()) }.expect("cuStreamQuery")
    }

    /// The probe kernel is still waiting for a request (round 2 of 3 goes unanswered) when
    /// `bind` fails after the loop: `run` must still wait for the kernel, or, when it cannot,
    /// leak the cells; it must never return with the kernel running on cells it then frees.
    #[test]
    #[ignore = "needs a CUDA device"]
    fn a_failed_bind_after_the_launch_never_frees_the_cells_under_the_kernel() {
        let Some(gpu) = test_device() else { return };
        let mut prober = Prober::new(&gpu).expect("the probe");
        prober.faults.answered.store(1, Ordering::Relaxed);
        prober.faults.fail_bind.store(true, Ordering::Relaxed);
        let result = prober.run(3, |_, _, _| {});
        prober.faults.fail_bind.store(false, Ordering::Relaxed);
        assert!(result.is_err(), "a round went unanswered");
        let (idle, leaked) = (idle(&prober), prober.cells_leaked());
        if !idle && !leaked {
            // Dropping it would free the cells under the kernel: keep them for the kernel.
            std::mem::forget(prober);
            panic!("run returned while the probe kernel still runs on cells it would free");
        }
    }

    /// A round without an answer ends `run` with an error only once the kernel has ended (it
    /// gives up 2 s after the last request), and the cells are not leaked.
    #[test]
    #[ignore = "needs a CUDA device"]
    fn an_unanswered_round_waits_for_the_probe_to_end() {
        let Some(gpu) = test_device() else { return };
        let mut prober = Prober::new(&gpu).expect("the probe");
        prober.faults.answered.store(1, Ordering::Relaxed);
        let result = prober.run(3, |_, _, _| {});
        assert!(
            matches!(result, Err(Error::Driver(_))),
            "no answer: {result:?}"
        );
        assert!(idle(&prober), "run returned before the kernel ended");
        assert!(!prober.cells_leaked(), "the kernel ended: nothing to leak");
        prober.faults.answered.store(0, Ordering::Relaxed);
        prober.run(4, |_, _, _| {}).expect("the prober works again");
    }
}

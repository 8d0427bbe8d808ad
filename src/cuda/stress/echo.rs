//! The ring round trip (test tooling): the CPU rings a doorbell in pinned host memory, a GPU
//! kernel polling it emits one message through a ring, the CPU consumer receives it. Timed on
//! the CPU clock alone, so it needs no clock mapping; the kernel times each emit with
//! `%globaltimer` (the GPU-side cost of one `perdix_emit`, exact on the GPU's clock).

use core::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::clock;
use crate::cuda::kernel::GpuKernel;
use crate::cuda::memory::{CudaPinned, DeviceMemory};
use crate::cuda::module::ECHO_CU;
use crate::cuda::{GpuContext, GpuProducer};
use crate::telemetry::LatencyHistogram;
use crate::{Error, RingMemory, RingMode};

/// Rounds before the measured ones (kernel start, first touches of the ring and the cells).
const WARMUP: u32 = 200;
/// How long the host waits for one answer before it gives up.
const ANSWER_WAIT: Duration = Duration::from_secs(2);

/// What [`ring_round_trip`] measured.
#[derive(Debug, Clone)]
pub struct RoundTrip {
    /// The ring's mode.
    pub mode: RingMode,
    /// Polling warps in the kernel.
    pub warps: u32,
    /// CPU doorbell write → the consumer holds the message, in ns (CPU clock).
    pub round_trip: LatencyHistogram,
    /// `perdix_emit` in the kernel, `%globaltimer` before and after, in ns (GPU clock).
    pub emit: LatencyHistogram,
}

/// Runs `rounds` ring round trips on a one-ring producer of `mode` (1,024 slots, pinned), the
/// kernel polling the doorbell from `warps` warps (1 to 32) of one block.
///
/// # Errors
///
/// Producer, compile and driver errors; the ring's fault if it has one; [`Error::InvalidConfig`]
/// when an answer does not come within 2 s or is not the round's.
pub fn ring_round_trip(
    gpu: &GpuContext,
    mode: RingMode,
    rounds: u32,
    warps: u32,
) -> Result<RoundTrip, Error> {
    let warps = warps.clamp(1, 32);
    let total = rounds.saturating_add(WARMUP);
    let (mut producer, mut consumers) = GpuProducer::builder(gpu)
        .capacity(1024)
        .mode(mode)
        .build()?;
    let mut consumer = consumers
        .pop()
        .ok_or_else(|| Error::InvalidConfig("the builder made no ring".into()))?;
    // Word 0: the doorbell; words 1..=total: each round's emit cost.
    let words = total as usize + 1;
    let cells = CudaPinned::alloc(gpu, words * 8)?;
    let base = cells.as_ptr().as_ptr().cast::<u64>();
    let cell = |idx: usize| {
        debug_assert!(idx < words);
        // SAFETY: `idx < words`: an aligned word inside the allocation `cells` owns, which
        // outlives every use of this closure (it is leaked below if the kernel may still run);
        // the kernel reads word 0 and writes words 1.. only as single aligned 8-byte accesses.
        unsafe { AtomicU64::from_ptr(base.add(idx)) }
    };
    for idx in 0..words {
        cell(idx).store(0, Ordering::Relaxed);
    }
    let kernel = GpuKernel::builtin(ECHO_CU, "echo.cu", "perdix_echo")
        .grid(1)
        .block(32 * warps);
    let timeout_ns: u64 = 2_000_000_000;
    // SAFETY: `arg`'s contract for the one launch below: (1) `perdix_echo(p, bell, rounds,
    // cost, timeout_ns)` takes a `const perdix_u64*`, a `perdix_u32`, a `perdix_u64*` and a
    // `perdix_u64` after `p`; (2) `bell` and `cost` point into `cells` (words 0 and 1..=total),
    // alive until the wait below shows the kernel finished, and leaked otherwise; (3) the host's
    // stores to them were made before the launch, on this thread.
    let kernel = unsafe {
        kernel
            .arg(cells.device_ptr())
            .arg(total)
            .arg(cells.device_ptr() + 8)
            .arg(timeout_ns)
    };
    // SAFETY: `GpuProducer::launch`'s contract: (1) the crate's own echo kernel, which emits
    // into the producer's ring with `perdix_emit` and touches only `cells` besides, with its
    // parameters' arguments (above); (2) `cells` outlives the kernel: it is freed only once the
    // wait below shows the kernel finished, and leaked otherwise; (3) the host's writes to
    // `cells` precede the launch.
    unsafe { producer.launch(&kernel) }?;
    let mut round_trip = LatencyHistogram::new();
    let answered = (|| {
        for round in 1..=u64::from(total) {
            let t0 = clock::now_ns();
            cell(0).store(round, Ordering::Release);
            let started = Instant::now();
            loop {
                if let Some(message) = consumer.try_consume_checked()? {
                    let t1 = clock::now_ns();
                    let got = message
                        .get(..8)
                        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
                    if got != Some(round) {
                        return Err(Error::InvalidConfig(format!(
                            "round {round}: the echo answered {got:?}"
                        )));
                    }
                    if round > u64::from(WARMUP) {
                        round_trip.record(t1.saturating_sub(t0));
                    }
                    break;
                }
                if started.elapsed() > ANSWER_WAIT {
                    return Err(Error::InvalidConfig(format!(
                        "round {round}: no echo within {ANSWER_WAIT:?}"
                    )));
                }
                core::hint::spin_loop();
            }
        }
        Ok(())
    })();
    if answered.is_err() {
        producer.request_stop()?;
    }
    let waited = producer.wait(Some(Duration::from_secs(5)));
    if !crate::cuda::teardown::kernels_finished(&waited) {
        // The kernel may still read and write `cells`: never free them under it.
        core::mem::forget(cells);
        waited?;
        return Err(Error::InvalidConfig(
            "the echo kernel did not finish".into(),
        ));
    }
    answered?;
    waited?;
    let mut emit = LatencyHistogram::new();
    for idx in (WARMUP as usize + 1)..words {
        emit.record(cell(idx).load(Ordering::Acquire));
    }
    drop(consumer);
    producer.finish()?;
    Ok(RoundTrip {
        mode,
        warps,
        round_trip,
        emit,
    })
}

/// Whether this machine offers the CPU a direct write into GPU memory, which a round trip under
/// 1 µs needs (GDRCopy's mapping of GPU memory through BAR1: each side then polls only its own
/// memory): `/dev/gdrdrv` (the gdrdrv kernel module), or a driver of CUDA 13.3 or later (GDRCopy
/// 2.6 maps BAR1 through DMA-BUF without gdrdrv). The crate does not use such a path; this says
/// whether one could be had here.
#[must_use]
pub fn direct_write_path() -> String {
    let gdrdrv = std::path::Path::new("/dev/gdrdrv").exists();
    let driver = crate::cuda::presence::driver_version();
    let dmabuf = driver.is_some_and(|v| v >= 13_030);
    let version = driver.map_or_else(
        || "none".to_owned(),
        |v| format!("{}.{}", v / 1000, (v % 1000) / 10),
    );
    format!(
        "/dev/gdrdrv {}, driver CUDA {version} ({} the 13.3 that GDRCopy's DMA-BUF mapping needs): {}",
        if gdrdrv { "present" } else { "absent" },
        if dmabuf { "at least" } else { "below" },
        if gdrdrv || dmabuf {
            "a direct CPU write into GPU memory could be had"
        } else {
            "no direct CPU write into GPU memory here"
        }
    )
}

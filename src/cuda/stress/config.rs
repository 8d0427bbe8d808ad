//! `GpuStress`: a GPU stress run's configuration.

use std::time::Duration;

use super::kernels::StressKernel;
use crate::cuda::GpuMemory;
use crate::testing::stress::Sizes;
use crate::{Policy, RingMode};

/// A GPU stress run's configuration.
///
/// # Examples
///
/// ```no_run
/// use perdix_transport::cuda::GpuContext;
/// use perdix_transport::testing::gpu::{self as stress, GpuStress};
/// use perdix_transport::testing::stress::Throughput;
/// use perdix_transport::Error;
///
/// let gpu = match GpuContext::new(0) {
///     Ok(gpu) => gpu,
///     Err(Error::NoDevice(why)) => { eprintln!("skipped: {why}"); return Ok(()); }
///     Err(err) => return Err(err),
/// };
/// let config = GpuStress { consumers: 2, rings: 2, ..GpuStress::default() };
/// let report = stress::run(&gpu, &config)?;
/// assert!(report.is_clean());
/// println!("{:.1} M msgs/s", report.msgs_per_sec() / 1e6);
/// // A size the stress format cannot carry is refused before anything runs.
/// let odd = GpuStress { size: 30, ..GpuStress::default() };
/// assert!(matches!(stress::run(&gpu, &odd), Err(Error::InvalidConfig(_))));
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct GpuStress {
    /// Blocks in the grid (one per SM fills the device: [`GpuContext::multiprocessors`](crate::cuda::GpuContext::multiprocessors)).
    pub grid: u32,
    /// Threads per block; every thread is one producer stream.
    pub block: u32,
    /// Slots per ring.
    pub capacity: usize,
    /// Rings (block `b` writes ring `b % rings`); `rings = grid` gives one ring per block.
    pub rings: usize,
    /// Consumer threads; thread `t` owns rings `t, t + consumers, ...`.
    pub consumers: usize,
    /// Message size in bytes (a [`valid_size`](crate::testing::stress::valid_size) the ring
    /// carries); with `mixed_max`, the smallest size.
    pub size: usize,
    /// Mixed sizes: each message's size from `size` to this (both included), a function of its
    /// producer and sequence ([`Sizes::mixed`]); `None`: every message `size` bytes.
    pub mixed_max: Option<usize>,
    /// Where the rings live.
    pub memory: GpuMemory,
    /// What a warp does on a full ring.
    pub policy: Policy,
    /// How long to run when `messages_per_producer` is `None` (then the host asks the kernel to
    /// stop after this long).
    pub duration: Duration,
    /// Messages each producer thread sends (`None`: until `duration`).
    pub messages_per_producer: Option<u64>,
    /// Check every word of every message (otherwise the first and last 16 bytes).
    pub full_check: bool,
    /// Record the one-way latency of every `latency_every`-th message (0: off). Turns on
    /// timestamps, a drift-fitted clock calibration before the run and a
    /// [`ClockTracker`](crate::clock::ClockTracker) refitting it every 20 ms during the run.
    pub latency_every: u32,
    /// Pace each producer thread to one message per `interval_ns` (0: as fast as it can).
    pub interval_ns: u64,
    /// Which kernel.
    pub kernel: StressKernel,
    /// How the rings lay out messages: [`RingMode::LowLatency`] carries one size of up to 104
    /// bytes, sent through `perdix_emit` by the warp kernel ([`StressKernel::Warp`]).
    pub mode: RingMode,
}

impl Default for GpuStress {
    fn default() -> Self {
        Self {
            grid: 132,
            block: 256,
            capacity: 65_536,
            rings: 1,
            consumers: 1,
            size: 224,
            mixed_max: None,
            memory: GpuMemory::Pinned,
            policy: Policy::Block,
            duration: Duration::from_secs(1),
            messages_per_producer: None,
            full_check: false,
            latency_every: 0,
            interval_ns: 0,
            kernel: StressKernel::Warp,
            mode: RingMode::Throughput,
        }
    }
}

impl GpuStress {
    /// One-way latency at light load: one GPU thread sending a 32-byte message every 10 µs into
    /// a 4,096-slot ring for `duration`, every message stamped and timed.
    #[must_use]
    pub fn light_load_latency(duration: Duration) -> Self {
        Self {
            grid: 1,
            block: 1,
            capacity: 4096,
            rings: 1,
            consumers: 1,
            size: 32,
            duration,
            latency_every: 1,
            interval_ns: 10_000,
            kernel: StressKernel::Warp,
            ..Self::default()
        }
    }

    /// The run's message sizes.
    #[must_use]
    pub fn sizes(&self) -> Sizes {
        match self.mixed_max {
            Some(max) => Sizes::mixed(self.size, max),
            None => Sizes::fixed(self.size),
        }
    }

    /// Producer threads per launch.
    #[must_use]
    pub fn producers(&self) -> u64 {
        u64::from(self.grid) * u64::from(self.block)
    }

    /// The consumer thread that reads producer `id`'s messages.
    pub(super) fn thread_of(&self, id: u64) -> usize {
        let block = id / u64::from(self.block.max(1));
        let ring = (block % self.rings.max(1) as u64) as usize;
        ring % self.consumers.max(1)
    }
}

//! A verified GPU→CPU stress run: the stress kernel on a full grid, several consumer threads
//! each owning their rings, every message checked. Shared by the bins, the tests, the
//! `gpu_stream` bench and the Bevy `headless_stress` example.

use std::thread;
use std::time::{Duration, Instant};

use cudarc::driver::sys::CUdeviceptr;

use super::clock::{self, ClockMapping, ClockTracker};
use super::counters::GpuCounters;
use super::memory::GpuMemory;
use super::producer::GpuProducer;
use super::{driver, GpuContext};
use crate::telemetry::LatencyHistogram;
use crate::testing::stress::{self, Verifier, VerifyReport};
use crate::{Backend, Consumer, Error, Policy};

mod kernels;

use kernels::generic_kernel;
pub(crate) use kernels::warp_kernel;
pub use kernels::{free_running_kernel, StressKernel};

/// A GPU stress run's configuration.
///
/// # Examples
///
/// ```no_run
/// use perdix_transport::cuda::GpuContext;
/// use perdix_transport::testing::gpu as stress;
/// use perdix_transport::Error;
///
/// let gpu = match GpuContext::new(0) {
///     Ok(gpu) => gpu,
///     Err(Error::NoDevice(why)) => { eprintln!("skipped: {why}"); return Ok(()); }
///     Err(err) => return Err(err),
/// };
/// let config = stress::GpuStress { consumers: 2, rings: 2, ..stress::GpuStress::default() };
/// let report = stress::run(&gpu, &config)?;
/// assert!(report.is_clean());
/// println!("{:.1} M msgs/s", report.msgs_per_sec() / 1e6);
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct GpuStress {
    /// Blocks in the grid (132 fills an H100 SXM).
    pub grid: u32,
    /// Threads per block; every thread is one producer stream.
    pub block: u32,
    /// Slots per ring.
    pub capacity: usize,
    /// Rings (block `b` writes ring `b % rings`); `grid` gives per-block lanes.
    pub rings: usize,
    /// Consumer threads; thread `t` owns rings `t, t + consumers, ...`.
    pub consumers: usize,
    /// Message size in bytes (a [`stress::valid_size`]).
    pub size: usize,
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
    /// timestamps, a drift-fitted clock calibration before the run and a [`ClockTracker`]
    /// refitting it every 20 ms during the run.
    pub latency_every: u32,
    /// Pace each producer thread to one message per `interval_ns` (0: as fast as it can).
    pub interval_ns: u64,
    /// Which kernel.
    pub kernel: StressKernel,
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
            memory: GpuMemory::Pinned,
            policy: Policy::Block,
            duration: Duration::from_secs(1),
            messages_per_producer: None,
            full_check: false,
            latency_every: 0,
            interval_ns: 0,
            kernel: StressKernel::Warp,
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

    /// Producer threads per launch.
    #[must_use]
    pub fn producers(&self) -> u64 {
        u64::from(self.grid) * u64::from(self.block)
    }

    /// The consumer thread that reads producer `id`'s messages.
    fn thread_of(&self, id: u64) -> usize {
        let block = id / u64::from(self.block.max(1));
        let ring = (block % self.rings.max(1) as u64) as usize;
        ring % self.consumers.max(1)
    }
}

/// What a [`GpuStress`] run measured.
#[derive(Debug, Clone)]
pub struct GpuStressReport {
    /// The device's name.
    pub device: String,
    /// Ring memory backend.
    pub backend: Backend,
    /// The configuration that ran.
    pub config: GpuStress,
    /// From the launch until the last message was consumed.
    pub elapsed: Duration,
    /// Everything the consumers checked, merged, with every message a producer says it sent
    /// and no consumer saw counted as lost.
    pub verify: VerifyReport,
    /// The device counters after the run.
    pub counters: GpuCounters,
    /// Attempts the producer threads counted (must equal `counters.attempted()`).
    pub attempts: u64,
    /// Messages the producer threads say they sent (must equal `counters.emitted`).
    pub sent: u64,
    /// Messages each consumer thread read.
    pub per_consumer: Vec<u64>,
    /// One-way latency GPU stamp → CPU read (empty unless `latency_every > 0`).
    pub latency: LatencyHistogram,
    /// Latency samples whose stamp was later than the reading (calibration error).
    pub early_stamps: u64,
    /// The clock mapping in force at the end of the run (its `error_ns` bounds every stamp, its
    /// `fit_rms_ns` is the calibration noise).
    pub clock: Option<ClockMapping>,
    /// After the run: the mapping's error against a fresh calibration, in ns (drift residual).
    pub clock_residual_ns: Option<i64>,
    /// The first consumer error other than the end of the stream (a corrupt slot).
    pub consumer_error: Option<Error>,
}

impl GpuStressReport {
    /// Messages consumed per second.
    #[must_use]
    pub fn msgs_per_sec(&self) -> f64 {
        self.verify.msgs_per_sec(self.elapsed)
    }

    /// Payload bytes consumed per second.
    #[must_use]
    pub fn bytes_per_sec(&self) -> f64 {
        self.verify.bytes_per_sec(self.elapsed)
    }

    /// `emitted + dropped == attempted`, and the consumers saw exactly what was emitted.
    #[must_use]
    pub fn counts_exact(&self) -> bool {
        self.counters.attempted() == self.attempts
            && self.counters.emitted == self.sent
            && self.verify.messages == self.sent
    }

    /// No loss, duplicate, reorder or corruption, exact counts, and no consumer error.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.verify.is_clean() && self.counts_exact() && self.consumer_error.is_none()
    }
}

/// Device memory for the kernel's per-producer results.
struct DeviceWords {
    gpu: GpuContext,
    dptr: CUdeviceptr,
    words: usize,
}

impl DeviceWords {
    fn zeroed(gpu: &GpuContext, words: usize) -> Result<Self, Error> {
        let bytes = words * 8;
        gpu.bind()?;
        // SAFETY: the context is current; freed once, in `Drop`.
        let dptr = unsafe { driver::mem_alloc(bytes) }.map_err(|_| Error::Alloc {
            bytes,
            backend: "cuda-device",
        })?;
        let this = Self {
            gpu: gpu.clone(),
            dptr,
            words,
        };
        let stream = gpu.aux_stream();
        // SAFETY: `dptr..dptr + bytes` is the allocation above; the stream is live.
        unsafe { driver::memset_async(dptr, 0, bytes, stream.cu_stream()) }
            .map_err(Error::Driver)?;
        // SAFETY: the stream is live.
        unsafe { driver::stream_synchronize(stream.cu_stream()) }.map_err(Error::Driver)?;
        Ok(this)
    }

    fn read(&self) -> Result<Vec<u64>, Error> {
        let mut out = vec![0u64; self.words];
        self.gpu.bind()?;
        let stream = self.gpu.aux_stream();
        // SAFETY: `out` holds `words` u64 and outlives the copy (synchronized below); the source
        // is this allocation.
        unsafe {
            driver::memcpy_dtoh_async(
                out.as_mut_ptr().cast(),
                self.dptr,
                self.words * 8,
                stream.cu_stream(),
            )
        }
        .map_err(driver::classify)?;
        // SAFETY: the stream is live.
        unsafe { driver::stream_synchronize(stream.cu_stream()) }.map_err(driver::classify)?;
        Ok(out)
    }
}

impl Drop for DeviceWords {
    fn drop(&mut self) {
        if self.gpu.bind().is_ok() {
            // SAFETY: allocated by `mem_alloc`, freed only here, after the kernel (the run waits
            // for the producer before dropping this).
            let _ = unsafe { driver::mem_free(self.dptr) };
        }
    }
}

/// What one consumer thread found.
struct ThreadResult {
    verifier: Verifier,
    latency: LatencyHistogram,
    early: u64,
    error: Option<Error>,
}

fn consume(mut rings: Vec<Consumer>, full: bool, latency_every: u32) -> ThreadResult {
    let mut verifier = Verifier::new(full);
    let mut latency = LatencyHistogram::new();
    let mut early = 0u64;
    let mut error = None;
    let mut done = vec![false; rings.len()];
    let mut left = rings.len();
    let mut idle = 0u32;
    let mut count = 0u64;
    let every = u64::from(latency_every.max(1));
    while left > 0 {
        let mut got = 0;
        for (consumer, finished) in rings.iter_mut().zip(done.iter_mut()) {
            if *finished {
                continue;
            }
            let drained = consumer.drain_checked(8192, |msg| {
                verifier.check(msg.producer(), &msg);
                if latency_every > 0 {
                    count += 1;
                    if count.is_multiple_of(every) {
                        let now = crate::clock::now_ns();
                        let stamp = msg.stamp_ns();
                        if stamp > now {
                            early += 1;
                        } else {
                            latency.record(now - stamp);
                        }
                    }
                }
            });
            match drained {
                Ok(n) => got += n,
                Err(Error::Disconnected) => {
                    *finished = true;
                    left -= 1;
                }
                Err(err) => {
                    error.get_or_insert(err);
                    *finished = true;
                    left -= 1;
                }
            }
        }
        if got == 0 {
            // Spin (a yield costs microseconds of latency at light load); yield only after
            // ~65 k empty rounds, so an idle run does not hog a core forever.
            idle += 1;
            if idle > 1 << 16 {
                thread::yield_now();
            } else {
                core::hint::spin_loop();
            }
        } else {
            idle = 0;
        }
    }
    // Dropping the consumers closes their rings on the device: a kernel still waiting on a ring
    // whose consumer hit a corrupt slot returns instead of hanging.
    drop(rings);
    ThreadResult {
        verifier,
        latency,
        early,
        error,
    }
}

/// Runs `config` on every device of `gpus` at once (a thread per device, each with its own
/// rings and consumer threads) and verifies every message; one report per device, in order.
///
/// The aggregate rate of a run is the sum of the reports' [`GpuStressReport::msgs_per_sec`]
/// (every run lasts `config.duration`; they start within the time it takes to allocate rings).
///
/// # Errors
///
/// As [`run`], from the first device that fails.
pub fn run_devices(gpus: &[GpuContext], config: &GpuStress) -> Result<Vec<GpuStressReport>, Error> {
    let results: Vec<Result<GpuStressReport, Error>> = thread::scope(|scope| {
        let handles: Vec<_> = gpus
            .iter()
            .map(|gpu| scope.spawn(move || run(gpu, config)))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(Error::Panicked("a device's stress run".into())))
            })
            .collect()
    });
    results.into_iter().collect()
}

/// Runs `config` on `gpu` and verifies every message.
///
/// # Errors
///
/// [`Error::InvalidConfig`] for a size that is not a valid stress size, or zero rings,
/// consumers, grid or block; [`Error::InvalidCapacity`] for a bad capacity; allocation, compile
/// and driver errors; [`Error::KernelFault`] if the kernel faults. Verification failures are
/// not errors: they are in the report ([`GpuStressReport::is_clean`]).
pub fn run(gpu: &GpuContext, config: &GpuStress) -> Result<GpuStressReport, Error> {
    if !stress::valid_size(config.size) {
        return Err(Error::InvalidConfig(format!(
            "stress size {}: must be a multiple of 8 from {} to {}",
            config.size,
            stress::MIN_SIZE,
            crate::layout::PAYLOAD_MAX
        )));
    }
    if config.rings == 0 || config.consumers == 0 || config.grid == 0 || config.block == 0 {
        return Err(Error::InvalidConfig(
            "a stress run needs at least one ring, consumer, block and thread".into(),
        ));
    }
    let mut config = config.clone();
    config.consumers = config.consumers.min(config.rings);
    let latency_on = config.latency_every > 0;
    let (mut producer, consumers) = GpuProducer::builder(gpu)
        .capacity(config.capacity)
        .rings(config.rings)
        .memory(config.memory)
        .policy(config.policy)
        .timestamps(latency_on)
        .build()?;
    let tracker = if latency_on {
        let mapping = clock::calibrate_drift(gpu, 200, Duration::from_millis(200))?;
        producer.set_clock(&mapping)?;
        Some(ClockTracker::start(
            &producer,
            mapping,
            Duration::from_millis(20),
            50,
        )?)
    } else {
        None
    };
    let producers = config.producers();
    let sent_words = DeviceWords::zeroed(gpu, producers as usize + 1)?;
    let sent_ptr = sent_words.dptr;
    let attempts_ptr = sent_words.dptr + producers * 8;
    let per_producer = config.messages_per_producer.unwrap_or(u64::MAX);
    let kernel = match config.kernel {
        // SAFETY: `sent_words` holds one word per producer thread and one more for the
        // attempts, and lives until after the producer has finished (dropped below it).
        StressKernel::Warp => unsafe {
            warp_kernel(
                per_producer,
                config.size as u32,
                0,
                config.interval_ns,
                (sent_ptr, attempts_ptr),
            )
        },
        // SAFETY: as above, for the sent words.
        StressKernel::Generic => unsafe {
            generic_kernel(per_producer, config.size as u32, 0, sent_ptr)
        },
    }
    .grid(config.grid)
    .block(config.block);
    producer.prepare(&kernel)?;

    let mut groups: Vec<Vec<Consumer>> = (0..config.consumers).map(|_| Vec::new()).collect();
    for (idx, consumer) in consumers.into_iter().enumerate() {
        groups[idx % config.consumers].push(consumer);
    }
    let full = config.full_check;
    let latency_every = config.latency_every;
    let handles: Vec<_> = groups
        .into_iter()
        .enumerate()
        .map(|(idx, rings)| {
            thread::Builder::new()
                .name(format!("perdix-consumer-{idx}"))
                .spawn(move || consume(rings, full, latency_every))
        })
        .collect::<Result<_, _>>()
        .map_err(|_| Error::Alloc {
            bytes: 0,
            backend: "consumer thread",
        })?;

    let start = Instant::now();
    let launched = producer.launch(&kernel);
    let mut run_error = launched.err();
    if run_error.is_none() && config.messages_per_producer.is_none() {
        let deadline = start + config.duration;
        loop {
            match producer.is_idle() {
                Ok(true) => break,
                Ok(false) => {}
                Err(err) => {
                    run_error = Some(err);
                    break;
                }
            }
            let now = Instant::now();
            if now >= deadline {
                if let Err(err) = producer.request_stop() {
                    run_error = Some(err);
                }
                break;
            }
            thread::sleep((deadline - now).min(Duration::from_millis(5)));
        }
    }
    let finished = producer.finish();
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.join());
    }
    let elapsed = start.elapsed();
    let clock = match tracker {
        Some(tracker) => {
            let latest = tracker.latest();
            let calibrations = tracker.finish()?;
            tracing::debug!(
                calibrations,
                ?latest,
                "perdix: clock tracked during the run"
            );
            Some(latest)
        }
        None => None,
    };
    if let Some(err) = run_error {
        return Err(err);
    }
    let counters = finished?;
    let words = sent_words.read()?;
    let (sent_each, attempts) = words.split_at(producers as usize);
    // The generic kernel does not count its attempts; take the device's word for it.
    let attempts = match config.kernel {
        StressKernel::Warp => attempts[0],
        StressKernel::Generic => counters.attempted(),
    };
    let sent: u64 = sent_each.iter().sum();

    let mut verify = VerifyReport::default();
    let mut latency = LatencyHistogram::new();
    let mut early_stamps = 0;
    let mut per_consumer = Vec::with_capacity(results.len());
    let mut consumer_error = None;
    for (idx, result) in results.into_iter().enumerate() {
        let Ok(mut result) = result else {
            consumer_error.get_or_insert(Error::Disconnected);
            continue;
        };
        let mine: Vec<u64> = sent_each
            .iter()
            .enumerate()
            .map(|(id, &n)| {
                if config.thread_of(id as u64) == idx {
                    n
                } else {
                    0
                }
            })
            .collect();
        let report = result.verifier.finish(&mine);
        per_consumer.push(report.messages);
        verify.merge(&report);
        latency.merge(&result.latency);
        early_stamps += result.early;
        if let Some(err) = result.error {
            consumer_error.get_or_insert(err);
        }
    }
    let clock_residual_ns = match clock {
        Some(before) => {
            let after = clock::calibrate(gpu, 200)?;
            let predicted = before.to_cpu(after.g0);
            let measured = after.g0.wrapping_add(after.offset as u64);
            Some(measured.wrapping_sub(predicted) as i64)
        }
        None => None,
    };
    Ok(GpuStressReport {
        device: gpu.name().to_owned(),
        backend: config.memory.backend(),
        config,
        elapsed,
        verify,
        counters,
        attempts,
        sent,
        per_consumer,
        latency,
        early_stamps,
        clock,
        clock_residual_ns,
        consumer_error,
    })
}

//! The stress run itself: the kernel on the device, one thread per consumer group, every
//! message verified, the counters compared.

use std::thread;
use std::time::{Duration, Instant};

use super::config::GpuStress;
use super::consume::consume;
use super::kernels::{buffer_kernel, scratch_stride, warp_kernel, StressKernel, GENERIC_LOCAL_MAX};
use super::report::GpuStressReport;
use crate::clock::{self, ClockTracker};
use crate::cuda::words::DeviceWords;
use crate::cuda::{GpuContext, GpuProducer};
use crate::telemetry::LatencyHistogram;
use crate::testing::stress::{self, VerifyReport};
use crate::{Consumer, Error};

/// Runs `config` on every device of `gpus` at once (a thread per device, each with its own
/// rings and consumer threads) and verifies every message; one report per device, in order.
///
/// The aggregate rate of a run is the sum of the reports' [`msgs_per_sec`](crate::testing::stress::Throughput::msgs_per_sec)
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
/// and driver errors; [`Error::Spawn`] when a consumer thread cannot start;
/// [`Error::KernelFault`] if the kernel faults. Verification failures are
/// not errors: they are in the report ([`GpuStressReport::is_clean`]).
pub fn run(gpu: &GpuContext, config: &GpuStress) -> Result<GpuStressReport, Error> {
    stress::check_size_for(config.size, config.capacity)?;
    let sizes = config.sizes();
    stress::check_size_for(sizes.max(), config.capacity)?;
    if config.rings == 0 || config.consumers == 0 || config.grid == 0 || config.block == 0 {
        return Err(Error::InvalidConfig(
            "a stress run needs at least one ring, consumer, block and thread".into(),
        ));
    }
    if config.mode == crate::RingMode::LowLatency
        && (config.mixed_max.is_some()
            || config.size > crate::layout::LL_MAX_PAYLOAD
            || config.kernel != StressKernel::Warp)
    {
        return Err(Error::InvalidConfig(format!(
            "a low-latency stress run sends one size of up to {} bytes with the warp kernel",
            crate::layout::LL_MAX_PAYLOAD
        )));
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
        .mode(config.mode)
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
    // One word per producer thread, then the attempts; on a stream of their own.
    let words_stream = gpu.new_stream()?;
    let mut sent_words = DeviceWords::zeroed(gpu, &words_stream, producers as usize + 1)?;
    let sent_ptr = sent_words.dptr();
    let attempts_ptr = sent_words.dptr() + producers * 8;
    let per_producer = config.messages_per_producer.unwrap_or(u64::MAX);
    let range = (sizes.min() as u32, sizes.max() as u32);
    // The generic kernel's big messages and the whole-warp kernel's come from a global buffer.
    let needs_scratch = match config.kernel {
        StressKernel::Warp => false,
        StressKernel::Generic => sizes.max() > GENERIC_LOCAL_MAX,
        StressKernel::WarpEmit => true,
    };
    let mut scratch = if needs_scratch {
        let words = producers as usize * scratch_stride(sizes.max()) / 8;
        Some(DeviceWords::zeroed(gpu, &words_stream, words)?)
    } else {
        None
    };
    let scratch_ptr = scratch.as_ref().map_or(0, DeviceWords::dptr);
    let kernel = match config.kernel {
        // SAFETY: the one launch made with this kernel (below) has `config.producers()`
        // threads (the grid and block set here); `sent_words` holds one word per producer
        // thread and one more for the attempts, and lives until the producer has finished (or
        // is leaked with it when that cannot be shown).
        StressKernel::Warp => unsafe {
            warp_kernel(
                per_producer,
                range,
                0,
                config.interval_ns,
                (sent_ptr, attempts_ptr),
            )
        },
        // SAFETY: as above, for the sent words; `scratch` is 0 or `scratch_stride(max)` bytes
        // per producer thread, and lives as long as `sent_words`.
        which @ (StressKernel::Generic | StressKernel::WarpEmit) => unsafe {
            buffer_kernel(which, per_producer, range, 0, (sent_ptr, scratch_ptr))
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
                .spawn(move || consume(rings, full, sizes, latency_every))
        })
        .collect::<Result<_, _>>()
        .map_err(|err| Error::Spawn(err.to_string()))?;

    let start = Instant::now();
    // SAFETY: `GpuProducer::launch`'s contract: (1) `perdix_stress*` keep `from_source`'s
    // contract (the crate's own kernels, writing the ring only through `perdix.cuh`), with
    // their parameters' arguments (`kernels.rs`); (2) `sent_words` and `scratch`, the only
    // addresses given, are alive until `finish` below returns, and are leaked with the
    // producer's memory when it cannot show the kernel finished; (3) both were zeroed on
    // `words_stream` and synchronized before now (`DeviceWords::zeroed`), and read only
    // after `finish`.
    let launched = unsafe { producer.launch(&kernel) };
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
    if matches!(&finished, Err(err) if !matches!(err, Error::KernelFault(_))) {
        // The kernel may still run (the producer then leaks its own memory): so do the counters
        // it writes.
        sent_words.leak();
        if let Some(scratch) = scratch.as_mut() {
            scratch.leak();
        }
    }
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
    let mut words = vec![0u64; producers as usize + 1];
    sent_words.read(&words_stream, 0, &mut words)?;
    let (sent_each, attempts) = words.split_at(producers as usize);
    // The buffer kernels do not count their attempts; take the device's word for it.
    let attempts = match config.kernel {
        StressKernel::Warp => attempts[0],
        StressKernel::Generic | StressKernel::WarpEmit => counters.attempted(),
    };
    let sent: u64 = sent_each.iter().sum();

    let mut verify = VerifyReport::default();
    let mut latency = LatencyHistogram::new();
    let mut early_stamps = 0;
    let mut per_consumer = Vec::with_capacity(results.len());
    let mut consumer_error = None;
    for (idx, result) in results.into_iter().enumerate() {
        let Ok(mut result) = result else {
            consumer_error.get_or_insert(Error::Panicked("a stress consumer thread".into()));
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

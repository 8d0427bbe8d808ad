//! The bare-ring baseline, run first: the same producers, rings, message size, capacity and
//! policy as the ECS run, every word verified, with no Bevy: each ECS figure is printed as a
//! fraction of it (speed figures as ratios within one process).

use std::thread;
use std::time::Duration;

use perdix_transport::testing::harness::SpscRun;
use perdix_transport::testing::stress::Throughput;

use crate::args::Args;

/// What the bare ring carried.
#[derive(Debug, Clone)]
pub struct Baseline {
    /// Verified messages a second.
    pub rate: f64,
    /// Verified payload bytes a second.
    pub bytes_per_sec: f64,
    /// Nothing lost, duplicated, reordered or corrupt, and something arrived.
    pub clean: bool,
    /// How it ran, in words.
    pub shape: String,
}

/// Runs the baseline for `--baseline-seconds` on the backend the ECS run will use: GPU stress
/// kernels (one grid per ring, one consumer thread per ring, as `--drain thread` reads them),
/// or `producers` CPU producer threads, each with a consumer thread of its own.
pub fn run(args: &Args, producers: usize, gpu: bool) -> Result<Baseline, String> {
    let seconds = args.baseline_seconds;
    if gpu {
        return run_gpu(args, producers, seconds);
    }
    let run = SpscRun {
        capacity: args.capacity,
        size: args.size,
        messages: None,
        duration: Duration::from_secs_f64(seconds),
        policy: args.policy,
        full_check: true,
        latency: false,
    };
    // Each pair verifies its own stream; the rates add up (they ran over the same seconds).
    let reports = thread::scope(|scope| {
        let pairs: Vec<_> = (0..producers)
            .map(|_| scope.spawn(move || run.run(|_| {})))
            .collect();
        pairs
            .into_iter()
            .map(|pair| {
                pair.join().unwrap_or_else(|_| {
                    Err(perdix_transport::Error::Panicked("a baseline pair".into()))
                })
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .map_err(|err| err.to_string())?;
    Ok(Baseline {
        rate: reports.iter().map(Throughput::msgs_per_sec).sum(),
        bytes_per_sec: reports.iter().map(Throughput::bytes_per_sec).sum(),
        clean: reports
            .iter()
            .all(|r| r.verify.is_clean() && r.verify.messages > 0),
        shape: format!("{producers} CPU producer thread(s), each with its own consumer thread"),
    })
}

#[cfg(feature = "cuda")]
fn run_gpu(args: &Args, rings: usize, seconds: f64) -> Result<Baseline, String> {
    use perdix_transport::testing::gpu::{self as stress, GpuStress};
    let gpus = args.devices.open().map_err(|err| err.to_string())?;
    let grid = gpus.first().map_or(1, |gpu| gpu.multiprocessors().max(1));
    // The plugin's stress producers: a grid per ring of one block per SM, 256 threads; the
    // thread drain reads each ring on its own thread.
    let config = GpuStress {
        grid,
        block: 256,
        capacity: args.capacity,
        rings,
        consumers: rings,
        size: args.size,
        policy: args.policy,
        duration: Duration::from_secs_f64(seconds),
        full_check: true,
        ..GpuStress::default()
    };
    let reports = stress::run_devices(&gpus, &config).map_err(|err| err.to_string())?;
    Ok(Baseline {
        rate: reports.iter().map(Throughput::msgs_per_sec).sum(),
        bytes_per_sec: reports.iter().map(Throughput::bytes_per_sec).sum(),
        clean: reports
            .iter()
            .all(|r| r.is_clean() && r.verify.messages > 0),
        shape: format!(
            "GPU stress kernels on {} device(s), {rings} ring(s) each with a consumer thread",
            gpus.len()
        ),
    })
}

#[cfg(not(feature = "cuda"))]
fn run_gpu(_: &Args, _: usize, _: f64) -> Result<Baseline, String> {
    Err("built without the cuda feature".into())
}

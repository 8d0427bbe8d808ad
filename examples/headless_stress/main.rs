//! Headless stress run: stress producers (GPU kernels when there is a CUDA device, else CPU
//! threads) feed a headless Bevy app through `PerdixPlugin`; ECS systems verify every message's
//! sequence and checksum. Three phases in one process, so every figure is a ratio:
//!
//! 1. the bare ring (`--baseline-seconds`): the same producers, rings and consumer threads,
//!    no Bevy;
//! 2. the ECS run, saturated (`--seconds`), printed as a fraction of the bare ring, with why
//!    its latency is queueing and what bounds it;
//! 3. light loads (`--load 0.1,0.5`, fractions of the saturated ECS rate, `--load-seconds`
//!    each): stamp-to-reader latency in frames.
//!
//! ```text
//! cargo run --release --example headless_stress                # defaults
//! cargo run --release --example headless_stress -- --seconds 3 --size 224 --drain thread
//! cargo run --release --example headless_stress -- --raw       # the bare ring only
//! cargo run --release --example headless_stress --features prometheus -- --metrics 127.0.0.1:9464
//! ```
//!
//! Prints a progress line each second, a verified summary of each run and a closing report;
//! the last line is `RESULT: PASS` or `RESULT: FAIL` (exit code 1) on any loss, duplicate,
//! reorder or corrupt message in any phase.

use std::process::ExitCode;

use clap::Parser;
use perdix_transport::bevy::DrainMode;
use perdix_transport::testing::stress;

mod app;
mod args;
mod baseline;
mod metrics;
mod report;
mod run;
mod summary;
mod verify;

use args::Args;

fn main() -> ExitCode {
    let mut args = Args::parse();
    let gpu = gpu_producers(&args);
    args.drain = args.drain_flag.unwrap_or(if gpu {
        DrainMode::Thread
    } else {
        DrainMode::System
    });
    perdix_transport::testing::init_logging("info");
    // The typed deliveries here carry one-slot messages (`Envelope<[u64; size / 8]>`).
    if !stress::valid_size(args.size) || args.size > perdix_transport::layout::SLOT_PAYLOAD {
        eprintln!(
            "--size must be a multiple of 8 from 16 to 224, not {}",
            args.size
        );
        return ExitCode::from(2);
    }
    let producers = args.producers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get().saturating_sub(1))
            .clamp(1, 4)
    });
    let verifiers = args.verifiers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).clamp(1, 8))
    });
    // A power of two, so a verifier picks its producers with a mask.
    let verifiers = verifiers.clamp(1, 64).next_power_of_two();

    let baseline = if args.raw || args.baseline_seconds > 0.0 {
        println!(
            "perdix headless_stress: bare-ring baseline, {:.1} s, {}-byte messages, {} slots a ring, policy {}",
            args.baseline_seconds, args.size, args.capacity, args.policy
        );
        match baseline::run(&args, producers, gpu) {
            Ok(base) => {
                println!(
                    "  bare ring {:.3} M msgs/s, {:.3} GB/s ({}){}",
                    base.rate / 1e6,
                    base.bytes_per_sec / 1e9,
                    base.shape,
                    if base.clean { "" } else { ": NOT CLEAN" }
                );
                Some(base)
            }
            Err(err) => {
                println!("  the baseline failed: {err}");
                println!("RESULT: FAIL");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    if args.raw {
        let pass = baseline.is_some_and(|base| base.clean);
        println!("RESULT: {}", if pass { "PASS" } else { "FAIL" });
        return if pass {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }

    let Some(saturated) = app::run(&args, producers, verifiers, None) else {
        println!("the ECS run ended without a summary\nRESULT: FAIL");
        return ExitCode::FAILURE;
    };
    for line in &saturated.lines {
        println!("{line}");
    }
    let mut loads = Vec::new();
    for &load in args.load.iter().filter(|&&load| load > 0.0) {
        let rate = load * saturated.figures.rate;
        if rate.is_nan() || rate <= 0.0 || !saturated.pass {
            break;
        }
        println!();
        match app::run(&args, producers, verifiers, Some(rate)) {
            Some(outcome) => {
                // The light-load runs' own summaries: their errors and verdict lines.
                for line in outcome.lines.iter().filter(|line| {
                    line.starts_with("  messages")
                        || line.starts_with("  errors")
                        || line.starts_with("  verdict")
                        || line.contains("failed:")
                }) {
                    println!("{line}");
                }
                loads.push((load, outcome));
            }
            None => {
                println!("the light-load run ended without a summary\nRESULT: FAIL");
                return ExitCode::FAILURE;
            }
        }
    }
    let (lines, pass) = report::report(&args, baseline.as_ref(), &saturated, &loads);
    for line in lines {
        println!("{line}");
    }
    println!("RESULT: {}", if pass { "PASS" } else { "FAIL" });
    if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Whether the stress producers will run on a GPU (a driver with at least one device).
fn gpu_producers(args: &Args) -> bool {
    #[cfg(feature = "cuda")]
    {
        !args.cpu && perdix_transport::cuda::device_count().is_ok_and(|n| n > 0)
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = args;
        false
    }
}

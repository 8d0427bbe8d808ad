//! `benchmark --latency-report`: every latency figure of docs/PERFORMANCE.md ("Latency") from
//! one process, each with its method, both ring modes side by side:
//!
//! - one-way at light load (1 GPU thread, 32 B every 10 µs): GPU stamp mapped onto the CPU
//!   clock → the consumer's read; the calibration's bound beside it;
//! - the ring round trip (CPU doorbell → a polling kernel's `perdix_emit` → the CPU consumer),
//!   on the CPU clock alone, and each emit's GPU-side cost (`%globaltimer` around the call);
//! - the flag ping-pong through pinned memory (no ring: the floor of a CPU→GPU→CPU exchange);
//! - under load (32 B, full grid, 8 rings and consumers): each mode's peak, then paced runs at
//!   50 % and 90 % of it, stamp → consumer sampled every 16th message.

use std::time::Duration;

use perdix_transport::cuda::GpuContext;
use perdix_transport::telemetry::LatencySummary;
use perdix_transport::testing::gpu::{self as stress, GpuStress, GpuStressReport, RoundTrip};
use perdix_transport::testing::stress::Throughput;
use perdix_transport::{Error, RingMode};

const MODES: [RingMode; 2] = [RingMode::Throughput, RingMode::LowLatency];

/// One line of the under-load table.
struct Loaded {
    mode: RingMode,
    share: f64,
    report: GpuStressReport,
}

/// Runs the study and prints its table; returns whether every stress run verified clean.
pub fn run(gpu: &GpuContext, seconds: f64, rounds: u32) -> Result<bool, Error> {
    let mut clean = true;
    let mut light = Vec::new();
    for mode in MODES {
        eprintln!("benchmark: latency: light load, {mode}");
        let config = GpuStress {
            mode,
            ..GpuStress::light_load_latency(Duration::from_secs_f64(seconds))
        };
        let report = stress::run(gpu, &config)?;
        clean &= report.is_clean();
        light.push(report);
    }
    let mut trips: Vec<RoundTrip> = Vec::new();
    for (mode, warps) in [
        (RingMode::Throughput, 16),
        (RingMode::LowLatency, 1),
        (RingMode::LowLatency, 16),
        (RingMode::LowLatency, 32),
    ] {
        eprintln!("benchmark: latency: ring round trip, {mode}, {warps} polling warps");
        trips.push(stress::ring_round_trip(gpu, mode, rounds, warps)?);
    }
    eprintln!("benchmark: latency: flag ping-pong");
    let ping = stress::ping_pong(gpu, rounds)?.summary();
    let mut loaded = Vec::new();
    for mode in MODES {
        let base = GpuStress {
            grid: gpu.multiprocessors(),
            block: 256,
            capacity: 8192,
            rings: 8,
            consumers: 8,
            size: 32,
            mode,
            duration: Duration::from_secs_f64(seconds),
            latency_every: 16,
            ..GpuStress::default()
        };
        eprintln!("benchmark: latency: peak, {mode}");
        let peak = stress::run(gpu, &base)?;
        clean &= peak.is_clean();
        let rate = peak.msgs_per_sec();
        let producers = base.producers() as f64;
        loaded.push(Loaded {
            mode,
            share: 1.0,
            report: peak,
        });
        for share in [0.5, 0.9] {
            let interval_ns = (producers / (share * rate) * 1e9) as u64;
            eprintln!(
                "benchmark: latency: {mode} at {share:.0}% of peak ({interval_ns} ns a thread)",
                share = share * 100.0
            );
            let report = stress::run(
                gpu,
                &GpuStress {
                    interval_ns,
                    ..base.clone()
                },
            )?;
            clean &= report.is_clean();
            loaded.push(Loaded {
                mode,
                share,
                report,
            });
        }
    }
    print(gpu, &light, &trips, &ping, &loaded);
    Ok(clean)
}

fn quantiles(s: &LatencySummary) -> String {
    format!(
        "p50 {:>6} p99 {:>7} p99.9 {:>8} max {:>9} ({} samples)",
        s.p50_ns, s.p99_ns, s.p999_ns, s.max_ns, s.count
    )
}

fn print(
    gpu: &GpuContext,
    light: &[GpuStressReport],
    trips: &[RoundTrip],
    ping: &LatencySummary,
    loaded: &[Loaded],
) {
    println!("latency on {} (ns)", gpu.name());
    println!("one-way GPU stamp -> CPU read, 1 thread, 32 B every 10 us (clock mapping; bound = calibration error):");
    for report in light {
        let clock = report.clock.unwrap_or_default();
        println!(
            "  {:<12} {}  bound ±{} ns, residual {} ns, early {}",
            report.config.mode.to_string(),
            quantiles(&report.latency.summary()),
            clock.error_ns,
            report.clock_residual_ns.unwrap_or(0),
            report.early_stamps
        );
    }
    println!("ring round trip: CPU doorbell -> GPU perdix_emit (8 B) -> CPU consumer (CPU clock only); emit = %globaltimer around perdix_emit:");
    for trip in trips {
        println!(
            "  {:<12} {:>2} warps  round trip {}",
            trip.mode.to_string(),
            trip.warps,
            quantiles(&trip.round_trip.summary())
        );
        println!(
            "  {:<12} {:>2} warps  emit       {}",
            "",
            trip.warps,
            quantiles(&trip.emit.summary())
        );
    }
    println!(
        "flag ping-pong CPU->GPU->CPU through pinned memory (no ring): {}",
        quantiles(ping)
    );
    println!("under load: 32 B, full grid x 256 threads, 8 rings x 8,192 slots, 8 consumers, stamp -> read every 16th message:");
    for line in loaded {
        let r = &line.report;
        println!(
            "  {:<12} {:>4}  {:>7.1} M msgs/s  {}  clean {}",
            line.mode.to_string(),
            if line.share >= 1.0 {
                "peak".to_string()
            } else {
                format!("{:.0}%", line.share * 100.0)
            },
            r.msgs_per_sec() / 1e6,
            quantiles(&r.latency.summary()),
            if r.is_clean() { "yes" } else { "NO" }
        );
    }
}

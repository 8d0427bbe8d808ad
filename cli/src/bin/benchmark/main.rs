//! Throughput and round-trip latency of the transport.
//!
//! ```text
//! cargo run --release --bin benchmark            # table
//! cargo run --release --bin benchmark -- --json  # only JSON on stdout
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use perdix_transport::testing::harness::{self, SpscRun};
use perdix_transport::testing::stress::Throughput;
use perdix_transport::Error;

#[cfg(feature = "cuda")]
mod gpu;
#[cfg(feature = "cuda")]
mod multi;

/// Measures msgs/s and GB/s for 32 B and 224 B messages, and round-trip latency.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Seconds per throughput run.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Ring capacity in slots (raised per size to at least 4 messages' slots).
    #[arg(long, default_value_t = 4096)]
    capacity: usize,
    /// Message sizes in bytes (multiples of 8, at least 16; above 224 a message spans several
    /// slots).
    #[arg(long, value_delimiter = ',', default_values_t = [32usize, 224])]
    sizes: Vec<usize>,
    /// Round trips timed.
    #[arg(long, default_value_t = 1_000_000)]
    round_trips: u64,
    /// Print only JSON on stdout (logs go to stderr).
    #[arg(long)]
    json: bool,
    /// GPU producers (used when a CUDA device is present).
    #[cfg(feature = "cuda")]
    #[command(flatten)]
    gpu: gpu::GpuArgs,
}

/// One throughput row.
struct Row {
    size: usize,
    messages: u64,
    seconds: f64,
    msgs_per_sec: f64,
    gb_per_sec: f64,
    clean: bool,
}

fn main() -> ExitCode {
    // RUST_LOG, else errors only: the tables stay readable.
    perdix_transport::testing::init_logging("error");
    let args = Args::parse();
    #[cfg(feature = "cuda")]
    if let (false, Some(devices)) = (args.gpu.cpu, &args.gpu.devices) {
        return exit(multi::run(devices, &args));
    }
    #[cfg(feature = "cuda")]
    if !args.gpu.cpu {
        match gpu::open() {
            Ok(device) => {
                eprintln!(
                    "benchmark: backend cuda: GPU producers on {}",
                    device.name()
                );
                return exit(gpu::run(&device, &args));
            }
            Err(err) => eprintln!("benchmark: no GPU ({err}); backend host: CPU producers"),
        }
    }
    exit(run_cpu(&args))
}

/// `capacity`, raised for big messages to hold at least four of `size` bytes (a power of two):
/// small sizes keep the configured capacity, so their figures stay comparable.
fn capacity_for(capacity: usize, size: usize) -> usize {
    capacity.max((4 * perdix_transport::layout::slots_for(size)).next_power_of_two())
}

fn exit(result: Result<bool, Error>) -> ExitCode {
    match result {
        Ok(clean) if clean => ExitCode::SUCCESS,
        Ok(_) => {
            eprintln!("benchmark: verification failed");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("benchmark: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run_cpu(args: &Args) -> Result<bool, Error> {
    let mut rows = Vec::new();
    for &size in &args.sizes {
        eprintln!(
            "benchmark: host ring, {size} B messages, {} s",
            args.seconds
        );
        let report = SpscRun {
            capacity: capacity_for(args.capacity, size),
            size,
            messages: None,
            duration: Duration::from_secs_f64(args.seconds),
            ..SpscRun::default()
        }
        .run(|_| {})?;
        rows.push(Row {
            size,
            messages: report.verify.messages,
            seconds: report.elapsed.as_secs_f64(),
            msgs_per_sec: report.msgs_per_sec(),
            gb_per_sec: report.bytes_per_sec() / 1e9,
            clean: report.verify.is_clean(),
        });
    }
    eprintln!("benchmark: {} round trips", args.round_trips);
    let rt = harness::round_trip(args.round_trips, args.round_trips / 10, 32)?.summary();
    let clean = rows.iter().all(|r| r.clean);
    if args.json {
        let rows_json: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{{\"size\":{},\"messages\":{},\"seconds\":{:.3},\"msgs_per_sec\":{:.0},\"gb_per_sec\":{:.4},\"verified\":{}}}",
                    r.size, r.messages, r.seconds, r.msgs_per_sec, r.gb_per_sec, r.clean
                )
            })
            .collect();
        println!(
            "{{\"backend\":\"host\",\"producer\":\"cpu\",\"capacity\":{},\"throughput\":[{}],\"round_trip_ns\":{{\"samples\":{},\"p50\":{},\"p99\":{},\"p999\":{},\"mean\":{:.1}}}}}",
            args.capacity,
            rows_json.join(","),
            rt.count,
            rt.p50_ns,
            rt.p99_ns,
            rt.p999_ns,
            rt.mean_ns
        );
    } else {
        println!(
            "backend host (CPU producer thread -> CPU consumer), capacity {}",
            args.capacity
        );
        println!(
            "{:>6} {:>12} {:>12} {:>9} {:>9}",
            "size", "messages", "M msgs/s", "GB/s", "verified"
        );
        for r in &rows {
            println!(
                "{:>5}B {:>12} {:>12.2} {:>9.3} {:>9}",
                r.size,
                r.messages,
                r.msgs_per_sec / 1e6,
                r.gb_per_sec,
                if r.clean { "yes" } else { "NO" }
            );
        }
        println!(
            "round trip (32 B, echo thread): p50 {} ns, p99 {} ns, p99.9 {} ns, mean {:.0} ns, {} samples",
            rt.p50_ns, rt.p99_ns, rt.p999_ns, rt.mean_ns, rt.count
        );
    }
    Ok(clean)
}

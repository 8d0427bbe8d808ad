//! The seed's five transport scenarios, with a PASS/FAIL table; exits non-zero on any failure.
//!
//! ```text
//! cargo run --release --bin transport_test
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use perdix_transport::testing::harness::{self, SpscRun};
use perdix_transport::testing::stress::Throughput;
use perdix_transport::{Buffer, Error, Policy};

#[cfg(feature = "cuda")]
mod gpu;

/// Runs the seed scenarios: basic round trip, stress, latency, backpressure, wraparound.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Messages in the stress scenario.
    #[arg(long, default_value_t = 2_000_000)]
    messages: u64,
    /// Ring capacity (slots) for the stress scenario.
    #[arg(long, default_value_t = 4096)]
    capacity: usize,
    /// Round trips timed in the latency scenario.
    #[arg(long, default_value_t = 100_000)]
    round_trips: u64,
    /// Use CPU producers even when a GPU is present.
    #[arg(long)]
    cpu: bool,
}

/// One scenario's result.
struct Outcome {
    name: &'static str,
    result: Result<String, String>,
    elapsed: Duration,
}

fn main() -> ExitCode {
    // RUST_LOG, else errors only: the tables stay readable.
    perdix_transport::testing::init_logging("error");
    let args = Args::parse();
    #[cfg(feature = "cuda")]
    if !args.cpu {
        match gpu::open() {
            Ok(device) => {
                println!(
                    "perdix transport_test: backend cuda-pinned (GPU producer kernels on {})",
                    device.name()
                );
                return print_table(&gpu::scenarios(&device, &args));
            }
            Err(err) => eprintln!("transport_test: no GPU ({err}); using CPU producers"),
        }
    }
    println!("perdix transport_test: backend host (CPU producers)");
    let outcomes = cpu_scenarios(&args);
    print_table(&outcomes)
}

fn cpu_scenarios(args: &Args) -> Vec<Outcome> {
    vec![
        timed("basic round trip", basic),
        timed("stress", || stress(args)),
        timed("latency", || latency(args)),
        timed("backpressure", backpressure),
        timed("wraparound", wraparound),
    ]
}

fn timed(name: &'static str, f: impl FnOnce() -> Result<String, String>) -> Outcome {
    let start = Instant::now();
    let result = f();
    Outcome {
        name,
        result,
        elapsed: start.elapsed(),
    }
}

fn print_table(outcomes: &[Outcome]) -> ExitCode {
    println!("{:<18} {:<6} {:>9}  detail", "scenario", "result", "time");
    let mut failed = 0;
    for o in outcomes {
        let (verdict, detail) = match &o.result {
            Ok(detail) => ("PASS", detail.as_str()),
            Err(detail) => {
                failed += 1;
                ("FAIL", detail.as_str())
            }
        };
        println!(
            "{:<18} {:<6} {:>7.1}ms  {}",
            o.name,
            verdict,
            o.elapsed.as_secs_f64() * 1e3,
            detail
        );
    }
    println!("{} passed, {} failed", outcomes.len() - failed, failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn check(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

fn basic() -> Result<String, String> {
    let mut buffer = Buffer::new(4096).map_err(|e| e.to_string())?;
    let (mut producer, mut consumer) = buffer.split_mut();
    producer
        .try_produce(b"Hello from GPU!")
        .map_err(|e| e.to_string())?;
    let msg = consumer.try_consume().ok_or("no message arrived")?;
    check(&*msg == b"Hello from GPU!", || format!("got {msg:?}"))?;
    Ok(format!("{msg:?}"))
}

fn stress(args: &Args) -> Result<String, String> {
    let run = SpscRun {
        capacity: args.capacity,
        size: 64,
        messages: Some(args.messages),
        full_check: true,
        ..SpscRun::default()
    };
    let report = run.run(|_| {}).map_err(|e| e.to_string())?;
    let v = report.verify;
    check(v.is_clean() && v.messages == args.messages, || {
        format!("{v:?}")
    })?;
    Ok(format!(
        "{} msgs of 64 B verified, {:.1} M msgs/s",
        v.messages,
        report.msgs_per_sec() / 1e6
    ))
}

fn latency(args: &Args) -> Result<String, String> {
    let hist = harness::round_trip(args.round_trips, 10_000, 32).map_err(|e| e.to_string())?;
    check(hist.len() == args.round_trips, || {
        format!("{} of {} round trips", hist.len(), args.round_trips)
    })?;
    let s = hist.summary();
    Ok(format!(
        "round trip p50 {} ns, p99 {} ns, p99.9 {} ns ({} samples)",
        s.p50_ns, s.p99_ns, s.p999_ns, s.count
    ))
}

fn backpressure() -> Result<String, String> {
    let capacity = 8;
    let (mut producer, mut consumer) = Buffer::builder(capacity)
        .policy(Policy::DropNewest)
        .build()
        .map_err(|e| e.to_string())?
        .into_split();
    for i in 0..capacity as u8 {
        producer.try_produce(&[i]).map_err(|e| e.to_string())?;
    }
    check(producer.try_produce(b"x") == Err(Error::Full), || {
        "a full ring accepted a message".into()
    })?;
    for _ in 0..5 {
        check(producer.produce(b"x") == Err(Error::Full), || {
            "DropNewest did not drop".into()
        })?;
    }
    let stats = producer.stats();
    check(stats.drops == 5 && stats.stalls == 1, || {
        format!("counters {stats:?}")
    })?;
    // Block: a blocked producer resumes once the consumer frees a slot.
    producer.set_policy(Policy::Block);
    let waiter = std::thread::spawn(move || producer.produce(b"late").map(|()| producer));
    std::thread::sleep(Duration::from_millis(20));
    let mut seen = Vec::new();
    while seen.len() < capacity + 1 {
        match consumer.consume_timeout(Duration::from_secs(5)) {
            Ok(Some(msg)) => seen.push(msg.to_vec()),
            other => return Err(format!("waiting for messages: {other:?}")),
        }
    }
    let producer = waiter
        .join()
        .map_err(|_| "producer thread panicked".to_string())?
        .map_err(|e| e.to_string())?;
    let expected: Vec<Vec<u8>> = (0..capacity as u8)
        .map(|i| vec![i])
        .chain([b"late".to_vec()])
        .collect();
    check(seen == expected, || {
        format!("order/content wrong: {seen:?}")
    })?;
    Ok(format!(
        "Full without loss, DropNewest dropped exactly 5, Block resumed ({} full events)",
        producer.stats().stalls
    ))
}

fn wraparound() -> Result<String, String> {
    let laps = 10_000u64;
    let mut buffer = Buffer::new(2).map_err(|e| e.to_string())?;
    let (mut producer, mut consumer) = buffer.split_mut();
    for i in 0..laps * 2 {
        producer
            .try_produce(&i.to_le_bytes())
            .map_err(|e| e.to_string())?;
        let msg = consumer.try_consume().ok_or("message missing")?;
        check(msg.seq() == i && *msg == i.to_le_bytes(), || {
            format!("at {i}: {msg:?}")
        })?;
    }
    Ok(format!(
        "{laps} laps of a 2-slot ring, every sequence checked"
    ))
}

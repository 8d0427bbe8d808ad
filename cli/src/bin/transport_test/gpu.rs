//! The five seed scenarios with GPU producers: kernels write the rings, CPU threads read them.

use std::time::{Duration, Instant};

use perdix_transport::cuda::{GpuContext, GpuKernel, GpuMemory, GpuProducer};
use perdix_transport::testing::gpu::{self as stress, GpuStress, GpuStressReport};
use perdix_transport::testing::stress::Throughput;
use perdix_transport::{Error, Policy};

use super::{check, timed, Args, Outcome};

/// Opens the GPU, or says why not.
pub fn open() -> Result<GpuContext, Error> {
    GpuContext::new(0)
}

/// The scenarios, in the CPU version's order.
pub fn scenarios(gpu: &GpuContext, args: &Args) -> Vec<Outcome> {
    vec![
        timed("basic round trip", || basic(gpu)),
        timed("stress", || stress_run(gpu, args)),
        timed("latency", || latency(gpu, args)),
        timed("backpressure", || backpressure(gpu)),
        timed("wraparound", || wraparound(gpu)),
    ]
}

fn err(e: Error) -> String {
    e.to_string()
}

const HELLO: &str = r#"
#include "perdix.cuh"
extern "C" __global__ void hello(const perdix_producer* p) {
    const char msg[] = "Hello from GPU!";
    if (threadIdx.x == 0 && blockIdx.x == 0) perdix_emit(p, 1, msg, sizeof msg - 1);
}
"#;

fn basic(gpu: &GpuContext) -> Result<String, String> {
    let (mut producer, mut consumer) = GpuProducer::new(gpu, 4096).map_err(err)?;
    // SAFETY: `from_source`'s contract: (1) `hello` takes `const perdix_producer*` first;
    // (2) it touches the ring only through `perdix_emit`; (3) it writes nothing else (its
    // message is a local array); (4) under any grid and block (one thread sends).
    let hello = unsafe { GpuKernel::from_source(HELLO, "hello") }
        .name("hello.cu")
        .grid(1)
        .block(32);
    // SAFETY: `launch`'s contract: (1) as above, and `hello` takes no other argument and none
    // was added; (2) no address to keep alive; (3) nothing of ours for it to read.
    unsafe { producer.launch(&hello) }.map_err(err)?;
    let counters = producer.finish().map_err(err)?;
    let msg = consumer
        .consume_timeout(Duration::from_secs(5))
        .map_err(err)?
        .ok_or("no message arrived")?;
    check(&*msg == b"Hello from GPU!" && msg.kind() == 1, || {
        format!("got {msg:?}")
    })?;
    let shown = format!("{msg:?}");
    drop(msg);
    check(counters.emitted == 1, || format!("counters {counters:?}"))?;
    check(
        matches!(consumer.try_consume_checked(), Err(Error::Disconnected)),
        || "producer end not reported".into(),
    )?;
    Ok(format!("kernel -> {shown}"))
}

fn describe(report: &GpuStressReport) -> String {
    format!(
        "{} msgs of {} B verified from {} GPU threads, {:.1} M msgs/s ({:.2} GB/s), {} consumer threads",
        report.verify.messages,
        report.config.size,
        report.config.producers(),
        report.msgs_per_sec() / 1e6,
        report.bytes_per_sec() / 1e9,
        report.config.consumers
    )
}

fn clean(report: &GpuStressReport) -> Result<(), String> {
    check(report.is_clean(), || {
        format!(
            "verify {:?}, counters {:?}, attempts {}, sent {}, consumer error {:?}",
            report.verify, report.counters, report.attempts, report.sent, report.consumer_error
        )
    })
}

fn stress_run(gpu: &GpuContext, args: &Args) -> Result<String, String> {
    let config = GpuStress {
        grid: gpu.multiprocessors(),
        block: 256,
        capacity: 65_536,
        rings: 2,
        consumers: 2,
        size: 64,
        full_check: true,
        ..GpuStress::default()
    };
    let per_producer = args.messages.div_ceil(config.producers()).max(1);
    let config = GpuStress {
        messages_per_producer: Some(per_producer),
        ..config
    };
    let report = stress::run(gpu, &config).map_err(err)?;
    clean(&report)?;
    check(
        report.verify.messages == per_producer * config.producers(),
        || format!("{} messages", report.verify.messages),
    )?;
    Ok(describe(&report))
}

fn latency(gpu: &GpuContext, args: &Args) -> Result<String, String> {
    let config = GpuStress::light_load_latency(Duration::from_secs(1));
    let report = stress::run(gpu, &config).map_err(err)?;
    clean(&report)?;
    let s = report.latency.summary();
    check(s.count > 1000, || format!("{} latency samples", s.count))?;
    let rounds = args.round_trips.clamp(1000, 200_000) as u32;
    let rt = stress::ping_pong(gpu, rounds).map_err(err)?.summary();
    let calib = report.clock.unwrap_or_default();
    Ok(format!(
        "one-way GPU->CPU p50 {} ns, p99 {} ns (±{} ns calibration, {} samples); \
         ping-pong CPU->GPU->CPU p50 {} ns, p99 {} ns ({} samples)",
        s.p50_ns, s.p99_ns, calib.error_ns, s.count, rt.p50_ns, rt.p99_ns, rt.count
    ))
}

fn backpressure(gpu: &GpuContext) -> Result<String, String> {
    // Block: a full grid into a small ring; every message arrives, stalls are counted.
    let block = GpuStress {
        grid: gpu.multiprocessors(),
        block: 256,
        capacity: 1024,
        rings: 1,
        consumers: 1,
        size: 128,
        messages_per_producer: Some(32),
        full_check: true,
        ..GpuStress::default()
    };
    let report = stress::run(gpu, &block).map_err(err)?;
    clean(&report)?;
    check(report.counters.stalls > 0, || {
        "a 1,024-slot ring never filled".into()
    })?;
    let stalls = report.counters.stalls;
    // DropNewest: emitted + dropped == attempted, exactly, and nothing emitted is lost.
    let drop_newest = GpuStress {
        capacity: 256,
        policy: Policy::DropNewest,
        ..block
    };
    let report = stress::run(gpu, &drop_newest).map_err(err)?;
    clean(&report)?;
    let c = report.counters;
    // Dropping the consumer ends a kernel blocked on a full ring.
    let (mut producer, consumer) = GpuProducer::new(gpu, 1024).map_err(err)?;
    let kernel = stress::free_running_kernel(64, 0)
        .grid(gpu.multiprocessors())
        .block(256);
    kernel.launch(&mut producer).map_err(err)?;
    std::thread::sleep(Duration::from_millis(100));
    let blocked = !producer.is_idle().map_err(err)?;
    let started = Instant::now();
    drop(consumer);
    let ended = producer.wait(Some(Duration::from_secs(10))).map_err(err)?;
    check(blocked && ended, || {
        format!("blocked {blocked}, ended after the consumer left {ended}")
    })?;
    Ok(format!(
        "Block: {stalls} stalls, no loss; DropNewest: {} emitted + {} dropped = {} attempted; \
         dropped consumer ended a blocked kernel in {:.1} ms",
        c.emitted,
        c.drops,
        report.attempts,
        started.elapsed().as_secs_f64() * 1e3
    ))
}

fn wraparound(gpu: &GpuContext) -> Result<String, String> {
    let config = GpuStress {
        grid: 8,
        block: 256,
        capacity: 64,
        rings: 1,
        consumers: 1,
        size: 32,
        memory: GpuMemory::Pinned,
        messages_per_producer: Some(200),
        full_check: true,
        ..GpuStress::default()
    };
    let report = stress::run(gpu, &config).map_err(err)?;
    clean(&report)?;
    Ok(format!(
        "{} laps of a 64-slot ring by 2,048 GPU threads, every message verified",
        report.verify.messages / 64
    ))
}

//! GPU integration tests: ignored in CI (no GPU); run them on a machine with a CUDA device with
//! `cargo test --release --features cuda --test gpu -- --ignored`. Each says `skipped: no CUDA device` and
//! returns where there is none.
#![cfg(feature = "cuda")]

use std::time::{Duration, Instant};

use perdix_transport::clock;
use perdix_transport::cuda::{
    ConsumerGroup, GpuContext, GpuDevices, GpuKernel, GpuMemory, GpuProducer, GpuProducerSet,
};
use perdix_transport::testing::gpu::{
    self as stress, layout_probe, GpuStress, StressKernel, PROBE_CU,
};
use perdix_transport::{Error, Policy};

#[path = "support/child.rs"]
mod child;
#[path = "support/clean.rs"]
mod clean;
#[path = "support/device.rs"]
mod device;
#[path = "support/skip.rs"]
mod skip;

use clean::assert_clean;
use device::gpu;

#[test]
fn no_device_is_an_error_never_a_panic() {
    // Runs in CI too: without a driver this must be `NoDevice`, with one it must open.
    match GpuContext::new(0) {
        Ok(gpu) => println!("device: {gpu:?}"),
        Err(Error::NoDevice(why)) => println!("no device: {why}"),
        Err(err) => panic!("unexpected error: {err}"),
    }
    match GpuContext::new(4096) {
        Err(Error::NoDevice(_)) => {}
        other => panic!("ordinal 4096 should be NoDevice, got {other:?}"),
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn slot_offsets_agree_on_the_device() {
    let Some(gpu) = gpu() else { return };
    let probe = layout_probe(&gpu).expect("layout probe");
    println!("{probe:?}");
    assert_eq!(
        probe.device, probe.host,
        "slot layout: device vs src/ring/layout.rs"
    );
    // capacity, mask, rings, policy (Block), flags, ring index
    assert_eq!(probe.control, [1024, 1023, 2, 0, 0, 0]);
}

/// The `fields` kernel on `grid` blocks of 64 threads, sending messages of `kind`.
fn fields_kernel(grid: u32, kind: u32) -> GpuKernel {
    // SAFETY: `from_source`'s contract: (1) `fields` takes `const perdix_producer*` first;
    // (2) it touches the ring only through `perdix_emit`; (3) it writes only its local array;
    // (4) under any launch shape.
    let kernel = unsafe { GpuKernel::from_source(FIELDS_SRC, "fields") }
        .grid(grid)
        .block(64);
    // SAFETY: `arg`'s contract: (1) a `u32` for `unsigned kind`; (2) not an address.
    unsafe { kernel.arg(kind) }
}

/// Launches `kernel` (a `fields_kernel`) on `producer`.
fn launch_fields(producer: &mut GpuProducer, kernel: &GpuKernel) -> Result<(), Error> {
    // SAFETY: `launch`'s contract: the source and argument of `fields_kernel`; no address
    // among its arguments, nothing of ours for it to read.
    unsafe { producer.launch(kernel) }
}

const FIELDS_SRC: &str = r#"
#include "perdix.cuh"
// Odd lanes only (a divergent call), each sends `13 + lane % 8` bytes of its id.
extern "C" __global__ void fields(const perdix_producer* p, unsigned kind) {
    unsigned id = blockIdx.x * blockDim.x + threadIdx.x;
    if (threadIdx.x & 1) {
        unsigned char bytes[24];
        for (int i = 0; i < 24; i++) bytes[i] = (unsigned char)(id * 7 + i);
        perdix_emit(p, kind, bytes, 13 + (threadIdx.x % 8));
    }
}
"#;

#[test]
#[ignore = "needs a CUDA device"]
fn every_header_field_and_payload_byte_arrives() {
    let Some(gpu) = gpu() else { return };
    let (mut producer, mut consumer) = GpuProducer::new(&gpu, 1024).expect("producer");
    launch_fields(&mut producer, &fields_kernel(2, 42)).expect("launch");
    let counters = producer.finish().expect("kernel ran");
    assert_eq!(counters.emitted, 64);
    let mut seen = [false; 128];
    let mut count = 0;
    while let Ok(Some(msg)) = consumer.try_consume_checked() {
        let id = msg.producer();
        assert_eq!(id % 2, 1, "only odd threads send");
        assert_eq!(msg.kind(), 42);
        let lane = id % 64;
        assert_eq!(msg.len(), 13 + (lane % 8) as usize);
        for (i, &b) in msg.iter().enumerate() {
            assert_eq!(b, (id * 7 + i as u32) as u8, "byte {i} of producer {id}");
        }
        assert_eq!(msg.stamp_ns(), 0, "no timestamps asked for");
        assert!(!seen[id as usize], "duplicate from {id}");
        seen[id as usize] = true;
        count += 1;
    }
    assert_eq!(count, 64);
}

fn small(kernel: StressKernel, memory: GpuMemory, policy: Policy) -> GpuStress {
    GpuStress {
        grid: 8,
        block: 256,
        capacity: 4096,
        rings: 2,
        consumers: 2,
        size: 224,
        memory,
        policy,
        messages_per_producer: Some(500),
        full_check: true,
        kernel,
        ..GpuStress::default()
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn stress_is_verified_word_for_word_pinned_and_managed_warp_and_generic() {
    let Some(gpu) = gpu() else { return };
    for memory in [GpuMemory::Pinned, GpuMemory::Managed] {
        for kernel in [StressKernel::Warp, StressKernel::Generic] {
            let report = stress::run(&gpu, &small(kernel, memory, Policy::Block)).expect("run");
            assert_clean(&report);
            assert_eq!(report.verify.messages, 8 * 256 * 500);
        }
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn small_messages_and_per_block_lanes() {
    let Some(gpu) = gpu() else { return };
    for size in [16, 32, 40, 64, 96, 224] {
        let config = GpuStress {
            size,
            rings: 8,
            consumers: 3,
            ..small(StressKernel::Warp, GpuMemory::Pinned, Policy::Block)
        };
        let report = stress::run(&gpu, &config).expect("run");
        assert_clean(&report);
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn drop_newest_counts_every_drop_exactly() {
    let Some(gpu) = gpu() else { return };
    let config = GpuStress {
        capacity: 256,
        rings: 1,
        consumers: 1,
        messages_per_producer: Some(200),
        ..small(StressKernel::Warp, GpuMemory::Pinned, Policy::DropNewest)
    };
    let report = stress::run(&gpu, &config).expect("run");
    assert_clean(&report);
    println!("dropped {}", report.counters.drops);
    assert_eq!(
        report.attempts,
        report.counters.emitted + report.counters.drops
    );
}

#[test]
#[ignore = "needs a CUDA device"]
fn dropping_the_consumer_ends_a_blocked_kernel() {
    let Some(gpu) = gpu() else { return };
    let (mut producer, consumer) = GpuProducer::new(&gpu, 1024).expect("producer");
    let kernel = stress::free_running_kernel(64, 0).grid(132).block(256);
    kernel.launch(&mut producer).expect("launch");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !producer.is_idle().expect("query"),
        "blocked on a full ring"
    );
    let counters = producer.counters().expect("counters while running");
    assert_eq!(
        counters.emitted, 1024,
        "exactly one ring's worth, then blocked"
    );
    assert!(counters.stalls > 0);
    let started = Instant::now();
    drop(consumer);
    assert!(
        producer
            .wait(Some(Duration::from_secs(10)))
            .expect("no fault"),
        "kernel ended"
    );
    println!(
        "kernel ended {:?} after the consumer was dropped",
        started.elapsed()
    );
}

#[test]
#[ignore = "needs a CUDA device"]
fn dropping_the_producer_never_hangs() {
    let Some(gpu) = gpu() else { return };
    let (mut producer, consumer) = GpuProducer::new(&gpu, 1024).expect("producer");
    let kernel = stress::free_running_kernel(64, 0).grid(132).block(256);
    kernel.launch(&mut producer).expect("launch");
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    drop(producer);
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(consumer);
}

#[test]
#[ignore = "needs a CUDA device"]
fn request_stop_ends_a_duration_run_with_exact_counts() {
    let Some(gpu) = gpu() else { return };
    let config = GpuStress {
        grid: 132,
        messages_per_producer: None,
        duration: Duration::from_millis(500),
        full_check: false,
        ..small(StressKernel::Warp, GpuMemory::Pinned, Policy::Block)
    };
    let report = stress::run(&gpu, &config).expect("run");
    assert_clean(&report);
    assert!(report.verify.messages > 0);
}

#[test]
#[ignore = "needs a CUDA device"]
fn consumer_group_reads_several_rings() {
    let Some(gpu) = gpu() else { return };
    let (mut producer, consumers) = GpuProducer::builder(&gpu)
        .capacity(1024)
        .rings(4)
        .build()
        .expect("producer");
    launch_fields(&mut producer, &fields_kernel(8, 1)).expect("launch");
    let mut group = ConsumerGroup::new(consumers);
    let mut count = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while count < 8 * 32 && Instant::now() < deadline {
        count += group.drain(64, |_| {});
    }
    assert_eq!(count, 8 * 32);
    producer.finish().expect("finish");
    assert_eq!(group.drain_checked(64, |_| {}), Err(Error::Disconnected));
}

/// A producer set on `devices` (whose entries are the GPUs `ordinals`): every entry's rings carry
/// exactly its kernel's messages, and every consumer and message names its entry's device.
fn producer_set_on(devices: GpuDevices, ordinals: &[usize]) {
    let entries = ordinals.len();
    let (mut set, rings) =
        GpuProducerSet::build(&devices, |b| b.capacity(1024).rings(2)).expect("producer set");
    assert_eq!((set.len(), rings.len()), (entries, entries));
    // SAFETY: `GpuProducerSet::launch`'s contract: the source and argument of `fields_kernel`
    // on every device; no address among its arguments.
    unsafe { set.launch(&fields_kernel(8, 1)) }.expect("launch");
    let counters = set.finish().expect("finish");
    assert_eq!(counters.len(), entries);
    for ((consumers, counters), &ordinal) in rings.into_iter().zip(&counters).zip(ordinals) {
        let ordinal = u32::try_from(ordinal).expect("ordinal");
        let mut seen = 0u64;
        for mut consumer in consumers {
            assert_eq!(consumer.device(), Some(ordinal));
            while let Ok(Some(msg)) = consumer.try_consume_checked() {
                assert_eq!(msg.device(), Some(ordinal));
                seen += 1;
            }
            assert_eq!(
                consumer.try_consume_checked().err(),
                Some(Error::Disconnected)
            );
        }
        // Odd lanes of 8 blocks x 64 threads send one message each.
        assert_eq!((seen, counters.emitted), (8 * 32, 8 * 32));
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn producer_set_on_one_device() {
    if gpu().is_none() {
        return;
    }
    producer_set_on(GpuDevices::one(0), &[0]);
}

#[test]
#[ignore = "needs a CUDA device"]
fn producer_set_twice_on_one_device_keeps_entries_apart() {
    if gpu().is_none() {
        return;
    }
    producer_set_on(GpuDevices::List(vec![0, 0]), &[0, 0]);
}

#[test]
#[ignore = "needs a CUDA device"]
fn producer_set_on_every_device() {
    // One entry per GPU of the machine (one on a one-GPU machine, each its own device on more).
    if gpu().is_none() {
        return;
    }
    let count = perdix_transport::cuda::device_count().expect("device count");
    let ordinals: Vec<usize> = (0..count).collect();
    producer_set_on(GpuDevices::All, &ordinals);
}

#[test]
#[ignore = "needs a CUDA device"]
fn stress_on_two_entries_of_one_device_is_clean() {
    let Some(gpu) = gpu() else { return };
    stress_on_devices_is_clean(&[gpu.clone(), gpu]);
}

/// A small verified stress run on every entry of `gpus` at once: one clean report each.
fn stress_on_devices_is_clean(gpus: &[GpuContext]) {
    let config = small(StressKernel::Warp, GpuMemory::Pinned, Policy::Block);
    let reports = stress::run_devices(gpus, &config).expect("stress");
    assert_eq!(reports.len(), gpus.len());
    for report in &reports {
        assert_clean(report);
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn stress_on_every_device_is_clean() {
    if gpu().is_none() {
        return;
    }
    stress_on_devices_is_clean(&GpuDevices::All.open().expect("open every device"));
}

#[test]
fn devices_without_a_driver_are_no_device() {
    // Runs in CI too: no driver means `NoDevice` for every choice, never a panic.
    for devices in [GpuDevices::All, GpuDevices::one(0)] {
        match devices.open() {
            Ok(gpus) => assert!(!gpus.is_empty()),
            Err(Error::NoDevice(why)) => println!("{devices}: no device: {why}"),
            Err(err) => panic!("{devices}: unexpected error: {err}"),
        }
    }
    assert!(matches!(
        GpuDevices::List(vec![4096]).open(),
        Err(Error::NoDevice(_))
    ));
    // An empty list is a configuration error on any machine, not a missing device.
    assert!(matches!(
        GpuDevices::List(vec![]).open(),
        Err(Error::InvalidConfig(_))
    ));
}

#[test]
#[ignore = "needs a CUDA device"]
fn clock_calibration_has_a_stated_error_bound() {
    let Some(gpu) = gpu() else { return };
    let mapping = clock::calibrate_drift(&gpu, 200, Duration::from_millis(100)).expect("calibrate");
    println!(
        "clock: error ±{} ns, best round trip {} ns, drift {:.2} ppm",
        mapping.error_ns,
        mapping.best_round_trip_ns,
        mapping.drift_ppm()
    );
    assert!(mapping.error_ns < 20_000);
    let rt = stress::ping_pong(&gpu, 1000).expect("ping-pong").summary();
    println!("ping-pong: p50 {} ns, p99 {} ns", rt.p50_ns, rt.p99_ns);
    assert_eq!(rt.count, 1000);
}

#[test]
#[ignore = "needs a CUDA device"]
fn kernel_fault_surfaces_as_an_error() {
    // A fault poisons the whole context, so the faulting kernel runs in a child process.
    if child::is_child() {
        let Some(gpu) = gpu() else { return };
        let (mut producer, _consumer) = GpuProducer::new(&gpu, 64).expect("producer");
        // SAFETY: `from_source`'s contract: (1) `perdix_trap` takes `const perdix_producer*`
        // first; (2) it touches no ring; (3) it writes nothing: it traps, which is the point;
        // (4) under any launch shape.
        let trap = unsafe { GpuKernel::from_source(PROBE_CU, "perdix_trap") };
        // SAFETY: `arg`'s contract: (1) a `u32` for `unsigned really`; (2) not an address.
        let trap = unsafe { trap.arg(1u32) };
        // SAFETY: `launch`'s contract: the kernel and argument above; no address to keep alive.
        let launched = unsafe { producer.launch(&trap) };
        let waited = launched.and_then(|()| producer.wait(Some(Duration::from_secs(10))));
        println!("child outcome: {waited:?}");
        assert!(matches!(waited, Err(Error::KernelFault(_))), "{waited:?}");
        return;
    }
    if gpu().is_none() {
        return;
    }
    let started = Instant::now();
    let text = child::run("kernel_fault_surfaces_as_an_error");
    assert!(text.contains("KernelFault"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(60));
}

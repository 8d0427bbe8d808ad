//! GPU tests of messages of any size (issue 13): multi-slot messages from a full grid, pad
//! records at the wrap, DropNewest with big messages, `PERDIX_TOO_LARGE`, the general emit's
//! local and global paths, the whole-warp emit and the claim/commit. Ignored in CI (no GPU); run
//! with `cargo test --release --features cuda --test gpu_sizes -- --ignored`. Each says
//! `skipped: no CUDA device` and returns where there is none.
#![cfg(feature = "cuda")]

use perdix_transport::cuda::{GpuKernel, GpuMemory, GpuProducer};
use perdix_transport::layout::{max_message, slots_for, SLOT_PAYLOAD};
use perdix_transport::testing::gpu::{self as stress, GpuStress, StressKernel};
use perdix_transport::Policy;

#[path = "support/clean.rs"]
mod clean;
#[path = "support/device.rs"]
mod device;
#[path = "support/skip.rs"]
mod skip;

use clean::assert_clean;
use device::gpu;

/// A verified run of mixed sizes `min..=max` (every word checked).
fn mixed(kernel: StressKernel, capacity: usize, min: usize, max: usize) -> GpuStress {
    GpuStress {
        grid: 8,
        block: 128,
        capacity,
        rings: 2,
        consumers: 2,
        size: min,
        mixed_max: Some(max),
        messages_per_producer: Some(40),
        full_check: true,
        kernel,
        ..GpuStress::default()
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn mixed_sizes_up_to_the_largest_from_a_full_grid() {
    let Some(gpu) = gpu() else { return };
    let capacity = 4096;
    // Every size from 16 B to the ring's largest (half the ring), a few messages a thread.
    let config = GpuStress {
        grid: gpu.multiprocessors(),
        block: 256,
        rings: 4,
        consumers: 4,
        messages_per_producer: Some(2),
        ..mixed(StressKernel::Warp, capacity, 16, max_message(capacity))
    };
    let report = stress::run(&gpu, &config).expect("run");
    assert_clean(&report);
    assert_eq!(report.verify.messages, config.producers() * 2);
    // Mostly small and mid sizes, many laps: one-slot and multi-slot messages side by side.
    let config = GpuStress {
        grid: gpu.multiprocessors(),
        block: 256,
        rings: 4,
        consumers: 4,
        messages_per_producer: Some(100),
        ..mixed(StressKernel::Warp, capacity, 16, 2048)
    };
    let report = stress::run(&gpu, &config).expect("run");
    assert_clean(&report);
    assert!(report.counters.positions > report.counters.emitted);
}

#[test]
#[ignore = "needs a CUDA device"]
fn big_fixed_sizes_pinned_and_managed() {
    let Some(gpu) = gpu() else { return };
    for memory in [GpuMemory::Pinned, GpuMemory::Managed] {
        for size in [232, 480, 4096, 65_536] {
            let config = GpuStress {
                size,
                mixed_max: None,
                memory,
                messages_per_producer: Some(8),
                ..mixed(StressKernel::Warp, 4096, size, size)
            };
            let report = stress::run(&gpu, &config).expect("run");
            assert_clean(&report);
            let k = slots_for(size) as u64;
            assert_eq!(report.counters.emitted, config.producers() * 8);
            assert!(report.counters.positions >= report.counters.emitted * k);
        }
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn pad_records_at_the_wrap_of_a_small_ring() {
    let Some(gpu) = gpu() else { return };
    // A 32-slot ring (the GPU's smallest) carries up to 4,064 bytes (16 slots): sizes of 1 to 16
    // slots land at every offset, and every message that would cross the end follows a pad.
    for kernel in [
        StressKernel::Warp,
        StressKernel::WarpEmit,
        StressKernel::Generic,
    ] {
        let config = GpuStress {
            grid: 2,
            block: 64,
            rings: 1,
            consumers: 1,
            messages_per_producer: Some(200),
            ..mixed(kernel, 32, 200, max_message(32))
        };
        let report = stress::run(&gpu, &config).expect("run");
        assert_clean(&report);
        assert!(report.counters.positions > report.counters.emitted);
    }
    // One size of 5 slots (32 is no multiple of 5): runs of messages with a pad inside.
    let config = GpuStress {
        grid: 2,
        block: 64,
        rings: 1,
        consumers: 1,
        mixed_max: None,
        messages_per_producer: Some(200),
        ..mixed(StressKernel::Warp, 32, 1000, 1000)
    };
    let report = stress::run(&gpu, &config).expect("run");
    assert_clean(&report);
    let messages = report.counters.emitted;
    assert!(
        report.counters.positions > messages * 5,
        "pads were published"
    );
}

#[test]
#[ignore = "needs a CUDA device"]
fn drop_newest_drops_whole_big_messages_exactly() {
    let Some(gpu) = gpu() else { return };
    for kernel in [StressKernel::Warp, StressKernel::WarpEmit] {
        let config = GpuStress {
            rings: 1,
            consumers: 1,
            policy: Policy::DropNewest,
            messages_per_producer: Some(30),
            ..mixed(kernel, 256, 16, max_message(256))
        };
        let report = stress::run(&gpu, &config).expect("run");
        assert_clean(&report);
        println!("dropped {}", report.counters.drops);
        assert_eq!(
            report.attempts,
            report.counters.emitted + report.counters.drops
        );
    }
    // One size: the warp's messages reserved as runs, partly dropped.
    let config = GpuStress {
        rings: 1,
        consumers: 1,
        policy: Policy::DropNewest,
        mixed_max: None,
        messages_per_producer: Some(30),
        ..mixed(StressKernel::Warp, 256, 4096, 4096)
    };
    let report = stress::run(&gpu, &config).expect("run");
    assert_clean(&report);
    assert_eq!(
        report.attempts,
        report.counters.emitted + report.counters.drops
    );
}

#[test]
#[ignore = "needs a CUDA device"]
fn the_general_emit_from_local_and_global_buffers_and_the_warp_emit() {
    let Some(gpu) = gpu() else { return };
    // Generic: stack buffer up to 1 KiB (the owner lane shuffles), global scratch above it
    // (every lane loads); WarpEmit: the whole-warp API from global scratch.
    for (kernel, max) in [
        (StressKernel::Generic, 1024),
        (StressKernel::Generic, 16_384),
        (StressKernel::WarpEmit, 16_384),
    ] {
        for policy in [Policy::Block, Policy::DropNewest] {
            let config = GpuStress {
                policy,
                ..mixed(kernel, 1024, 16, max)
            };
            let report = stress::run(&gpu, &config).expect("run");
            assert_clean(&report);
        }
    }
}

const BYTES_SRC: &str = r#"
#include "perdix.cuh"
// Odd lanes only (divergent), each sends `len(id)` bytes of a pattern of its id, from a stack
// array (mode 0) or shared memory (mode 1): unaligned lengths, one-slot and multi-slot mixed.
extern "C" __global__ void bytes(const perdix_producer* p, unsigned mode) {
    __shared__ unsigned char shared[64][704];
    const unsigned id = blockIdx.x * blockDim.x + threadIdx.x;
    const unsigned len = 100 + (id % 8) * 83;  // 100 .. 681
    unsigned char local[704];
    unsigned char* mine = mode && threadIdx.x < 64 ? shared[threadIdx.x] : local;
    for (unsigned i = 0; i < len; i++) mine[i] = (unsigned char)(id * 7 + i);
    if (threadIdx.x & 1) perdix_emit(p, 5, mine + (id % 3), len - (id % 3));
}
"#;

#[test]
#[ignore = "needs a CUDA device"]
fn every_byte_of_odd_sized_messages_from_local_and_shared_memory_arrives() {
    let Some(gpu) = gpu() else { return };
    for mode in [0u32, 1] {
        let (mut producer, mut consumer) = GpuProducer::new(&gpu, 1024).expect("producer");
        // SAFETY: `from_source`'s contract: (1) `bytes` takes `const perdix_producer*` first;
        // (2) it touches the ring only through `perdix_emit`; (3) it writes only its local
        // array and its row of the shared one; (4) under any grid and block (a thread past
        // row 63 uses its local array).
        let kernel = unsafe { GpuKernel::from_source(BYTES_SRC, "bytes") }
            .grid(2)
            .block(64);
        // SAFETY: `arg`'s contract: (1) a `u32` for `unsigned mode`; (2) not an address.
        let kernel = unsafe { kernel.arg(mode) };
        // SAFETY: `launch`'s contract: the kernel and argument above; no address to keep
        // alive, nothing of ours for it to read.
        unsafe { producer.launch(&kernel) }.expect("launch");
        let counters = producer.finish().expect("kernel ran");
        assert_eq!(counters.emitted, 64);
        let mut count = 0;
        while let Ok(Some(msg)) = consumer.try_consume_checked() {
            let id = msg.producer();
            assert_eq!(id % 2, 1, "only odd threads send");
            let skip = id % 3;
            assert_eq!(msg.len(), (100 + (id % 8) * 83 - skip) as usize);
            for (i, &b) in msg.iter().enumerate() {
                let want = (id * 7 + skip + i as u32) as u8;
                assert_eq!(b, want, "mode {mode}: byte {i} of producer {id}");
            }
            count += 1;
        }
        assert_eq!(count, 64, "mode {mode}");
    }
}

const TOO_LARGE_SRC: &str = r#"
#include "perdix.cuh"
// Every thread tries a message one byte above the ring's largest (perdix_emit, then the whole
// warp's perdix_warp_emit) and reports both statuses in a 4-byte message of kind 9.
extern "C" __global__ void too_large(const perdix_producer* p, unsigned max) {
    __shared__ unsigned char data[16];
    const int a = perdix_emit(p, 1, data, max + 1);
    const int b = perdix_warp_emit(p, 2, data, max + 1);
    const unsigned both = (unsigned)a | ((unsigned)b << 8);
    perdix_emit(p, 9, &both, sizeof both);
}
"#;

#[test]
#[ignore = "needs a CUDA device"]
fn too_large_is_perdix_too_large_and_sends_nothing() {
    let Some(gpu) = gpu() else { return };
    let capacity = 64;
    let (mut producer, mut consumer) = GpuProducer::new(&gpu, capacity).expect("producer");
    let max = max_message(capacity) as u32;
    assert!(max as usize > SLOT_PAYLOAD);
    // SAFETY: `from_source`'s contract: (1) `too_large` takes `const perdix_producer*` first;
    // (2) it touches the ring only through `perdix.cuh`; (3) it writes nothing else (the
    // too-large calls read nothing); (4) under any grid and block.
    let kernel = unsafe { GpuKernel::from_source(TOO_LARGE_SRC, "too_large") }
        .grid(1)
        .block(32);
    // SAFETY: `arg`'s contract: (1) a `u32` for `unsigned max`; (2) not an address.
    let kernel = unsafe { kernel.arg(max) };
    // SAFETY: `launch`'s contract: the kernel and argument above; no address to keep alive.
    unsafe { producer.launch(&kernel) }.expect("launch");
    let counters = producer.finish().expect("kernel ran");
    assert_eq!((counters.emitted, counters.drops), (32, 0));
    assert_eq!(counters.positions, 32, "only the one-slot reports");
    let mut count = 0;
    while let Ok(Some(msg)) = consumer.try_consume_checked() {
        assert_eq!(msg.kind(), 9, "nothing but the reports");
        let mut word = [0u8; 4];
        word.copy_from_slice(&msg);
        // PERDIX_TOO_LARGE (3) from both.
        assert_eq!(u32::from_le_bytes(word), 3 | 3 << 8);
        count += 1;
    }
    assert_eq!(count, 32);
}

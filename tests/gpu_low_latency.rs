//! GPU tests of low-latency rings (`RingMode::LowLatency`, issue 23): flagged words from a full
//! warp and from divergent lanes, every length up to 104 bytes and `PERDIX_TOO_LARGE` past it,
//! claims refused, DropNewest's exact counts, and the ring round trip in both modes. Ignored in
//! CI (no GPU); run with `cargo test --release --features cuda --test gpu_low_latency --
//! --ignored`. Each says `skipped: no CUDA device` and returns where there is none.
#![cfg(feature = "cuda")]

use perdix_transport::cuda::{GpuKernel, GpuProducer};
use perdix_transport::layout::LL_MAX_PAYLOAD;
use perdix_transport::testing::gpu::{self as stress, GpuStress};
use perdix_transport::{Policy, RingMode};

#[path = "support/clean.rs"]
mod clean;
#[path = "support/device.rs"]
mod device;
#[path = "support/skip.rs"]
mod skip;

use clean::assert_clean;
use device::gpu;

/// 8 blocks of 256 threads, 500 messages each of `size` bytes into 2 low-latency rings.
fn small(size: usize, policy: Policy) -> GpuStress {
    let mut config = GpuStress::light_load_latency(std::time::Duration::ZERO);
    (config.grid, config.block, config.rings, config.consumers) = (8, 256, 2, 2);
    (config.size, config.policy, config.mode) = (size, policy, RingMode::LowLatency);
    (config.latency_every, config.interval_ns) = (0, 0);
    config.messages_per_producer = Some(500);
    config.full_check = true;
    config
}

#[test]
#[ignore = "needs a CUDA device"]
fn low_latency_stress_is_verified_word_for_word_block_and_drop_newest() {
    let Some(gpu) = gpu() else { return };
    for size in [16, 32, 64, 104] {
        for policy in [Policy::Block, Policy::DropNewest] {
            let config = GpuStress {
                capacity: if policy == Policy::DropNewest {
                    256
                } else {
                    4096
                },
                ..small(size, policy)
            };
            let report = stress::run(&gpu, &config).expect("run");
            assert_clean(&report);
            assert_eq!(report.verify.messages, 8 * 256 * 500, "{size} B, {policy}");
            assert_eq!(
                report.counters.emitted + report.counters.drops,
                report.attempts,
                "{size} B, {policy}: every attempt emitted or dropped"
            );
        }
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn a_low_latency_stress_run_of_a_size_it_cannot_carry_is_refused() {
    let Some(gpu) = gpu() else { return };
    assert!(stress::run(&gpu, &small(112, Policy::Block)).is_err());
}

const LENGTHS_SRC: &str = r#"
#include "perdix.cuh"
// Thread t sends t % 106 bytes (0..=105: 105 is one past the low-latency maximum) of
// `(t * 7 + i)`, odd threads of each warp first, then the even ones (divergent calls). Thread 0
// also tries a claim, which a low-latency ring refuses: it says so with a kind-77 message.
extern "C" __global__ void lengths(const perdix_producer* p) {
    unsigned t = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned char bytes[112];
    unsigned len = t % 106;
    for (unsigned i = 0; i < len; i++) bytes[i] = (unsigned char)(t * 7 + i);
    if (t & 1) perdix_emit(p, 5, bytes, len);
    __syncwarp();
    if (!(t & 1)) perdix_emit(p, 5, bytes, len);
    if (t == 0) {
        perdix_claim c = perdix_warp_claim_policy(p, 8, PERDIX_POLICY_BLOCK);
        if (c.status == PERDIX_TOO_LARGE) perdix_emit(p, 77, bytes, 0);
    }
}
"#;

#[test]
#[ignore = "needs a CUDA device"]
fn every_length_and_field_arrives_and_longer_messages_and_claims_are_refused() {
    let Some(gpu) = gpu() else { return };
    let (mut producer, mut consumers) = GpuProducer::builder(&gpu)
        .capacity(1024)
        .mode(RingMode::LowLatency)
        .build()
        .expect("producer");
    let mut consumer = consumers.pop().expect("one ring");
    assert_eq!(consumer.max_message(), LL_MAX_PAYLOAD);
    // SAFETY: `from_source`'s contract: (1) `lengths` takes `const perdix_producer*` alone;
    // (2) it touches the ring only through `perdix_emit` and a claim it never commits; (3) it
    // writes only its local array; (4) under any launch shape.
    let kernel = unsafe { GpuKernel::from_source(LENGTHS_SRC, "lengths") }
        .grid(4)
        .block(128);
    let threads = 4 * 128u32;
    let mut seen = vec![false; threads as usize];
    let mut refused_claim = false;
    // SAFETY: `launch`'s contract: the source above, no arguments besides the producer.
    unsafe { producer.launch(&kernel) }.expect("launch");
    let mut taken = 0u32;
    let expected = (0..threads).filter(|t| t % 106 <= 104).count() as u32 + 1;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while taken < expected && std::time::Instant::now() < deadline {
        let Some(msg) = consumer.try_consume_checked().expect("no fault") else {
            continue;
        };
        taken += 1;
        if msg.kind() == 77 {
            refused_claim = true;
            continue;
        }
        let t = msg.producer();
        assert_eq!(msg.kind(), 5);
        assert_eq!(msg.len() as u32, t % 106, "thread {t}");
        for (i, &b) in msg.iter().enumerate() {
            assert_eq!(b, (t * 7 + i as u32) as u8, "byte {i} of thread {t}");
        }
        assert!(!seen[t as usize], "duplicate from {t}");
        seen[t as usize] = true;
    }
    let counters = producer.finish().expect("kernel ran");
    assert_eq!(
        taken, expected,
        "every message up to 104 bytes, and the claim's answer"
    );
    assert_eq!(counters.emitted, u64::from(expected));
    assert!(
        refused_claim,
        "a claim on a low-latency ring is PERDIX_TOO_LARGE"
    );
    for t in 0..threads {
        assert_eq!(seen[t as usize], t % 106 <= 104, "thread {t}");
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn the_ring_round_trip_answers_every_round_in_both_modes() {
    let Some(gpu) = gpu() else { return };
    for mode in [RingMode::Throughput, RingMode::LowLatency] {
        let trip = stress::ring_round_trip(&gpu, mode, 500, 4).expect("round trip");
        assert_eq!(trip.round_trip.len(), 500, "{mode}");
        assert_eq!(trip.emit.len(), 500, "{mode}");
        assert!(trip.round_trip.summary().p50_ns > 0);
    }
}

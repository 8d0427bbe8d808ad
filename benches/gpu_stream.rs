//! GPU producers → CPU consumers: the verified full-grid stress run, timed by criterion.
//!
//! One iteration is one message. Each sample runs the stress kernel on every SM (256 threads a
//! block) for at least `iters` messages and scales the measured time to `iters`; every message
//! is checked (first and last 16 bytes) and a sample that does not verify panics. Without a CUDA
//! device the bench prints `skipped: no CUDA device` and measures nothing.
//!
//! ```text
//! cargo bench --bench gpu_stream
//! ```
//!
//! Groups: `gpu_stream/<size>B` with 1 and 2 consumer threads (one 64 K-slot ring each).
//! Figures: docs/PERFORMANCE.md (section GPU); the `benchmark` bin runs the longer matrix.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use perdix_transport::cuda::GpuContext;
use perdix_transport::testing::gpu::{self as stress, GpuStress};
use perdix_transport::Error;

fn gpu_stream(c: &mut Criterion) {
    let gpu = match GpuContext::new(0) {
        Ok(gpu) => gpu,
        Err(Error::NoDevice(why)) => {
            println!("skipped: no CUDA device ({why})");
            return;
        }
        Err(err) => panic!("opening the device: {err}"),
    };
    for size in [32usize, 224] {
        let mut group = c.benchmark_group(format!("gpu_stream/{size}B"));
        group.throughput(Throughput::Elements(1));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(10));
        for consumers in [1usize, 2] {
            let base = GpuStress {
                grid: gpu.multiprocessors(),
                block: 256,
                capacity: 65_536,
                rings: consumers,
                consumers,
                size,
                ..GpuStress::default()
            };
            // Check before timing: one small verified run.
            let check = GpuStress {
                messages_per_producer: Some(16),
                full_check: true,
                ..base.clone()
            };
            let report = stress::run(&gpu, &check).expect("check run");
            assert!(report.is_clean(), "check run failed: {:?}", report.verify);
            group.bench_with_input(
                BenchmarkId::new("consumers", consumers),
                &base,
                |b, base| {
                    b.iter_custom(|iters| {
                        let per_producer = iters.div_ceil(base.producers()).max(1);
                        let config = GpuStress {
                            messages_per_producer: Some(per_producer),
                            ..base.clone()
                        };
                        let report = stress::run(&gpu, &config).expect("stress run");
                        assert!(report.is_clean(), "{:?}", report.verify);
                        let messages = report.verify.messages.max(1);
                        report.elapsed.mul_f64(iters as f64 / messages as f64)
                    });
                },
            );
        }
        group.finish();
    }
}

criterion_group!(benches, gpu_stream);
criterion_main!(benches);

//! Cost of drawing `PerdixPanel` per frame, headless (no window, no GPU): the panel's layout and
//! shape generation inside `egui::Context::run_ui`, and the same plus tessellation into meshes
//! (what a renderer uploads). The goal and the measured cost per frame: docs/PERFORMANCE.md.
//!
//! `cargo bench --bench dashboard_panel --features dashboard`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use perdix_transport::dashboard::egui::Context;
use perdix_transport::dashboard::PerdixPanel;
use perdix_transport::telemetry::{Counters, Telemetry, TelemetrySnapshot};
use perdix_transport::testing::HeadlessFrame;

/// A minute of 10 Hz samples (600) and a latency histogram of ~30 buckets.
fn snapshot(samples: usize) -> TelemetrySnapshot {
    let mut telemetry = Telemetry::new("host", samples);
    telemetry.set_device("cpu");
    let mut totals = Counters {
        capacity: 4096,
        ..Counters::default()
    };
    for i in 0..=samples as u64 {
        totals.messages += 200_000 + (i % 13) * 10_000;
        totals.bytes += (200_000 + (i % 13) * 10_000) * 64;
        totals.stalls += i % 3;
        totals.occupancy = (i * 37) % 4096;
        telemetry.update(i as f64 / 10.0, totals);
    }
    for ns in (300..2_000_000).step_by(101) {
        telemetry.record_latency(ns);
    }
    telemetry.snapshot()
}

/// The bench's screen, in points.
const SCREEN: [f32; 2] = [1020.0, 860.0];

/// One frame: the panel laid out (and, if `tessellate`, turned into meshes).
fn frame(ctx: &Context, snapshot: &TelemetrySnapshot, frame: u64, tessellate: bool) -> usize {
    let frame = HeadlessFrame::run(ctx, SCREEN, frame, |ui| {
        ui.add(PerdixPanel::new(snapshot).plot_height(130.0));
    });
    if tessellate {
        frame.tessellate(ctx).len()
    } else {
        frame.shapes.len()
    }
}

fn bench_panel(c: &mut Criterion) {
    let mut group = c.benchmark_group("dashboard_panel");
    for samples in [60usize, 600] {
        let snap = snapshot(samples);
        for (name, tessellate) in [("layout", false), ("layout+tessellate", true)] {
            let ctx = Context::default();
            let mut n = 0u64;
            // Check before timing: the panel draws something.
            assert!(frame(&ctx, &snap, n, tessellate) > 0);
            group.bench_with_input(BenchmarkId::new(name, samples), &snap, |b, snap| {
                b.iter(|| {
                    n += 1;
                    frame(&ctx, snap, n, tessellate)
                });
            });
        }
    }
    // An empty context frame, to separate egui's own per-frame cost from the panel's.
    let ctx = Context::default();
    let mut n = 0u64;
    group.bench_function("empty_frame", |b| {
        b.iter(|| {
            n += 1;
            HeadlessFrame::run(&ctx, SCREEN, n, |ui| {
                ui.label("");
            })
        });
    });
    group.finish();
}

criterion_group!(benches, bench_panel);
criterion_main!(benches);

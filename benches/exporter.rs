//! What the Prometheus exporter (feature `prometheus`) adds to a frame (issue 22's goal:
//! <= 1 %): one `app.update()` of a `PerdixPlugin` app with 4 CPU rings, with no message (where
//! a fixed cost shows most) and with `FRAME` messages drained into ECS messages, without and
//! with `PerdixPrometheusPlugin` (127.0.0.1, port 0; it publishes the snapshot the plugin takes
//! every ~100 ms for its rate history), timed in turns in one process
//! (criterion would time one case after the other, and the noise of a shared machine between
//! them is larger than the difference); then, with criterion, the parts:
//! `PerdixRings::counters()`, `counters()` + `MetricsServer::publish`, and `encode_text` (a
//! scrape, on the server's thread).
//!
//! Each frame's rings are filled untimed.
//! `cargo bench --features prometheus --bench exporter`.

use std::time::{Duration, Instant};

use bevy_app::App;
use criterion::{criterion_group, Criterion};
use perdix_transport::bevy::{PerdixPlugin, PerdixRings};
use perdix_transport::export::{encode_text, MetricsServer, PerdixPrometheusPlugin};
use perdix_transport::telemetry::CountersSnapshot;
use perdix_transport::Producer;

/// Messages per timed frame (over all rings).
const FRAME: usize = 4096;
const RINGS: usize = 4;

/// An app with `RINGS` CPU rings, with the exporter if `exporter`.
fn app(exporter: bool) -> (App, Vec<Producer>) {
    let mut app = App::new();
    app.add_plugins(PerdixPlugin::default().capacity(8192));
    if exporter {
        let addr = "127.0.0.1:0".parse().expect("an address");
        app.add_plugins(PerdixPrometheusPlugin::new(addr));
    }
    let producers = (0..RINGS)
        .map(|i| {
            let mut rings = app.world_mut().resource_mut::<PerdixRings>();
            rings.add_producer(&format!("ring{i}")).expect("a ring")
        })
        .collect();
    app.update();
    (app, producers)
}

fn fill(producers: &mut [Producer], messages: usize) {
    for (i, producer) in producers.iter_mut().enumerate() {
        for n in 0..messages / RINGS {
            producer
                .try_produce_kind(7, &(n as u64 + i as u64).to_le_bytes())
                .expect("room");
        }
    }
}

/// Frames of `messages` messages, without and with the exporter: the apps take turns, 200
/// frames each, in a rotating order, for `ROUNDS` rounds (one process, so machine noise hits
/// all of them alike); prints each one's median, p25 and min of the rounds' mean frame time,
/// and the medians' ratio to `without`.
fn interleaved(messages: usize) {
    const ROUNDS: usize = 60;
    const FRAMES: u32 = 200;
    let cases = [("without", false), ("with", true)];
    let mut apps: Vec<_> = cases.iter().map(|&(_, exporter)| app(exporter)).collect();
    let mut means: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); cases.len()];
    for round in 0..ROUNDS {
        for turn in 0..cases.len() {
            let k = (round + turn) % cases.len();
            let (app, producers) = &mut apps[k];
            let mut total = Duration::ZERO;
            for _ in 0..FRAMES {
                fill(producers, messages);
                let start = Instant::now();
                app.update();
                total += start.elapsed();
            }
            means[k].push(total.as_secs_f64() * 1e6 / f64::from(FRAMES));
        }
    }
    let median = |k: usize| {
        let mut v = means[k].clone();
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[v.len() / 4], v[0])
    };
    let base = median(0).0;
    for (k, (name, _)) in cases.iter().enumerate() {
        let (p50, p25, min) = median(k);
        println!(
            "exporter_frame/{messages} msgs/{name:<11} median {p50:8.3} us  p25 {p25:8.3}  \
             min {min:8.3}  ratio {:.4}",
            p50 / base
        );
    }
}

fn parts(c: &mut Criterion) {
    let (mut app, mut producers) = app(false);
    fill(&mut producers, FRAME);
    app.update();
    let server = MetricsServer::bind("127.0.0.1:0".parse().expect("an address")).expect("bind");
    let rings = app.world().resource::<PerdixRings>();
    let snapshot: CountersSnapshot = rings.counters();
    let mut group = c.benchmark_group("exporter_parts");
    group.bench_function("counters", |b| b.iter(|| rings.counters()));
    group.bench_function("counters_publish", |b| {
        b.iter(|| server.publish(rings.counters()));
    });
    group.bench_function("encode_text", |b| b.iter(|| encode_text(&snapshot)));
    group.finish();
}

criterion_group!(benches, parts);

fn main() {
    for messages in [0, FRAME, 0, FRAME] {
        interleaved(messages);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

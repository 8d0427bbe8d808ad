//! Drain cost per message into Bevy ECS messages: one `app.update()` that moves a frame's worth
//! of ready messages out of the ring, in-system vs through a drain thread, typed vs raw; and the
//! bare ring's `Consumer::drain` over the same messages (reading one byte and the length of
//! each) for scale.
//!
//! Each iteration fills the ring with `FRAME` messages (untimed; in thread mode it also waits,
//! untimed, until the drain thread has copied them all out), then times the frame. Throughput is
//! messages per second of frame time. `bevy_drain_big` does the same with 4 KiB multi-slot
//! messages (raw, and as a `PerdixSlice<u64>` of 512 values), in payload bytes per second.
//! The `batch32` and `batch_envelope64` cases deliver the same messages as `typed32` and
//! `envelope64` as `PerdixBatch`es (one per ring and frame, or per drain thread batch).
//! `cargo bench --bench bevy_drain`.

use std::time::{Duration, Instant};

use bevy_app::App;
use bevy_ecs::prelude::*;
use bytemuck::{Pod, Zeroable};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use perdix_transport::bevy::{
    DrainMode, Envelope, PerdixAppExt, PerdixBatch, PerdixMessage, PerdixPlugin, PerdixRings,
    PerdixSlice,
};
use perdix_transport::{Buffer, Producer};

/// Messages per timed frame.
const FRAME: usize = 8192;
const KIND_TYPED: u32 = 1;
const KIND_RAW: u32 = 2;
const KIND_BATCH: u32 = 5;

#[derive(Message, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
struct Event32 {
    words: [u64; 4],
}

/// Counts what a reader sees, so the messages are consumed like in an app.
#[derive(Resource, Default)]
struct Seen(u64);

fn read_typed(mut reader: MessageReader<Event32>, mut seen: ResMut<Seen>) {
    for event in reader.read() {
        seen.0 += event.words[0] & 1;
    }
}

fn read_raw(mut reader: MessageReader<PerdixMessage>, mut seen: ResMut<Seen>) {
    for msg in reader.read() {
        seen.0 += msg.payload().len() as u64;
    }
}

fn read_batches(mut reader: MessageReader<PerdixBatch<Event32>>, mut seen: ResMut<Seen>) {
    for batch in reader.read() {
        for event in batch {
            seen.0 += event.words[0] & 1;
        }
    }
}

/// The app of the one-ring cases: `typed32` and `raw*` (`register` = [`per_message`]), or
/// `batch32`, the same ring and sizes delivered as `PerdixBatch<Event32>` ([`batches`]).
fn app(drain: DrainMode, register: fn(&mut App)) -> (App, Producer) {
    let mut app = App::new();
    app.add_plugins(
        PerdixPlugin::default()
            .capacity(FRAME * 2)
            .budget(FRAME)
            .drain(drain)
            .timestamps(false),
    )
    .init_resource::<Seen>();
    register(&mut app);
    let producer = app
        .world_mut()
        .resource_mut::<PerdixRings>()
        .add_producer("bench");
    match producer {
        Ok(producer) => (app, producer),
        Err(err) => panic!("add_producer: {err}"),
    }
}

fn per_message(app: &mut App) {
    app.add_perdix_message::<Event32>(KIND_TYPED)
        .add_perdix_raw(KIND_RAW)
        .add_systems(bevy_app::Update, (read_typed, read_raw));
}

fn batches(app: &mut App) {
    app.add_perdix_batch::<Event32>(KIND_BATCH)
        .add_systems(bevy_app::Update, read_batches);
}

fn fill(producer: &mut Producer, kind: u32, size: usize) {
    let payload = [0x5Au8; 224];
    for _ in 0..FRAME {
        if let Err(err) = producer.try_produce_kind(kind, &payload[..size]) {
            panic!("fill: {err}");
        }
    }
}

/// Times `iters` frames of `FRAME` messages of `kind`.
fn frames(
    app: &mut App,
    producer: &mut Producer,
    drain: DrainMode,
    kind: u32,
    size: usize,
    iters: u64,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        fill(producer, kind, size);
        total += timed_frame(app, drain, FRAME as u64);
    }
    total
}

/// Waits (untimed) until a drain thread has handed over the `frame` messages just sent, then
/// times one `app.update()` and checks it drained exactly them.
///
/// On a loaded machine a drain thread can outrun the fill and hand over many small batches; with
/// its channel full (16 batches) it waits for the frame with the rest: the wait goes on once the
/// count stops growing, and the frames it then takes to drain them all are timed together (each a
/// little slower, never faster).
fn timed_frame(app: &mut App, drain: DrainMode, frame: u64) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(10);
    if drain == DrainMode::Thread {
        // The most handed over so far (a thread retrying a full channel counts its batch, then
        // takes it back: the count flickers but its maximum stops growing).
        let (mut most, mut since) = (None, Instant::now());
        loop {
            let handed = app.world().resource::<PerdixRings>().handed_over();
            if handed >= frame {
                break;
            }
            if most.is_none_or(|most| handed > most) {
                (most, since) = (Some(handed), Instant::now());
            } else if since.elapsed() > Duration::from_millis(50) {
                break;
            }
            assert!(Instant::now() < deadline, "drain thread stalled");
            std::thread::yield_now();
        }
        // The thread counts a batch as handed over just before it sends it: give the send
        // time to land (untimed), or the frame may miss the last batch.
        std::thread::sleep(Duration::from_millis(1));
    }
    let before = app
        .world()
        .resource::<PerdixRings>()
        .counters()
        .total()
        .messages;
    let mut elapsed = Duration::ZERO;
    loop {
        let start = Instant::now();
        app.update();
        elapsed += start.elapsed();
        let taken = app
            .world()
            .resource::<PerdixRings>()
            .counters()
            .total()
            .messages
            - before;
        if taken >= frame {
            assert_eq!(taken, frame, "the frame drains exactly the messages sent");
            return elapsed;
        }
        // A batch still on its way, or a drain thread that waited for this frame (see above).
        let late = drain == DrainMode::Thread && Instant::now() < deadline;
        assert!(
            late,
            "one frame drains every message sent ({taken} of {frame})"
        );
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("bevy_drain");
    group.throughput(Throughput::Elements(FRAME as u64));
    for drain in [DrainMode::System, DrainMode::Thread] {
        for (what, kind, size) in [
            ("typed32", KIND_TYPED, 32),
            ("raw64", KIND_RAW, 64),
            ("raw224", KIND_RAW, 224),
        ] {
            let (mut app, mut producer) = app(drain, per_message);
            app.update(); // startup
            group.bench_function(format!("{drain}/{what}"), |b| {
                b.iter_custom(|iters| frames(&mut app, &mut producer, drain, kind, size, iters));
            });
        }
        let (mut app, mut producer) = app(drain, batches);
        app.update(); // startup
        group.bench_function(format!("{drain}/batch32"), |b| {
            b.iter_custom(|iters| frames(&mut app, &mut producer, drain, KIND_BATCH, 32, iters));
        });
    }
    // The bare ring: `Consumer::drain` over the same batch, reading one byte and the length.
    for size in [32usize, 64, 224] {
        let (mut producer, mut consumer) = match Buffer::new(FRAME * 2) {
            Ok(buffer) => buffer.into_split(),
            Err(err) => panic!("ring: {err}"),
        };
        group.bench_function(format!("ring_only/{size}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut sink = 0u64;
                for _ in 0..iters {
                    fill(&mut producer, KIND_RAW, size);
                    let start = Instant::now();
                    let n = consumer.drain(FRAME, |msg| {
                        let payload = msg.payload();
                        sink = sink.wrapping_add(u64::from(payload[0]) + payload.len() as u64);
                    });
                    total += start.elapsed();
                    assert_eq!(n, FRAME);
                }
                std::hint::black_box(sink);
                total
            });
        });
    }
    group.finish();
    bench_envelopes(c);
    bench_big(c);
}

/// 4 KiB messages a frame of `bevy_drain_big` (17 slots each: 4,352 of the ring's 16,384).
const BIG_FRAME: usize = 256;
const BIG: usize = 4096;
const KIND_SLICE: u32 = 4;

fn read_slices(mut reader: MessageReader<PerdixSlice<u64>>, mut seen: ResMut<Seen>) {
    for slice in reader.read() {
        seen.0 += slice.values.len() as u64;
    }
}

/// One frame of `BIG_FRAME` 4 KiB messages, raw or as slices, in each drain mode.
fn bench_big(c: &mut Criterion) {
    let mut group = c.benchmark_group("bevy_drain_big");
    group.throughput(Throughput::Bytes((BIG_FRAME * BIG) as u64));
    let payload = vec![0x5Au8; BIG];
    for drain in [DrainMode::System, DrainMode::Thread] {
        for (what, kind) in [("raw4k", KIND_RAW), ("slice4k", KIND_SLICE)] {
            let mut app = App::new();
            app.add_plugins(
                PerdixPlugin::default()
                    .capacity(16_384)
                    .budget(BIG_FRAME)
                    .drain(drain)
                    .timestamps(false),
            )
            .add_perdix_raw(KIND_RAW)
            .add_perdix_slice::<u64>(KIND_SLICE)
            .init_resource::<Seen>()
            .add_systems(bevy_app::Update, (read_raw, read_slices));
            let mut producer = match app
                .world_mut()
                .resource_mut::<PerdixRings>()
                .add_producer("bench")
            {
                Ok(producer) => producer,
                Err(err) => panic!("add_producer: {err}"),
            };
            app.update(); // startup
            group.bench_function(format!("{drain}/{what}"), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        for _ in 0..BIG_FRAME {
                            if let Err(err) = producer.try_produce_kind(kind, &payload) {
                                panic!("fill: {err}");
                            }
                        }
                        total += timed_frame(&mut app, drain, BIG_FRAME as u64);
                    }
                    total
                });
            });
        }
    }
    group.finish();
}

/// Rings and messages per ring of the envelope case: 4 × 16,384 = 65,536 a frame, enough for
/// the drain to take the rings in parallel tasks.
const RINGS: usize = 4;
const PER_RING: usize = 16_384;
const KIND_ENVELOPE: u32 = 3;

fn read_envelopes(mut reader: MessageReader<Envelope<[u64; 8]>>, mut seen: ResMut<Seen>) {
    for env in reader.read() {
        seen.0 += env.value[0] & 1;
    }
}

/// `Envelope<[u64; 8]>` (64-byte payloads) from 4 rings, one frame of 65,536 messages: the
/// frame-side cost `headless_stress` pays per message, without a producer to wait for.
fn read_envelope_batches(mut reader: MessageReader<PerdixBatch<[u64; 8]>>, mut seen: ResMut<Seen>) {
    for batch in reader.read() {
        let headers = batch.headers().unwrap_or_default();
        for (value, header) in batch.iter().zip(headers) {
            seen.0 += (value[0] ^ header.seq) & 1;
        }
    }
}

fn bench_envelopes(c: &mut Criterion) {
    let mut group = c.benchmark_group("bevy_drain_x4");
    group.throughput(Throughput::Elements((RINGS * PER_RING) as u64));
    for (drain, batch) in [
        (DrainMode::System, false),
        (DrainMode::Thread, false),
        (DrainMode::System, true),
        (DrainMode::Thread, true),
    ] {
        let mut app = App::new();
        app.add_plugins((
            bevy_app::TaskPoolPlugin::default(),
            PerdixPlugin::default()
                .capacity(PER_RING * 2)
                .budget(RINGS * PER_RING)
                .drain(drain)
                .timestamps(false),
        ))
        .init_resource::<Seen>();
        if batch {
            app.add_perdix_batch_envelope::<[u64; 8]>(KIND_ENVELOPE)
                .add_systems(bevy_app::Update, read_envelope_batches);
        } else {
            app.add_perdix_envelope::<[u64; 8]>(KIND_ENVELOPE)
                .add_systems(bevy_app::Update, read_envelopes);
        }
        let mut producers: Vec<Producer> = (0..RINGS)
            .map(|i| {
                match app
                    .world_mut()
                    .resource_mut::<PerdixRings>()
                    .add_producer(&format!("p{i}"))
                {
                    Ok(producer) => producer,
                    Err(err) => panic!("add_producer: {err}"),
                }
            })
            .collect();
        app.update(); // startup
        let what = if batch {
            "batch_envelope64"
        } else {
            "envelope64"
        };
        group.bench_function(format!("{drain}/{what}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let payload = [0x5Au8; 64];
                for _ in 0..iters {
                    for producer in &mut producers {
                        for _ in 0..PER_RING {
                            if let Err(err) = producer.try_produce_kind(KIND_ENVELOPE, &payload) {
                                panic!("fill: {err}");
                            }
                        }
                    }
                    total += timed_frame(&mut app, drain, (RINGS * PER_RING) as u64);
                }
                total
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);

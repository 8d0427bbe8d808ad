//! Batch delivery (`add_perdix_batch`, `add_perdix_batch_envelope`): CPU producers through the
//! plugin, in both drain modes. Every message arrives once, in order per producer, each value
//! with its header; a malformed payload is counted; batches a reader keeps across frames hold
//! their bytes, so the drain defers (counted) and loses nothing.

use std::collections::HashMap;

use perdix_transport::bevy::{PerdixBatch, PerdixHeader};

use super::*;

const KIND_BATCH: u32 = 11;

/// Every value seen in a batch with its header, and the batches per (frame, ring).
#[derive(Resource, Default)]
struct SeenBatches {
    values: Vec<(Tick, PerdixHeader)>,
    per_frame_ring: HashMap<(u64, u32), usize>,
    frame: u64,
}

fn collect_batches(mut reader: MessageReader<PerdixBatch<Tick>>, mut seen: ResMut<SeenBatches>) {
    seen.frame += 1;
    for batch in reader.read() {
        let headers = batch.headers().unwrap_or_else(|| panic!("envelope form"));
        assert_eq!(headers.len(), batch.len(), "a header for each value");
        assert!(!batch.is_empty());
        let key = (seen.frame, batch.ring());
        *seen.per_frame_ring.entry(key).or_default() += 1;
        for (tick, header) in batch.iter().zip(headers) {
            assert_eq!(header.ring, batch.ring());
            assert_eq!(header.kind, KIND_BATCH);
            assert_eq!(header.producer, tick.producer, "the header is the value's");
            seen.values.push((*tick, *header));
        }
    }
}

fn batch_app(plugin: PerdixPlugin) -> App {
    let mut app = App::new();
    app.add_plugins(plugin)
        .add_perdix_batch_envelope::<Tick>(KIND_BATCH)
        .init_resource::<SeenBatches>()
        .add_systems(Update, collect_batches);
    app
}

fn batches_deliver_in_order_with_headers(drain: DrainMode) {
    const PRODUCERS: u32 = 3;
    const COUNT: u32 = 20_000;
    let mut app = batch_app(PerdixPlugin::default().capacity(1024).drain(drain));
    let producers: Vec<Producer> = (0..PRODUCERS)
        .map(|i| producer(&mut app, &format!("p{i}")))
        .collect();
    let threads: Vec<_> = producers
        .into_iter()
        .enumerate()
        .map(|(id, mut producer)| {
            std::thread::spawn(move || {
                for n in 0..COUNT {
                    let tick = Tick::new(id as u32, n);
                    let sent = producer.produce_kind(KIND_BATCH, bytemuck::bytes_of(&tick));
                    assert_eq!(sent, Ok(()));
                }
            })
        })
        .collect();
    let total = (PRODUCERS * COUNT) as usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.world().resource::<SeenBatches>().values.len() < total {
        assert!(Instant::now() < deadline, "every message arrives");
        app.update();
    }
    for thread in threads {
        assert!(thread.join().is_ok());
    }
    app.update();
    let seen = app.world().resource::<SeenBatches>();
    assert_eq!(seen.values.len(), total, "each message once");
    let ticks: Vec<Tick> = seen.values.iter().map(|(tick, _)| *tick).collect();
    assert_in_order(&ticks, PRODUCERS, COUNT);
    for id in 0..PRODUCERS {
        let seqs = seen.values.iter().filter(|(t, _)| t.producer == id);
        let seqs: Vec<u64> = seqs.map(|(_, h)| h.seq).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "producer {id}: seq");
    }
    if drain == DrainMode::System {
        // One batch a ring and frame.
        assert!(seen.per_frame_ring.values().all(|&n| n == 1));
    }
    let counters = app.world().resource::<PerdixRings>().counters();
    assert_eq!(
        (counters.total().messages, counters.total().malformed),
        (u64::from(PRODUCERS * COUNT), 0)
    );
}

#[test]
fn batches_deliver_every_message_once_in_order_with_headers() {
    batches_deliver_in_order_with_headers(DrainMode::System);
}

#[test]
fn batches_from_drain_threads_deliver_every_message_once_in_order() {
    batches_deliver_in_order_with_headers(DrainMode::Thread);
}

#[test]
fn a_malformed_payload_in_a_batch_route_is_counted() {
    #[derive(Resource, Default)]
    struct Plain(Vec<Tick>, usize);
    let mut app = App::new();
    app.add_plugins(PerdixPlugin::default())
        .add_perdix_batch::<Tick>(KIND_BATCH)
        .init_resource::<Plain>()
        .add_systems(
            Update,
            |mut reader: MessageReader<PerdixBatch<Tick>>, mut seen: ResMut<Plain>| {
                for batch in reader.read() {
                    assert!(batch.headers().is_none());
                    seen.0.extend(batch);
                    seen.1 += 1;
                }
            },
        );
    let mut producer = producer(&mut app, "p0");
    for n in 0..10 {
        if n == 5 {
            assert_eq!(producer.try_produce_kind(KIND_BATCH, &[1, 2, 3]), Ok(()));
        }
        send_batch_tick(&mut producer, n);
    }
    app.update();
    let seen = app.world().resource::<Plain>();
    assert_eq!(seen.1, 1, "one batch");
    assert_in_order(&seen.0, 1, 10);
    let counters = app.world().resource::<PerdixRings>().counters();
    assert_eq!(
        (counters.total().messages, counters.total().malformed),
        (11, 1)
    );
}

fn send_batch_tick(producer: &mut Producer, n: u32) {
    let tick = Tick::new(0, n);
    let sent = producer.try_produce_kind(KIND_BATCH, bytemuck::bytes_of(&tick));
    assert_eq!(sent, Ok(()));
}

/// Batches a reader takes out of `Messages` and keeps until told to let go.
#[derive(Resource, Default)]
struct Kept {
    batches: Vec<PerdixBatch<Tick>>,
    ticks: Vec<Tick>,
    release: bool,
}

fn keep(mut messages: ResMut<Messages<PerdixBatch<Tick>>>, mut kept: ResMut<Kept>) {
    for batch in messages.drain() {
        kept.ticks.extend(&batch);
        kept.batches.push(batch);
    }
    if kept.release {
        kept.batches.clear();
    }
}

fn kept_batches_hold_their_bytes(drain: DrainMode) {
    // Rings of 64 slots (one-slot messages: 64 fill a ring); the limit is the least that holds
    // one message of the rings' largest size: 28 ticks (8,160 + overhead, 32 + overhead each).
    let capacity = 64;
    let overhead = core::mem::size_of::<PerdixMessage>();
    let limit = perdix_transport::layout::max_message(capacity) + overhead;
    let per_tick = (core::mem::size_of::<Tick>() + overhead) as u64;
    let plugin = PerdixPlugin::default()
        .capacity(capacity)
        .max_held_bytes(limit)
        .drain(drain);
    let mut app = App::new();
    app.add_plugins(plugin)
        .add_perdix_batch::<Tick>(KIND_BATCH)
        .init_resource::<Kept>()
        .add_systems(Update, keep);
    let mut producer = producer(&mut app, "p0");
    app.update();
    let mut sent = 0;
    let mut next = || {
        let tick = Tick::new(0, sent);
        let done = producer.try_produce_kind(KIND_BATCH, bytemuck::bytes_of(&tick));
        if done.is_ok() {
            sent += 1;
        }
        done
    };
    // More than the limit holds: the ring takes what the drain leaves.
    for _ in 0..200 {
        for _ in 0..64 {
            if next().is_err() {
                break;
            }
        }
        app.update();
        std::thread::sleep(Duration::from_millis(1));
        let rings = app.world().resource::<PerdixRings>();
        assert!(rings.held_bytes() <= limit as u64, "the bound holds");
    }
    let held_ticks = app.world().resource::<Kept>().ticks.len() as u64;
    assert!(
        held_ticks * per_tick <= limit as u64,
        "{held_ticks} ticks kept"
    );
    assert!(held_ticks > 0 && u64::from(sent) > held_ticks);
    let rings = app.world().resource::<PerdixRings>();
    assert_eq!(
        rings.held_bytes(),
        held_ticks * per_tick,
        "kept batches hold their bytes"
    );
    if drain == DrainMode::System {
        assert!(
            rings.counters().app.deferred > 0,
            "what waits is counted as deferred"
        );
    }
    // The reader lets go: everything sent arrives, once, in order.
    app.world_mut().resource_mut::<Kept>().release = true;
    let deadline = Instant::now() + Duration::from_secs(20);
    while (app.world().resource::<Kept>().ticks.len() as u32) < sent {
        assert!(Instant::now() < deadline, "the rest arrives");
        app.update();
    }
    app.update();
    assert_in_order(&app.world().resource::<Kept>().ticks, 1, sent);
    assert_eq!(app.world().resource::<PerdixRings>().held_bytes(), 0);
}

#[test]
fn batches_kept_across_frames_defer_the_drain_and_lose_nothing() {
    kept_batches_hold_their_bytes(DrainMode::System);
}

#[test]
fn batches_kept_from_a_drain_thread_defer_and_lose_nothing() {
    kept_batches_hold_their_bytes(DrainMode::Thread);
}

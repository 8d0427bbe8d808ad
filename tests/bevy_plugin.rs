//! `PerdixPlugin` on the CPU backend: typed routing, order, exact counts, budget, backpressure
//! and drops in diagnostics, unrouted and malformed messages, thread drain, CPU fallbacks.
#![cfg(feature = "bevy")]

use std::time::{Duration, Instant};

use bevy_app::prelude::*;
use bevy_diagnostic::{DiagnosticsPlugin, DiagnosticsStore};
use bevy_ecs::prelude::*;
use bytemuck::{Pod, Zeroable};
use perdix_transport::bevy::{
    DrainMode, Envelope, GpuProducerSpec, PerdixAppExt, PerdixDiagnostics, PerdixMessage,
    PerdixPlugin, PerdixRings,
};
use perdix_transport::testing::stress::Verifier;
use perdix_transport::testing::StressProducers;
use perdix_transport::{Buffer, Error, Policy, Producer};

const KIND_TICK: u32 = 1;
const KIND_HIT: u32 = 2;

#[derive(Message, Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
struct Tick {
    producer: u32,
    n: u32,
    check: [u64; 3],
}

impl Tick {
    fn new(producer: u32, n: u32) -> Self {
        let x = u64::from(producer) << 32 | u64::from(n);
        Self {
            producer,
            n,
            check: [x, !x, x.rotate_left(17)],
        }
    }
}

#[derive(Message, Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
struct Hit {
    wall: u32,
}

/// Every `Tick` seen by an ECS reader, in order of arrival.
#[derive(Resource, Default)]
struct Seen(Vec<Tick>);

fn collect(mut reader: MessageReader<Tick>, mut seen: ResMut<Seen>) {
    seen.0.extend(reader.read().copied());
}

fn app(plugin: PerdixPlugin) -> App {
    let mut app = App::new();
    app.add_plugins(plugin)
        .add_perdix_message::<Tick>(KIND_TICK)
        .add_perdix_message::<Hit>(KIND_HIT)
        .init_resource::<Seen>()
        .add_systems(Update, collect);
    app
}

fn producer(app: &mut App, name: &str) -> Producer {
    match app
        .world_mut()
        .resource_mut::<PerdixRings>()
        .add_producer(name)
    {
        Ok(producer) => producer,
        Err(err) => panic!("add_producer: {err}"),
    }
}

fn send_tick(producer: &mut Producer, id: u32, n: u32) {
    let tick = Tick::new(id, n);
    assert_eq!(
        producer.try_produce_kind(KIND_TICK, bytemuck::bytes_of(&tick)),
        Ok(())
    );
}

/// Checks that each producer's ticks are complete (0..count) and in order.
fn assert_in_order(seen: &[Tick], producers: u32, count: u32) {
    for id in 0..producers {
        let mine: Vec<&Tick> = seen.iter().filter(|t| t.producer == id).collect();
        assert_eq!(mine.len(), count as usize, "producer {id}: count");
        for (n, tick) in mine.iter().enumerate() {
            assert_eq!(
                **tick,
                Tick::new(id, n as u32),
                "producer {id}: message {n}"
            );
        }
    }
}

#[test]
fn typed_messages_arrive_complete_and_in_order_per_producer() {
    let mut app = app(PerdixPlugin::default().capacity(1024));
    let mut a = producer(&mut app, "a");
    let mut b = producer(&mut app, "b");
    for n in 0..500 {
        send_tick(&mut a, 0, n);
        send_tick(&mut b, 1, n);
    }
    app.update();
    let seen = &app.world().resource::<Seen>().0;
    assert_eq!(seen.len(), 1000);
    assert_in_order(seen, 2, 500);
    let stats = app.world().resource::<PerdixRings>().stats();
    assert_eq!(
        (stats.messages, stats.unrouted, stats.malformed),
        (1000, 0, 0)
    );
}

#[test]
fn counts_are_exact_across_frames_with_a_producer_thread() {
    const COUNT: u32 = 20_000;
    let mut app = app(PerdixPlugin::default().capacity(256));
    let mut p = producer(&mut app, "thread");
    let thread = std::thread::spawn(move || {
        for n in 0..COUNT {
            let tick = Tick::new(0, n);
            if let Err(err) = p.produce_kind(KIND_TICK, bytemuck::bytes_of(&tick)) {
                panic!("produce: {err}");
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !app.world().resource::<PerdixRings>().is_finished() {
        assert!(Instant::now() < deadline, "drain did not finish");
        app.update();
    }
    app.update(); // the reader sees the last frame's messages
    assert!(thread.join().is_ok());
    let seen = &app.world().resource::<Seen>().0;
    assert_in_order(seen, 1, COUNT);
    let stats = app.world().resource::<PerdixRings>().stats();
    assert_eq!(stats.messages, u64::from(COUNT));
    assert!(stats.frames > 1);
}

#[test]
fn budget_is_respected_and_deferral_counted() {
    let mut app = app(PerdixPlugin::default().capacity(1024).budget(100));
    let mut p = producer(&mut app, "a");
    for n in 0..1000 {
        send_tick(&mut p, 0, n);
    }
    app.update();
    assert_eq!(app.world().resource::<Seen>().0.len(), 100);
    let stats = app.world().resource::<PerdixRings>().stats();
    assert_eq!(
        (stats.messages, stats.deferred, stats.deferred_frames),
        (100, 900, 1)
    );
    for frame in 2..=10 {
        app.update();
        assert_eq!(app.world().resource::<Seen>().0.len(), frame * 100);
    }
    let stats = app.world().resource::<PerdixRings>().stats();
    assert_eq!(stats.deferred, 0, "the tenth frame took the last 100");
    assert_eq!(stats.max_frame, 100);
    app.update();
    assert_in_order(&app.world().resource::<Seen>().0, 1, 1000);
}

#[test]
fn budget_is_shared_between_rings() {
    let mut app = app(PerdixPlugin::default().capacity(1024).budget(100));
    let mut a = producer(&mut app, "a");
    let mut b = producer(&mut app, "b");
    for n in 0..300 {
        send_tick(&mut a, 0, n);
        send_tick(&mut b, 1, n);
    }
    app.update();
    let seen = &app.world().resource::<Seen>().0;
    assert_eq!(seen.iter().filter(|t| t.producer == 0).count(), 50);
    assert_eq!(seen.iter().filter(|t| t.producer == 1).count(), 50);
}

/// Updates until the diagnostics have taken a sample after the events (they sample at most
/// every 100 ms); returns the largest value `path` recorded.
fn sampled(app: &mut App, path: &bevy_diagnostic::DiagnosticPath) -> f64 {
    app.update();
    std::thread::sleep(Duration::from_millis(120));
    app.update();
    let store = app.world().resource::<DiagnosticsStore>();
    let diagnostic = store
        .get(path)
        .unwrap_or_else(|| panic!("no diagnostic {path}"));
    diagnostic.values().copied().fold(0.0, f64::max)
}

#[test]
fn drops_and_stalls_are_visible_in_diagnostics() {
    let mut app = app(PerdixPlugin::default()
        .capacity(8)
        .policy(Policy::DropNewest));
    app.add_plugins(DiagnosticsPlugin);
    let mut p = producer(&mut app, "dropper");
    app.update(); // baseline sample
    std::thread::sleep(Duration::from_millis(120));
    for n in 0..100 {
        let tick = Tick::new(0, n);
        let sent = p.produce_kind(KIND_TICK, bytemuck::bytes_of(&tick));
        assert_eq!(sent, if n < 8 { Ok(()) } else { Err(Error::Full) });
    }
    // `try_produce` on a full ring is a stall (counted), not a drop.
    assert_eq!(p.try_produce_kind(KIND_TICK, &[0; 32]), Err(Error::Full));
    let drops = sampled(&mut app, &PerdixDiagnostics::DROPS_PER_SEC);
    assert!(drops > 0.0, "drops/s {drops}");
    let totals = app.world().resource::<PerdixRings>().totals();
    assert_eq!((totals.drops, totals.stalls), (92, 1));
    let store = app.world().resource::<DiagnosticsStore>();
    let peak = |path: &bevy_diagnostic::DiagnosticPath| {
        store
            .get(path)
            .map_or(0.0, |d| d.values().copied().fold(0.0, f64::max))
    };
    assert!(peak(&PerdixDiagnostics::STALLS_PER_SEC) > 0.0);
    assert!(peak(&PerdixDiagnostics::MSGS_PER_SEC) > 0.0);
    // The 8 that fitted arrived, in order.
    assert_in_order(&app.world().resource::<Seen>().0, 1, 8);
}

#[test]
fn rings_of_each_device_are_counted_per_device() {
    // Rings labelled with devices 0 and 1 (host memory, so this runs without a GPU): the
    // per-device totals and `perdix/gpu<N>/*` diagnostics split what the drain took.
    let mut app = app(PerdixPlugin::default().capacity(1024));
    app.add_plugins(DiagnosticsPlugin);
    let mut producers = Vec::new();
    for (name, device) in [("a", 0), ("b", 1), ("c", 1)] {
        let (producer, consumer) = match Buffer::new(1024) {
            Ok(buffer) => buffer.into_split(),
            Err(err) => panic!("ring: {err}"),
        };
        app.world_mut()
            .resource_mut::<PerdixRings>()
            .add_device_consumer(name, consumer, Some(device));
        producers.push(producer);
    }
    let cpu = producer(&mut app, "cpu");
    assert_eq!(cpu.capacity(), 1024);
    app.update(); // baseline sample
    std::thread::sleep(Duration::from_millis(120));
    for (id, p) in producers.iter_mut().enumerate() {
        for n in 0..(100 * (id as u32 + 1)) {
            send_tick(p, id as u32, n);
        }
    }
    let gpu1 = sampled(&mut app, &PerdixDiagnostics::device_msgs_per_sec(1));
    let gpu0 = sampled(&mut app, &PerdixDiagnostics::device_msgs_per_sec(0));
    assert!(gpu1 > gpu0 && gpu0 > 0.0, "gpu0 {gpu0}/s, gpu1 {gpu1}/s");
    let ring = app.world().resource::<PerdixRings>();
    let per_device: Vec<(u32, usize, u64)> = ring
        .device_totals()
        .iter()
        .map(|d| (d.device, d.rings, d.messages))
        .collect();
    assert_eq!(per_device, [(0, 1, 100), (1, 2, 500)]);
    assert_eq!(
        (0..5).map(|r| ring.ring_device(r)).collect::<Vec<_>>(),
        [Some(0), Some(1), Some(1), None, None]
    );
    assert_eq!(ring.stats().messages, 600);
}

#[test]
fn unrouted_kinds_arrive_raw_and_are_counted() {
    let mut app = app(PerdixPlugin::default().capacity(64));
    app.add_plugins(DiagnosticsPlugin);
    let mut p = producer(&mut app, "a");
    app.update();
    std::thread::sleep(Duration::from_millis(120));
    for n in 0..10u8 {
        assert_eq!(p.try_produce_kind(77, &[n; 3]), Ok(()));
    }
    send_tick(&mut p, 0, 0);
    let unrouted = sampled(&mut app, &PerdixDiagnostics::UNROUTED_PER_SEC);
    assert!(unrouted > 0.0);
    let stats = app.world().resource::<PerdixRings>().stats();
    assert_eq!((stats.messages, stats.unrouted), (11, 10));
    let raw = app.world().resource::<Messages<PerdixMessage>>();
    let got: Vec<(u32, Vec<u8>)> = raw
        .get_cursor()
        .read(raw)
        .map(|m| (m.kind(), m.payload().to_vec()))
        .collect();
    let want: Vec<(u32, Vec<u8>)> = (0..10u8).map(|n| (77, vec![n; 3])).collect();
    assert_eq!(got, want);
    assert_eq!(app.world().resource::<Seen>().0, [Tick::new(0, 0)]);
}

#[test]
fn raw_registered_kinds_are_not_unrouted() {
    let mut app = app(PerdixPlugin::default().capacity(64));
    app.add_perdix_raw(9);
    let mut p = producer(&mut app, "a");
    assert_eq!(p.try_produce_kind(9, b"variable length"), Ok(()));
    app.update();
    let stats = app.world().resource::<PerdixRings>().stats();
    assert_eq!((stats.messages, stats.unrouted), (1, 0));
    let raw = app.world().resource::<Messages<PerdixMessage>>();
    assert_eq!(raw.len(), 1);
}

#[test]
fn wrong_length_for_a_registered_kind_is_malformed() {
    let mut app = app(PerdixPlugin::default().capacity(64));
    let mut p = producer(&mut app, "a");
    assert_eq!(p.try_produce_kind(KIND_HIT, &[1, 2, 3]), Ok(())); // Hit is 4 bytes
    assert_eq!(
        p.try_produce_kind(KIND_HIT, bytemuck::bytes_of(&Hit { wall: 3 })),
        Ok(())
    );
    app.update();
    let stats = app.world().resource::<PerdixRings>().stats();
    assert_eq!((stats.messages, stats.malformed, stats.unrouted), (2, 1, 0));
    let hits = app.world().resource::<Messages<Hit>>();
    let got: Vec<Hit> = hits.get_cursor().read(hits).copied().collect();
    assert_eq!(got, [Hit { wall: 3 }]);
}

#[test]
#[should_panic(expected = "already routed")]
fn one_kind_cannot_route_to_two_types() {
    let mut app = app(PerdixPlugin::default());
    app.add_perdix_message::<Hit>(KIND_TICK);
}

#[test]
fn oversized_payloads_are_refused_by_the_producer() {
    // Types over 224 bytes do not compile (`add_perdix_message`'s compile_fail doc test); at
    // run time a producer refuses an oversized payload and nothing is sent.
    let mut app = app(PerdixPlugin::default().capacity(64));
    let mut p = producer(&mut app, "a");
    assert_eq!(
        p.try_produce_kind(KIND_TICK, &[0; 225]),
        Err(Error::MessageTooLarge { len: 225, max: 224 })
    );
    app.update();
    assert_eq!(app.world().resource::<PerdixRings>().stats().messages, 0);
}

#[test]
fn thread_drain_delivers_everything_in_order() {
    const COUNT: u32 = 20_000;
    let mut app = app(PerdixPlugin::default()
        .capacity(256)
        .drain(DrainMode::Thread));
    let mut producers: Vec<Producer> = (0..2)
        .map(|i| producer(&mut app, &format!("p{i}")))
        .collect();
    let threads: Vec<_> = producers
        .drain(..)
        .enumerate()
        .map(|(id, mut p)| {
            std::thread::spawn(move || {
                for n in 0..COUNT {
                    let tick = Tick::new(id as u32, n);
                    if let Err(err) = p.produce_kind(KIND_TICK, bytemuck::bytes_of(&tick)) {
                        panic!("produce: {err}");
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !app.world().resource::<PerdixRings>().is_finished() {
        assert!(Instant::now() < deadline, "drain did not finish");
        app.update();
    }
    app.update();
    for thread in threads {
        assert!(thread.join().is_ok());
    }
    assert_in_order(&app.world().resource::<Seen>().0, 2, COUNT);
}

const KIND_WORD: u32 = 3;

/// Every `Envelope<[u64; 2]>` seen by an ECS reader, in order of arrival.
#[derive(Resource, Default)]
struct SeenEnvelopes(Vec<Envelope<[u64; 2]>>);

fn collect_envelopes(
    mut reader: MessageReader<Envelope<[u64; 2]>>,
    mut seen: ResMut<SeenEnvelopes>,
) {
    seen.0.extend(reader.read().copied());
}

/// `rings` producers each send `per_frame` envelopes of `[ring, n]` before each of `frames`
/// updates; checks every one arrives once, in order per ring, with its header.
fn envelopes_in_order(rings: u32, per_frame: u32, frames: u32, drain: DrainMode) {
    let mut app = App::new();
    app.add_plugins((
        TaskPoolPlugin::default(),
        PerdixPlugin::default()
            .capacity(per_frame.next_power_of_two() as usize)
            .budget(usize::MAX)
            .drain(drain),
    ))
    .add_perdix_envelope::<[u64; 2]>(KIND_WORD)
    .init_resource::<SeenEnvelopes>()
    .add_systems(Update, collect_envelopes);
    let mut producers: Vec<Producer> = (0..rings)
        .map(|i| producer(&mut app, &format!("p{i}")))
        .collect();
    let total = u64::from(rings * per_frame * frames);
    let deadline = Instant::now() + Duration::from_secs(60);
    for frame in 0..frames {
        for (ring, p) in producers.iter_mut().enumerate() {
            for k in 0..per_frame {
                let n = u64::from(frame * per_frame + k);
                let word = [ring as u64, n];
                assert_eq!(
                    p.try_produce_kind(KIND_WORD, bytemuck::bytes_of(&word)),
                    Ok(())
                );
            }
        }
        // Thread drains hand batches over asynchronously: update until this frame's are in.
        let sent = u64::from(rings * per_frame * (frame + 1));
        while app.world().resource::<PerdixRings>().stats().messages < sent {
            assert!(Instant::now() < deadline, "drain did not finish");
            app.update();
        }
    }
    app.update();
    let seen = &app.world().resource::<SeenEnvelopes>().0;
    assert_eq!(seen.len() as u64, total);
    for ring in 0..rings {
        let mine: Vec<_> = seen.iter().filter(|e| e.ring == ring).collect();
        assert_eq!(mine.len() as u32, per_frame * frames, "ring {ring}: count");
        for (n, env) in mine.iter().enumerate() {
            assert_eq!(
                env.value,
                [u64::from(ring), n as u64],
                "ring {ring}: message {n}"
            );
            assert_eq!(
                (env.kind, env.producer, env.seq),
                (KIND_WORD, ring, n as u64)
            );
        }
    }
    let stats = app.world().resource::<PerdixRings>().stats();
    assert_eq!(
        (stats.messages, stats.unrouted, stats.malformed),
        (total, 0, 0)
    );
}

#[test]
fn envelopes_carry_producer_ring_and_position() {
    envelopes_in_order(2, 100, 3, DrainMode::System);
}

#[test]
fn busy_rings_drained_in_parallel_keep_order_and_counts() {
    // More than PARALLEL_MIN messages a frame: later frames drain the rings in parallel tasks.
    envelopes_in_order(4, 8192, 4, DrainMode::System);
}

#[test]
fn busy_thread_drained_rings_keep_order_and_counts() {
    envelopes_in_order(4, 8192, 3, DrainMode::Thread);
}

#[test]
fn envelope_of_wrong_length_is_malformed() {
    let mut app = App::new();
    app.add_plugins(PerdixPlugin::default())
        .add_perdix_envelope::<[u64; 2]>(KIND_WORD);
    let mut p = producer(&mut app, "a");
    assert_eq!(p.try_produce_kind(KIND_WORD, &[0u8; 12]), Ok(()));
    app.update();
    let stats = app.world().resource::<PerdixRings>().stats();
    assert_eq!((stats.messages, stats.malformed), (1, 1));
    let envelopes = app.world().resource::<Messages<Envelope<[u64; 2]>>>();
    assert!(envelopes.is_empty());
}

#[test]
fn zero_copy_drain_with_routing_off() {
    let mut app = app(PerdixPlugin::default().capacity(64).route(false));
    let mut p = producer(&mut app, "a");
    for n in 0..10 {
        send_tick(&mut p, 0, n);
    }
    app.update();
    assert!(
        app.world().resource::<Seen>().0.is_empty(),
        "routing is off"
    );
    let mut ring = app.world_mut().resource_mut::<PerdixRings>();
    let mut ns = Vec::new();
    let taken = ring.drain_with(usize::MAX, |msg| {
        let tick: Tick = bytemuck::pod_read_unaligned(msg.payload());
        ns.push(tick.n);
    });
    assert_eq!(taken, 10);
    assert_eq!(ns, (0..10).collect::<Vec<_>>());
    assert_eq!(ring.stats().messages, 10);
}

/// Updates until the drain has taken `count` messages (drain threads hand over asynchronously).
fn update_until_taken(app: &mut App, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.world().resource::<PerdixRings>().stats().messages < count {
        assert!(
            Instant::now() < deadline,
            "drain did not take {count} messages"
        );
        app.update();
    }
    app.update();
}

#[test]
fn thread_drain_respects_the_budget() {
    // Drain threads stage whole batches, never more than the budget: no frame takes more.
    let mut app = app(PerdixPlugin::default()
        .capacity(1024)
        .budget(100)
        .drain(DrainMode::Thread));
    let mut a = producer(&mut app, "a");
    let mut b = producer(&mut app, "b");
    for n in 0..1000 {
        send_tick(&mut a, 0, n);
        send_tick(&mut b, 1, n);
    }
    update_until_taken(&mut app, 2000);
    let stats = app.world().resource::<PerdixRings>().stats();
    assert_eq!(stats.messages, 2000);
    assert!(stats.max_frame <= 100, "max frame {}", stats.max_frame);
    assert!(stats.frames >= 20);
    assert_in_order(&app.world().resource::<Seen>().0, 2, 1000);
}

#[test]
fn thread_drain_routes_kinds_registered_after_it_started() {
    let mut app = app(PerdixPlugin::default()
        .capacity(256)
        .drain(DrainMode::Thread));
    let mut p = producer(&mut app, "a");
    assert_eq!(p.try_produce_kind(9, &[1; 16]), Ok(()));
    update_until_taken(&mut app, 1);
    assert_eq!(app.world().resource::<PerdixRings>().stats().unrouted, 1);
    // Kind 9 becomes a typed envelope while the drain thread runs.
    app.add_perdix_envelope::<[u64; 2]>(9);
    assert_eq!(p.try_produce_kind(9, &[2; 16]), Ok(()));
    send_tick(&mut p, 0, 0);
    update_until_taken(&mut app, 3);
    let stats = app.world().resource::<PerdixRings>().stats();
    assert_eq!((stats.unrouted, stats.malformed), (1, 0));
    let envelopes = app.world().resource::<Messages<Envelope<[u64; 2]>>>();
    let got: Vec<[u64; 2]> = envelopes
        .get_cursor()
        .read(envelopes)
        .map(|e| e.value)
        .collect();
    assert_eq!(got, [[u64::from_ne_bytes([2; 8]); 2]]);
    assert_eq!(app.world().resource::<Seen>().0, [Tick::new(0, 0)]);
}

#[test]
fn thread_drain_zero_copy_with_routing_off() {
    let mut app = app(PerdixPlugin::default()
        .capacity(64)
        .route(false)
        .drain(DrainMode::Thread));
    let mut p = producer(&mut app, "a");
    for n in 0..10 {
        send_tick(&mut p, 0, n);
    }
    let mut ns = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ns.len() < 10 {
        assert!(Instant::now() < deadline, "drain_with did not get 10");
        app.update();
        let mut ring = app.world_mut().resource_mut::<PerdixRings>();
        // At most 3 a call: a batch can be taken in parts.
        ring.drain_with(3, |msg| {
            let tick: Tick = bytemuck::pod_read_unaligned(msg.payload());
            ns.push(tick.n);
        });
    }
    assert_eq!(ns, (0..10).collect::<Vec<_>>());
    let ring = app.world().resource::<PerdixRings>();
    assert_eq!((ring.stats().messages, ring.handed_over()), (10, 0));
    assert!(app.world().resource::<Seen>().0.is_empty());
}

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
struct FrameArgs {
    per_frame: u32,
}

#[derive(Resource)]
struct PerFrame(u32);

#[test]
fn gpu_producer_runs_its_cpu_fallback_without_a_device() {
    const TICKS_CU: &str =
        "extern \"C\" __global__ void ticks(const perdix_producer* p, unsigned per_frame) {}";
    // SAFETY: `ticks` takes the producer pointer, then one `unsigned` (`FrameArgs` is
    // `#[repr(C)] { per_frame: u32 }`), and touches no memory at all.
    let spec = unsafe { GpuProducerSpec::new("ticks", TICKS_CU, "ticks") }
        .args(|world: &World| FrameArgs {
            per_frame: world.resource::<PerFrame>().0,
        })
        .cpu_fallback(|args: &FrameArgs, emit| {
            let frame = emit.frame() as u32;
            for i in 0..args.per_frame {
                let tick = Tick::new(0, frame * args.per_frame + i);
                if emit.emit(KIND_TICK, &tick).is_err() {
                    return;
                }
            }
        });
    let mut app = app(PerdixPlugin::default().capacity(1024));
    app.insert_resource(PerFrame(10)).add_gpu_producer(spec);
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.world().resource::<Seen>().0.len() < 200 {
        assert!(Instant::now() < deadline, "fallback did not deliver");
        app.update();
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut ring = app.world_mut().resource_mut::<PerdixRings>();
    let backend = ring.producer_backend();
    if !backend.is_gpu() {
        assert_eq!(backend.name(), "cpu");
    }
    let seen = &app.world().resource::<Seen>().0;
    // Launches may be skipped when the worker falls behind; what runs arrives whole, in order.
    let ns: Vec<u32> = seen.iter().map(|t| t.n).collect();
    assert_eq!(ns, (0..ns.len() as u32).collect::<Vec<_>>());
    assert_in_order(seen, 1, ns.len() as u32);
}

fn stress_run(drain: DrainMode) {
    let mut app = App::new();
    app.add_plugins(PerdixPlugin::default().capacity(512).drain(drain))
        .add_perdix_raw(StressProducers::KIND);
    let mut stress = {
        let mut ring = app.world_mut().resource_mut::<PerdixRings>();
        match StressProducers::spawn_cpu(&mut ring, 2, 64) {
            Ok(stress) => stress,
            Err(err) => panic!("spawn: {err}"),
        }
    };
    let mut verifier = Verifier::new(true);
    let mut cursor = app
        .world()
        .resource::<Messages<PerdixMessage>>()
        .get_cursor();
    let mut check = |app: &App, verifier: &mut Verifier| {
        let raw = app.world().resource::<Messages<PerdixMessage>>();
        for msg in cursor.read(raw) {
            verifier.check(msg.producer(), msg.payload());
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while verifier.report().messages < 100_000 {
        assert!(Instant::now() < deadline);
        app.update();
        check(&app, &mut verifier);
    }
    stress.stop();
    while !app.world().resource::<PerdixRings>().is_finished() {
        assert!(Instant::now() < deadline);
        app.update();
        check(&app, &mut verifier);
    }
    let sent = stress.join();
    let report = verifier.finish(&sent);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.messages, stress.total_sent());
}

#[test]
fn stress_producers_verify_clean_in_system_drain() {
    stress_run(DrainMode::System);
}

#[test]
fn stress_producers_verify_clean_in_thread_drain() {
    stress_run(DrainMode::Thread);
}

/// GPU stress producers on `devices` (one ring each), 10^7 messages through the plugin, every
/// word checked per (ring, thread) stream; the per-device totals add up.
#[cfg(feature = "cuda")]
fn gpu_stress(devices: perdix_transport::cuda::GpuDevices) {
    let ordinals: Vec<usize> = match &devices {
        perdix_transport::cuda::GpuDevices::List(list) => list.clone(),
        perdix_transport::cuda::GpuDevices::All => {
            let count = perdix_transport::cuda::device_count();
            (0..count.unwrap_or_else(|err| panic!("device count: {err}"))).collect()
        }
    };
    let entries = ordinals.len();
    let mut app = App::new();
    app.add_plugins(PerdixPlugin::default().capacity(65_536).devices(devices))
        .add_perdix_raw(StressProducers::KIND);
    let mut stress = {
        let mut ring = app.world_mut().resource_mut::<PerdixRings>();
        match StressProducers::spawn(&mut ring, 1, 64) {
            Ok(stress) => stress,
            Err(err) => panic!("spawn: {err}"),
        }
    };
    assert!(stress.backend().is_gpu(), "backend {}", stress.backend());
    let mut verifier = Verifier::new(true);
    let mut cursor = app
        .world()
        .resource::<Messages<PerdixMessage>>()
        .get_cursor();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut phase_stop = false;
    loop {
        assert!(Instant::now() < deadline);
        app.update();
        let raw = app.world().resource::<Messages<PerdixMessage>>();
        for msg in cursor.read(raw) {
            // Thread ids repeat on every device entry: one stream per (ring, thread).
            let stream = perdix_transport::testing::stress::stream(msg.ring(), msg.producer());
            verifier.check_stream(stream, msg.producer(), msg.payload());
        }
        if !phase_stop && verifier.report().messages >= 10_000_000 {
            stress.stop();
            phase_stop = true;
        }
        if phase_stop && app.world().resource::<PerdixRings>().is_finished() {
            break;
        }
    }
    let sent = stress.join();
    let report = verifier.finish(&sent);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.messages, stress.total_sent());
    let ring = app.world().resource::<PerdixRings>();
    assert_eq!(ring.rings(), entries);
    // One total per distinct device, in ordinal order, each with its entries' rings.
    let mut distinct = ordinals.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let per_device = ring.device_totals();
    let seen: Vec<(usize, usize)> = per_device
        .iter()
        .map(|d| (d.device as usize, d.rings))
        .collect();
    let expected: Vec<(usize, usize)> = distinct
        .iter()
        .map(|&d| (d, ordinals.iter().filter(|&&o| o == d).count()))
        .collect();
    assert_eq!(seen, expected, "{per_device:?}");
    let total: u64 = per_device.iter().map(|d| d.messages).sum();
    assert_eq!(total, report.messages);
    if distinct.len() > 1 {
        assert!(per_device.iter().all(|d| d.messages > 0), "{per_device:?}");
    }
    assert!((0..entries).all(|r| ring
        .ring_device(r)
        .is_some_and(|d| distinct.contains(&(d as usize)))));
}

#[test]
#[ignore = "needs a CUDA device"]
#[cfg(feature = "cuda")]
fn gpu_stress_producers_verify_clean() {
    gpu_stress(perdix_transport::cuda::GpuDevices::one(0));
}

#[test]
#[ignore = "needs a CUDA device"]
#[cfg(feature = "cuda")]
fn gpu_stress_on_two_entries_of_one_device_verify_clean() {
    // Two producer sets on GPU 0: the multi-device paths without a second GPU.
    gpu_stress(perdix_transport::cuda::GpuDevices::List(vec![0, 0]));
}

#[test]
#[ignore = "needs a CUDA device"]
#[cfg(feature = "cuda")]
fn gpu_stress_on_every_device_verify_clean() {
    // Every GPU of the machine (the plugin's default device set): one ring each, one total each.
    gpu_stress(perdix_transport::cuda::GpuDevices::All);
}

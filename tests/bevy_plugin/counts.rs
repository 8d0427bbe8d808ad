//! Exact counts across frames, the budget (respected, shared between rings, deferral counted),
//! drops and stalls in the diagnostics, per-device totals, totals after a stream ends, and
//! the malformed count.

use super::*;

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
    let counters = app.world().resource::<PerdixRings>().counters();
    assert_eq!(counters.total().messages, u64::from(COUNT));
    assert!(counters.app.frames > 1);
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
    let counters = app.world().resource::<PerdixRings>().counters();
    assert_eq!(
        (
            counters.total().messages,
            counters.app.deferred,
            counters.app.deferred_frames
        ),
        (100, 900, 1)
    );
    for frame in 2..=10 {
        app.update();
        assert_eq!(app.world().resource::<Seen>().0.len(), frame * 100);
    }
    let counters = app.world().resource::<PerdixRings>().counters();
    assert_eq!(
        counters.app.deferred, 0,
        "the tenth frame took the last 100"
    );
    assert_eq!(counters.app.max_frame, 100);
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
    let totals = app.world().resource::<PerdixRings>().counters().total();
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
    let per_device: Vec<(u32, u32, u64)> = ring
        .counters()
        .devices()
        .iter()
        .map(|d| (d.device, d.rings, d.counters.messages))
        .collect();
    assert_eq!(per_device, [(0, 1, 100), (1, 2, 500)]);
    assert_eq!(
        (0..5).map(|r| ring.ring_device(r)).collect::<Vec<_>>(),
        [Some(0), Some(1), Some(1), None, None]
    );
    assert_eq!(ring.counters().total().messages, 600);
}

#[test]
fn totals_stay_readable_after_the_stream_ends() {
    const COUNT: u32 = 500;
    let mut app = app(PerdixPlugin::default().capacity(1024));
    app.add_plugins(DiagnosticsPlugin);
    let mut p = producer(&mut app, "ends");
    app.update(); // baseline sample
    for n in 0..COUNT {
        send_tick(&mut p, 0, n);
    }
    drop(p);
    let rate = sampled(&mut app, &PerdixDiagnostics::MSGS_PER_SEC);
    assert!(rate > 0.0);
    assert!(app.world().resource::<PerdixRings>().is_finished());
    // Frames go on after the end: the rate drops to 0, the totals stay.
    for _ in 0..3 {
        sampled(&mut app, &PerdixDiagnostics::MSGS_PER_SEC);
    }
    let rings = app.world().resource::<PerdixRings>();
    let last = rings.snapshot().history.last().map(|s| s.msgs_per_sec);
    assert_eq!(last, Some(0.0), "no messages in the last window");
    assert_eq!(rings.counters().total().messages, u64::from(COUNT));
    assert_eq!(rings.counters().total().messages, u64::from(COUNT));
    assert_eq!(rings.counters().total().bytes, u64::from(COUNT) * 32);
    assert!(rings
        .snapshot()
        .history
        .iter()
        .any(|s| s.msgs_per_sec > 0.0));
    assert_in_order(&app.world().resource::<Seen>().0, 1, COUNT);
}

#[test]
fn malformed_messages_are_a_diagnostic() {
    let mut app = app(PerdixPlugin::default().capacity(64));
    app.add_plugins(DiagnosticsPlugin);
    let mut p = producer(&mut app, "a");
    assert_eq!(p.try_produce_kind(KIND_HIT, &[1, 2, 3]), Ok(())); // Hit is 4 bytes
    assert_eq!(p.try_produce_kind(KIND_TICK, &[0; 8]), Ok(())); // Tick is 32
    app.update();
    let malformed = |app: &App| {
        let store = app.world().resource::<DiagnosticsStore>();
        store
            .get(&PerdixDiagnostics::MALFORMED)
            .and_then(bevy_diagnostic::Diagnostic::value)
    };
    assert_eq!(malformed(&app), Some(2.0));
    assert_eq!(
        app.world()
            .resource::<PerdixRings>()
            .counters()
            .total()
            .malformed,
        2
    );
    app.update();
    assert_eq!(malformed(&app), Some(2.0), "a count, not a rate");
}

/// The counters are read, never consumed: any number of readers (here a system that reads
/// them three times a frame) see the same counts, and the diagnostics still see their latency
/// window and rates (before, the diagnostics took the window and closed the frame as they
/// sampled, so a second reader would have corrupted both).
#[test]
fn counters_are_read_by_any_number_of_readers() {
    #[derive(Resource, Default)]
    struct Reads(u64);
    fn reader(rings: Res<PerdixRings>, mut reads: ResMut<Reads>) {
        let (a, b, c) = (rings.counters(), rings.counters(), rings.counters());
        assert_eq!((a.total(), a.app), (b.total(), b.app));
        assert_eq!((b.total(), b.app), (c.total(), c.app));
        assert!(std::sync::Arc::ptr_eq(&a.latency, &c.latency));
        reads.0 += 3;
    }
    const COUNT: u32 = 6_400;
    let mut app = app(PerdixPlugin::default().capacity(8192));
    app.add_plugins(DiagnosticsPlugin)
        .init_resource::<Reads>()
        .add_systems(Update, reader);
    let mut p = producer(&mut app, "stamped");
    app.update(); // the diagnostics' first sample: the baseline
    for n in 0..COUNT {
        send_tick(&mut p, 0, n);
    }
    std::thread::sleep(Duration::from_millis(120));
    app.update();
    let counters = app.world().resource::<PerdixRings>().counters();
    assert_eq!(counters.total().messages, u64::from(COUNT));
    assert_eq!(counters.app.frames, 2, "the drain closed each frame once");
    assert_eq!(counters.app.frame_messages, u64::from(COUNT));
    // One stamped message in 64 is sampled.
    assert_eq!(counters.latency.len(), u64::from(COUNT / 64));
    let store = app.world().resource::<DiagnosticsStore>();
    let (msgs, p50) = (
        PerdixDiagnostics::MSGS_PER_SEC,
        PerdixDiagnostics::LATENCY_P50_US,
    );
    let value = |path| {
        store
            .get(path)
            .and_then(|d| d.measurement())
            .map(|m| m.value)
    };
    let rate = value(&msgs).unwrap_or(0.0);
    assert!(rate > 0.0, "msgs_per_sec {rate}");
    assert!(value(&p50).is_some(), "no latency window");
    assert_eq!(app.world().resource::<Reads>().0, 6);
}

#[test]
fn diagnostics_are_collected_without_bevys_diagnostics_plugin() {
    // No `DiagnosticsPlugin`: the plugin registers its paths (creating the store) itself.
    let mut app = app(PerdixPlugin::default().capacity(64));
    let mut p = producer(&mut app, "a");
    app.update();
    std::thread::sleep(Duration::from_millis(120));
    for n in 0..40 {
        send_tick(&mut p, 0, n);
    }
    assert!(sampled(&mut app, &PerdixDiagnostics::MSGS_PER_SEC) > 0.0);
}

//! The thread drain (order, budget, kinds registered after it started) and zero-copy reading
//! with routing off, in both drain modes.

use super::*;

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
    assert_eq!(ring.counters().total().messages, 10);
}

/// Updates until the drain has taken `count` messages (drain threads hand over asynchronously).
fn update_until_taken(app: &mut App, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while app
        .world()
        .resource::<PerdixRings>()
        .counters()
        .total()
        .messages
        < count
    {
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
    let counters = app.world().resource::<PerdixRings>().counters();
    assert_eq!(counters.total().messages, 2000);
    assert!(
        counters.app.max_frame <= 100,
        "max frame {}",
        counters.app.max_frame
    );
    assert!(counters.app.frames >= 20);
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
    assert_eq!(
        app.world()
            .resource::<PerdixRings>()
            .counters()
            .total()
            .unrouted,
        1
    );
    // Kind 9 becomes a typed envelope while the drain thread runs.
    app.add_perdix_envelope::<[u64; 2]>(9);
    assert_eq!(p.try_produce_kind(9, &[2; 16]), Ok(()));
    send_tick(&mut p, 0, 0);
    update_until_taken(&mut app, 3);
    let counters = app.world().resource::<PerdixRings>().counters();
    assert_eq!(
        (counters.total().unrouted, counters.total().malformed),
        (1, 0)
    );
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
    assert_eq!(
        (ring.counters().total().messages, ring.handed_over()),
        (10, 0)
    );
    assert!(app.world().resource::<Seen>().0.is_empty());
}

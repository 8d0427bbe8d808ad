//! Item 8 of issue 20: a kind no route takes is not silent. The first message of each such
//! kind on each ring is a `PerdixEvent::Unrouted` (a warning: `perdix/warnings`), then only
//! counted (`DrainStats::unrouted`); a ring remembers a bounded set of kinds.
//!
//! Before: one wrong kind constant, every message delivered raw and counted as unrouted, and
//! nothing else: no event, no log line.

use std::time::{Duration, Instant};

use bevy_app::prelude::*;
use bevy_diagnostic::{DiagnosticsPlugin, DiagnosticsStore};
use bevy_ecs::prelude::*;
use bytemuck::{Pod, Zeroable};
use perdix_transport::bevy::{
    DrainMode, PerdixAppExt, PerdixDiagnostics, PerdixEvent, PerdixPlugin, PerdixRings,
    UNROUTED_KINDS_PER_RING,
};
use perdix_transport::Producer;

use super::{all_events, keep_events, AllEvents};

#[derive(Message, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
struct Hit {
    particle: u32,
}

const KIND_HIT: u32 = 1;
/// The wrong constant: what a kernel sends for `Hit` by mistake.
const KIND_TYPO: u32 = 2;
const KIND_OTHER: u32 = 3;

fn app(drain: DrainMode) -> App {
    let mut app = App::new();
    app.add_plugins((
        DiagnosticsPlugin,
        PerdixPlugin::default().capacity(4096).drain(drain),
    ))
    .add_perdix_message::<Hit>(KIND_HIT)
    .init_resource::<AllEvents>()
    .add_systems(Update, keep_events);
    app
}

fn producer(app: &mut App, name: &str) -> Producer {
    app.world_mut()
        .resource_mut::<PerdixRings>()
        .add_producer(name)
        .unwrap_or_else(|err| panic!("ring: {err}"))
}

fn send(producer: &mut Producer, kind: u32, count: u32) {
    for particle in 0..count {
        let hit = Hit { particle };
        producer
            .try_produce_kind(kind, bytemuck::bytes_of(&hit))
            .unwrap_or_else(|err| panic!("produce: {err}"));
    }
}

/// Runs frames until `messages` were taken in all (a drain thread's batches take a few).
fn drain_until(app: &mut App, messages: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while app
        .world()
        .resource::<PerdixRings>()
        .counters()
        .total()
        .messages
        < messages
    {
        assert!(Instant::now() < deadline, "not all messages arrived");
        app.update();
    }
    app.update();
}

/// The unrouted events so far, as (ring, name, kind), sorted.
fn unrouted(app: &App) -> Vec<(u32, String, u32)> {
    let mut got: Vec<_> = all_events(app)
        .into_iter()
        .map(|event| match event {
            PerdixEvent::Unrouted { ring, name, kind } => (ring, name, kind),
            other => panic!("not an unrouted kind: {other:?}"),
        })
        .collect();
    got.sort();
    got
}

fn warnings_diagnostic(app: &App) -> Option<f64> {
    app.world()
        .resource::<DiagnosticsStore>()
        .get(&PerdixDiagnostics::WARNINGS)
        .and_then(|d| d.value())
}

fn each_unrouted_kind_is_reported_once_per_ring(drain: DrainMode) {
    let mut app = app(drain);
    let (mut a, mut b) = (producer(&mut app, "a"), producer(&mut app, "b"));
    send(&mut a, KIND_TYPO, 100);
    send(&mut a, KIND_HIT, 10);
    for _ in 0..5 {
        send(&mut b, KIND_TYPO, 1);
        send(&mut b, KIND_OTHER, 1);
    }
    drain_until(&mut app, 120);
    let want = vec![
        (0, "a".to_owned(), KIND_TYPO),
        (1, "b".to_owned(), KIND_TYPO),
        (1, "b".to_owned(), KIND_OTHER),
    ];
    assert_eq!(unrouted(&app), want);
    let rings = app.world().resource::<PerdixRings>();
    assert_eq!(
        rings.counters().total().unrouted,
        110,
        "every one is counted"
    );
    // Warnings, not faults.
    assert_eq!((rings.errors(), rings.warnings()), (0, 3));
    assert_eq!(warnings_diagnostic(&app), Some(3.0));
    // Counted after that, not reported again.
    send(&mut a, KIND_TYPO, 50);
    send(&mut b, KIND_OTHER, 50);
    drain_until(&mut app, 220);
    assert_eq!(unrouted(&app), want);
    let rings = app.world().resource::<PerdixRings>();
    assert_eq!(rings.counters().total().unrouted, 210);
    assert_eq!(rings.warnings(), 3);
}

#[test]
fn each_unrouted_kind_is_reported_once_per_ring_in_system_drain() {
    each_unrouted_kind_is_reported_once_per_ring(DrainMode::System);
}

#[test]
fn each_unrouted_kind_is_reported_once_per_ring_in_thread_drain() {
    each_unrouted_kind_is_reported_once_per_ring(DrainMode::Thread);
}

#[test]
fn kinds_registered_raw_are_not_reported() {
    let mut app = app(DrainMode::System);
    app.add_perdix_raw(KIND_TYPO);
    let mut a = producer(&mut app, "a");
    send(&mut a, KIND_TYPO, 10);
    send(&mut a, KIND_HIT, 10);
    drain_until(&mut app, 20);
    assert_eq!(all_events(&app), []);
    assert_eq!(
        app.world()
            .resource::<PerdixRings>()
            .counters()
            .total()
            .unrouted,
        0
    );
}

#[test]
fn a_ring_reports_a_bounded_number_of_kinds() {
    // A producer may send any of 2^32 kinds: the ring remembers 64, the rest are counted.
    let mut app = app(DrainMode::System);
    let mut a = producer(&mut app, "a");
    let kinds = 3 * UNROUTED_KINDS_PER_RING as u32;
    for kind in 0..kinds {
        send(&mut a, 1_000 + kind, 2);
    }
    drain_until(&mut app, 2 * u64::from(kinds));
    let got = unrouted(&app);
    assert_eq!(got.len(), UNROUTED_KINDS_PER_RING);
    assert!(got
        .iter()
        .all(|(ring, _, kind)| *ring == 0 && *kind >= 1_000));
    let rings = app.world().resource::<PerdixRings>();
    assert_eq!(rings.counters().total().unrouted, 2 * u64::from(kinds));
    // Another ring has its own set.
    let mut b = producer(&mut app, "b");
    send(&mut b, 5_000, 1);
    drain_until(&mut app, 2 * u64::from(kinds) + 1);
    assert_eq!(unrouted(&app).len(), UNROUTED_KINDS_PER_RING + 1);
}

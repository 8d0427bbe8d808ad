//! `PerdixPlugin` on the CPU backend: typed routing, order, exact counts, budget, backpressure
//! and drops in diagnostics, unrouted and malformed messages, thread drain, CPU fallbacks and
//! the `args` rule of their launches.
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
use perdix_transport::{Buffer, Error, Policy, Producer, RingMode};

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

mod batch;
mod counts;
mod held;
mod launches;
mod producers;
mod routing;
mod sizes;
mod thread_drain;

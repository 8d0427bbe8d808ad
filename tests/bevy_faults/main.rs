//! Faults reach the app, on the CPU (headless `App`, no tracing subscriber): a corrupt ring, a
//! GPU producer that cannot start, a CPU fallback that panics, and a bad plugin configuration
//! each give a typed value (a `PerdixEvent`, the ring's `RingState`) and the `perdix/errors`
//! diagnostic, not only a log line; the other rings keep flowing.
#![cfg(feature = "bevy")]

use core::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use bevy_app::prelude::*;
use bevy_diagnostic::{DiagnosticsPlugin, DiagnosticsStore};
use bevy_ecs::prelude::*;
use perdix_transport::bevy::{
    DrainMode, GpuProducerSpec, PerdixAppExt, PerdixDiagnostics, PerdixEvent, PerdixPlugin,
    PerdixRings, RingState,
};
use perdix_transport::layout::{OFFSET_LEN, OFFSET_SEQ, SLOT_SIZE};
use perdix_transport::{Backend, Error};

/// Messages seen by an ECS reader of raw messages, per ring.
#[derive(Resource, Default)]
struct Seen(Vec<(u32, u64)>);

fn collect(mut raw: MessageReader<perdix_transport::bevy::PerdixMessage>, mut seen: ResMut<Seen>) {
    seen.0.extend(raw.read().map(|m| (m.ring(), m.seq())));
}

/// Every `PerdixEvent` written since the app started (Bevy keeps a message two frames).
#[derive(Resource, Default)]
struct AllEvents(Vec<PerdixEvent>);

fn keep_events(mut events: MessageReader<PerdixEvent>, mut all: ResMut<AllEvents>) {
    all.0.extend(events.read().cloned());
}

fn app(plugin: PerdixPlugin) -> App {
    let mut app = App::new();
    // Kind 0 (`try_produce`'s) is read raw on purpose (`collect`): registered as raw, it is
    // not an unrouted kind (which would be reported as a `PerdixEvent::Unrouted`).
    app.add_plugins((DiagnosticsPlugin, plugin))
        .add_perdix_raw(0)
        .init_resource::<Seen>()
        .init_resource::<AllEvents>()
        .add_systems(Update, (collect, keep_events));
    app
}

/// Every `PerdixEvent` an app made with [`app`] (or that keeps them in [`AllEvents`]) was
/// written.
fn all_events(app: &App) -> Vec<PerdixEvent> {
    app.world().resource::<AllEvents>().0.clone()
}

/// Every `PerdixEvent` written so far.
fn events(app: &App) -> Vec<PerdixEvent> {
    let events = app.world().resource::<Messages<PerdixEvent>>();
    events.get_cursor().read(events).cloned().collect()
}

fn errors_diagnostic(app: &App) -> Option<f64> {
    app.world()
        .resource::<DiagnosticsStore>()
        .get(&PerdixDiagnostics::ERRORS)
        .and_then(|d| d.value())
}

#[path = "../support/host_ring.rs"]
mod host_ring;

use host_ring::ring_with_memory;

/// Writes a header no producer could: `len` 1000 (above the 992 bytes an 8-slot ring carries:
/// `layout::max_message(8)`), published as
/// ready at position `pos` (`seq = pos + 1`), as a buggy GPU writer would.
fn forge_corrupt_slot(base: NonNull<u8>, pos: usize) {
    let slot = base.as_ptr().wrapping_add(pos * SLOT_SIZE);
    // SAFETY: `slot + OFFSET_LEN` is inside the ring's allocation (pos < capacity, the ring's
    // slots start at the region's start), 4-byte aligned (slots are 256-aligned, OFFSET_LEN is
    // 8), and the consumer reads header words only atomically; the allocation lives as long
    // as the consumer (the plugin keeps a monitor of the ring).
    let len = unsafe { AtomicU32::from_ptr(slot.wrapping_add(OFFSET_LEN).cast()) };
    len.store(1000, Ordering::Relaxed);
    // SAFETY: as above, 8-byte aligned (OFFSET_SEQ is 0); `seq` is only ever accessed
    // atomically. Release: the consumer's acquire of `seq` then sees the `len` above.
    let seq = unsafe { AtomicU64::from_ptr(slot.wrapping_add(OFFSET_SEQ).cast()) };
    seq.store(pos as u64 + 1, Ordering::Release);
}

fn corrupt_ring_reaches_the_app(drain: DrainMode) {
    let mut app = app(PerdixPlugin::default().capacity(1024).drain(drain));
    let (mut bad, consumer, base) = ring_with_memory(8);
    let mut good = {
        let mut ring = app.world_mut().resource_mut::<PerdixRings>();
        ring.add_consumer("bad", consumer);
        ring.add_producer("good")
            .unwrap_or_else(|err| panic!("ring: {err}"))
    };
    for _ in 0..3 {
        bad.try_produce(b"fine")
            .unwrap_or_else(|err| panic!("produce: {err}"));
    }
    forge_corrupt_slot(base, 3);
    let mut sent = 0u64;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while events(&app).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no PerdixEvent within 10 s"
        );
        good.try_produce(b"ok")
            .unwrap_or_else(|err| panic!("good ring: {err}"));
        sent += 1;
        app.update();
    }
    let expected = Error::Corrupt {
        pos: 3,
        seq: 4,
        len: 1000,
    };
    // (a) the typed value: one event, and the ring's state.
    assert_eq!(
        events(&app),
        [PerdixEvent::RingFailed {
            ring: 0,
            name: "bad".into(),
            device: None,
            error: expected.clone(),
        }]
    );
    let ring = app.world().resource::<PerdixRings>();
    assert_eq!(
        ring.ring_state(0),
        Some(RingState::Failed(expected.clone()))
    );
    assert_eq!(ring.errors(), 1);
    // The three messages published before the fault arrived first.
    let seen = &app.world().resource::<Seen>().0;
    let bad_seqs: Vec<u64> = seen.iter().filter(|m| m.0 == 0).map(|m| m.1).collect();
    assert_eq!(bad_seqs, [0, 1, 2]);
    // (b) the diagnostic.
    assert_eq!(errors_diagnostic(&app), Some(1.0));
    // The ring is closed for its producer, which gets the fault.
    assert_eq!(bad.try_produce(b"more"), Err(expected));
    // Reported once; the other ring keeps flowing.
    for _ in 0..3 {
        good.try_produce(b"ok")
            .unwrap_or_else(|err| panic!("good ring: {err}"));
        sent += 1;
        for _ in 0..50 {
            app.update();
        }
    }
    assert_eq!(app.world().resource::<PerdixRings>().errors(), 1);
    assert_eq!(
        app.world().resource::<PerdixRings>().ring_state(1),
        Some(RingState::Running)
    );
    let good_count = app
        .world()
        .resource::<Seen>()
        .0
        .iter()
        .filter(|m| m.0 == 1)
        .count();
    assert_eq!(good_count as u64, sent);
}

#[test]
fn corrupt_ring_reaches_the_app_in_system_drain() {
    corrupt_ring_reaches_the_app(DrainMode::System);
}

#[test]
fn corrupt_ring_reaches_the_app_in_thread_drain() {
    corrupt_ring_reaches_the_app(DrainMode::Thread);
}

#[test]
fn corrupt_ring_reaches_a_drain_with_caller() {
    let mut app = app(PerdixPlugin::default().route(false));
    let (mut bad, consumer, base) = ring_with_memory(8);
    app.world_mut()
        .resource_mut::<PerdixRings>()
        .add_consumer("bad", consumer);
    bad.try_produce(b"fine")
        .unwrap_or_else(|err| panic!("produce: {err}"));
    forge_corrupt_slot(base, 1);
    let mut ring = app.world_mut().resource_mut::<PerdixRings>();
    // The message before the fault first; the next call finds the fault.
    assert_eq!(ring.drain_with(10, |_| {}), 1);
    assert_eq!(ring.drain_with(10, |_| {}), 0);
    assert!(matches!(
        ring.ring_state(0),
        Some(RingState::Failed(Error::Corrupt { pos: 1, .. }))
    ));
    // Written as an event by the next frame's drain.
    app.update();
    assert!(matches!(
        events(&app)[..],
        [PerdixEvent::RingFailed {
            ring: 0,
            error: Error::Corrupt { pos: 1, .. },
            ..
        }]
    ));
}

#[test]
fn gpu_producer_without_fallback_or_gpu_reports_why() {
    const TICK_CU: &str = "extern \"C\" __global__ void tick(const perdix_producer* p) {}";
    // SAFETY: `tick` takes only the producer pointer (`A = ()`) and touches no memory.
    let spec = unsafe { GpuProducerSpec::<()>::new("ticks", TICK_CU, "tick") };
    let mut app = app(PerdixPlugin::default());
    app.add_gpu_producer(spec);
    if app
        .world_mut()
        .resource_mut::<PerdixRings>()
        .producer_backend()
        .is_gpu()
    {
        println!("skipped: a CUDA device is present (the producer starts on it)");
        return;
    }
    app.update();
    let got = events(&app);
    assert!(
        matches!(
            &got[..],
            [PerdixEvent::ProducerFailed { name, error: Error::NoDevice(_) }] if name == "ticks"
        ),
        "{got:?}"
    );
    assert_eq!(errors_diagnostic(&app), Some(1.0));
    assert_eq!(app.world().resource::<PerdixRings>().rings(), 0);
}

#[test]
fn a_panicking_cpu_fallback_reports_its_producer_failed() {
    const TICK_CU: &str = "extern \"C\" __global__ void tick(const perdix_producer* p) {}";
    // SAFETY: `tick` takes only the producer pointer (`A = ()`) and touches no memory.
    let spec = unsafe { GpuProducerSpec::<()>::new("panics", TICK_CU, "tick") }.cpu_fallback(
        |(), emit| {
            assert!(
                emit.frame() < 2,
                "the fallback's third launch panics (on purpose)"
            );
            let _ = emit.emit_bytes(1, b"ok");
        },
    );
    let mut app = app(PerdixPlugin::default());
    // Kind 1 is read raw (not an unrouted kind, which would be reported).
    app.add_perdix_raw(1).add_gpu_producer(spec);
    app.update();
    if app
        .world()
        .resource::<PerdixRings>()
        .producer_backend()
        .is_gpu()
    {
        println!("skipped: a CUDA device is present (the kernel runs, not the fallback)");
        return;
    }
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while got.is_empty() {
        assert!(std::time::Instant::now() < deadline, "no event");
        app.update();
        std::thread::sleep(std::time::Duration::from_millis(1));
        got = events(&app);
    }
    assert!(
        matches!(
            &got[..],
            [PerdixEvent::ProducerFailed { name, error: Error::Panicked(_) }] if name == "panics"
        ),
        "{got:?}"
    );
    assert_eq!(errors_diagnostic(&app), Some(1.0));
    // It is not launched again: nothing more is reported.
    for _ in 0..5 {
        app.update();
    }
    assert_eq!(app.world().resource::<PerdixRings>().errors(), 1);
}

#[test]
fn no_faults_means_no_events_and_zero_errors() {
    let mut app = app(PerdixPlugin::default());
    let mut producer = app
        .world_mut()
        .resource_mut::<PerdixRings>()
        .add_producer("cpu")
        .unwrap_or_else(|err| panic!("ring: {err}"));
    producer
        .try_produce(b"hi")
        .unwrap_or_else(|err| panic!("produce: {err}"));
    app.update();
    drop(producer);
    app.update();
    assert!(events(&app).is_empty());
    assert_eq!(errors_diagnostic(&app), Some(0.0));
    assert_eq!(
        app.world().resource::<PerdixRings>().ring_state(0),
        Some(RingState::Finished)
    );
}

#[test]
fn invalid_configuration_is_refused_by_validate() {
    assert_eq!(
        PerdixPlugin::default().capacity(1000).validate(),
        Err(Error::InvalidCapacity(1000))
    );
    for capacity in [0, 1, 3, (1 << 31) + 1] {
        assert_eq!(
            PerdixPlugin::default().capacity(capacity).validate(),
            Err(Error::InvalidCapacity(capacity))
        );
    }
    // The field is public (the builder clamps to 1).
    let zero_budget = PerdixPlugin {
        budget: 0,
        ..PerdixPlugin::default()
    };
    assert!(matches!(
        zero_budget.validate(),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        PerdixPlugin::default().memory(Backend::Host).validate(),
        Err(Error::InvalidConfig(_))
    ));
    assert_eq!(PerdixPlugin::default().capacity(2).validate(), Ok(()));
}

#[test]
#[should_panic(expected = "PerdixPlugin: invalid capacity 1000: must be a power of two")]
fn invalid_capacity_fails_the_app_at_build() {
    // Before: accepted, its producers failed at Startup with a `warn`, and the app ran with 0
    // rings forever.
    App::new().add_plugins(PerdixPlugin::default().capacity(1000));
}

#[cfg(feature = "cuda")]
#[test]
fn an_empty_device_list_is_refused() {
    use perdix_transport::cuda::GpuDevices;

    let err = PerdixPlugin::default()
        .devices(GpuDevices::List(Vec::new()))
        .validate();
    assert!(matches!(err, Err(Error::InvalidConfig(_))), "{err:?}");
}

#[test]
fn failure_events_display_their_error() {
    let event = PerdixEvent::ProducerFailed {
        name: "ticks".into(),
        error: Error::Spawn("out of threads".into()),
    };
    assert_eq!(
        event.error().map(ToString::to_string).as_deref(),
        Some("could not start a thread: out of threads")
    );
}

// GPU producers on their CPU fallbacks, unrouted kinds, skipped launches: warnings as values.
mod fell_back;
mod skipped;
mod unrouted;

#[cfg(feature = "cuda")]
#[path = "../support/child.rs"]
mod child;
#[cfg(feature = "cuda")]
#[path = "../support/skip.rs"]
mod skip;

// A kernel `__trap()`s mid-stream while the plugin drains: in gpu.rs.
#[cfg(feature = "cuda")]
mod gpu;
// GPU start failures with a fallback, device drops and stalls, a hung kernel: in gpu_events.rs.
#[cfg(feature = "cuda")]
#[path = "../support/device.rs"]
mod device;
#[cfg(feature = "cuda")]
mod gpu_events;

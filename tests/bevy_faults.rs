//! Faults reach the app, on the CPU (headless `App`, no tracing subscriber): a corrupt ring, a
//! GPU producer that cannot start, and a bad plugin configuration each give a typed value (a
//! `PerdixEvent`, the ring's `RingState`) and the `perdix/errors` diagnostic, not only a log
//! line; the other rings keep flowing.
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

fn app(plugin: PerdixPlugin) -> App {
    let mut app = App::new();
    app.add_plugins((DiagnosticsPlugin, plugin))
        .init_resource::<Seen>()
        .add_systems(Update, collect);
    app
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

#[path = "support/host_ring.rs"]
mod host_ring;

use host_ring::ring_with_memory;

/// Writes a header no producer could: `len` 1000 (above the 224-byte payload), published as
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
        event.error().to_string(),
        "could not start a thread: out of threads"
    );
}

#[cfg(feature = "cuda")]
#[path = "support/child.rs"]
mod child;

/// A kernel `__trap()`s mid-stream while the plugin drains (item 13 of issue 10).
///
/// A trap kills its whole CUDA context, and with it every kernel of the plugin on that device
/// (the plugin's GPU producers share the device's context), so "other rings" here are the
/// app's CPU rings: they keep flowing while the failed GPU ring reports its fault.
#[cfg(feature = "cuda")]
mod gpu {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, PoisonError};
    use std::time::{Duration, Instant};

    use bevy_app::prelude::*;
    use bevy_ecs::prelude::*;
    use bytemuck::{Pod, Zeroable};
    use perdix_transport::bevy::{
        DrainMode, GpuProducerSpec, PerdixAppExt, PerdixEvent, PerdixPlugin, PerdixRings, RingState,
    };
    use perdix_transport::cuda::{GpuContext, GpuProducer};
    use perdix_transport::Error;

    const TRAP_CU: &str = r#"
#include "perdix.cuh"
extern "C" __global__ void emit_then_trap(const perdix_producer* p, unsigned frame,
                                          unsigned trap_at) {
    unsigned msg[2] = { frame, threadIdx.x };
    perdix_emit(p, 7, msg, sizeof msg);
    if (frame >= trap_at && threadIdx.x == 0) __trap();
}
"#;

    #[derive(Clone, Copy, Pod, Zeroable)]
    #[repr(C)]
    struct TrapArgs {
        frame: u32,
        trap_at: u32,
    }

    #[derive(Resource, Default)]
    struct Frame(u32);

    fn tick(mut frame: ResMut<Frame>) {
        frame.0 += 1;
    }

    /// Fails the test (the whole binary) if it is not done by `deadline`: a hang is a failure.
    fn watchdog(deadline: Duration) -> Arc<AtomicBool> {
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < deadline {
                if flag.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            eprintln!("watchdog: the kernel-fault test hung for {deadline:?}");
            std::process::exit(101);
        });
        done
    }

    fn kernel_trap_reaches_the_app(drain: DrainMode) {
        const TRAP_AT: u32 = 20;
        let done = watchdog(Duration::from_secs(60));
        let trapped_at: Arc<Mutex<Option<Instant>>> = Arc::default();
        let stamp = Arc::clone(&trapped_at);
        // SAFETY: (1) `emit_then_trap`'s first parameter is the producer pointer; (2) it
        // reaches the ring only through `perdix_emit`; (3) `TrapArgs` is `#[repr(C)]
        // { u32, u32 }`, its `unsigned frame, unsigned trap_at`; (4) it writes no other memory
        // (the trap stops the kernel, it writes nothing).
        let spec = unsafe { GpuProducerSpec::new("trap", TRAP_CU, "emit_then_trap") }
            .block(32)
            .args(move |world: &World| {
                let frame = world.resource::<Frame>().0;
                if frame >= TRAP_AT {
                    let mut at = stamp.lock().unwrap_or_else(PoisonError::into_inner);
                    at.get_or_insert_with(Instant::now);
                }
                TrapArgs {
                    frame,
                    trap_at: TRAP_AT,
                }
            });
        let mut app = App::new();
        app.add_plugins(PerdixPlugin::default().capacity(1024).drain(drain))
            .add_perdix_raw(7)
            .add_gpu_producer(spec)
            .init_resource::<Frame>()
            .add_systems(Last, tick);
        if !app
            .world_mut()
            .resource_mut::<PerdixRings>()
            .producer_backend()
            .is_gpu()
        {
            println!("skipped: no CUDA device");
            done.store(true, Ordering::Relaxed);
            return;
        }
        let mut cpu = app
            .world_mut()
            .resource_mut::<PerdixRings>()
            .add_producer("cpu")
            .unwrap_or_else(|err| panic!("cpu ring: {err}"));
        app.update(); // Startup: the GPU producer adds its ring
        let gpu_ring = {
            let ring = app.world().resource::<PerdixRings>();
            (0..ring.rings())
                .find(|&r| ring.ring_device(r).is_some())
                .unwrap_or_else(|| panic!("no GPU ring among {}", ring.rings()))
        };
        let cpu_ring = 1 - gpu_ring;
        let events = |app: &App| -> Vec<PerdixEvent> {
            let messages = app.world().resource::<Messages<PerdixEvent>>();
            messages.get_cursor().read(messages).cloned().collect()
        };
        let mut seen = Vec::new();
        let (mut producer_failed, mut ring_failed) = (None, None);
        let mut cpu_sent = 0u64;
        // The driver's own report of the trap, on the same (primary) context: an idle probe
        // stream's query returns the sticky fault once the driver has it. The plugin cannot
        // know sooner; what it adds after that is its own latency.
        let gpu = GpuContext::new(0).unwrap_or_else(|err| panic!("probe context: {err}"));
        let (probe, _probe_consumer) =
            GpuProducer::new(&gpu, 64).unwrap_or_else(|err| panic!("probe producer: {err}"));
        let mut driver_reported: Option<Instant> = None;
        let mut frames = 0u64;
        while producer_failed.is_none() || ring_failed.is_none() {
            if driver_reported.is_none() && probe.is_idle().is_err() {
                driver_reported = Some(Instant::now());
            }
            cpu.try_produce(b"cpu")
                .unwrap_or_else(|err| panic!("cpu ring: {err}"));
            cpu_sent += 1;
            app.update();
            frames += 1;
            seen.extend(events(&app));
            let ring = app.world().resource::<PerdixRings>();
            let since = trapped_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .map(|t| t.elapsed());
            assert!(
                frames < 20_000,
                "no fault after {frames} frames: since the trap {since:?}, events {seen:?}, \
                 GPU ring {:?}",
                ring.ring_state(gpu_ring)
            );
            if producer_failed.is_none()
                && seen
                    .iter()
                    .any(|e| matches!(e, PerdixEvent::ProducerFailed { .. }))
            {
                producer_failed = since;
            }
            if ring_failed.is_none()
                && matches!(ring.ring_state(gpu_ring), Some(RingState::Failed(_)))
            {
                ring_failed = since;
            }
        }
        let (Some(to_event), Some(to_state)) = (producer_failed, ring_failed) else {
            panic!("no time of the trap launch");
        };
        let seen_at = Instant::now();
        if driver_reported.is_none() && probe.is_idle().is_err() {
            driver_reported = Some(seen_at);
        }
        let Some(driver_reported) = driver_reported else {
            panic!("the probe stream never saw the fault the plugin reported: {seen:?}");
        };
        let launched_at = trapped_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .unwrap_or(seen_at);
        let driver = driver_reported.saturating_duration_since(launched_at);
        // The app's latency after the driver's report: the event and state were seen by the
        // end of this frame; `to_event`/`to_state` are from the launch.
        let after_driver = |since_launch: Duration| since_launch.saturating_sub(driver);
        println!(
            "{drain} drain: trap launch to the driver's report {:.2} ms; to PerdixEvent {:.2} ms \
             ({:.2} ms after the driver), to RingState::Failed {:.2} ms ({:.2} ms after)",
            driver.as_secs_f64() * 1e3,
            to_event.as_secs_f64() * 1e3,
            after_driver(to_event).as_secs_f64() * 1e3,
            to_state.as_secs_f64() * 1e3,
            after_driver(to_state).as_secs_f64() * 1e3
        );
        assert!(
            seen.iter().any(|e| matches!(
                e,
                PerdixEvent::ProducerFailed { name, error: Error::KernelFault(_) } if name == "trap"
            )),
            "{seen:?}"
        );
        assert!(
            seen.iter()
                .any(|e| matches!(e, PerdixEvent::RingFailed { ring, .. } if *ring == gpu_ring)),
            "{seen:?}"
        );
        // Within 100 ms of the fault being knowable (the driver's report; how long the driver
        // takes to report a trap is in docs/DESIGN-NOTES.md).
        assert!(
            after_driver(to_event) < Duration::from_millis(100),
            "{to_event:?} {driver:?}"
        );
        assert!(
            after_driver(to_state) < Duration::from_millis(100),
            "{to_state:?} {driver:?}"
        );
        // The CPU ring keeps flowing.
        let before = app.world().resource::<PerdixRings>().device_totals();
        for _ in 0..100 {
            cpu.try_produce(b"cpu")
                .unwrap_or_else(|err| panic!("cpu ring: {err}"));
            cpu_sent += 1;
            app.update();
        }
        // Every CPU message arrives (in thread mode some are still in the drain thread's
        // batches after the last send: a few more frames take them).
        let gpu_taken: u64 = before.iter().map(|t| t.messages).sum();
        let cpu_taken =
            |app: &App| app.world().resource::<PerdixRings>().stats().messages - gpu_taken;
        let mut extra = 0;
        while cpu_taken(&app) < cpu_sent && extra < 10_000 {
            app.update();
            extra += 1;
        }
        let ring = app.world().resource::<PerdixRings>();
        assert_eq!(ring.ring_state(cpu_ring), Some(RingState::Running));
        assert_eq!(
            ring.device_totals(),
            before,
            "the failed GPU ring took nothing more"
        );
        assert_eq!(cpu_taken(&app), cpu_sent, "after {extra} more frames");
        done.store(true, Ordering::Relaxed);
    }

    /// A trap poisons the process's whole (primary) context, so each trap test runs in a child
    /// process of this binary; the parent checks that the child ran the test and passed.
    fn in_child(test: &str, drain: DrainMode) {
        if super::child::is_child() {
            return kernel_trap_reaches_the_app(drain);
        }
        if GpuContext::new(0).is_err() {
            println!("skipped: no CUDA device");
            return;
        }
        let text = super::child::run(test);
        assert!(
            text.contains("drain: trap launch"),
            "the child did not run the test"
        );
    }

    #[test]
    #[ignore = "needs a CUDA device"]
    fn kernel_trap_reaches_the_app_in_system_drain() {
        in_child(
            "gpu::kernel_trap_reaches_the_app_in_system_drain",
            DrainMode::System,
        );
    }

    #[test]
    #[ignore = "needs a CUDA device"]
    fn kernel_trap_reaches_the_app_in_thread_drain() {
        in_child(
            "gpu::kernel_trap_reaches_the_app_in_thread_drain",
            DrainMode::Thread,
        );
    }
}

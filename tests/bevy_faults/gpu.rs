//! A kernel `__trap()`s mid-stream while the plugin drains (item 13 of issue 10).
//!
//! A trap kills its whole CUDA context, and with it every kernel of the plugin on that device
//! (the plugin's GPU producers share the device's context), so "other rings" here are the
//! app's CPU rings: they keep flowing while the failed GPU ring reports its fault.

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
    // SAFETY: `new`'s contract: (1) `emit_then_trap`'s first parameter is the producer
    // pointer; (2) it reaches the ring only through `perdix_emit`; (3) it writes no other
    // memory (the trap stops the kernel, it writes nothing); (4) under any grid and block;
    // (5) `TrapArgs` is `#[repr(C)] { u32, u32 }`, its `unsigned frame, unsigned trap_at`.
    let spec = unsafe { GpuProducerSpec::new("trap", TRAP_CU, "emit_then_trap") }.block(32);
    let args = move |world: &World, _launch: u64| {
        let frame = world.resource::<Frame>().0;
        if frame >= TRAP_AT {
            let mut at = stamp.lock().unwrap_or_else(PoisonError::into_inner);
            at.get_or_insert_with(Instant::now);
        }
        TrapArgs {
            frame,
            trap_at: TRAP_AT,
        }
    };
    // SAFETY: `args`' contract: (1) each value is a `TrapArgs`, the kernel's parameters; (2) no
    // address among them; (3) no buffer of ours.
    let spec = unsafe { spec.args(args) };
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
        super::skip::skip("no CUDA device (the producer runs its CPU fallback)");
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
        (0..u32::try_from(ring.rings()).unwrap_or(u32::MAX))
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
        if ring_failed.is_none() && matches!(ring.ring_state(gpu_ring), Some(RingState::Failed(_)))
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
    let before = app.world().resource::<PerdixRings>().counters().devices();
    for _ in 0..100 {
        cpu.try_produce(b"cpu")
            .unwrap_or_else(|err| panic!("cpu ring: {err}"));
        cpu_sent += 1;
        app.update();
    }
    // Every CPU message arrives (in thread mode some are still in the drain thread's
    // batches after the last send: a few more frames take them).
    let gpu_taken: u64 = before.iter().map(|t| t.counters.messages).sum();
    let cpu_taken = |app: &App| {
        app.world()
            .resource::<PerdixRings>()
            .counters()
            .total()
            .messages
            - gpu_taken
    };
    let mut extra = 0;
    while cpu_taken(&app) < cpu_sent && extra < 10_000 {
        app.update();
        extra += 1;
    }
    let ring = app.world().resource::<PerdixRings>();
    assert_eq!(ring.ring_state(cpu_ring), Some(RingState::Running));
    assert_eq!(
        ring.counters().devices(),
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
    if let Err(err) = GpuContext::new(0) {
        return super::skip::skip(format_args!("no CUDA device ({err})"));
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

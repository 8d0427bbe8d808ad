//! Items 7 and 9 of issue 20 on the GPU (ignored in CI: run them on the GPU machine with
//! `cargo test --release --features cuda --test bevy_faults -- --ignored gpu_events`).
//!
//! Item 7: a GPU producer that cannot start on the GPU (a kernel that does not compile,
//! arguments that do not match it, a failed clock calibration) runs its CPU fallback, and the
//! app is told: a `PerdixEvent::ProducerFellBack` with the error, the producer's
//! `ProducerStatus::backend` on the CPU, and `producer_backend()` (and the snapshot) no longer
//! `gpu`. Item 9: a kernel's drops and stalls (device counters) reach `perdix/drops_per_sec`,
//! `perdix/stalls_per_sec`, the totals and `DeviceTotals`; a hung kernel's skipped launches
//! are counted and its stall reported once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bevy_app::prelude::*;
use bevy_diagnostic::{DiagnosticPath, DiagnosticsPlugin, DiagnosticsStore};
use bevy_ecs::prelude::*;
use perdix_transport::bevy::{
    GpuProducerSpec, PerdixAppExt, PerdixDiagnostics, PerdixEvent, PerdixMessage, PerdixPlugin,
    PerdixRings, ProducerBackend, STALL_FRAMES,
};
use perdix_transport::cuda::{GpuKernel, GpuProducer};
use perdix_transport::{Error, Policy};

use super::device::gpu;
use super::{all_events, keep_events, AllEvents};

/// A plugin app that keeps every event, or `None` (and "skipped") when producers would not
/// run on a GPU.
fn gpu_app(plugin: PerdixPlugin) -> Option<App> {
    let mut app = App::new();
    app.add_plugins((DiagnosticsPlugin, plugin))
        .add_perdix_raw(1)
        .add_perdix_raw(7)
        .init_resource::<AllEvents>()
        .add_systems(Update, keep_events);
    if !app
        .world()
        .resource::<PerdixRings>()
        .producer_backend()
        .is_gpu()
    {
        println!("skipped: no CUDA device");
        return None;
    }
    Some(app)
}

/// Raw messages of `kind` delivered in the latest frames.
fn seen(app: &App, kind: u32) -> usize {
    let raw = app.world().resource::<Messages<PerdixMessage>>();
    raw.get_cursor()
        .read(raw)
        .filter(|m| m.kind() == kind)
        .count()
}

/// A CPU fallback that sends one kind-1 message a launch.
fn ticking<A: bytemuck::Pod + Send + Sync>(spec: GpuProducerSpec<A>) -> GpuProducerSpec<A> {
    spec.cpu_fallback(|_: &A, emit| {
        let _ = emit.emit_bytes(1, b"tick");
    })
}

/// Asserts that producer `name` fell back with an error `is_expected` accepts, is on the CPU
/// with that error as the reason, and that its fallback runs.
fn assert_fell_back(app: &mut App, name: &str, is_expected: impl Fn(&Error) -> bool) {
    for _ in 0..5 {
        app.update();
    }
    let got = all_events(app);
    let error = match &got[..] {
        [PerdixEvent::ProducerFellBack { name: n, error }] if n == name => error.clone(),
        _ => panic!("{got:?}"),
    };
    assert!(is_expected(&error), "{error:?}");
    let rings = app.world().resource::<PerdixRings>();
    assert_eq!((rings.errors(), rings.warnings()), (0, 1));
    let status = rings
        .producers()
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("{name} did not start"));
    assert_eq!(
        status.backend,
        ProducerBackend::Cpu {
            reason: error.to_string()
        }
    );
    let mut frames = 0;
    while seen(app, 1) == 0 {
        assert!(frames < 10_000, "the fallback does not run");
        app.update();
        frames += 1;
    }
    eprintln!("{name}'s fallback ran within {frames} frames");
}

#[test]
#[ignore = "needs a CUDA device"]
fn a_kernel_that_does_not_compile_falls_back_and_says_so() {
    let Some(mut app) = gpu_app(PerdixPlugin::default()) else {
        return;
    };
    const BROKEN_CU: &str =
        "extern \"C\" __global__ void broken(const perdix_producer* p) { this is not C++ }";
    // SAFETY: the kernel never runs (it does not compile); it would touch no memory.
    let spec = unsafe { GpuProducerSpec::<()>::new("broken", BROKEN_CU, "broken") };
    app.add_gpu_producer(ticking(spec));
    assert_fell_back(&mut app, "broken", |e| matches!(e, Error::Compile { .. }));
    // Its only producer fell back: the app's producers run on the CPU.
    let rings = app.world().resource::<PerdixRings>();
    assert_eq!(rings.producer_backend().name(), "cpu");
    assert_eq!(rings.snapshot().backend, "cpu");
}

#[test]
#[ignore = "needs a CUDA device"]
fn arguments_that_do_not_match_the_kernel_fall_back_and_say_so() {
    let Some(mut app) = gpu_app(PerdixPlugin::default()) else {
        return;
    };
    const ONE_ARG_CU: &str = r#"
#include "perdix.cuh"
extern "C" __global__ void one(const perdix_producer* p, unsigned n) {
    if (threadIdx.x < n) perdix_emit(p, 7, &n, sizeof n);
}
"#;
    // SAFETY: (1) `one`'s first parameter is the producer pointer; (2) it reaches the ring
    // only through `perdix_emit`; (3) `A` is checked against `unsigned n` when the producer
    // starts (12 bytes here: refused, nothing is launched); (4) it writes no other memory.
    let wrong = unsafe { GpuProducerSpec::<[u32; 3]>::new("wrong", ONE_ARG_CU, "one") };
    // SAFETY: as above, with `A = u32`, the kernel's `unsigned n`.
    let right = unsafe { GpuProducerSpec::<u32>::new("right", ONE_ARG_CU, "one") }.block(32);
    // SAFETY: (1) each value is `n`, the kernel's `unsigned`; (2) it carries no address.
    let right = unsafe { right.args(|_world, _launch| 1u32) };
    app.add_gpu_producer(ticking(wrong))
        .add_gpu_producer(ticking(right));
    assert_fell_back(&mut app, "wrong", |e| matches!(e, Error::InvalidConfig(_)));
    // The other runs on the GPU: the app's producers are mixed.
    let rings = app.world().resource::<PerdixRings>();
    let right = rings.producers().iter().find(|s| s.name == "right");
    assert!(right.is_some_and(|s| s.backend.is_gpu()), "{right:?}");
    let backend = rings.producer_backend();
    assert!(
        matches!(&backend, ProducerBackend::Mixed { cpu, .. } if *cpu == ["wrong"]),
        "{backend:?}"
    );
    assert_eq!(rings.snapshot().backend, "mixed");
}

#[test]
#[ignore = "needs a CUDA device"]
fn a_failed_clock_calibration_falls_back_and_says_so() {
    // The calibration's probe kernel cannot run while a kernel holds every SM of the same
    // (primary) context: its host side times out after 2 s. The hog stops after 6 s, which
    // lets the probe run and end, and the plugin's start return.
    let Some(device) = gpu() else { return };
    let Some(mut app) = gpu_app(PerdixPlugin::default().timestamps(true)) else {
        return;
    };
    // Where the test is, for a run that does not end (each step's time since the start).
    let began = Instant::now();
    let step = |what: &str| eprintln!("[{:>8.3} s] {what}", began.elapsed().as_secs_f64());
    // The probe's module is loaded now, not while the GPU is full.
    perdix_transport::clock::calibrate(&device, 1)
        .unwrap_or_else(|err| panic!("calibration with a free GPU: {err}"));
    const HOG_CU: &str = r#"
#include "perdix.cuh"
extern "C" __global__ void hog(const perdix_producer* p) {
    while (!perdix_should_stop(p)) {}
}
"#;
    step("probe module loaded");
    let (mut hog, _ring) =
        GpuProducer::new(&device, 64).unwrap_or_else(|err| panic!("hog producer: {err}"));
    // SAFETY: `hog` takes only the producer pointer and writes no memory.
    let kernel = unsafe { GpuKernel::from_source(HOG_CU, "hog") }
        .grid(4096)
        .block(1024);
    // SAFETY: the kernel was built under `from_source`'s contract above and has no arguments,
    // so no address is supplied.
    unsafe { hog.launch(&kernel) }.unwrap_or_else(|err| panic!("hog launch: {err}"));
    step("hog launched");
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(6));
        eprintln!("stopping the hog");
        hog.request_stop()
            .unwrap_or_else(|err| panic!("hog stop: {err}"));
        eprintln!("the hog was asked to stop");
        hog
    });
    // SAFETY: `tick` takes only the producer pointer (`A = ()`) and touches no memory.
    let spec = unsafe {
        GpuProducerSpec::<()>::new(
            "stamped",
            "#include \"perdix.cuh\"\nextern \"C\" __global__ void tick(const perdix_producer* p) {}",
            "tick",
        )
    };
    app.add_gpu_producer(ticking(spec));
    app.update(); // Startup: the calibration times out
    step("Startup ran");
    let hog = stopper
        .join()
        .unwrap_or_else(|_| panic!("the stopper panicked"));
    assert!(
        hog.wait(Some(Duration::from_secs(10)))
            .unwrap_or_else(|err| panic!("hog wait: {err}")),
        "the hog stopped"
    );
    step("the hog stopped");
    assert_fell_back(&mut app, "stamped", |e| matches!(e, Error::Driver(_)));
}

/// Every measurement of `path` so far.
fn measured(app: &App, path: &DiagnosticPath) -> Vec<f64> {
    app.world()
        .resource::<DiagnosticsStore>()
        .get(path)
        .map(|d| d.values().copied().collect())
        .unwrap_or_default()
}

/// Each thread sends `per_thread` messages with the producer's policy, while `on`.
const FLOOD_CU: &str = r#"
#include "perdix.cuh"
extern "C" __global__ void flood(const perdix_producer* p, unsigned on, unsigned per_thread) {
    if (!on) return;
    for (unsigned i = 0; i < per_thread; ++i) {
        if (perdix_send(p, 7, &i, sizeof i) == PERDIX_CLOSED) return;
    }
}
"#;

const GRID: u32 = 8;
const BLOCK: u32 = 256;
const PER_THREAD: u32 = 4;
const PER_LAUNCH: u64 = (GRID * BLOCK * PER_THREAD) as u64;

/// Runs a flooding kernel on a 64-slot ring under `policy` for 400 ms of launches, then until
/// every message it tried is accounted for (taken, or dropped on the device); returns the
/// app and the messages tried.
fn flood(policy: Policy) -> Option<(App, u64)> {
    let mut app = gpu_app(PerdixPlugin::default().capacity(64).policy(policy))?;
    let on_launches = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&on_launches);
    // The 400 ms window opens at the first launch, not before the Startup that compiles the
    // kernel (a cold PTX cache took longer than the window on the H100, and nothing was sent).
    let first_launch = Arc::new(OnceLock::new());
    let opened = Arc::clone(&first_launch);
    // SAFETY: (1) `flood`'s first parameter is the producer pointer; (2) it reaches the ring
    // only through `perdix_send`; (3) `[u32; 2]` is its `unsigned on, unsigned per_thread`;
    // (4) it writes no other memory.
    let spec = unsafe { GpuProducerSpec::<[u32; 2]>::new("flood", FLOOD_CU, "flood") }
        .grid(GRID)
        .block(BLOCK);
    // SAFETY: (1) each value is `[on, per_thread]`, the kernel's two `unsigned`s; (2) it
    // carries no address.
    let spec = unsafe {
        spec.args(move |_world, _launch| {
            let on = opened.get_or_init(Instant::now).elapsed() < Duration::from_millis(400);
            if on {
                counted.fetch_add(1, Ordering::Relaxed);
            }
            [u32::from(on), PER_THREAD]
        })
    };
    app.add_gpu_producer(spec);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        app.update();
        let tried = on_launches.load(Ordering::Relaxed) * PER_LAUNCH;
        let rings = app.world().resource::<PerdixRings>();
        let accounted = rings.counters().total().messages + rings.counters().total().drops;
        let closed = first_launch
            .get()
            .is_some_and(|first: &Instant| first.elapsed() > Duration::from_millis(500));
        if closed && accounted == tried {
            assert!(rings.producers()[0].backend.is_gpu());
            return Some((app, tried));
        }
        assert!(
            Instant::now() < deadline,
            "{accounted} of {tried} accounted for"
        );
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn a_drop_newest_kernel_s_drops_reach_the_diagnostics() {
    // Before: 0 drops anywhere (the host rings' counters only), `accounted` never reached
    // `tried` and this failed on its deadline.
    let Some((app, tried)) = flood(Policy::DropNewest) else {
        return;
    };
    let rings = app.world().resource::<PerdixRings>();
    let drops = rings.counters().total().drops;
    println!("{tried} tried, {drops} dropped on the device");
    assert!(drops > tried / 2, "most are dropped: {drops} of {tried}");
    let device = &rings.counters().devices()[0];
    assert_eq!(
        (
            device.counters.drops,
            device.counters.messages + device.counters.drops
        ),
        (drops, tried)
    );
    let rates = measured(&app, &PerdixDiagnostics::DROPS_PER_SEC);
    assert!(rates.iter().any(|r| *r > 0.0), "drops_per_sec: {rates:?}");
}

#[test]
#[ignore = "needs a CUDA device"]
fn a_blocked_kernel_s_stalls_reach_the_diagnostics() {
    let Some((app, tried)) = flood(Policy::Block) else {
        return;
    };
    let rings = app.world().resource::<PerdixRings>();
    assert_eq!(
        rings.counters().total().messages,
        tried,
        "Block loses nothing"
    );
    let stalls = rings.counters().total().stalls;
    println!("{tried} sent, {stalls} stalls on the device");
    assert!(stalls > 0);
    assert_eq!(rings.counters().devices()[0].counters.stalls, stalls);
    let rates = measured(&app, &PerdixDiagnostics::STALLS_PER_SEC);
    assert!(rates.iter().any(|r| *r > 0.0), "stalls_per_sec: {rates:?}");
}

#[test]
#[ignore = "needs a CUDA device"]
fn a_hung_kernel_s_skipped_launches_are_counted_and_its_stall_reported() {
    // Before: the launcher skipped every frame after the first launch and told no one.
    let Some(mut app) = gpu_app(PerdixPlugin::default()) else {
        return;
    };
    const HANG_CU: &str = r#"
#include "perdix.cuh"
extern "C" __global__ void hang(const perdix_producer* p) {
    while (!perdix_should_stop(p)) {}
}
"#;
    // SAFETY: `hang` takes only the producer pointer and writes no memory; it returns when
    // the producer is stopped or its ring closed (the app's teardown does both).
    let spec = unsafe { GpuProducerSpec::<()>::new("hang", HANG_CU, "hang") }.block(32);
    app.add_gpu_producer(spec);
    let deadline = Instant::now() + Duration::from_secs(30);
    while all_events(&app).is_empty() {
        assert!(Instant::now() < deadline, "no stall reported");
        app.update();
    }
    for _ in 0..STALL_FRAMES {
        app.update();
    }
    let got = all_events(&app);
    assert!(
        matches!(&got[..], [PerdixEvent::LaunchesSkipped { name, frames }]
            if name == "hang" && *frames >= STALL_FRAMES),
        "once: {got:?}"
    );
    let rings = app.world().resource::<PerdixRings>();
    let skipped = rings.launches_skipped();
    assert_eq!(rings.producers()[0].launches_skipped, skipped);
    assert!(rings.producers()[0].backend.is_gpu());
    let last = measured(&app, &PerdixDiagnostics::LAUNCHES_SKIPPED);
    assert_eq!(last.last(), Some(&(skipped as f64)));
    // Dropping the app stops the kernel (teardown closes its ring and sets `stop`).
    let dropped = Instant::now();
    drop(app);
    assert!(
        dropped.elapsed() < Duration::from_secs(10),
        "teardown waited"
    );
}

//! The `args` rule, on the CPU fallback (no GPU needed): the closure is called exactly once
//! for each launch that runs, with launch numbers 0, 1, 2, ... and no gaps; a skipped launch
//! neither calls it nor takes a number, and the fallback sees the same number.

use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};

use super::*;

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
struct LaunchArgs {
    launch: u32,
}

const NOOP_CU: &str =
    "extern \"C\" __global__ void noop(const perdix_producer* p, unsigned launch) {}";

fn lock<T>(list: &Mutex<T>) -> MutexGuard<'_, T> {
    list.lock().unwrap_or_else(PoisonError::into_inner)
}

#[test]
fn args_is_called_once_for_each_launch_that_runs() {
    // Launch numbers the closure was given, and (fallback's number, argument) of those that ran.
    let calls = Arc::new(Mutex::new(Vec::<u64>::new()));
    let ran = Arc::new(Mutex::new(Vec::<(u64, u32)>::new()));
    // The fallback waits on this until the test drops `open`, so launches back up and skip.
    let (open, gate) = mpsc::channel::<()>();
    let (calls_in, ran_in) = (Arc::clone(&calls), Arc::clone(&ran));
    // SAFETY: `new`'s contract: `noop` takes the producer pointer, then one `unsigned`
    // (`LaunchArgs` is `#[repr(C)] { launch: u32 }`), and touches no memory at all, under any
    // grid and block.
    let spec = unsafe { GpuProducerSpec::new("launches", NOOP_CU, "noop") };
    let args = move |_world: &World, launch: u64| {
        lock(&calls_in).push(launch);
        LaunchArgs {
            launch: launch as u32,
        }
    };
    // SAFETY: `args`' contract: each value is a `LaunchArgs`, the kernel's one `unsigned`; no
    // address.
    let spec = unsafe { spec.args(args) }.cpu_fallback(move |args: &LaunchArgs, emit| {
        let _ = gate.recv();
        lock(&ran_in).push((emit.frame(), args.launch));
        let _ = emit.emit(KIND_TICK, &Tick::new(0, args.launch));
    });
    let mut app = app(PerdixPlugin::default().capacity(1024));
    app.add_gpu_producer(spec);
    app.update();
    if app
        .world()
        .resource::<PerdixRings>()
        .producer_backend()
        .is_gpu()
    {
        return; // this pins the fallback path; the GPU side is tests/bevy_kernels.rs's
    }
    let mut frames = 1;
    // Held: one launch runs (blocked), two wait in the queue, every other frame skips.
    for _ in 0..20 {
        app.update();
        frames += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(lock(&calls).len() <= 3, "{:?}", lock(&calls));
    assert!(lock(&ran).is_empty());
    drop(open);
    for _ in 0..30 {
        app.update();
        frames += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    // No more frames: the fallback finishes what was queued.
    let deadline = Instant::now() + Duration::from_secs(20);
    while lock(&ran).len() < lock(&calls).len() {
        assert!(Instant::now() < deadline, "queued launches did not run");
        std::thread::sleep(Duration::from_millis(1));
    }
    let calls = lock(&calls).clone();
    let ran = lock(&ran).clone();
    assert!(
        calls.len() < frames,
        "{} launches in {frames} frames",
        calls.len()
    );
    assert_eq!(calls, (0..calls.len() as u64).collect::<Vec<_>>());
    let expected: Vec<(u64, u32)> = calls.iter().map(|&n| (n, n as u32)).collect();
    assert_eq!(ran, expected, "launches that ran == calls, same numbers");
}

#[test]
fn without_args_the_fallback_still_numbers_its_launches() {
    let ran = Arc::new(Mutex::new(Vec::<u64>::new()));
    let ran_in = Arc::clone(&ran);
    // SAFETY: as above: `noop` touches no memory at all.
    let spec = unsafe { GpuProducerSpec::new("numbers", NOOP_CU, "noop") }.cpu_fallback(
        move |args: &LaunchArgs, emit| {
            assert_eq!(args.launch, 0, "no args: zeroed");
            lock(&ran_in).push(emit.frame());
        },
    );
    let mut app = app(PerdixPlugin::default().capacity(64));
    app.add_gpu_producer(spec);
    app.update();
    let rings = app.world().resource::<PerdixRings>();
    if rings.producer_backend().is_gpu() {
        return;
    }
    // Decided from `&self`, and named in the dashboard's snapshot.
    let snapshot = rings.snapshot();
    assert_eq!((&*snapshot.backend, &*snapshot.device), ("cpu", "cpu"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while lock(&ran).len() < 10 {
        assert!(Instant::now() < deadline, "fallback did not run");
        app.update();
        std::thread::sleep(Duration::from_millis(1));
    }
    let ran = lock(&ran).clone();
    assert_eq!(ran, (0..ran.len() as u64).collect::<Vec<_>>());
}

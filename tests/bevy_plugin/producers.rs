//! Producers the plugin runs: a GPU producer's CPU fallback without a device, CPU stress
//! producers in both drain modes, and GPU stress producers on one or more devices.

use super::*;

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
    // SAFETY: `new`'s contract: `ticks` takes the producer pointer, then one `unsigned`
    // (`FrameArgs` is `#[repr(C)] { per_frame: u32 }`), and touches no memory at all, under
    // any grid and block.
    let spec = unsafe { GpuProducerSpec::new("ticks", TICKS_CU, "ticks") };
    let args = |world: &World, _launch: u64| FrameArgs {
        per_frame: world.resource::<PerFrame>().0,
    };
    // SAFETY: `args`' contract: each value is a `FrameArgs`, the kernel's one `unsigned`; no
    // address.
    let spec = unsafe { spec.args(args) }.cpu_fallback(|args: &FrameArgs, emit| {
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
    let ring = app.world().resource::<PerdixRings>();
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
    let per_device = ring.counters().devices();
    let seen: Vec<(usize, usize)> = per_device
        .iter()
        .map(|d| (d.device as usize, d.rings as usize))
        .collect();
    let expected: Vec<(usize, usize)> = distinct
        .iter()
        .map(|&d| (d, ordinals.iter().filter(|&&o| o == d).count()))
        .collect();
    assert_eq!(seen, expected, "{per_device:?}");
    let total: u64 = per_device.iter().map(|d| d.counters.messages).sum();
    assert_eq!(total, report.messages);
    if distinct.len() > 1 {
        assert!(
            per_device.iter().all(|d| d.counters.messages > 0),
            "{per_device:?}"
        );
    }
    assert!((0..u32::try_from(entries).unwrap_or(u32::MAX)).all(|r| ring
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

//! Item 7 of issue 20, on the CPU: where a GPU producer runs is told truly. A configuration
//! that can never start on the GPU is refused (`validate`), or, where the CPU can still run
//! it, decided as the CPU with the reason; a fallback run because the plugin chose the CPU is
//! not a failure, and raises no event. (The GPU start failures themselves, which need a
//! device to fail on, are in `gpu_events.rs`.)

use bevy_app::prelude::*;
use bevy_ecs::prelude::*;
use perdix_transport::bevy::{
    GpuProducerSpec, PerdixAppExt, PerdixMessage, PerdixPlugin, PerdixRings,
};
#[cfg(feature = "cuda")]
use perdix_transport::bevy::{PerdixEvent, ProducerBackend};
#[cfg(feature = "cuda")]
use perdix_transport::{Backend, Error};

use super::{all_events, app};

const TICK_CU: &str = "extern \"C\" __global__ void tick(const perdix_producer* p) {}";

/// `ticks`: a kernel with a CPU fallback that sends one kind-1 message a launch.
fn ticks() -> GpuProducerSpec<()> {
    // SAFETY: `tick` takes only the producer pointer (`A = ()`) and touches no memory.
    unsafe { GpuProducerSpec::<()>::new("ticks", TICK_CU, "tick") }.cpu_fallback(|(), emit| {
        let _ = emit.emit_bytes(1, b"tick");
    })
}

/// Raw messages of kind 1 delivered so far.
fn ticks_seen(app: &App) -> usize {
    let raw = app.world().resource::<Messages<PerdixMessage>>();
    raw.get_cursor().read(raw).filter(|m| m.kind() == 1).count()
}

#[cfg(feature = "cuda")]
#[test]
fn cuda_ring_memory_below_the_gpu_minimum_is_refused() {
    // Before: `validate` accepted it, every GPU producer failed to start (the builder refused
    // the capacity) and fell back with one `warn!` line.
    for memory in [Backend::CudaPinned, Backend::CudaManaged] {
        for capacity in [2, 16] {
            let plugin = PerdixPlugin::default().capacity(capacity).memory(memory);
            let Err(Error::InvalidConfig(why)) = plugin.validate() else {
                panic!("{memory} x {capacity}: {:?}", plugin.validate());
            };
            assert_eq!(
                why,
                format!("capacity {capacity}: GPU rings need at least 32 slots")
            );
        }
        let at_minimum = PerdixPlugin::default().capacity(32).memory(memory);
        assert_eq!(at_minimum.validate(), Ok(()));
    }
    // Without CUDA memory asked for, the CPU can run it: valid.
    assert_eq!(PerdixPlugin::default().capacity(16).validate(), Ok(()));
}

#[cfg(feature = "cuda")]
#[test]
#[should_panic(expected = "PerdixPlugin: invalid configuration: capacity 16: GPU rings need")]
fn cuda_ring_memory_below_the_gpu_minimum_fails_the_app_at_build() {
    App::new().add_plugins(
        PerdixPlugin::default()
            .capacity(16)
            .memory(Backend::CudaPinned),
    );
}

#[cfg(feature = "cuda")]
#[test]
fn a_capacity_below_the_gpu_minimum_runs_producers_on_the_cpu() {
    // Before: with a GPU, every GPU producer failed to start (a `warn!`) and the app said
    // `gpu`; without one, the reason was the missing device, not the capacity.
    let mut app = app(PerdixPlugin::default().capacity(16));
    app.add_perdix_raw(1).add_gpu_producer(ticks());
    // SAFETY: as `ticks`: the kernel touches no memory.
    let bare = unsafe { GpuProducerSpec::<()>::new("bare", TICK_CU, "tick") };
    app.add_gpu_producer(bare);
    let why = "capacity 16: GPU rings need at least 32 slots".to_owned();
    let chosen = app.world().resource::<PerdixRings>().producer_backend();
    assert_eq!(
        chosen,
        ProducerBackend::Cpu {
            reason: format!("invalid configuration: {why}")
        }
    );
    for _ in 0..5 {
        app.update();
    }
    // The producer without a fallback cannot run: a fault; the fallback runs, as chosen (no
    // `ProducerFellBack`).
    assert_eq!(
        all_events(&app),
        [PerdixEvent::ProducerFailed {
            name: "bare".into(),
            error: Error::InvalidConfig(why.clone()),
        }]
    );
    let rings = app.world().resource::<PerdixRings>();
    assert_eq!((rings.errors(), rings.warnings()), (1, 0));
    let started = rings.producers();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].name, "ticks");
    assert_eq!(started[0].backend, chosen);
    assert_eq!(rings.producer_backend(), chosen);
    // The fallback's thread emits when it gets to it: on a loaded machine that can be after
    // the fifth frame (its messages last two frames), so frames run until they arrive.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ticks_seen(&app) == 0 && std::time::Instant::now() < deadline {
        app.update();
    }
    assert!(ticks_seen(&app) > 0, "the fallback runs");
    let rings = app.world().resource::<PerdixRings>();
    assert_eq!(
        (rings.errors(), rings.warnings()),
        (1, 0),
        "no new fault or warning"
    );
    // An external GPU producer is refused with the same reason.
    let mut rings = app.world_mut().resource_mut::<PerdixRings>();
    let external = rings.add_external_gpu_producer("external", 1);
    assert!(
        matches!(&external, Err(Error::InvalidConfig(text)) if *text == why),
        "{:?}",
        external.map(|_| ())
    );
}

#[test]
fn a_fallback_run_because_there_is_no_gpu_is_not_a_fall_back() {
    let mut app = app(PerdixPlugin::default());
    app.add_perdix_raw(1).add_gpu_producer(ticks());
    let chosen = app.world().resource::<PerdixRings>().producer_backend();
    if chosen.is_gpu() {
        println!("skipped: a CUDA device is present (the kernel runs, not the fallback)");
        return;
    }
    for _ in 0..5 {
        app.update();
    }
    assert!(ticks_seen(&app) > 0, "the fallback runs");
    // No GPU to fail on: the plugin's choice, not a failure, so no event at all.
    assert_eq!(all_events(&app), []);
    let rings = app.world().resource::<PerdixRings>();
    assert_eq!((rings.errors(), rings.warnings()), (0, 0));
    assert_eq!(rings.producers().len(), 1);
    assert_eq!(rings.producers()[0].backend, chosen);
    assert_eq!(rings.producer_backend(), chosen);
    assert_eq!(rings.snapshot().backend, "cpu");
}

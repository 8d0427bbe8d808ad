//! `examples/simulation/particles.cu` (the simulation example's producer) compiles through NVRTC
//! for sm_90 with no GPU; its event structs have the sizes of their `#[repr(C)]` twins in
//! `step.rs`.
//! Skips (with a printed reason) when libnvrtc is absent; see `tests/nvrtc.rs` for the CI setup.
#![cfg(all(feature = "cuda", feature = "bevy"))]

use perdix_transport::cuda::compile_ptx;
use perdix_transport::Error;

#[path = "support/skip.rs"]
mod skip;
use skip::skip;

/// The kernel, its arguments and its events: the example's one definition.
#[path = "../examples/simulation/step.rs"]
#[allow(dead_code)] // the example uses the constants this test does not
mod step;

use step::PARTICLES_CU;

#[test]
fn particles_kernel_compiles_for_sm_90() {
    let ptx = match compile_ptx(PARTICLES_CU, "particles.cu", "sm_90") {
        Err(Error::NoDevice(why)) => return skip(why),
        Err(err) => panic!("particles.cu: {err}"),
        Ok(ptx) => ptx,
    };
    assert!(ptx.contains(".entry particles_step"), "entry point");
    // The launcher passes the producer pointer, then `StepArgs`: the particles' buffer as its
    // 8-byte address and four 4-byte scalars.
    let params: Vec<&str> = ptx
        .split(".entry particles_step")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .map(|list| list.lines().filter(|l| l.contains(".param")).collect())
        .unwrap_or_default();
    assert_eq!(params.len(), 6, "params: {params:?}");
    assert!(
        params[0].contains(".u64"),
        "producer pointer: {}",
        params[0]
    );
    assert!(
        params[1].contains(".u64"),
        "particles pointer: {}",
        params[1]
    );
    for param in &params[2..] {
        assert!(
            param.contains(".f32") || param.contains(".u32"),
            "4-byte scalar: {param}"
        );
    }
}

mod gpu_producer {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use bevy_app::prelude::*;
    use bevy_ecs::prelude::*;
    use perdix_transport::bevy::{PerdixAppExt, PerdixPlugin, PerdixRings};
    use perdix_transport::cuda::cudarc::driver::{CudaContext, CudaSlice};
    use perdix_transport::cuda::device_address;

    use super::skip::skip;
    use super::step::{self, BlockStats, BumperHit, StepArgs, WallHit, BLOCK};

    const PARTICLES: u32 = 4096;

    #[derive(Resource, Default)]
    struct Frame(u32);

    /// The particles' device buffer (four floats each), which the app allocates; the test
    /// keeps a clone until the app (and the producer, which waits for its kernels) is gone.
    #[derive(Resource, Clone)]
    struct Particles(Arc<CudaSlice<f32>>);

    #[derive(Resource, Default)]
    struct Seen {
        stats: Vec<BlockStats>,
        hits: u64,
    }

    fn collect(
        mut stats: MessageReader<BlockStats>,
        mut walls: MessageReader<WallHit>,
        mut bumpers: MessageReader<BumperHit>,
        mut seen: ResMut<Seen>,
    ) {
        seen.stats.extend(stats.read().copied());
        seen.hits += (walls.read().count() + bumpers.read().count()) as u64;
    }

    fn tick(mut frame: ResMut<Frame>) {
        frame.0 += 1;
    }

    #[test]
    #[ignore = "needs a CUDA device"]
    fn particles_kernel_runs_as_a_gpu_producer() {
        match perdix_transport::cuda::device_count() {
            Ok(n) if n > 0 => {}
            other => return skip(format_args!("no CUDA device ({other:?})")),
        }
        let stream = CudaContext::new(0).expect("device 0").default_stream();
        let particles = Particles(Arc::new(
            stream
                .alloc_zeros::<f32>(4 * PARTICLES as usize)
                .expect("the particles' buffer"),
        ));
        stream.synchronize().expect("the buffer zeroed");
        let args = |world: &World| StepArgs {
            particles: device_address(&*world.resource::<Particles>().0),
            dt: 1.0 / 240.0,
            frame: world.resource::<Frame>().0,
            count: PARTICLES,
            half: 1.0,
        };
        // SAFETY: `step::producer`'s contract: `particles` is the address of `PARTICLES`
        // (`count`) particles on device 0 (the plugin's), zeroed and synchronized above, and
        // the test holds a clone of the buffer until after the app is dropped.
        let spec = unsafe { step::producer(PARTICLES, args) };
        let mut app = App::new();
        app.add_plugins(PerdixPlugin::default().capacity(65_536));
        step::add_messages(&mut app)
            .add_gpu_producer(spec)
            .insert_resource(particles.clone())
            .init_resource::<Frame>()
            .init_resource::<Seen>()
            .add_systems(Update, collect)
            .add_systems(Last, tick);
        let blocks = PARTICLES.div_ceil(BLOCK) as usize;
        let deadline = Instant::now() + Duration::from_secs(60);
        while app.world().resource::<Seen>().stats.len() < 20 * blocks {
            assert!(
                Instant::now() < deadline,
                "GPU producer delivered too little"
            );
            app.update();
        }
        let backend = app
            .world_mut()
            .resource_mut::<PerdixRings>()
            .producer_backend();
        assert!(backend.is_gpu(), "backend {backend}");
        let seen = app.world().resource::<Seen>();
        // Frames that arrived whole: every block reported, all particles counted, energy kept.
        let mut frames = std::collections::BTreeMap::<u32, (usize, u32, f64)>::new();
        for s in &seen.stats {
            let e = frames.entry(s.frame).or_default();
            e.0 += 1;
            e.1 += s.particles;
            e.2 += f64::from(s.kinetic);
        }
        let whole: Vec<_> = frames.values().filter(|f| f.0 == blocks).collect();
        assert!(whole.len() >= 10, "whole frames: {}", whole.len());
        for f in &whole {
            assert_eq!(f.1, PARTICLES);
            let drift = (f.2 - whole[0].2).abs() / whole[0].2;
            assert!(drift < 1e-3, "kinetic energy drifted by {drift}");
        }
        assert!(seen.hits > 0, "no wall or bumper hits");
        let counters = app.world().resource::<PerdixRings>().counters();
        assert_eq!(
            (counters.total().unrouted, counters.total().malformed),
            (0, 0)
        );
        drop(app);
        drop(particles);
    }
}

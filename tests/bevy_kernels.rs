//! `kernels/particles.cu` (the simulation example's producer) compiles through NVRTC for sm_90
//! with no GPU, and its event structs have the sizes the example's `#[repr(C)]` twins have.
//! Skips (with a printed reason) when libnvrtc is absent; see `tests/nvrtc.rs` for the CI setup.
#![cfg(all(feature = "cuda", feature = "bevy"))]

use perdix_transport::cuda::compile_ptx;
use perdix_transport::Error;

const PARTICLES_CU: &str = include_str!("../kernels/particles.cu");

#[test]
fn particles_kernel_compiles_for_sm_90() {
    let ptx = match compile_ptx(PARTICLES_CU, "particles.cu", "sm_90") {
        Err(Error::NoDevice(why)) => {
            println!("skipped: {why}");
            return;
        }
        Err(err) => panic!("particles.cu: {err}"),
        Ok(ptx) => ptx,
    };
    assert!(ptx.contains(".entry particles_step"), "entry point");
    // The launcher passes the producer pointer, then `StepArgs` as four 4-byte scalars.
    let params: Vec<&str> = ptx
        .split(".entry particles_step")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .map(|list| list.lines().filter(|l| l.contains(".param")).collect())
        .unwrap_or_default();
    assert_eq!(params.len(), 5, "params: {params:?}");
    assert!(
        params[0].contains(".u64"),
        "producer pointer: {}",
        params[0]
    );
    for param in &params[1..] {
        assert!(
            param.contains(".f32") || param.contains(".u32"),
            "4-byte scalar: {param}"
        );
    }
}

mod gpu_producer {
    use std::time::{Duration, Instant};

    use bevy_app::prelude::*;
    use bevy_ecs::prelude::*;
    use bytemuck::{Pod, Zeroable};
    use perdix_transport::bevy::{GpuProducerSpec, PerdixAppExt, PerdixPlugin, PerdixRings};

    const PARTICLES: u32 = 4096;
    const BLOCK: u32 = 256;

    #[derive(Clone, Copy, Pod, Zeroable)]
    #[repr(C)]
    struct StepArgs {
        dt: f32,
        frame: u32,
        count: u32,
        half: f32,
    }

    /// The kernel's `BlockStats` (kind 3).
    #[derive(Message, Clone, Copy, Debug, Pod, Zeroable)]
    #[repr(C)]
    struct BlockStats {
        block: u32,
        frame: u32,
        particles: u32,
        kinetic: f32,
        max_speed: f32,
        hits: u32,
    }

    /// The kernel's `WallHit` / `BumperHit` (kinds 1 and 2; same layout).
    #[derive(Message, Clone, Copy, Debug, Pod, Zeroable)]
    #[repr(C)]
    struct Hit {
        particle: u32,
        what: u32,
        speed: f32,
        frame: u32,
    }

    #[derive(Resource, Default)]
    struct Frame(u32);

    #[derive(Resource, Default)]
    struct Seen {
        stats: Vec<BlockStats>,
        hits: u64,
    }

    fn collect(
        mut stats: MessageReader<BlockStats>,
        mut hits: MessageReader<Hit>,
        mut seen: ResMut<Seen>,
    ) {
        seen.stats.extend(stats.read().copied());
        seen.hits += hits.read().count() as u64;
    }

    fn tick(mut frame: ResMut<Frame>) {
        frame.0 += 1;
    }

    #[test]
    #[ignore = "needs a CUDA device"]
    fn particles_kernel_runs_as_a_gpu_producer() {
        // SAFETY: `particles_step(const perdix_producer* p, float dt, unsigned frame,
        // unsigned count, float half)` takes the producer pointer first and reaches the ring
        // only through `perdix_emit`; `StepArgs` is `#[repr(C)] { f32, u32, u32, f32 }`, its
        // parameters after `p` in order; it has no other pointer to write through.
        let spec =
            unsafe { GpuProducerSpec::new("particles", super::PARTICLES_CU, "particles_step") }
                .grid(PARTICLES.div_ceil(BLOCK))
                .block(BLOCK)
                .args(|world: &World| StepArgs {
                    dt: 1.0 / 240.0,
                    frame: world.resource::<Frame>().0,
                    count: PARTICLES,
                    half: 1.0,
                });
        let mut app = App::new();
        app.add_plugins(PerdixPlugin::default().capacity(65_536))
            .add_perdix_message::<Hit>(1)
            .add_perdix_message::<Hit>(2)
            .add_perdix_message::<BlockStats>(3)
            .add_gpu_producer(spec)
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
        let stats = app.world().resource::<PerdixRings>().stats();
        assert_eq!((stats.unrouted, stats.malformed), (0, 0));
    }
}

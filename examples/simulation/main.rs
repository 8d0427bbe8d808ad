//! Particles in a box: a GPU kernel (`particles.cu`, beside this file) moves the particles each
//! frame and emits typed events (wall hits, bumper hits, per-block statistics) through perdix;
//! ECS systems consume them to update components and resources and print a summary. Without a
//! CUDA device the same step, written in Rust (`cpu.rs`), runs as the producer's CPU fallback.
//! The particles live in a device buffer the app allocates (any count) and passes to the kernel.
//!
//! Two launch styles, the same events:
//! - `--launch plugin` (the default): the plugin launches the kernel each frame from a
//!   `GpuProducerSpec` whose `args` closure reads the buffer's address from a resource;
//! - `--launch app`: the app launches it itself each frame on its own cudarc stream
//!   (`launch_builder(..).arg(&handle)...`, then `track`) into rings from
//!   `PerdixRings::add_external_gpu_producer`, which the plugin drains.
//!
//! Without a GPU both run the CPU fallback.
//!
//! ```text
//! cargo run --release --example simulation
//! cargo run --release --example simulation -- --launch app
//! cargo run --release --example simulation -- --particles 1000000 --seconds 10
//! ```
//!
//! - `step.rs`: the kernel's arguments and events, the Rust twins of `particles.cu`'s structs;
//! - `gpu.rs` (feature `cuda`): the device buffer and the app-launched style;
//! - `cpu.rs`: the CPU fallback;
//! - `systems.rs`: the walls, bumpers and the systems that read the events;
//! - `run.rs`: the command line and the run's outcome.

use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bevy_app::prelude::*;
use bevy_app::{ScheduleRunnerPlugin, TaskPoolPlugin};
use bevy_diagnostic::DiagnosticsPlugin;
use bevy_ecs::prelude::*;
use clap::Parser;
use perdix_transport::bevy::{GpuProducerSpec, PerdixAppExt, PerdixPlugin};
use perdix_transport::Error;

mod cpu;
#[cfg(feature = "cuda")]
mod gpu;
mod run;
mod step;
mod systems;

use cpu::CpuParticles;
use run::{Args, Launch, Run};
use step::StepArgs;
use systems::{SimClock, SimStats};

fn main() -> ExitCode {
    let args = Args::parse();
    perdix_transport::testing::init_logging("info");
    if args.particles == 0 {
        eprintln!("--particles must be at least 1");
        return ExitCode::from(2);
    }
    let wait = if args.fps > 0.0 {
        Duration::from_secs_f64(1.0 / args.fps)
    } else {
        Duration::ZERO
    };
    let outcome = Arc::new(Mutex::new(None));
    let now = Instant::now();
    let mut app = App::new();
    app.add_plugins((
        TaskPoolPlugin::default(),
        ScheduleRunnerPlugin::run_loop(wait),
        DiagnosticsPlugin,
        PerdixPlugin::default().capacity(65_536),
    ));
    step::add_messages(&mut app);
    // Held until `main` returns: `run` drops the app (and the plugin's producer, which waits
    // for its kernels) before it returns.
    let _particles = match add_producer(&mut app, &args) {
        Ok(particles) => particles,
        Err(err) => {
            eprintln!("simulation: {err}");
            return ExitCode::FAILURE;
        }
    };
    app.init_resource::<SimClock>()
        .init_resource::<SimStats>()
        .insert_resource(Run {
            args,
            start: now,
            last_report: now,
            outcome: Arc::clone(&outcome),
        })
        .add_systems(Startup, systems::spawn_arena)
        .add_systems(
            Update,
            (
                systems::wall_hits,
                systems::bumper_hits,
                systems::block_stats,
                systems::report,
            )
                .chain(),
        )
        .add_systems(Last, systems::tick)
        .run();
    let lines = outcome
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    match lines {
        Some(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        None => ExitCode::FAILURE,
    }
}

/// The plugin-launched producer, `args` from the clock, the run and the particles' address
/// (`address`: 0 where there is no buffer), with the CPU fallback.
///
/// # Safety
///
/// `address` returns the device address of the run's `particles` particles on the plugin's
/// device, alive until the app has ended, or 0 where the plugin has no GPU (`step::producer`'s
/// contract).
unsafe fn spec(particles: u32, address: fn(&World) -> u64) -> GpuProducerSpec<StepArgs> {
    let args = move |world: &World| {
        let frame = world.resource::<SimClock>().frame;
        world.resource::<Run>().step_args(frame, address(world))
    };
    // SAFETY: `step::producer`'s contract: each `StepArgs` has `count` = the run's particles
    // (`step_args`) and `particles` = `address`, which this fn's caller vouches for.
    unsafe { step::producer(particles, args) }.cpu_fallback(CpuParticles::default().into_fallback())
}

/// Adds the producer of `args.launch`'s style; what it returns (the plugin-launched style's
/// particles) must outlive the app.
#[cfg(feature = "cuda")]
fn add_producer(app: &mut App, args: &Args) -> Result<Option<gpu::DeviceParticles>, Error> {
    use perdix_transport::bevy::PerdixRings;

    if args.launch == Launch::App {
        let mut rings = app.world_mut().resource_mut::<PerdixRings>();
        let backend = rings.producer_backend();
        if !backend.is_gpu() {
            tracing::warn!(%backend, "--launch app: no GPU rings, the CPU fallback runs");
            // SAFETY: `spec`'s contract: no GPU here, and the address is always 0.
            app.add_gpu_producer(unsafe { spec(args.particles, |_| 0) });
            return Ok(None);
        }
        let launch = gpu::AppLaunch::new(&mut rings, args.particles)?;
        app.insert_resource(launch)
            .add_systems(PreUpdate, gpu::launch);
        return Ok(None);
    }
    let particles = gpu::DeviceParticles::on_device_0(args.particles)?;
    if let Some(particles) = &particles {
        app.insert_resource(particles.clone());
    }
    // SAFETY: `spec`'s contract: `DeviceParticles` holds `args.particles` particles on device
    // 0 (the plugin's device, its primary context), zeroed and synchronized at allocation; the
    // clone returned here is held by `main` until the app has ended; without a device there is
    // no resource and the address is 0 (the plugin runs the CPU fallback).
    app.add_gpu_producer(unsafe { spec(args.particles, gpu::DeviceParticles::address) });
    Ok(particles)
}

/// Without CUDA there is only the plugin's producer (its CPU fallback).
#[cfg(not(feature = "cuda"))]
fn add_producer(app: &mut App, args: &Args) -> Result<Option<()>, Error> {
    if args.launch == Launch::App {
        tracing::warn!("--launch app needs the `cuda` feature: the CPU fallback runs");
    }
    // SAFETY: `spec`'s contract: no GPU without `cuda`, and the address is always 0.
    app.add_gpu_producer(unsafe { spec(args.particles, |_| 0) });
    Ok(None)
}

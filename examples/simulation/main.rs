//! Particles in a box: a GPU kernel (`particles.cu`, beside this file) moves the particles each
//! frame and emits typed events (wall hits, bumper hits, per-block statistics) through perdix;
//! ECS systems consume them to update components and resources and print a summary. Without a
//! CUDA device the same step, written in Rust (`cpu.rs`), runs as the producer's CPU fallback.
//!
//! ```text
//! cargo run --release --example simulation
//! cargo run --release --example simulation -- --particles 65536 --seconds 10
//! ```
//!
//! - `step.rs`: the kernel's arguments and events, the Rust twins of `particles.cu`'s structs;
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
use perdix_transport::bevy::{PerdixAppExt, PerdixPlugin};

mod cpu;
mod run;
mod step;
mod systems;

use cpu::CpuParticles;
use run::{Args, Run};
use step::{StepArgs, MAX_PARTICLES};
use systems::{SimClock, SimStats};

fn main() -> ExitCode {
    let args = Args::parse();
    perdix_transport::testing::init_logging("info");
    if args.particles == 0 || args.particles > MAX_PARTICLES {
        eprintln!("--particles must be 1..={MAX_PARTICLES}");
        return ExitCode::from(2);
    }
    let wait = if args.fps > 0.0 {
        Duration::from_secs_f64(1.0 / args.fps)
    } else {
        Duration::ZERO
    };
    let spec = step::producer(args.particles, |world: &World| {
        let (frame, args) = (
            world.resource::<SimClock>().frame,
            &world.resource::<Run>().args,
        );
        StepArgs {
            dt: args.dt,
            frame,
            count: args.particles,
            half: 1.0,
        }
    })
    .cpu_fallback(CpuParticles::default().into_fallback());
    let outcome = Arc::new(Mutex::new(None));
    let now = Instant::now();
    let mut app = App::new();
    app.add_plugins((
        TaskPoolPlugin::default(),
        ScheduleRunnerPlugin::run_loop(wait),
        DiagnosticsPlugin,
        PerdixPlugin::default().capacity(65_536),
    ));
    step::add_messages(&mut app)
        .add_gpu_producer(spec)
        .init_resource::<SimClock>()
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

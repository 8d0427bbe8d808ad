//! The run's settings (the command line) and its outcome, as a resource.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bevy_ecs::prelude::*;
use clap::{Parser, ValueEnum};

use crate::step::StepArgs;

/// Who launches the kernel each frame.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// The plugin, from a `GpuProducerSpec` (with the CPU fallback without a GPU).
    Plugin,
    /// The app, on its own stream, into rings from `add_external_gpu_producer` (the plugin's
    /// CPU fallback without a GPU).
    App,
}

/// Particles in a box with bumpers, events through perdix into Bevy ECS.
#[derive(Parser, Debug, Clone)]
#[command(version)]
pub struct Args {
    /// Seconds to run.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Particles (at least 1; as many as device memory holds).
    #[arg(long, default_value_t = 16_384)]
    pub particles: u32,
    /// Who launches the kernel: the plugin, or the app on its own stream.
    #[arg(long, value_enum, default_value_t = Launch::Plugin)]
    pub launch: Launch,
    /// Simulated seconds per frame.
    #[arg(long, default_value_t = 1.0 / 240.0)]
    pub dt: f32,
    /// Frames per second to aim for (0: as fast as possible).
    #[arg(long, default_value_t = 240.0)]
    pub fps: f64,
}

/// The run: its arguments, when it started, and the summary `main` prints after the app exits.
#[derive(Resource)]
pub struct Run {
    pub args: Args,
    pub start: Instant,
    pub last_report: Instant,
    pub outcome: Arc<Mutex<Option<Vec<String>>>>,
}

impl Run {
    /// The kernel's arguments for the frame `frame`, with the particles at `particles`.
    pub fn step_args(&self, frame: u32, particles: u64) -> StepArgs {
        StepArgs {
            particles,
            dt: self.args.dt,
            frame,
            count: self.args.particles,
            half: 1.0,
        }
    }
}

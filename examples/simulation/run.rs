//! The run's settings (the command line) and its outcome, as a resource.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bevy_ecs::prelude::*;
use clap::Parser;

/// Particles in a box with bumpers, events through perdix into Bevy ECS.
#[derive(Parser, Debug, Clone)]
#[command(version)]
pub struct Args {
    /// Seconds to run.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Particles (at most 65,536).
    #[arg(long, default_value_t = 16_384)]
    pub particles: u32,
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

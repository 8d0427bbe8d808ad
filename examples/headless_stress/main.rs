//! Headless stress run: stress producers (GPU kernels when there is a CUDA device, else CPU
//! threads) feed a headless Bevy app through `PerdixPlugin`; an ECS system verifies every
//! message's sequence and checksum.
//!
//! ```text
//! cargo run --release --example headless_stress                # 10 s, defaults
//! cargo run --release --example headless_stress -- --seconds 3 --size 224 --drain thread
//! ```
//!
//! Prints a progress line each second and a verified summary; exits non-zero on any loss,
//! duplicate, reorder or corrupt message.

use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bevy_app::prelude::*;
use bevy_app::{ScheduleRunnerPlugin, TaskPoolOptions, TaskPoolPlugin};
use bevy_diagnostic::DiagnosticsPlugin;
use bevy_ecs::prelude::*;
use clap::Parser;
use perdix_transport::bevy::{DrainMode, PerdixAppExt, PerdixMessage, PerdixPlugin, PerdixRings};
use perdix_transport::telemetry::LatencyHistogram;
use perdix_transport::testing::stress;
use perdix_transport::testing::StressProducers;

mod args;
mod raw;
mod run;
mod summary;
mod verify;

use args::{Args, Deliver};
use run::{Outcome, Phase, Run, DRAIN_TIMEOUT};
use verify::{add_verifiers, deliver_envelopes, with_words, Shard, Verify};

fn main() -> ExitCode {
    let mut args = Args::parse();
    args.drain = args.drain_flag.unwrap_or(if gpu_producers(&args) {
        DrainMode::Thread
    } else {
        DrainMode::System
    });
    perdix_transport::testing::init_logging("info");
    // The typed deliveries here carry one-slot messages (`Envelope<[u64; size / 8]>`).
    if !stress::valid_size(args.size) || args.size > perdix_transport::layout::SLOT_PAYLOAD {
        eprintln!(
            "--size must be a multiple of 8 from 16 to 224, not {}",
            args.size
        );
        return ExitCode::from(2);
    }
    if args.raw {
        return raw::raw_baseline(&args);
    }
    let producers = args.producers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get().saturating_sub(1))
            .clamp(1, 4)
    });
    let verifiers = args.verifiers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).clamp(1, 8))
    });
    // A power of two, so a verifier picks its producers with a mask.
    let verifiers = verifiers.clamp(1, 64).next_power_of_two();
    let shards: Vec<Arc<Mutex<Shard>>> = (0..verifiers)
        .map(|_| Arc::new(Mutex::new(Shard::default())))
        .collect();
    let outcome = Arc::new(Mutex::new(None));
    let now = Instant::now();
    let run = Run {
        args: args.clone(),
        producers,
        stress: None,
        backend: String::new(),
        phase: Phase::Running,
        start: now,
        shards: shards.clone(),
        frames: LatencyHistogram::new(),
        frames_window: LatencyHistogram::new(),
        last_frame: None,
        split: [Duration::ZERO; 3],
        mark: None,
        last_progress: (now, 0, 0),
        finished_at: None,
        outcome: Arc::clone(&outcome),
    };
    let mut app = App::new();
    app.add_plugins((
        TaskPoolPlugin {
            task_pool_options: if args.bevy_threads == 0 {
                TaskPoolOptions::default()
            } else {
                TaskPoolOptions::with_num_threads(args.bevy_threads)
            },
        },
        ScheduleRunnerPlugin::run_loop(Duration::ZERO),
        DiagnosticsPlugin,
        plugin(&args),
    ))
    .insert_resource(run)
    .add_systems(Startup, start)
    .add_systems(First, run::frame_clock)
    .add_systems(Update, run::mark_drained.before(Verify))
    .add_systems(
        Update,
        (run::mark_verified, run::progress, control)
            .chain()
            .after(Verify),
    );
    match args.deliver {
        Deliver::Raw => {
            app.add_perdix_raw(StressProducers::KIND);
            add_verifiers::<PerdixMessage>(&mut app, &shards);
        }
        Deliver::Envelope => with_words!(args.size / 8, deliver_envelopes, &mut app, &shards),
    }
    let exit = app.run();
    let outcome = outcome
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    match outcome {
        Some(outcome) => {
            for line in &outcome.lines {
                println!("{line}");
            }
            if outcome.pass && !exit.is_error() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        None => {
            eprintln!("the run ended without a summary");
            ExitCode::FAILURE
        }
    }
}

/// Whether the stress producers will run on a GPU (a driver with at least one device).
fn gpu_producers(args: &Args) -> bool {
    #[cfg(feature = "cuda")]
    {
        !args.cpu && perdix_transport::cuda::device_count().is_ok_and(|n| n > 0)
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = args;
        false
    }
}

fn plugin(args: &Args) -> PerdixPlugin {
    let plugin = PerdixPlugin::default()
        .capacity(args.capacity)
        .policy(args.policy)
        .drain(args.drain)
        .budget(args.budget);
    #[cfg(feature = "cuda")]
    let plugin = plugin.devices(args.devices.clone());
    plugin
}

fn start(mut rings: ResMut<PerdixRings>, mut run: ResMut<Run>, mut exit: MessageWriter<AppExit>) {
    let (count, size) = (run.producers, run.args.size);
    let spawned = if run.args.cpu {
        StressProducers::spawn_cpu(&mut rings, count, size)
    } else {
        StressProducers::spawn(&mut rings, count, size)
    };
    match spawned {
        Ok(stress) => {
            run.backend = stress.backend().to_string();
            println!(
                "perdix headless_stress: backend {}, {} ring(s) of {} slots, {}-byte messages, policy {}, drain {}, delivered as {}, {} verifier(s), budget {}/frame, {:.1} s",
                run.backend,
                rings.rings(),
                run.args.capacity,
                size,
                run.args.policy,
                run.args.drain,
                run.args.deliver.name(),
                run.shards.len(),
                run.args.budget,
                run.args.seconds,
            );
            run.stress = Some(stress);
            let now = Instant::now();
            run.start = now;
            run.last_progress = (now, 0, 0);
        }
        Err(err) => {
            eprintln!("could not start the stress producers: {err}");
            *run.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(Outcome {
                lines: vec![format!("RESULT: FAIL ({err})")],
                pass: false,
            });
            exit.write(AppExit::from_code(1));
        }
    }
}

fn control(mut run: ResMut<Run>, rings: Res<PerdixRings>, mut exit: MessageWriter<AppExit>) {
    let now = Instant::now();
    match run.phase {
        Phase::Running => {
            if (now - run.start).as_secs_f64() >= run.args.seconds {
                if let Some(stress) = &mut run.stress {
                    stress.stop();
                }
                run.phase = Phase::Draining(now);
            }
        }
        Phase::Draining(since) => {
            let timed_out = now - since > DRAIN_TIMEOUT;
            if rings.is_finished() || timed_out {
                run.finished_at = Some(now);
                let outcome = summary::summarize(&mut run, &rings, timed_out);
                let pass = outcome.pass;
                *run.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
                run.phase = Phase::Done;
                exit.write(if pass {
                    AppExit::Success
                } else {
                    AppExit::from_code(1)
                });
            }
        }
        Phase::Done => {}
    }
}

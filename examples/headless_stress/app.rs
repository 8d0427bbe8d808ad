//! One ECS run: the stress producers feed a headless Bevy app through `PerdixPlugin`, saturated
//! (as fast as they can) or paced to a rate; the verifier systems check every message.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bevy_app::prelude::*;
use bevy_app::{ScheduleRunnerPlugin, TaskPoolOptions, TaskPoolPlugin};
use bevy_diagnostic::DiagnosticsPlugin;
use bevy_ecs::prelude::*;
use perdix_transport::bevy::{PerdixAppExt, PerdixMessage, PerdixPlugin, PerdixRings};
use perdix_transport::telemetry::LatencyHistogram;
use perdix_transport::testing::StressProducers;

use crate::args::{Args, Deliver};
use crate::run::{self, Outcome, Phase, Run, DRAIN_TIMEOUT};
use crate::summary;
use crate::verify::{add_verifiers, deliver_batches, deliver_envelopes, with_words, Shard, Verify};

/// Runs the app once: saturated for `--seconds` (`pace: None`) or paced to `pace` messages a
/// second for `--load-seconds`. `None` when it ended without a summary.
pub fn run(args: &Args, producers: usize, verifiers: usize, pace: Option<f64>) -> Option<Outcome> {
    let sample_every = crate::verify::sample_every(pace);
    let shards: Vec<Arc<Mutex<Shard>>> = (0..verifiers)
        .map(|_| Arc::new(Mutex::new(Shard::new(sample_every))))
        .collect();
    let outcome = Arc::new(Mutex::new(None));
    let now = Instant::now();
    let run = Run {
        args: args.clone(),
        producers,
        pace,
        seconds: if pace.is_some() {
            args.load_seconds
        } else {
            args.seconds
        },
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
        plugin(args),
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
    crate::metrics::add(&mut app, args);
    match args.deliver {
        Deliver::Raw => {
            app.add_perdix_raw(StressProducers::KIND);
            add_verifiers::<PerdixMessage>(&mut app, &shards);
        }
        Deliver::Envelope => with_words!(args.size / 8, deliver_envelopes, &mut app, &shards),
        Deliver::Batch => with_words!(args.size / 8, deliver_batches, &mut app, &shards),
    }
    let exit = app.run();
    let outcome = outcome
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    outcome.map(|mut outcome| {
        outcome.pass &= !exit.is_error();
        outcome
    })
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
    let spawned = match (run.args.cpu, run.pace) {
        (false, None) => StressProducers::spawn(&mut rings, count, size),
        (true, None) => StressProducers::spawn_cpu(&mut rings, count, size),
        (false, Some(rate)) => StressProducers::spawn_paced(&mut rings, count, size, rate),
        (true, Some(rate)) => StressProducers::spawn_cpu_paced(&mut rings, count, size, rate),
    };
    match spawned {
        Ok(stress) => {
            run.backend = stress.backend().to_string();
            let load = run.pace.map_or_else(
                || "saturated (producers as fast as they can)".to_owned(),
                |rate| format!("paced to {:.3} M msgs/s", rate / 1e6),
            );
            println!(
                "ECS run, {load}: backend {}, {} ring(s) of {} slots, {}-byte messages, policy {}, drain {}, delivered as {}, {} verifier(s), budget {}/frame, {:.1} s",
                run.backend,
                rings.rings(),
                run.args.capacity,
                size,
                run.args.policy,
                run.args.drain,
                run.args.deliver.name(),
                run.shards.len(),
                run.args.budget,
                run.seconds,
            );
            run.stress = Some(stress);
            let now = Instant::now();
            run.start = now;
            run.last_progress = (now, 0, 0);
        }
        Err(err) => {
            eprintln!("could not start the stress producers: {err}");
            *run.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(Outcome::failed(
                format!("the stress producers did not start: {err}"),
            ));
            exit.write(AppExit::from_code(1));
        }
    }
}

fn control(mut run: ResMut<Run>, rings: Res<PerdixRings>, mut exit: MessageWriter<AppExit>) {
    let now = Instant::now();
    match run.phase {
        Phase::Running => {
            if (now - run.start).as_secs_f64() >= run.seconds {
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

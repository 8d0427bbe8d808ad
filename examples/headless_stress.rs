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
use bevy_diagnostic::{DiagnosticsPlugin, DiagnosticsStore};
use bevy_ecs::prelude::*;
use clap::Parser;
use perdix_transport::bevy::{
    DrainMode, PerdixAppExt, PerdixDiagnostics, PerdixMessage, PerdixPlugin, PerdixRing,
    StressProducers,
};
use perdix_transport::harness::SpscRun;
use perdix_transport::stress::{self, Verifier, VerifyReport};
use perdix_transport::telemetry::LatencyHistogram;
use perdix_transport::{clock, Policy};

/// Headless Bevy stress test of the perdix transport.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
struct Args {
    /// Seconds to produce for (the drain then empties the rings).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Slots per ring (a power of two).
    #[arg(long, default_value_t = 16_384)]
    capacity: usize,
    /// Message size in bytes (a multiple of 8 from 16 to 224).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Backpressure policy: block or drop-newest.
    #[arg(long, default_value_t = Policy::Block)]
    policy: Policy,
    /// Drain mode: system (in the frame) or thread (a consumer thread per ring).
    #[arg(long, default_value_t = DrainMode::System)]
    drain: DrainMode,
    /// CPU producer threads (default: cores - 1, at least 1; ignored on the GPU).
    #[arg(long)]
    producers: Option<usize>,
    /// Most messages delivered into ECS messages per frame.
    #[arg(long, default_value_t = 262_144)]
    budget: usize,
    /// Use CPU producers even when a GPU is present.
    #[arg(long)]
    cpu: bool,
    /// Baseline without Bevy: the same producer, message size, ring and verifier on the bare
    /// ring (one producer thread, the consumer on this thread), for the ECS/ring ratio.
    #[arg(long)]
    raw: bool,
    /// Threads of Bevy's task pools (0: Bevy's default, one per core).
    #[arg(long, default_value_t = 0)]
    bevy_threads: usize,
    /// Also print the `perdix/*` diagnostics (from bevy_diagnostic's `DiagnosticsStore`) each
    /// second.
    #[arg(long)]
    diagnostics: bool,
}

/// How long the drain may take to empty the rings after the producers stop.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// One delivered message in this many gets a latency sample.
const LATENCY_SAMPLE_EVERY: u64 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Draining(Instant),
    Done,
}

/// The run's state, as a resource.
#[derive(Resource)]
struct Run {
    args: Args,
    producers: usize,
    stress: Option<StressProducers>,
    backend: String,
    phase: Phase,
    start: Instant,
    verifier: Verifier,
    foreign: u64,
    latency: LatencyHistogram,
    latency_window: LatencyHistogram,
    frames: LatencyHistogram,
    frames_window: LatencyHistogram,
    last_frame: Option<Instant>,
    last_progress: (Instant, u64, u64),
    finished_at: Option<Instant>,
    outcome: Arc<Mutex<Option<Outcome>>>,
}

/// What `main` prints after the app exits.
#[derive(Debug, Clone)]
struct Outcome {
    lines: Vec<String>,
    pass: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if !stress::valid_size(args.size) {
        eprintln!(
            "--size must be a multiple of 8 from 16 to 224, not {}",
            args.size
        );
        return ExitCode::from(2);
    }
    if args.raw {
        return raw_baseline(&args);
    }
    let producers = args.producers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get().saturating_sub(1))
            .clamp(1, 4)
    });
    let outcome = Arc::new(Mutex::new(None));
    let now = Instant::now();
    let run = Run {
        args: args.clone(),
        producers,
        stress: None,
        backend: String::new(),
        phase: Phase::Running,
        start: now,
        verifier: Verifier::new(true),
        foreign: 0,
        latency: LatencyHistogram::new(),
        latency_window: LatencyHistogram::new(),
        frames: LatencyHistogram::new(),
        frames_window: LatencyHistogram::new(),
        last_frame: None,
        last_progress: (now, 0, 0),
        finished_at: None,
        outcome: Arc::clone(&outcome),
    };
    let exit = App::new()
        .add_plugins((
            TaskPoolPlugin {
                task_pool_options: if args.bevy_threads == 0 {
                    TaskPoolOptions::default()
                } else {
                    TaskPoolOptions::with_num_threads(args.bevy_threads)
                },
            },
            ScheduleRunnerPlugin::run_loop(Duration::ZERO),
            DiagnosticsPlugin,
            PerdixPlugin::default()
                .capacity(args.capacity)
                .policy(args.policy)
                .drain(args.drain)
                .budget(args.budget),
        ))
        .add_perdix_raw(StressProducers::KIND)
        .insert_resource(run)
        .add_systems(Startup, start)
        .add_systems(First, frame_clock)
        .add_systems(Update, (verify, progress, control).chain())
        .run();
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

fn start(mut ring: ResMut<PerdixRing>, mut run: ResMut<Run>, mut exit: MessageWriter<AppExit>) {
    let (count, size) = (run.producers, run.args.size);
    let spawned = if run.args.cpu {
        StressProducers::spawn_cpu(&mut ring, count, size)
    } else {
        StressProducers::spawn(&mut ring, count, size)
    };
    match spawned {
        Ok(stress) => {
            run.backend = stress.backend().to_string();
            println!(
                "perdix headless_stress: backend {}, {} ring(s) of {} slots, {}-byte messages, policy {}, drain {}, budget {}/frame, {:.1} s",
                run.backend,
                ring.rings(),
                run.args.capacity,
                size,
                run.args.policy,
                run.args.drain,
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

fn frame_clock(mut run: ResMut<Run>) {
    let now = Instant::now();
    if let Some(last) = run.last_frame.replace(now) {
        let ns = u64::try_from((now - last).as_nanos()).unwrap_or(u64::MAX);
        run.frames.record(ns);
        run.frames_window.record(ns);
    }
}

fn verify(mut messages: MessageReader<PerdixMessage>, mut run: ResMut<Run>) {
    let run = &mut *run;
    let mut tick = run.verifier.report().messages;
    for msg in messages.read() {
        if msg.kind() != StressProducers::KIND {
            run.foreign += 1;
            continue;
        }
        run.verifier.check(msg.producer(), msg.payload());
        tick += 1;
        if tick.is_multiple_of(LATENCY_SAMPLE_EVERY) && msg.stamp_ns() != 0 {
            let ns = clock::now_ns().saturating_sub(msg.stamp_ns());
            run.latency.record(ns);
            run.latency_window.record(ns);
        }
    }
}

fn progress(mut run: ResMut<Run>, ring: Res<PerdixRing>, store: Res<DiagnosticsStore>) {
    let now = Instant::now();
    let (then, messages_then, bytes_then) = run.last_progress;
    let dt = (now - then).as_secs_f64();
    if dt < 1.0 || run.phase == Phase::Done {
        return;
    }
    let report = run.verifier.report();
    let rate = (report.messages - messages_then) as f64 / dt;
    let gbps = (report.bytes - bytes_then) as f64 / dt / 1e9;
    let totals = ring.totals();
    println!(
        "[{:5.1} s] {:8.3} M msgs/s {:6.3} GB/s | latency p50 {:8.1} us p99 {:8.1} us | frame p50 {:6.3} ms p99 {:6.3} ms | occupancy {:5.1}% deferred {} drops {} stalls {}",
        (now - run.start).as_secs_f64(),
        rate / 1e6,
        gbps,
        run.latency_window.quantile_ns(0.50) as f64 / 1e3,
        run.latency_window.quantile_ns(0.99) as f64 / 1e3,
        run.frames_window.quantile_ns(0.50) as f64 / 1e6,
        run.frames_window.quantile_ns(0.99) as f64 / 1e6,
        if totals.capacity == 0 { 0.0 } else { totals.occupancy as f64 * 100.0 / totals.capacity as f64 },
        ring.stats().deferred,
        totals.drops,
        totals.stalls,
    );
    if run.args.diagnostics {
        let values: Vec<String> = PerdixDiagnostics::ALL
            .iter()
            .map(|(path, suffix)| {
                let value = store.get(path).and_then(|d| d.smoothed()).unwrap_or(0.0);
                format!("{path} {value:.1}{suffix}")
            })
            .collect();
        println!("          {}", values.join(" | "));
    }
    run.latency_window.clear();
    run.frames_window.clear();
    run.last_progress = (now, report.messages, report.bytes);
}

fn control(mut run: ResMut<Run>, ring: Res<PerdixRing>, mut exit: MessageWriter<AppExit>) {
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
            if ring.is_finished() || timed_out {
                run.finished_at = Some(now);
                let outcome = summarize(&mut run, &ring, timed_out);
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

fn summarize(run: &mut Run, ring: &PerdixRing, timed_out: bool) -> Outcome {
    // Per-producer counts where the backend has them (CPU threads); GPU producers report an
    // exact total from their device counters.
    let (sent, sent_total, producers) = match (&mut run.stress, timed_out) {
        (Some(stress), false) => {
            let sent = stress.join();
            (sent, stress.total_sent(), stress.producers())
        }
        (Some(stress), true) => (stress.sent(), stress.total_sent(), stress.producers()),
        (None, _) => (Vec::new(), 0, 0),
    };
    let report: VerifyReport = run.verifier.finish(&sent);
    let elapsed = run
        .finished_at
        .map_or(0.0, |end| (end - run.start).as_secs_f64());
    let mut totals = ring.totals();
    if let Some((drops, stalls)) = run
        .stress
        .as_ref()
        .and_then(StressProducers::device_drops_and_stalls)
    {
        // GPU producers count drops and waits on the device, not in the host ring counters.
        totals.drops += drops;
        totals.stalls += stalls;
    }
    let stats = ring.stats();
    let rate = if elapsed > 0.0 {
        report.messages as f64 / elapsed
    } else {
        0.0
    };
    let gbps = if elapsed > 0.0 {
        report.bytes as f64 / elapsed / 1e9
    } else {
        0.0
    };
    let lat = run.latency.summary();
    let frames = run.frames.summary();
    let pass = report.is_clean()
        && !timed_out
        && report.messages > 0
        && report.messages == sent_total
        && run.foreign == 0
        && stats.malformed == 0;
    let lines = vec![
        String::new(),
        format!(
            "perdix headless_stress summary: backend {}, drain {}, {} producer(s), {}-byte messages, ring {} slots, policy {}",
            run.backend, run.args.drain, producers, run.args.size, run.args.capacity, run.args.policy
        ),
        format!("  messages   {} verified of {} sent (every word checked)", report.messages, sent_total),
        format!(
            "  errors     loss {}  duplicates {}  reorder {}  corrupt {}  foreign {}  malformed {}{}",
            report.lost,
            report.duplicates,
            report.reordered,
            report.corrupt,
            run.foreign,
            stats.malformed,
            if timed_out { "  (drain timed out)" } else { "" }
        ),
        format!("  backpressure  drops {} ({} policy)  full-ring stalls {}", totals.drops, run.args.policy, totals.stalls),
        format!(
            "  throughput {:.3} M msgs/s, {:.3} GB/s into ECS messages over {:.2} s",
            rate / 1e6,
            gbps,
            elapsed
        ),
        format!(
            "  latency    stamp to ECS reader: p50 {:.1} us  p99 {:.1} us  p99.9 {:.1} us  ({} samples)",
            lat.p50_ns as f64 / 1e3,
            lat.p99_ns as f64 / 1e3,
            lat.p999_ns as f64 / 1e3,
            lat.count
        ),
        format!(
            "  frames     {} frames, frame time p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms; most messages in a frame {}; frames over budget {}",
            stats.frames,
            frames.p50_ns as f64 / 1e6,
            frames.p99_ns as f64 / 1e6,
            frames.max_ns as f64 / 1e6,
            stats.max_frame,
            stats.deferred_frames
        ),
        format!("RESULT: {}", if pass { "PASS" } else { "FAIL" }),
    ];
    Outcome { lines, pass }
}

/// `--raw`: the bare ring with the same producer, size, capacity, policy and full verification.
fn raw_baseline(args: &Args) -> ExitCode {
    println!(
        "perdix headless_stress --raw: bare ring (no Bevy), 1 producer thread, {} slots, {}-byte messages, policy {}, {:.1} s",
        args.capacity, args.size, args.policy, args.seconds
    );
    let run = SpscRun {
        capacity: args.capacity,
        size: args.size,
        messages: None,
        duration: Duration::from_secs_f64(args.seconds),
        policy: args.policy,
        full_check: true,
        latency: true,
    };
    let mut last = (0.0f64, 0u64);
    let result = run.run(|report| {
        let t = report.elapsed.as_secs_f64();
        let rate = (report.verify.messages - last.1) as f64 / (t - last.0).max(1e-9);
        println!("[{t:5.1} s] {:8.3} M msgs/s", rate / 1e6);
        last = (t, report.verify.messages);
    });
    match result {
        Ok(report) => {
            let lat = report.latency.summary();
            let pass = report.verify.is_clean() && report.verify.messages > 0;
            println!(
                "  messages   {} verified of {} sent; loss {} duplicates {} reorder {} corrupt {}; drops {}",
                report.verify.messages,
                report.sent,
                report.verify.lost,
                report.verify.duplicates,
                report.verify.reordered,
                report.verify.corrupt,
                report.dropped
            );
            println!(
                "  throughput {:.3} M msgs/s, {:.3} GB/s over {:.2} s",
                report.msgs_per_sec() / 1e6,
                report.bytes_per_sec() / 1e9,
                report.elapsed.as_secs_f64()
            );
            println!(
                "  latency    stamp to consumer: p50 {:.1} us  p99 {:.1} us",
                lat.p50_ns as f64 / 1e3,
                lat.p99_ns as f64 / 1e3
            );
            println!("RESULT: {}", if pass { "PASS" } else { "FAIL" });
            if pass {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            eprintln!("raw baseline failed: {err}");
            ExitCode::FAILURE
        }
    }
}

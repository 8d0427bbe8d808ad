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
    DrainMode, Envelope, PerdixAppExt, PerdixDiagnostics, PerdixMessage, PerdixPlugin, PerdixRings,
    RingState,
};
use perdix_transport::telemetry::LatencyHistogram;
use perdix_transport::testing::harness::SpscRun;
use perdix_transport::testing::stress::{self, Verifier, VerifyReport};
use perdix_transport::testing::StressProducers;
use perdix_transport::{clock, Policy};

/// Headless Bevy stress test of the perdix transport.
#[derive(Parser, Debug, Clone)]
#[command(version)]
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
    /// Drain mode: system (in the frame) or thread (a consumer thread per ring). Default: thread
    /// when GPU producers run (faster there, docs/PERFORMANCE.md), system on the CPU fallback
    /// (the drain threads would compete with the CPU producers for cores).
    #[arg(long = "drain", value_name = "DRAIN")]
    drain_flag: Option<DrainMode>,
    /// The drain mode chosen (from `--drain` or the backend).
    #[arg(skip)]
    drain: DrainMode,
    /// ECS message type the stress kind is delivered as: `envelope` (`Envelope<[u64; size/8]>`,
    /// the payload plus its header) or `raw` (`PerdixMessage`, a whole 256-byte slot).
    #[arg(long, value_enum, default_value_t = Deliver::Envelope)]
    deliver: Deliver,
    /// Verifier systems (a power of two), each checking the rings `r` with
    /// `r % verifiers == its index`; Bevy runs them in parallel (default: cores / 2, 1 to 8).
    #[arg(long)]
    verifiers: Option<usize>,
    /// CPU producer threads, or rings per device for the GPU stress grid (default: cores - 1,
    /// from 1 to 4).
    #[arg(long)]
    producers: Option<usize>,
    /// Most messages delivered into ECS messages per frame.
    #[arg(long, default_value_t = 262_144)]
    budget: usize,
    /// Use CPU producers even when a GPU is present.
    #[arg(long)]
    cpu: bool,
    /// CUDA devices for the GPU producers: `all` (default) or ordinals like `0,1` (`0,0` runs
    /// two producer sets on one GPU). Each device gets its own rings.
    #[cfg(feature = "cuda")]
    #[arg(long, default_value_t = perdix_transport::cuda::GpuDevices::All)]
    devices: perdix_transport::cuda::GpuDevices,
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

/// How stress messages reach the verifiers.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Deliver {
    /// `Envelope<[u64; size / 8]>`: the payload as a typed array, with its header.
    Envelope,
    /// `PerdixMessage`: the raw slot.
    Raw,
}

impl Deliver {
    fn name(self) -> &'static str {
        match self {
            Deliver::Envelope => "Envelope<[u64; size/8]>",
            Deliver::Raw => "PerdixMessage",
        }
    }
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
    /// One per verifier system; the summary and the progress line add them up.
    shards: Vec<Arc<Mutex<Shard>>>,
    frames: LatencyHistogram,
    frames_window: LatencyHistogram,
    last_frame: Option<Instant>,
    /// Where frame time went: launch + drain + flush (`First` to `Update`), the verifiers, the
    /// rest; and the mark the next span starts at.
    split: [Duration; 3],
    mark: Option<Instant>,
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
    let mut args = Args::parse();
    args.drain = args.drain_flag.unwrap_or(if gpu_producers(&args) {
        DrainMode::Thread
    } else {
        DrainMode::System
    });
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
    .add_systems(First, frame_clock)
    .add_systems(Update, mark_drained.before(Verify))
    .add_systems(
        Update,
        (mark_verified, progress, control).chain().after(Verify),
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

fn start(mut ring: ResMut<PerdixRings>, mut run: ResMut<Run>, mut exit: MessageWriter<AppExit>) {
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
                "perdix headless_stress: backend {}, {} ring(s) of {} slots, {}-byte messages, policy {}, drain {}, delivered as {}, {} verifier(s), budget {}/frame, {:.1} s",
                run.backend,
                ring.rings(),
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

fn frame_clock(mut run: ResMut<Run>) {
    let now = Instant::now();
    if let Some(last) = run.last_frame.replace(now) {
        let ns = u64::try_from((now - last).as_nanos()).unwrap_or(u64::MAX);
        run.frames.record(ns);
        run.frames_window.record(ns);
    }
    split_mark(&mut run, 2, now);
}

/// Adds the time since the last mark to span `span` of the frame split.
fn split_mark(run: &mut Run, span: usize, now: Instant) {
    if let Some(mark) = run.mark.replace(now) {
        run.split[span] += now - mark;
    }
}

fn mark_drained(mut run: ResMut<Run>) {
    split_mark(&mut run, 0, Instant::now());
}

fn mark_verified(mut run: ResMut<Run>) {
    split_mark(&mut run, 1, Instant::now());
}

/// One verifier system's state.
struct Shard {
    verifier: Verifier,
    /// Messages of another kind than the stress kind.
    foreign: u64,
    /// Messages checked (one in [`LATENCY_SAMPLE_EVERY`] gets a latency sample).
    tick: u64,
    latency: LatencyHistogram,
    latency_window: LatencyHistogram,
}

impl Default for Shard {
    fn default() -> Self {
        Self {
            verifier: Verifier::new(true),
            foreign: 0,
            tick: 0,
            latency: LatencyHistogram::new(),
            latency_window: LatencyHistogram::new(),
        }
    }
}

/// The verifier systems.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
struct Verify;

/// A delivered stress message, whatever its ECS type.
trait StressMessage: Message {
    fn kind(&self) -> u32;
    fn producer(&self) -> u32;
    fn ring(&self) -> u32;
    fn stamp_ns(&self) -> u64;
    fn payload(&self) -> &[u8];
}

impl StressMessage for PerdixMessage {
    fn kind(&self) -> u32 {
        PerdixMessage::kind(self)
    }
    fn producer(&self) -> u32 {
        PerdixMessage::producer(self)
    }
    fn ring(&self) -> u32 {
        PerdixMessage::ring(self)
    }
    fn stamp_ns(&self) -> u64 {
        PerdixMessage::stamp_ns(self)
    }
    fn payload(&self) -> &[u8] {
        PerdixMessage::payload(self)
    }
}

impl<const W: usize> StressMessage for Envelope<[u64; W]>
where
    [u64; W]: bytemuck::Pod,
{
    fn kind(&self) -> u32 {
        self.kind
    }
    fn producer(&self) -> u32 {
        self.producer
    }
    fn ring(&self) -> u32 {
        self.ring
    }
    fn stamp_ns(&self) -> u64 {
        self.stamp_ns
    }
    fn payload(&self) -> &[u8] {
        bytemuck::bytes_of(&self.value)
    }
}

/// Calls `$f::<W>($args)` with `W = $words` (2..=28, a stress size in 64-bit words): typed
/// envelopes need the size at compile time.
macro_rules! with_words {
    ($words:expr, $f:ident, $($arg:expr),*) => {
        match $words {
            2 => $f::<2>($($arg),*), 3 => $f::<3>($($arg),*), 4 => $f::<4>($($arg),*),
            5 => $f::<5>($($arg),*), 6 => $f::<6>($($arg),*), 7 => $f::<7>($($arg),*),
            8 => $f::<8>($($arg),*), 9 => $f::<9>($($arg),*), 10 => $f::<10>($($arg),*),
            11 => $f::<11>($($arg),*), 12 => $f::<12>($($arg),*), 13 => $f::<13>($($arg),*),
            14 => $f::<14>($($arg),*), 15 => $f::<15>($($arg),*), 16 => $f::<16>($($arg),*),
            17 => $f::<17>($($arg),*), 18 => $f::<18>($($arg),*), 19 => $f::<19>($($arg),*),
            20 => $f::<20>($($arg),*), 21 => $f::<21>($($arg),*), 22 => $f::<22>($($arg),*),
            23 => $f::<23>($($arg),*), 24 => $f::<24>($($arg),*), 25 => $f::<25>($($arg),*),
            26 => $f::<26>($($arg),*), 27 => $f::<27>($($arg),*), _ => $f::<28>($($arg),*),
        }
    };
}
use with_words;

/// Routes the stress kind into `Envelope<[u64; W]>` and verifies those.
fn deliver_envelopes<const W: usize>(app: &mut App, shards: &[Arc<Mutex<Shard>>])
where
    [u64; W]: bytemuck::Pod,
{
    app.add_perdix_envelope::<[u64; W]>(StressProducers::KIND);
    add_verifiers::<Envelope<[u64; W]>>(app, shards);
}

/// One verifier system per shard: shard `i` checks the rings `r` with `r % shards == i`.
///
/// The drain writes a frame's messages ring by ring (each ring's run is contiguous, rings in
/// order), so a verifier finds its rings' runs by binary search over this frame's message ids
/// and reads only those: verifiers that each scanned every message cost 11–17 ns a message in
/// memory bandwidth on the H100 host. Nothing is assumed silently: a message missed or seen
/// twice fails the run (the total must equal what the producers sent).
fn add_verifiers<M: StressMessage>(app: &mut App, shards: &[Arc<Mutex<Shard>>]) {
    let mask = shards.len().saturating_sub(1);
    for (index, shard) in shards.iter().enumerate() {
        let shard = Arc::clone(shard);
        let verify = move |messages: Res<Messages<M>>| {
            let mut guard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            let state = &mut *guard;
            // This frame's messages (the drain in `PreUpdate` is their only writer).
            let end = messages.oldest_message_count() + messages.len();
            let mut id = end - messages.iter_current_update_messages().len();
            while let Some((first, _)) = messages.get_message(id) {
                let ring = first.ring();
                let run_end = run_end(&messages, id, end, ring);
                if ring as usize & mask == index {
                    for at in id..run_end {
                        if let Some((msg, _)) = messages.get_message(at) {
                            check(state, msg);
                        }
                    }
                }
                id = run_end;
            }
        };
        app.add_systems(Update, verify.in_set(Verify));
    }
}

/// The end of the run of ring `ring` that starts at message id `from` (binary search: runs are
/// contiguous and in ring order).
fn run_end<M: StressMessage>(messages: &Messages<M>, from: usize, end: usize, ring: u32) -> usize {
    let (mut lo, mut hi) = (from + 1, end);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match messages.get_message(mid) {
            Some((msg, _)) if msg.ring() <= ring => lo = mid + 1,
            _ => hi = mid,
        }
    }
    lo
}

/// Checks one message in a shard.
#[inline]
fn check<M: StressMessage>(state: &mut Shard, msg: &M) {
    if msg.kind() != StressProducers::KIND {
        state.foreign += 1;
        return;
    }
    // GPU thread ids repeat on every device: track each (ring, thread) stream.
    let stream = stress::stream(msg.ring(), msg.producer());
    state
        .verifier
        .check_stream(stream, msg.producer(), msg.payload());
    state.tick += 1;
    if state.tick.is_multiple_of(LATENCY_SAMPLE_EVERY) && msg.stamp_ns() != 0 {
        let ns = clock::now_ns().saturating_sub(msg.stamp_ns());
        state.latency.record(ns);
        state.latency_window.record(ns);
    }
}

/// Messages and bytes verified so far, over every shard.
fn verified(run: &Run) -> (u64, u64) {
    run.shards.iter().fold((0, 0), |(m, b), shard| {
        let report = shard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .verifier
            .report();
        (m + report.messages, b + report.bytes)
    })
}

/// The shards' latency windows merged (and cleared).
fn take_latency_window(run: &Run) -> LatencyHistogram {
    let mut merged = LatencyHistogram::new();
    for shard in &run.shards {
        let mut state = shard.lock().unwrap_or_else(PoisonError::into_inner);
        merged.merge(&state.latency_window);
        state.latency_window.clear();
    }
    merged
}

fn progress(mut run: ResMut<Run>, ring: Res<PerdixRings>, store: Res<DiagnosticsStore>) {
    let now = Instant::now();
    let (then, messages_then, bytes_then) = run.last_progress;
    let dt = (now - then).as_secs_f64();
    if dt < 1.0 || run.phase == Phase::Done {
        return;
    }
    let (messages, bytes) = verified(&run);
    let latency_window = take_latency_window(&run);
    let rate = (messages - messages_then) as f64 / dt;
    let gbps = (bytes - bytes_then) as f64 / dt / 1e9;
    let totals = ring.totals();
    println!(
        "[{:5.1} s] {:8.3} M msgs/s {:6.3} GB/s | latency p50 {:8.1} us p99 {:8.1} us | frame p50 {:6.3} ms p99 {:6.3} ms | occupancy {:5.1}% deferred {} drops {} stalls {}",
        (now - run.start).as_secs_f64(),
        rate / 1e6,
        gbps,
        latency_window.quantile_ns(0.50) as f64 / 1e3,
        latency_window.quantile_ns(0.99) as f64 / 1e3,
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
    run.frames_window.clear();
    run.last_progress = (now, messages, bytes);
}

fn control(mut run: ResMut<Run>, ring: Res<PerdixRings>, mut exit: MessageWriter<AppExit>) {
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

fn summarize(run: &mut Run, ring: &PerdixRings, timed_out: bool) -> Outcome {
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
    // Each shard checked the rings `r % shards == index`: it closes against their producers.
    // Per-producer counts come from CPU producers only, and CPU stress producer `p` writes ring
    // `p` (the example starts them first, in order), so its stream is `stress::stream(p, p)`.
    let mask = run.shards.len() - 1;
    let (mut report, mut foreign, mut latency) =
        (VerifyReport::default(), 0, LatencyHistogram::new());
    for (index, shard) in run.shards.iter().enumerate() {
        let mut state = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let mut mine: Vec<u64> = Vec::new();
        for (p, &n) in sent.iter().enumerate() {
            let p = u32::try_from(p).unwrap_or(u32::MAX);
            if p as usize & mask == index {
                let stream = stress::stream(p, p) as usize;
                if mine.len() <= stream {
                    mine.resize(stream + 1, 0);
                }
                mine[stream] = n;
            }
        }
        report.merge(&state.verifier.finish(&mine));
        foreign += state.foreign;
        latency.merge(&state.latency);
    }
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
    let lat = latency.summary();
    let frames = run.frames.summary();
    let pass = report.is_clean()
        && !timed_out
        && report.messages > 0
        && report.messages == sent_total
        && foreign == 0
        && stats.malformed == 0
        && ring.errors() == 0;
    // A ring fault (corrupt slot, failed head push, kernel fault) fails the run, with its error.
    let failed = (0..ring.rings()).filter_map(|r| match ring.ring_state(r) {
        Some(RingState::Failed(err)) => Some(format!("  ring {r} failed: {err}")),
        _ => None,
    });
    let mut lines = vec![
        String::new(),
        format!(
            "perdix headless_stress summary: backend {}, drain {}, delivered as {}, {} producer(s), {}-byte messages, ring {} slots, policy {}",
            run.backend, run.args.drain, run.args.deliver.name(), producers, run.args.size, run.args.capacity, run.args.policy
        ),
        format!("  messages   {} verified of {} sent (every word checked)", report.messages, sent_total),
        format!(
            "  errors     loss {}  duplicates {}  reorder {}  corrupt {}  foreign {}  malformed {}  ring faults {}{}",
            report.lost,
            report.duplicates,
            report.reordered,
            report.corrupt,
            foreign,
            stats.malformed,
            ring.errors(),
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
            "  frames     {} frames, frame time p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms; most messages in a frame {}; frames that used the whole budget {}",
            stats.frames,
            frames.p50_ns as f64 / 1e6,
            frames.p99_ns as f64 / 1e6,
            frames.max_ns as f64 / 1e6,
            stats.max_frame,
            stats.deferred_frames
        ),
        {
            let per_frame = |d: Duration| d.as_secs_f64() * 1e3 / stats.frames.max(1) as f64;
            let per_msg = |d: Duration| d.as_secs_f64() * 1e9 / report.messages.max(1) as f64;
            let [drain, verify, rest] = run.split;
            format!(
                "  frame split  launch+drain+flush {:.3} ms/frame ({:.1} ns/msg), {} verifiers {:.3} ms ({:.1} ns/msg), rest {:.3} ms ({:.1} ns/msg)",
                per_frame(drain), per_msg(drain), run.shards.len(), per_frame(verify), per_msg(verify), per_frame(rest), per_msg(rest)
            )
        },
        format!("RESULT: {}", if pass { "PASS" } else { "FAIL" }),
    ];
    // Per device, after the backpressure line (GPU producers only).
    let devices = ring.device_totals().into_iter().map(|d| {
        format!(
            "  device gpu{}  {} messages from {} ring(s), {:.3} M msgs/s",
            d.device,
            d.messages,
            d.rings,
            if elapsed > 0.0 {
                d.messages as f64 / elapsed / 1e6
            } else {
                0.0
            }
        )
    });
    let at = lines
        .iter()
        .position(|line| line.starts_with("  backpressure"))
        .map_or(lines.len(), |i| i + 1);
    lines.splice(at..at, devices);
    let at = lines
        .iter()
        .position(|line| line.starts_with("  errors"))
        .map_or(lines.len(), |i| i + 1);
    let failed: Vec<String> = failed.collect();
    lines.splice(at..at, failed);
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

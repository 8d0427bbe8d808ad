//! The run's state as a resource, and the systems that time its frames and print its progress.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bevy_diagnostic::DiagnosticsStore;
use bevy_ecs::prelude::*;
use perdix_transport::bevy::{PerdixDiagnostics, PerdixRings};
use perdix_transport::telemetry::{LatencyHistogram, LatencySummary};
use perdix_transport::testing::StressProducers;

use crate::args::Args;
use crate::verify::{take_latency_window, verified, Shard};

/// How long the drain may take to empty the rings after the producers stop.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    Draining(Instant),
    Done,
}

/// The run's state, as a resource.
#[derive(Resource)]
pub struct Run {
    pub args: Args,
    pub producers: usize,
    /// Messages a second the producers are paced to (`None`: saturated).
    pub pace: Option<f64>,
    /// How long the producers run.
    pub seconds: f64,
    pub stress: Option<StressProducers>,
    pub backend: String,
    pub phase: Phase,
    pub start: Instant,
    /// One per verifier system; the summary and the progress line add them up.
    pub shards: Vec<Arc<Mutex<Shard>>>,
    pub frames: LatencyHistogram,
    pub frames_window: LatencyHistogram,
    pub last_frame: Option<Instant>,
    /// Where frame time went: launch + drain + flush (`First` to `Update`), the verifiers, the
    /// rest; and the mark the next span starts at.
    pub split: [Duration; 3],
    pub mark: Option<Instant>,
    pub last_progress: (Instant, u64, u64),
    pub finished_at: Option<Instant>,
    pub outcome: Arc<Mutex<Option<Outcome>>>,
}

/// What `main` prints after the app exits, and the figures the final report compares.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub lines: Vec<String>,
    pub pass: bool,
    pub figures: Figures,
}

impl Outcome {
    /// A run that could not start.
    pub fn failed(why: String) -> Self {
        Self {
            lines: vec![format!("  FAIL: {why}")],
            pass: false,
            figures: Figures::default(),
        }
    }
}

/// One ECS run's figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct Figures {
    /// Verified messages a second into ECS messages.
    pub rate: f64,
    pub bytes_per_sec: f64,
    /// Stamp to ECS reader.
    pub latency: LatencySummary,
    pub frame_p50_ns: u64,
    pub frames: u64,
    /// Frames that used the whole budget.
    pub budget_frames: u64,
    /// Producer streams (CPU threads, or GPU threads: each may hold a message it is waiting to
    /// publish) and rings.
    pub producers: u64,
    pub rings: usize,
}

pub fn frame_clock(mut run: ResMut<Run>) {
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

pub fn mark_drained(mut run: ResMut<Run>) {
    split_mark(&mut run, 0, Instant::now());
}

pub fn mark_verified(mut run: ResMut<Run>) {
    split_mark(&mut run, 1, Instant::now());
}

pub fn progress(mut run: ResMut<Run>, rings: Res<PerdixRings>, store: Res<DiagnosticsStore>) {
    let now = Instant::now();
    let (then, messages_then, bytes_then) = run.last_progress;
    let dt = (now - then).as_secs_f64();
    if dt < 1.0 || run.phase == Phase::Done {
        return;
    }
    let (messages, bytes) = verified(&run.shards);
    let latency_window = take_latency_window(&run.shards);
    let rate = (messages - messages_then) as f64 / dt;
    let gbps = (bytes - bytes_then) as f64 / dt / 1e9;
    let totals = rings.counters().total();
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
        rings.counters().app.deferred,
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

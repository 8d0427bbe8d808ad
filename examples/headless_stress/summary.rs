//! The summary printed at the end of a run, and whether it passed.

use std::sync::PoisonError;
use std::time::Duration;

use perdix_transport::bevy::{PerdixRings, RingState};
use perdix_transport::telemetry::LatencyHistogram;
use perdix_transport::testing::stress::{self, VerifyReport};

use crate::run::{Figures, Outcome, Run};

pub fn summarize(run: &mut Run, rings: &PerdixRings, timed_out: bool) -> Outcome {
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
    // GPU producers' drops and waits are in the totals: their rings' device counters.
    let totals = rings.counters().total();
    let app = rings.counters().app;
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
        && totals.malformed == 0
        && rings.errors() == 0;
    // A ring fault (corrupt slot, failed head push, kernel fault) fails the run, with its error.
    let failed = (0..u32::try_from(rings.rings()).unwrap_or(u32::MAX)).filter_map(|r| match rings
        .ring_state(r)
    {
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
            totals.malformed,
            rings.errors(),
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
            app.frames,
            frames.p50_ns as f64 / 1e6,
            frames.p99_ns as f64 / 1e6,
            frames.max_ns as f64 / 1e6,
            app.max_frame,
            app.deferred_frames
        ),
        {
            let per_frame = |d: Duration| d.as_secs_f64() * 1e3 / app.frames.max(1) as f64;
            let per_msg = |d: Duration| d.as_secs_f64() * 1e9 / report.messages.max(1) as f64;
            let [drain, verify, rest] = run.split;
            format!(
                "  frame split  launch+drain+flush {:.3} ms/frame ({:.1} ns/msg), {} verifiers {:.3} ms ({:.1} ns/msg), rest {:.3} ms ({:.1} ns/msg)",
                per_frame(drain), per_msg(drain), run.shards.len(), per_frame(verify), per_msg(verify), per_frame(rest), per_msg(rest)
            )
        },
        format!("  verdict    {}", if pass { "pass" } else { "FAIL" }),
    ];
    // Per device, after the backpressure line (GPU producers only).
    let devices = rings.counters().devices().into_iter().map(|d| {
        format!(
            "  device gpu{}  {} messages from {} ring(s), {:.3} M msgs/s",
            d.device,
            d.counters.messages,
            d.rings,
            if elapsed > 0.0 {
                d.counters.messages as f64 / elapsed / 1e6
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
    let figures = Figures {
        rate,
        bytes_per_sec: gbps * 1e9,
        latency: lat,
        frame_p50_ns: frames.p50_ns,
        frames: app.frames,
        budget_frames: app.deferred_frames,
        producers,
        rings: rings.rings(),
    };
    Outcome {
        lines,
        pass,
        figures,
    }
}

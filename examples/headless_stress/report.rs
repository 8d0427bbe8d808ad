//! The closing report: the saturated ECS run as a fraction of the bare ring, why its latency is
//! queueing and what bounds it, and the latency at light loads in frames.

use crate::args::Args;
use crate::baseline::Baseline;
use crate::run::{Figures, Outcome};

/// The report's lines, and whether every run passed.
pub fn report(
    args: &Args,
    baseline: Option<&Baseline>,
    saturated: &Outcome,
    loads: &[(f64, Outcome)],
) -> (Vec<String>, bool) {
    let sat = &saturated.figures;
    let mut lines = vec![
        String::new(),
        format!(
            "perdix headless_stress report: {}-byte messages delivered as {}",
            args.size,
            args.deliver.name()
        ),
    ];
    let mut pass = saturated.pass;
    match baseline {
        Some(base) => {
            pass &= base.clean;
            lines.push(format!(
                "  bare ring    {:.3} M msgs/s, {:.3} GB/s ({}; every word verified{})",
                base.rate / 1e6,
                base.bytes_per_sec / 1e9,
                base.shape,
                if base.clean { "" } else { "; NOT CLEAN" }
            ));
            lines.push(format!(
                "  into ECS     {:.3} M msgs/s, {:.3} GB/s = {:.3} of the bare ring",
                sat.rate / 1e6,
                sat.bytes_per_sec / 1e9,
                sat.rate / base.rate.max(1e-9)
            ));
        }
        None => lines.push(format!(
            "  into ECS     {:.3} M msgs/s, {:.3} GB/s (no baseline: --baseline-seconds 0)",
            sat.rate / 1e6,
            sat.bytes_per_sec / 1e9
        )),
    }
    lines.extend(queueing(args, sat));
    for (load, outcome) in loads {
        pass &= outcome.pass;
        lines.push(light_load(*load, outcome));
    }
    (lines, pass)
}

/// Why the saturated run's latency is milliseconds: queueing, and what bounds the queue.
fn queueing(args: &Args, sat: &Figures) -> Vec<String> {
    let slots = args.capacity as u64 * sat.rings as u64;
    // Ahead of a new message: every ring full, and a message in hand at every producer stream
    // waiting for room (a GPU thread stamps its message before it reserves a slot).
    let ahead = slots + sat.producers;
    let drain_ms = ahead as f64 / sat.rate.max(1e-9) * 1e3;
    vec![
        format!(
            "  saturation   stamp-to-reader p50 {:.3} ms, p99 {:.3} ms: queueing, not transport. The producers outrun the reader, so a message waits behind up to {} others ({} ring(s) x {} slots full, plus one in hand at each of {} producer stream(s)), which drain at the ECS rate in {:.3} ms; {} of {} frames used the whole budget of {} messages",
            sat.latency.p50_ns as f64 / 1e6,
            sat.latency.p99_ns as f64 / 1e6,
            ahead,
            sat.rings,
            args.capacity,
            sat.producers,
            drain_ms,
            sat.budget_frames,
            sat.frames,
            args.budget,
        ),
        "               (a smaller --capacity or --budget shortens the queue; a light load shows the transport's latency, below)".to_owned(),
    ]
}

/// One light-load run's line: latency in microseconds and in frames, against the goal
/// (p50 <= 1 frame + 100 us, p99 <= 2 frames).
fn light_load(load: f64, outcome: &Outcome) -> String {
    let f = &outcome.figures;
    let frame = f.frame_p50_ns.max(1) as f64;
    let (p50, p99) = (f.latency.p50_ns as f64, f.latency.p99_ns as f64);
    let met = p50 <= frame + 100_000.0 && p99 <= 2.0 * frame;
    format!(
        "  load {:>4.0} %  {:.3} M msgs/s: stamp-to-reader p50 {:.1} us ({:.2} frames) p99 {:.1} us ({:.2} frames), frame p50 {:.1} us, {} samples; goal p50 <= 1 frame + 100 us, p99 <= 2 frames: {}{}",
        load * 100.0,
        f.rate / 1e6,
        p50 / 1e3,
        p50 / frame,
        p99 / 1e3,
        p99 / frame,
        frame / 1e3,
        f.latency.count,
        if met { "met" } else { "missed" },
        if outcome.pass { "" } else { "; run FAILED" },
    )
}

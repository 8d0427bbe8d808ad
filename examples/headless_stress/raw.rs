//! `--raw`: the baseline without Bevy.

use std::process::ExitCode;
use std::time::Duration;

use perdix_transport::testing::harness::SpscRun;
use perdix_transport::testing::stress::Throughput;

use crate::args::Args;

/// `--raw`: the bare ring with the same producer, size, capacity, policy and full verification.
pub fn raw_baseline(args: &Args) -> ExitCode {
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

//! The benchmark's GPU output: a table, or one JSON object on stdout.

use perdix_transport::cuda::GpuContext;
use perdix_transport::testing::gpu::GpuStressReport;
use perdix_transport::testing::stress::Throughput;

/// The light-load latency run and the ping-pong round trips.
pub(super) type Latency = (
    GpuStressReport,
    perdix_transport::telemetry::LatencyHistogram,
);

/// One throughput row.
pub(super) struct Row {
    /// What the row ran.
    pub(super) label: String,
    /// What it measured.
    pub(super) report: GpuStressReport,
}

/// Prints the rows and the latency as a table.
pub(super) fn print_table(gpu: &GpuContext, rows: &[Row], latency: Option<&Latency>) {
    println!(
        "backend cuda (GPU producer kernels -> CPU consumer threads) on {} (sm_{}{}, {} SMs)",
        gpu.name(),
        gpu.compute_capability().0,
        gpu.compute_capability().1,
        gpu.multiprocessors()
    );
    println!(
        "{:<20} {:>5} {:>6} {:>6} {:>5} {:>5} {:>8} {:>12} {:>9} {:>7} {:>11} {:>10} {:>5}",
        "run",
        "size",
        "grid",
        "slots",
        "rings",
        "cons",
        "memory",
        "messages",
        "M msg/s",
        "GB/s",
        "dropped",
        "stalls",
        "ok"
    );
    for row in rows {
        let r = &row.report;
        let c = &r.config;
        println!(
            "{:<20} {:>4}B {:>6} {:>6} {:>5} {:>5} {:>8} {:>12} {:>9.1} {:>7.2} {:>11} {:>10} {:>5}",
            row.label,
            c.size,
            format!("{}x{}", c.grid, c.block),
            c.capacity,
            c.rings,
            c.consumers,
            c.memory,
            r.verify.messages,
            r.msgs_per_sec() / 1e6,
            r.bytes_per_sec() / 1e9,
            r.counters.drops,
            r.counters.stalls,
            if r.is_clean() { "yes" } else { "NO" }
        );
    }
    if let Some((report, rt)) = latency {
        let s = report.latency.summary();
        let clock = report.clock.unwrap_or_default();
        println!(
            "one-way latency GPU->CPU (1 thread, 1 msg / 10 us, 32 B): p50 {} ns, p99 {} ns, p99.9 {} ns, max {} ns, {} samples; \
             calibration ±{} ns (fit rms {} ns, drift {:.2} ppm, residual after run {} ns, {} early stamps)",
            s.p50_ns,
            s.p99_ns,
            s.p999_ns,
            s.max_ns,
            s.count,
            clock.error_ns,
            clock.fit_rms_ns,
            clock.drift_ppm(),
            report.clock_residual_ns.unwrap_or(0),
            report.early_stamps
        );
        let r = rt.summary();
        println!(
            "ping-pong CPU->GPU->CPU (pinned memory): p50 {} ns, p99 {} ns, p99.9 {} ns, {} samples",
            r.p50_ns, r.p99_ns, r.p999_ns, r.count
        );
    }
}

/// Prints the rows and the latency as one JSON object.
pub(super) fn print_json(gpu: &GpuContext, rows: &[Row], latency: Option<&Latency>) {
    let rows_json: Vec<String> = rows
        .iter()
        .map(|row| {
            let r = &row.report;
            let c = &r.config;
            format!(
                "{{\"run\":\"{}\",\"size\":{},\"grid\":{},\"block\":{},\"capacity\":{},\"rings\":{},\"consumers\":{},\
                 \"memory\":\"{}\",\"policy\":\"{}\",\"seconds\":{:.3},\"messages\":{},\"msgs_per_sec\":{:.0},\
                 \"gb_per_sec\":{:.4},\"emitted\":{},\"dropped\":{},\"stalls\":{},\"attempts\":{},\
                 \"per_consumer\":{:?},\"verified\":{}}}",
                row.label,
                c.size,
                c.grid,
                c.block,
                c.capacity,
                c.rings,
                c.consumers,
                c.memory,
                c.policy,
                r.elapsed.as_secs_f64(),
                r.verify.messages,
                r.msgs_per_sec(),
                r.bytes_per_sec() / 1e9,
                r.counters.emitted,
                r.counters.drops,
                r.counters.stalls,
                r.attempts,
                r.per_consumer,
                r.is_clean()
            )
        })
        .collect();
    let latency_json = match latency {
        Some((report, rt)) => {
            let s = report.latency.summary();
            let clock = report.clock.unwrap_or_default();
            let r = rt.summary();
            format!(
                ",\"one_way_ns\":{{\"samples\":{},\"p50\":{},\"p99\":{},\"p999\":{},\"max\":{},\"calibration_error_ns\":{},\
                 \"fit_rms_ns\":{},\"drift_ppm\":{:.3},\"residual_ns\":{},\"early\":{}}},\"ping_pong_ns\":{{\"samples\":{},\"p50\":{},\"p99\":{},\"p999\":{}}}",
                s.count,
                s.p50_ns,
                s.p99_ns,
                s.p999_ns,
                s.max_ns,
                clock.error_ns,
                clock.fit_rms_ns,
                clock.drift_ppm(),
                report.clock_residual_ns.unwrap_or(0),
                report.early_stamps,
                r.count,
                r.p50_ns,
                r.p99_ns,
                r.p999_ns
            )
        }
        None => String::new(),
    };
    println!(
        "{{\"backend\":\"cuda\",\"producer\":\"gpu\",\"device\":\"{}\",\"throughput\":[{}]{}}}",
        gpu.name(),
        rows_json.join(","),
        latency_json
    );
}

//! The benchmark's GPU path: verified stress runs (`perdix_transport::testing::gpu`) over the
//! configurations of `docs/PERFORMANCE.md`, one-way latency at light load, and the CPU→GPU→CPU
//! ping-pong. All figures of one invocation come from one process, so they compare side by side.

use std::time::Duration;

use perdix_transport::cuda::{GpuContext, GpuDevices, GpuMemory};
use perdix_transport::testing::gpu::{self as stress, GpuStress};
use perdix_transport::testing::stress::Throughput;
use perdix_transport::{Error, Policy};

mod latency;
mod output;

use output::{print_json, print_table, Row};

/// GPU options (ignored on the CPU path).
#[derive(Debug, clap::Args)]
pub struct GpuArgs {
    /// Use CPU producers even when a GPU is present.
    #[arg(long)]
    pub cpu: bool,
    /// Run the whole measurement matrix of docs/PERFORMANCE.md instead of the quick set.
    #[arg(long)]
    pub matrix: bool,
    /// Grid sizes in blocks (default: one block per SM).
    #[arg(long, value_delimiter = ',')]
    pub grid: Vec<u32>,
    /// Threads per block (each thread is one producer stream).
    #[arg(long, default_value_t = 256)]
    pub block: u32,
    /// Consumer threads (each owns its rings).
    #[arg(long, value_delimiter = ',', default_values_t = [2usize])]
    pub consumers: Vec<usize>,
    /// Rings per producer (0: one per consumer thread).
    #[arg(long, default_value_t = 0)]
    pub rings: usize,
    /// One ring per block (overrides --rings; the flag keeps its historical name).
    #[arg(long)]
    pub lanes: bool,
    /// Slots per GPU ring.
    #[arg(long, value_delimiter = ',', default_values_t = [65_536usize])]
    pub gpu_capacity: Vec<usize>,
    /// Ring memory: pinned, managed.
    #[arg(long, value_delimiter = ',', default_values_t = [GpuMemory::Pinned])]
    pub memory: Vec<GpuMemory>,
    /// Backpressure policy of the stress kernel: block or drop-newest.
    #[arg(long, default_value_t = Policy::Block)]
    pub policy: Policy,
    /// Check every payload word (otherwise the first and last 16 bytes).
    #[arg(long)]
    pub full_check: bool,
    /// Soak: send this many messages in all (per producer: rounded up) instead of --seconds.
    #[arg(long)]
    pub total_messages: Option<u64>,
    /// Seconds of the light-load latency run (0: skip latency and ping-pong).
    #[arg(long, default_value_t = 3.0)]
    pub latency_seconds: f64,
    /// Run the latency study instead (docs/PERFORMANCE.md, "Latency"): one-way at light load,
    /// the ring round trip and emit cost, the flag ping-pong, and latency under load at 50 % and
    /// 90 % of the peak, for both ring modes; `--latency-seconds` a run, `--round-trips` rounds.
    #[arg(long)]
    pub latency_report: bool,
    /// Multi-GPU mode: run each configuration on the first of these devices alone, then on all
    /// of them at once, and report the aggregate (`all`, or ordinals like `0,1`; `0,0` runs two
    /// producer sets on one GPU).
    #[arg(long)]
    pub devices: Option<GpuDevices>,
}

/// Opens the GPU, or says why not.
pub fn open() -> Result<GpuContext, Error> {
    GpuContext::new(0)
}

fn base(gpu: &GpuContext, args: &super::Args) -> GpuStress {
    GpuStress {
        grid: gpu.multiprocessors(),
        block: args.gpu.block,
        duration: Duration::from_secs_f64(args.seconds),
        full_check: args.gpu.full_check,
        policy: args.gpu.policy,
        ..GpuStress::default()
    }
}

/// The configurations to run.
pub fn plan(gpu: &GpuContext, args: &super::Args) -> Vec<(String, GpuStress)> {
    let sms = gpu.multiprocessors();
    let base = base(gpu, args);
    let mut plan = Vec::new();
    if args.gpu.matrix {
        // 224-byte payloads (whole 256-byte slots): 1 vs 2 consumers, 8 vs full grid, 16 K vs
        // 64 K slots, pinned; managed side by side on the full grid.
        for memory in [GpuMemory::Pinned, GpuMemory::Managed] {
            for grid in [8, sms] {
                if memory == GpuMemory::Managed && grid != sms {
                    continue;
                }
                for capacity in [16_384, 65_536] {
                    for consumers in [1, 2] {
                        plan.push((
                            format!("slot224 {memory}"),
                            GpuStress {
                                grid,
                                capacity,
                                rings: consumers,
                                consumers,
                                size: 224,
                                memory,
                                ..base.clone()
                            },
                        ));
                    }
                }
            }
        }
        // More consumer threads on the full grid (one ring each).
        for consumers in [3, 4] {
            plan.push((
                "slot224 pinned".into(),
                GpuStress {
                    grid: sms,
                    capacity: 65_536,
                    rings: consumers,
                    consumers,
                    size: 224,
                    ..base.clone()
                },
            ));
        }
        // A 4,096-slot ring under the full grid: no livelock.
        for consumers in [1, 2] {
            plan.push((
                "ring4096 full-grid".into(),
                GpuStress {
                    grid: sms,
                    capacity: 4096,
                    rings: consumers,
                    consumers,
                    size: 224,
                    ..base.clone()
                },
            ));
        }
        // 32-byte messages: per-block lanes read by 4 (and 8) consumer threads, and shared rings.
        for (capacity, consumers) in [(4096, 4), (8192, 4), (8192, 8)] {
            plan.push((
                "msg32 lanes".into(),
                GpuStress {
                    grid: sms,
                    capacity,
                    rings: sms as usize,
                    consumers,
                    size: 32,
                    ..base.clone()
                },
            ));
        }
        for rings in [4, 8] {
            plan.push((
                "msg32 rings".into(),
                GpuStress {
                    grid: sms,
                    capacity: 16_384,
                    rings,
                    consumers: rings,
                    size: 32,
                    ..base.clone()
                },
            ));
        }
        // DropNewest: emitted + dropped == attempted, exactly.
        plan.push((
            "drop-newest".into(),
            GpuStress {
                grid: sms,
                capacity: 4096,
                rings: 1,
                consumers: 1,
                size: 224,
                policy: Policy::DropNewest,
                ..base.clone()
            },
        ));
        return plan;
    }
    let grids = if args.gpu.grid.is_empty() {
        vec![sms]
    } else {
        args.gpu.grid.clone()
    };
    for &size in &args.sizes {
        for &grid in &grids {
            for &capacity in &args.gpu.gpu_capacity {
                let capacity = super::capacity_for(capacity, size);
                for &memory in &args.gpu.memory {
                    for &consumers in &args.gpu.consumers {
                        let rings = if args.gpu.lanes {
                            grid as usize
                        } else if args.gpu.rings == 0 {
                            consumers
                        } else {
                            args.gpu.rings
                        };
                        let mut config = GpuStress {
                            grid,
                            capacity,
                            rings,
                            consumers,
                            size,
                            memory,
                            ..base.clone()
                        };
                        if let Some(total) = args.gpu.total_messages {
                            config.messages_per_producer = Some(total.div_ceil(config.producers()));
                        }
                        plan.push((format!("msg{size} {memory}"), config));
                    }
                }
            }
        }
    }
    plan
}

/// Runs the GPU benchmark; returns whether every run verified clean.
pub fn run(gpu: &GpuContext, args: &super::Args) -> Result<bool, Error> {
    if args.gpu.latency_report {
        let rounds = args.round_trips.clamp(1, 200_000) as u32;
        return latency::run(gpu, args.gpu.latency_seconds.max(0.5), rounds);
    }
    let mut rows = Vec::new();
    for (label, config) in plan(gpu, args) {
        eprintln!(
            "benchmark: {label}: grid {}x{}, {} rings x {} slots, {} consumers, {} B, {}, {}",
            config.grid,
            config.block,
            config.rings,
            config.capacity,
            config.consumers,
            config.size,
            config.memory,
            config.policy,
        );
        let report = stress::run(gpu, &config)?;
        eprintln!(
            "benchmark:   {:.1} M msgs/s, {:.2} GB/s, clean {}",
            report.msgs_per_sec() / 1e6,
            report.bytes_per_sec() / 1e9,
            report.is_clean()
        );
        rows.push(Row { label, report });
    }
    let latency = if args.gpu.latency_seconds > 0.0 {
        eprintln!(
            "benchmark: light-load one-way latency, {} s",
            args.gpu.latency_seconds
        );
        let config = GpuStress {
            full_check: args.gpu.full_check,
            policy: args.gpu.policy,
            ..GpuStress::light_load_latency(Duration::from_secs_f64(args.gpu.latency_seconds))
        };
        let report = stress::run(gpu, &config)?;
        eprintln!(
            "benchmark: ping-pong, {} round trips",
            args.round_trips.min(200_000)
        );
        let rt = stress::ping_pong(gpu, args.round_trips.min(200_000) as u32)?;
        Some((report, rt))
    } else {
        None
    };
    let clean = rows.iter().all(|r| r.report.is_clean())
        && latency.as_ref().is_none_or(|(r, _)| r.is_clean());
    if args.json {
        print_json(gpu, &rows, latency.as_ref());
    } else {
        print_table(gpu, &rows, latency.as_ref());
    }
    Ok(clean)
}

//! `--devices`: the stress benchmark on several GPUs at once, against the first one alone.

use perdix_transport::cuda::{GpuContext, GpuDevices};
use perdix_transport::testing::gpu::{self as stress, GpuStressReport};
use perdix_transport::testing::stress::Throughput;
use perdix_transport::Error;

/// One configuration: the first device alone, then every device at once.
struct Row {
    label: String,
    alone: GpuStressReport,
    together: Vec<GpuStressReport>,
}

impl Row {
    fn aggregate(&self) -> f64 {
        self.together
            .iter()
            .map(GpuStressReport::msgs_per_sec)
            .sum()
    }

    fn clean(&self) -> bool {
        self.alone.is_clean() && self.together.iter().all(GpuStressReport::is_clean)
    }
}

/// Runs the multi-GPU comparison; returns whether every run verified clean.
pub fn run(devices: &GpuDevices, args: &super::Args) -> Result<bool, Error> {
    let gpus = devices.open()?;
    let Some(first) = gpus.first() else {
        return Err(Error::NoDevice("an empty list of CUDA devices"));
    };
    let names: Vec<String> = gpus
        .iter()
        .map(|gpu| format!("{} #{}", gpu.name(), gpu.ordinal()))
        .collect();
    eprintln!("benchmark: multi-GPU over {}", names.join(", "));
    let mut rows = Vec::new();
    for (label, config) in super::gpu::plan(first, args) {
        eprintln!("benchmark: {label}: device {} alone", first.ordinal());
        let alone = stress::run(first, &config)?;
        eprintln!("benchmark: {label}: {} devices at once", gpus.len());
        let together = stress::run_devices(&gpus, &config)?;
        rows.push(Row {
            label,
            alone,
            together,
        });
    }
    if args.json {
        print_json(&gpus, &rows);
    } else {
        print_table(&gpus, &rows);
    }
    Ok(rows.iter().all(Row::clean))
}

fn print_table(gpus: &[GpuContext], rows: &[Row]) {
    let list: Vec<String> = gpus.iter().map(|g| g.ordinal().to_string()).collect();
    println!(
        "backend cuda, multi-GPU: devices [{}] ({}), each with its own rings and consumer threads",
        list.join(","),
        gpus.first().map_or("", GpuContext::name)
    );
    println!(
        "{:<20} {:>5} {:>6} {:>5} {:>5} {:>14} {:>14} {:>7} {:>24} {:>5}",
        "run",
        "size",
        "slots",
        "rings",
        "cons",
        "1 GPU M msg/s",
        "all M msg/s",
        "ratio",
        "per device M msg/s",
        "ok"
    );
    for row in rows {
        let c = &row.alone.config;
        let alone = row.alone.msgs_per_sec();
        let per: Vec<String> = row
            .together
            .iter()
            .map(|r| format!("{:.1}", r.msgs_per_sec() / 1e6))
            .collect();
        println!(
            "{:<20} {:>4}B {:>6} {:>5} {:>5} {:>14.1} {:>14.1} {:>6.2}x {:>24} {:>5}",
            row.label,
            c.size,
            c.capacity,
            c.rings,
            c.consumers,
            alone / 1e6,
            row.aggregate() / 1e6,
            row.aggregate() / alone.max(1.0),
            per.join(" "),
            if row.clean() { "yes" } else { "NO" }
        );
    }
}

fn print_json(gpus: &[GpuContext], rows: &[Row]) {
    let devices: Vec<String> = gpus.iter().map(|g| g.ordinal().to_string()).collect();
    let rows: Vec<String> = rows
        .iter()
        .map(|row| {
            let per: Vec<String> = row
                .together
                .iter()
                .map(|r| format!("{:.0}", r.msgs_per_sec()))
                .collect();
            format!(
                "{{\"run\":\"{}\",\"size\":{},\"one_gpu_msgs_per_sec\":{:.0},\"all_msgs_per_sec\":{:.0},\"per_device\":[{}],\"verified\":{}}}",
                row.label,
                row.alone.config.size,
                row.alone.msgs_per_sec(),
                row.aggregate(),
                per.join(","),
                row.clean()
            )
        })
        .collect();
    println!(
        "{{\"backend\":\"cuda-multi\",\"devices\":[{}],\"runs\":[{}]}}",
        devices.join(","),
        rows.join(",")
    );
}

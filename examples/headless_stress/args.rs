//! The command line.

use clap::Parser;
use perdix_transport::bevy::DrainMode;
use perdix_transport::Policy;

/// Headless Bevy stress test of the perdix transport.
#[derive(Parser, Debug, Clone)]
#[command(version)]
pub struct Args {
    /// Seconds to produce for (the drain then empties the rings).
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Slots per ring (a power of two).
    #[arg(long, default_value_t = 16_384)]
    pub capacity: usize,
    /// Message size in bytes (a multiple of 8 from 16 to 224).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Backpressure policy: block or drop-newest.
    #[arg(long, default_value_t = Policy::Block)]
    pub policy: Policy,
    /// Drain mode: system (in the frame) or thread (a consumer thread per ring). Default: thread
    /// when GPU producers run (faster there, docs/PERFORMANCE.md), system on the CPU fallback
    /// (the drain threads would compete with the CPU producers for cores).
    #[arg(long = "drain", value_name = "DRAIN")]
    pub drain_flag: Option<DrainMode>,
    /// The drain mode chosen (from `--drain` or the backend).
    #[arg(skip)]
    pub drain: DrainMode,
    /// ECS message type the stress kind is delivered as: `envelope` (`Envelope<[u64; size/8]>`,
    /// the payload plus its header), `raw` (`PerdixMessage`, a whole 256-byte slot) or `batch`
    /// (`PerdixBatch<[u64; size/8]>` with headers: one ECS message a ring and drain).
    #[arg(long, value_enum, default_value_t = Deliver::Envelope)]
    pub deliver: Deliver,
    /// Verifier systems (a power of two), each checking the rings `r` with
    /// `r % verifiers == its index`; Bevy runs them in parallel (default: cores / 2, 1 to 8).
    #[arg(long)]
    pub verifiers: Option<usize>,
    /// CPU producer threads, or rings per device for the GPU stress grid (default: cores - 1,
    /// from 1 to 4).
    #[arg(long)]
    pub producers: Option<usize>,
    /// Most messages delivered into ECS messages per frame.
    #[arg(long, default_value_t = 262_144)]
    pub budget: usize,
    /// Use CPU producers even when a GPU is present.
    #[arg(long)]
    pub cpu: bool,
    /// CUDA devices for the GPU producers: `all` (default) or ordinals like `0,1` (`0,0` runs
    /// two producer sets on one GPU). Each device gets its own rings.
    #[cfg(feature = "cuda")]
    #[arg(long, default_value_t = perdix_transport::cuda::GpuDevices::All)]
    pub devices: perdix_transport::cuda::GpuDevices,
    /// Seconds of the bare-ring baseline run first (the same producers, rings, size and
    /// policy, every word verified, no Bevy); the ECS figures are printed as fractions of it.
    /// 0 skips it.
    #[arg(long, default_value_t = 3.0)]
    pub baseline_seconds: f64,
    /// Only the bare-ring baseline (no Bevy).
    #[arg(long)]
    pub raw: bool,
    /// Light loads run after the saturated run, as fractions of its verified rate (paced
    /// producers): stamp-to-reader latency at each, in frames. `0` runs none.
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.5")]
    pub load: Vec<f64>,
    /// Seconds of each light-load run.
    #[arg(long, default_value_t = 3.0)]
    pub load_seconds: f64,
    /// Threads of Bevy's task pools (0: Bevy's default, one per core).
    #[arg(long, default_value_t = 0)]
    pub bevy_threads: usize,
    /// Also print the `perdix/*` diagnostics (from bevy_diagnostic's `DiagnosticsStore`) each
    /// second.
    #[arg(long)]
    pub diagnostics: bool,
    /// Serve the counters for Prometheus at `http://ADDR/metrics` (`PerdixPrometheusPlugin`,
    /// publishing every 100 ms; feature `prometheus`).
    #[cfg(feature = "prometheus")]
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Time `PerdixRings::counters()`, `publish` and the text encoding each second and print
    /// the cost per call (feature `prometheus`; the timing itself costs frames: not for A/B
    /// runs).
    #[cfg(feature = "prometheus")]
    #[arg(long)]
    pub metrics_cost: bool,
}

/// How stress messages reach the verifiers.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deliver {
    /// `Envelope<[u64; size / 8]>`: the payload as a typed array, with its header.
    Envelope,
    /// `PerdixMessage`: the raw slot.
    Raw,
    /// `PerdixBatch<[u64; size / 8]>` with headers: a ring's messages of a drain in one ECS
    /// message, values and headers as parallel slices.
    Batch,
}

impl Deliver {
    pub fn name(self) -> &'static str {
        match self {
            Deliver::Envelope => "Envelope<[u64; size/8]>",
            Deliver::Raw => "PerdixMessage",
            Deliver::Batch => "PerdixBatch<[u64; size/8]> with headers",
        }
    }
}

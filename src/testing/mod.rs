//! Test and bench tooling (feature `testing`): not part of the default API.
//!
//! The tests, examples and benches of this crate turn the feature on (through a dev-dependency
//! on the crate itself), and so does `perdix-cli` (the `transport_test` and `benchmark` bins).
//! An application that depends on perdix-transport does not see these items unless it asks for
//! the feature.
//!
//! - [`stress`]: the self-checking stress-message format, its [`Verifier`](stress::Verifier),
//!   the CPU [`StressSender`](stress::StressSender) (the GPU stress kernel writes the same
//!   words) and the [`Throughput`](stress::Throughput) rates of a run report;
//! - [`harness`]: a verified two-thread SPSC run and an echo-thread round trip;
//! - [`init_logging`]: the one tracing-subscriber setup of the examples and the bins;
//! - `gpu` (with `cuda`): verified GPU stress runs, the stress kernels, the layout probe and
//!   the CPU→GPU→CPU ping-pong;
//! - `StressProducers` (with `bevy`): stress producers on a plugin's rings;
//! - `HeadlessFrame` (with `dashboard`): an egui frame with no window, for the panel's tests
//!   and bench.
#![forbid(unsafe_code)]

pub mod harness;
#[cfg(feature = "dashboard")]
mod headless;
mod logging;
pub mod stress;

/// Verified GPU stress runs, the stress kernels, the layout probe and the CPU→GPU→CPU
/// ping-pong; the sources of the crate's own kernels.
#[cfg(feature = "cuda")]
pub mod gpu {
    pub use crate::cuda::clock::ping_pong;
    pub use crate::cuda::module::{builtin_kernels, PROBE_CU, STRESS_CU};
    pub use crate::cuda::probe::{layout_probe, LayoutProbe};
    pub use crate::cuda::stress::{
        direct_write_path, free_running_kernel, paced_kernel, ring_round_trip, run, run_devices,
        GpuStress, GpuStressReport, RoundTrip, StressKernel, StressLaunch, GENERIC_LOCAL_MAX,
    };
}

#[cfg(feature = "bevy")]
pub use crate::bevy::stress::StressProducers;
#[cfg(feature = "dashboard")]
pub use headless::HeadlessFrame;
pub use logging::init_logging;

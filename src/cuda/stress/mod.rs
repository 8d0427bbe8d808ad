//! A verified GPU→CPU stress run (test tooling, feature `testing`; public as
//! `perdix_transport::testing::gpu`): the stress kernel on a full grid, several consumer
//! threads each owning their rings, every message checked. Shared by the bins, the tests, the
//! `gpu_stream` bench and the Bevy `headless_stress` example.
//!
//! One way: `launch` (a stress kernel safe code may launch) ← `kernels` (those of
//! `kernels/stress.cu`), `config`, `report` and `consume` (one consumer thread) ← `run`.

mod config;
mod consume;
mod echo;
mod kernels;
mod launch;
mod report;
mod run;

pub use config::GpuStress;
pub use echo::{direct_write_path, ring_round_trip, RoundTrip};
pub use kernels::{free_running_kernel, paced_kernel, StressKernel, GENERIC_LOCAL_MAX};
pub use launch::StressLaunch;
pub use report::GpuStressReport;
pub use run::{run, run_devices};

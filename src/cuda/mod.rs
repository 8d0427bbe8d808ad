//! CUDA backend: rings in pinned or managed memory, written by GPU kernels compiled with NVRTC.
//!
//! Everything here is decided at run time: the crate builds without a CUDA toolkit, and without
//! a driver or device [`GpuContext::new`] returns [`Error::NoDevice`](crate::Error::NoDevice)
//! (never a panic).
//!
//! - [`GpuContext`]: one device, opened once; [`GpuDevices`]: a choice of devices (default all).
//! - [`GpuProducer`]: rings in [`GpuMemory::Pinned`] or [`GpuMemory::Managed`] memory, a control
//!   block in device memory, a stream; [`GpuProducer::launch`] runs a [`GpuKernel`] into them.
//!   Each ring is read by an ordinary [`Consumer`](crate::Consumer), the same code as for CPU
//!   producers; [`ConsumerGroup`] reads several rings from one thread.
//! - [`GpuProducerSet`]: one `GpuProducer` per device, launched together; each ring's consumer
//!   and every [`MessageRef`](crate::MessageRef) says which device it came from.
//! - [`stress`]: the verified full-grid stress run the bins, tests and benches share.
//! - [`clock`]: `%globaltimer` mapped onto [`clock::now_ns`](crate::clock::now_ns), and the
//!   CPU→GPU→CPU ping-pong.
//!
//! # Protocol on the device (`kernels/perdix.cuh`)
//!
//! Kernels `#include "perdix.cuh"` (supplied in memory) and call `perdix_emit(p, kind, ptr, len)`
//! (waits for room), `perdix_try_emit(..)` (drops and counts when full) or `perdix_send(..)` (the
//! producer's [`Policy`](crate::Policy)) from any thread. Why it is built the way it is
//! (DESIGN.md §3, measured on an H100):
//!
//! - a warp reserves positions with one atomic on a counter in device memory and writes each slot
//!   cooperatively, one 8-byte word per lane, one slot per store instruction (per-lane slot
//!   writes cap the GPU at ~46 M msgs/s; cooperative ones reach 151–165 M), and only the cache
//!   lines the message uses;
//! - payload, then `__threadfence_system()`, then `seq = pos + 1`: over PCIe a 256-byte write is
//!   neither atomic nor ordered;
//! - the consumer pushes its head into device memory (`cuStreamWriteValue64`) every
//!   capacity / 8 messages and whenever it finds the ring empty, so no GPU thread reads host
//!   memory to wait (a naive ring where every warp polls the host head livelocks at 0.9 M msgs/s);
//! - `DropNewest` warps decide against that pushed head, so a busy consumer can have up to
//!   capacity / 8 - 1 slots free while they drop (see [`GpuProducerBuilder::policy`]);
//! - a waiting warp sleeps with `__nanosleep` backoff and polls its ring's closed flag, so
//!   dropping the consumer ends a blocked kernel.
//!
//! Measured figures: `docs/PERFORMANCE.md`; decisions and what was tried: `docs/DESIGN-NOTES.md`.

mod block;
mod builder;
pub mod clock;
mod context;
mod control;
mod counters;
mod devices;
mod driver;
mod faults;
mod group;
mod head;
mod kernel;
mod memory;
mod module;
mod presence;
#[cfg(feature = "testing")]
pub(crate) mod probe;
mod producer;
mod set;
#[cfg(feature = "testing")]
pub(crate) mod stress;
mod teardown;

pub use builder::{GpuProducerBuilder, MIN_CAPACITY};
pub use clock::{ClockMapping, ClockTracker};
pub use context::GpuContext;
pub use counters::GpuCounters;
pub use devices::GpuDevices;
pub use group::ConsumerGroup;
pub use kernel::{Dim3, GpuKernel, KernelArg};
pub use memory::{CudaManaged, CudaPinned, GpuMemory};
pub use module::{builtin_kernels, compile_ptx, PERDIX_CUH, PROBE_CU, STRESS_CU};
pub use presence::device_count;
pub use producer::GpuProducer;
pub use set::GpuProducerSet;

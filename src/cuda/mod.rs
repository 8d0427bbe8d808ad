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
//! - [`KernelArg`]: a kernel argument of any kind cudarc passes (scalars, a `#[repr(C)]` struct
//!   by value, an app's device buffer as its [`device_address`]), checked against the kernel's
//!   PTX before each launch.
//! - What is `unsafe`, as in cudarc: whatever decides what a user kernel writes, where it is
//!   supplied: its source ([`GpuKernel::from_source`], vouched for under any launch shape), its
//!   argument list ([`GpuKernel::arg`], [`with_args`](GpuKernel::with_args),
//!   [`set_arg`](GpuKernel::set_arg): a 64-bit argument may be an address) and its launch
//!   ([`GpuProducer::launch`], [`GpuProducerSet::launch`]). Taking an address is safe; supplying
//!   it is not. The crate's own kernels stay safe.
//! - Bring your own launch: [`GpuContext::from_cudarc`] uses the app's context; a producer's
//!   [`ProducerHandle`] is an argument for cudarc's own launch builder on the app's streams,
//!   and [`GpuProducer::track`] keeps the producer alive for those kernels. The cudarc this
//!   crate is built with is re-exported ([`cudarc`]), so the types match.
//! - [`GpuProducerSet`]: one `GpuProducer` per device, launched together; each ring's consumer
//!   and every [`MessageRef`](crate::MessageRef) says which device it came from.
//! - The GPU clock mapped onto the CPU's, its calibration and tracker: [`crate::clock`].
//! - Test tooling (feature `testing`, `perdix_transport::testing::gpu`): the verified stress run,
//!   the stress kernels and the layout probe.
//!
//! # Layers
//!
//! As in cudarc: `cudarc::driver::sys` is the only FFI; `driver.rs` holds the few driver calls
//! cudarc's safe API lacks (mapped pinned memory, managed memory with advice, stream memory
//! ops, stream query) and `nvrtc.rs` the NVRTC program with in-memory headers; everything else
//! (streams, device memory, copies, synchronization, modules, launches) is cudarc's safe API.
//! Device memory is allocated in one place (`words.rs`); ring memory in `memory.rs`.
//!
//! # Protocol on the device (`kernels/perdix.cuh`)
//!
//! Kernels `#include "perdix.cuh"` (supplied in memory) and call `perdix_emit(p, kind, ptr, len)`
//! (waits for room), `perdix_try_emit(..)` (drops and counts when full) or `perdix_send(..)` (the
//! producer's [`Policy`](crate::Policy)) from any thread. Why it is built the way it is (the
//! figures: `docs/PERFORMANCE.md`; the decisions and what was tried: `docs/DESIGN-NOTES.md`,
//! "CUDA backend"):
//!
//! - a warp reserves positions with one atomic on a counter in device memory and writes each slot
//!   cooperatively, one 8-byte word per lane, one slot per store instruction (per-lane slot
//!   writes are several times slower), and only the cache lines the message uses;
//! - payload, then a system-scope release fence, then `seq = pos + 1`: over PCIe a 256-byte write
//!   is neither atomic nor ordered;
//! - the consumer pushes its head into device memory (`cuStreamWriteValue64`) every
//!   capacity / 8 messages and whenever it finds the ring empty, so no GPU thread reads host
//!   memory to wait (a ring where every warp polls the host head livelocks);
//! - `DropNewest` warps decide against that pushed head, so a busy consumer can have up to
//!   capacity / 8 - 1 slots free while they drop (see [`GpuProducerBuilder::policy`]);
//! - a waiting warp sleeps with `__nanosleep` backoff and polls its ring's closed flag, so
//!   dropping the consumer ends a blocked kernel;
//! - a message longer than a slot (up to [`layout::max_message`](crate::layout::max_message) of
//!   the ring) is one CAS reservation of its slots and the pad record before it, a payload
//!   written with 16-byte stores and one publication (`kernels/perdix_span.cuh`, which also has
//!   the whole-warp `perdix_warp_emit` and the zero-copy `perdix_warp_claim` /
//!   `perdix_warp_commit`); lanes sending one length reserve their messages as one run
//!   (`kernels/perdix_run.cuh`); lanes whose messages fit one slot keep the batched path.

/// The cudarc this crate is built with: an app that launches its own kernels uses these types
/// (`CudaContext`, `CudaStream`, `CudaSlice`, the launch builder), so they match perdix's.
pub use cudarc;

mod arg;
mod block;
mod builder;
pub(crate) mod clock;
mod context;
mod control;
mod counters;
mod devices;
mod driver;
mod faults;
mod group;
mod handle;
mod head;
mod kernel;
mod key;
mod loaded;
mod memory;
pub(crate) mod module;
mod nvrtc;
mod params;
mod presence;
#[cfg(feature = "testing")]
pub(crate) mod probe;
mod producer;
mod ptx_cache;
mod set;
#[cfg(any(feature = "bevy", test))]
mod split;
#[cfg(feature = "testing")]
pub(crate) mod stress;
mod teardown;
mod watch;
mod words;

pub use arg::{device_address, ArgBytes, KernelArg};
pub use builder::{GpuProducerBuilder, MIN_CAPACITY};
pub use context::GpuContext;
pub use counters::GpuCounters;
pub use devices::GpuDevices;
pub use group::ConsumerGroup;
pub use handle::ProducerHandle;
pub use kernel::{Dim3, GpuKernel};
pub use memory::{CudaManaged, CudaPinned, GpuMemory};
pub use module::{compile_ptx, PERDIX_CUH, PERDIX_LL_CUH, PERDIX_RUN_CUH, PERDIX_SPAN_CUH};
pub use presence::device_count;
pub use producer::GpuProducer;
pub use set::GpuProducerSet;
#[cfg(feature = "bevy")]
pub(crate) use split::ArgSplit;

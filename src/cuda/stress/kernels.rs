//! The stress kernels of `kernels/stress.cu` and their constructors.

use cudarc::driver::sys::CUdeviceptr;

use super::launch::StressLaunch;
use crate::cuda::kernel::GpuKernel;
use crate::cuda::module::STRESS_CU;
use crate::cuda::KernelArg;

/// Which stress kernel to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StressKernel {
    /// `perdix_stress`: each warp computes its messages' words and writes each slot with one
    /// store instruction (the fast path); multi-slot and mixed sizes go through the warp
    /// claim/commit, written in place.
    #[default]
    Warp,
    /// `perdix_stress_generic`: each thread fills a buffer and calls `perdix_send` (the general
    /// API kernel authors use): a stack buffer up to [`GENERIC_LOCAL_MAX`] bytes, a global
    /// scratch buffer above.
    Generic,
    /// `perdix_stress_warp_emit`: each thread fills its part of a global scratch buffer and the
    /// warp sends its lanes' messages in turn with `perdix_warp_send` (the whole-warp API).
    WarpEmit,
}

/// The largest message `perdix_stress_generic` sends from its stack buffer
/// (`STRESS_LOCAL_MAX` in `kernels/stress.cu`); bigger runs need a scratch buffer.
pub const GENERIC_LOCAL_MAX: usize = 1024;

/// Bytes of scratch a thread of `perdix_stress_generic` / `perdix_stress_warp_emit` uses for
/// messages of up to `max` bytes (`stress_buffer` in `kernels/stress.cu`: 16-byte aligned parts).
pub(super) fn scratch_stride(max: usize) -> usize {
    max.div_ceil(16) * 16
}

/// The warp-cooperative stress kernel (`perdix_stress` in `kernels/stress.cu`) with its
/// arguments in order: messages per producer thread (`u64::MAX`: until stopped), message sizes
/// (`min`, `max`: one size when equal, else mixed), kind, pacing interval in ns (0: none), and
/// the device addresses of the per-thread sent and attempted counters (0: none; the producer's
/// device counters stay exact). Grid and block are the caller's.
///
/// # Safety
///
/// For every launch made with the kernel: `sent` is 0 or the device address of one `u64` per
/// thread of that launch, and `attempts` is 0 or the address of one `u64`, each valid for
/// device writes until that launch has finished (the kernel writes `sent[id]` and adds to
/// `*attempts`; everything else goes through `perdix.cuh`).
pub(super) unsafe fn warp_kernel(
    per_producer: u64,
    (min, max): (u32, u32),
    kind: u32,
    interval_ns: u64,
    (sent, attempts): (CUdeviceptr, CUdeviceptr),
) -> GpuKernel {
    let kernel = GpuKernel::builtin(STRESS_CU, "stress.cu", "perdix_stress");
    let args = [
        KernelArg::U64(per_producer),
        KernelArg::U32(min),
        KernelArg::U32(max),
        KernelArg::U32(kind),
        KernelArg::U64(interval_ns),
        KernelArg::U64(sent),
        KernelArg::U64(attempts),
    ];
    // SAFETY: `with_args`'s contract: (1) these are `perdix_stress`'s parameters after `p`, in
    // order and type (`perdix_u64 per_producer, perdix_u32 size, size_max, kind, perdix_u64
    // interval_ns, perdix_u64* sent, perdix_u64* attempts`); (2) the two addresses are valid
    // for every launch made with it (this fn's contract); (3) the buffers' zeroing is ordered
    // before each launch by whoever launches it (`run.rs`), or there are none (0).
    unsafe { kernel.with_args(args) }
}

/// The generic (`Generic`) or whole-warp (`WarpEmit`) stress kernel: messages per producer,
/// sizes, kind, the per-thread sent counters and the scratch buffer (0: none, the generic
/// kernel's stack buffer).
///
/// # Safety
///
/// As [`warp_kernel`] for `sent`; `scratch` is 0 or the device address of
/// [`scratch_stride`]`(max)` bytes per thread of each launch made with the kernel, valid for
/// device reads and writes until that launch has finished.
pub(super) unsafe fn buffer_kernel(
    which: StressKernel,
    per_producer: u64,
    (min, max): (u32, u32),
    kind: u32,
    (sent, scratch): (CUdeviceptr, CUdeviceptr),
) -> GpuKernel {
    let entry = match which {
        StressKernel::WarpEmit => "perdix_stress_warp_emit",
        _ => "perdix_stress_generic",
    };
    let kernel = GpuKernel::builtin(STRESS_CU, "stress.cu", entry);
    let args = [
        KernelArg::U64(per_producer),
        KernelArg::U32(min),
        KernelArg::U32(max),
        KernelArg::U32(kind),
        KernelArg::U64(sent),
        KernelArg::U64(scratch),
    ];
    // SAFETY: `with_args`'s contract: (1) these are the parameters after `p` of both
    // `perdix_stress_generic` and `perdix_stress_warp_emit`, in order and type (`perdix_u64
    // per_producer, perdix_u32 size, size_max, kind, perdix_u64* sent, perdix_u64* scratch`);
    // (2) the addresses are valid for every launch made with it (this fn's contract); (3) the
    // kernels read only the scratch parts they wrote themselves, and `sent` is zeroed before
    // each launch by whoever launches it (`run.rs`), or there is none (0).
    unsafe { kernel.with_args(args) }
}

impl StressKernel {
    /// This stress kernel sending `per_producer` messages per thread (`u64::MAX`: until the
    /// producer is stopped or its consumer dropped) of `size` bytes and `kind`, unpaced and
    /// counted only by the producer's device counters. Grid and block are the caller's, and
    /// any will do ([`StressLaunch`]). With no scratch buffer, `WarpEmit` sends nothing and
    /// `Generic` nothing above [`GENERIC_LOCAL_MAX`] bytes: those runs go through
    /// [`run`](super::run).
    ///
    /// # Examples
    ///
    /// ```
    /// use perdix_transport::testing::gpu::StressKernel;
    ///
    /// let kernel = StressKernel::Generic.kernel(100, 32, 1).grid(4).block(64);
    /// assert_eq!(kernel.entry(), "perdix_stress_generic");
    /// assert_eq!(kernel.threads(), 256);
    /// ```
    pub fn kernel(self, per_producer: u64, size: u32, kind: u32) -> StressLaunch {
        let kernel = match self {
            // SAFETY: null counter addresses: the kernel skips those writes (`if (sent)`,
            // `if (attempts)` in stress.cu), so the contract holds for every launch.
            Self::Warp => unsafe { warp_kernel(per_producer, (size, size), kind, 0, (0, 0)) },
            // SAFETY: as above; no scratch (`stress_buffer` falls back to the stack buffer,
            // and both kernels send nothing that needs scratch when it is 0).
            Self::Generic | Self::WarpEmit => unsafe {
                buffer_kernel(self, per_producer, (size, size), kind, (0, 0))
            },
        };
        StressLaunch::new(kernel)
    }
}

/// The warp stress kernel free-running: every thread sends `size`-byte messages of `kind` until
/// the producer is stopped (or its consumer dropped), unpaced, counted only by the device
/// counters. Grid and block are the caller's.
///
/// # Examples
///
/// ```
/// use perdix_transport::testing::gpu::free_running_kernel;
///
/// let kernel = free_running_kernel(64, 3).grid(132).block(256);
/// assert_eq!(kernel.entry(), "perdix_stress");
/// assert_eq!(kernel.args().len(), 7);
/// ```
///
/// Its argument list is the crate's: safe code cannot change it (argument 5 is the kernel's
/// `perdix_u64* sent`):
///
/// ```compile_fail,E0599
/// use perdix_transport::testing::gpu::free_running_kernel;
///
/// let mut kernel = free_running_kernel(64, 3);
/// kernel.set_arg(5, 0x7000_0000u64);
/// ```
///
/// nor through the [`GpuKernel`] it lends (whose argument setters are `unsafe`):
///
/// ```compile_fail,E0133
/// use perdix_transport::testing::gpu::free_running_kernel;
///
/// let mut kernel = free_running_kernel(64, 3).as_kernel().clone();
/// kernel.set_arg(5, 0x7000_0000u64);
/// ```
pub fn free_running_kernel(size: u32, kind: u32) -> StressLaunch {
    StressKernel::Warp.kernel(u64::MAX, size, kind)
}

/// The warp stress kernel paced: every thread sends one `size`-byte message of `kind` per
/// `interval_ns` (by `%globaltimer`) until the producer is stopped, counted only by the device
/// counters: a light load at a chosen rate (`threads * 1e9 / interval_ns` messages a second).
/// Grid and block are the caller's.
///
/// # Examples
///
/// ```
/// use perdix_transport::testing::gpu::paced_kernel;
///
/// let kernel = paced_kernel(64, 3, 1_000_000).grid(2).block(32);
/// assert_eq!(kernel.entry(), "perdix_stress");
/// ```
pub fn paced_kernel(size: u32, kind: u32, interval_ns: u64) -> StressLaunch {
    // SAFETY: null counter addresses: the kernel skips those writes (`if (sent)`,
    // `if (attempts)` in stress.cu), so the contract holds for every launch.
    let kernel = unsafe { warp_kernel(u64::MAX, (size, size), kind, interval_ns, (0, 0)) };
    StressLaunch::new(kernel)
}

//! The stress kernels of `kernels/stress.cu` and their constructors.

use cudarc::driver::sys::CUdeviceptr;

use crate::cuda::kernel::GpuKernel;
use crate::cuda::module::STRESS_CU;

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
/// `sent` is 0 or the device address of one `u64` per thread of the launch, and `attempts` is
/// 0 or the address of one `u64`, each valid for device writes until the kernel finishes (the
/// kernel writes `sent[id]` and adds to `*attempts`; everything else goes through
/// `perdix.cuh`).
pub(super) unsafe fn warp_kernel(
    per_producer: u64,
    (min, max): (u32, u32),
    kind: u32,
    interval_ns: u64,
    (sent, attempts): (CUdeviceptr, CUdeviceptr),
) -> GpuKernel {
    GpuKernel::builtin(STRESS_CU, "stress.cu", "perdix_stress")
        .arg(per_producer)
        .arg(min)
        .arg(max)
        .arg(kind)
        .arg(interval_ns)
        .arg(sent)
        .arg(attempts)
}

/// The generic (`Generic`) or whole-warp (`WarpEmit`) stress kernel: messages per producer,
/// sizes, kind, the per-thread sent counters and the scratch buffer (0: none, the generic
/// kernel's stack buffer).
///
/// # Safety
///
/// As [`warp_kernel`] for `sent`; `scratch` is 0 or the device address of
/// [`scratch_stride`]`(max)` bytes per thread of the launch, valid for device reads and writes
/// until the kernel finishes.
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
    GpuKernel::builtin(STRESS_CU, "stress.cu", entry)
        .arg(per_producer)
        .arg(min)
        .arg(max)
        .arg(kind)
        .arg(sent)
        .arg(scratch)
}

impl StressKernel {
    /// This stress kernel sending `per_producer` messages per thread (`u64::MAX`: until the
    /// producer is stopped or its consumer dropped) of `size` bytes and `kind`, unpaced and
    /// counted only by the producer's device counters. Grid and block are the caller's. With no
    /// scratch buffer, `WarpEmit` sends nothing and `Generic` nothing above
    /// [`GENERIC_LOCAL_MAX`] bytes: those runs go through [`run`](super::run).
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
    pub fn kernel(self, per_producer: u64, size: u32, kind: u32) -> GpuKernel {
        match self {
            // SAFETY: null counter addresses: the kernel skips those writes (`if (sent)`,
            // `if (attempts)` in stress.cu) and writes only through `perdix.cuh`.
            Self::Warp => unsafe { warp_kernel(per_producer, (size, size), kind, 0, (0, 0)) },
            // SAFETY: as above; no scratch (the kernels check for 0).
            Self::Generic | Self::WarpEmit => unsafe {
                buffer_kernel(self, per_producer, (size, size), kind, (0, 0))
            },
        }
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
pub fn free_running_kernel(size: u32, kind: u32) -> GpuKernel {
    StressKernel::Warp.kernel(u64::MAX, size, kind)
}

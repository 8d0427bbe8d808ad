//! The stress kernels of `kernels/stress.cu` and their constructors.

use cudarc::driver::sys::CUdeviceptr;

use crate::cuda::kernel::GpuKernel;
use crate::cuda::module::STRESS_CU;

/// Which stress kernel to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StressKernel {
    /// `perdix_stress`: each warp computes its messages' words and writes each slot with one
    /// store instruction (the fast path).
    #[default]
    Warp,
    /// `perdix_stress_generic`: each thread fills a local buffer and calls `perdix_send` (the
    /// general API kernel authors use).
    Generic,
}

/// The warp-cooperative stress kernel (`perdix_stress` in `kernels/stress.cu`) with its
/// arguments in order: messages per producer thread (`u64::MAX`: until stopped), message size,
/// kind, pacing interval in ns (0: none), and the device addresses of the per-thread sent and
/// attempted counters (0: none; the producer's device counters stay exact). Grid and block are
/// the caller's.
///
/// # Safety
///
/// `sent` is 0 or the device address of one `u64` per thread of the launch, and `attempts` is
/// 0 or the address of one `u64`, each valid for device writes until the kernel finishes (the
/// kernel writes `sent[id]` and adds to `*attempts`; everything else goes through
/// `perdix.cuh`).
pub(super) unsafe fn warp_kernel(
    per_producer: u64,
    size: u32,
    kind: u32,
    interval_ns: u64,
    (sent, attempts): (CUdeviceptr, CUdeviceptr),
) -> GpuKernel {
    GpuKernel::builtin(STRESS_CU, "stress.cu", "perdix_stress")
        .arg(per_producer)
        .arg(size)
        .arg(kind)
        .arg(interval_ns)
        .arg(sent)
        .arg(attempts)
}

/// The generic stress kernel (`perdix_stress_generic`): messages per producer, size, kind and
/// the per-thread sent counters.
///
/// # Safety
///
/// As [`warp_kernel`] for `sent`.
pub(super) unsafe fn generic_kernel(
    per_producer: u64,
    size: u32,
    kind: u32,
    sent: CUdeviceptr,
) -> GpuKernel {
    GpuKernel::builtin(STRESS_CU, "stress.cu", "perdix_stress_generic")
        .arg(per_producer)
        .arg(size)
        .arg(kind)
        .arg(sent)
}

impl StressKernel {
    /// This stress kernel sending `per_producer` messages per thread (`u64::MAX`: until the
    /// producer is stopped or its consumer dropped) of `size` bytes and `kind`, unpaced and
    /// counted only by the producer's device counters. Grid and block are the caller's.
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
            Self::Warp => unsafe { warp_kernel(per_producer, size, kind, 0, (0, 0)) },
            // SAFETY: as above.
            Self::Generic => unsafe { generic_kernel(per_producer, size, kind, 0) },
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
/// assert_eq!(kernel.args().len(), 6);
/// ```
pub fn free_running_kernel(size: u32, kind: u32) -> GpuKernel {
    StressKernel::Warp.kernel(u64::MAX, size, kind)
}

//! [`StressLaunch`]: a stress kernel of the crate's own, with the arguments the crate chose,
//! safe to launch on any producer with any grid and block.

use crate::cuda::{Dim3, GpuKernel, GpuProducer, GpuProducerSet, KernelArg};
use crate::Error;

/// A stress kernel of `kernels/stress.cu`, ready to launch: made by
/// [`StressKernel::kernel`](super::StressKernel::kernel) or
/// [`free_running_kernel`](super::free_running_kernel).
///
/// Unlike a [`GpuKernel`], its argument list is closed: the crate chose every argument (the
/// per-thread counter and scratch addresses are 0, which the kernels skip), so safe code can
/// set its grid and block and launch it, but not change what it is given. Every launch shape is
/// fine: the kernels write only through `perdix.cuh` when those addresses are 0, whatever the
/// grid and block.
///
/// # Examples
///
/// ```no_run
/// use perdix_transport::cuda::{GpuContext, GpuProducer};
/// use perdix_transport::testing::gpu::free_running_kernel;
/// use perdix_transport::Error;
///
/// let gpu = match GpuContext::new(0) {
///     Ok(gpu) => gpu,
///     Err(Error::NoDevice(why)) => { eprintln!("skipped: {why}"); return Ok(()); }
///     Err(err) => return Err(err),
/// };
/// let (mut producer, consumer) = GpuProducer::new(&gpu, 1024)?;
/// let kernel = free_running_kernel(64, 0).grid(gpu.multiprocessors()).block(256);
/// producer.prepare(kernel.as_kernel())?; // compile now
/// kernel.launch(&mut producer)?; // safe: the crate's own kernel and arguments
/// producer.request_stop()?;
/// drop(consumer); // a kernel blocked on the full ring returns
/// producer.finish()?;
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct StressLaunch {
    /// Built by `kernels.rs` with null counter and scratch addresses: its launches keep
    /// `GpuKernel::from_source`'s and `GpuKernel::arg`'s contracts under any launch shape.
    kernel: GpuKernel,
}

impl StressLaunch {
    /// `kernel`, which must be one of `kernels/stress.cu`'s entry points with its arguments in
    /// order and its two addresses (the last two arguments) 0, so that its launches keep
    /// `GpuProducer::launch`'s contract for any grid and block, on any producer, at any time.
    pub(super) fn new(kernel: GpuKernel) -> Self {
        debug_assert!(
            kernel
                .args()
                .iter()
                .rev()
                .take(2)
                .all(|arg| *arg == KernelArg::U64(0)),
            "a stress launch carries no address"
        );
        Self { kernel }
    }

    /// Grid dimensions in blocks (block `b` writes ring `b % rings`).
    pub fn grid(self, grid: impl Into<Dim3>) -> Self {
        Self {
            kernel: self.kernel.grid(grid),
        }
    }

    /// Block dimensions in threads; every thread is one producer stream.
    pub fn block(self, block: impl Into<Dim3>) -> Self {
        Self {
            kernel: self.kernel.block(block),
        }
    }

    /// The entry point (`perdix_stress`, `perdix_stress_generic`, `perdix_stress_warp_emit`).
    #[must_use]
    pub fn entry(&self) -> &str {
        self.kernel.entry()
    }

    /// Threads per launch (grid × block): the producer streams.
    #[must_use]
    pub fn threads(&self) -> u64 {
        self.kernel.threads()
    }

    /// The arguments after the producer pointer, as the crate set them.
    #[must_use]
    pub fn args(&self) -> &[KernelArg] {
        self.kernel.args()
    }

    /// The kernel, read-only: for [`GpuProducer::prepare`] or [`GpuKernel::compile`]. A clone
    /// of it is an ordinary [`GpuKernel`], whose argument setters and launch are `unsafe`.
    pub fn as_kernel(&self) -> &GpuKernel {
        &self.kernel
    }

    /// Queues the kernel on `producer`'s stream; returns without waiting.
    ///
    /// # Errors
    ///
    /// As [`GpuProducer::launch`].
    pub fn launch(&self, producer: &mut GpuProducer) -> Result<(), Error> {
        // SAFETY: `GpuProducer::launch`'s contract: (1) `perdix_stress*` take the producer
        // pointer first and touch the ring only through `perdix.cuh`; with the counter and
        // scratch addresses 0 (`new`'s invariant) they write nothing else, under any grid and
        // block (every other write is `if (sent)`, `if (attempts)`, or needs scratch), and the
        // arguments are their parameters in order and type (`kernels.rs`); (2) so there is no
        // address of the app's to keep alive, and (3) no app write to order.
        unsafe { producer.launch(&self.kernel) }
    }

    /// Queues the kernel on every device of `set`, as [`launch`](Self::launch) does on one.
    ///
    /// # Errors
    ///
    /// As [`GpuProducerSet::launch`].
    pub fn launch_set(&self, set: &mut GpuProducerSet) -> Result<(), Error> {
        // SAFETY: `GpuProducerSet::launch`'s contract is `GpuProducer::launch`'s on every
        // device, which holds for this kernel on any producer (see `launch`).
        unsafe { set.launch(&self.kernel) }
    }
}

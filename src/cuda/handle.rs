//! Bring your own launch: a producer's [`ProducerHandle`] is an argument for cudarc's own
//! launch builder, and [`GpuProducer::track`] tells the producer about kernels it did not launch.

use cudarc::driver::{sys, CudaStream, DeviceRepr};

use super::producer::GpuProducer;
use crate::Error;

/// A producer's device handle: the `const perdix_producer*` that `perdix.cuh`'s emit functions
/// take, as a kernel argument for cudarc's launch builder
/// (`stream.launch_builder(&f).arg(&handle)`).
///
/// It is the control block's device address and nothing more: copying it is free, and it holds
/// nothing alive. The contract of a launch with it (cudarc's launch is `unsafe`):
///
/// 1. the kernel takes it as `const perdix_producer*` and passes it only to `perdix.cuh`, and
///    keeps to [`GpuKernel::from_source`](super::GpuKernel::from_source)'s contract otherwise;
/// 2. the producer outlives every kernel launched with its handle: after each launch, call
///    [`GpuProducer::track`] with the stream it went to, before the producer is finished or
///    dropped. Then [`finish`](GpuProducer::finish) waits for those kernels, and dropping the
///    producer frees its memory only once they are known to have finished (else leaks it).
///
/// # Examples
///
/// ```no_run
/// use perdix_transport::cuda::cudarc::driver::{CudaContext, LaunchConfig, PushKernelArg};
/// use perdix_transport::cuda::cudarc::nvrtc::Ptx;
/// use perdix_transport::cuda::{compile_ptx, GpuContext, GpuProducer};
/// use perdix_transport::Error;
///
/// const SRC: &str = r#"
/// #include "perdix.cuh"
/// extern "C" __global__ void tag(const perdix_producer* p, const unsigned* ids, unsigned n) {
///     unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
///     if (i < n) perdix_emit(p, 1, &ids[i], sizeof ids[i]);
/// }
/// "#;
///
/// let ctx = match CudaContext::new(0) { // the app's context and stream
///     Ok(ctx) => ctx,
///     Err(err) => { eprintln!("skipped: {err}"); return Ok(()); }
/// };
/// let stream = ctx.default_stream();
/// let gpu = GpuContext::from_cudarc(ctx.clone())?;
/// let (producer, mut consumers) = GpuProducer::builder(&gpu).capacity(4096).build()?;
///
/// let ptx = compile_ptx(SRC, "tag.cu", &gpu.arch())?;
/// let module = ctx.load_module(Ptx::from_src(ptx)).map_err(Error::Driver)?;
/// let tag = module.load_function("tag").map_err(Error::Driver)?;
/// let ids = stream.clone_htod(&(0..1000u32).collect::<Vec<_>>()).map_err(Error::Driver)?;
/// let handle = producer.handle();
/// let n = 1000u32;
/// let mut launch = stream.launch_builder(&tag);
/// launch.arg(&handle).arg(&ids).arg(&n);
/// // SAFETY: `tag` takes the producer pointer, a `const unsigned*` to `ids` (1000 values, alive
/// // until the stream is synchronized below) and an `unsigned`; it emits only through
/// // `perdix_emit` and writes nothing else; `track` below keeps the producer alive for it.
/// unsafe { launch.launch(LaunchConfig::for_num_elems(n)) }.map_err(Error::Driver)?;
/// producer.track(&stream)?;
///
/// let counters = producer.finish()?; // waits for `tag` too
/// let mut seen = 0;
/// while consumers[0].drain(usize::MAX, |_| seen += 1) > 0 {}
/// assert_eq!((seen, counters.emitted), (1000, 1000));
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct ProducerHandle(u64);

// SAFETY: `ProducerHandle` is `#[repr(transparent)]` over a `u64`, the device address the
// kernel's `const perdix_producer*` parameter (8 bytes, 8-aligned) receives; every bit pattern
// is a valid value, and what the kernel does with the address is the launch's contract (above).
unsafe impl DeviceRepr for ProducerHandle {}

impl ProducerHandle {
    /// The device address (the kernel's `const perdix_producer*`), as a number.
    ///
    /// Safe to read: it is only a number, and holds nothing alive. Supplying it to a kernel
    /// takes an `unsafe` call, cudarc's launch or [`GpuKernel::arg`](super::GpuKernel::arg)
    /// (and then [`GpuProducer::launch`]), under the contract above. Never pass it to a
    /// [`GpuKernel`](super::GpuKernel) as an argument after the first: a kernel given the
    /// control block's address as a plain pointer could write the ring's head, tail or
    /// counters, which `perdix.cuh` alone may touch (`arg`'s contract, item 2).
    #[must_use]
    pub fn address(self) -> u64 {
        self.0
    }
}

impl GpuProducer {
    /// The handle an app passes to its own kernels (see [`ProducerHandle`] for the contract).
    #[must_use]
    pub fn handle(&self) -> ProducerHandle {
        ProducerHandle(self.block.words.dptr())
    }

    /// Tells the producer that kernels given its [`handle`](Self::handle) were queued on
    /// `stream` (the app's): the producer's own stream waits for what `stream` holds now (an
    /// event recorded there), so [`is_idle`](Self::is_idle), [`wait`](Self::wait),
    /// [`finish`](Self::finish) and teardown count those kernels as the producer's own.
    ///
    /// Call it after each launch (or after the last of a batch on one stream). Later
    /// [`launch`](Self::launch)es of this producer run after those kernels.
    ///
    /// # Errors
    ///
    /// [`Error::Driver`] / [`Error::KernelFault`] when the event cannot be recorded or waited on.
    pub fn track(&self, stream: &CudaStream) -> Result<(), Error> {
        let tracked = self.gpu.bind().and_then(|()| {
            let event = stream
                .record_event(Some(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING))
                .map_err(super::driver::classify)?;
            // The wait is queued on the producer's stream; destroying the event afterwards
            // (its `Drop`) leaves the queued wait in place.
            self.stream.wait(&event).map_err(super::driver::classify)
        });
        self.observe(tracked)
    }
}

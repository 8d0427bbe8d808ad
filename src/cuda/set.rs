//! `GpuProducerSet`: one [`GpuProducer`] per device of a [`GpuDevices`] choice, launched
//! together.

use std::time::{Duration, Instant};

use super::{GpuContext, GpuCounters, GpuDevices, GpuKernel, GpuProducer, GpuProducerBuilder};
use crate::{Consumer, Error};

/// GPU producers on several devices: each device (each entry of the [`GpuDevices`] list) gets
/// its own rings in portable pinned (or managed) host memory, its own stream, control block and
/// exact counters. Every ring has an ordinary [`Consumer`], which reports its device
/// ([`Consumer::device`]).
///
/// # Examples
///
/// ```no_run
/// use perdix_transport::cuda::{GpuDevices, GpuKernel, GpuProducerSet};
///
/// const SRC: &str = r#"
/// extern "C" __global__ void count(const perdix_producer* p, unsigned n) {
///     unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
///     if (i < n) perdix_emit(p, 1, &i, sizeof i);
/// }"#;
/// let (mut set, rings) = GpuProducerSet::build(&GpuDevices::All, |b| b.capacity(4096))?;
/// // SAFETY: `from_source`'s contract: `count` takes `const perdix_producer*` first, touches
/// // the rings only through `perdix_emit`, writes nothing else, and bounds its work by `n`.
/// let kernel = unsafe { GpuKernel::from_source(SRC, "count") }.grid(4).block(256);
/// // SAFETY: `arg`'s contract: `n` is `count`'s `unsigned`, not an address.
/// let kernel = unsafe { kernel.arg(1000u32) };
/// // SAFETY: `launch`'s contract on every device: the kernel as above, no address among its
/// // arguments.
/// unsafe { set.launch(&kernel) }?;
/// let per_device = set.finish()?;
/// for (consumers, counters) in rings.into_iter().zip(&per_device) {
///     let mut seen = 0;
///     for mut consumer in consumers {
///         while consumer.drain(usize::MAX, |_| seen += 1) > 0 {}
///     }
///     assert_eq!(seen, counters.emitted);
/// }
/// # Ok::<(), perdix_transport::Error>(())
/// ```
#[derive(Debug)]
pub struct GpuProducerSet {
    producers: Vec<GpuProducer>,
}

impl GpuProducerSet {
    /// Opens `devices` and builds a producer on each, configured by `configure` (capacity,
    /// rings, memory, policy, timestamps: the same for every device). Returns the set and, per
    /// device in order, its consumers.
    ///
    /// # Errors
    ///
    /// As [`GpuDevices::open`] and [`GpuProducerBuilder::build`]; nothing is left running.
    pub fn build<F>(devices: &GpuDevices, configure: F) -> Result<(Self, Vec<Vec<Consumer>>), Error>
    where
        F: Fn(GpuProducerBuilder) -> GpuProducerBuilder,
    {
        Self::build_on(&devices.open()?, configure)
    }

    /// [`build`](Self::build) on devices already opened.
    ///
    /// # Errors
    ///
    /// As [`GpuProducerBuilder::build`]; [`Error::InvalidConfig`] for an empty list.
    pub fn build_on<F>(
        gpus: &[GpuContext],
        configure: F,
    ) -> Result<(Self, Vec<Vec<Consumer>>), Error>
    where
        F: Fn(GpuProducerBuilder) -> GpuProducerBuilder,
    {
        if gpus.is_empty() {
            return Err(Error::InvalidConfig("an empty list of CUDA devices".into()));
        }
        let mut producers = Vec::with_capacity(gpus.len());
        let mut consumers = Vec::with_capacity(gpus.len());
        for gpu in gpus {
            let (producer, rings) = configure(GpuProducer::builder(gpu)).build()?;
            producers.push(producer);
            consumers.push(rings);
        }
        Ok((Self { producers }, consumers))
    }

    /// Compiles and loads `kernel` for every device now.
    ///
    /// # Errors
    ///
    /// As [`GpuProducer::prepare`].
    pub fn prepare(&self, kernel: &GpuKernel) -> Result<(), Error> {
        self.producers.iter().try_for_each(|p| p.prepare(kernel))
    }

    /// Launches `kernel` on every device (each on its own stream, same grid and arguments);
    /// returns without waiting.
    ///
    /// # Safety
    ///
    /// [`GpuProducer::launch`]'s contract, on every device of the set: (1) `kernel`'s source
    /// keeps [`GpuKernel::from_source`]'s contract and its arguments have its parameters' types;
    /// (2) every device address among its arguments is valid for what each device's kernel
    /// does with it, on every device of the set at once (the same address goes to each: memory
    /// every device reaches, such as portable pinned or managed memory, and writes that do not
    /// race between devices), and stays so until the kernels are known to have finished
    /// ([`finish`](Self::finish), [`wait`](Self::wait) or [`is_idle`](Self::is_idle)
    /// `Ok(true)`); (3) the app's writes to those buffers are ordered before this call.
    ///
    /// Safe code cannot launch a user kernel on a set:
    ///
    /// ```compile_fail,E0133
    /// # use perdix_transport::cuda::{GpuKernel, GpuProducerSet};
    /// fn go(set: &mut GpuProducerSet, kernel: &GpuKernel) {
    ///     let _ = set.launch(kernel);
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`GpuProducer::launch`], from the first device that fails (earlier devices keep
    /// running).
    pub unsafe fn launch(&mut self, kernel: &GpuKernel) -> Result<(), Error> {
        self.producers.iter_mut().try_for_each(|p| {
            // SAFETY: this fn's contract is `GpuProducer::launch`'s for every producer of the
            // set: the caller vouched for the kernel and for its addresses on every device.
            unsafe { p.launch(kernel) }
        })
    }

    /// Whether every device's kernels have finished.
    ///
    /// # Errors
    ///
    /// As [`GpuProducer::is_idle`].
    pub fn is_idle(&self) -> Result<bool, Error> {
        for producer in &self.producers {
            if !producer.is_idle()? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Waits until every device's kernels have finished, or `timeout` passes; returns whether
    /// they finished.
    ///
    /// # Errors
    ///
    /// As [`GpuProducer::wait`].
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool, Error> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        for producer in &self.producers {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if !producer.wait(left)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Asks every device's kernels to stop.
    ///
    /// # Errors
    ///
    /// As [`GpuProducer::request_stop`].
    pub fn request_stop(&self) -> Result<(), Error> {
        self.producers
            .iter()
            .try_for_each(GpuProducer::request_stop)
    }

    /// The exact device counters, one entry per device in order.
    ///
    /// # Errors
    ///
    /// As [`GpuProducer::counters`].
    pub fn counters(&self) -> Result<Vec<GpuCounters>, Error> {
        self.producers.iter().map(GpuProducer::counters).collect()
    }

    /// The device counters summed over every device.
    ///
    /// # Errors
    ///
    /// As [`GpuProducer::counters`].
    pub fn total(&self) -> Result<GpuCounters, Error> {
        Ok(GpuCounters::total(&self.counters()?))
    }

    /// Waits for every device, closes every ring and returns each device's final counters.
    ///
    /// # Errors
    ///
    /// As [`GpuProducer::finish`], from the first device that fails (every device is still
    /// finished).
    pub fn finish(self) -> Result<Vec<GpuCounters>, Error> {
        let results: Vec<_> = self
            .producers
            .into_iter()
            .map(GpuProducer::finish)
            .collect();
        results.into_iter().collect()
    }

    /// The producers, one per device entry.
    #[must_use]
    pub fn producers(&self) -> &[GpuProducer] {
        &self.producers
    }

    /// Mutable access to the producers (e.g. to calibrate each device's clock).
    pub fn producers_mut(&mut self) -> &mut [GpuProducer] {
        &mut self.producers
    }

    /// Device entries (producers) in the set.
    #[must_use]
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether the set is empty (never: building needs a device).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

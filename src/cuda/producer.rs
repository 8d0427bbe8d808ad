//! `GpuProducer`: rings in CUDA memory written by kernels and read by ordinary [`Consumer`]s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cudarc::driver::sys::CUdeviceptr;
use cudarc::driver::{CudaFunction, CudaStream, LaunchConfig, PushKernelArg};

use super::clock::ClockMapping;
use super::kernel::{GpuKernel, KernelArg};
use super::memory::{CudaManaged, CudaPinned, DeviceMemory, GpuMemory, Window};
use super::{control, driver, GpuContext};
use crate::ring::{HeadSink, Ring};
use crate::sync::Arc as RingArc;
use crate::{Backend, Consumer, Error, Policy, RingStats};

/// The smallest ring a GPU producer accepts: one warp's batch of positions.
pub const MIN_CAPACITY: usize = 32;

/// Exact device-side counters of a producer (summed over its rings) or of one ring.
///
/// Kept by the kernels with atomics in device memory and read with a copy that does not wait
/// for them, so they can be read while kernels run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GpuCounters {
    /// Messages published into the ring(s).
    pub emitted: u64,
    /// Messages dropped because the ring was full (`DropNewest`, `perdix_try_emit`).
    pub dropped: u64,
    /// Times a warp found its ring full and waited (`Block`), once per wait.
    pub stalls: u64,
}

impl GpuCounters {
    /// Messages the kernels tried to send: `emitted + dropped` (exact).
    #[must_use]
    pub fn attempted(&self) -> u64 {
        self.emitted + self.dropped
    }

    /// The sum of several producers' (or devices') counters.
    #[must_use]
    pub fn total(all: &[Self]) -> Self {
        let mut total = Self::default();
        for counters in all {
            total.add(counters);
        }
        total
    }

    pub(crate) fn add(&mut self, other: &Self) {
        self.emitted += other.emitted;
        self.dropped += other.dropped;
        self.stalls += other.stalls;
    }
}

/// The control block in device memory and the streams that write into it.
struct ControlBlock {
    gpu: GpuContext,
    dptr: CUdeviceptr,
    bytes: usize,
    /// Counters, stop flag, clock mapping, closing.
    side: Arc<CudaStream>,
    /// Consumers' head pushes (ring `i` uses `push[i % len]`).
    push: Vec<Arc<CudaStream>>,
}

impl core::fmt::Debug for ControlBlock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ControlBlock")
            .field("bytes", &self.bytes)
            .field("push_streams", &self.push.len())
            .finish_non_exhaustive()
    }
}

impl ControlBlock {
    /// Writes one 64-bit word at `offset` from the side stream (does not wait for kernels).
    fn write_word(&self, offset: usize, value: u64, stream: &CudaStream) -> Result<(), Error> {
        self.gpu.bind()?;
        // SAFETY: the context is current; `offset + 8 <= bytes` (every caller passes a control
        // offset of a ring this block holds), 8-aligned; the block outlives the write because
        // `Drop` synchronizes every stream before freeing it.
        unsafe { driver::stream_write_u64(stream.cu_stream(), self.dptr + offset as u64, value) }
            .map_err(driver::classify)
    }

    /// Reads `words` 64-bit words at `offset` (a copy on the side stream, then its sync).
    fn read_words(&self, offset: usize, out: &mut [u64]) -> Result<(), Error> {
        self.gpu.bind()?;
        let bytes = core::mem::size_of_val(out);
        debug_assert!(offset + bytes <= self.bytes);
        // SAFETY: the context is current; `out` is `bytes` of host memory that outlives the copy
        // (we synchronize the stream below before returning); the range is inside the block.
        unsafe {
            driver::memcpy_dtoh_async(
                out.as_mut_ptr().cast(),
                self.dptr + offset as u64,
                bytes,
                self.side.cu_stream(),
            )
        }
        .map_err(driver::classify)?;
        // SAFETY: the side stream is live.
        unsafe { driver::stream_synchronize(self.side.cu_stream()) }.map_err(driver::classify)
    }

    fn counters(&self, ring: usize) -> Result<GpuCounters, Error> {
        let mut words = [0u64; 3];
        self.read_words(
            control::ring_offset(ring) + control::RING_EMITTED,
            &mut words,
        )?;
        Ok(GpuCounters {
            emitted: words[0],
            dropped: words[1],
            stalls: words[2],
        })
    }
}

impl Drop for ControlBlock {
    fn drop(&mut self) {
        if self.gpu.bind().is_err() {
            return;
        }
        for stream in core::iter::once(&self.side).chain(self.push.iter()) {
            // SAFETY: the stream is live; waiting for its pending writes into the block.
            let _ = unsafe { driver::stream_synchronize(stream.cu_stream()) };
        }
        // SAFETY: `dptr` came from `mem_alloc`, is freed only here, and every kernel using it has
        // finished (the producer waits for its stream before dropping its last reference) and
        // every stream writing it has been synchronized above.
        if let Err(err) = unsafe { driver::mem_free(self.dptr) } {
            tracing::warn!(%err, "perdix: freeing a producer's control block failed");
        }
    }
}

/// Installs clock mappings into a producer's control block (from any thread).
#[derive(Debug, Clone)]
pub(crate) struct ClockSetter {
    block: Arc<ControlBlock>,
}

impl ClockSetter {
    /// Writes the mapping's three words (`g0`, `slope`, then `offset`) and waits for them. A
    /// stamp taken in the microseconds between the writes mixes old and new words: an error of
    /// the drift since the previous mapping (~0.4 µs after 20 ms at 20 ppm), for that stamp.
    pub(crate) fn set(&self, mapping: &ClockMapping) -> Result<(), Error> {
        let block = &self.block;
        let side = &block.side;
        block.write_word(control::HDR_CLOCK_G0, mapping.g0, side)?;
        block.write_word(control::HDR_CLOCK_SLOPE, mapping.slope as u64, side)?;
        block.write_word(control::HDR_CLOCK_OFFSET, mapping.offset as u64, side)?;
        block.gpu.bind()?;
        // SAFETY: the side stream is live.
        unsafe { driver::stream_synchronize(side.cu_stream()) }.map_err(driver::classify)
    }
}

/// The consumer's head, pushed into the control block with `cuStreamWriteValue64`.
#[derive(Debug)]
struct DeviceHead {
    block: Arc<ControlBlock>,
    ring: usize,
}

impl DeviceHead {
    fn write(&self, offset: usize, value: u64) -> Result<(), Error> {
        let stream = &self.block.push[self.ring % self.block.push.len()];
        let offset = control::ring_offset(self.ring) + offset;
        self.block.write_word(offset, value, stream)
    }
}

impl HeadSink for DeviceHead {
    fn push(&self, head: u64) -> Result<(), Error> {
        self.write(control::RING_HEAD, head)
    }

    fn close(&self) -> Result<(), Error> {
        self.write(control::RING_CLOSED, 1)
    }
}

/// Options for a [`GpuProducer`]; from [`GpuProducer::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct GpuProducerBuilder {
    gpu: GpuContext,
    capacity: usize,
    rings: usize,
    memory: GpuMemory,
    policy: Policy,
    timestamps: bool,
}

impl GpuProducerBuilder {
    /// Slots per ring, a power of two from [`MIN_CAPACITY`] (default 65,536: 16 MiB per ring).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Number of rings (default 1). Block `b` of a launch writes ring `b % rings`; give each
    /// consumer thread its own ring(s), or one ring per block ("per-block lanes") for small
    /// messages.
    pub fn rings(mut self, rings: usize) -> Self {
        self.rings = rings;
        self
    }

    /// Which memory the rings live in (default [`GpuMemory::Pinned`]).
    pub fn memory(mut self, memory: GpuMemory) -> Self {
        self.memory = memory;
        self
    }

    /// What `perdix_send` (and the stress kernel) does on a full ring (default
    /// [`Policy::Block`]); `perdix_emit` always blocks and `perdix_try_emit` always drops.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Stamp every message with the GPU clock mapped onto [`clock::now_ns`](crate::clock::now_ns)
    /// (default off). Call [`GpuProducer::calibrate_clock`] before relying on the stamps.
    pub fn timestamps(mut self, on: bool) -> Self {
        self.timestamps = on;
        self
    }

    /// Allocates the rings and the control block; returns the producer and one consumer per
    /// ring.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCapacity`] for a bad capacity (below [`MIN_CAPACITY`]) or zero rings; [`Error::Alloc`] when the
    /// memory cannot be had; [`Error::Driver`] for driver failures.
    pub fn build(self) -> Result<(GpuProducer, Vec<Consumer>), Error> {
        let ring_bytes = Ring::bytes_for(self.capacity)?;
        // A warp reserves up to 32 positions at once and waits until all of them fit: a ring
        // smaller than a warp's batch would wait forever.
        if self.capacity < MIN_CAPACITY || self.rings == 0 || self.rings > u32::MAX as usize {
            return Err(Error::InvalidCapacity(self.capacity));
        }
        let total = ring_bytes
            .checked_mul(self.rings)
            .ok_or(Error::InvalidCapacity(self.capacity))?;
        let gpu = self.gpu.clone();
        let memory: Arc<dyn DeviceMemory> = match self.memory {
            GpuMemory::Pinned => Arc::new(CudaPinned::alloc(&gpu, total)?),
            GpuMemory::Managed => Arc::new(CudaManaged::alloc(&gpu, total)?),
        };
        let stream = gpu.new_stream()?;
        let side = gpu.new_stream()?;
        let push = (0..self.rings.min(8))
            .map(|_| gpu.new_stream())
            .collect::<Result<Vec<_>, _>>()?;
        let bytes = control::block_bytes(self.rings);
        gpu.bind()?;
        // SAFETY: the context is current; freed once, by `ControlBlock::drop`.
        let dptr = unsafe { driver::mem_alloc(bytes) }.map_err(|err| {
            tracing::warn!(bytes, %err, "perdix: control block allocation failed");
            Error::Alloc {
                bytes,
                backend: "cuda-device",
            }
        })?;
        let block = Arc::new(ControlBlock {
            gpu: gpu.clone(),
            dptr,
            bytes,
            side,
            push,
        });

        let mut image = control::Image::new(self.rings);
        let policy = match self.policy {
            Policy::Block => 0u64,
            Policy::DropNewest => 1u64,
        };
        image.set(control::HDR_NRINGS, self.rings as u64 | (policy << 32));
        let flags = if self.timestamps {
            control::FLAG_TIMESTAMPS
        } else {
            0
        };
        image.set(control::HDR_FLAGS, flags);
        let mut rings = Vec::with_capacity(self.rings);
        let mut consumers = Vec::with_capacity(self.rings);
        for idx in 0..self.rings {
            let window = Window::new(Arc::clone(&memory), idx * ring_bytes, ring_bytes)
                .ok_or(Error::InvalidCapacity(self.capacity))?;
            let base = control::ring_offset(idx);
            image.set(base + control::RING_SLOTS, window.device_ptr());
            image.set(base + control::RING_MASK, self.capacity as u64 - 1);
            image.set(base + control::RING_CAPACITY, self.capacity as u64);
            image.set(base + control::RING_INDEX, idx as u64);
            let sink = DeviceHead {
                block: Arc::clone(&block),
                ring: idx,
            };
            let ring = RingArc::new(Ring::with_sink(
                self.capacity,
                Box::new(window),
                Some(Box::new(sink)),
            )?);
            consumers.push(Consumer::new(RingArc::clone(&ring)));
            rings.push(ring);
        }
        // SAFETY: the context is current (bound above); the image is `bytes` long and lives until
        // the synchronize below; the destination is the block just allocated.
        unsafe {
            driver::memcpy_htod_async(
                dptr,
                image.as_ptr().cast(),
                image.bytes(),
                block.side.cu_stream(),
            )
        }
        .map_err(Error::Driver)?;
        // SAFETY: the side stream is live.
        unsafe { driver::stream_synchronize(block.side.cu_stream()) }.map_err(Error::Driver)?;
        tracing::info!(
            rings = self.rings,
            capacity = self.capacity,
            memory = %self.memory,
            policy = %self.policy,
            "perdix: GPU producer ready"
        );
        Ok((
            GpuProducer {
                gpu,
                stream,
                block,
                rings,
                capacity: self.capacity,
                memory: self.memory,
                policy: self.policy,
                timestamps: self.timestamps,
                launches: 0,
                finished: false,
            },
            consumers,
        ))
    }
}

/// GPU kernels producing into rings of CUDA memory; each ring is read by an ordinary
/// [`Consumer`].
///
/// Owns a stream, the rings' memory (shared with the consumers) and a control block in device
/// memory: per ring, the reservation counter, the consumer's head (which the consumer pushes
/// there, so no GPU thread reads host memory to wait), a closed flag, and exact counters.
/// [`launch`](Self::launch) queues a [`GpuKernel`] on the stream and returns at once.
///
/// Dropping the consumer of a ring makes kernels waiting on it return `PERDIX_CLOSED`; dropping
/// the producer closes every ring on the device, waits (at most 10 s) for its kernels, and then
/// tells the consumers it is gone ([`Error::Disconnected`] once they have read everything).
///
/// # Examples
///
/// ```no_run
/// use perdix_transport::cuda::{GpuContext, GpuKernel, GpuProducer};
/// use perdix_transport::Error;
///
/// const SRC: &str = r#"
/// #include "perdix.cuh"
/// extern "C" __global__ void count(const perdix_producer* p, unsigned n) {
///     unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
///     if (i < n) perdix_emit(p, 1, &i, sizeof i);
/// }
/// "#;
///
/// let gpu = match GpuContext::new(0) {
///     Ok(gpu) => gpu,
///     Err(Error::NoDevice(why)) => { eprintln!("skipped: {why}"); return Ok(()); }
///     Err(err) => return Err(err),
/// };
/// let (mut producer, mut consumers) = GpuProducer::builder(&gpu).capacity(4096).build()?;
/// producer.launch(&GpuKernel::from_source(SRC, "count").grid(4).block(256).arg(1000u32))?;
/// let counters = producer.finish()?; // waits for the kernel
/// let mut seen = 0;
/// while consumers[0].drain(usize::MAX, |msg| { assert_eq!(msg.kind(), 1); seen += 1; }) > 0 {}
/// assert_eq!((seen, counters.emitted), (1000, 1000));
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug)]
pub struct GpuProducer {
    gpu: GpuContext,
    stream: Arc<CudaStream>,
    block: Arc<ControlBlock>,
    rings: Vec<RingArc<Ring>>,
    capacity: usize,
    memory: GpuMemory,
    policy: Policy,
    timestamps: bool,
    launches: u64,
    finished: bool,
}

impl GpuProducer {
    /// A builder: 1 ring of 65,536 slots in pinned memory, policy `Block`, no timestamps.
    pub fn builder(gpu: &GpuContext) -> GpuProducerBuilder {
        GpuProducerBuilder {
            gpu: gpu.clone(),
            capacity: 65_536,
            rings: 1,
            memory: GpuMemory::default(),
            policy: Policy::Block,
            timestamps: false,
        }
    }

    /// One ring of `capacity` slots in pinned memory, with its consumer.
    ///
    /// # Errors
    ///
    /// As [`GpuProducerBuilder::build`].
    pub fn new(gpu: &GpuContext, capacity: usize) -> Result<(Self, Consumer), Error> {
        let (producer, mut consumers) = Self::builder(gpu).capacity(capacity).build()?;
        let consumer = consumers.pop().ok_or(Error::InvalidCapacity(capacity))?;
        Ok((producer, consumer))
    }

    /// Compiles (NVRTC, or the PTX cache) and loads `kernel` now, so the first
    /// [`launch`](Self::launch) does not pay for it.
    ///
    /// # Errors
    ///
    /// [`Error::Compile`] with NVRTC's log; [`Error::NoDevice`] without libnvrtc;
    /// [`Error::Driver`] when the module does not load.
    pub fn prepare(&self, kernel: &GpuKernel) -> Result<(), Error> {
        self.function(kernel).map(drop)
    }

    fn function(&self, kernel: &GpuKernel) -> Result<CudaFunction, Error> {
        let arch = self.gpu.arch();
        let key = kernel.module_key(&arch);
        self.gpu
            .function(key, || kernel.compile(&arch), kernel.entry())
    }

    /// Queues `kernel` on the producer's stream with the control block as its first argument;
    /// returns without waiting.
    ///
    /// # Errors
    ///
    /// As [`prepare`](Self::prepare); [`Error::Driver`] for a launch the driver refuses (bad
    /// grid, too much shared memory); [`Error::KernelFault`] if an earlier kernel faulted.
    pub fn launch(&mut self, kernel: &GpuKernel) -> Result<(), Error> {
        let func = self.function(kernel)?;
        let grid = kernel.grid_dim();
        let block = kernel.block_dim();
        let cfg = LaunchConfig {
            grid_dim: (grid.x, grid.y, grid.z),
            block_dim: (block.x, block.y, block.z),
            shared_mem_bytes: kernel.shared_mem(),
        };
        let ctrl: u64 = self.block.dptr;
        let mut builder = self.stream.launch_builder(&func);
        builder.arg(&ctrl);
        for arg in kernel.args() {
            match arg {
                KernelArg::U32(v) => builder.arg(v),
                KernelArg::I32(v) => builder.arg(v),
                KernelArg::U64(v) => builder.arg(v),
                KernelArg::I64(v) => builder.arg(v),
                KernelArg::F32(v) => builder.arg(v),
                KernelArg::F64(v) => builder.arg(v),
            };
        }
        // SAFETY: (1) the kernel's first parameter is `const perdix_producer*` by the documented
        // contract of `GpuKernel`, and the remaining scalars are passed by value in the order
        // added; (2) the control block and ring memory it reaches outlive the launch: `self`
        // holds them and `Drop` waits for the stream before releasing them; (3) out-of-bounds
        // accesses by user code surface as `Error::KernelFault`, not host memory unsafety.
        unsafe { builder.launch(cfg) }.map_err(driver::classify)?;
        self.launches += 1;
        Ok(())
    }

    /// Whether every launched kernel has finished.
    ///
    /// # Errors
    ///
    /// [`Error::KernelFault`] when a kernel faulted (the context is lost; rebuild everything).
    pub fn is_idle(&self) -> Result<bool, Error> {
        self.gpu.bind()?;
        // SAFETY: the stream is live and the context current.
        unsafe { driver::stream_query(self.stream.cu_stream()) }.map_err(driver::classify)
    }

    /// Waits until every launched kernel has finished, or `timeout` passes (`None`: no limit).
    /// Returns whether they finished.
    ///
    /// # Errors
    ///
    /// As [`is_idle`](Self::is_idle).
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool, Error> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut nap = Duration::from_micros(20);
        loop {
            if self.is_idle()? {
                return Ok(true);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(1));
        }
    }

    /// Asks running kernels to stop: `perdix_should_stop(p)` becomes true (the stress kernel
    /// polls it). Does not wait.
    ///
    /// # Errors
    ///
    /// [`Error::Driver`] / [`Error::KernelFault`] from the write.
    pub fn request_stop(&self) -> Result<(), Error> {
        self.block
            .write_word(control::HDR_STOP, 1, &self.block.side)
    }

    /// Clears a stop request, for the next launch.
    ///
    /// # Errors
    ///
    /// As [`request_stop`](Self::request_stop).
    pub fn clear_stop(&self) -> Result<(), Error> {
        self.block
            .write_word(control::HDR_STOP, 0, &self.block.side)?;
        self.gpu.bind()?;
        // SAFETY: the side stream is live.
        unsafe { driver::stream_synchronize(self.block.side.cu_stream()) }.map_err(driver::classify)
    }

    /// The exact device counters, summed over the rings (readable while kernels run).
    ///
    /// # Errors
    ///
    /// [`Error::Driver`] / [`Error::KernelFault`] from the copy.
    pub fn counters(&self) -> Result<GpuCounters, Error> {
        let mut total = GpuCounters::default();
        for idx in 0..self.rings.len() {
            total.add(&self.block.counters(idx)?);
        }
        Ok(total)
    }

    /// The device counters of ring `ring`.
    ///
    /// # Errors
    ///
    /// As [`counters`](Self::counters).
    ///
    /// # Panics
    ///
    /// If `ring` is not below [`rings`](Self::rings) (a caller contract).
    pub fn ring_counters(&self, ring: usize) -> Result<GpuCounters, Error> {
        assert!(ring < self.rings.len(), "ring {ring} out of range");
        self.block.counters(ring)
    }

    /// Host-side counters of ring `ring` (consumed, corrupt); `produced` is 0 for GPU rings.
    ///
    /// # Panics
    ///
    /// If `ring` is not below [`rings`](Self::rings) (a caller contract).
    #[must_use]
    pub fn ring_stats(&self, ring: usize) -> RingStats {
        self.rings[ring].stats()
    }

    /// Installs a GPU→CPU clock mapping (from [`calibrate_clock`](Self::calibrate_clock) or
    /// another producer's); stamps written after this use it.
    ///
    /// # Errors
    ///
    /// [`Error::Driver`] / [`Error::KernelFault`] from the writes.
    pub fn set_clock(&self, mapping: &ClockMapping) -> Result<(), Error> {
        self.clock_setter().set(mapping)
    }

    /// A handle that installs clock mappings from another thread.
    pub(crate) fn clock_setter(&self) -> ClockSetter {
        ClockSetter {
            block: Arc::clone(&self.block),
        }
    }

    /// Measures the GPU clock against [`clock::now_ns`](crate::clock::now_ns) (a ping-pong probe
    /// kernel, tightest of `rounds`), installs the mapping and returns it with its error bound.
    ///
    /// Runs on its own stream; do not call it while this producer's kernels hold every SM.
    ///
    /// # Errors
    ///
    /// As [`set_clock`](Self::set_clock), and [`Error::Compile`] / allocation errors of the
    /// probe.
    pub fn calibrate_clock(&self, rounds: u32) -> Result<ClockMapping, Error> {
        let mapping = super::clock::calibrate(&self.gpu, rounds)?;
        self.set_clock(&mapping)?;
        Ok(mapping)
    }

    /// Waits for every kernel, then closes the producer side: the consumers read what is left
    /// and then report [`Error::Disconnected`]. Returns the final counters.
    ///
    /// Waits as long as the kernels run: if they wait for room, keep the consumers draining.
    ///
    /// # Errors
    ///
    /// [`Error::KernelFault`] when a kernel faulted; driver errors from the counter copy.
    pub fn finish(mut self) -> Result<GpuCounters, Error> {
        let waited = self.wait(None);
        let counters = waited.and_then(|_| self.counters());
        self.finished = true;
        for ring in &self.rings {
            ring.close_producer();
        }
        counters
    }

    /// Number of rings.
    #[must_use]
    pub fn rings(&self) -> usize {
        self.rings.len()
    }

    /// Slots per ring.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Which memory the rings live in.
    #[must_use]
    pub fn memory(&self) -> GpuMemory {
        self.memory
    }

    /// The rings' backend, as their consumers' monitors report it.
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.rings
            .first()
            .map_or(self.memory.backend(), |ring| ring.memory().backend())
    }

    /// The policy of `perdix_send`.
    #[must_use]
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Whether messages are stamped.
    #[must_use]
    pub fn timestamps(&self) -> bool {
        self.timestamps
    }

    /// Kernels launched so far.
    #[must_use]
    pub fn launches(&self) -> u64 {
        self.launches
    }

    /// The device this producer runs on.
    #[must_use]
    pub fn context(&self) -> &GpuContext {
        &self.gpu
    }
}

impl Drop for GpuProducer {
    fn drop(&mut self) {
        if !self.finished {
            // Close every ring on the device so kernels waiting for room return, then wait for
            // them, boundedly: a kernel that ignores PERDIX_CLOSED must not hang the process.
            for idx in 0..self.rings.len() {
                let offset = control::ring_offset(idx) + control::RING_CLOSED;
                let _ = self.block.write_word(offset, 1, &self.block.side);
            }
            let _ = self
                .block
                .write_word(control::HDR_STOP, 1, &self.block.side);
            match self.wait(Some(Duration::from_secs(10))) {
                Ok(true) | Err(_) => {}
                Ok(false) => {
                    tracing::warn!(
                        "perdix: GPU producer dropped while its kernels still run after 10 s; \
                         leaking its memory so they cannot write into freed memory"
                    );
                    for ring in &self.rings {
                        ring.close_producer();
                        core::mem::forget(RingArc::clone(ring));
                    }
                    core::mem::forget(Arc::clone(&self.block));
                    return;
                }
            }
            for ring in &self.rings {
                ring.close_producer();
            }
        }
        let _ = self.gpu.bind().map(|()| {
            // SAFETY: the stream is live; it is idle or faulted here, so this returns at once.
            unsafe { driver::stream_synchronize(self.stream.cu_stream()) }
        });
    }
}

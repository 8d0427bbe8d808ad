//! `GpuProducer`: rings in CUDA memory written by kernels, each read by an ordinary
//! [`Consumer`](crate::Consumer).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cudarc::driver::{CudaFunction, CudaStream, LaunchConfig, PushKernelArg};

use super::arg::KernelArg;
use super::block::{ClockSetter, ControlBlock};
use super::clock::{self, ClockMapping};
use super::counters::GpuCounters;
use super::kernel::GpuKernel;
use super::memory::GpuMemory;
use super::watch::FaultWatch;
use super::{control, driver, GpuContext};
use crate::ring::Ring;
use crate::sync::Arc as RingArc;
use crate::{Backend, Error, Policy, RingStats};

/// GPU kernels producing into rings of CUDA memory; each ring is read by an ordinary
/// [`Consumer`](crate::Consumer).
///
/// Owns a stream, the rings' memory (shared with the consumers) and a control block in device
/// memory: per ring, the reservation counter, the consumer's head (which the consumer pushes
/// there, so no GPU thread reads host memory to wait), a closed flag, and exact counters.
/// [`launch`](Self::launch) queues a [`GpuKernel`] on the stream and returns at once; it is
/// `unsafe`, as cudarc's launch is: a user kernel writes through what it is given, and only its
/// caller can say that every address among the kernel's arguments is live until it finishes.
///
/// Dropping the consumer of a ring makes kernels waiting on it return `PERDIX_CLOSED`; dropping
/// the producer closes every ring on the device, waits (at most 10 s) for its kernels, and then
/// tells the consumers it is gone ([`Error::Disconnected`] once they have read everything).
/// Memory is freed only once the kernels are known to have finished (idle, or a kernel fault);
/// after a timeout or any other error it is leaked, with a warning, so no kernel writes freed
/// memory.
///
/// Faults travel both ways: a kernel fault becomes every ring's fault (their consumers report
/// it after the messages published before it), whether a call on the producer meets it or its
/// fault watch does (a thread that asks the driver every 10 ms, so a consumer that only
/// consumes learns of it too); and a ring that failed (a corrupt slot, a failed head push) is
/// closed on the device, so waiting kernels exit and [`wait`](Self::wait) /
/// [`finish`](Self::finish) never wait on it. Dropping the producer without `finish` can leave
/// messages a consumer cannot reach (a kernel gives up a reservation on the closed ring while a
/// later one is published): that consumer then ends with [`Error::Lost`], never a clean
/// [`Error::Disconnected`].
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
/// // SAFETY: `from_source`'s contract: `count` takes `const perdix_producer*` first, touches
/// // the ring only through `perdix_emit`, writes nothing else, and bounds its work by `n`
/// // (an argument), not by the grid.
/// let kernel = unsafe { GpuKernel::from_source(SRC, "count") }.grid(4).block(256);
/// // SAFETY: `arg`'s contract: `n` is `count`'s `unsigned`, not an address.
/// let kernel = unsafe { kernel.arg(1000u32) };
/// // SAFETY: `launch`'s contract: (1) as the two SAFETY notes above; (2) no address among
/// // the arguments; (3) nothing of the app's for the kernel to read or write.
/// unsafe { producer.launch(&kernel) }?;
/// let counters = producer.finish()?; // waits for the kernel
/// let mut seen = 0;
/// while consumers[0].drain(usize::MAX, |msg| { assert_eq!(msg.kind(), 1); seen += 1; }) > 0 {}
/// assert_eq!((seen, counters.emitted), (1000, 1000));
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug)]
pub struct GpuProducer {
    pub(super) gpu: GpuContext,
    pub(super) stream: Arc<CudaStream>,
    pub(super) block: Arc<ControlBlock>,
    pub(super) rings: Vec<RingArc<Ring>>,
    pub(super) capacity: usize,
    pub(super) memory: GpuMemory,
    pub(super) policy: Policy,
    pub(super) timestamps: bool,
    pub(super) launches: u64,
    /// Set once every kernel is known to have finished (or faulted) and the rings are closed.
    pub(super) finished: bool,
    /// Per ring: this producer wrote its closed word after the ring failed (`faults.rs`).
    pub(super) device_closed: Vec<AtomicBool>,
    /// The thread that fails the rings on a kernel fault without a call on the producer
    /// (`watch.rs`); stopped first thing in `Drop`.
    pub(super) watch: FaultWatch,
}

impl GpuProducer {
    /// Compiles (NVRTC, or the PTX cache) and loads `kernel` now, so the first
    /// [`launch`](Self::launch) does not pay for it.
    ///
    /// # Errors
    ///
    /// [`Error::Compile`] with NVRTC's log; [`Error::NoDevice`] without libnvrtc;
    /// [`Error::Driver`] when the module does not load;
    /// [`Error::InvalidConfig`] when the kernel's arguments disagree with the parameters its
    /// PTX declares (see [`KernelArg`]), or its entry point is not in the PTX or has a parameter
    /// list the check cannot read (never launched unchecked).
    pub fn prepare(&self, kernel: &GpuKernel) -> Result<(), Error> {
        self.function(kernel).map(drop)
    }

    /// The loaded function, once its arguments are checked against its PTX.
    fn function(&self, kernel: &GpuKernel) -> Result<CudaFunction, Error> {
        let arch = self.gpu.arch();
        let key = kernel.module_key(&arch);
        let (function, entries) =
            self.gpu
                .function(key, || kernel.compile(&arch), kernel.entry())?;
        // Refuses an entry whose parameter list could not be read as well as one that
        // disagrees: no launch goes unchecked.
        entries.check(kernel.entry(), kernel.args())?;
        Ok(function)
    }

    /// Queues `kernel` on the producer's stream with the control block as its first argument;
    /// returns without waiting.
    ///
    /// # Safety
    ///
    /// A launch runs user code with the arguments it carries, now, in reach of the ring's slots
    /// (cudarc's `launch` is `unsafe` for the same reason); nothing here can check what it
    /// writes. The caller guarantees, at this call:
    ///
    /// 1. `kernel`'s source was given under [`GpuKernel::from_source`]'s contract (its first
    ///    parameter is the producer pointer, it touches the ring only through `perdix.cuh`,
    ///    writes nothing it was not given, under any launch shape), and each of its arguments
    ///    has the type of the kernel's parameter at its place ([`GpuKernel::arg`]'s contract);
    /// 2. every device address among its arguments is live now, and stays valid for what the
    ///    kernel does with it until the kernel is known to have finished:
    ///    [`finish`](Self::finish) returned, [`wait`](Self::wait) or [`is_idle`](Self::is_idle)
    ///    returned `Ok(true)`, or an [`Error::KernelFault`] was reported. Dropping the producer
    ///    closes its rings and waits for its kernels at most 10 s, then leaks only its own
    ///    memory: a buffer of the app's must outlive a kernel still running after that;
    /// 3. the app's own writes to those buffers are ordered before this call (the stream that
    ///    wrote them synchronized, or tracked), and no safe code holds a reference into memory
    ///    the kernel writes while it runs.
    ///
    /// Safe code cannot launch a user kernel:
    ///
    /// ```compile_fail,E0133
    /// # use perdix_transport::cuda::{GpuKernel, GpuProducer};
    /// fn go(producer: &mut GpuProducer, kernel: &GpuKernel) {
    ///     let _ = producer.launch(kernel);
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`prepare`](Self::prepare) (arguments that disagree with the kernel's parameters are
    /// [`Error::InvalidConfig`], and nothing is launched); [`Error::Driver`] for a launch the driver refuses (bad
    /// grid, too much shared memory); [`Error::KernelFault`] if an earlier kernel faulted.
    pub unsafe fn launch(&mut self, kernel: &GpuKernel) -> Result<(), Error> {
        let func = self.function(kernel)?;
        let grid = kernel.grid_dim();
        let block = kernel.block_dim();
        let cfg = LaunchConfig {
            grid_dim: (grid.x, grid.y, grid.z),
            block_dim: (block.x, block.y, block.z),
            shared_mem_bytes: kernel.shared_mem(),
        };
        let ctrl: u64 = self.block.words.dptr();
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
                KernelArg::Value(bytes) => builder.arg(bytes.first_word()),
            };
        }
        // SAFETY: this fn's caller guarantees its contract: (1) the kernel's source keeps
        // `GpuKernel::from_source`'s contract for this grid, block and shared memory, so its
        // first parameter is `const perdix_producer*` and receives the control block's address,
        // and it writes ring and control memory only through `perdix.cuh` and no memory it was
        // not given, so it never writes a slot lent out as `&[u8]`; the arguments have the
        // types of its parameters (their count and sizes also checked against the PTX in
        // `function` above); (2) every address among them is live and stays so until the kernel
        // is known to have finished, with the app's writes ordered before now (contract items 2
        // and 3); (3) the control block and ring memory outlive the launch: `self` holds them,
        // and `Drop` frees them only once the kernels are known to have finished (or leaks
        // them). A fault the driver catches surfaces as `Error::KernelFault`, but that is no
        // defence against a kernel breaking the contract.
        let launched = unsafe { builder.launch(cfg) }.map_err(driver::classify);
        self.observe(launched)?;
        self.launches += 1;
        Ok(())
    }

    /// Whether every launched kernel has finished.
    ///
    /// # Errors
    ///
    /// [`Error::KernelFault`] when a kernel faulted (the context is lost; rebuild everything).
    /// The fault also becomes every ring's fault: their consumers report it once they have read
    /// what was published before it.
    pub fn is_idle(&self) -> Result<bool, Error> {
        let queried = self.gpu.bind().and_then(|()| {
            // SAFETY: the stream is live and the context current.
            unsafe { driver::stream_query(self.stream.cu_stream()) }.map_err(driver::classify)
        });
        self.observe(queried)
    }

    /// Waits until every launched kernel has finished, or `timeout` passes (`None`: no limit).
    /// Returns whether they finished.
    ///
    /// Never waits on a ring that failed: a failed ring is closed on the device (so Block
    /// kernels waiting for room on it return), and a ring whose consumer could not push its
    /// head to the device ends the wait with that error.
    ///
    /// # Errors
    ///
    /// As [`is_idle`](Self::is_idle); [`Error::HeadPush`] when a ring's head push failed
    /// (kernels may still be running: drop the producer, which closes every ring from its own
    /// stream and waits for them, boundedly).
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool, Error> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut nap = Duration::from_micros(20);
        loop {
            if self.is_idle()? {
                return Ok(true);
            }
            self.check_rings()?;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(1));
        }
    }

    /// [`wait`](Self::wait) for the stream alone (teardown: the rings are closed already).
    pub(super) fn wait_idle(&self, timeout: Duration) -> Result<bool, Error> {
        let deadline = Instant::now().checked_add(timeout);
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
        self.observe(
            self.block
                .write_word(control::HDR_STOP, 1, &self.block.side),
        )
    }

    /// Clears a stop request, for the next launch.
    ///
    /// # Errors
    ///
    /// As [`request_stop`](Self::request_stop).
    pub fn clear_stop(&self) -> Result<(), Error> {
        let cleared = self
            .block
            .write_word(control::HDR_STOP, 0, &self.block.side)
            .and_then(|()| self.gpu.bind())
            .and_then(|()| self.block.side.synchronize().map_err(driver::classify));
        self.observe(cleared)
    }

    /// The exact device counters, summed over the rings (readable while kernels run).
    ///
    /// # Errors
    ///
    /// [`Error::Driver`] / [`Error::KernelFault`] from the copy.
    pub fn counters(&self) -> Result<GpuCounters, Error> {
        let mut total = GpuCounters::default();
        for idx in 0..self.rings.len() {
            total.add(&self.observe(self.block.counters(idx))?);
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
        self.observe(self.block.counters(ring))
    }

    /// Counters of ring `ring`: `produced` is the positions its kernels published (the device
    /// counters `emitted + extra`, read with a copy), the rest are the consumer's (consumed,
    /// corrupt).
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
        let mapping = clock::calibrate(&self.gpu, rounds)?;
        self.set_clock(&mapping)?;
        Ok(mapping)
    }

    /// Waits for every kernel, then closes the producer side: the consumers read what is left
    /// and then report [`Error::Disconnected`]. Returns the final counters.
    ///
    /// Waits as long as the kernels run: if they wait for room, keep the consumers draining.
    /// It never waits on a failed ring (see [`wait`](Self::wait)).
    ///
    /// # Errors
    ///
    /// [`Error::KernelFault`] when a kernel faulted; [`Error::HeadPush`] when a ring's head push
    /// failed (the producer is then dropped: every ring closed from its own stream, its kernels
    /// waited for boundedly, its memory leaked if they do not end); driver errors from the
    /// counter copy.
    pub fn finish(mut self) -> Result<GpuCounters, Error> {
        let waited = match self.wait(None) {
            // Kernels may still run: `Drop` closes the rings and decides what to free.
            Err(err) if !matches!(err, Error::KernelFault(_)) => return Err(err),
            waited => waited,
        };
        let counters = waited.and_then(|_| self.counters());
        self.finished = true;
        for ring in &self.rings {
            ring.close_producer();
        }
        counters
    }

    /// Fault injection for tests: from now on every head push of this producer's rings (and
    /// every push of CLOSED from their consumers) fails with a driver error, as a refused
    /// `cuStreamWriteValue64` would. The producer's own writes (stop, closing a failed ring,
    /// teardown) still work. Test tooling (feature `testing`), not part of the API: a real push
    /// fails only once the context is broken, and then no kernel is left blocked to prove the
    /// no-hang path with.
    #[cfg(feature = "testing")]
    pub fn inject_head_push_failure(&self) {
        self.block
            .fail_head_pushes
            .store(true, std::sync::atomic::Ordering::Relaxed);
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

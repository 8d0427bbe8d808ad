//! `GpuKernel`: a producer kernel described by its source, entry point, launch shape and
//! arguments.

use std::borrow::Cow;

use super::arg::KernelArg;
use super::key::ModuleKey;
use super::{module, params};
use crate::Error;

/// Grid or block dimensions. `From` a `u32`, `(u32, u32)` or `(u32, u32, u32)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dim3 {
    /// Extent in x.
    pub x: u32,
    /// Extent in y.
    pub y: u32,
    /// Extent in z.
    pub z: u32,
}

impl Dim3 {
    /// Total count (`x * y * z`).
    #[must_use]
    pub const fn count(self) -> u64 {
        self.x as u64 * self.y as u64 * self.z as u64
    }
}

impl From<u32> for Dim3 {
    fn from(x: u32) -> Self {
        Self { x, y: 1, z: 1 }
    }
}

impl From<(u32, u32)> for Dim3 {
    fn from((x, y): (u32, u32)) -> Self {
        Self { x, y, z: 1 }
    }
}

impl From<(u32, u32, u32)> for Dim3 {
    fn from((x, y, z): (u32, u32, u32)) -> Self {
        Self { x, y, z }
    }
}

/// A producer kernel: CUDA C source, entry point, grid, block and arguments.
///
/// The kernel's first parameter is always `const perdix_producer* p`, supplied by
/// [`GpuProducer::launch`](super::GpuProducer::launch); [`arg`](Self::arg) adds the parameters
/// after it, in order, each a [`KernelArg`] (scalars, a `#[repr(C)]` struct by value, a device
/// buffer): every launch checks them against the parameters the kernel's PTX declares (count,
/// sizes, a struct's alignment) and refuses a mismatch with
/// [`Error::InvalidConfig`](crate::Error::InvalidConfig); [`check_args`](Self::check_args) runs
/// the same check without a GPU. The source may `#include "perdix.cuh"` (supplied in memory) and call
/// `perdix_emit(p, kind, &msg, sizeof msg)` from any thread. Entry points are `extern "C"`.
/// Compiled by NVRTC at first launch and cached (see [`compile_ptx`](super::compile_ptx)).
///
/// A kernel from user source is built with the `unsafe` [`from_source`](Self::from_source): a
/// kernel can write any memory the device can reach, including ring slots the host is reading
/// through a `&[u8]`, so only its author can promise it keeps to the protocol. The crate's own
/// kernels (the stress and probe kernels of the `testing` tooling) have safe constructors.
///
/// Cheap to clone; `Send + Sync`, so a Bevy resource or a config can hold it.
///
/// # Examples
///
/// ```
/// use perdix_transport::cuda::{GpuKernel, KernelArg};
///
/// const SRC: &str = r#"
/// #include "perdix.cuh"
/// struct Hit { float x, y; unsigned id; };
/// extern "C" __global__ void step(const perdix_producer* p, float dt, unsigned frame) {
///     Hit hit = { dt, 0.0f, frame };
///     if (perdix_emit(p, 7, &hit, sizeof hit) == PERDIX_CLOSED) return;
/// }
/// "#;
/// // SAFETY: (1) `step` takes `const perdix_producer*` first; (2) it touches the ring only
/// // through `perdix_emit`; (3) the two arguments added are a `float` and an `unsigned`, as in
/// // its signature; (4) it writes no other memory.
/// let kernel = unsafe { GpuKernel::from_source(SRC, "step") };
/// let mut kernel = kernel.grid(132).block(256).arg(0.016f32).arg(0u32);
/// kernel.set_arg(1, 1u32); // next frame
/// assert_eq!(kernel.args(), &[KernelArg::F32(0.016), KernelArg::U32(1)]);
/// assert_eq!(kernel.threads(), 132 * 256);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct GpuKernel {
    source: Cow<'static, str>,
    name: Cow<'static, str>,
    entry: Cow<'static, str>,
    grid: Dim3,
    block: Dim3,
    shared_mem_bytes: u32,
    args: Vec<KernelArg>,
}

impl GpuKernel {
    /// A kernel `entry` of user `source`, launched as 1 block of 256 threads until told
    /// otherwise.
    ///
    /// # Safety
    ///
    /// The kernel runs with the device's view of host-mapped memory, which includes ring slots
    /// the host is reading through `&[u8]` borrows, and nothing checks what it writes there
    /// (cudarc keeps its launch `unsafe` for the same reason). The caller promises that:
    ///
    /// 1. the kernel's first parameter is `const perdix_producer*` (the control block
    ///    [`GpuProducer::launch`](super::GpuProducer::launch) passes);
    /// 2. it touches ring and control memory only through `perdix.cuh` (`perdix_emit`,
    ///    `perdix_try_emit`, `perdix_send`, `perdix_should_stop`, `perdix_stamp`), never by
    ///    writing slots, `seq`, the head, the tail or the counters itself;
    /// 3. the arguments added with [`arg`](Self::arg) (and replaced with
    ///    [`set_arg`](Self::set_arg)) match the kernel's parameters after the first in count,
    ///    order and type, and any device address among them is valid for what the kernel does
    ///    with it until the kernel finishes;
    /// 4. the kernel writes no host-mapped or device memory it was not given.
    ///
    /// A kernel that faults anyway (a `__trap()`, an illegal address) surfaces as
    /// [`Error::KernelFault`](crate::Error::KernelFault); that is the driver's report of a
    /// fault it caught, not a guarantee that a stray write was caught.
    ///
    /// Safe code cannot build one:
    ///
    /// ```compile_fail,E0133
    /// let kernel = perdix_transport::cuda::GpuKernel::from_source("extern \"C\" __global__ void k() {}", "k");
    /// ```
    pub unsafe fn from_source(
        source: impl Into<Cow<'static, str>>,
        entry: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::unchecked(source.into(), entry.into())
    }

    /// A kernel of the crate's own (`kernels/*.cu`): `source` is one of the crate's sources and
    /// `entry` one of its entry points. Private: the callers below give the arguments each
    /// entry point takes, which is what [`from_source`](Self::from_source)'s contract asks.
    #[cfg(feature = "testing")]
    pub(crate) fn builtin(source: &'static str, file: &'static str, entry: &'static str) -> Self {
        Self::unchecked(Cow::Borrowed(source), Cow::Borrowed(entry)).name(file)
    }

    fn unchecked(source: Cow<'static, str>, entry: Cow<'static, str>) -> Self {
        Self {
            source,
            name: Cow::Borrowed("kernel.cu"),
            entry,
            grid: Dim3::from(1),
            block: Dim3::from(256),
            shared_mem_bytes: 0,
            args: Vec::new(),
        }
    }

    /// File name NVRTC reports in errors and the PTX cache uses (default `kernel.cu`).
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Grid dimensions in blocks.
    pub fn grid(mut self, grid: impl Into<Dim3>) -> Self {
        self.grid = grid.into();
        self
    }

    /// Block dimensions in threads.
    pub fn block(mut self, block: impl Into<Dim3>) -> Self {
        self.block = block.into();
        self
    }

    /// Dynamic shared memory per block, in bytes (default 0).
    pub fn shared_mem_bytes(mut self, bytes: u32) -> Self {
        self.shared_mem_bytes = bytes;
        self
    }

    /// Appends an argument (after the producer pointer).
    pub fn arg(mut self, value: impl Into<KernelArg>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Replaces argument `index` (0 is the first after the producer pointer), e.g. a frame
    /// number before each launch.
    ///
    /// # Panics
    ///
    /// If `index` is not below the number of arguments added (a caller contract).
    pub fn set_arg(&mut self, index: usize, value: impl Into<KernelArg>) {
        assert!(
            index < self.args.len(),
            "kernel argument {index} was never added"
        );
        self.args[index] = value.into();
    }

    /// The source.
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The entry point.
    #[must_use]
    pub fn entry(&self) -> &str {
        &self.entry
    }

    /// The file name used in errors and the cache.
    #[must_use]
    pub fn file_name(&self) -> &str {
        &self.name
    }

    /// Grid dimensions.
    #[must_use]
    pub fn grid_dim(&self) -> Dim3 {
        self.grid
    }

    /// Block dimensions.
    #[must_use]
    pub fn block_dim(&self) -> Dim3 {
        self.block
    }

    /// Dynamic shared memory per block.
    #[must_use]
    pub fn shared_mem(&self) -> u32 {
        self.shared_mem_bytes
    }

    /// The arguments after the producer pointer.
    #[must_use]
    pub fn args(&self) -> &[KernelArg] {
        &self.args
    }

    /// The arguments, replaced in place before a launch (the plugin's per-frame arguments).
    #[cfg(feature = "bevy")]
    pub(crate) fn args_mut(&mut self) -> &mut [KernelArg] {
        &mut self.args
    }

    /// Threads per launch (grid × block).
    #[must_use]
    pub fn threads(&self) -> u64 {
        self.grid.count() * self.block.count()
    }

    /// Compiles the source for `arch` (`sm_90`, say) without a GPU: the CI check.
    ///
    /// # Errors
    ///
    /// As [`compile_ptx`](super::compile_ptx).
    pub fn compile(&self, arch: &str) -> Result<String, Error> {
        module::compile_ptx(&self.source, &self.name, arch)
    }

    /// Checks the arguments against the parameters `ptx` (this kernel's source compiled, by
    /// [`compile`](Self::compile) say) declares for the entry point: the check every launch
    /// makes, without a GPU.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the entry point is not in `ptx`, its parameter list cannot
    /// be read (a launch of it is refused too), or its parameters are not the producer pointer
    /// followed by arguments of these sizes (see [`KernelArg`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use perdix_transport::cuda::GpuKernel;
    /// const SRC: &str = r#"
    /// #include "perdix.cuh"
    /// extern "C" __global__ void k(const perdix_producer* p, double dt) {}
    /// "#;
    /// // SAFETY: `k` takes the producer pointer then a `double`, and writes nothing.
    /// let kernel = unsafe { GpuKernel::from_source(SRC, "k") };
    /// let ptx = kernel.compile("sm_90")?; // NVRTC only, no GPU
    /// assert!(kernel.clone().arg(1.0f32).check_args(&ptx).is_err()); // a float for a double
    /// kernel.arg(1.0f64).check_args(&ptx)?;
    /// # Ok::<(), perdix_transport::Error>(())
    /// ```
    pub fn check_args(&self, ptx: &str) -> Result<(), Error> {
        params::Entries::parse(ptx).check(self.entry(), &self.args)
    }

    /// The key of this kernel's module for `arch` (a SHA-256 of the source, the headers, the
    /// options, the architecture and the toolchain: see `module::cache_key`).
    pub(crate) fn module_key(&self, arch: &str) -> ModuleKey {
        module::cache_key(&self.source, arch)
    }
}

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
/// [`GpuProducer::launch`](super::GpuProducer::launch); [`arg`](Self::arg) (or
/// [`with_args`](Self::with_args)) adds the parameters after it, in order, each a [`KernelArg`]
/// (scalars, a `#[repr(C)]` struct by value, a device address): every launch checks them against
/// the parameters the kernel's PTX declares (count, sizes, a struct's alignment) and refuses a
/// mismatch with [`Error::InvalidConfig`](crate::Error::InvalidConfig);
/// [`check_args`](Self::check_args) runs the same check without a GPU. The source may
/// `#include "perdix.cuh"` (supplied in memory) and call `perdix_emit(p, kind, &msg, sizeof msg)`
/// from any thread. Entry points are `extern "C"`. Compiled by NVRTC at first launch and cached
/// (see [`compile_ptx`](super::compile_ptx)).
///
/// # What is `unsafe`, and why
///
/// A kernel can write any memory the device reaches, including ring slots the host is reading
/// through a `&[u8]`, and nothing on the host can check what it writes: only its author can
/// promise it keeps to the protocol. As in cudarc (whose `launch` is `unsafe`), every call that
/// decides what a user kernel writes is `unsafe`, at the point it is supplied:
///
/// - [`from_source`](Self::from_source): the source, vouched for under any launch shape, so
///   [`grid`](Self::grid), [`block`](Self::block), [`shared_mem_bytes`](Self::shared_mem_bytes)
///   and [`name`](Self::name) stay safe;
/// - [`arg`](Self::arg), [`with_args`](Self::with_args) and [`set_arg`](Self::set_arg): the
///   argument list, because a 64-bit argument may be an address (PTX cannot tell an address
///   from a number, nor a `float` from an `unsigned`), and a kernel writes through what it is
///   given;
/// - [`GpuProducer::launch`](super::GpuProducer::launch) and
///   [`GpuProducerSet::launch`](super::GpuProducerSet::launch): the moment those addresses must
///   be live.
///
/// Building the values is safe ([`KernelArg::U64`], [`device_address`](super::device_address),
/// [`ProducerHandle::address`](super::ProducerHandle::address) are numbers); supplying one to a
/// kernel is the `unsafe` act. The crate's own kernels, whose parameters the crate knows, stay
/// safe: the stress kernels of the `testing` tooling come as their own type, whose argument list
/// safe code cannot change.
///
/// Cheap to clone (a clone carries its arguments, and the promises made for them); `Send +
/// Sync`, so a Bevy resource or a config can hold it.
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
/// // SAFETY: `from_source`'s contract for `step`: (1) it takes `const perdix_producer*` first;
/// // (2) it touches the ring only through `perdix_emit`; (3) it writes no other memory (`hit`
/// // is on its stack); (4) nothing it writes depends on the launch shape.
/// let kernel = unsafe { GpuKernel::from_source(SRC, "step") }.grid(132).block(256);
/// // SAFETY: `with_args`'s contract: (1) a `float` and an `unsigned`, `step`'s parameters
/// // after `p`, in order; (2) neither is an address.
/// let mut kernel = unsafe { kernel.with_args([KernelArg::F32(0.016), KernelArg::U32(0)]) };
/// // SAFETY: `set_arg`'s contract: (1) argument 1 is the `unsigned frame`; (2) not an address.
/// unsafe { kernel.set_arg(1, 1u32) }; // next frame
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
    /// otherwise, with no arguments after the producer pointer until some are added.
    ///
    /// # Safety
    ///
    /// The kernel runs with the device's view of host-mapped memory, which includes ring slots
    /// the host is reading through `&[u8]` borrows, and nothing checks what it writes there
    /// (cudarc keeps its launch `unsafe` for the same reason). This is the source's contract;
    /// the arguments have their own ([`arg`](Self::arg)). The caller promises that the kernel
    /// `entry` of `source`:
    ///
    /// 1. takes `const perdix_producer* p` as its first parameter (the control block
    ///    [`GpuProducer::launch`](super::GpuProducer::launch) passes), and passes it on only to
    ///    the functions of `perdix.cuh`;
    /// 2. touches ring and control memory only through `perdix.cuh` (`perdix_emit`,
    ///    `perdix_try_emit`, `perdix_send`, `perdix_should_stop`, `perdix_stamp`, ...), never by
    ///    writing slots, `seq`, the head, the tail or the counters itself;
    /// 3. writes no memory it was not given: besides its own stack and shared memory, only
    ///    device buffers whose addresses reach it through its arguments for that purpose, and
    ///    only as far as those arguments say (no pointer built from anything else);
    /// 4. keeps to 1-3 for *any* launch shape it is given: any grid, block and dynamic shared
    ///    memory size, which is why [`grid`](Self::grid), [`block`](Self::block) and
    ///    [`shared_mem_bytes`](Self::shared_mem_bytes) are safe. What it writes it derives from
    ///    its arguments, never from the launch shape alone: `if (i < n) out[i] = ..` with `n`
    ///    an argument, not `out[blockIdx.x * blockDim.x + threadIdx.x]` over a buffer sized for
    ///    one grid; and it uses no more dynamic shared memory than it was launched with (none,
    ///    or checked against `%dynamic_smem_size`).
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
    /// `entry` one of its entry points, which keep [`from_source`](Self::from_source)'s
    /// contract. Its callers add the arguments each entry point takes, under
    /// [`arg`](Self::arg)'s contract, and launch it only where that holds.
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

    /// Grid dimensions in blocks. Safe: [`from_source`](Self::from_source)'s caller vouched for
    /// every launch shape (its item 4).
    pub fn grid(mut self, grid: impl Into<Dim3>) -> Self {
        self.grid = grid.into();
        self
    }

    /// Block dimensions in threads. Safe, as [`grid`](Self::grid).
    pub fn block(mut self, block: impl Into<Dim3>) -> Self {
        self.block = block.into();
        self
    }

    /// Dynamic shared memory per block, in bytes (default 0). Safe, as [`grid`](Self::grid).
    pub fn shared_mem_bytes(mut self, bytes: u32) -> Self {
        self.shared_mem_bytes = bytes;
        self
    }

    /// Appends an argument (after the producer pointer and those added before it).
    ///
    /// # Safety
    ///
    /// The kernel's argument list is part of its contract: it writes through the addresses it
    /// is given, and the launch cannot tell an address from a number. The caller promises, for
    /// every launch made with this kernel or a clone of it (a kernel never launched, one built
    /// for [`check_args`](Self::check_args) alone, needs no promise):
    ///
    /// 1. `value` has the type of the kernel's parameter at this place (its size is checked
    ///    against the PTX at launch; its type cannot be: a `u64` for a `float*`, a `f32` for an
    ///    `unsigned` pass that check);
    /// 2. any device address in it (a [`KernelArg::U64`] for a `T*`, a pointer field inside a
    ///    [`KernelArg::value`] struct) is valid for everything the kernel does with it, given
    ///    the other arguments (reads and writes of the extent they name), until that launch
    ///    has finished; it never points into memory the crate owns (a ring's slots or control
    ///    block: [`ProducerHandle::address`](super::ProducerHandle::address)) or memory safe
    ///    code holds a reference to while the kernel runs;
    /// 3. the app orders its own writes to such buffers before the launch (synchronizes the
    ///    stream that wrote them: cudarc's event tracking does not follow a bare address onto
    ///    the producer's stream), and reads the kernel's writes only once it has finished.
    ///
    /// Safe code cannot add one:
    ///
    /// ```compile_fail,E0133
    /// # use perdix_transport::cuda::GpuKernel;
    /// fn add(kernel: GpuKernel, address: u64) -> GpuKernel {
    ///     kernel.arg(address)
    /// }
    /// ```
    pub unsafe fn arg(mut self, value: impl Into<KernelArg>) -> Self {
        self.args.push(value.into());
        self
    }

    /// The arguments after the producer pointer, all at once (replacing any added before): one
    /// `unsafe` call, one SAFETY comment that walks the kernel's parameters in order.
    ///
    /// # Safety
    ///
    /// [`arg`](Self::arg)'s contract, for each value at its place, for every launch made with
    /// this kernel: (1) the values have the types of the kernel's parameters after the
    /// producer pointer, in order; (2) every device address among them is valid for what the
    /// kernel does with it until that launch has finished; (3) the app's writes to those
    /// buffers are ordered before the launch.
    ///
    /// ```compile_fail,E0133
    /// # use perdix_transport::cuda::{GpuKernel, KernelArg};
    /// fn set(kernel: GpuKernel, address: u64) -> GpuKernel {
    ///     kernel.with_args([KernelArg::U64(address)])
    /// }
    /// ```
    pub unsafe fn with_args(mut self, args: impl IntoIterator<Item = KernelArg>) -> Self {
        self.args.clear();
        self.args.extend(args);
        self
    }

    /// Replaces argument `index` (0 is the first after the producer pointer), e.g. a frame
    /// number before each launch.
    ///
    /// # Safety
    ///
    /// [`arg`](Self::arg)'s contract for the new value, for every launch made with the kernel
    /// from now on: (1) it has the type of the kernel's parameter at `index`; (2) any device
    /// address in it is valid for what the kernel does with it until that launch has finished;
    /// (3) the app's writes to such a buffer are ordered before the launch.
    ///
    /// Safe code cannot change one:
    ///
    /// ```compile_fail,E0133
    /// # use perdix_transport::cuda::GpuKernel;
    /// fn retarget(kernel: &mut GpuKernel, address: u64) {
    ///     kernel.set_arg(0, address);
    /// }
    /// ```
    ///
    /// # Panics
    ///
    /// If `index` is not below the number of arguments added (a caller contract).
    pub unsafe fn set_arg(&mut self, index: usize, value: impl Into<KernelArg>) {
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
    /// // SAFETY: `from_source`'s contract: `k` takes the producer pointer first and writes
    /// // nothing, under any launch shape.
    /// let kernel = unsafe { GpuKernel::from_source(SRC, "k") };
    /// let ptx = kernel.compile("sm_90")?; // NVRTC only, no GPU
    /// // SAFETY: never launched: built only to show the check refusing a float for a double.
    /// let wrong = unsafe { kernel.clone().arg(1.0f32) };
    /// assert!(wrong.check_args(&ptx).is_err());
    /// // SAFETY: `arg`'s contract: (1) a `double` for `double dt`; (2) not an address.
    /// let kernel = unsafe { kernel.arg(1.0f64) };
    /// kernel.check_args(&ptx)?;
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

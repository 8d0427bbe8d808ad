//! [`GpuProducerSpec`]: a user's CUDA kernel as a plugin producer, and its safety contract.
// `GpuProducerSpec::new` (it runs user CUDA source) and `GpuProducerSpec::args` (its values
// are the kernel's arguments, addresses included) are `unsafe fn`s: the two items of the
// plugin allowed to be; they contain no unsafe operation.
#![deny(unsafe_code)]

use std::borrow::Cow;

use bevy_ecs::world::World;

use super::emitter::Emitter;

pub(crate) type ArgsFn<A> = Box<dyn Fn(&World, u64) -> A + Send + Sync>;
pub(crate) type FallbackFn<A> = Box<dyn FnMut(&A, &mut Emitter) + Send>;

/// A GPU producer to register with
/// [`PerdixAppExt::add_gpu_producer`](crate::bevy::PerdixAppExt::add_gpu_producer): a CUDA kernel
/// (source, entry point, grid, block), the per-frame arguments it gets from the world, and a
/// CPU fallback producing the same messages.
///
/// The kernel is launched once a frame on its own stream (never more than one launch in
/// flight: a frame whose previous launch still runs skips its launch) as
/// `entry(const perdix_producer* p, ...)`, with `A`'s fields as the parameters after `p`: `A`
/// is a `#[repr(C)]` struct (`bytemuck::Pod`) whose fields are the kernel's parameters in
/// order, of any kernel-argument type: `f32` / `i32` / `u32` (`float`, `int`, `unsigned`),
/// `f64`, `u64` / `i64`, a nested `#[repr(C)]` struct passed by value, or a device buffer the
/// app owns as its address (a `u64` from `cuda::device_address` with `cuda`, the kernel's
/// `T*`, read from a resource by the `args` closure; the app keeps the buffer alive while the
/// producer runs: [`args`](Self::args)' contract).
/// When the producer starts, `A`'s size and alignment are checked against the struct the
/// kernel's parameters make, as its PTX declares them (a whole-struct check: fields of the same
/// total size in another order or split differently pass it; see [`check`](Self::check) to
/// run it without a GPU): a mismatch is
/// [`Error::InvalidConfig`](crate::Error::InvalidConfig) and no ring is made. The kernel calls
/// `perdix_emit(p, kind, &msg, sizeof msg)` from `kernels/perdix.cuh`.
///
/// # Launches and `args`
///
/// One rule on the GPU and on the CPU fallback: the [`args`](Self::args) closure is called
/// exactly once for each launch that runs, just before it, with that launch's number (0, 1,
/// 2, ... with no gaps), which the fallback sees again as [`Emitter::frame`]. A frame whose
/// launch is skipped (the GPU's previous launch still runs, or the fallback is
/// `FALLBACK_QUEUE` = 2 launches behind) neither calls the closure nor takes a number; so
/// launch numbers count launches, not frames.
///
/// # What is `unsafe`, and why
///
/// The kernel runs with the ring's host-mapped memory in reach, including slots the CPU lends
/// out as `&[u8]`; nothing on the CPU can check what it writes (cudarc keeps its launch
/// `unsafe` for this reason). So [`new`](Self::new) is an `unsafe fn` whose caller vouches for
/// the source under any grid and block (so [`grid`](Self::grid) and [`block`](Self::block)
/// stay safe), and [`args`](Self::args) is an `unsafe fn` whose caller vouches for the values
/// it returns: they are the kernel's argument list every frame, and a 64-bit field may be an
/// address the kernel writes through (PTX cannot tell). The CPU fallback and everything else
/// are safe.
///
/// # Examples
///
/// ```
/// use perdix_transport::bevy::GpuProducerSpec;
///
/// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
/// #[repr(C)]
/// struct Step {
///     dt: f32,
///     count: u32,
/// }
///
/// const STEP_CU: &str = r#"
/// #include "perdix.cuh"
/// extern "C" __global__ void step(const perdix_producer* p, float dt, unsigned count) {
///     unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
///     if (i < count) perdix_emit(p, 1, &i, sizeof i);
/// }
/// "#;
///
/// // SAFETY: `new`'s contract: (1) `step`'s first parameter is the producer pointer; (2) it
/// // reaches the ring only through `perdix_emit`; (3) it writes no other memory; (4) its work
/// // is bounded by `count`, not the grid; (5) `Step` is `#[repr(C)]` { f32, u32 }, the
/// // kernel's `float dt, unsigned count`.
/// let spec = unsafe { GpuProducerSpec::new("particles", STEP_CU, "step") }
///     .grid(64)
///     .block(256);
/// // SAFETY: `args`' contract: (1) each `Step` is `step`'s `dt` and `count`; (2) no address
/// // among them; (3) no buffer of the app's to order writes to.
/// let spec = unsafe { spec.args(|_world, _launch| Step { dt: 1.0 / 60.0, count: 1024 }) }
///     .cpu_fallback(|step: &Step, emit| {
///         for i in 0..step.count {
///             if emit.emit(1, &i).is_err() {
///                 break;
///             }
///         }
///     });
/// assert_eq!(spec.name(), "particles");
/// ```
pub struct GpuProducerSpec<A> {
    pub(crate) name: String,
    pub(crate) source: Cow<'static, str>,
    pub(crate) entry: String,
    pub(crate) grid: u32,
    pub(crate) block: u32,
    pub(crate) args: Option<ArgsFn<A>>,
    pub(crate) fallback: Option<FallbackFn<A>>,
}

impl<A> core::fmt::Debug for GpuProducerSpec<A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GpuProducerSpec")
            .field("name", &self.name)
            .field("entry", &self.entry)
            .field("grid", &self.grid)
            .field("block", &self.block)
            .field("fallback", &self.fallback.is_some())
            .finish_non_exhaustive()
    }
}

impl<A: bytemuck::Pod + Send + Sync> GpuProducerSpec<A> {
    /// A producer named `name` running `entry` from the CUDA C `source` (compiled by NVRTC at
    /// first use), one block of 256 threads until told otherwise.
    ///
    /// # Safety
    ///
    /// The kernel runs with the ring's host-mapped memory (and the CPU's view of its slots) in
    /// reach. This is the source's contract (the values of each launch are
    /// [`args`](Self::args)'); the caller guarantees that the kernel `entry` of `source`:
    ///
    /// 1. takes `const perdix_producer* p` as its first parameter, and passes it on only to
    ///    the functions of `perdix.cuh`;
    /// 2. touches ring memory (slots, `seq`, head, counters) only through `perdix.cuh`
    ///    (`perdix_emit` and friends): it never writes a slot or forges a `seq` itself;
    /// 3. writes no memory it was not given: besides its stack and shared memory, only device
    ///    buffers whose addresses `A` carries for that purpose, as far as the other fields
    ///    say; no pointer built from anything else. A 0 address is none given: until
    ///    [`args`](Self::args) is set, every launch gets `A::zeroed()`;
    /// 4. keeps to 1-3 for any grid and block (which is why [`grid`](Self::grid) and
    ///    [`block`](Self::block) are safe): what it writes it derives from its arguments
    ///    (`if (i < count)`), never from the launch shape alone; and it uses no dynamic shared
    ///    memory (the plugin launches it with none);
    /// 5. declares, after `p`, exactly the parameters `A` holds: `A` is `#[repr(C)]` and its
    ///    fields, in order, have the types of the kernel's parameters after the producer
    ///    pointer (the size and alignment of the whole are checked against the PTX when the
    ///    producer starts; each field's type cannot be).
    ///
    /// A kernel that breaks these can change bytes the CPU holds as `&[u8]` (undefined
    /// behaviour in safe code), not only produce wrong messages.
    ///
    /// Safe code cannot register one:
    ///
    /// ```compile_fail,E0133
    /// let spec = perdix_transport::bevy::GpuProducerSpec::<u32>::new("k", "", "k");
    /// ```
    #[must_use]
    #[allow(unsafe_code)]
    pub unsafe fn new(name: &str, source: impl Into<Cow<'static, str>>, entry: &str) -> Self {
        Self {
            name: name.to_owned(),
            source: source.into(),
            entry: entry.to_owned(),
            grid: 1,
            block: 256,
            args: None,
            fallback: None,
        }
    }

    /// Blocks in the grid.
    #[must_use]
    pub fn grid(mut self, blocks: u32) -> Self {
        self.grid = blocks.max(1);
        self
    }

    /// Threads per block.
    #[must_use]
    pub fn block(mut self, threads: u32) -> Self {
        self.block = threads.max(1);
        self
    }

    /// The arguments of each launch, read from the world with the launch's number (default:
    /// `A::zeroed()`): called once for each launch that runs, never for a skipped one (see
    /// [Launches and `args`](Self#launches-and-args)).
    ///
    /// # Safety
    ///
    /// The closure's values *are* the kernel's argument list, every frame, and may carry
    /// device addresses read from the world (PTX cannot tell an address from a number). The
    /// caller guarantees, for every value the closure returns:
    ///
    /// 1. its fields are the kernel's parameters after the producer pointer, in order and type
    ///    (`A`'s layout, as [`new`](Self::new) promised), with values the kernel keeps its
    ///    contract with;
    /// 2. every device address in it is valid for what the kernel does with it (given the
    ///    other fields) from that launch until the producer stops: the plugin stops it when
    ///    the app's [`PerdixRings`](crate::bevy::PerdixRings) drops (waiting for its kernels,
    ///    at most 10 s) or when it fails; so the app keeps such a buffer alive until the app
    ///    itself has ended, since world resources drop in no set order;
    /// 3. the app's own writes to those buffers are ordered before the closure returns (the
    ///    stream that wrote them synchronized), and the app does not write them while a launch
    ///    may run (the launch follows at once, on the producer's own stream).
    ///
    /// Safe code cannot set them:
    ///
    /// ```compile_fail,E0133
    /// # use perdix_transport::bevy::GpuProducerSpec;
    /// fn aim(spec: GpuProducerSpec<u64>, address: u64) -> GpuProducerSpec<u64> {
    ///     spec.args(move |_world, _launch| address)
    /// }
    /// ```
    #[must_use]
    #[allow(unsafe_code)]
    pub unsafe fn args(mut self, args: impl Fn(&World, u64) -> A + Send + Sync + 'static) -> Self {
        self.args = Some(Box::new(args));
        self
    }

    /// The CPU fallback: called on a worker thread once for each launch that runs, with that
    /// launch's arguments ([`Emitter::frame`] is its launch number).
    #[must_use]
    pub fn cpu_fallback(mut self, fallback: impl FnMut(&A, &mut Emitter) + Send + 'static) -> Self {
        self.fallback = Some(Box::new(fallback));
        self
    }

    /// Compiles the kernel for `arch` (`sm_90`, say) with NVRTC and checks `A` against its
    /// parameters, as starting the producer does: the CI check, with no GPU.
    ///
    /// # Errors
    ///
    /// [`Error::Compile`](crate::Error::Compile) with NVRTC's log;
    /// [`Error::NoDevice`](crate::Error::NoDevice) without libnvrtc;
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) when `A` is not the `#[repr(C)]`
    /// struct of the kernel's parameters after the producer pointer.
    #[cfg(feature = "cuda")]
    pub fn check(&self, arch: &str) -> Result<(), crate::Error> {
        let ptx = crate::cuda::compile_ptx(&self.source, &format!("{}.cu", self.name), arch)?;
        crate::cuda::ArgSplit::new(
            &ptx,
            &self.entry,
            core::mem::size_of::<A>(),
            core::mem::align_of::<A>(),
        )
        .map(drop)
    }

    /// The producer's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kernel's source.
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The kernel's entry point.
    #[must_use]
    pub fn entry(&self) -> &str {
        &self.entry
    }
}

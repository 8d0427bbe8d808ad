//! `GpuContext`: one CUDA device, opened once, shared by producers, memory and kernels.

use std::sync::Arc;

use cudarc::driver::sys;
use cudarc::driver::{CudaContext, CudaFunction, CudaStream};

use super::driver;
use super::key::ModuleKey;
use super::loaded::Loaded;
use super::params::Entries;
use crate::Error;

/// An open CUDA device (its primary context), cheap to clone.
///
/// Opening checks for the driver library first, so a machine without one gets
/// [`Error::NoDevice`], never a panic. Opening is slow (the driver's own start-up, see
/// `docs/DESIGN-NOTES.md`): open one and clone it.
///
/// Kernels are loaded once per CUDA context, whichever `GpuContext` on it asks first. Loading
/// one waits for the kernels already running in the context (the driver synchronizes it; on an
/// H100 it waited for as long as another kernel held every SM), so start perdix's producers,
/// which load their kernels, before launching a kernel of your own that holds the GPU.
///
/// # Examples
///
/// ```no_run
/// use perdix_transport::cuda::GpuContext;
/// use perdix_transport::Error;
///
/// match GpuContext::new(0) {
///     Ok(gpu) => println!("{} (sm_{}{})", gpu.name(), gpu.compute_capability().0, gpu.compute_capability().1),
///     Err(Error::NoDevice(why)) => println!("CPU only: {why}"),
///     Err(err) => return Err(err),
/// }
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone)]
pub struct GpuContext {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Arc<CudaContext>,
    name: String,
    compute_capability: (i32, i32),
    multiprocessors: u32,
    /// CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS: the CPU may touch managed memory while
    /// kernels run.
    concurrent_managed_access: bool,
    /// The modules loaded into the CUDA context, with the parameters of each entry point their
    /// PTX declares: shared by every `GpuContext` on that context (`loaded.rs`).
    modules: Arc<Loaded>,
}

impl core::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GpuContext")
            .field("ordinal", &self.inner.ctx.ordinal())
            .field("name", &self.inner.name)
            .field("compute_capability", &self.inner.compute_capability)
            .field("multiprocessors", &self.inner.multiprocessors)
            .finish()
    }
}

impl GpuContext {
    /// Opens device `ordinal`.
    ///
    /// # Errors
    ///
    /// [`Error::NoDevice`] when libcuda cannot be loaded, the driver reports no device (or is too
    /// old for CUDA 13.0), or there is no device `ordinal`; [`Error::Driver`] for other driver
    /// failures.
    pub fn new(ordinal: usize) -> Result<Self, Error> {
        let count = super::presence::device_count()?;
        if ordinal >= count {
            return Err(Error::NoDevice("no CUDA device with that ordinal"));
        }
        let ctx = CudaContext::new(ordinal).map_err(super::presence::no_device_or)?;
        // SAFETY: cudarc's conditions for managing streams by hand hold because this crate
        // makes no `CudaSlice` on its own context: its device memory is `cuMemAlloc`ed
        // (`DeviceWords`, synchronized on its stream after it is allocated and before any other
        // stream uses it, and freed only once every stream that used it is idle, or leaked:
        // `teardown.rs`), its ring memory is mapped pinned or managed memory (`memory.rs`), and
        // the streams that write the control block at once write aligned 64-bit words of its
        // protocol (`control.rs`: kernel atomics, head pushes, stop and closed flags), which is
        // the design, not a race cudarc's events would order. Without tracking, creating a
        // stream never synchronizes the whole context either. The context is this crate's own
        // (an app's context, given to `from_cudarc`, keeps the app's setting).
        unsafe { ctx.disable_event_tracking() };
        Self::open(ctx)
    }

    /// Uses the app's own cudarc context: producers made on it share the app's device, and the
    /// app launches its kernels on its own streams of that context with a producer's
    /// [`handle`](super::GpuProducer::handle) as an argument.
    ///
    /// The context is used as it is: its event tracking stays as the app set it (perdix's own
    /// device memory and ring memory are raw allocations, which tracking never touches).
    ///
    /// # Errors
    ///
    /// [`Error::Driver`] when the device's name or attributes cannot be read.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use perdix_transport::cuda::{cudarc, GpuContext};
    /// use perdix_transport::Error;
    ///
    /// let ctx = cudarc::driver::CudaContext::new(0).map_err(Error::Driver)?; // the app's
    /// let gpu = GpuContext::from_cudarc(ctx.clone())?;
    /// assert!(std::sync::Arc::ptr_eq(gpu.cudarc(), &ctx));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn from_cudarc(ctx: Arc<CudaContext>) -> Result<Self, Error> {
        ctx.bind_to_thread().map_err(Error::Driver)?;
        Self::open(ctx)
    }

    /// Reads the device's name and attributes.
    fn open(ctx: Arc<CudaContext>) -> Result<Self, Error> {
        let ordinal = ctx.ordinal();
        let name = ctx.name().map_err(Error::Driver)?;
        let compute_capability = ctx.compute_capability().map_err(Error::Driver)?;
        let multiprocessors = ctx
            .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(Error::Driver)? as u32;
        let concurrent_managed_access = ctx
            .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS)
            .map_err(Error::Driver)?
            != 0;
        tracing::info!(
            device = %name,
            ordinal,
            sm = format!("{}{}", compute_capability.0, compute_capability.1),
            multiprocessors,
            "perdix: CUDA device opened"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                name,
                compute_capability,
                multiprocessors,
                concurrent_managed_access,
                modules: Loaded::of(&ctx),
                ctx,
            }),
        })
    }

    /// The device's name, e.g. `NVIDIA H100 80GB HBM3`.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The cudarc context perdix uses (the app's, when made with
    /// [`from_cudarc`](Self::from_cudarc)): streams made from it can launch kernels that emit
    /// through a producer's [`handle`](super::GpuProducer::handle).
    #[must_use]
    pub fn cudarc(&self) -> &Arc<CudaContext> {
        &self.inner.ctx
    }

    /// Device ordinal.
    #[must_use]
    pub fn ordinal(&self) -> usize {
        self.inner.ctx.ordinal()
    }

    /// Compute capability `(major, minor)`; kernels need 7.0+ (`__nanosleep`).
    #[must_use]
    pub fn compute_capability(&self) -> (i32, i32) {
        self.inner.compute_capability
    }

    /// NVRTC architecture name of this device, e.g. `sm_90`.
    #[must_use]
    pub fn arch(&self) -> String {
        let (major, minor) = self.inner.compute_capability;
        format!("sm_{major}{minor}")
    }

    /// Streaming multiprocessors: the natural grid size (one block per SM).
    #[must_use]
    pub fn multiprocessors(&self) -> u32 {
        self.inner.multiprocessors
    }

    /// Whether the device reports concurrent managed access (the CPU may read and write managed
    /// memory while kernels run): [`GpuMemory::Managed`](super::GpuMemory::Managed) rings need
    /// it. True on Linux for Pascal and later; false on Windows and under some virtualization.
    #[must_use]
    pub fn concurrent_managed_access(&self) -> bool {
        self.inner.concurrent_managed_access
    }

    /// Free and total device memory in bytes.
    ///
    /// # Errors
    ///
    /// [`Error::Driver`] if the driver call fails.
    pub fn memory_info(&self) -> Result<(usize, usize), Error> {
        self.bind()?;
        self.inner.ctx.mem_get_info().map_err(Error::Driver)
    }

    /// Makes the context current on the calling thread (every driver call needs it).
    ///
    /// Also returns, once, an error cudarc recorded in a `Drop` (a stream or device memory freed
    /// after a kernel fault): a kernel's fault becomes [`Error::KernelFault`] here as anywhere.
    pub(crate) fn bind(&self) -> Result<(), Error> {
        self.inner.ctx.bind_to_thread().map_err(driver::classify)
    }

    pub(crate) fn device(&self) -> sys::CUdevice {
        self.inner.ctx.cu_device()
    }

    /// A new non-blocking stream.
    pub(crate) fn new_stream(&self) -> Result<Arc<CudaStream>, Error> {
        self.inner.ctx.new_stream().map_err(Error::Driver)
    }

    /// The function `entry` of the module compiled from `ptx` (keyed by `key`), loading the
    /// module once per CUDA context (whichever `GpuContext` on it asks first), with the
    /// parameters its PTX declares for each entry point.
    ///
    /// # Errors
    ///
    /// As `ptx`; [`Error::InvalidConfig`] naming `entry` when the PTX does not declare it, or
    /// declares it with a parameter list that cannot be read (no function is handed out whose
    /// launches could not be checked); [`Error::Driver`] when the module does not load.
    pub(crate) fn function(
        &self,
        key: ModuleKey,
        ptx: impl FnOnce() -> Result<String, Error>,
        entry: &str,
    ) -> Result<(CudaFunction, Arc<Entries>), Error> {
        let (module, entries) = {
            let mut modules = self.inner.modules.lock();
            match modules.get(&key) {
                Some((module, entries)) => (Arc::clone(module), Arc::clone(entries)),
                None => {
                    let ptx = ptx()?;
                    let entries = Arc::new(Entries::parse(&ptx));
                    let module = self
                        .inner
                        .ctx
                        .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
                        .map_err(Error::Driver)?;
                    modules.insert(key, (Arc::clone(&module), Arc::clone(&entries)));
                    (module, entries)
                }
            }
        };
        entries.params(entry)?;
        let function = module.load_function(entry).map_err(Error::Driver)?;
        Ok((function, entries))
    }
}

/// The device for a lib test, or `None` (after saying why) without one; with
/// `PERDIX_REQUIRE_GPU` set, a missing device fails the test instead.
#[cfg(test)]
pub(crate) fn test_device() -> Option<GpuContext> {
    match GpuContext::new(0) {
        Ok(gpu) => Some(gpu),
        Err(Error::NoDevice(why)) if std::env::var_os("PERDIX_REQUIRE_GPU").is_none() => {
            println!("skipped: {why}");
            None
        }
        Err(err) => panic!("no device: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::test_device;
    use crate::cuda::key::ModuleKey;
    use crate::Error;

    /// Valid PTX with an entry whose list the launch check cannot read (a block comment in it)
    /// and one it can.
    const PTX: &str = "
.version 8.0
.target sm_70
.address_size 64

.visible .entry odd(
	.param .u64 odd_param_0,
	.param .u32 /* n */ odd_param_1
)
{
	ret;
}

.visible .entry fine(
	.param .u64 fine_param_0
)
{
	ret;
}
";

    /// No function is handed out whose launches could not be checked: an entry whose list
    /// cannot be read, or one the PTX does not declare, is `InvalidConfig`, never a function
    /// (before: the function, and a driver error).
    #[test]
    #[ignore = "needs a CUDA device"]
    fn a_function_whose_parameters_cannot_be_read_is_not_handed_out() {
        let Some(gpu) = test_device() else { return };
        let key = ModuleKey::of(b"context test: odd and fine");
        match gpu.function(key, || Ok(PTX.to_owned()), "odd") {
            Err(Error::InvalidConfig(why)) => {
                assert!(
                    why.contains("`odd`") && why.contains("cannot be read"),
                    "{why}"
                );
            }
            Err(err) => panic!("expected InvalidConfig, got {err}"),
            Ok(_) => panic!("the function of an unreadable list was handed out"),
        }
        let loaded_once = || -> Result<String, Error> { panic!("the module is loaded once") };
        match gpu.function(key, loaded_once, "absent") {
            Err(Error::InvalidConfig(why)) => assert!(why.contains("no entry point"), "{why}"),
            Err(err) => panic!("expected InvalidConfig, got {err}"),
            Ok(_) => panic!("a function the PTX does not declare"),
        }
        let (_, entries) = gpu
            .function(key, loaded_once, "fine")
            .expect("a readable entry");
        assert_eq!(entries.params("fine").map(<[_]>::len).ok(), Some(1));
    }

    /// Two `GpuContext`s on one device share its table of modules (`loaded.rs`): a module the
    /// first loaded, the second gets without compiling or loading it again.
    #[test]
    #[ignore = "needs a CUDA device"]
    fn contexts_on_one_device_share_their_modules() {
        use crate::cuda::module;
        let Some(first) = test_device() else { return };
        let second = super::GpuContext::new(0).expect("the device again");
        assert!(std::sync::Arc::ptr_eq(
            &first.inner.modules,
            &second.inner.modules
        ));
        let arch = first.arch();
        let key = module::cache_key(module::PROBE_CU, &arch);
        let entry = "perdix_clock_probe";
        first
            .function(
                key,
                || module::compile_ptx(module::PROBE_CU, "probe.cu", &arch),
                entry,
            )
            .expect("the probe");
        second
            .function(key, || panic!("compiled and loaded again"), entry)
            .expect("the probe from the shared table");
    }
}

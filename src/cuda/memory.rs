//! Ring memory the GPU can write: pinned (mapped host) and managed (unified) memory.

use core::ptr::NonNull;
use std::sync::Arc;

use cudarc::driver::sys::CUdeviceptr;

use super::{driver, GpuContext};
use crate::layout::SLOT_ALIGN;
use crate::{Backend, Error, RingMemory};

/// Which CUDA memory a GPU producer's rings live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum GpuMemory {
    /// Page-locked host memory mapped into the device ([`CudaPinned`]). The default: at least as
    /// fast as managed memory (`docs/PERFORMANCE.md`), and no page migration can ever move it.
    #[default]
    Pinned,
    /// Managed (unified) memory advised to live on the CPU and be accessed by the GPU
    /// ([`CudaManaged`]).
    Managed,
}

impl GpuMemory {
    /// The ring backend this memory reports.
    #[must_use]
    pub const fn backend(self) -> Backend {
        match self {
            Self::Pinned => Backend::CudaPinned,
            Self::Managed => Backend::CudaManaged,
        }
    }
}

impl core::str::FromStr for GpuMemory {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pinned" | "cuda-pinned" => Ok(Self::Pinned),
            "managed" | "unified" | "cuda-managed" => Ok(Self::Managed),
            other => Err(format!(
                "unknown GPU memory {other:?}: expected pinned or managed"
            )),
        }
    }
}

impl core::fmt::Display for GpuMemory {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Pinned => "pinned",
            Self::Managed => "managed",
        })
    }
}

/// Memory that both the CPU and the device address.
pub(crate) trait DeviceMemory: RingMemory {
    /// The device address of [`as_ptr`](RingMemory::as_ptr).
    fn device_ptr(&self) -> CUdeviceptr;
}

/// Page-locked host memory mapped into the device (`cuMemHostAlloc` with DEVICEMAP | PORTABLE).
///
/// Not write-combined (cudarc's `alloc_pinned` is, and the CPU reads such memory uncached): the
/// CPU consumer reads these slots at cache speed, the GPU writes them over the link.
///
/// # Examples
///
/// ```no_run
/// use perdix_transport::cuda::{CudaPinned, GpuContext};
/// use perdix_transport::{Buffer, RingMemory};
///
/// let gpu = GpuContext::new(0)?;
/// let memory = CudaPinned::alloc(&gpu, 4096 * 256)?;
/// assert_eq!(memory.len(), 4096 * 256);
/// // A host-produced ring in pinned memory (GPU producers build theirs with `GpuProducer`).
/// let buffer = Buffer::builder(4096).build_in(|bytes| CudaPinned::alloc(&gpu, bytes))?;
/// # Ok::<(), perdix_transport::Error>(())
/// ```
pub struct CudaPinned {
    ptr: NonNull<u8>,
    dptr: CUdeviceptr,
    len: usize,
    gpu: GpuContext,
}

impl core::fmt::Debug for CudaPinned {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CudaPinned")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

// SAFETY: `CudaPinned` owns its allocation; the pointers are addresses, and all concurrent access
// to the bytes goes through the ring protocol.
unsafe impl Send for CudaPinned {}
// SAFETY: as for `Send`: `&CudaPinned` gives out only addresses.
unsafe impl Sync for CudaPinned {}

impl CudaPinned {
    /// Allocates `bytes` of pinned, device-mapped host memory.
    ///
    /// # Errors
    ///
    /// [`Error::Alloc`] when `bytes` is 0 or the driver cannot pin that much; [`Error::Driver`]
    /// when the context cannot be made current or the device address cannot be had.
    pub fn alloc(gpu: &GpuContext, bytes: usize) -> Result<Self, Error> {
        let failed = Error::Alloc {
            bytes,
            backend: Backend::CudaPinned.name(),
        };
        if bytes == 0 {
            return Err(failed);
        }
        gpu.bind()?;
        // SAFETY: the context is current (bound above); the pointer is freed once, in `Drop`.
        let raw = unsafe { driver::mem_host_alloc(bytes) }.map_err(|err| {
            tracing::warn!(bytes, %err, "perdix: cuMemHostAlloc failed");
            failed.clone()
        })?;
        let ptr = NonNull::new(raw.cast::<u8>()).ok_or(failed)?;
        // SAFETY: `raw` came from `mem_host_alloc` just now; the context is current.
        let dptr = match unsafe { driver::mem_host_device_pointer(raw) } {
            Ok(dptr) => dptr,
            Err(err) => {
                // SAFETY: `raw` is ours and no kernel has seen it.
                let _ = unsafe { driver::mem_free_host(raw) };
                return Err(Error::Driver(err));
            }
        };
        Ok(Self {
            ptr,
            dptr,
            len: bytes,
            gpu: gpu.clone(),
        })
    }
}

impl Drop for CudaPinned {
    fn drop(&mut self) {
        if let Err(err) = self.gpu.bind() {
            tracing::warn!(%err, "perdix: cannot free pinned ring memory");
            return;
        }
        // SAFETY: the pointer came from `mem_host_alloc`, is freed only here, and its owners
        // (rings, producers) wait for their kernels before dropping it.
        if let Err(err) = unsafe { driver::mem_free_host(self.ptr.as_ptr().cast()) } {
            tracing::warn!(%err, "perdix: cuMemFreeHost failed");
        }
    }
}

// SAFETY: `len` bytes at a page-aligned (so `SLOT_ALIGN`-aligned) address, owned until drop, and
// touched only by the ring and the kernels of the producer that owns the ring (rules 1–3).
unsafe impl RingMemory for CudaPinned {
    fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    fn len(&self) -> usize {
        self.len
    }

    fn backend(&self) -> Backend {
        Backend::CudaPinned
    }

    fn device(&self) -> Option<u32> {
        u32::try_from(self.gpu.ordinal()).ok()
    }
}

impl DeviceMemory for CudaPinned {
    fn device_ptr(&self) -> CUdeviceptr {
        self.dptr
    }
}

/// Managed (unified) memory: `cuMemAllocManaged`, advised to prefer the CPU and to be accessed
/// by the device, so pages stay in host memory and the GPU writes them over the link.
///
/// Never asks for more than the device has free (a managed allocation larger than free device
/// memory can hang the GPU on some systems).
///
/// # Examples
///
/// ```no_run
/// use perdix_transport::cuda::{CudaManaged, GpuContext};
/// use perdix_transport::RingMemory;
///
/// let gpu = GpuContext::new(0)?;
/// let memory = CudaManaged::alloc(&gpu, 1 << 20)?;
/// assert_eq!(memory.len(), 1 << 20);
/// # Ok::<(), perdix_transport::Error>(())
/// ```
pub struct CudaManaged {
    dptr: CUdeviceptr,
    len: usize,
    gpu: GpuContext,
}

impl core::fmt::Debug for CudaManaged {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CudaManaged")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

// SAFETY: as for `CudaPinned`.
unsafe impl Send for CudaManaged {}
// SAFETY: as for `CudaPinned`.
unsafe impl Sync for CudaManaged {}

impl CudaManaged {
    /// Allocates `bytes` of managed memory (preferred location CPU, accessed by this device).
    ///
    /// A ring's consumer reads its slots while kernels write them, which managed memory allows
    /// only on a device with concurrent managed access
    /// ([`GpuContext::concurrent_managed_access`]); elsewhere the CPU's access faults while any
    /// kernel runs, so such a device is refused.
    ///
    /// # Errors
    ///
    /// [`Error::ManagedUnsupported`] when the device lacks concurrent managed access (use
    /// [`CudaPinned`]); [`Error::Alloc`] when `bytes` is 0, above the device's free memory, or
    /// refused; [`Error::Driver`] when the context cannot be made current.
    pub fn alloc(gpu: &GpuContext, bytes: usize) -> Result<Self, Error> {
        managed_supported(gpu.concurrent_managed_access(), gpu.ordinal())?;
        let failed = Error::Alloc {
            bytes,
            backend: Backend::CudaManaged.name(),
        };
        if bytes == 0 {
            return Err(failed);
        }
        let (free, _total) = gpu.memory_info()?;
        if bytes > free / 2 {
            tracing::warn!(
                bytes,
                free,
                "perdix: managed ring larger than half the free device memory"
            );
            return Err(failed);
        }
        // SAFETY: the context is current (`memory_info` bound it); freed once, in `Drop`.
        let dptr = unsafe { driver::mem_alloc_managed(bytes, gpu.device()) }.map_err(|err| {
            tracing::warn!(bytes, %err, "perdix: cuMemAllocManaged failed");
            failed.clone()
        })?;
        if dptr == 0 || !(dptr as usize).is_multiple_of(SLOT_ALIGN) {
            // SAFETY: `dptr` is ours and no kernel has seen it.
            let _ = unsafe { driver::mem_free_managed(dptr) };
            return Err(failed);
        }
        Ok(Self {
            dptr,
            len: bytes,
            gpu: gpu.clone(),
        })
    }
}

impl Drop for CudaManaged {
    fn drop(&mut self) {
        if let Err(err) = self.gpu.bind() {
            tracing::warn!(%err, "perdix: cannot free managed ring memory");
            return;
        }
        // SAFETY: `dptr` came from `mem_alloc_managed`, is freed only here, after its kernels.
        if let Err(err) = unsafe { driver::mem_free_managed(self.dptr) } {
            tracing::warn!(%err, "perdix: cuMemFree (managed) failed");
        }
    }
}

// SAFETY: managed memory is addressed by the CPU at the same address as the device (unified
// addressing); `len` bytes, aligned (checked in `alloc`), owned until drop (rules 1–3).
unsafe impl RingMemory for CudaManaged {
    fn as_ptr(&self) -> NonNull<u8> {
        // `alloc` refused a null address.
        NonNull::new(self.dptr as usize as *mut u8).unwrap_or(NonNull::dangling())
    }

    fn len(&self) -> usize {
        self.len
    }

    fn backend(&self) -> Backend {
        Backend::CudaManaged
    }

    fn device(&self) -> Option<u32> {
        u32::try_from(self.gpu.ordinal()).ok()
    }
}

impl DeviceMemory for CudaManaged {
    fn device_ptr(&self) -> CUdeviceptr {
        self.dptr
    }
}

/// `Ok` when managed rings can work on the device `ordinal`: it reports concurrent managed
/// access (`supported`).
fn managed_supported(supported: bool, ordinal: usize) -> Result<(), Error> {
    if supported {
        return Ok(());
    }
    let device = u32::try_from(ordinal).unwrap_or(u32::MAX);
    tracing::warn!(
        device,
        "perdix: managed rings refused: no concurrent managed access"
    );
    Err(Error::ManagedUnsupported { device })
}

/// A slot-aligned window of a shared allocation: the rings of one producer share a single
/// allocation, so they cannot differ in speed the way separate allocations of one kind can.
pub(crate) struct Window {
    parent: Arc<dyn DeviceMemory>,
    offset: usize,
    len: usize,
}

impl core::fmt::Debug for Window {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Window")
            .field("parent", &self.parent)
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish()
    }
}

impl Window {
    /// `len` bytes at `offset` of `parent`, or `None` if that is outside it or misaligned.
    pub(crate) fn new(parent: Arc<dyn DeviceMemory>, offset: usize, len: usize) -> Option<Self> {
        let end = offset.checked_add(len)?;
        (end <= parent.len() && offset.is_multiple_of(SLOT_ALIGN)).then_some(Self {
            parent,
            offset,
            len,
        })
    }
}

// SAFETY: a sub-range of the parent's region (checked in `new`), aligned because the parent is
// and `offset` is a multiple of `SLOT_ALIGN`; the `Arc` keeps the parent alive; windows of one
// parent never overlap (the producer hands out disjoint ranges).
unsafe impl RingMemory for Window {
    fn as_ptr(&self) -> NonNull<u8> {
        // SAFETY: `offset + len <= parent.len()`, so the result is inside the parent's region.
        unsafe { self.parent.as_ptr().add(self.offset) }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn device(&self) -> Option<u32> {
        self.parent.device()
    }

    fn backend(&self) -> Backend {
        self.parent.backend()
    }
}

impl DeviceMemory for Window {
    fn device_ptr(&self) -> CUdeviceptr {
        self.parent.device_ptr() + self.offset as CUdeviceptr
    }
}

#[cfg(test)]
mod tests {
    use super::managed_supported;
    use crate::Error;

    #[test]
    fn managed_memory_needs_concurrent_managed_access() {
        assert_eq!(managed_supported(true, 0), Ok(()));
        assert_eq!(
            managed_supported(false, 3),
            Err(Error::ManagedUnsupported { device: 3 })
        );
    }
}

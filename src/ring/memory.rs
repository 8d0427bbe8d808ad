//! Where the slots live: the memory-backend trait and the plain `Host` backend.
//!
//! The CPU consumer is the same code for every backend; a backend only says where the bytes are.
//! The CUDA backends (`cuda` feature) implement [`RingMemory`] for pinned and managed memory.

use core::ptr::NonNull;
use std::alloc::{self, Layout};

use crate::layout::SLOT_ALIGN;
use crate::Error;

/// Which kind of memory a ring lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// Ordinary host memory: CPU producers only.
    Host,
    /// Page-locked host memory mapped into the device (`cuMemHostAlloc`, not write-combined).
    CudaPinned,
    /// CUDA managed (unified) memory, preferred location the CPU, accessed by the GPU.
    CudaManaged,
}

impl Backend {
    /// Short lowercase name, as logs and telemetry print it.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::CudaPinned => "cuda-pinned",
            Self::CudaManaged => "cuda-managed",
        }
    }
}

impl core::fmt::Display for Backend {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A region of memory a ring can live in.
///
/// # Safety
///
/// Implementors guarantee that:
/// 1. [`as_ptr`](Self::as_ptr) returns the same pointer for the life of the value, valid for CPU
///    reads and writes of [`len`](Self::len) bytes, aligned to [`SLOT_ALIGN`];
/// 2. the region is not freed, moved or handed to anyone else until the value is dropped;
/// 3. nobody but the ring and the producers the ring's owner starts touches the region.
pub unsafe trait RingMemory: Send + Sync + core::fmt::Debug + 'static {
    /// Start of the region, as the CPU addresses it.
    fn as_ptr(&self) -> NonNull<u8>;
    /// Length of the region in bytes.
    fn len(&self) -> usize;
    /// Which backend this is.
    fn backend(&self) -> Backend;
    /// The CUDA device (ordinal) whose producers write this memory, if any: what
    /// [`Consumer::device`](crate::Consumer::device) and
    /// [`MessageRef::device`](crate::MessageRef::device) report.
    fn device(&self) -> Option<u32> {
        None
    }
    /// Whether the region is empty (never, for a usable ring).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Ring memory from the global allocator: zeroed, aligned to [`SLOT_ALIGN`].
///
/// # Examples
///
/// ```
/// use perdix_transport::{Host, RingMemory};
///
/// let memory = Host::alloc(4 * 256)?;
/// assert_eq!(memory.len(), 1024);
/// assert_eq!(memory.as_ptr().as_ptr() as usize % 256, 0);
/// assert!(Host::alloc(0).is_err());
/// # Ok::<(), perdix_transport::Error>(())
/// ```
#[derive(Debug)]
pub struct Host {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: `Host` owns its allocation outright; the raw pointer is only an address, and all
// concurrent access to the bytes goes through the ring's protocol.
unsafe impl Send for Host {}
// SAFETY: as for `Send`: `&Host` gives out only the address.
unsafe impl Sync for Host {}

impl Host {
    /// Allocates `bytes` zeroed bytes aligned to [`SLOT_ALIGN`].
    ///
    /// # Errors
    ///
    /// [`Error::Alloc`] when `bytes` is 0, too large for a `Layout`, or the allocator fails.
    pub fn alloc(bytes: usize) -> Result<Self, Error> {
        let failed = Error::Alloc {
            bytes,
            backend: Backend::Host.name(),
        };
        if bytes == 0 {
            return Err(failed);
        }
        let layout = Layout::from_size_align(bytes, SLOT_ALIGN).map_err(|_| failed.clone())?;
        // SAFETY: `layout` has a non-zero size (checked above).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).ok_or(failed)?;
        Ok(Self { ptr, layout })
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed` with this `layout` and is freed only here.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

// SAFETY: the allocation is `layout.size()` bytes at `SLOT_ALIGN`, owned until drop (rules 1–3).
unsafe impl RingMemory for Host {
    fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    fn len(&self) -> usize {
        self.layout.size()
    }

    fn backend(&self) -> Backend {
        Backend::Host
    }
}

//! `DeviceWords`: 64-bit words in device memory, the crate's one device allocation (every
//! producer's control block, and the stress run's counters).
//!
//! Allocated with `cuMemAlloc` (cudarc's `result::malloc_sync`), not cudarc's `CudaSlice`: on a
//! device with memory pools `CudaSlice` comes from `cuMemAllocAsync`, and the consumer's head
//! push (`cuStreamWriteValue64` into the control block) fails on that memory with
//! `CUDA_ERROR_INVALID_VALUE` on the H200 (see docs/DESIGN-NOTES.md, "One device allocation").
//! Zeroing and copies are stream-ordered through cudarc's `result` layer and waited for. The
//! `Drop` here is the crate's rule: free only with the context current, else leak with a
//! warning. Freeing while a kernel may still use the words is the owner's to prevent: a
//! `GpuProducer` whose kernels cannot be shown to have finished leaks its control block whole
//! (`teardown.rs`), and an owner that cannot synchronize the streams writing its words calls
//! [`DeviceWords::leak`].

use std::sync::Arc;

use cudarc::driver::result;
use cudarc::driver::sys::{cudaError_enum, CUdeviceptr};
use cudarc::driver::{CudaStream, DriverError};

use super::{driver, GpuContext};
use crate::Error;

/// Bytes of one word.
const WORD: usize = core::mem::size_of::<u64>();

/// 64-bit words in device memory, freed on drop (see the module docs for when it leaks).
pub(crate) struct DeviceWords {
    gpu: GpuContext,
    /// The device address of word 0 (from `cuMemAlloc`), for kernel arguments, stream memory
    /// ops and copies; freed only in `Drop`.
    dptr: CUdeviceptr,
    /// Words allocated.
    words: usize,
    /// Set by [`leak`](Self::leak): `Drop` leaves the words allocated.
    leak: bool,
}

impl core::fmt::Debug for DeviceWords {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DeviceWords")
            .field("words", &self.words)
            .finish_non_exhaustive()
    }
}

/// `CUDA_ERROR_INVALID_VALUE`: a copy outside the allocation.
fn out_of_range() -> Error {
    Error::Driver(DriverError(cudaError_enum::CUDA_ERROR_INVALID_VALUE))
}

impl DeviceWords {
    /// `words` zeroed words, zeroed on `stream`, which is synchronized before this returns: any
    /// stream of the context may use them from then on.
    ///
    /// # Errors
    ///
    /// [`Error::Alloc`] (backend `cuda-device`) when the driver refuses the allocation;
    /// [`Error::Driver`] when the context cannot be made current or the words not zeroed.
    pub(crate) fn zeroed(
        gpu: &GpuContext,
        stream: &Arc<CudaStream>,
        words: usize,
    ) -> Result<Self, Error> {
        let alloc_error = |bytes| Error::Alloc {
            bytes,
            backend: "cuda-device",
        };
        let bytes = words.checked_mul(WORD).ok_or(alloc_error(usize::MAX))?;
        gpu.bind()?;
        // SAFETY: the context is current (`bind`); the memory is only handed out below after it
        // is zeroed, so its unset contents are never read.
        let dptr = unsafe { result::malloc_sync(bytes.max(WORD)) }.map_err(|err| {
            tracing::warn!(bytes, %err, "perdix: device memory allocation failed");
            alloc_error(bytes)
        })?;
        // From here `Drop` frees `dptr` on every path.
        let this = Self {
            gpu: gpu.clone(),
            dptr,
            words,
            leak: false,
        };
        // SAFETY: `dptr..dptr + bytes` is the live allocation just made, in the current context;
        // `stream` belongs to it; the stream is synchronized before the words are used.
        unsafe { result::memset_d8_async(dptr, 0, bytes, stream.cu_stream()) }
            .map_err(Error::Driver)?;
        stream.synchronize().map_err(Error::Driver)?;
        Ok(this)
    }

    /// The device address of word 0.
    #[inline]
    pub(crate) fn dptr(&self) -> CUdeviceptr {
        self.dptr
    }

    /// Leaves the words allocated when `self` is dropped (their owner cannot show that nothing
    /// still writes them).
    pub(crate) fn leak(&mut self) {
        self.leak = true;
    }

    /// Copies `src` into words `0..src.len()` on `stream` and waits for the copy.
    ///
    /// # Errors
    ///
    /// [`Error::Driver`] from the copy or the synchronization, or `CUDA_ERROR_INVALID_VALUE`
    /// when `src` is longer than the allocation.
    pub(crate) fn write(&mut self, stream: &Arc<CudaStream>, src: &[u64]) -> Result<(), Error> {
        if src.len() > self.words {
            return Err(out_of_range());
        }
        self.gpu.bind()?;
        // SAFETY: `src.len()` words fit the live allocation (checked above); `src` is borrowed
        // until the stream is synchronized below, so the asynchronous copy reads live memory.
        unsafe { result::memcpy_htod_async(self.dptr, src, stream.cu_stream()) }
            .map_err(Error::Driver)?;
        stream.synchronize().map_err(Error::Driver)
    }

    /// Copies words `first..first + out.len()` into `out` on `stream` and waits for the copy
    /// (which does not wait for kernels on other streams).
    ///
    /// # Errors
    ///
    /// [`Error::KernelFault`] / [`Error::Driver`] from the copy or the synchronization, or
    /// `CUDA_ERROR_INVALID_VALUE` for a range outside the allocation.
    pub(crate) fn read(
        &self,
        stream: &Arc<CudaStream>,
        first: usize,
        out: &mut [u64],
    ) -> Result<(), Error> {
        let end = first.checked_add(out.len()).ok_or_else(out_of_range)?;
        if end > self.words {
            return Err(out_of_range());
        }
        self.gpu.bind()?;
        // `first <= end <= words`, so `first * WORD` is within the allocation and cannot overflow.
        let src = self.dptr + (first * WORD) as u64;
        // SAFETY: `src..src + out.len()` words are inside the live allocation (checked above);
        // `out` is borrowed until the stream is synchronized below, so the asynchronous copy
        // writes live memory, and `u64` has no invalid bit patterns.
        unsafe { result::memcpy_dtoh_async(out, src, stream.cu_stream()) }
            .map_err(driver::classify)?;
        stream.synchronize().map_err(driver::classify)
    }
}

impl Drop for DeviceWords {
    fn drop(&mut self) {
        if self.leak {
            tracing::warn!("perdix: leaking device memory that may still be in use");
            return;
        }
        if let Err(err) = self.gpu.bind() {
            tracing::warn!(%err, "perdix: cannot make the context current to free device memory; leaking it");
            return;
        }
        // SAFETY: `dptr` came from `malloc_sync` in this context and is freed here only (`Drop`
        // runs once); its owner leaks it instead (`leak`) when kernels may still use it, and
        // every copy into or out of it was synchronized before its call returned.
        if let Err(err) = unsafe { result::free_sync(self.dptr) } {
            tracing::warn!(%err, "perdix: freeing device memory failed");
        }
    }
}

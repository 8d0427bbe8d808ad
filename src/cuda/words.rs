//! `DeviceWords`: 64-bit words in device memory, the crate's one device allocation (every
//! producer's control block, and the stress run's counters).
//!
//! A cudarc `CudaSlice<u64>`: allocated, zeroed and copied through cudarc's safe API, and freed by
//! cudarc (stream-ordered, on the stream it was allocated on) when dropped. The `Drop` here adds
//! the crate's rule: free only with the context current, else leak with a warning. Freeing while
//! a kernel may still use the words is the owner's to prevent: a `GpuProducer` whose kernels
//! cannot be shown to have finished leaks its control block whole (`teardown.rs`), and an owner
//! that cannot synchronize the streams writing its words calls [`DeviceWords::leak`].

use core::mem::ManuallyDrop;
use std::sync::Arc;

use cudarc::driver::sys::{cudaError_enum, CUdeviceptr};
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DriverError};

use super::{driver, GpuContext};
use crate::Error;

/// 64-bit words in device memory, freed on drop (see the module docs for when it leaks).
pub(crate) struct DeviceWords {
    gpu: GpuContext,
    /// Dropped only in `Drop`, and only with the context current.
    slice: ManuallyDrop<CudaSlice<u64>>,
    /// The device address of word 0, for kernel arguments and stream memory ops.
    dptr: CUdeviceptr,
    /// Set by [`leak`](Self::leak): `Drop` leaves the words allocated.
    leak: bool,
}

impl core::fmt::Debug for DeviceWords {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DeviceWords")
            .field("words", &self.slice.len())
            .finish_non_exhaustive()
    }
}

impl DeviceWords {
    /// `words` zeroed words, allocated and zeroed on `stream`, which is synchronized before this
    /// returns: any stream of the context may use them from then on.
    ///
    /// # Errors
    ///
    /// [`Error::Alloc`] (backend `cuda-device`) when the driver refuses the allocation;
    /// [`Error::Driver`] when the context cannot be made current or the stream not synchronized.
    pub(crate) fn zeroed(
        gpu: &GpuContext,
        stream: &Arc<CudaStream>,
        words: usize,
    ) -> Result<Self, Error> {
        let bytes = words * core::mem::size_of::<u64>();
        gpu.bind()?;
        let slice = stream.alloc_zeros::<u64>(words).map_err(|err| {
            tracing::warn!(bytes, %err, "perdix: device memory allocation failed");
            Error::Alloc {
                bytes,
                backend: "cuda-device",
            }
        })?;
        // Event tracking is off (`GpuContext::new`), so the guard this returns records nothing.
        let dptr = slice.device_ptr(stream).0;
        let this = Self {
            gpu: gpu.clone(),
            slice: ManuallyDrop::new(slice),
            dptr,
            leak: false,
        };
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
        if src.len() > self.slice.len() {
            return Err(Error::Driver(DriverError(
                cudaError_enum::CUDA_ERROR_INVALID_VALUE,
            )));
        }
        stream
            .memcpy_htod(src, &mut *self.slice)
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
        let view = first
            .checked_add(out.len())
            .and_then(|end| self.slice.try_slice(first..end))
            .ok_or(Error::Driver(DriverError(
                cudaError_enum::CUDA_ERROR_INVALID_VALUE,
            )))?;
        stream.memcpy_dtoh(&view, out).map_err(driver::classify)?;
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
        // SAFETY: `slice` is dropped here and nowhere else (`Drop` runs once), and not used after.
        unsafe { ManuallyDrop::drop(&mut self.slice) };
    }
}

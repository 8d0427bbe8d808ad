//! The few raw driver calls cudarc's safe API lacks, one documented `unsafe fn` each.
//!
//! `cudarc::driver::sys` is the only FFI. Every function here returns the driver's `CUresult` as
//! a [`DriverError`], never a string. The owning wrappers live in `memory.rs`, `producer.rs` and
//! `context.rs`.

use core::ffi::c_void;

use cudarc::driver::sys::{self, CUdeviceptr, CUstream};
use cudarc::driver::DriverError;

use crate::Error;

/// Whether libcuda and libnvrtc can be loaded; cudarc panics on first use otherwise.
pub(crate) fn driver_present() -> bool {
    // SAFETY: `is_culib_present` only tries `dlopen` on candidate names and drops what it opened.
    unsafe { sys::is_culib_present() }
}

/// Whether libnvrtc can be loaded.
pub(crate) fn nvrtc_present() -> bool {
    // SAFETY: as for `driver_present`.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Maps a driver error to the crate's error: the sticky faults of a kernel to
/// [`Error::KernelFault`], the rest to [`Error::Driver`].
pub(crate) fn classify(err: DriverError) -> Error {
    use sys::cudaError_enum as E;
    match err.0 {
        E::CUDA_ERROR_ILLEGAL_ADDRESS
        | E::CUDA_ERROR_LAUNCH_TIMEOUT
        | E::CUDA_ERROR_ASSERT
        | E::CUDA_ERROR_HARDWARE_STACK_ERROR
        | E::CUDA_ERROR_ILLEGAL_INSTRUCTION
        | E::CUDA_ERROR_MISALIGNED_ADDRESS
        | E::CUDA_ERROR_INVALID_ADDRESS_SPACE
        | E::CUDA_ERROR_INVALID_PC
        | E::CUDA_ERROR_LAUNCH_FAILED
        | E::CUDA_ERROR_ECC_UNCORRECTABLE => Error::KernelFault(err),
        _ => Error::Driver(err),
    }
}

/// `cuMemHostAlloc`: page-locked host memory, mapped into the device's address space.
///
/// Flags are DEVICEMAP | PORTABLE, and deliberately not WRITECOMBINED: the CPU reads this memory,
/// and write-combined memory reads ~68× slower. See the
/// [driver docs](https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MEM.html#group__CUDA__MEM_1g572ca4011bfcb25034888a14d4e035b9).
///
/// # Safety
///
/// 1. The calling thread has a current CUDA context.
/// 2. The returned pointer is freed once, with [`mem_free_host`].
pub(crate) unsafe fn mem_host_alloc(bytes: usize) -> Result<*mut c_void, DriverError> {
    let mut ptr = core::ptr::null_mut();
    let flags = sys::CU_MEMHOSTALLOC_DEVICEMAP | sys::CU_MEMHOSTALLOC_PORTABLE;
    // SAFETY: rule 1; `ptr` is a valid out-pointer.
    unsafe { sys::cuMemHostAlloc(&mut ptr, bytes, flags) }.result()?;
    Ok(ptr)
}

/// `cuMemHostGetDevicePointer_v2`: the device address of mapped host memory.
///
/// # Safety
///
/// 1. `ptr` came from [`mem_host_alloc`] and is not freed.
/// 2. The calling thread has a current CUDA context.
pub(crate) unsafe fn mem_host_device_pointer(ptr: *mut c_void) -> Result<CUdeviceptr, DriverError> {
    let mut dptr: CUdeviceptr = 0;
    // SAFETY: rules 1 and 2; `dptr` is a valid out-pointer; flags must be 0.
    unsafe { sys::cuMemHostGetDevicePointer_v2(&mut dptr, ptr, 0) }.result()?;
    Ok(dptr)
}

/// `cuMemFreeHost`.
///
/// # Safety
///
/// 1. `ptr` came from [`mem_host_alloc`], is freed only here, and no kernel uses it any more.
pub(crate) unsafe fn mem_free_host(ptr: *mut c_void) -> Result<(), DriverError> {
    // SAFETY: rule 1.
    unsafe { sys::cuMemFreeHost(ptr) }.result()
}

/// `cuMemAllocManaged` (global attach), then advice: preferred location the CPU, accessed by
/// `device`.
///
/// # Safety
///
/// 1. The calling thread has a current CUDA context on `device`.
/// 2. The returned address is freed once, with [`mem_free`].
pub(crate) unsafe fn mem_alloc_managed(
    bytes: usize,
    device: sys::CUdevice,
) -> Result<CUdeviceptr, DriverError> {
    let mut dptr: CUdeviceptr = 0;
    let attach = sys::CUmemAttach_flags::CU_MEM_ATTACH_GLOBAL as u32;
    // SAFETY: rule 1; `dptr` is a valid out-pointer.
    unsafe { sys::cuMemAllocManaged(&mut dptr, bytes, attach) }.result()?;
    let cpu = sys::CUmemLocation {
        type_: sys::CUmemLocationType::CU_MEM_LOCATION_TYPE_HOST,
        id: 0,
    };
    let gpu = sys::CUmemLocation {
        type_: sys::CUmemLocationType::CU_MEM_LOCATION_TYPE_DEVICE,
        id: device,
    };
    let advise = |advice, location| {
        // SAFETY: `dptr..dptr + bytes` is the managed range just allocated.
        unsafe { sys::cuMemAdvise_v2(dptr, bytes, advice, location) }.result()
    };
    let advised = advise(sys::CUmem_advise::CU_MEM_ADVISE_SET_PREFERRED_LOCATION, cpu)
        .and_then(|()| advise(sys::CUmem_advise::CU_MEM_ADVISE_SET_ACCESSED_BY, gpu));
    if let Err(err) = advised {
        // SAFETY: `dptr` was allocated above and nothing else has it.
        let _ = unsafe { mem_free(dptr) };
        return Err(err);
    }
    Ok(dptr)
}

/// `cuMemAlloc_v2`: device memory.
///
/// # Safety
///
/// 1. The calling thread has a current CUDA context.
/// 2. The returned address is freed once, with [`mem_free`].
pub(crate) unsafe fn mem_alloc(bytes: usize) -> Result<CUdeviceptr, DriverError> {
    let mut dptr: CUdeviceptr = 0;
    // SAFETY: rule 1; `dptr` is a valid out-pointer.
    unsafe { sys::cuMemAlloc_v2(&mut dptr, bytes) }.result()?;
    Ok(dptr)
}

/// `cuMemFree_v2` (device or managed memory).
///
/// # Safety
///
/// 1. `dptr` came from [`mem_alloc`] or [`mem_alloc_managed`], is freed only here, and no kernel
///    uses it any more.
pub(crate) unsafe fn mem_free(dptr: CUdeviceptr) -> Result<(), DriverError> {
    // SAFETY: rule 1.
    unsafe { sys::cuMemFree_v2(dptr) }.result()
}

/// `cuMemGetInfo_v2`: (free, total) bytes of device memory.
///
/// # Safety
///
/// 1. The calling thread has a current CUDA context.
pub(crate) unsafe fn mem_get_info() -> Result<(usize, usize), DriverError> {
    let (mut free, mut total) = (0, 0);
    // SAFETY: rule 1; valid out-pointers.
    unsafe { sys::cuMemGetInfo_v2(&mut free, &mut total) }.result()?;
    Ok((free, total))
}

/// `cuStreamWriteValue64_v2`: the stream writes `value` to `addr` (device memory) when it gets
/// there. The consumer pushes its head this way: 1.9–2.7 µs a call, and it does not wait on the
/// producer kernel's stream.
///
/// # Safety
///
/// 1. `stream` is a live stream of the current context; `addr` is 8-byte aligned device memory
///    that outlives the write.
pub(crate) unsafe fn stream_write_u64(
    stream: CUstream,
    addr: CUdeviceptr,
    value: u64,
) -> Result<(), DriverError> {
    // SAFETY: rule 1; flags 0 = CU_STREAM_WRITE_VALUE_DEFAULT (with a memory barrier).
    unsafe { sys::cuStreamWriteValue64_v2(stream, addr, value, 0) }.result()
}

/// `cuMemcpyHtoDAsync_v2`.
///
/// # Safety
///
/// 1. `stream` is a live stream of the current context; `dst..dst + bytes` is device memory and
///    `src..src + bytes` host memory that both outlive the copy (the caller synchronizes).
pub(crate) unsafe fn memcpy_htod_async(
    dst: CUdeviceptr,
    src: *const c_void,
    bytes: usize,
    stream: CUstream,
) -> Result<(), DriverError> {
    // SAFETY: rule 1.
    unsafe { sys::cuMemcpyHtoDAsync_v2(dst, src, bytes, stream) }.result()
}

/// `cuMemcpyDtoHAsync_v2`.
///
/// # Safety
///
/// 1. As [`memcpy_htod_async`], the other way round.
pub(crate) unsafe fn memcpy_dtoh_async(
    dst: *mut c_void,
    src: CUdeviceptr,
    bytes: usize,
    stream: CUstream,
) -> Result<(), DriverError> {
    // SAFETY: rule 1.
    unsafe { sys::cuMemcpyDtoHAsync_v2(dst, src, bytes, stream) }.result()
}

/// `cuMemsetD8Async`.
///
/// # Safety
///
/// 1. `stream` is a live stream of the current context; `dst..dst + bytes` is device memory.
#[cfg_attr(not(feature = "testing"), allow(dead_code))] // used by the test tooling only
pub(crate) unsafe fn memset_async(
    dst: CUdeviceptr,
    value: u8,
    bytes: usize,
    stream: CUstream,
) -> Result<(), DriverError> {
    // SAFETY: rule 1.
    unsafe { sys::cuMemsetD8Async(dst, value, bytes, stream) }.result()
}

/// `cuStreamQuery`: `Ok(true)` when all work on the stream is done, `Ok(false)` while it runs,
/// and the sticky error of a faulted kernel.
///
/// # Safety
///
/// 1. `stream` is a live stream of the current context.
pub(crate) unsafe fn stream_query(stream: CUstream) -> Result<bool, DriverError> {
    // SAFETY: rule 1.
    match unsafe { sys::cuStreamQuery(stream) } {
        sys::cudaError_enum::CUDA_SUCCESS => Ok(true),
        sys::cudaError_enum::CUDA_ERROR_NOT_READY => Ok(false),
        err => Err(DriverError(err)),
    }
}

/// `cuStreamSynchronize`.
///
/// # Safety
///
/// 1. `stream` is a live stream of the current context.
pub(crate) unsafe fn stream_synchronize(stream: CUstream) -> Result<(), DriverError> {
    // SAFETY: rule 1.
    unsafe { sys::cuStreamSynchronize(stream) }.result()
}

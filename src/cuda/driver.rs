//! The driver calls cudarc's safe API lacks, one documented `unsafe fn` each, and how driver
//! errors map to the crate's.
//!
//! Layered as cudarc is: `cudarc::driver::sys` is the only FFI, `cudarc::driver::result` has thin
//! wrappers for some of these calls (used here where it has one), and everything else (device
//! memory, copies, memsets, stream and context synchronization, launches) goes through cudarc's
//! safe API (`CudaContext`, `CudaStream`, `CudaSlice`). What is left here:
//!
//! - mapped pinned host memory (`cuMemHostAlloc` with DEVICEMAP, `cuMemHostGetDevicePointer`):
//!   cudarc's `alloc_pinned` is not mapped and its flags are write-combined;
//! - managed memory with advice (`cuMemAllocManaged`, `cuMemAdvise`): cudarc's `UnifiedSlice`
//!   cannot be advised and works on the legacy default stream;
//! - the stream memory op `cuStreamWriteValue64` and `cuStreamQuery`.
//!
//! Every function returns the driver's `CUresult` as a [`DriverError`], never a string. The
//! owning wrappers live in `memory.rs` (the ring memory), `block.rs` (the control block's words)
//! and `producer.rs` (the stream query).

use core::ffi::c_void;

use cudarc::driver::result;
use cudarc::driver::sys::{self, CUdeviceptr, CUstream};
use cudarc::driver::DriverError;

use crate::Error;

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
/// and the CPU reads write-combined memory uncached, many times slower. See the
/// [driver docs](https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__MEM.html#group__CUDA__MEM_1g572ca4011bfcb25034888a14d4e035b9).
///
/// # Safety
///
/// 1. The calling thread has a current CUDA context.
/// 2. The returned pointer is freed once, with [`mem_free_host`].
pub(crate) unsafe fn mem_host_alloc(bytes: usize) -> Result<*mut c_void, DriverError> {
    let flags = sys::CU_MEMHOSTALLOC_DEVICEMAP | sys::CU_MEMHOSTALLOC_PORTABLE;
    // SAFETY: rule 1 (a current context) is the driver's precondition; the memory is unset,
    // which is fine: its users write it before they read it (a ring lays fresh slots).
    unsafe { result::malloc_host(bytes, flags) }
}

/// `cuMemHostGetDevicePointer_v2`: the device address of mapped host memory (cudarc has no
/// wrapper).
///
/// # Safety
///
/// 1. `ptr` came from [`mem_host_alloc`] and is not freed.
/// 2. The calling thread has a current CUDA context.
pub(crate) unsafe fn mem_host_device_pointer(ptr: *mut c_void) -> Result<CUdeviceptr, DriverError> {
    let mut dptr: CUdeviceptr = 0;
    // SAFETY: rules 1 and 2 are the driver's preconditions; `dptr` is a valid out-pointer; the
    // flags argument must be 0.
    unsafe { sys::cuMemHostGetDevicePointer_v2(&mut dptr, ptr, 0) }.result()?;
    Ok(dptr)
}

/// `cuMemFreeHost`.
///
/// # Safety
///
/// 1. `ptr` came from [`mem_host_alloc`], is freed only here, and no kernel uses it any more.
pub(crate) unsafe fn mem_free_host(ptr: *mut c_void) -> Result<(), DriverError> {
    // SAFETY: rule 1: cudarc's precondition (memory from `malloc_host`, not null) holds, and no
    // kernel can write the memory after it is gone.
    unsafe { result::free_host(ptr) }
}

/// `cuMemAllocManaged` (global attach), then advice: preferred location the CPU, accessed by
/// `device`.
///
/// # Safety
///
/// 1. The calling thread has a current CUDA context on `device`.
/// 2. The returned address is freed once, with [`mem_free_managed`].
pub(crate) unsafe fn mem_alloc_managed(
    bytes: usize,
    device: sys::CUdevice,
) -> Result<CUdeviceptr, DriverError> {
    let attach = sys::CUmemAttach_flags::CU_MEM_ATTACH_GLOBAL;
    // SAFETY: rule 1 (a current context) is the driver's precondition; the memory is unset,
    // which is fine: its users write it before they read it (a ring lays fresh slots).
    let dptr = unsafe { result::malloc_managed(bytes, attach) }?;
    let cpu = sys::CUmemLocation {
        type_: sys::CUmemLocationType::CU_MEM_LOCATION_TYPE_HOST,
        id: 0,
    };
    let gpu = sys::CUmemLocation {
        type_: sys::CUmemLocationType::CU_MEM_LOCATION_TYPE_DEVICE,
        id: device,
    };
    let advise = |advice, location| {
        // SAFETY: `dptr..dptr + bytes` is exactly the managed range just allocated (cudarc's two
        // preconditions).
        unsafe { result::mem_advise(dptr, bytes, advice, location) }
    };
    let advised = advise(sys::CUmem_advise::CU_MEM_ADVISE_SET_PREFERRED_LOCATION, cpu)
        .and_then(|()| advise(sys::CUmem_advise::CU_MEM_ADVISE_SET_ACCESSED_BY, gpu));
    if let Err(err) = advised {
        // SAFETY: `dptr` was allocated above, nothing else has it, and no kernel has seen it.
        let _ = unsafe { mem_free_managed(dptr) };
        return Err(err);
    }
    Ok(dptr)
}

/// `cuMemFree_v2` of managed memory.
///
/// # Safety
///
/// 1. `dptr` came from [`mem_alloc_managed`], is freed only here, and no kernel uses it any more.
pub(crate) unsafe fn mem_free_managed(dptr: CUdeviceptr) -> Result<(), DriverError> {
    // SAFETY: rule 1 is cudarc's precondition (freed once, all accesses complete).
    unsafe { result::memory_free(dptr) }
}

/// `cuStreamWriteValue64_v2`: the stream writes `value` to `addr` (device memory) when it gets
/// there, without waiting on the producer kernel's stream (cudarc has no stream memory ops). The
/// consumer pushes its head this way (its cost: `docs/PERFORMANCE.md`).
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
    // SAFETY: rule 1 is the driver's precondition; flags 0 = CU_STREAM_WRITE_VALUE_DEFAULT (with
    // a memory barrier).
    unsafe { sys::cuStreamWriteValue64_v2(stream, addr, value, 0) }.result()
}

/// `cuStreamQuery`: `Ok(true)` when all work on the stream is done, `Ok(false)` while it runs,
/// and the sticky error of a faulted kernel (cudarc has no stream query).
///
/// # Safety
///
/// 1. `stream` is a live stream of the current context.
pub(crate) unsafe fn stream_query(stream: CUstream) -> Result<bool, DriverError> {
    // SAFETY: rule 1 is the driver's only precondition; the call reads nothing else.
    match unsafe { sys::cuStreamQuery(stream) } {
        sys::cudaError_enum::CUDA_SUCCESS => Ok(true),
        sys::cudaError_enum::CUDA_ERROR_NOT_READY => Ok(false),
        err => Err(DriverError(err)),
    }
}

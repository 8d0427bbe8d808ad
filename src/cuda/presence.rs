//! Whether a CUDA driver and device are there, and how the driver says they are not: below
//! [`GpuContext`](super::GpuContext) and [`GpuDevices`](super::GpuDevices), which both ask.

use cudarc::driver::sys;
use cudarc::driver::{CudaContext, DriverError};

use crate::Error;

/// Whether libcuda can be loaded; cudarc panics on first use otherwise.
fn driver_present() -> bool {
    // SAFETY: `is_culib_present` only tries `dlopen` on candidate names and drops what it opened.
    unsafe { sys::is_culib_present() }
}

/// How many CUDA devices the driver reports.
///
/// # Errors
///
/// [`Error::NoDevice`] without a driver or with no device; [`Error::Driver`] otherwise.
pub fn device_count() -> Result<usize, Error> {
    if !driver_present() {
        return Err(Error::NoDevice("libcuda not found (no NVIDIA driver)"));
    }
    match CudaContext::device_count() {
        Ok(count) if count > 0 => Ok(count as usize),
        Ok(_) => Err(Error::NoDevice("the driver reports no CUDA device")),
        Err(err) => Err(no_device_or(err)),
    }
}

/// The driver's CUDA version (`13000` for 13.0, as `cuDriverGetVersion` gives it); `None`
/// without a driver, or when it does not say (the toolkit's stub library).
pub(crate) fn driver_version() -> Option<i32> {
    if !driver_present() {
        return None;
    }
    let mut version = 0;
    // SAFETY: libcuda loads (checked above, so cudarc's loader does not panic); `version` is a
    // valid out-pointer; `cuDriverGetVersion` needs no `cuInit` and no context.
    let got = unsafe { sys::cuDriverGetVersion(&mut version) };
    (got == sys::cudaError_enum::CUDA_SUCCESS).then_some(version)
}

/// Driver errors that mean "no usable device" become [`Error::NoDevice`].
pub(super) fn no_device_or(err: DriverError) -> Error {
    use sys::cudaError_enum as E;
    match err.0 {
        E::CUDA_ERROR_NO_DEVICE => Error::NoDevice("the driver reports no CUDA device"),
        E::CUDA_ERROR_STUB_LIBRARY => {
            Error::NoDevice("libcuda is the toolkit's stub (no NVIDIA driver)")
        }
        E::CUDA_ERROR_SYSTEM_DRIVER_MISMATCH | E::CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE => {
            Error::NoDevice("the NVIDIA driver does not match CUDA 13.0 (needs 580+)")
        }
        E::CUDA_ERROR_INVALID_DEVICE => Error::NoDevice("no CUDA device with that ordinal"),
        E::CUDA_ERROR_NOT_INITIALIZED | E::CUDA_ERROR_DEINITIALIZED => {
            Error::NoDevice("the CUDA driver could not be initialised")
        }
        _ => Error::Driver(err),
    }
}

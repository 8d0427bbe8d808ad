//! The GPU tests' device: device 0, or `None` (and a "skipped" line) without one.

use perdix_transport::cuda::GpuContext;
use perdix_transport::Error;

/// Device 0, or `None` when there is no CUDA device (any other failure to open it panics).
pub fn gpu() -> Option<GpuContext> {
    match GpuContext::new(0) {
        Ok(gpu) => Some(gpu),
        Err(Error::NoDevice(why)) => {
            println!("skipped: no CUDA device ({why})");
            None
        }
        Err(err) => panic!("opening the device: {err}"),
    }
}

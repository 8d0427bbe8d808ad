//! The GPU tests' device: device 0, or `None` (and a [`skip`](crate::skip::skip)) without one.
//! A binary that includes this file also includes `support/skip.rs` as `mod skip`.

use perdix_transport::cuda::GpuContext;
use perdix_transport::Error;

/// Device 0, or `None` when there is no CUDA device: the test skips (and fails under
/// `PERDIX_REQUIRE_GPU=1`). Any other failure to open it panics.
#[track_caller]
pub fn gpu() -> Option<GpuContext> {
    match GpuContext::new(0) {
        Ok(gpu) => Some(gpu),
        Err(Error::NoDevice(why)) => {
            crate::skip::skip(format_args!("no CUDA device ({why})"));
            None
        }
        Err(err) => panic!("opening the device: {err}"),
    }
}

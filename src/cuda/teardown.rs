//! Dropping a [`GpuProducer`]: close every ring, wait for the kernels boundedly, and free their
//! memory only once they are known to have finished; otherwise leak it.
//!
//! "Finished" means the stream reported idle, or a kernel fault (a faulted context runs nothing
//! more). Any other answer (a driver error from the query, a timeout) leaves kernels possibly
//! running, and freeing the rings or the control block under them would let them write freed
//! memory: that memory is leaked, with a warning.
//!
//! The fault watch is stopped and joined first (one driver query at most), so no thread of the
//! producer's outlives its `Drop`. Closing the rings under waiting kernels can leave a gap: a
//! warp that sees CLOSED gives up its reserved positions while a later warp, which saw a newer
//! head, publishes; the consumer stops at the gap and reports [`Error::Lost`] with the count of
//! positions published past it (the ring's device counter), never a clean `Disconnected`.

use std::sync::Arc;
use std::time::Duration;

use super::control;
use super::producer::GpuProducer;
use crate::sync::Arc as RingArc;
use crate::Error;

/// How long `Drop` waits for kernels after closing their rings.
const DROP_WAIT: Duration = Duration::from_secs(10);

/// Whether a wait's outcome proves that no kernel of the producer still runs.
pub(super) fn kernels_finished(waited: &Result<bool, Error>) -> bool {
    matches!(waited, Ok(true) | Err(Error::KernelFault(_)))
}

impl Drop for GpuProducer {
    fn drop(&mut self) {
        // First, so nothing of the producer's is used after this: the watch holds the stream
        // and the rings until it is joined (one driver query at most).
        self.watch.stop();
        if !self.finished {
            // Close every ring on the device so kernels waiting for room return, then wait for
            // them, boundedly: a kernel that ignores PERDIX_CLOSED must not hang the process.
            for idx in 0..self.rings.len() {
                let offset = control::ring_offset(idx) + control::RING_CLOSED;
                let _ = self.block.write_word(offset, 1, &self.block.side);
            }
            let _ = self
                .block
                .write_word(control::HDR_STOP, 1, &self.block.side);
            let waited = self.wait_idle(DROP_WAIT);
            for ring in &self.rings {
                ring.close_producer();
            }
            if !kernels_finished(&waited) {
                match &waited {
                    Ok(_) => tracing::warn!(
                        "perdix: GPU producer dropped while its kernels still run after {DROP_WAIT:?}; \
                         leaking its memory so they cannot write into freed memory"
                    ),
                    Err(err) => tracing::warn!(
                        %err,
                        "perdix: GPU producer dropped and its kernels cannot be shown to have \
                         finished; leaking its memory so they cannot write into freed memory"
                    ),
                }
                for ring in &self.rings {
                    core::mem::forget(RingArc::clone(ring));
                }
                core::mem::forget(Arc::clone(&self.block));
                return;
            }
        }
        // The stream is idle or faulted here, so this returns at once.
        let _ = self.gpu.bind().map(|()| self.stream.synchronize());
    }
}

#[cfg(test)]
mod tests {
    use cudarc::driver::sys::cudaError_enum as E;
    use cudarc::driver::DriverError;

    use super::kernels_finished;
    use crate::Error;

    #[test]
    fn only_idle_or_a_kernel_fault_counts_as_finished() {
        assert!(kernels_finished(&Ok(true)));
        assert!(kernels_finished(&Err(Error::KernelFault(DriverError(
            E::CUDA_ERROR_LAUNCH_FAILED
        )))));
        assert!(!kernels_finished(&Ok(false)), "timed out");
        assert!(!kernels_finished(&Err(Error::Driver(DriverError(
            E::CUDA_ERROR_INVALID_CONTEXT
        )))));
        assert!(!kernels_finished(&Err(Error::HeadPush(Box::new(
            Error::Disconnected
        )))));
    }
}

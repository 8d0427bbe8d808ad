//! `DeviceHead`: the [`HeadSink`] of a GPU ring, pushing the consumer's head into the control
//! block so no GPU thread reads host memory to wait.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use cudarc::driver::sys::cudaError_enum;
use cudarc::driver::DriverError;

use super::block::ControlBlock;
use super::control;
use crate::ring::{HeadSink, SinkCounts};
use crate::Error;

/// The consumer's head, pushed into the control block with `cuStreamWriteValue64` on one of the
/// block's push streams; `close` writes the ring's closed word the same way. A failed write is
/// returned, never swallowed: the core makes it the ring's sticky [`Error::HeadPush`].
#[derive(Debug)]
pub(super) struct DeviceHead {
    pub(super) block: Arc<ControlBlock>,
    pub(super) ring: usize,
}

impl DeviceHead {
    pub(super) fn new(block: Arc<ControlBlock>, ring: usize) -> Self {
        Self { block, ring }
    }

    fn write(&self, offset: usize, value: u64) -> Result<(), Error> {
        if self.block.fail_head_pushes.load(Ordering::Relaxed) {
            // Fault injection (`GpuProducer::inject_head_push_failure`): what a refused
            // `cuStreamWriteValue64` returns.
            return Err(Error::Driver(DriverError(
                cudaError_enum::CUDA_ERROR_NOT_PERMITTED,
            )));
        }
        let stream = &self.block.push[self.ring % self.block.push.len()];
        let offset = control::ring_offset(self.ring) + offset;
        self.block.write_word(offset, value, stream)
    }
}

impl HeadSink for DeviceHead {
    fn push(&self, head: u64) -> Result<(), Error> {
        self.write(control::RING_HEAD, head)
    }

    fn close(&self) -> Result<(), Error> {
        self.write(control::RING_CLOSED, 1)
    }

    /// The positions the ring's kernels published: its `emitted` and `extra` device counters (a
    /// copy on the side stream, which does not wait for the kernels). `None` when the copy
    /// fails (a faulted context).
    fn produced(&self) -> Option<u64> {
        self.counts().map(|counts| counts.positions)
    }

    /// The ring's device counters in one copy: positions, and the kernels' drops and waits.
    fn counts(&self) -> Option<SinkCounts> {
        let counters = self.block.counters(self.ring).ok()?;
        Some(SinkCounts {
            positions: counters.positions,
            drops: counters.drops,
            stalls: counters.stalls,
        })
    }
}

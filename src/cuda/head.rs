//! `DeviceHead`: the [`HeadSink`] of a GPU ring, pushing the consumer's head into the control
//! block so no GPU thread reads host memory to wait.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::block::ControlBlock;
use super::control;
use crate::ring::HeadSink;

/// The consumer's head, pushed into the control block with `cuStreamWriteValue64`.
#[derive(Debug)]
pub(super) struct DeviceHead {
    pub(super) block: Arc<ControlBlock>,
    pub(super) ring: usize,
    pub(super) warned: AtomicBool,
}

impl DeviceHead {
    fn write(&self, offset: usize, value: u64) {
        let stream = &self.block.push[self.ring % self.block.push.len()];
        let offset = control::ring_offset(self.ring) + offset;
        if let Err(err) = self.block.write_word(offset, value, stream) {
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(ring = self.ring, %err, "perdix: cannot push the consumer head to the device");
            }
        }
    }
}

impl HeadSink for DeviceHead {
    fn push(&self, head: u64) {
        self.write(control::RING_HEAD, head);
    }

    fn close(&self) {
        self.write(control::RING_CLOSED, 1);
    }
}

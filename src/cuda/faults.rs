//! How a [`GpuProducer`] and its rings tell each other about faults.
//!
//! - A kernel fault the producer sees (from a launch, a query, a wait or a copy) becomes each of
//!   its rings' sticky fault ([`Ring::fail`]), so every consumer reports it after the messages
//!   published before it, instead of waiting on a ring nobody will ever write again. The
//!   producer's fault watch (`watch.rs`) asks the driver every 10 ms and does the same, so the
//!   fault reaches a consumer even when nobody calls the producer.
//! - A ring whose consumer stopped at a position never published, once the producer side is
//!   closed, while its device counter says later positions were published, ends in
//!   [`Error::Lost`] (the consumer's end check), not a clean `Disconnected`.
//! - A ring whose consumer failed (a corrupt slot, a failed head push) is closed by the core;
//!   the producer also writes that ring's closed word itself, once, from its side stream (not a
//!   consumer push stream), so a Block kernel waiting on it exits even when the consumer's push
//!   of CLOSED failed. A head-push fault is returned by [`GpuProducer::wait`] and
//!   [`GpuProducer::finish`] at once rather than waited out.

use std::sync::atomic::Ordering;

use super::control;
use super::producer::GpuProducer;
use crate::Error;

impl GpuProducer {
    /// Passes a kernel fault in `result` on to every ring; returns `result` unchanged.
    pub(super) fn observe<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        if let Err(err @ Error::KernelFault(_)) = &result {
            for ring in &self.rings {
                ring.fail(err.clone());
            }
        }
        result
    }

    /// Closes, on the device, every ring that has failed since the last call (once per ring),
    /// and returns the first head-push fault among the rings, if any.
    ///
    /// # Errors
    ///
    /// [`Error::HeadPush`]: a ring's consumer could not push its head (or CLOSED) to the
    /// device, or this producer could not write a failed ring's closed word either.
    pub(super) fn check_rings(&self) -> Result<(), Error> {
        let mut first = None;
        for (idx, ring) in self.rings.iter().enumerate() {
            if !ring.is_faulted() {
                continue;
            }
            if !self.device_closed[idx].swap(true, Ordering::Relaxed) {
                let offset = control::ring_offset(idx) + control::RING_CLOSED;
                if let Err(err) = self.block.write_word(offset, 1, &self.block.side) {
                    tracing::warn!(ring = idx, %err, "perdix: cannot close a failed ring on the device");
                    first.get_or_insert(Error::HeadPush(Box::new(err)));
                }
            }
            if let Some(fault @ Error::HeadPush(_)) = ring.fault() {
                first.get_or_insert(fault);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

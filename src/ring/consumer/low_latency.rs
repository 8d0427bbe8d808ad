//! The consumer on a low-latency ring ([`RingMode::LowLatency`](crate::RingMode)): a message
//! is taken once every word it uses carries its position's flag (`super::super::ll`).

use super::super::layout::SlotHeader;
#[cfg(not(perdix_loom))]
use super::super::ll::{self, Look};
use super::Consumer;
use crate::sync::Ordering;
use crate::Error;

impl Consumer {
    /// `poll_slow` on a low-latency ring: the message at `pos` once every word it uses carries
    /// the position's flag, rewritten in place into the throughput layout (so the guard, the
    /// drains and everything after read it as any other one-slot message).
    #[cfg(not(perdix_loom))]
    #[inline(never)]
    pub(super) fn poll_ll(&mut self, pos: u64) -> Result<Option<SlotHeader>, Error> {
        if self.rewritten == pos + 1 {
            // Taken before and left in the ring: the slot holds its rewrite now.
            return Ok(Some(self.ring.header(pos)));
        }
        match ll::look(self.ring.slots(), pos) {
            Look::Ready(header, payload) => {
                let len = header.len as usize;
                // SAFETY: every word of the message carries `pos`'s flag, so its producer is
                // done with the slot (a GPU producer writes each word once; a CPU producer's
                // release store of word 0 came last and was acquired), and no producer writes
                // it again until this consumer publishes a head past it, after `ll::clear`;
                // one slot never wraps. The words were loaded into `payload` above.
                let mut buf = unsafe { self.ring.slots().write(pos, len) };
                // SAFETY: as above: the slot is this consumer's until it releases it.
                unsafe { buf.get_mut() }.copy_from_slice(&payload[..len]);
                self.ring.write_header(pos, header);
                // Relaxed: only this thread reads the slot until `ll::clear`.
                self.ring.seq(pos).store(pos + 1, Ordering::Relaxed);
                self.rewritten = pos + 1;
                Ok(Some(header))
            }
            Look::Corrupt { word, len } => Err(self.fail(Error::Corrupt {
                pos,
                seq: word,
                len,
            })),
            Look::Empty | Look::Partial => self.idle(pos),
        }
    }

    /// Loom's build has no low-latency rings (`Ring::with_mode` refuses them).
    #[cfg(perdix_loom)]
    pub(super) fn poll_ll(&mut self, pos: u64) -> Result<Option<SlotHeader>, Error> {
        self.idle(pos)
    }

    /// Whether the message at `pos` is published by now (a second look, after a fault or the
    /// producer's close was acquired).
    #[inline]
    pub(super) fn is_published(&self, pos: u64) -> bool {
        #[cfg(not(perdix_loom))]
        if self.low_latency {
            return self.rewritten == pos + 1
                || matches!(ll::look(self.ring.slots(), pos), Look::Ready(..));
        }
        // Relaxed: the fault's or the close's acquire already ordered the producer's last
        // `seq` store before this load (and `poll` acquires again; the loom mutation check
        // confirmed it).
        self.ring.seq(pos).load(Ordering::Relaxed) == pos + 1
    }
}

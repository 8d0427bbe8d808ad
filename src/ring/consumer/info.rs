//! What a [`Consumer`] says about its ring: its fault, size, position, device and counters
//! (read-only; the reading itself is `consumer.rs`).

use super::super::shared::RingStats;
use super::Consumer;
use crate::sync::Arc;
use crate::Error;

impl Consumer {
    /// The ring's fault, if it has one: a corrupt slot, a failed head push, or a fault of its
    /// producers (a GPU kernel that faulted). Every call that reads reports it once the
    /// messages published before it are read.
    #[must_use]
    pub fn fault(&self) -> Option<Error> {
        self.fault.clone().or_else(|| self.ring.fault())
    }

    /// Slots in the ring.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.ring.capacity() as usize
    }

    /// The longest message this ring carries:
    /// [`max_message`](crate::layout::max_message) of its capacity (a longer header is
    /// [`Error::Corrupt`]).
    #[must_use]
    pub fn max_message(&self) -> usize {
        usize::try_from(self.ring.max_message()).unwrap_or(usize::MAX)
    }

    /// Position of the next message to read, in slots (= slots consumed so far, pads included;
    /// messages consumed while every message fits one slot).
    #[must_use]
    pub fn position(&self) -> u64 {
        self.head
    }

    /// The CUDA device whose producers write this ring (its memory's device), or `None` for a
    /// host ring.
    #[must_use]
    pub fn device(&self) -> Option<u32> {
        self.ring.device()
    }

    /// Whether the producer is gone (messages may still be waiting).
    #[must_use]
    pub fn is_abandoned(&self) -> bool {
        self.ring.producer_closed()
    }

    /// The ring's counters.
    #[must_use]
    pub fn stats(&self) -> RingStats {
        self.ring.stats()
    }

    /// A handle that reads this ring's counters from any thread.
    #[must_use]
    pub fn monitor(&self) -> crate::ring::Monitor {
        crate::ring::Monitor::new(Arc::clone(&self.ring))
    }
}

//! [`RingStats`]: a ring's counters, read at one moment.

/// Counters of a ring, read at one moment from any thread.
///
/// `produced` and `consumed` are positions, counted in slots (pad records included), so a ring
/// that has carried `n` one-slot messages reports `n`; `occupancy` is `produced - consumed`, in
/// slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RingStats {
    /// Slots in the ring.
    pub capacity: u64,
    /// Positions (slots) published: by the CPU producer, or (GPU rings) by the kernels, from
    /// the ring's device counter. A message of `k` slots counts `k`, a pad its slots.
    pub produced: u64,
    /// Positions (slots) the consumer has released.
    pub consumed: u64,
    /// Times a producer found the ring full: each `try_produce` that returned `Full`, and each
    /// blocking `produce` that had to wait (once per call); on a GPU ring, each time a warp
    /// found it full and waited (the ring's device counter).
    pub stalls: u64,
    /// Messages dropped by the `DropNewest` policy (on a GPU ring, by its kernels: the ring's
    /// device counter).
    pub drops: u64,
    /// Corrupt slots the consumer reported.
    pub corrupt: u64,
    /// Messages the consumer has taken (read and released; pads are not messages). Published
    /// with the consumer's head: exact once a `drain` returns or a guard drops.
    pub messages: u64,
    /// Payload bytes of those messages.
    pub bytes: u64,
}

impl RingStats {
    /// Slots published and not yet consumed (a message of `k` slots counts `k`).
    #[must_use]
    pub fn occupancy(&self) -> u64 {
        self.produced.saturating_sub(self.consumed)
    }
}

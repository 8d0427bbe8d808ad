//! The state both halves share: slots, the consumer's published head, closed flags, counters.

use core::ptr::NonNull;

use crossbeam_utils::CachePadded;

use super::layout::{ring_bytes, Slot, SLOT_ALIGN};
use super::memory::{Backend, RingMemory};
use crate::sync::{AtomicBool, AtomicU64, Ordering};
use crate::Error;

/// The largest capacity a ring may have, in slots (2^31).
pub const MAX_CAPACITY: usize = 1 << 31;

/// Where a consumer's head goes besides the shared `head` word: GPU producers read it from device
/// memory, so the consumer pushes it there (`cuStreamWriteValue64`) every ~capacity/8 messages and
/// whenever it finds the ring empty.
pub(crate) trait HeadSink: Send + Sync + core::fmt::Debug {
    /// Makes `head` visible to the producers (asynchronously; must not block on them).
    fn push(&self, head: u64);
    /// Tells the producers the consumer is gone, so a producer waiting for room gives up.
    fn close(&self);
}

/// The ring itself. Halves and monitors hold it in an `Arc`.
#[derive(Debug)]
pub(crate) struct Ring {
    /// First slot; `capacity` slots follow. Points into `memory`.
    slots: NonNull<Slot>,
    /// Number of slots, a power of two in `2..=MAX_CAPACITY`.
    capacity: u64,
    /// Next position the consumer will read; every position below it is free for producers.
    /// Written only by the consumer (release, after it is done with the slot); producers read it
    /// (acquire) only when their cached copy says the ring is full.
    head: CachePadded<AtomicU64>,
    /// Next position a CPU producer will write (relaxed: for counters and occupancy only, never
    /// for synchronisation; the consumer reads readiness from each slot's `seq`).
    tail: CachePadded<AtomicU64>,
    /// Set (release) when the producer side is gone, after its last publish.
    producer_closed: AtomicBool,
    /// Set (release) when the consumer side is gone.
    consumer_closed: AtomicBool,
    /// Exact counters of rare events.
    counters: CachePadded<Counters>,
    /// Owner of the bytes `slots` points into; freed after the slots are dropped.
    memory: Box<dyn RingMemory>,
    /// Where the consumer also pushes its head (GPU producers); `None` for CPU producers.
    sink: Option<Box<dyn HeadSink>>,
}

#[derive(Debug, Default)]
struct Counters {
    full_events: AtomicU64,
    drops: AtomicU64,
    corrupt: AtomicU64,
}

// SAFETY: the slots are reached only through raw pointers under the ring protocol (a slot is
// written by the producer that reserved it and read by the consumer after its `seq` acquire);
// everything else is atomics or the `Send + Sync` memory owner.
unsafe impl Send for Ring {}
// SAFETY: as for `Send`.
unsafe impl Sync for Ring {}

/// Counters of a ring, read at one moment from any thread.
///
/// `produced` and `consumed` are positions, so a ring that has carried `n` messages reports `n`;
/// `occupancy` is `produced - consumed` for CPU producers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RingStats {
    /// Slots in the ring.
    pub capacity: u64,
    /// Messages published by the CPU producer (GPU producers keep their own device counters).
    pub produced: u64,
    /// Messages the consumer has released.
    pub consumed: u64,
    /// Times a producer found the ring full: each `try_produce` that returned `Full`, and each
    /// blocking `produce` that had to wait (once per call).
    pub full_events: u64,
    /// Messages dropped by the `DropNewest` policy.
    pub drops: u64,
    /// Corrupt slots the consumer reported.
    pub corrupt: u64,
}

impl RingStats {
    /// Messages published and not yet consumed.
    #[must_use]
    pub fn occupancy(&self) -> u64 {
        self.produced.saturating_sub(self.consumed)
    }
}

impl Ring {
    /// Checks `capacity` and returns the ring size in bytes.
    pub(crate) fn bytes_for(capacity: usize) -> Result<usize, Error> {
        if capacity < 2 || !capacity.is_power_of_two() || capacity > MAX_CAPACITY {
            return Err(Error::InvalidCapacity(capacity));
        }
        ring_bytes(capacity).ok_or(Error::InvalidCapacity(capacity))
    }

    /// Lays `capacity` empty slots into `memory`.
    pub(crate) fn new(capacity: usize, memory: Box<dyn RingMemory>) -> Result<Self, Error> {
        Self::with_sink(capacity, memory, None)
    }

    /// [`Ring::new`] whose consumer also pushes its head into `sink`: a ring for GPU producers,
    /// which have no CPU `Producer` half.
    pub(crate) fn with_sink(
        capacity: usize,
        memory: Box<dyn RingMemory>,
        sink: Option<Box<dyn HeadSink>>,
    ) -> Result<Self, Error> {
        let needed = Self::bytes_for(capacity)?;
        let addr = memory.as_ptr().as_ptr() as usize;
        let align = 1usize << addr.trailing_zeros().min(usize::BITS - 1);
        if memory.len() < needed || !addr.is_multiple_of(SLOT_ALIGN) {
            return Err(Error::BadMemory {
                len: memory.len(),
                align,
                needed,
            });
        }
        let slots = memory.as_ptr().cast::<Slot>();
        for idx in 0..capacity {
            // SAFETY: `idx < capacity` and the memory holds `capacity` aligned slots (checked
            // above); nobody else has the pointer yet, so writing a fresh slot races nothing.
            unsafe { slots.as_ptr().add(idx).write(Slot::new()) };
        }
        Ok(Self {
            slots,
            capacity: capacity as u64,
            head: CachePadded::new(AtomicU64::new(0)),
            tail: CachePadded::new(AtomicU64::new(0)),
            producer_closed: AtomicBool::new(false),
            consumer_closed: AtomicBool::new(false),
            counters: CachePadded::new(Counters::default()),
            memory,
            sink,
        })
    }

    #[inline]
    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The slot for position `pos` (`pos % capacity`).
    #[inline]
    pub(crate) fn slot(&self, pos: u64) -> *mut Slot {
        let idx = (pos & (self.capacity - 1)) as usize;
        // SAFETY: `idx < capacity`, so the result stays inside the slot array.
        unsafe { self.slots.as_ptr().add(idx) }
    }

    /// The `seq` word of the slot for `pos`.
    #[inline]
    pub(crate) fn seq(&self, pos: u64) -> &AtomicU64 {
        // SAFETY: the slot pointer is valid and aligned for the ring's life; `seq` is only ever
        // accessed atomically (by CPU halves as `AtomicU64`, by GPU kernels with atomic-width
        // stores after a system fence), so a shared reference to the atomic is sound.
        unsafe { &(*self.slot(pos)).seq }
    }

    /// Consumer: everything below `head` is free. Pairs with the producer's acquire in
    /// [`Ring::load_head`], so the consumer's reads of a slot happen before its reuse.
    #[inline]
    pub(crate) fn publish_head(&self, head: u64) {
        self.head.store(head, Ordering::Release);
    }

    /// Producer: the consumer's latest published head.
    #[inline]
    pub(crate) fn load_head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// Producer: records the next position for counters (relaxed; no one synchronises on it).
    #[inline]
    pub(crate) fn record_tail(&self, tail: u64) {
        self.tail.store(tail, Ordering::Relaxed);
    }

    pub(crate) fn close_producer(&self) {
        // Release: the producer's last `seq` stores happen before a consumer sees the flag.
        self.producer_closed.store(true, Ordering::Release);
    }

    pub(crate) fn close_consumer(&self) {
        self.consumer_closed.store(true, Ordering::Release);
        if let Some(sink) = &self.sink {
            sink.close();
        }
    }

    /// Whether the consumer must also push its head to a [`HeadSink`].
    #[inline]
    pub(crate) fn has_sink(&self) -> bool {
        self.sink.is_some()
    }

    /// Consumer: pushes `head` to the sink (the caller has published it first).
    #[cold]
    pub(crate) fn push_head(&self, head: u64) {
        if let Some(sink) = &self.sink {
            sink.push(head);
        }
    }

    #[inline]
    pub(crate) fn producer_closed(&self) -> bool {
        self.producer_closed.load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn consumer_closed(&self) -> bool {
        self.consumer_closed.load(Ordering::Acquire)
    }

    pub(crate) fn count_full(&self) {
        self.counters.full_events.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_drop(&self) {
        self.counters.drops.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_corrupt(&self) {
        self.counters.corrupt.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn backend(&self) -> Backend {
        self.memory.backend()
    }

    pub(crate) fn device(&self) -> Option<u32> {
        self.memory.device()
    }

    /// Memory the ring lives in.
    #[cfg(feature = "cuda")]
    pub(crate) fn memory(&self) -> &dyn RingMemory {
        &*self.memory
    }

    pub(crate) fn stats(&self) -> RingStats {
        RingStats {
            capacity: self.capacity,
            produced: self.tail.load(Ordering::Relaxed),
            consumed: self.head.load(Ordering::Relaxed),
            full_events: self.counters.full_events.load(Ordering::Relaxed),
            drops: self.counters.drops.load(Ordering::Relaxed),
            corrupt: self.counters.corrupt.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        for pos in 0..self.capacity {
            // SAFETY: every slot was written in `new` and both halves are gone (we hold the last
            // `Arc`), so dropping each slot in place races nothing; `memory` is freed after this.
            unsafe { core::ptr::drop_in_place(self.slot(pos)) };
        }
    }
}

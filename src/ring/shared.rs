//! The state both halves share: slots, the consumer's published head, closed flags, counters.

use core::ptr::NonNull;

use crossbeam_utils::CachePadded;

use std::sync::{Mutex, PoisonError};

use super::layout::{ring_bytes, Slot, SlotHeader, PAYLOAD_MAX, SLOT_ALIGN};
use super::memory::{Backend, RingMemory};
use crate::sync::{AtomicBool, AtomicU64, AtomicU8, Ordering, UnsafeCell};
use crate::Error;

/// The largest capacity a ring may have, in slots (2^31).
pub const MAX_CAPACITY: usize = 1 << 31;

/// Where a consumer's head goes besides the shared `head` word: GPU producers read it from device
/// memory, so the consumer pushes it there (`cuStreamWriteValue64`) every ~capacity/8 messages and
/// whenever it finds the ring empty.
pub(crate) trait HeadSink: Send + Sync + core::fmt::Debug {
    /// Makes `head` visible to the producers (asynchronously; must not block on them).
    ///
    /// # Errors
    ///
    /// The driver's error: the producers did not get the head.
    fn push(&self, head: u64) -> Result<(), Error>;
    /// Tells the producers the consumer is gone (or the ring failed), so a producer waiting for
    /// room gives up.
    ///
    /// # Errors
    ///
    /// The driver's error: producers waiting for room were not told.
    fn close(&self) -> Result<(), Error>;
    /// Messages the producers behind the sink have published into the ring, when the sink can
    /// tell (GPU rings: the ring's device counter); [`RingStats::produced`] for such rings.
    fn produced(&self) -> Option<u64> {
        None
    }
}

/// The consumer side's state word ([`Ring::consumer_state`]): open, closed, or failed.
mod state {
    /// The consumer is reading.
    pub(super) const OPEN: u8 = 0;
    /// The consumer is gone, with no fault.
    pub(super) const CLOSED: u8 = 1;
    /// A fault is being written into the fault cell (one writer, who won the CAS).
    pub(super) const FAILING: u8 = 2;
    /// The fault cell holds the ring's fault (stored with release after it was written).
    pub(super) const FAILED: u8 = 3;
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
    /// [`state`]: `OPEN` until the consumer is gone (`CLOSED`) or the ring failed (`FAILING`,
    /// then `FAILED` with release once `fault` holds the error). Producers read it (acquire) to
    /// stop, and to read the fault.
    consumer_state: AtomicU8,
    /// The ring's first fault: written once by whoever moved `consumer_state` to `FAILING`,
    /// read only after an acquire load sees `FAILED`.
    fault: UnsafeCell<Option<Error>>,
    /// A failed push of CLOSED to the sink: producers waiting for room on the device were not
    /// told the ring closed (not protocol state: a mutex is fine).
    close_error: Mutex<Option<Error>>,
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
/// `occupancy` is `produced - consumed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RingStats {
    /// Slots in the ring.
    pub capacity: u64,
    /// Messages published: by the CPU producer, or (GPU rings) by the kernels, from the ring's
    /// device counter.
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
            consumer_state: AtomicU8::new(state::OPEN),
            fault: UnsafeCell::new(None),
            close_error: Mutex::new(None),
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

    /// The header of the slot for `pos`: each word loaded once (relaxed; the caller's acquire of
    /// `seq` orders them after the producer's writes).
    #[inline]
    pub(crate) fn header(&self, pos: u64) -> SlotHeader {
        // SAFETY: as in `seq`: the slot is valid for the ring's life and its header words are
        // only ever accessed atomically.
        let words = unsafe { &(*self.slot(pos)).header };
        SlotHeader::from_words(words.each_ref().map(|word| word.load(Ordering::Relaxed)))
    }

    /// Producer: stores the header words of the slot for `pos` (relaxed; the release store of
    /// `seq` that follows publishes them).
    #[inline]
    pub(crate) fn write_header(&self, pos: u64, header: SlotHeader) {
        // SAFETY: as in `header`.
        let words = unsafe { &(*self.slot(pos)).header };
        for (word, value) in words.iter().zip(header.to_words()) {
            word.store(value, Ordering::Relaxed);
        }
    }

    /// The payload cell of the slot for `pos`; reached only as the protocol allows (the
    /// producer that reserved the position writes it, the consumer reads it after `seq`).
    #[inline]
    pub(crate) fn payload(&self, pos: u64) -> &UnsafeCell<[u8; PAYLOAD_MAX]> {
        // SAFETY: the slot is valid for the ring's life; a shared reference to a cell asserts
        // nothing about its contents, which are touched only through the cell's pointers.
        unsafe { &(*self.slot(pos)).payload }
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

    /// The consumer is gone: producers stop (CPU: [`Error::Disconnected`]; GPU kernels:
    /// `PERDIX_CLOSED`). A failed push of that news to the device fails the ring
    /// ([`Error::HeadPush`]) and is kept in [`close_error`](Self::close_error).
    pub(crate) fn close_consumer(&self) {
        let closed = self
            .consumer_state
            .compare_exchange(
                state::OPEN,
                state::CLOSED,
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_ok();
        if closed {
            if let Err(err) = self.close_sink() {
                self.fail(Error::HeadPush(Box::new(err)));
            }
        }
    }

    /// Records the ring's first fault and closes the ring for its producers (CPU producers get
    /// the fault; GPU kernels waiting for room get `PERDIX_CLOSED`). Later faults are logged and
    /// ignored: the first one is what every later call reports.
    pub(crate) fn fail(&self, err: Error) {
        let mut seen = self.consumer_state.load(Ordering::Relaxed);
        loop {
            if seen >= state::FAILING {
                tracing::warn!(%err, "perdix: a further fault on a failed ring (the first is kept)");
                return;
            }
            // Acquire on success is not needed: the cell is written only by the CAS's winner.
            match self.consumer_state.compare_exchange_weak(
                seen,
                state::FAILING,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => seen = now,
            }
        }
        tracing::error!(%err, "perdix: ring failed; closed for its producers");
        let copy = err.clone();
        self.fault.with_mut(|cell| {
            // SAFETY: this thread won the CAS to `FAILING`, so it is the cell's only writer
            // ever, and readers touch it only after seeing `FAILED`, stored (release) below.
            unsafe { *cell = Some(copy) };
        });
        // Release: the fault written above happens before a reader's acquire sees `FAILED`.
        self.consumer_state.store(state::FAILED, Ordering::Release);
        if seen == state::OPEN {
            if let Err(close) = self.close_sink() {
                tracing::error!(%close, first = %err, "perdix: could not close a failed ring on the device");
            }
        }
    }

    /// Pushes CLOSED to the sink, keeping a failure in `close_error`.
    fn close_sink(&self) -> Result<(), Error> {
        let Some(sink) = &self.sink else {
            return Ok(());
        };
        sink.close().inspect_err(|err| {
            let mut slot = self
                .close_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            slot.get_or_insert_with(|| err.clone());
        })
    }

    /// The ring's fault, if it failed.
    pub(crate) fn fault(&self) -> Option<Error> {
        // Acquire: pairs with the release store of `FAILED` in `fail`, after the cell's write.
        if self.consumer_state.load(Ordering::Acquire) != state::FAILED {
            return None;
        }
        self.fault.with(|cell| {
            // SAFETY: `FAILED` was acquired, so the cell's one write happened before this
            // read, and nobody writes it again.
            unsafe { (*cell).clone() }
        })
    }

    /// Whether the ring failed (cheap: one relaxed load; [`fault`](Self::fault) reads it).
    #[inline]
    pub(crate) fn is_faulted(&self) -> bool {
        self.consumer_state.load(Ordering::Relaxed) >= state::FAILING
    }

    /// A failed push of CLOSED to the device: GPU producers waiting for room on this ring were
    /// not told it closed, so waiting for them may never end.
    #[cfg(feature = "cuda")]
    #[allow(dead_code)] // read by the GPU producer's teardown, which lands separately
    pub(crate) fn close_error(&self) -> Option<Error> {
        self.close_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Why a producer must stop: the ring's fault, or [`Error::Disconnected`].
    #[cold]
    pub(crate) fn closed_error(&self) -> Error {
        self.fault().unwrap_or(Error::Disconnected)
    }

    /// Whether the consumer must also push its head to a [`HeadSink`].
    #[inline]
    pub(crate) fn has_sink(&self) -> bool {
        self.sink.is_some()
    }

    /// Consumer: pushes `head` to the sink (the caller has published it first).
    ///
    /// # Errors
    ///
    /// The sink's.
    #[cold]
    pub(crate) fn push_head(&self, head: u64) -> Result<(), Error> {
        match &self.sink {
            Some(sink) => sink.push(head),
            None => Ok(()),
        }
    }

    #[inline]
    pub(crate) fn producer_closed(&self) -> bool {
        self.producer_closed.load(Ordering::Acquire)
    }

    /// Whether producers must stop (the consumer is gone or the ring failed). Relaxed: a
    /// producer that sees it reads the reason through [`closed_error`](Self::closed_error),
    /// which acquires.
    #[inline]
    pub(crate) fn consumer_closed(&self) -> bool {
        self.consumer_state.load(Ordering::Relaxed) != state::OPEN
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
        let produced = self.sink.as_ref().and_then(|sink| sink.produced());
        RingStats {
            capacity: self.capacity,
            produced: produced.unwrap_or_else(|| self.tail.load(Ordering::Relaxed)),
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

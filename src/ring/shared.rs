//! The state both halves share: slots, the consumer's published head, closed flags, counters.

use crossbeam_utils::CachePadded;

use super::layout::{max_message, ring_bytes, SlotHeader, LL_MAX_PAYLOAD, SLOT_ALIGN};
use super::memory::{Backend, RingMemory};
use super::slots::Slots;
pub use super::stats::RingStats;
use super::wait::Wait;
use super::RingMode;
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
    /// Positions (slots, pads included) the producers behind the sink have published into the
    /// ring, when the sink can tell (GPU rings: the ring's device counter);
    /// [`RingStats::produced`] for such rings.
    fn produced(&self) -> Option<u64> {
        None
    }
    /// What the producers behind the sink counted on their side, when the sink can tell (GPU
    /// rings: the ring's device counters, read in one copy): the positions they published,
    /// and the drops and full-ring waits no host counter sees. By default
    /// [`produced`](Self::produced) alone.
    fn counts(&self) -> Option<SinkCounts> {
        self.produced().map(|positions| SinkCounts {
            positions,
            ..SinkCounts::default()
        })
    }
}

/// The counts of a ring's producers that live behind its [`HeadSink`] (GPU rings: the
/// ring's device counters), as [`RingStats`] adds them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SinkCounts {
    /// Positions published ([`RingStats::produced`]).
    pub(crate) positions: u64,
    /// Messages dropped because the ring was full (added to [`RingStats::drops`]).
    pub(crate) drops: u64,
    /// Times a producer found the ring full and waited (added to
    /// [`RingStats::stalls`]).
    pub(crate) stalls: u64,
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
    /// The `capacity` slots, in `memory`.
    slots: Slots,
    /// Number of slots, a power of two in `2..=MAX_CAPACITY`.
    capacity: u64,
    /// [`max_message`] of the capacity (throughput) or [`LL_MAX_PAYLOAD`] (low latency): the
    /// longest payload a header may claim.
    max_message: u64,
    /// How messages are laid out in the slots ([`RingMode`]).
    mode: RingMode,
    /// Next position the consumer will read (a message's first slot); every position below it
    /// is free for producers.
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
    /// Exact counters of rare events.
    counters: CachePadded<Counters>,
    /// What the consumer has taken, published with its head (its line: written only by the
    /// consumer, apart from the producers' counters).
    taken: CachePadded<Taken>,
    /// Owner of the bytes `slots` points into; freed after the slots are dropped.
    memory: Box<dyn RingMemory>,
    /// Where the consumer also pushes its head (GPU producers); `None` for CPU producers.
    sink: Option<Box<dyn HeadSink>>,
}

/// Messages and payload bytes the consumer has taken (relaxed: counters, never
/// synchronisation).
#[derive(Debug, Default)]
struct Taken {
    messages: AtomicU64,
    bytes: AtomicU64,
}

#[derive(Debug, Default)]
struct Counters {
    stalls: AtomicU64,
    drops: AtomicU64,
    corrupt: AtomicU64,
}

// SAFETY: the slots are reached only through raw pointers under the ring protocol (a slot is
// written by the producer that reserved it and read by the consumer after its `seq` acquire);
// everything else is atomics or the `Send + Sync` memory owner.
unsafe impl Send for Ring {}
// SAFETY: as for `Send`.
unsafe impl Sync for Ring {}

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
        // SAFETY: the memory holds `capacity` slots at `SLOT_ALIGN` (checked above) and stays
        // put until `memory` drops, after `Drop for Ring`; nobody else has the address yet.
        let slots = unsafe { Slots::init(memory.as_ptr(), capacity) };
        Ok(Self {
            slots,
            capacity: capacity as u64,
            max_message: max_message(capacity) as u64,
            mode: RingMode::Throughput,
            head: CachePadded::new(AtomicU64::new(0)),
            tail: CachePadded::new(AtomicU64::new(0)),
            producer_closed: AtomicBool::new(false),
            consumer_state: AtomicU8::new(state::OPEN),
            fault: UnsafeCell::new(None),
            counters: CachePadded::new(Counters::default()),
            taken: CachePadded::new(Taken::default()),
            memory,
            sink,
        })
    }

    /// The ring with its messages laid out as `mode` says (before either half exists).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for [`RingMode::LowLatency`] under loom, whose slot model has
    /// no low-latency words.
    pub(crate) fn with_mode(mut self, mode: RingMode) -> Result<Self, Error> {
        if cfg!(perdix_loom) && mode == RingMode::LowLatency {
            return Err(Error::InvalidConfig(
                "low-latency rings are not modelled under loom".into(),
            ));
        }
        self.mode = mode;
        self.max_message = match mode {
            RingMode::Throughput => max_message(self.capacity as usize) as u64,
            RingMode::LowLatency => LL_MAX_PAYLOAD as u64,
        };
        Ok(self)
    }

    /// How the ring lays out its messages.
    #[inline]
    pub(crate) fn mode(&self) -> RingMode {
        self.mode
    }

    #[inline]
    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The longest payload a message may have: [`max_message`] of the capacity.
    #[inline]
    pub(crate) fn max_message(&self) -> u64 {
        self.max_message
    }

    /// The slot memory.
    #[inline]
    pub(crate) fn slots(&self) -> &Slots {
        &self.slots
    }

    /// The `seq` word of the slot for `pos`.
    #[inline]
    pub(crate) fn seq(&self, pos: u64) -> &AtomicU64 {
        self.slots.seq(pos)
    }

    /// The header of the slot for `pos`, each word loaded once (see [`Slots::header`]).
    #[inline]
    pub(crate) fn header(&self, pos: u64) -> SlotHeader {
        self.slots.header(pos)
    }

    /// Producer: stores the header words of the slot for `pos` (see [`Slots::write_header`]).
    #[inline]
    pub(crate) fn write_header(&self, pos: u64, header: SlotHeader) {
        self.slots.write_header(pos, header);
    }

    /// Consumer: everything below `head` is free. Pairs with the producer's acquire in
    /// [`Ring::load_head`], so the consumer's reads of a slot happen before its reuse.
    #[inline]
    pub(crate) fn publish_head(&self, head: u64) {
        self.head.store(head, Ordering::Release);
    }

    /// Consumer: the messages and payload bytes taken so far, for [`RingStats`] (relaxed: no
    /// one synchronises on them).
    #[inline]
    pub(crate) fn record_taken(&self, messages: u64, bytes: u64) {
        // Not the protocol: loom's models leave the counters out (each atomic is a preemption
        // point, and the models are bounded in preemptions).
        if cfg!(perdix_loom) {
            return;
        }
        self.taken.messages.store(messages, Ordering::Relaxed);
        self.taken.bytes.store(bytes, Ordering::Relaxed);
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
    /// ([`Error::HeadPush`]).
    pub(crate) fn close_consumer(&self) {
        // Relaxed: `CLOSED` carries no data (a producer that sees it stops; its reads of this
        // ring's slots are over). A fault does, and is published by `FAILED`'s release.
        let closed = self
            .consumer_state
            .compare_exchange(
                state::OPEN,
                state::CLOSED,
                Ordering::Relaxed,
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

    /// Pushes CLOSED to the sink. (A GPU producer that finds one of its rings failed closes it
    /// again from its own stream, so a failed push here does not leave kernels waiting.)
    fn close_sink(&self) -> Result<(), Error> {
        match &self.sink {
            Some(sink) => sink.close(),
            None => Ok(()),
        }
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

    /// Why a producer must stop: the ring's fault, or [`Error::Disconnected`]. A fault being
    /// written (`FAILING`: its writer is between two stores) is waited for, so a producer of a
    /// failed ring always gets the fault itself.
    #[cold]
    pub(crate) fn closed_error(&self) -> Error {
        let mut wait = Wait::new();
        loop {
            match self.consumer_state.load(Ordering::Relaxed) {
                state::FAILING => wait.snooze(),
                state::FAILED => return self.fault().unwrap_or(Error::Disconnected),
                _ => return Error::Disconnected,
            }
        }
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

    /// Positions the producers published at or beyond `pos`, when the sink can tell (a GPU
    /// ring's device counter, read with a copy); `None` when it cannot (a CPU producer, which
    /// publishes in order, or a failed copy). Once the producer side is closed and `pos` is not
    /// published, any such position can never be read: [`Error::Lost`].
    #[cold]
    pub(crate) fn published_beyond(&self, pos: u64) -> Option<u64> {
        let produced = self.sink.as_ref()?.produced()?;
        Some(produced.saturating_sub(pos))
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
        self.counters.stalls.fetch_add(1, Ordering::Relaxed);
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
        let sink = self.sink.as_ref().and_then(|sink| sink.counts());
        let (drops, stalls) = sink.map_or((0, 0), |counts| (counts.drops, counts.stalls));
        RingStats {
            capacity: self.capacity,
            produced: sink.map_or_else(|| self.tail.load(Ordering::Relaxed), |c| c.positions),
            consumed: self.head.load(Ordering::Relaxed),
            // The device's counts are data from the device: added without overflow.
            stalls: (self.counters.stalls.load(Ordering::Relaxed)).saturating_add(stalls),
            drops: (self.counters.drops.load(Ordering::Relaxed)).saturating_add(drops),
            corrupt: self.counters.corrupt.load(Ordering::Relaxed),
            messages: self.taken.messages.load(Ordering::Relaxed),
            bytes: self.taken.bytes.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: both halves are gone (we hold the last `Arc`), so nothing touches the slots;
        // `memory` is freed after this.
        unsafe { self.slots.drop_slots() };
    }
}

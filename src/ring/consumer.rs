//! The CPU consumer half.

use core::ptr::addr_of;
use core::time::Duration;
use std::time::Instant;

use super::layout::{SlotHeader, CACHE_LINE, OFFSET_PAYLOAD, PAYLOAD_MAX};
use super::message::{Message, MessageRef};
use super::shared::{Ring, RingStats};
use super::wait::Wait;
use crate::sync::{Arc, Ordering};
use crate::Error;

/// How far ahead a consumer of a GPU ring prefetches, in slots (about 100 ns of DRAM latency
/// at ~10 ns a message).
const PREFETCH_SLOTS: u64 = 16;

/// The reading half of a ring.
///
/// Owns `head`. The slot for `head` is ready when its `seq` is `head + 1` (acquire), so the
/// consumer never reads a producer's index: one cache line moves per small message. After a
/// message is read the consumer publishes `head` (release) for producers.
///
/// # Examples
///
/// ```
/// use perdix_transport::{Buffer, Error};
///
/// let (mut producer, mut consumer) = Buffer::new(8)?.into_split();
/// assert!(consumer.try_consume().is_none());
/// for word in [&b"a"[..], b"bb", b"ccc"] {
///     producer.try_produce(word)?;
/// }
/// let mut total = 0;
/// assert_eq!(consumer.drain(16, |msg| total += msg.len()), 3);
/// assert_eq!(total, 6);
/// drop(producer);
/// assert_eq!(consumer.try_consume_checked().unwrap_err(), Error::Disconnected);
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug)]
pub struct Consumer {
    ring: Arc<Ring>,
    /// Next position to read; everything below is released.
    head: u64,
    /// Last head published to producers (`<= head`).
    published: u64,
    /// Batch drains publish at least this often (capacity / 8, at least 1); a ring with a
    /// [`HeadSink`](super::shared::HeadSink) pushes its head there at the same cadence.
    publish_every: u64,
    /// Whether the ring has a head sink (GPU producers): cached from the ring.
    sink: bool,
    /// Last head pushed to the sink (`<= published`).
    pushed: u64,
    /// An empty ring pushes the head once it is this far past `pushed` (publish_every / 8).
    push_on_empty: u64,

    /// The first corrupt slot seen, reported on every later call: `(pos, seq, len)`.
    corrupt: Option<(u64, u64, u32)>,
}

impl Consumer {
    pub(crate) fn new(ring: Arc<Ring>) -> Self {
        let publish_every = (ring.capacity() / 8).max(1);
        let sink = ring.has_sink();
        Self {
            ring,
            head: 0,
            published: 0,
            publish_every,
            sink,
            pushed: 0,
            push_on_empty: (publish_every / 8).max(1),

            corrupt: None,
        }
    }

    /// The oldest message, if one is ready. Never blocks.
    ///
    /// `None` also covers a gone producer and a corrupt slot; use
    /// [`try_consume_checked`](Self::try_consume_checked) to tell them apart.
    #[inline]
    pub fn try_consume(&mut self) -> Option<MessageRef<'_>> {
        self.try_consume_checked().unwrap_or(None)
    }

    /// The oldest message, if one is ready, reporting why not otherwise. Never blocks.
    ///
    /// # Errors
    ///
    /// [`Error::Disconnected`] when the producer is gone and every message has been read;
    /// [`Error::Corrupt`] when the next slot breaks the protocol (the consumer stays there).
    #[inline]
    pub fn try_consume_checked(&mut self) -> Result<Option<MessageRef<'_>>, Error> {
        match self.poll()? {
            Some(header) => Ok(Some(self.guard(header))),
            None => Ok(None),
        }
    }

    /// Waits up to `timeout` for a message (spin, then yield).
    ///
    /// # Errors
    ///
    /// As [`try_consume_checked`](Self::try_consume_checked); `Ok(None)` means the time ran out.
    pub fn consume_timeout(&mut self, timeout: Duration) -> Result<Option<MessageRef<'_>>, Error> {
        let deadline = Instant::now().checked_add(timeout);
        let mut backoff = Wait::new();
        loop {
            if let Some(header) = self.poll()? {
                return Ok(Some(self.guard(header)));
            }
            if backoff.is_completed() && deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            backoff.snooze();
        }
    }

    /// Waits for a message, however long it takes.
    ///
    /// # Errors
    ///
    /// As [`try_consume_checked`](Self::try_consume_checked): the wait ends with
    /// [`Error::Disconnected`] once the producer is gone.
    pub fn consume(&mut self) -> Result<MessageRef<'_>, Error> {
        let mut backoff = Wait::new();
        loop {
            if let Some(header) = self.poll()? {
                return Ok(self.guard(header));
            }
            backoff.snooze();
        }
    }

    /// Reads up to `max` ready messages, calling `f` on each in order; returns how many.
    ///
    /// Slots are released in batches (every capacity / 8 messages and at the end), which costs
    /// producers less than one release per message. Stops early at an empty ring, a gone producer
    /// or a corrupt slot (see [`drain_checked`](Self::drain_checked)).
    pub fn drain<F>(&mut self, max: usize, f: F) -> usize
    where
        F: FnMut(Message<'_>),
    {
        self.drain_checked(max, f).unwrap_or(0)
    }

    /// [`drain`](Self::drain), reporting why nothing was read.
    ///
    /// # Errors
    ///
    /// Only when no message was read: as [`try_consume_checked`](Self::try_consume_checked).
    pub fn drain_checked<F>(&mut self, max: usize, mut f: F) -> Result<usize, Error>
    where
        F: FnMut(Message<'_>),
    {
        let mut count = 0;
        while count < max {
            let header = match self.poll() {
                Ok(Some(header)) => header,
                Ok(None) => break,
                Err(err) if count == 0 => return Err(err),
                Err(_) => break,
            };
            if self.sink {
                if count == 0 {
                    // A drain that starts cold (several rings per thread) would wait for its
                    // next PREFETCH_SLOTS slots one by one: ask for all of them at once. Only
                    // once a message is there: an empty ring's next lines are the GPU's to write.
                    self.prefetch_start(header.len);
                } else {
                    self.prefetch_ahead(header.len);
                }
            }
            f(self.message(header));
            self.head += 1;
            count += 1;
            if self.head - self.published >= self.publish_every {
                self.publish();
            }
        }
        self.publish();
        Ok(count)
    }

    /// GPU rings: asks the CPU to start loading the slot [`PREFETCH_SLOTS`] ahead (its first
    /// line, and the last line a message of `len` bytes uses, as the current one did). The GPU
    /// writes slots with DMA, so they arrive in the last-level cache or DRAM, not in this core's
    /// caches, and a consumer that waits for each line in turn is bound by memory latency. A
    /// prefetch is a hint: it reads nothing the program observes, so it races nothing.
    #[inline(always)]
    fn prefetch_ahead(&self, len: u32) {
        self.prefetch_slot(self.head + PREFETCH_SLOTS, len);
    }

    /// Prefetches the first line of the slot for `pos` and the last line `len` bytes use.
    #[inline(always)]
    fn prefetch_slot(&self, pos: u64, len: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let slot = self.ring.slot(pos).cast::<i8>();
            let last_line = (OFFSET_PAYLOAD + (len as usize).max(1) - 1) & !(CACHE_LINE - 1);
            // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 CPU has; it is a hint that
            // never faults or reads program-visible memory, and `slot` (wrapped by `slot(..)`)
            // is inside the ring anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(slot) };
            // SAFETY: as above; `last_line < SLOT_SIZE`, so this stays inside the same slot.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(slot.wrapping_add(last_line)) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (pos, len);
    }

    /// GPU rings: prefetches the next [`PREFETCH_SLOTS`] slots (the lines a message of `len`
    /// bytes uses), at the start of a drain.
    #[inline]
    fn prefetch_start(&self, len: u32) {
        for ahead in 1..=PREFETCH_SLOTS {
            self.prefetch_slot(self.head + ahead, len);
        }
    }

    /// Checks the slot at `head`: its header when ready.
    #[inline]
    fn poll(&mut self) -> Result<Option<SlotHeader>, Error> {
        if let Some((pos, seq, len)) = self.corrupt {
            return Err(Error::Corrupt { pos, seq, len });
        }
        let pos = self.head;
        let capacity = self.ring.capacity();
        // Acquire: pairs with the producer's release store of `pos + 1` (CPU), or the GPU's
        // `__threadfence_system()` before its `seq` store, so the body reads below see the message.
        let seq = self.ring.seq(pos).load(Ordering::Acquire);
        if seq == pos + 1 {
            let slot = self.ring.slot(pos);
            // SAFETY: `seq == pos + 1` was acquired, so the slot's body is complete and no
            // producer writes it until we publish a head above `pos`.
            let header = unsafe { (*slot).body.with(|body| addr_of!((*body).header).read()) };
            if header.len as usize > PAYLOAD_MAX {
                return Err(self.record_corrupt(pos, seq, header.len));
            }
            return Ok(Some(header));
        }
        let previous_lap = seq + capacity == pos + 1 || (seq == 0 && pos < capacity);
        if !previous_lap {
            return Err(self.record_corrupt(pos, seq, 0));
        }
        if self.sink && self.head - self.pushed >= self.push_on_empty {
            // Empty, with a head well ahead of the pushed one: push it now rather than at the
            // next capacity/8 mark, so `DropNewest` producers do not drop for a stale head.
            // (Progress does not need it: `publish` pushes every capacity/8, and a warp whose
            // batch is all that is left waits for a head at most 32 below ours.)
            self.push_device();
        }
        if self.ring.producer_closed() {
            // The producer's last publish happened before its close (release/acquire): look once
            // more, so a message published just before the close is not missed.
            if self.ring.seq(pos).load(Ordering::Acquire) == pos + 1 {
                return self.poll();
            }
            return Err(Error::Disconnected);
        }
        Ok(None)
    }

    #[cold]
    fn record_corrupt(&mut self, pos: u64, seq: u64, len: u32) -> Error {
        self.corrupt = Some((pos, seq, len));
        self.ring.count_corrupt();
        tracing::warn!(pos, seq, len, "perdix: corrupt slot; consumer stopped");
        Error::Corrupt { pos, seq, len }
    }

    /// A view of the ready message at `head` (header already checked by `poll`).
    #[inline]
    fn message(&self, header: SlotHeader) -> Message<'static> {
        let pos = self.head;
        let slot = self.ring.slot(pos);
        // SAFETY: `poll` acquired `seq == pos + 1`, so the body is complete; we only take its
        // address here.
        let data = unsafe {
            (*slot)
                .body
                .with(|body| addr_of!((*body).payload).cast::<u8>())
        };
        // SAFETY: `len <= PAYLOAD_MAX` (checked by `poll`), so `data..data + len` is inside the
        // slot, initialised, and not written by any producer until this consumer publishes a head
        // above `pos`; every caller bounds the view's life by a borrow of this consumer (a
        // `MessageRef` or a `drain` callback) that ends before that publish.
        let payload = unsafe { core::slice::from_raw_parts(data, header.len as usize) };
        Message::new(header, pos, payload)
    }

    fn guard(&mut self, header: SlotHeader) -> MessageRef<'_> {
        let msg = self.message(header);
        MessageRef::new(msg, self)
    }

    /// Called when a `MessageRef` drops: frees its slot.
    #[inline]
    pub(crate) fn release_one(&mut self) {
        self.head += 1;
        self.publish();
    }

    #[inline]
    fn publish(&mut self) {
        if self.published != self.head {
            self.ring.publish_head(self.head);
            self.published = self.head;
            if self.sink && self.head - self.pushed >= self.publish_every {
                self.push_device();
            }
        }
    }

    /// Publishes `head` and pushes it to the ring's head sink (device memory).
    #[cold]
    fn push_device(&mut self) {
        if self.published != self.head {
            self.ring.publish_head(self.head);
            self.published = self.head;
        }
        self.ring.push_head(self.head);
        self.pushed = self.head;
    }

    /// Slots in the ring.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.ring.capacity() as usize
    }

    /// Position of the next message to read (= messages consumed so far).
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
    pub fn monitor(&self) -> super::Monitor {
        super::Monitor::new(Arc::clone(&self.ring))
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.ring.close_consumer();
    }
}

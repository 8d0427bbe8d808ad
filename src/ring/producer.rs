//! The CPU producer half.

#[cfg(not(perdix_loom))]
use super::layout::LL_MAX_PAYLOAD;
use super::layout::{slots_for, SlotHeader, FLAG_PAD, OFFSET_PAYLOAD, SLOT_PAYLOAD, SLOT_SIZE};
#[cfg(not(perdix_loom))]
use super::ll;
use super::shared::{Ring, RingStats};
use super::slots::WriteBuf;
use super::wait::Wait;
use super::{Policy, RingMode};
use crate::sync::{Arc, Ordering};
use crate::{clock, Error};

/// The writing half of a ring.
///
/// Owns `tail`; writes a message of `k` slots only when `tail + k - head <= capacity` (a pad
/// record before it included), reading the consumer's shared head only when its cached copy
/// says the ring is full (rtrb's `next_tail`). A message of up to
/// [`max_message`](Self::max_message) bytes spans [`slots_for`] slots; one that would not fit
/// before the ring's end is preceded by a pad record filling the rest of the lap.
///
/// # Examples
///
/// ```
/// use perdix_transport::{Buffer, Error};
///
/// let (mut producer, mut consumer) = Buffer::new(2)?.into_split();
/// producer.try_produce(b"one")?;
/// producer.try_produce_with(7, |buf| { buf[..3].copy_from_slice(b"two"); 3 })?;
/// assert_eq!(producer.try_produce(b"three"), Err(Error::Full)); // nothing taken
/// assert_eq!(&*consumer.try_consume().unwrap(), b"one");
/// producer.try_produce(b"three")?;
/// drop(consumer);
/// assert_eq!(producer.try_produce(b"four"), Err(Error::Disconnected));
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug)]
pub struct Producer {
    ring: Arc<Ring>,
    /// Next position to write; `tail - head <= capacity` always.
    tail: u64,
    /// A copy of the consumer's head; can be stale (never ahead of the real one).
    cached_head: u64,
    /// The ring's [`max_message`](crate::layout::max_message), cached.
    max: usize,
    policy: Policy,
    id: u32,
    timestamps: bool,
    /// Whether the ring is [`RingMode::LowLatency`]: cached from the ring.
    low_latency: bool,
}

impl Producer {
    /// Writes the messages after this call with producer id `id` (a relay that re-publishes
    /// another producer's messages keeps their ids: the remote source).
    #[cfg(all(feature = "zenoh", feature = "bevy"))]
    #[inline]
    pub(crate) fn set_id(&mut self, id: u32) {
        self.id = id;
    }

    pub(crate) fn new(ring: Arc<Ring>, policy: Policy, id: u32, timestamps: bool) -> Self {
        let max = usize::try_from(ring.max_message()).unwrap_or(usize::MAX);
        let low_latency = ring.mode() == RingMode::LowLatency;
        Self {
            ring,
            low_latency,
            tail: 0,
            cached_head: 0,
            max,
            policy,
            id,
            timestamps,
        }
    }

    /// Sends `msg` with kind 0 if there is room, never blocking.
    ///
    /// # Errors
    ///
    /// [`Error::MessageTooLarge`] above [`max_message`](Self::max_message) bytes;
    /// [`Error::Disconnected`] once the consumer is gone; [`Error::Full`] when the slots the
    /// message needs (and a pad before it) are not all free. In every error case nothing was
    /// sent.
    #[inline]
    pub fn try_produce(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.try_produce_kind(0, msg)
    }

    /// [`try_produce`](Self::try_produce) with a message kind.
    ///
    /// # Errors
    ///
    /// As [`try_produce`](Self::try_produce).
    #[inline]
    pub fn try_produce_kind(&mut self, kind: u32, msg: &[u8]) -> Result<(), Error> {
        if msg.len() <= SLOT_PAYLOAD.min(self.max) {
            // One slot (every ring carries it, and it never needs a pad): today's fast path.
            self.try_room(1)?;
            let pos = self.tail;
            // SAFETY: `pos - head < capacity` (`has_room(1)`; `load_head`'s acquire ordered the
            // consumer's last reads and stamps of the slot before us) and its `seq` is not
            // published yet; one slot never wraps.
            let mut buf = unsafe { self.ring.slots().write(pos, msg.len()) };
            // SAFETY: as above.
            unsafe { buf.get_mut() }.copy_from_slice(msg);
            self.ring.slots().finish_write(pos, buf, msg.len());
            self.publish_at(pos, kind, msg.len(), 1);
            return Ok(());
        }
        self.try_produce_slots(kind, msg)
    }

    /// [`try_produce_kind`](Self::try_produce_kind) of a message of more than one slot.
    #[inline(never)]
    fn try_produce_slots(&mut self, kind: u32, msg: &[u8]) -> Result<(), Error> {
        let reserved = self.try_reserve(msg.len())?;
        self.copy_in(reserved, kind, msg);
        Ok(())
    }

    /// Copies `msg` into the room `try_reserve` or `reserve` just returned for it, and
    /// publishes it.
    #[inline]
    fn copy_in(&mut self, (pos, pad, mut buf): (u64, u64, WriteBuf), kind: u32, msg: &[u8]) {
        // SAFETY: the bytes were just reserved for `msg.len()` bytes and are unpublished.
        unsafe { buf.get_mut() }.copy_from_slice(msg);
        self.publish(pos, pad, kind, buf, msg.len());
    }

    /// Writes a one-slot message in place: `write` gets the slot's whole payload buffer
    /// ([`SLOT_PAYLOAD`] bytes; 104 on a low-latency ring) and returns how many bytes it filled. Never blocks. (For larger
    /// messages written in place, see
    /// [`try_claim`](Self::try_claim).)
    ///
    /// # Errors
    ///
    /// As [`try_produce`](Self::try_produce), checked before `write` runs; and
    /// [`Error::MessageTooLarge`] if `write` returns more than [`SLOT_PAYLOAD`] (then nothing
    /// is published).
    #[inline]
    pub fn try_produce_with<F>(&mut self, kind: u32, write: F) -> Result<(), Error>
    where
        F: FnOnce(&mut [u8]) -> usize,
    {
        self.try_room(1)?;
        self.write_slot(kind, write)
    }

    /// Sends `msg` with kind 0, waiting for room under [`Policy::Block`].
    ///
    /// Under [`Policy::DropNewest`] a full ring drops the message, counts it in
    /// [`RingStats::drops`] and returns [`Error::Full`].
    ///
    /// # Errors
    ///
    /// [`Error::MessageTooLarge`], [`Error::Disconnected`] (also while waiting), and
    /// [`Error::Full`] under `DropNewest`.
    pub fn produce(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.produce_kind(0, msg)
    }

    /// [`produce`](Self::produce) with a message kind.
    ///
    /// # Errors
    ///
    /// As [`produce`](Self::produce).
    pub fn produce_kind(&mut self, kind: u32, msg: &[u8]) -> Result<(), Error> {
        let reserved = self.reserve(msg.len())?;
        self.copy_in(reserved, kind, msg);
        Ok(())
    }

    /// Blocking twin of [`try_produce_with`](Self::try_produce_with), under the producer's
    /// policy.
    ///
    /// # Errors
    ///
    /// As [`produce`](Self::produce).
    pub fn produce_with<F>(&mut self, kind: u32, write: F) -> Result<(), Error>
    where
        F: FnOnce(&mut [u8]) -> usize,
    {
        self.wait_for_room(1)?;
        self.write_slot(kind, write)
    }

    /// Reserves room for a message of `len` bytes (after a pad, where one is needed), never
    /// blocking: its position, the pad's slots, and its payload bytes. Nothing is published.
    ///
    /// # Errors
    ///
    /// As [`try_produce`](Self::try_produce).
    #[inline]
    pub(super) fn try_reserve(&mut self, len: usize) -> Result<(u64, u64, WriteBuf), Error> {
        let (pad, k) = self.span(len)?;
        self.try_room(pad + k)?;
        Ok(self.reserve_at(pad, len))
    }

    /// [`try_reserve`](Self::try_reserve), waiting under the producer's policy.
    ///
    /// # Errors
    ///
    /// As [`produce`](Self::produce).
    #[inline]
    pub(super) fn reserve(&mut self, len: usize) -> Result<(u64, u64, WriteBuf), Error> {
        let (pad, k) = self.span(len)?;
        self.wait_for_room(pad + k)?;
        Ok(self.reserve_at(pad, len))
    }

    /// The longest message this ring carries:
    /// [`max_message`](crate::layout::max_message) of its capacity.
    #[must_use]
    pub fn max_message(&self) -> usize {
        self.max
    }

    /// The pad (slots to the lap's end, or 0) and the slots a message of `len` bytes at `tail`
    /// needs.
    #[inline]
    fn span(&self, len: usize) -> Result<(u64, u64), Error> {
        if len > self.max {
            return Err(Error::too_large_for(len, self.max));
        }
        let capacity = self.ring.capacity();
        // `len <= max_message`, so `k <= capacity / 2`: no overflow, and the pad (fewer slots
        // than `k`, or the message would fit) and the message fit in the ring together.
        let k = slots_for(len) as u64;
        let idx = self.tail & (capacity - 1);
        let pad = if idx + k > capacity {
            capacity - idx
        } else {
            0
        };
        Ok((pad, k))
    }

    /// Whether `need` slots from `tail` are free now, never waiting: [`Error::Disconnected`] (or
    /// the ring's fault) once the consumer is gone, [`Error::Full`] (counted in `stalls`)
    /// when they are not free.
    #[inline(always)]
    fn try_room(&mut self, need: u64) -> Result<(), Error> {
        if self.ring.consumer_closed() {
            return Err(self.ring.closed_error());
        }
        if !self.has_room(need) {
            self.ring.count_full();
            return Err(Error::Full);
        }
        Ok(())
    }

    /// Waits until `need` slots from `tail` are free, under the policy (see
    /// [`produce`](Self::produce)).
    #[inline]
    fn wait_for_room(&mut self, need: u64) -> Result<(), Error> {
        if self.ring.consumer_closed() {
            return Err(self.ring.closed_error());
        }
        if !self.has_room(need) {
            if self.policy == Policy::DropNewest {
                self.ring.count_drop();
                return Err(Error::Full);
            }
            self.ring.count_full();
            let mut backoff = Wait::new();
            while !self.has_room(need) {
                if self.ring.consumer_closed() {
                    return Err(self.ring.closed_error());
                }
                backoff.snooze();
            }
        }
        Ok(())
    }

    /// Whether the `need` slots from `tail` are free, refreshing the cached head only when it
    /// says they are not.
    #[inline]
    fn has_room(&mut self, need: u64) -> bool {
        let capacity = self.ring.capacity();
        if self.tail + need - self.cached_head <= capacity {
            return true;
        }
        self.cached_head = self.ring.load_head();
        debug_assert!(self.tail - self.cached_head <= capacity);
        self.tail + need - self.cached_head <= capacity
    }

    /// The room for `len` bytes after a pad of `pad` slots at `tail`. The caller checked
    /// `has_room(pad + slots_for(len))`.
    #[inline]
    fn reserve_at(&mut self, pad: u64, len: usize) -> (u64, u64, WriteBuf) {
        let pos = self.tail + pad;
        // SAFETY: `tail .. pos + slots_for(len)` is below the acquired head plus the capacity
        // (the caller's `has_room`; `load_head`'s acquire ordered the consumer's last reads and
        // stamps of those slots before us), no `seq` for them is published until `commit`,
        // and the message does not wrap (`span` put a pad before it where it would).
        let buf = unsafe { self.ring.slots().write(pos, len) };
        (pos, pad, buf)
    }

    /// Publishes the claimed message at `pos` (after the pad of `pad` slots before it, if any):
    /// the first `len` bytes of `buf`, with `kind`. The caller reserved them.
    #[inline]
    pub(super) fn publish(&mut self, pos: u64, pad: u64, kind: u32, buf: WriteBuf, len: usize) {
        debug_assert_eq!(pos, self.tail + pad);
        if pad != 0 {
            self.write_pad(self.tail, pad);
        }
        self.ring.slots().finish_write(pos, buf, len);
        self.publish_at(pos, kind, len, slots_for(len) as u64);
    }

    /// Writes the header of the message of `k` slots at `pos` (its payload is written) and
    /// publishes it.
    #[inline(always)]
    fn publish_at(&mut self, pos: u64, kind: u32, len: usize, k: u64) {
        let stamp_ns = if self.timestamps { clock::now_ns() } else { 0 };
        let header = SlotHeader {
            // `len <= max_message <= u32::MAX`.
            len: len as u32,
            kind,
            producer: self.id,
            flags: 0,
            stamp_ns,
        };
        if self.low_latency {
            // (Never under loom: `Ring::with_mode` refuses the mode there.)
            #[cfg(not(perdix_loom))]
            self.publish_ll(pos, &header);
        } else {
            self.ring.write_header(pos, header);
            // Release: the payload and header writes above happen before a consumer's acquire
            // load sees `pos + 1`.
            self.ring.seq(pos).store(pos + 1, Ordering::Release);
        }
        self.tail = pos + k;
        self.ring.record_tail(self.tail);
    }

    /// Publishes the one-slot message at `pos` of a low-latency ring, whose payload was written
    /// in place at offset 32 (as on any ring): re-encoded into the flagged words, word 0 last.
    #[cfg(not(perdix_loom))]
    #[inline(never)]
    fn publish_ll(&self, pos: u64, header: &SlotHeader) {
        let len = (header.len as usize).min(LL_MAX_PAYLOAD);
        let mut payload = [0u8; LL_MAX_PAYLOAD];
        {
            // SAFETY: the slot at `pos` is reserved by this producer and unpublished (word 0
            // is still 0, so the consumer reads nothing else of it); `len` is within one slot.
            let buf = unsafe { self.ring.slots().write(pos, len) };
            // SAFETY: as above; the view ends with this block, before the stores below.
            payload[..len].copy_from_slice(unsafe { buf.get() });
        }
        ll::publish(self.ring.slots(), pos, header, &payload[..len]);
    }

    /// Publishes a pad record of `pad` slots at `at`: the rest of the lap, which the consumer
    /// skips. Its payload bytes are never written.
    #[cold]
    fn write_pad(&mut self, at: u64, pad: u64) {
        let header = SlotHeader {
            // `pad < k <= slots_for(u32::MAX)`, so this is below the message's `len`.
            len: (pad as usize * SLOT_SIZE - OFFSET_PAYLOAD) as u32,
            kind: 0,
            producer: self.id,
            flags: FLAG_PAD,
            stamp_ns: 0,
        };
        self.ring.write_header(at, header);
        // Release: as the message's `seq` store (the consumer checks the pad's header).
        self.ring.seq(at).store(at + 1, Ordering::Release);
    }

    /// Fills and publishes a one-slot message at `tail`. The caller checked `has_room(1)`.
    #[inline]
    fn write_slot<F>(&mut self, kind: u32, write: F) -> Result<(), Error>
    where
        F: FnOnce(&mut [u8]) -> usize,
    {
        let pos = self.tail;
        let room = SLOT_PAYLOAD.min(self.max);
        // SAFETY: `pos - head < capacity` (the caller checked `has_room(1)`, and the acquire
        // in `load_head` ordered the consumer's last reads of this slot before us), and the
        // slot's `seq` still holds the previous lap's value (on a low-latency ring, word 0 is
        // still 0), so the consumer does not read the payload: this producer owns it until it
        // publishes. `room` bytes from offset 32 stay inside one slot.
        let mut buf = unsafe { self.ring.slots().write(pos, room) };
        // SAFETY: as above: the slot is reserved and unpublished.
        let len = write(unsafe { buf.get_mut() });
        if len > room {
            return Err(Error::too_large_for(len, room));
        }
        self.ring.slots().finish_write(pos, buf, len);
        self.publish_at(pos, kind, len, 1);
        Ok(())
    }

    /// Slots in the ring.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.ring.capacity() as usize
    }

    /// Free slots, as far as this producer knows (refreshes the head once). A message of `len`
    /// bytes needs [`slots_for`]`(len)` of them (and a pad, at the lap's end).
    #[must_use]
    pub fn slots(&mut self) -> usize {
        self.cached_head = self.ring.load_head();
        (self.ring.capacity() - (self.tail - self.cached_head)) as usize
    }

    /// Whether the consumer is gone.
    #[must_use]
    pub fn is_abandoned(&self) -> bool {
        self.ring.consumer_closed()
    }

    /// The backpressure policy of [`produce`](Self::produce).
    #[must_use]
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Changes the backpressure policy.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
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

impl Drop for Producer {
    fn drop(&mut self) {
        self.ring.close_producer();
    }
}

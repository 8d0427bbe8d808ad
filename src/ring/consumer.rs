//! The CPU consumer half.

use super::layout::{slots_for_len, SlotHeader, FLAG_PAD, SLOT_PAYLOAD};
#[cfg(not(perdix_loom))]
use super::ll;
use super::message::Message;
use super::prefetch;
use super::shared::Ring;
use super::RingMode;
use crate::sync::{fence, Arc, Ordering};
use crate::Error;

/// The reading half of a ring.
///
/// Owns `head`. The slot for `head` is ready when its `seq` is `head + 1` (acquire), so the
/// consumer never reads a producer's index: one cache line moves per small message. A message
/// of `k` slots is handed out as one `&[u8]` in place (no copy); once it is read the consumer
/// stamps its continuation slots (each slot `q` gets `q + 1` in its first word, as a one-slot
/// message leaves it), skips pad records, and publishes `head` (release) for producers.
///
/// A slot that breaks the protocol ([`Error::Corrupt`]: a `seq` that can never become ready, a
/// length above [`max_message`](Self::max_message), a message that would wrap, a pad that does
/// not end the lap) or a head that cannot reach the
/// device ([`Error::HeadPush`]) is the ring's *fault*: the consumer stops there, the ring is
/// closed for its producers (GPU kernels waiting for room return `PERDIX_CLOSED`), and every
/// later call returns the same error ([`fault`](Self::fault) tells it without a call). A ring
/// whose producers published positions past one they never published (a GPU producer dropped
/// without `finish`) ends in [`Error::Lost`], with the count, rather than a clean
/// [`Error::Disconnected`].
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
    /// Whether the ring is [`RingMode::LowLatency`]: cached from the ring.
    low_latency: bool,
    /// `pos + 1` once the low-latency message at the head `pos` is rewritten in place (a look
    /// that left it in the ring finds the rewrite again; 0: none). Unused under loom.
    #[cfg_attr(perdix_loom, expect(dead_code, reason = "no low-latency rings"))]
    rewritten: u64,
    /// Last head pushed to the sink (`<= published`).
    pushed: u64,
    /// `len` of the message a guard holds (what [`release_one`](Self::release_one) frees).
    held_len: u32,
    /// An empty ring pushes the head once it is this far past `pushed` (publish_every / 8).
    push_on_empty: u64,
    /// Messages and payload bytes taken so far ([`RingStats`](super::RingStats)), published
    /// with the head.
    taken: u64,
    taken_bytes: u64,

    /// The ring's fault once this consumer has met it (or [`Error::Lost`] at its end),
    /// reported by every later call.
    fault: Option<Error>,
    /// The producer side is closed and nothing was lost: every later call is `Disconnected`.
    ended: bool,
}

impl Consumer {
    pub(crate) fn new(ring: Arc<Ring>) -> Self {
        let publish_every = (ring.capacity() / 8).max(1);
        let sink = ring.has_sink();
        let low_latency = ring.mode() == RingMode::LowLatency;
        Self {
            ring,
            low_latency,
            rewritten: 0,
            head: 0,
            published: 0,
            publish_every,
            sink,
            pushed: 0,
            held_len: 0,
            push_on_empty: (publish_every / 8).max(1),
            taken: 0,
            taken_bytes: 0,
            fault: None,
            ended: false,
        }
    }

    /// Reads up to `max` ready messages, calling `f` on each in order; returns how many.
    ///
    /// Slots are released in batches (every capacity / 8 slots and at the end), which costs
    /// producers less than one release per message. Pad records are skipped, never delivered. Stops early at an empty ring, a gone producer
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
    pub fn drain_checked<F>(&mut self, max: usize, f: F) -> Result<usize, Error>
    where
        F: FnMut(Message<'_>),
    {
        self.drain_admitted(max, |_| true, f)
    }

    /// [`drain_checked`](Self::drain_checked) that looks at each ready message's length first
    /// and stops *before* one that `admit(len)` refuses: that message stays in the ring, unread
    /// and unreleased, for a later call (a caller that bounds what it holds in bytes stops
    /// taking, so a full ring is backpressure for `Block` producers). `admit` is called once
    /// per message taken, and once more for the one refused.
    ///
    /// # Errors
    ///
    /// As [`drain_checked`](Self::drain_checked).
    #[inline]
    pub(crate) fn drain_admitted<A, F>(
        &mut self,
        max: usize,
        mut admit: A,
        mut f: F,
    ) -> Result<usize, Error>
    where
        A: FnMut(u32) -> bool,
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
            if !admit(header.len) {
                break;
            }
            if self.sink {
                if header.len as usize > SLOT_PAYLOAD {
                    prefetch::span(self.ring.slots(), self.head, header.len);
                } else if count == 0 {
                    // A drain that starts cold (several rings per thread) would wait for its
                    // next PREFETCH_SLOTS slots one by one: ask for all of them at once. Only
                    // once a message is there: an empty ring's next lines are the GPU's to write.
                    prefetch::start(self.ring.slots(), self.head, header.len);
                } else {
                    prefetch::ahead(self.ring.slots(), self.head, header.len);
                }
            }
            self.with_message(header, &mut f);
            // Only now, after `f` returned and its view of the slots is gone, may they be
            // released (loom checks this: publishing first races the producer's rewrite).
            self.advance(header.len);
            self.count_taken(header.len);
            count += 1;
            if self.head - self.published >= self.publish_every {
                self.publish();
            }
        }
        self.publish();
        Ok(count)
    }

    /// Checks the slot at `head`: its header when a message is ready (pad records are skipped).
    ///
    /// The common case, a ready one-slot message on a healthy ring, is decided by
    /// [`ready`](Self::ready), inline in every caller's loop; everything else (not ready, a
    /// fault, a multi-slot message, a pad) is [`poll_slow`](Self::poll_slow), which looks again
    /// from the start.
    #[inline(always)]
    fn poll(&mut self) -> Result<Option<SlotHeader>, Error> {
        match self.ready() {
            Some(header) => Ok(Some(header)),
            None => self.poll_slow(),
        }
    }

    /// The header at `head` when it is a ready one-slot message on a healthy ring; `None` for
    /// everything else (which [`poll_slow`](Self::poll_slow) sorts out). Small and inline: the
    /// per-message path returns an `Option` of the header alone, never a `Result` carrying an
    /// `Error` (moving that enum through the stack cost the seed API's consumer three
    /// store-forwarding stalls a message: docs/DESIGN-NOTES.md, "The seed API per message").
    #[inline(always)]
    fn ready(&self) -> Option<SlotHeader> {
        // A low-latency slot is checked word by word (`poll_ll`): its word 0 is not a `seq`.
        if self.fault.is_some() || self.low_latency {
            return None;
        }
        let pos = self.head;
        // Acquire: as in `poll_slow`.
        if self.ring.seq(pos).load(Ordering::Acquire) != pos + 1 {
            return None;
        }
        // Loaded once into this local, checked and used as in `poll_slow`.
        let header = self.ring.header(pos);
        if header.len as usize <= SLOT_PAYLOAD && header.flags & FLAG_PAD == 0 {
            return Some(header);
        }
        None
    }

    /// [`poll`](Self::poll) for every case but a ready one-slot message.
    #[inline(never)]
    fn poll_slow(&mut self) -> Result<Option<SlotHeader>, Error> {
        if let Some(err) = &self.fault {
            return Err(err.clone());
        }
        let pos = self.head;
        if self.low_latency {
            return self.poll_ll(pos);
        }
        // `pos` counts slots read: it does not reach `u64::MAX` (584 years at 1 G slots/s).
        let ready = pos + 1;
        // Acquire: pairs with the producer's release store of `pos + 1` (CPU), or the GPU's
        // system-scope fence before its `seq` store, so the reads below see the message.
        let seq = self.ring.seq(pos).load(Ordering::Acquire);
        if seq != ready {
            return self.poll_not_ready(pos, seq);
        }
        // Each header word is loaded once, into this local; only the local is checked and
        // used, so a faulty writer changing the slot meanwhile cannot widen the payload.
        let header = self.ring.header(pos);
        if header.len as usize <= SLOT_PAYLOAD && header.flags & FLAG_PAD == 0 {
            // One slot: within every ring's `max_message`, and it never wraps.
            return Ok(Some(header));
        }
        if self.skip_pad(pos, seq, header.len, header.flags)? {
            return self.poll();
        }
        Ok(Some(header))
    }

    /// `poll` for a ready header of more than one slot, or a pad: checks its span (`Corrupt` if
    /// it does not fit), and releases a pad (true: poll again, at the next lap's slot 0). Out of
    /// line and given the header's fields by value, so the one-slot path stays small.
    #[inline(never)]
    fn skip_pad(&mut self, pos: u64, seq: u64, len: u32, flags: u32) -> Result<bool, Error> {
        if !self.check_span(pos, len, flags) {
            return Err(self.fail(Error::Corrupt { pos, seq, len }));
        }
        if flags & FLAG_PAD == 0 {
            return Ok(false);
        }
        // A pad: the rest of the lap, never delivered. Release it now (its producer is already
        // writing the message after it, or waits for these slots).
        self.advance(len);
        self.publish();
        Ok(true)
    }

    /// Whether a ready header's slots fit the ring (all in `u64`, from the `u32` length, so
    /// nothing overflows): `len` at most [`max_message`](Self::max_message); a message that does
    /// not run past the ring's end; a pad that ends exactly there.
    #[inline]
    fn check_span(&self, pos: u64, len: u32, flags: u32) -> bool {
        let capacity = self.ring.capacity();
        let idx = pos & (capacity - 1);
        let k = slots_for_len(len);
        if u64::from(len) > self.ring.max_message() {
            false
        } else if flags & FLAG_PAD != 0 {
            k == capacity - idx
        } else {
            idx + k <= capacity
        }
    }

    /// Releases the message (or pad) of `len` bytes at `head`: stamps its continuation slots,
    /// then moves `head` past it (published by the caller).
    #[inline(always)]
    fn advance(&mut self, len: u32) {
        if len as usize <= SLOT_PAYLOAD {
            // One slot (a message, or a one-slot pad): nothing to stamp. A low-latency slot
            // is emptied for its next lap.
            #[cfg(not(perdix_loom))]
            if self.low_latency {
                ll::clear(self.ring.slots(), self.head, len);
            }
            self.head += 1;
            return;
        }
        let k = slots_for_len(len);
        self.stamp(k);
        self.head += k;
    }

    /// Stamps the continuation slots `q` of the `k`-slot message at `head` with `q + 1` in
    /// their first word, so every slot behind the head reads as a one-slot message leaves it and
    /// the not-ready check in `poll` stays strict (a stale payload word could otherwise equal a
    /// later lap's `head + 1`). Relaxed: the head publish after it is a release (and the sink
    /// push is preceded by a release fence), so a producer that reuses the slots sees the
    /// stamps first.
    #[inline(never)]
    fn stamp(&self, k: u64) {
        for q in self.head + 1..self.head + k {
            self.ring.seq(q).store(q + 1, Ordering::Relaxed);
        }
    }

    /// `poll` for a slot whose `seq` is not `pos + 1`.
    #[inline]
    fn poll_not_ready(&mut self, pos: u64, seq: u64) -> Result<Option<SlotHeader>, Error> {
        let ready = pos + 1;
        // Not ready: the slot must hold the previous lap's message (`ready - capacity`), or
        // nothing yet on the first lap (0). Any other `seq` can never become `ready` (a
        // producer writes this slot only for `pos`): the ring is corrupt. No arithmetic here
        // touches the value read from the slot.
        if seq != ready.saturating_sub(self.ring.capacity()) {
            return Err(self.fail(Error::Corrupt { pos, seq, len: 0 }));
        }
        self.idle(pos)
    }

    /// `poll` for a slot whose message is not there yet (and may never be): the ring's fault,
    /// its end, or `None` (after pushing the head to an empty GPU ring's producers when it is
    /// well ahead of the last push).
    #[inline]
    fn idle(&mut self, pos: u64) -> Result<Option<SlotHeader>, Error> {
        if self.ring.is_faulted() {
            // Failed by someone else (a GPU producer that saw its kernels fault): every
            // message published before that has been read; report the fault from now on.
            if let Some(err) = self.ring.fault() {
                // The fault's acquire orders every message its producer published before it:
                // look once more, so none of them is lost to the fault (loom found the stale
                // first look).
                if self.is_published(pos) {
                    return self.poll();
                }
                self.fault = Some(err.clone());
                return Err(err);
            }
        }
        if self.sink && self.head - self.pushed >= self.push_on_empty {
            // Empty, with a head well ahead of the pushed one: push it now rather than at the
            // next capacity/8 mark, so `DropNewest` producers do not drop for a stale head.
            // (Progress does not need it: `publish` pushes every capacity/8, and a warp whose
            // batch is all that is left waits for a head at most 32 below ours.)
            self.push_device();
            if let Some(err) = &self.fault {
                return Err(err.clone());
            }
        }
        if self.ring.producer_closed() {
            // The producer's last publish happened before its close (release/acquire): look once
            // more, so a message published just before the close is not missed.
            if self.is_published(pos) {
                return self.poll();
            }
            return Err(self.end(pos));
        }
        Ok(None)
    }

    /// Why the ring ends at `pos` (the producer side is closed and `pos` unpublished):
    /// [`Error::Disconnected`], or [`Error::Lost`] when the producers published positions at or
    /// beyond `pos` (GPU kernels that gave up a reservation when their dropped producer closed
    /// the ring, while a later reservation was published). `Lost` is sticky, as a fault; a clean
    /// end is checked once (the producers' count is a device copy for GPU rings).
    #[cold]
    #[inline(never)]
    fn end(&mut self, pos: u64) -> Error {
        if self.ended {
            return Error::Disconnected;
        }
        match self.ring.published_beyond(pos) {
            Some(0) => {
                self.ended = true;
                Error::Disconnected
            }
            Some(slots) => {
                let lost = Error::Lost { pos, slots };
                tracing::error!(%lost, "perdix: the producer closed its ring with a gap");
                self.fault = Some(lost.clone());
                lost
            }
            // A CPU producer publishes in order; a GPU ring whose counter cannot be read (a
            // broken context: its kernel's fault is the ring's) is asked again next time.
            None => Error::Disconnected,
        }
    }

    /// Makes `err` the ring's fault (closing the ring for its producers) and this consumer's;
    /// returns the ring's first fault, which may be an earlier one.
    #[cold]
    fn fail(&mut self, err: Error) -> Error {
        if matches!(err, Error::Corrupt { .. }) {
            self.ring.count_corrupt();
        }
        self.ring.fail(err.clone());
        let first = self.ring.fault().unwrap_or(err);
        self.fault = Some(first.clone());
        first
    }

    /// Runs `f` on the ready message at `head` (header checked by `poll`), inside the payload's
    /// read access, so the view cannot outlive it (`f` is higher-ranked over the view's
    /// lifetime).
    #[inline(always)]
    fn with_message<R>(&self, header: SlotHeader, f: impl FnOnce(Message<'_>) -> R) -> R {
        let pos = self.head;
        // SAFETY: `poll` acquired `seq == pos + 1`, so the payload is complete, and no producer
        // writes its slots until this consumer publishes a head past them, which happens only
        // after `f` returns; `poll` checked on the local `header` that its slots do not wrap.
        let access = unsafe { self.ring.slots().read(pos, header.len as usize) };
        // SAFETY: as above: the slots stay held while `access` lives, past `f`.
        let payload = unsafe { access.get() };
        f(Message::new(header, pos, payload))
    }

    /// Counts a message of `len` bytes as taken (published with the next head).
    #[inline(always)]
    fn count_taken(&mut self, len: u32) {
        // At most one message a slot released: neither count reaches `u64::MAX` (584 years at
        // 1 G messages/s; bytes at most 2^32 a message).
        self.taken += 1;
        self.taken_bytes += u64::from(len);
    }

    /// Publishes `head`, with the counts of what was taken.
    #[inline]
    fn publish_head(&mut self) {
        self.ring.publish_head(self.head);
        self.ring.record_taken(self.taken, self.taken_bytes);
        self.published = self.head;
    }

    #[inline]
    fn publish(&mut self) {
        if self.published != self.head {
            self.publish_head();
            if self.sink && self.head - self.pushed >= self.publish_every {
                self.push_device();
            }
        }
    }

    /// Publishes `head` and pushes it to the ring's head sink (device memory). A failed push
    /// is the ring's fault ([`Error::HeadPush`]): reported by the next call, never swallowed.
    #[cold]
    fn push_device(&mut self) {
        if self.fault.is_some() {
            return;
        }
        if self.published != self.head {
            self.publish_head();
        }
        // The push is a driver call (a command written to memory, then a doorbell store), not
        // an atomic the producers acquire: order every payload read before its stores
        // explicitly, so the device never rewrites a slot still being read. A release fence is
        // exactly that (loads and stores before, stores after): free on x86, which keeps loads
        // before later stores anyway; `dmb ish` on AArch64 hosts such as Grace Hopper.
        fence(Ordering::Release);
        match self.ring.push_head(self.head) {
            Ok(()) => self.pushed = self.head,
            Err(err) => {
                self.fail(Error::HeadPush(Box::new(err)));
            }
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.ring.close_consumer();
    }
}

mod hold;
mod info;
mod low_latency;

pub(super) use hold::Held;
#[cfg(test)]
mod tests;

//! The CPU producer half.

use super::layout::{SlotHeader, PAYLOAD_MAX};
use super::shared::{Ring, RingStats};
use super::wait::Wait;
use super::Policy;
use crate::sync::{Arc, Ordering};
use crate::{clock, Error};

/// The writing half of a ring.
///
/// Owns `tail`; writes a slot only when `tail - head < capacity`, reading the consumer's shared
/// head only when its cached copy says the ring is full (rtrb's `next_tail`).
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
    policy: Policy,
    id: u32,
    timestamps: bool,
}

impl Producer {
    pub(crate) fn new(ring: Arc<Ring>, policy: Policy, id: u32, timestamps: bool) -> Self {
        Self {
            ring,
            tail: 0,
            cached_head: 0,
            policy,
            id,
            timestamps,
        }
    }

    /// Sends `msg` with kind 0 if there is room, never blocking.
    ///
    /// # Errors
    ///
    /// [`Error::MessageTooLarge`] above [`PAYLOAD_MAX`] bytes; [`Error::Disconnected`] once the
    /// consumer is gone; [`Error::Full`] when every slot holds an unread message. In every error
    /// case nothing was sent.
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
        if msg.len() > PAYLOAD_MAX {
            return Err(Error::too_large(msg.len()));
        }
        self.try_produce_with(kind, |buf| {
            buf[..msg.len()].copy_from_slice(msg);
            msg.len()
        })
    }

    /// Writes a message in place: `write` gets the slot's whole payload buffer and returns how
    /// many bytes it filled. Never blocks.
    ///
    /// # Errors
    ///
    /// As [`try_produce`](Self::try_produce), checked before `write` runs; and
    /// [`Error::MessageTooLarge`] if `write` returns more than [`PAYLOAD_MAX`] (then nothing is
    /// published).
    #[inline]
    pub fn try_produce_with<F>(&mut self, kind: u32, write: F) -> Result<(), Error>
    where
        F: FnOnce(&mut [u8]) -> usize,
    {
        if self.ring.consumer_closed() {
            return Err(self.ring.closed_error());
        }
        if !self.has_room() {
            self.ring.count_full();
            return Err(Error::Full);
        }
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
        if msg.len() > PAYLOAD_MAX {
            return Err(Error::too_large(msg.len()));
        }
        self.produce_with(kind, |buf| {
            buf[..msg.len()].copy_from_slice(msg);
            msg.len()
        })
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
        if self.ring.consumer_closed() {
            return Err(self.ring.closed_error());
        }
        if !self.has_room() {
            if self.policy == Policy::DropNewest {
                self.ring.count_drop();
                return Err(Error::Full);
            }
            self.ring.count_full();
            let mut backoff = Wait::new();
            while !self.has_room() {
                if self.ring.consumer_closed() {
                    return Err(self.ring.closed_error());
                }
                backoff.snooze();
            }
        }
        self.write_slot(kind, write)
    }

    /// Whether the slot at `tail` is free, refreshing the cached head only when it says full.
    #[inline]
    fn has_room(&mut self) -> bool {
        let capacity = self.ring.capacity();
        if self.tail - self.cached_head < capacity {
            return true;
        }
        self.cached_head = self.ring.load_head();
        debug_assert!(self.tail - self.cached_head <= capacity);
        self.tail - self.cached_head < capacity
    }

    /// Fills and publishes the slot at `tail`. The caller checked `has_room()`.
    #[inline]
    fn write_slot<F>(&mut self, kind: u32, write: F) -> Result<(), Error>
    where
        F: FnOnce(&mut [u8]) -> usize,
    {
        let pos = self.tail;
        let stamp_ns = if self.timestamps { clock::now_ns() } else { 0 };
        let len = self.ring.payload(pos).with_mut(|payload| {
            // SAFETY: `pos - head < capacity` (the caller checked `has_room`, and the acquire
            // in `load_head` ordered the consumer's last reads of this slot before us), and the
            // slot's `seq` still holds the previous lap's value, so the consumer does not read
            // the payload: this producer owns it exclusively until the release store of `seq`.
            let buf = unsafe { &mut *payload };
            write(&mut buf[..])
        });
        if len > PAYLOAD_MAX {
            return Err(Error::too_large(len));
        }
        let header = SlotHeader {
            len: len as u32,
            kind,
            producer: self.id,
            flags: 0,
            stamp_ns,
        };
        self.ring.write_header(pos, header);
        // Release: the payload and header writes above happen before a consumer's acquire load
        // sees `pos + 1`.
        self.ring.seq(pos).store(pos + 1, Ordering::Release);
        self.tail = pos + 1;
        self.ring.record_tail(self.tail);
        Ok(())
    }

    /// Slots in the ring.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.ring.capacity() as usize
    }

    /// Free slots, as far as this producer knows (refreshes the head once).
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

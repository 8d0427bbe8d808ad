//! [`MessageRef`]: a zero-copy guard over the oldest message, and the [`Consumer`] calls that
//! hand one out (`try_consume*`, `consume*`). The slot is held until the guard drops.

use core::fmt;
use core::ops::Deref;
use core::time::Duration;
use std::time::Instant;

use super::consumer::{Consumer, Held};
use super::layout::SlotHeader;
use super::message::Message;
use super::slots::ReadBuf;
use super::wait::Wait;
use crate::Error;

impl Consumer {
    /// The oldest message, if one is ready. Never blocks.
    ///
    /// `None` also covers a gone producer and a corrupt slot; use
    /// [`try_consume_checked`](Self::try_consume_checked) to tell them apart.
    #[inline]
    pub fn try_consume(&mut self) -> Option<MessageRef<'_>> {
        // The common case builds the guard from an `Option` alone (see `Consumer::ready`).
        let held = match self.hold_ready() {
            Some(held) => held,
            None => self.hold_slow().ok()??,
        };
        Some(MessageRef::new(held, self))
    }

    /// The oldest message, if one is ready, reporting why not otherwise. Never blocks.
    ///
    /// # Errors
    ///
    /// [`Error::Disconnected`] when the producer is gone and every message has been read; the
    /// ring's fault (see [`fault`](Self::fault)), from then on: [`Error::Corrupt`] when the next
    /// slot breaks the protocol (the consumer stays there), [`Error::HeadPush`] when the head
    /// could not reach the device, or a producer's fault (such as a GPU kernel's
    /// `KernelFault`) once every message published before it is read. [`Error::Lost`] instead
    /// of `Disconnected` when the producers published positions this consumer can never reach
    /// (a GPU producer dropped without `finish`); sticky too.
    #[inline]
    pub fn try_consume_checked(&mut self) -> Result<Option<MessageRef<'_>>, Error> {
        if let Some(held) = self.hold_ready() {
            return Ok(Some(MessageRef::new(held, self)));
        }
        Ok(self.hold_slow()?.map(|held| MessageRef::new(held, self)))
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
            if let Some(held) = self.hold()? {
                return Ok(Some(MessageRef::new(held, self)));
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
            if let Some(held) = self.hold()? {
                return Ok(MessageRef::new(held, self));
            }
            backoff.snooze();
        }
    }
}

/// A zero-copy read guard: the oldest message, held in its slots until the guard drops.
///
/// Derefs to the payload (one contiguous `&[u8]` in the ring, whatever its length). Dropping it
/// frees the message's slots for producers. It borrows the consumer
/// mutably, so the next message can be read only once it is gone:
///
/// ```compile_fail,E0499
/// # use perdix_transport::Buffer;
/// let (mut producer, mut consumer) = Buffer::new(4)?.into_split();
/// producer.try_produce(b"one")?;
/// producer.try_produce(b"two")?;
/// let first = consumer.try_consume().unwrap();
/// let second = consumer.try_consume(); // error[E0499]: `consumer` is still borrowed by `first`
/// assert_eq!(&*first, b"one");
/// # Ok::<(), perdix_transport::Error>(())
/// ```
///
/// ```compile_fail,E0597
/// # use perdix_transport::Buffer;
/// let (mut producer, mut consumer) = Buffer::new(4)?.into_split();
/// producer.try_produce(b"AAAAAAAA")?;
/// let payload: &[u8] = {
///     let guard = consumer.try_consume().unwrap();
///     guard.message().payload() // error[E0597]: `guard` does not live long enough
/// };
/// # Ok::<(), perdix_transport::Error>(())
/// ```
///
/// # Examples
///
/// ```
/// use perdix_transport::Buffer;
///
/// let mut buffer = Buffer::new(4)?;
/// let (mut producer, mut consumer) = buffer.split_mut();
/// producer.try_produce_kind(3, b"Hello from GPU!")?;
/// let message = consumer.try_consume().unwrap();
/// assert_eq!((message.kind(), message.seq(), &*message), (3, 0, &b"Hello from GPU!"[..]));
/// assert_eq!(message.device(), None); // a host ring; GPU rings name their device
/// assert_eq!(
///     format!("{message:?}"),
///     r#"Message { seq: 0, kind: 3, producer: 0, len: 15, payload: b"Hello from GPU!" }"#
/// );
/// # Ok::<(), perdix_transport::Error>(())
/// ```
pub struct MessageRef<'a> {
    header: SlotHeader,
    pos: u64,
    /// The read access to the message's payload; `None` only while the guard drops (the
    /// access ends before the slots are released).
    access: Option<ReadBuf>,
    consumer: &'a mut Consumer,
}

impl<'a> MessageRef<'a> {
    /// A guard over the ready message `held` describes.
    ///
    /// `held.header` was checked (its slots fit the ring) and `held.access` is the payload of
    /// the slots `consumer` holds from `held.pos`: it frees them only through this guard's drop.
    #[inline(always)]
    fn new(held: Held, consumer: &'a mut Consumer) -> Self {
        Self {
            header: held.header,
            pos: held.pos,
            access: Some(held.access),
            consumer,
        }
    }

    /// The payload, borrowed from this guard.
    #[must_use]
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let Some(access) = &self.access else {
            return &[];
        };
        // SAFETY: the consumer acquired `seq == pos + 1` before making this guard and releases
        // the slots only in `drop`, after the access ends, so no producer writes them while the
        // returned borrow of `self` lives (`new`'s contract).
        unsafe { access.get() }
    }

    /// The message as a plain view (its fields, and the payload), borrowed from this guard: it
    /// cannot outlive it.
    #[must_use]
    #[inline]
    pub fn message(&self) -> Message<'_> {
        Message::new(self.header, self.pos, self.payload())
    }

    /// Message kind: [`Message::kind`].
    #[must_use]
    #[inline]
    pub fn kind(&self) -> u32 {
        self.message().kind()
    }

    /// Sequence number: [`Message::seq`].
    #[must_use]
    #[inline]
    pub fn seq(&self) -> u64 {
        self.message().seq()
    }

    /// Producer id: [`Message::producer`].
    #[must_use]
    #[inline]
    pub fn producer(&self) -> u32 {
        self.message().producer()
    }

    /// Producer clock at publish in ns: [`Message::stamp_ns`].
    #[must_use]
    #[inline]
    pub fn stamp_ns(&self) -> u64 {
        self.message().stamp_ns()
    }

    /// The CUDA device the message came from (its ring's device), or `None` for a host ring.
    #[must_use]
    pub fn device(&self) -> Option<u32> {
        self.consumer.device()
    }
}

impl Deref for MessageRef<'_> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        self.payload()
    }
}

impl fmt::Debug for MessageRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.message(), f)
    }
}

impl Drop for MessageRef<'_> {
    #[inline]
    fn drop(&mut self) {
        // End the read access first (loom tracks it; the real build has nothing to drop): only
        // then may the producer have the slot back.
        let access = self.access.take();
        #[cfg(perdix_loom)]
        drop(access);
        #[cfg(not(perdix_loom))]
        let _ = access;
        self.consumer.release_one();
    }
}

//! Read views of a published slot: [`Message`] (borrowed for a callback) and [`MessageRef`] (a
//! guard that frees the slot when dropped).

use core::fmt;
use core::ops::Deref;

use super::consumer::Consumer;
use super::layout::{SlotHeader, PAYLOAD_MAX};
use crate::sync::ConstPtr;

/// A message in the ring, borrowed while the consumer holds its slot.
///
/// Derefs to the payload (`len` bytes, never the whole slot). Its lifetime is that of the slot's
/// hold: a [`drain`](crate::Consumer::drain) callback's argument, or a borrow of a
/// [`MessageRef`] guard ([`MessageRef::message`]), so a copy cannot outlive the slot, which the
/// producer rewrites once it is released:
///
/// ```compile_fail,E0505
/// # use perdix_transport::Buffer;
/// let (mut producer, mut consumer) = Buffer::new(4)?.into_split();
/// producer.try_produce(b"AAAAAAAA")?;
/// let guard = consumer.try_consume().unwrap();
/// let message = perdix_transport::Message::clone(&guard.message()); // a copy of the view
/// drop(guard); // error[E0505]: the guard is still borrowed
/// assert_eq!(message.payload(), b"AAAAAAAA");
/// # Ok::<(), perdix_transport::Error>(())
/// ```
///
/// ```compile_fail,E0521
/// # use perdix_transport::Buffer;
/// let (mut producer, mut consumer) = Buffer::new(4)?.into_split();
/// producer.try_produce(b"AAAAAAAA")?;
/// let mut kept = Vec::new();
/// // error: the view borrowed for the callback escapes it
/// consumer.drain(8, |message| kept.push(message.payload()));
/// # Ok::<(), perdix_transport::Error>(())
/// ```
///
/// ```compile_fail,E0521
/// # use perdix_transport::{Buffer, Message};
/// let (mut producer, mut consumer) = Buffer::new(4)?.into_split();
/// producer.try_produce(b"AAAAAAAA")?;
/// let mut last = None;
/// // error: a view cannot be returned out of (or stored past) the callback
/// consumer.drain(8, |message: Message<'_>| last = Some(message));
/// # Ok::<(), perdix_transport::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct Message<'a> {
    header: SlotHeader,
    pos: u64,
    payload: &'a [u8],
}

impl<'a> Message<'a> {
    pub(crate) fn new(header: SlotHeader, pos: u64, payload: &'a [u8]) -> Self {
        Self {
            header,
            pos,
            payload,
        }
    }

    /// The payload.
    #[must_use]
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// Message kind (0 for [`try_produce`](crate::Producer::try_produce)).
    #[must_use]
    pub fn kind(&self) -> u32 {
        self.header.kind
    }

    /// Sequence number: the message's position in the ring's stream, from 0.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.pos
    }

    /// Producer id (CPU producer's id, or the GPU block / lane that wrote it).
    #[must_use]
    pub fn producer(&self) -> u32 {
        self.header.producer
    }

    /// Reserved flag bits.
    #[must_use]
    pub fn flags(&self) -> u32 {
        self.header.flags
    }

    /// Producer clock at publish in ns (0 when the producer does not stamp): the CPU's
    /// [`clock::now_ns`](crate::clock::now_ns), or a GPU stamp mapped onto it.
    #[must_use]
    pub fn stamp_ns(&self) -> u64 {
        self.header.stamp_ns
    }
}

impl Deref for Message<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.payload
    }
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("seq", &self.pos)
            .field("kind", &self.header.kind)
            .field("producer", &self.header.producer)
            .field("len", &self.payload.len())
            .field("payload", &ByteStr(self.payload))
            .finish()
    }
}

/// Prints bytes as an escaped byte string: `b"Hello\x00"`.
struct ByteStr<'a>(&'a [u8]);

impl fmt::Debug for ByteStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("b\"")?;
        for &byte in self.0 {
            fmt::Display::fmt(&byte.escape_ascii(), f)?;
        }
        f.write_str("\"")
    }
}

/// A zero-copy read guard: the oldest message, held in its slot until the guard drops.
///
/// Derefs to the payload. Dropping it frees the slot for producers. It borrows the consumer
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
    /// The read access to the slot's payload; `None` only while the guard drops (the access
    /// ends before the slot is released).
    access: Option<ConstPtr<[u8; PAYLOAD_MAX]>>,
    consumer: &'a mut Consumer,
}

impl<'a> MessageRef<'a> {
    /// A guard over the ready message at `pos`.
    ///
    /// `header` was checked (`len <= PAYLOAD_MAX`) and `access` is the payload of the slot
    /// `consumer` holds for `pos`: it frees it only through this guard's drop.
    pub(crate) fn new(
        header: SlotHeader,
        pos: u64,
        access: ConstPtr<[u8; PAYLOAD_MAX]>,
        consumer: &'a mut Consumer,
    ) -> Self {
        Self {
            header,
            pos,
            access: Some(access),
            consumer,
        }
    }

    /// The payload, borrowed from this guard.
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        let Some(access) = &self.access else {
            return &[];
        };
        // SAFETY: the consumer acquired `seq == pos + 1` before making this guard and releases
        // the slot only in `drop`, after the access ends, so no producer writes it while the
        // returned borrow of `self` lives; `len <= PAYLOAD_MAX` was checked (`new`'s contract).
        let bytes = unsafe { access.deref() };
        &bytes[..self.header.len as usize]
    }

    /// The message as a plain view (its fields, and the payload), borrowed from this guard: it
    /// cannot outlive it.
    #[must_use]
    pub fn message(&self) -> Message<'_> {
        Message::new(self.header, self.pos, self.payload())
    }

    /// Message kind.
    #[must_use]
    pub fn kind(&self) -> u32 {
        self.header.kind
    }

    /// Sequence number: the message's position in the ring's stream, from 0.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.pos
    }

    /// Producer id.
    #[must_use]
    pub fn producer(&self) -> u32 {
        self.header.producer
    }

    /// Producer clock at publish in ns (0 when not stamped).
    #[must_use]
    pub fn stamp_ns(&self) -> u64 {
        self.header.stamp_ns
    }

    /// The CUDA device the message came from (its ring's device), or `None` for a host ring.
    #[must_use]
    pub fn device(&self) -> Option<u32> {
        self.consumer.device()
    }
}

impl Deref for MessageRef<'_> {
    type Target = [u8];

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

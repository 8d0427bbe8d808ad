//! [`Message`]: the read view of a published slot, borrowed for as long as its slot is held (a
//! drain callback, or a [`MessageRef`](crate::MessageRef) guard).

use core::fmt;
use core::ops::Deref;

use super::layout::SlotHeader;

/// A message in the ring, borrowed while the consumer holds its slot.
///
/// Derefs to the payload (`len` bytes, never the whole slot). Its lifetime is that of the slot's
/// hold: a [`drain`](crate::Consumer::drain) callback's argument, or a borrow of a
/// [`MessageRef`](crate::MessageRef) guard
/// ([`MessageRef::message`](crate::MessageRef::message)), so a copy cannot outlive the slot,
/// which the producer rewrites once it is released:
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
    #[inline]
    pub(crate) fn new(header: SlotHeader, pos: u64, payload: &'a [u8]) -> Self {
        Self {
            header,
            pos,
            payload,
        }
    }

    /// The payload.
    #[must_use]
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// Message kind (0 for [`try_produce`](crate::Producer::try_produce)).
    #[must_use]
    #[inline]
    pub fn kind(&self) -> u32 {
        self.header.kind
    }

    /// Sequence number: the message's position in the ring's stream, from 0.
    #[must_use]
    #[inline]
    pub fn seq(&self) -> u64 {
        self.pos
    }

    /// Producer id (CPU producer's id, or the GPU block / lane that wrote it).
    #[must_use]
    #[inline]
    pub fn producer(&self) -> u32 {
        self.header.producer
    }

    /// Reserved flag bits.
    #[must_use]
    #[inline]
    pub fn flags(&self) -> u32 {
        self.header.flags
    }

    /// Producer clock at publish in ns (0 when the producer does not stamp): the CPU's
    /// [`clock::now_ns`](crate::clock::now_ns), or a GPU stamp mapped onto it.
    #[must_use]
    #[inline]
    pub fn stamp_ns(&self) -> u64 {
        self.header.stamp_ns
    }
}

impl Deref for Message<'_> {
    type Target = [u8];

    #[inline]
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

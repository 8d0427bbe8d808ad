//! Read views of a published slot: [`Message`] (borrowed for a callback) and [`MessageRef`] (a
//! guard that frees the slot when dropped).

use core::fmt;
use core::ops::Deref;

use super::consumer::Consumer;
use super::layout::SlotHeader;

/// A message in the ring, borrowed while the consumer holds its slot.
///
/// Derefs to the payload (`len` bytes, never the whole slot).
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
/// Derefs to the payload. Dropping it frees the slot for producers.
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
    msg: Message<'a>,
    consumer: &'a mut Consumer,
}

impl<'a> MessageRef<'a> {
    pub(crate) fn new(msg: Message<'a>, consumer: &'a mut Consumer) -> Self {
        Self { msg, consumer }
    }

    /// The message as a plain view (its fields, and the payload).
    #[must_use]
    pub fn message(&self) -> &Message<'a> {
        &self.msg
    }

    /// Message kind.
    #[must_use]
    pub fn kind(&self) -> u32 {
        self.msg.kind()
    }

    /// Sequence number: the message's position in the ring's stream, from 0.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.msg.seq()
    }

    /// Producer id.
    #[must_use]
    pub fn producer(&self) -> u32 {
        self.msg.producer()
    }

    /// Producer clock at publish in ns (0 when not stamped).
    #[must_use]
    pub fn stamp_ns(&self) -> u64 {
        self.msg.stamp_ns()
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
        self.msg.payload
    }
}

impl fmt::Debug for MessageRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.msg, f)
    }
}

impl Drop for MessageRef<'_> {
    fn drop(&mut self) {
        self.consumer.release_one();
    }
}

//! [`Emitter`]: what a CPU fallback writes its messages with, as the GPU kernel's
//! `perdix_emit` would.
#![forbid(unsafe_code)]

use crate::{Error, Producer};

/// Writes messages into a fallback producer's ring, as the GPU kernel's `perdix_emit` would.
///
/// # Examples
///
/// ```
/// use perdix_transport::bevy::Emitter;
/// use perdix_transport::{Buffer, Error};
///
/// let (producer, mut consumer) = Buffer::new(2)?.into_split();
/// let mut emit = Emitter::new(producer);
/// emit.emit(5, &[1u32, 2])?;
/// emit.emit_bytes(6, b"raw")?;
/// // A ring of 2 slots carries 224 bytes at most (`layout::max_message(2)`).
/// assert_eq!(emit.emit_bytes(6, &[0; 300]), Err(Error::MessageTooLarge { len: 300, max: 224 }));
/// assert_eq!(consumer.try_consume().unwrap().kind(), 5);
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug)]
pub struct Emitter {
    pub(super) producer: Producer,
    /// The number of the launch running (launches that ran before it).
    pub(super) frame: u64,
}

impl Emitter {
    /// An emitter over `producer` (its policy decides what a full ring does).
    #[must_use]
    pub fn new(producer: Producer) -> Self {
        Self { producer, frame: 0 }
    }

    /// Sends `value`'s bytes as a message of `kind`: waits for room under
    /// [`Policy::Block`](crate::Policy::Block), counts a drop under
    /// [`Policy::DropNewest`](crate::Policy::DropNewest).
    ///
    /// # Errors
    ///
    /// As [`Producer::produce`]: [`Error::Disconnected`], [`Error::MessageTooLarge`], and
    /// [`Error::Full`] for a dropped message.
    pub fn emit<T: bytemuck::NoUninit>(&mut self, kind: u32, value: &T) -> Result<(), Error> {
        self.producer.produce_kind(kind, bytemuck::bytes_of(value))
    }

    /// Sends `bytes` as a message of `kind`.
    ///
    /// # Errors
    ///
    /// As [`emit`](Self::emit).
    pub fn emit_bytes(&mut self, kind: u32, bytes: &[u8]) -> Result<(), Error> {
        self.producer.produce_kind(kind, bytes)
    }

    /// The number of the launch running: 0 in the first, then 1, 2, ... with no gaps (skipped
    /// launches take no number), the number its `args` closure was given.
    #[must_use]
    pub fn frame(&self) -> u64 {
        self.frame
    }

    /// The producer itself, for in-place writes.
    pub fn producer(&mut self) -> &mut Producer {
        &mut self.producer
    }
}

//! [`Claim`]: room for one message reserved in the ring, written in place, published by
//! [`commit`](Claim::commit) (the shape of rtrb's `WriteChunk` and Agrona's `tryClaim`).

use core::fmt;
use core::ops::{Deref, DerefMut};

use super::producer::Producer;
use super::slots::WriteBuf;
use crate::Error;

impl Producer {
    /// Reserves room for a message of exactly `len` bytes, to be written in place (zero copy)
    /// and published by [`Claim::commit`]. Never blocks.
    ///
    /// # Errors
    ///
    /// As [`try_produce`](Self::try_produce); nothing is reserved then.
    ///
    /// # Examples
    ///
    /// ```
    /// use perdix_transport::{Buffer, Error};
    ///
    /// let (mut producer, mut consumer) = Buffer::new(8)?.into_split();
    /// let mut claim = producer.try_claim(900)?; // four slots, written in place
    /// claim.fill(7);
    /// claim.set_kind(2);
    /// claim.commit();
    /// let message = consumer.try_consume().unwrap();
    /// assert_eq!((message.kind(), message.len(), message[899]), (2, 900, 7));
    /// drop(message);
    /// // The largest message is half the ring less a header: 4 * 256 - 32 bytes here.
    /// assert_eq!(producer.max_message(), 992);
    /// assert_eq!(
    ///     producer.try_claim(993).unwrap_err(),
    ///     Error::MessageTooLarge { len: 993, max: 992 }
    /// );
    /// drop(producer.try_claim(992)?); // dropped without commit: nothing is sent
    /// assert!(consumer.try_consume().is_none());
    /// # Ok::<(), Error>(())
    /// ```
    #[inline]
    pub fn try_claim(&mut self, len: usize) -> Result<Claim<'_>, Error> {
        let (pos, pad, buf) = self.try_reserve(len)?;
        Ok(Claim::new(self, pos, pad, buf))
    }

    /// Blocking twin of [`try_claim`](Self::try_claim), under the producer's policy: waits for
    /// room under [`Policy::Block`](crate::Policy::Block); under
    /// [`Policy::DropNewest`](crate::Policy::DropNewest) a full ring counts a drop and
    /// returns [`Error::Full`].
    ///
    /// # Errors
    ///
    /// As [`produce`](Self::produce).
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut producer, mut consumer) = perdix_transport::Buffer::new(8)?.into_split();
    /// let mut claim = producer.claim(600)?;
    /// let n = {
    ///     let text = b"only the start is used";
    ///     claim[..text.len()].copy_from_slice(text);
    ///     text.len()
    /// };
    /// claim.commit_len(n); // publish the first n bytes
    /// assert_eq!(&*consumer.try_consume().unwrap(), b"only the start is used");
    /// # Ok::<(), perdix_transport::Error>(())
    /// ```
    pub fn claim(&mut self, len: usize) -> Result<Claim<'_>, Error> {
        let (pos, pad, buf) = self.reserve(len)?;
        Ok(Claim::new(self, pos, pad, buf))
    }
}

/// Room for one message of a fixed length in the ring, from
/// [`Producer::try_claim`] or [`Producer::claim`]: derefs (mutably) to exactly those bytes of the
/// ring's memory, so a message is written where the consumer will read it, with no copy.
///
/// Nothing is visible to the consumer until [`commit`](Self::commit) (or
/// [`commit_len`](Self::commit_len)); dropping a claim publishes nothing and frees the room. The
/// claim borrows the producer mutably, so there is one at a time.
///
/// # Examples
///
/// ```
/// use perdix_transport::Buffer;
///
/// let (mut producer, mut consumer) = Buffer::new(32)?.into_split();
/// let mut claim = producer.try_claim(4096 - 2 * 256)?; // 15 slots
/// for (i, byte) in claim.iter_mut().enumerate() {
///     *byte = i as u8; // generate the payload in place
/// }
/// claim.set_kind(9);
/// claim.commit();
/// consumer.drain(1, |message| {
///     assert_eq!((message.kind(), message.len(), message[300]), (9, 3584, 44));
/// });
/// # Ok::<(), perdix_transport::Error>(())
/// ```
pub struct Claim<'a> {
    producer: &'a mut Producer,
    /// Position of the message's first slot (after the pad, if one is needed).
    pos: u64,
    /// Slots of the pad record before `pos` (0: none), written at commit.
    pad: u64,
    kind: u32,
    /// The claimed payload bytes.
    buf: WriteBuf,
}

impl<'a> Claim<'a> {
    /// The claim of `buf` for the message at `pos`, after `pad` pad slots.
    #[inline]
    fn new(producer: &'a mut Producer, pos: u64, pad: u64, buf: WriteBuf) -> Self {
        Self {
            producer,
            pos,
            pad,
            kind: 0,
            buf,
        }
    }

    /// Sets the message kind (default 0).
    #[inline]
    pub fn set_kind(&mut self, kind: u32) {
        self.kind = kind;
    }

    /// Publishes the whole claimed length.
    #[inline]
    pub fn commit(self) {
        let len = self.len();
        self.commit_len(len);
    }

    /// Publishes only the first `n` bytes (the rest of the room is given back).
    ///
    /// # Panics
    ///
    /// If `n` is larger than the claimed length (as slicing past it would).
    #[inline]
    pub fn commit_len(self, n: usize) {
        let Self {
            producer,
            pos,
            pad,
            kind,
            buf,
        } = self;
        // SAFETY: the bytes are still reserved (this claim borrows the producer) and
        // unpublished; only their length is read.
        let len = unsafe { buf.get() }.len();
        assert!(n <= len, "commit_len({n}) of a {len}-byte claim");
        producer.publish(pos, pad, kind, buf, n);
    }
}

impl Deref for Claim<'_> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: this claim's positions are reserved by its producer (borrowed for the claim's
        // life) and unpublished until `commit`, which consumes the claim: nobody else reads or
        // writes the bytes while this borrow lives.
        unsafe { self.buf.get() }
    }
}

impl DerefMut for Claim<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and the borrow is unique through `&mut self`.
        unsafe { self.buf.get_mut() }
    }
}

impl fmt::Debug for Claim<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claim")
            .field("seq", &self.pos)
            .field("len", &self.len())
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

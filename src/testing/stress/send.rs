//! [`StressSender`]: the one CPU stress producer loop, with the GPU kernel's DropNewest rule.
//!
//! Every CPU front end that sends stress messages (the harness's bare-ring run, the plugin's
//! stress producers, the dashboard and overlay examples) sends them through this, so the
//! bare-ring baseline and the ECS path count drops the same way, and the same way as
//! `kernels/stress.cu`: a message the ring refuses is retried with the same sequence.

use crossbeam_utils::Backoff;

use super::{check_size, fill};
use crate::layout::SLOT_PAYLOAD;
use crate::{Error, Producer};

/// One producer's stress stream: its producer id, kind, message size and next sequence.
///
/// **The DropNewest rule** (the kernel's): a message the ring refuses (`Error::Full`, counted
/// by the ring as a drop) is counted here too and retried *with the same sequence* after a
/// short pause ([`Backoff::snooze`], the kernel's `__nanosleep`). So every stream stays
/// gap-free (the verifier sees no loss), `sent + dropped` is the number of attempts, and a
/// drop means "the ring had no room at that instant", on the CPU as on the GPU. Under
/// [`Policy::Block`](crate::Policy::Block) a full ring waits instead, and nothing is dropped.
///
/// # Examples
///
/// ```
/// use perdix_transport::testing::stress::{Sizes, StressSender, Verifier};
/// use perdix_transport::{Buffer, Policy};
///
/// let (mut producer, mut consumer) = Buffer::builder(4).policy(Policy::DropNewest).build()?.into_split();
/// let mut sender = StressSender::new(0, 0, 32)?;
/// // Six attempts on an empty 4-slot ring nobody reads: 4 sent, then 2 drops of message 4.
/// assert_eq!(sender.send(&mut producer, 6)?, 4);
/// assert_eq!((sender.sent(), sender.dropped()), (4, 2));
/// assert_eq!(consumer.stats().drops, 2);
/// let mut verifier = Verifier::new(true);
/// consumer.drain(4, |msg| verifier.check(msg.producer(), msg.payload()));
/// // Message 4 is retried, not skipped: the stream has no gap.
/// assert_eq!(sender.send(&mut producer, 1)?, 1);
/// consumer.drain(1, |msg| verifier.check(msg.producer(), msg.payload()));
/// assert!(verifier.finish(&[sender.sent()]).is_clean());
/// // Errors are values: a size that is not a stress size.
/// assert!(StressSender::new(0, 0, 20).is_err());
/// // Big messages go through a claim, written in place: 17 slots each.
/// let (mut producer, mut consumer) = Buffer::new(64)?.into_split();
/// let mut big = StressSender::new(0, 0, 4096)?;
/// assert_eq!(big.send(&mut producer, 3)?, 3);
/// let mut verifier = Verifier::with_sizes(true, Sizes::fixed(4096));
/// consumer.drain(3, |msg| verifier.check(msg.producer(), msg.payload()));
/// assert!(verifier.finish(&[3]).is_clean());
/// # Ok::<(), perdix_transport::Error>(())
/// ```
#[derive(Debug)]
pub struct StressSender {
    producer_id: u32,
    kind: u32,
    size: usize,
    /// The next message's sequence = messages sent so far.
    seq: u64,
    dropped: u64,
    backoff: Backoff,
}

impl StressSender {
    /// A stream of `size`-byte stress messages of `kind` from producer `producer_id`, from
    /// sequence 0.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `size` is not a [`valid_size`](super::valid_size) (a size
    /// the ring does not carry is its [`Error::MessageTooLarge`] at the first send).
    pub fn new(producer_id: u32, kind: u32, size: usize) -> Result<Self, Error> {
        let mut sender = Self {
            producer_id,
            kind,
            size: super::MIN_SIZE,
            seq: 0,
            dropped: 0,
            backoff: Backoff::new(),
        };
        sender.set_size(size)?;
        Ok(sender)
    }

    /// Changes the size of the next messages.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when `size` is not a [`valid_size`](super::valid_size) (the size is unchanged).
    pub fn set_size(&mut self, size: usize) -> Result<(), Error> {
        check_size(size, u32::MAX as usize)?;
        self.size = size;
        Ok(())
    }

    /// Messages sent so far (the next sequence).
    #[must_use]
    pub fn sent(&self) -> u64 {
        self.seq
    }

    /// Attempts the ring refused under DropNewest (each retried).
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Makes `attempts` attempts to send the next messages through `producer`: each either
    /// sends one (the sequence advances) or, under DropNewest on a full ring, drops it (the
    /// sequence stays, the next attempt retries it after a pause). Returns the messages sent.
    ///
    /// # Errors
    ///
    /// Whatever else the producer returns ([`Error::Disconnected`] once the consumer is gone,
    /// or the ring's fault); the counts stay exact.
    pub fn send(&mut self, producer: &mut Producer, attempts: u64) -> Result<u64, Error> {
        let (id, size) = (self.producer_id, self.size);
        let before = self.seq;
        for _ in 0..attempts {
            let seq = self.seq;
            // One slot: the one-slot buffer; more: a claim, written in place (both zero copy).
            let sent = if size <= SLOT_PAYLOAD {
                producer.produce_with(self.kind, |buf| fill(&mut buf[..size], id, seq))
            } else {
                producer.claim(size).map(|mut claim| {
                    fill(&mut claim, id, seq);
                    claim.set_kind(self.kind);
                    claim.commit();
                })
            };
            match sent {
                Ok(()) => {
                    self.seq += 1;
                    self.backoff.reset();
                }
                Err(Error::Full) => {
                    self.dropped += 1;
                    self.backoff.snooze();
                }
                Err(err) => return Err(err),
            }
        }
        Ok(self.seq - before)
    }
}

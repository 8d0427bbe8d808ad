//! `ConsumerGroup`: several rings read from one thread, as one stream per ring.

use crate::{Consumer, Error, Message};

/// The consumers of several rings, drained round-robin from one thread.
///
/// A [`GpuProducer`](super::GpuProducer) with several rings hands out one [`Consumer`] per ring;
/// give each consumer thread a group of them. Messages of one ring stay in order; there is no
/// order between rings (each GPU block writes one ring, so each producer thread's messages stay
/// in order).
///
/// # Examples
///
/// ```
/// use perdix_transport::cuda::ConsumerGroup;
/// use perdix_transport::{Buffer, Error};
///
/// let (mut a_tx, a_rx) = Buffer::new(4)?.into_split();
/// let (mut b_tx, b_rx) = Buffer::new(4)?.into_split();
/// a_tx.try_produce(b"a")?;
/// b_tx.try_produce(b"b")?;
/// let mut group = ConsumerGroup::new(vec![a_rx, b_rx]);
/// let mut seen = Vec::new();
/// assert_eq!(group.drain(16, |msg| seen.push(msg.to_vec())), 2);
/// assert_eq!(seen, [b"a".to_vec(), b"b".to_vec()]);
/// drop((a_tx, b_tx));
/// assert_eq!(group.drain_checked(16, |_| {}), Err(Error::Disconnected));
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug)]
pub struct ConsumerGroup {
    consumers: Vec<Consumer>,
    done: Vec<bool>,
    next: usize,
}

impl ConsumerGroup {
    /// A group over `consumers`.
    #[must_use]
    pub fn new(consumers: Vec<Consumer>) -> Self {
        let done = vec![false; consumers.len()];
        Self {
            consumers,
            done,
            next: 0,
        }
    }

    /// Reads up to `max` ready messages in all, visiting the rings round-robin (each up to its
    /// share); returns how many.
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
    /// Only when nothing was read: [`Error::Disconnected`] when every ring's producer is gone
    /// and every ring is empty; the first [`Error::Corrupt`] of a ring (that ring is skipped
    /// from then on).
    pub fn drain_checked<F>(&mut self, max: usize, mut f: F) -> Result<usize, Error>
    where
        F: FnMut(Message<'_>),
    {
        let rings = self.consumers.len();
        if rings == 0 {
            return Err(Error::Disconnected);
        }
        let share = (max / rings).max(1);
        let mut total = 0;
        let mut first_error = None;
        for step in 0..rings {
            if total >= max {
                break;
            }
            let idx = (self.next + step) % rings;
            if self.done[idx] {
                continue;
            }
            match self.consumers[idx].drain_checked(share.min(max - total), &mut f) {
                Ok(n) => total += n,
                Err(Error::Disconnected) => self.done[idx] = true,
                Err(err) => {
                    self.done[idx] = true;
                    first_error.get_or_insert(err);
                }
            }
        }
        self.next = (self.next + 1) % rings;
        if total > 0 {
            return Ok(total);
        }
        match first_error {
            Some(err) => Err(err),
            None if self.done.iter().all(|&d| d) => Err(Error::Disconnected),
            None => Ok(0),
        }
    }

    /// Number of rings.
    #[must_use]
    pub fn len(&self) -> usize {
        self.consumers.len()
    }

    /// Whether the group has no rings.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.consumers.is_empty()
    }

    /// Messages consumed so far, over all rings.
    #[must_use]
    pub fn position(&self) -> u64 {
        self.consumers.iter().map(Consumer::position).sum()
    }

    /// The consumers back.
    #[must_use]
    pub fn into_inner(self) -> Vec<Consumer> {
        self.consumers
    }
}

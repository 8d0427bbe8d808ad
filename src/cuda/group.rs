//! `ConsumerGroup`: several rings read from one thread, as one stream per ring.

use crate::{Consumer, Error, Message};

/// Where one ring of a group stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RingState {
    /// Still read.
    Open,
    /// Its producer is gone and everything was read (`Disconnected`).
    Ended,
    /// It met a fault; `Some` until a call has reported it.
    Faulted(Option<Error>),
}

/// The consumers of several rings, drained round-robin from one thread.
///
/// A [`GpuProducer`](super::GpuProducer) with several rings hands out one [`Consumer`] per ring;
/// give each consumer thread a group of them. Messages of one ring stay in order; there is no
/// order between rings (each GPU block writes one ring, so each producer thread's messages stay
/// in order).
///
/// A ring's fault (a corrupt slot, a failed head push, its kernel's fault) is never swallowed:
/// [`drain_checked`](Self::drain_checked) reports it once, after the messages that ring
/// published before it, and goes on reading the healthy rings; once every ring is done it keeps
/// reporting the group's first fault, never [`Error::Disconnected`], so a fault can be neither
/// missed nor taken for a clean end. [`fault`](Self::fault) tells it without a call.
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
/// assert_eq!(group.fault(), None); // a clean end
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug)]
pub struct ConsumerGroup {
    consumers: Vec<Consumer>,
    /// Per ring, in `consumers`' order.
    states: Vec<RingState>,
    next: usize,
    /// The first fault a ring of the group met: what the group reports once every ring is done.
    first_fault: Option<Error>,
}

impl ConsumerGroup {
    /// A group over `consumers`.
    #[must_use]
    pub fn new(consumers: Vec<Consumer>) -> Self {
        let states = vec![RingState::Open; consumers.len()];
        Self {
            consumers,
            states,
            next: 0,
            first_fault: None,
        }
    }

    /// Reads up to `max` ready messages in all, visiting the rings round-robin (each up to its
    /// share); returns how many.
    ///
    /// Returns 0 for every reason nothing was read, a fault included: use
    /// [`drain_checked`](Self::drain_checked) or [`fault`](Self::fault) to learn of faults.
    pub fn drain<F>(&mut self, max: usize, f: F) -> usize
    where
        F: FnMut(Message<'_>),
    {
        self.drain_checked(max, f).unwrap_or(0)
    }

    /// [`drain`](Self::drain), reporting faults and the end.
    ///
    /// A ring's fault comes after every message that ring published before it. The call that
    /// meets it returns it when that call read nothing; otherwise the call returns what it read
    /// and the next call returns the fault (before reading anything). Each ring's fault is
    /// returned once; the healthy rings are read again from the call after.
    ///
    /// # Errors
    ///
    /// A ring's fault ([`Error::Corrupt`], [`Error::HeadPush`], a producer's fault such as a
    /// GPU kernel's `KernelFault`, or [`Error::Lost`]: see
    /// [`Consumer::try_consume_checked`]), once per faulted ring, as above. When every ring is
    /// done (its producer gone and everything read, or faulted): the group's first fault, on
    /// every call, or [`Error::Disconnected`] when no ring faulted.
    ///
    /// # Examples
    ///
    /// ```
    /// use perdix_transport::cuda::ConsumerGroup;
    /// use perdix_transport::{Buffer, Error};
    ///
    /// let (_a_tx, a_rx) = Buffer::new(4)?.into_split();
    /// let mut group = ConsumerGroup::new(vec![a_rx]);
    /// assert_eq!(group.drain_checked(16, |_| {}), Ok(0)); // empty, its producer alive
    /// # Ok::<(), Error>(())
    /// ```
    pub fn drain_checked<F>(&mut self, max: usize, mut f: F) -> Result<usize, Error>
    where
        F: FnMut(Message<'_>),
    {
        let rings = self.consumers.len();
        if rings == 0 {
            return Err(Error::Disconnected);
        }
        // A fault met by an earlier call that read messages: this call reports it.
        if let Some(err) = self.take_unreported() {
            return Err(err);
        }
        let share = (max / rings).max(1);
        let mut total = 0;
        for step in 0..rings {
            if total >= max {
                break;
            }
            let idx = (self.next + step) % rings;
            if self.states[idx] != RingState::Open {
                continue;
            }
            match self.consumers[idx].drain_checked(share.min(max - total), &mut f) {
                Ok(n) => total += n,
                Err(Error::Disconnected) => self.states[idx] = RingState::Ended,
                Err(err) => {
                    self.first_fault.get_or_insert_with(|| err.clone());
                    self.states[idx] = RingState::Faulted(Some(err));
                }
            }
        }
        self.next = (self.next + 1) % rings;
        if total > 0 {
            return Ok(total);
        }
        if let Some(err) = self.take_unreported() {
            return Err(err);
        }
        if self.states.contains(&RingState::Open) {
            return Ok(0);
        }
        Err(self.first_fault.clone().unwrap_or(Error::Disconnected))
    }

    /// The first fault met and not yet reported (in ring order), marked reported.
    fn take_unreported(&mut self) -> Option<Error> {
        self.states.iter_mut().find_map(|state| match state {
            RingState::Faulted(pending) => pending.take(),
            _ => None,
        })
    }

    /// The group's fault: the first fault a call met, else the first ring whose consumer
    /// reports one (see [`Consumer::fault`]: a producer's fault may be there before the
    /// messages published ahead of it are read). `None` for a healthy group.
    #[must_use]
    pub fn fault(&self) -> Option<Error> {
        self.first_fault
            .clone()
            .or_else(|| self.consumers.iter().find_map(Consumer::fault))
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

//! The ring: slot layout, memory backends, and the two halves.

mod buffer;
mod claim;
mod consumer;
#[cfg(perdix_loom)]
pub mod device_model;
mod guard;
pub mod layout;
mod memory;
mod message;
mod prefetch;
mod producer;
mod shared;
#[cfg(not(perdix_loom))]
mod slots;
#[cfg(perdix_loom)]
#[path = "slots_loom.rs"]
mod slots;
mod wait;

pub use buffer::{Buffer, BufferBuilder, ConsumerMut, ProducerMut};
pub use claim::Claim;
pub use consumer::Consumer;
pub use guard::MessageRef;
pub use memory::{Backend, Host, RingMemory};
pub use message::Message;
pub use producer::Producer;
pub use shared::{RingStats, MAX_CAPACITY};

pub(crate) use shared::Ring;
#[cfg(feature = "cuda")]
pub(crate) use shared::{HeadSink, SinkCounts};

use crate::sync::Arc;
use crate::Error;

/// What a producer does when the ring is full.
///
/// [`try_produce`](Producer::try_produce) never blocks whatever the policy; the policy governs
/// the blocking [`produce`](Producer::produce) and GPU producers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Policy {
    /// Wait for room (spin with backoff, then yield; GPU: poll with `__nanosleep`).
    #[default]
    Block,
    /// Drop the new message and count it in [`RingStats::drops`].
    DropNewest,
}

impl core::str::FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "block" => Ok(Self::Block),
            "drop-newest" | "drop_newest" | "drop" => Ok(Self::DropNewest),
            other => Err(format!(
                "unknown policy {other:?}: expected block or drop-newest"
            )),
        }
    }
}

impl core::fmt::Display for Policy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Block => "block",
            Self::DropNewest => "drop-newest",
        })
    }
}

/// Reads a ring's counters from any thread, without being either half.
///
/// # Examples
///
/// ```
/// let (mut producer, consumer) = perdix_transport::Buffer::new(4)?.into_split();
/// let monitor = consumer.monitor();
/// producer.try_produce(b"x")?;
/// assert_eq!(monitor.stats().occupancy(), 1);
/// # Ok::<(), perdix_transport::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Monitor {
    ring: Arc<Ring>,
}

impl Monitor {
    pub(crate) fn new(ring: Arc<Ring>) -> Self {
        Self { ring }
    }

    /// The ring's counters now.
    #[must_use]
    pub fn stats(&self) -> RingStats {
        self.ring.stats()
    }

    /// The ring's fault, if it failed: a corrupt slot, a failed head push, or a fault of its
    /// producers (see [`Consumer::fault`]).
    #[must_use]
    pub fn fault(&self) -> Option<Error> {
        self.ring.fault()
    }

    /// Which memory the ring lives in.
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.ring.backend()
    }
}

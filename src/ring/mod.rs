//! The ring: slot layout, memory backends, and the two halves.

mod buffer;
mod claim;
mod consumer;
#[cfg(perdix_loom)]
pub mod device_model;
mod guard;
pub mod layout;
#[cfg(not(perdix_loom))]
mod ll;
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
mod stats;
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

/// How a ring lays out its messages, chosen per ring ([`BufferBuilder::mode`],
/// `GpuProducerBuilder::mode`, the Bevy plugin's GPU options).
///
/// Both carry the same messages to the same [`Consumer`] API; they differ in what a producer
/// pays to publish one, and in the largest message:
///
/// - [`Throughput`](Self::Throughput) (the default): the slot layout of
///   [`layout`](crate::layout), any length up to half the ring. The producer writes the body,
///   then a release fence and the `seq` word: on a GPU a system-scope fence, 640-700 ns of each
///   message's latency, which the warp batching hides at full rate.
/// - [`LowLatency`](Self::LowLatency): messages of up to
///   [`LL_MAX_PAYLOAD`](crate::layout::LL_MAX_PAYLOAD) (104) bytes, one slot each, with the
///   position's flag in every 8-byte word, so no fence is needed and the consumer sees a message
///   as soon as its last word lands. Twice the bytes on the wire per payload byte; for small,
///   latency-bound messages. A GPU kernel sends into it with `perdix_emit` / `perdix_try_emit`
///   / `perdix_send` (claims and whole-warp sends return `PERDIX_TOO_LARGE`).
///
/// # Examples
///
/// ```
/// use perdix_transport::{Buffer, Error, RingMode};
///
/// let (mut producer, mut consumer) = Buffer::builder(64).mode(RingMode::LowLatency).build()?.into_split();
/// producer.try_produce_kind(3, b"ping")?;
/// let message = consumer.try_consume().unwrap();
/// assert_eq!((message.kind(), &*message), (3, &b"ping"[..]));
/// drop(message);
/// assert_eq!(producer.max_message(), 104);
/// assert_eq!(producer.try_produce(&[0; 105]), Err(Error::MessageTooLarge { len: 105, max: 104 }));
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RingMode {
    /// Any length up to half the ring; a fence and a `seq` word publish each message.
    #[default]
    Throughput,
    /// Up to 104 bytes a message, a flag in every word: no fence.
    LowLatency,
}

impl core::str::FromStr for RingMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "throughput" => Ok(Self::Throughput),
            "low-latency" | "low_latency" | "ll" => Ok(Self::LowLatency),
            other => Err(format!(
                "unknown ring mode {other:?}: expected throughput or low-latency"
            )),
        }
    }
}

impl core::fmt::Display for RingMode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Throughput => "throughput",
            Self::LowLatency => "low-latency",
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

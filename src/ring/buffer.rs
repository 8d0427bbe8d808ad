//! `Buffer`: a ring with both halves, as the seed API writes it.

use core::ops::{Deref, DerefMut};

use super::memory::{Backend, Host, RingMemory};
use super::{Consumer, Monitor, Policy, Producer, Ring, RingMode};
use crate::sync::Arc;
use crate::Error;

/// An SPSC ring of 256-byte slots with both of its halves.
///
/// Borrow the halves with [`split_mut`](Self::split_mut), or take them apart for two threads
/// with [`into_split`](Self::into_split).
///
/// # Examples
///
/// The seed API:
///
/// ```
/// use perdix_transport::Buffer;
///
/// // Create a ring buffer with 4096 slots
/// let mut buffer = Buffer::new(4096)?;
///
/// // Split into producer and consumer
/// let (mut producer, mut consumer) = buffer.split_mut();
///
/// // Producer writes messages
/// producer.try_produce(b"Hello from GPU!")?;
///
/// // Consumer reads messages
/// if let Some(message) = consumer.try_consume() {
///     println!("Received: {:?}", message);
/// }
/// # Ok::<(), perdix_transport::Error>(())
/// ```
///
/// Bad capacities are errors, not panics:
///
/// ```
/// use perdix_transport::{Buffer, Error};
///
/// for bad in [0, 1, 3, 1000] {
///     assert_eq!(Buffer::new(bad).unwrap_err(), Error::InvalidCapacity(bad));
/// }
/// ```
#[derive(Debug)]
pub struct Buffer {
    producer: Producer,
    consumer: Consumer,
}

impl Buffer {
    /// A ring of `capacity` slots in host memory, policy [`Policy::Block`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCapacity`] unless `capacity` is a power of two in `2..=2^31`;
    /// [`Error::Alloc`] if the memory cannot be had.
    pub fn new(capacity: usize) -> Result<Self, Error> {
        Self::builder(capacity).build()
    }

    /// A builder for a ring of `capacity` slots with other options.
    pub fn builder(capacity: usize) -> BufferBuilder {
        BufferBuilder {
            capacity,
            policy: Policy::default(),
            producer_id: 0,
            timestamps: false,
            mode: RingMode::Throughput,
        }
    }

    /// Borrows the producer and consumer halves.
    pub fn split_mut(&mut self) -> (ProducerMut<'_>, ConsumerMut<'_>) {
        (
            ProducerMut(&mut self.producer),
            ConsumerMut(&mut self.consumer),
        )
    }

    /// Takes the halves apart, to move them to different threads.
    #[must_use]
    pub fn into_split(self) -> (Producer, Consumer) {
        (self.producer, self.consumer)
    }

    /// Slots in the ring.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.consumer.capacity()
    }

    /// A handle that reads the ring's counters from any thread.
    #[must_use]
    pub fn monitor(&self) -> Monitor {
        self.consumer.monitor()
    }

    /// Which memory the ring lives in.
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.monitor().backend()
    }
}

/// Options for a [`Buffer`].
///
/// # Examples
///
/// ```
/// use perdix_transport::{Buffer, Policy};
///
/// let buffer = Buffer::builder(1024)
///     .policy(Policy::DropNewest)
///     .producer_id(7)
///     .timestamps(true)
///     .build()?;
/// assert_eq!(buffer.capacity(), 1024);
/// # Ok::<(), perdix_transport::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct BufferBuilder {
    capacity: usize,
    policy: Policy,
    producer_id: u32,
    timestamps: bool,
    mode: RingMode,
}

impl BufferBuilder {
    /// How messages are laid out (default [`RingMode::Throughput`]; [`RingMode::LowLatency`]
    /// carries messages of up to 104 bytes).
    pub fn mode(mut self, mode: RingMode) -> Self {
        self.mode = mode;
        self
    }

    /// Backpressure policy of the blocking `produce` (default [`Policy::Block`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Producer id written into every message (default 0).
    pub fn producer_id(mut self, id: u32) -> Self {
        self.producer_id = id;
        self
    }

    /// Stamp every message with [`clock::now_ns`](crate::clock::now_ns) for latency (default
    /// off: it puts a clock read on every publish).
    pub fn timestamps(mut self, on: bool) -> Self {
        self.timestamps = on;
        self
    }

    /// Builds the ring in host memory.
    ///
    /// # Errors
    ///
    /// As [`Buffer::new`].
    pub fn build(self) -> Result<Buffer, Error> {
        self.build_in(Host::alloc)
    }

    /// Builds the ring in memory from `alloc`, which is given the byte count the ring needs.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCapacity`] before `alloc` runs; whatever `alloc` returns;
    /// [`Error::BadMemory`] if the region is too small or not 256-byte aligned; and
    /// [`Error::InvalidConfig`] for [`RingMode::LowLatency`] in a loom build.
    pub fn build_in<M, F>(self, alloc: F) -> Result<Buffer, Error>
    where
        M: RingMemory,
        F: FnOnce(usize) -> Result<M, Error>,
    {
        let bytes = Ring::bytes_for(self.capacity)?;
        let memory = alloc(bytes)?;
        let ring = Arc::new(Ring::new(self.capacity, Box::new(memory))?.with_mode(self.mode)?);
        tracing::debug!(
            capacity = self.capacity,
            backend = %ring.backend(),
            "perdix: ring created"
        );
        Ok(Buffer {
            producer: Producer::new(
                Arc::clone(&ring),
                self.policy,
                self.producer_id,
                self.timestamps,
            ),
            consumer: Consumer::new(ring),
        })
    }
}

/// The producer half, borrowed from a [`Buffer`] by [`Buffer::split_mut`].
#[derive(Debug)]
pub struct ProducerMut<'a>(&'a mut Producer);

/// The consumer half, borrowed from a [`Buffer`] by [`Buffer::split_mut`].
#[derive(Debug)]
pub struct ConsumerMut<'a>(&'a mut Consumer);

impl Deref for ProducerMut<'_> {
    type Target = Producer;

    fn deref(&self) -> &Producer {
        self.0
    }
}

impl DerefMut for ProducerMut<'_> {
    fn deref_mut(&mut self) -> &mut Producer {
        self.0
    }
}

impl Deref for ConsumerMut<'_> {
    type Target = Consumer;

    fn deref(&self) -> &Consumer {
        self.0
    }
}

impl DerefMut for ConsumerMut<'_> {
    fn deref_mut(&mut self) -> &mut Consumer {
        self.0
    }
}

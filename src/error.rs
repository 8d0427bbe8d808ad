//! The crate's one error type.

/// Everything that can go wrong in perdix-transport.
///
/// `Display` texts are lowercase and pinned by `tests/bad_input.rs`.
///
/// # Examples
///
/// ```
/// use perdix_transport::{Buffer, Error};
///
/// assert_eq!(Buffer::new(1000).unwrap_err(), Error::InvalidCapacity(1000));
/// let mut buffer = Buffer::new(4)?;
/// let (mut producer, _consumer) = buffer.split_mut();
/// let err = producer.try_produce(&[0u8; 481]).unwrap_err(); // a 4-slot ring carries 480
/// assert_eq!(err.to_string(), "message of 481 bytes exceeds the 480-byte maximum");
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The capacity is 0, 1, not a power of two, above [`MAX_CAPACITY`](crate::MAX_CAPACITY), or
    /// its ring would not fit in the address space.
    #[error("invalid capacity {0}: must be a power of two from 2 to 2^31 slots")]
    InvalidCapacity(usize),
    /// The ring memory could not be allocated.
    #[error("could not allocate {bytes} bytes of {backend} ring memory")]
    Alloc {
        /// Bytes asked for.
        bytes: usize,
        /// Backend asked.
        backend: &'static str,
    },
    /// A memory backend returned a region that is too small or misaligned for the ring.
    #[error("ring memory of {len} bytes at alignment {align} cannot hold {needed} bytes of 256-aligned slots")]
    BadMemory {
        /// Bytes the backend returned.
        len: usize,
        /// Largest power of two dividing the address.
        align: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// The message is longer than the ring carries; nothing was sent.
    #[error("message of {len} bytes exceeds the {max}-byte maximum")]
    MessageTooLarge {
        /// Length offered.
        len: usize,
        /// The largest length allowed: the ring's
        /// [`max_message`](crate::layout::max_message) (for a one-slot buffer such as
        /// [`Producer::try_produce_with`](crate::Producer::try_produce_with)'s,
        /// [`SLOT_PAYLOAD`](crate::layout::SLOT_PAYLOAD)).
        max: usize,
    },
    /// The ring is full; nothing was taken and the caller still holds the message.
    #[error("ring is full")]
    Full,
    /// The other half is gone (for a consumer: and every message has been read).
    #[error("the other side of the ring is gone")]
    Disconnected,
    /// A slot's header breaks the protocol: a `seq` that is neither the expected one nor the
    /// previous lap's, a `len` above the ring's
    /// [`max_message`](crate::layout::max_message), a message that would run past the ring's
    /// end, or a pad record that does not end exactly there. Sticky: the consumer stops at this
    /// position, the ring is closed (its producers see it, GPU kernels get `PERDIX_CLOSED`), and
    /// every later call reports it.
    #[error("corrupt slot at position {pos}: seq {seq}, len {len}")]
    Corrupt {
        /// Position the consumer expected.
        pos: u64,
        /// `seq` found in the slot.
        seq: u64,
        /// `len` found in the slot when its `seq` said ready (the header was the fault: its
        /// length, or where its slots end); 0 when the `seq` itself was the fault (the rest of
        /// the slot was not read).
        len: u32,
    },
    /// The producer side is gone, and it published positions the consumer can never reach:
    /// position `pos` was reserved and never published, and `slots` positions after it were
    /// (counted by the ring's device counter). The kernels of a `cuda::GpuProducer` dropped
    /// without `finish` give up a reservation when their ring is closed while a later
    /// reservation is published: those messages are lost, though counted as emitted. Returned where [`Error::Disconnected`] would be, once every message before
    /// `pos` is read; sticky (every later call reports it).
    #[error(
        "{slots} published slots lost: the producer closed with position {pos} never published"
    )]
    Lost {
        /// The position the consumer stopped at: reserved, never published.
        pos: u64,
        /// Positions (slots, pad records included) published beyond `pos`, never readable.
        slots: u64,
    },
    /// The consumer could not push its head (or the news that it is gone) to the device its
    /// producers wait on; carries the driver's error. Sticky: the ring is closed and every later
    /// call reports it, since producers waiting for room might otherwise never hear from it.
    #[error("could not push the consumer head to the device: {0}")]
    HeadPush(Box<Error>),
    /// `GpuMemory::Managed` on a device that cannot access managed memory while the CPU does
    /// (no `CONCURRENT_MANAGED_ACCESS`): CPU reads during a kernel would fault or tear.
    #[error("device {device} lacks concurrent managed access; use pinned memory")]
    ManagedUnsupported {
        /// The device's ordinal.
        device: u32,
    },
    /// A configuration that cannot work, found before anything ran (for capacities:
    /// [`Error::InvalidCapacity`]).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A thread could not be started; the OS's reason.
    #[error("could not start a thread: {0}")]
    Spawn(String),
    /// A worker thread of the crate (a device's run, a stopper) panicked: what it was doing.
    #[error("a thread panicked: {0}")]
    Panicked(String),
    /// No CUDA driver or device is available (or the `cuda` feature is off).
    #[error("no CUDA device: {0}")]
    NoDevice(&'static str),
    /// A CUDA driver call failed; carries the driver's `CUresult` (its `Display` is the driver's text).
    #[cfg(feature = "cuda")]
    #[error("CUDA driver error: {0}")]
    Driver(cudarc::driver::DriverError),
    /// NVRTC rejected a kernel; the compiler's log.
    #[error("kernel compile failed:\n{log}")]
    Compile {
        /// NVRTC's log.
        log: String,
    },
    /// A kernel faulted on the device (e.g. `__trap()`, illegal address); the context is lost.
    #[cfg(feature = "cuda")]
    #[error("kernel fault: {0}")]
    KernelFault(cudarc::driver::DriverError),
}

impl Error {
    /// A message of `len` bytes above the largest allowed, `max`.
    pub(crate) fn too_large_for(len: usize, max: usize) -> Self {
        Self::MessageTooLarge { len, max }
    }
}

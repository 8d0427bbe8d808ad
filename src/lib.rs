//! Lock-free GPU→CPU message transport.
//!
//! A ring of 256-byte, 256-aligned slots (see [`layout`]) in host, pinned or managed memory. Each
//! message carries its own publication word (`seq`, in its first slot), so the consumer learns a
//! message is ready from the slot itself and never reads a producer's index. A message larger
//! than one slot spans several contiguous slots and is handed out as one `&[u8]`, in place. Producers are a CPU thread
//! ([`Producer`]) or, with the `cuda` feature, GPU kernels writing into the same slots.
//!
//! Guarantees and limits:
//! - single consumer; one CPU producer per ring (GPU producers reserve positions in device
//!   memory and may be many threads);
//! - every one of the `capacity` slots is usable; messages arrive in order, none lost, and a full
//!   ring is reported ([`Error::Full`]) or waited on ([`Policy::Block`]) or counted as a drop
//!   ([`Policy::DropNewest`]), never overwritten;
//! - payloads of any length up to the ring's largest, [`layout::max_message`] of its capacity
//!   (half the ring less a 32-byte header: 524,256 bytes for 4096 slots); one that fits
//!   [`layout::SLOT_PAYLOAD`] (224) bytes takes one slot; written by copy
//!   ([`Producer::try_produce`]) or in place ([`Producer::try_claim`]);
//! - nothing here blocks unless its name says so (`try_*` never does).
//!
//! # Examples
//!
//! ```
//! use perdix_transport::{Buffer, Error};
//!
//! let mut buffer = Buffer::new(4096)?;
//! let (mut producer, mut consumer) = buffer.split_mut();
//! producer.try_produce(b"Hello from GPU!")?;
//! if let Some(message) = consumer.try_consume() {
//!     println!("Received: {:?}", message);
//! }
//! // Messages span slots: 300 bytes take two.
//! producer.try_produce(&[7u8; 300])?;
//! assert_eq!(consumer.try_consume().unwrap().len(), 300);
//! // Errors are values: a message larger than the ring carries is refused, not truncated.
//! let too_big = vec![0u8; producer.max_message() + 1];
//! assert!(matches!(
//!     producer.try_produce(&too_big),
//!     Err(Error::MessageTooLarge { len: 524_257, max: 524_256 })
//! ));
//! # Ok::<(), Error>(())
//! ```
//!
//! Measured figures live in `docs/PERFORMANCE.md`, with machine, date and command.

#![deny(missing_docs, missing_debug_implementations, unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "bevy")]
pub mod bevy;
pub mod clock;
#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(feature = "dashboard")]
pub mod dashboard;
mod error;
#[cfg(feature = "prometheus")]
pub mod export;
#[cfg(feature = "zenoh")]
pub mod remote;
mod ring;
mod sync;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

/// The README's examples run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(feature = "cuda")]
pub use cuda::{GpuContext, GpuKernel, GpuMemory, GpuProducer};
pub use error::Error;
/// The GPU producers' protocol modelled on the CPU, for `tests/loom/` (loom builds only).
#[cfg(perdix_loom)]
#[doc(hidden)]
pub use ring::device_model as loom_device;
pub use ring::layout;
pub use ring::{
    Backend, Buffer, BufferBuilder, Claim, Consumer, ConsumerMut, Host, Message, MessageRef,
    Monitor, Policy, Producer, ProducerMut, RingMemory, RingMode, RingStats, MAX_CAPACITY,
};

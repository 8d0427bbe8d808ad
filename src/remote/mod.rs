//! The message stream over Zenoh (feature `zenoh`): ring messages to other processes and
//! hosts, in batches, with loss counted exactly.
//!
//! A [`RemotePublisher`] takes messages from rings (from a drain, with
//! [`publish`](RemotePublisher::publish), or from a consumer thread of its own,
//! [`spawn_for`](RemotePublisher::spawn_for)) and batches them per (ring, kind) on key
//! expressions `perdix/<node>/<ring>/<kind>`: 4 to 64 KiB a batch ([`wire`] has the format),
//! each with its number in the stream and the stream index of its first message, so a
//! [`RemoteReceiver`] counts missing batches *and* messages exactly
//! ([`StreamCounters`]). With `bevy`, [`RemoteSource`] delivers them into the same
//! `Messages<T>`, envelopes and batches as local rings.
//!
//! Congestion mirrors the rings' [`Policy`](crate::Policy): `Block` (zenoh's
//! `CongestionControl::Block`: no loss, backpressure through the receiver's bounded queue,
//! the link, the publisher and its rings to their producers) or `DropNewest` (zenoh's
//! `Drop`, which returns `Ok` from a put it discards: the loss shows in the receiver's
//! counts, never silently).
//!
//! Zenoh runs in peer mode with explicit endpoints ([`RemoteConfig`]: by default listen on
//! `tcp/127.0.0.1:7447`, connect nowhere) and multicast scouting off; batches of 4 KiB or more
//! go through shared memory between peers on one host. A zenoh json5 file replaces all of
//! that ([`RemoteConfig::from_file`]). Only the synchronous API (`zenoh::Wait`) is used.
//!
//! # Examples
//!
//! Two peers on loopback, one process (a real deployment has one per host):
//!
//! ```
//! use std::time::Duration;
//! use perdix_transport::remote::{RemoteConfig, RemotePublisher, RemoteReceiver};
//! use perdix_transport::Buffer;
//!
//! let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
//! let endpoint = format!("tcp/127.0.0.1:{port}");
//! let mut receiver = RemoteReceiver::open(&RemoteConfig::new("sink")?.listen(&endpoint))?;
//! let config = RemoteConfig::new("host-a")?.no_listen().connect(&endpoint);
//! let mut publisher = RemotePublisher::open(&config)?;
//! publisher.wait_for_receiver(Duration::from_secs(5))?;
//!
//! let (mut producer, mut consumer) = Buffer::new(64)?.into_split();
//! for i in 0u64..10 {
//!     producer.try_produce_kind(2, &i.to_le_bytes())?;
//! }
//! let gpu0 = publisher.ring("gpu0")?;
//! assert_eq!(publisher.publish_from(gpu0, &mut consumer, 64)?, 10);
//! publisher.finish()?; // the batch, then the stream's END
//!
//! let batch = receiver.recv_timeout(Duration::from_secs(5))?.expect("a batch");
//! assert_eq!(batch.stream().to_string(), "host-a/gpu0/2");
//! assert_eq!(batch.records().count(), 10);
//! let end = receiver.recv_timeout(Duration::from_secs(5))?.expect("the END batch");
//! assert!(end.header().is_end());
//! let total = receiver.counters().total();
//! assert_eq!((total.messages, total.lost_messages, total.lost_batches), (10, 0, 0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod config;
mod counters;
mod error;
mod key;
#[cfg(feature = "bevy")]
mod plugin;
mod publisher;
mod pump;
mod receiver;
#[cfg(feature = "bevy")]
mod source;
pub mod wire;
mod writer;

pub use config::{
    RemoteConfig, DEFAULT_LISTEN, MAX_BATCH_BYTES, MAX_RECEIVED_BATCH, MIN_BATCH_BYTES,
    SHM_POOL_BYTES, SHM_THRESHOLD,
};
pub use counters::{PublisherCounters, RemoteCounters, StreamCounters, MAX_STREAMS};
pub use error::RemoteError;
pub use key::{check_name, stream_key, StreamId, MAX_NAME};
#[cfg(feature = "bevy")]
pub use plugin::{RemoteAppExt, RemoteDiagnostics, RemotePlugin};
pub use publisher::{RemotePublisher, RingId};
pub use pump::PublisherThread;
pub use receiver::{CountersReader, RemoteBatch, RemoteReceiver};
#[cfg(feature = "bevy")]
pub use source::{RemoteOrigin, RemoteSource, MAX_REMOTE_RINGS};
pub use writer::BatchWriter;

//! [`RemoteReceiver`]: subscribes to the stream's keys, checks each batch and each stream's
//! sequence, counts exactly, and hands out decoded batches.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use zenoh::bytes::ZBytes;
use zenoh::handlers::FifoChannelHandler;
use zenoh::pubsub::Subscriber;
use zenoh::sample::Sample;
use zenoh::{Session, Wait};

use super::counters::{RemoteCounters, SharedCounters, MAX_STREAMS};
use super::key::{subscription, StreamId};
use super::wire::{decode, unix_ns, BatchHeader, Records};
use super::{RemoteConfig, RemoteError};

/// A batch received and checked: its stream, header and records.
#[derive(Debug, Clone)]
pub struct RemoteBatch {
    stream: StreamId,
    header: BatchHeader,
    payload: Payload,
}

/// A batch's bytes: zenoh's buffer when it is one piece (a shared-memory or unfragmented
/// batch), a copy when zenoh reassembled it from fragments.
#[derive(Debug, Clone)]
enum Payload {
    Zenoh(ZBytes),
    Owned(Vec<u8>),
}

impl Payload {
    fn of(bytes: &ZBytes) -> Self {
        let mut slices = bytes.slices();
        match (slices.next(), slices.next()) {
            (Some(_), None) => Self::Zenoh(bytes.clone()),
            _ => Self::Owned(bytes.to_bytes().into_owned()),
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Self::Zenoh(z) => z.slices().next().unwrap_or(&[]),
            Self::Owned(v) => v,
        }
    }
}

impl RemoteBatch {
    /// The stream it came on (node, ring, kind).
    #[must_use]
    pub fn stream(&self) -> &StreamId {
        &self.stream
    }

    /// Its header (batch number, first message index, count, send time).
    #[must_use]
    pub fn header(&self) -> BatchHeader {
        self.header
    }

    /// Its records, in order (checked when it was received).
    #[must_use]
    pub fn records(&self) -> Records<'_> {
        // Decoded when received, and immutable since.
        Records::of_checked(self.payload.as_slice(), self.header.count)
    }

    /// Its size in bytes (header included).
    #[must_use]
    pub fn len_bytes(&self) -> usize {
        self.payload.as_slice().len()
    }
}

/// Reads the counts of a [`RemoteReceiver`] from any thread.
#[derive(Debug, Clone)]
pub struct CountersReader(SharedCounters);

impl CountersReader {
    /// A snapshot of the counts.
    #[must_use]
    pub fn read(&self) -> RemoteCounters {
        self.0.snapshot()
    }
}

/// Receives batches from remote publishers.
///
/// Subscribes to `perdix/**` (or one node's `perdix/<node>/**`) with a bounded queue of
/// [`RemoteConfig::queue`] batches: when the application does not keep up, zenoh's receive
/// path waits, the link's flow stops, and `Block` publishers wait in turn (no loss, memory
/// bounded); `DropNewest` publishers drop, and the gaps show in the counts.
///
/// Each batch is decoded (a malformed one is counted and skipped) and checked against its
/// stream's next batch number and message index: every missing batch and message is
/// counted ([`StreamCounters`](super::StreamCounters)), at the latest when the stream's END
/// batch comes.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use perdix_transport::remote::{RemoteConfig, RemoteReceiver};
///
/// let config = RemoteConfig::new("host-b")?.no_listen().connect("tcp/127.0.0.1:17447");
/// let mut receiver = RemoteReceiver::open(&config)?;
/// while let Some(batch) = receiver.recv_timeout(Duration::from_millis(100))? {
///     for record in batch.records() {
///         println!("{} kind {} seq {}: {} bytes", batch.stream(), record.kind, record.seq, record.payload.len());
///     }
/// }
/// let total = receiver.counters().total();
/// println!("{} messages, {} lost", total.messages, total.lost_messages);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RemoteReceiver {
    _session: Session,
    subscriber: Subscriber<FifoChannelHandler<Sample>>,
    counters: SharedCounters,
}

impl core::fmt::Debug for RemoteReceiver {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RemoteReceiver")
            .field("key", &self.subscriber.key_expr().as_str())
            .finish_non_exhaustive()
    }
}

impl RemoteReceiver {
    /// Opens a zenoh session with `config`'s settings and subscribes.
    ///
    /// # Errors
    ///
    /// As [`RemotePublisher::open`](super::RemotePublisher::open); [`RemoteError::Declare`].
    pub fn open(config: &RemoteConfig) -> Result<Self, RemoteError> {
        let session = zenoh::open(config.zenoh_config()?)
            .wait()
            .map_err(RemoteError::Open)?;
        let key = subscription(config.only_node());
        let subscriber = session
            .declare_subscriber(key.clone())
            .with(zenoh::handlers::FifoChannel::new(config.queue_batches()))
            .wait()
            .map_err(|source| RemoteError::Declare { key, source })?;
        Ok(Self {
            _session: session,
            subscriber,
            counters: SharedCounters::default(),
        })
    }

    /// The next batch, waiting up to `timeout`; `None` when none came in time. Malformed
    /// and out-of-order batches are counted and skipped.
    ///
    /// # Errors
    ///
    /// [`RemoteError::Receive`] once the subscriber is closed.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<RemoteBatch>, RemoteError> {
        let deadline = Instant::now() + timeout;
        loop {
            let sample = self
                .subscriber
                .recv_deadline(deadline)
                .map_err(RemoteError::Receive)?;
            let Some(sample) = sample else {
                return Ok(None);
            };
            if let Some(batch) = self.check(&sample) {
                return Ok(Some(batch));
            }
        }
    }

    /// The next batch if one is queued, never waiting.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Self::recv_timeout).
    pub fn try_recv(&mut self) -> Result<Option<RemoteBatch>, RemoteError> {
        while let Some(sample) = self.subscriber.try_recv().map_err(RemoteError::Receive)? {
            if let Some(batch) = self.check(&sample) {
                return Ok(Some(batch));
            }
        }
        Ok(None)
    }

    /// A snapshot of the counts.
    #[must_use]
    pub fn counters(&self) -> RemoteCounters {
        self.counters.snapshot()
    }

    /// A reader of the counts for another thread.
    #[must_use]
    pub fn counters_reader(&self) -> CountersReader {
        CountersReader(self.counters.clone())
    }

    /// Decodes and accounts for `sample`; the batch if it is to be delivered.
    fn check(&self, sample: &Sample) -> Option<RemoteBatch> {
        let now = unix_ns();
        let Some(stream) = StreamId::parse(sample.key_expr().as_str()) else {
            self.counters.with(|c| c.malformed += 1);
            return None;
        };
        let payload = Payload::of(sample.payload());
        let bytes = payload.as_slice();
        let header = match decode(bytes) {
            Ok(batch) => batch.header(),
            Err(error) => {
                tracing::debug!(%error, %stream, "perdix remote: malformed batch");
                self.counters.with(|c| c.malformed += 1);
                return None;
            }
        };
        let len = bytes.len();
        let deliver = self.counters.with(|c| {
            if c.streams.len() >= MAX_STREAMS && !c.streams.contains_key(&stream) {
                c.untracked += 1;
                return false;
            }
            c.streams
                .entry(stream.clone())
                .or_default()
                .record(&header, len, now)
        });
        deliver.then_some(RemoteBatch {
            stream,
            header,
            payload,
        })
    }
}

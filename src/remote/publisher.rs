//! [`RemotePublisher`]: batches ring messages per (ring, kind) onto
//! `perdix/<node>/<ring>/<kind>`, a batch number and message index per stream.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use zenoh::pubsub::Publisher;
use zenoh::qos::CongestionControl;
use zenoh::{Session, Wait};

use super::counters::{PublisherCounters, PublisherTally};
use super::key::{check_name, stream_key, PREFIX};
use super::wire::{unix_ns, Record, FLAG_END};
use super::writer::BatchWriter;
use super::{RemoteConfig, RemoteError};
use crate::{Consumer, Policy};

/// A ring a [`RemotePublisher`] publishes, by the index [`RemotePublisher::ring`] gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RingId(u32);

/// One stream: a key, its zenoh publisher and the batch being filled.
struct Stream {
    kind: u32,
    key: String,
    publisher: Publisher<'static>,
    writer: BatchWriter,
    /// The next batch's number.
    batch: u64,
    /// The stream index of the next message.
    next_message: u64,
    /// When the batch being filled got its first message.
    opened: Option<Instant>,
    /// The publisher's counts.
    tally: Arc<PublisherTally>,
}

impl core::fmt::Debug for Stream {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Stream")
            .field("key", &self.key)
            .field("batch", &self.batch)
            .field("next_message", &self.next_message)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct RingStreams {
    name: String,
    streams: Vec<Stream>,
    /// The stream the last message went to (most rings carry one kind).
    last: usize,
}

/// Sends ring messages to receivers over zenoh, in batches.
///
/// Each (ring, kind) is one stream on key `perdix/<node>/<ring>/<kind>`, with its own batch
/// numbers and message indexes from 0. A batch is sent when the next message would take it
/// past the batch target, at [`flush_due`](Self::flush_due) once it is older than the linger
/// time, and at [`flush`](Self::flush). [`finish`](Self::finish) (and `Drop`) sends each
/// stream's END batch under `Block` whatever the policy, so a receiver learns of loss at the
/// very end too.
///
/// Under [`Policy::Block`] a put waits while zenoh's queue is full (up to zenoh's
/// `wait_before_close`, 5 s by default, after which zenoh closes the link): a ring drained
/// into this publisher fills, and its producers wait. Under [`Policy::DropNewest`] zenoh
/// drops batches it has no room for, and says nothing: receivers count them
/// ([`StreamCounters::lost_batches`](super::StreamCounters)).
///
/// # Examples
///
/// ```no_run
/// use perdix_transport::remote::{RemoteConfig, RemotePublisher};
/// use perdix_transport::Buffer;
///
/// let config = RemoteConfig::new("host-a")?.listen("tcp/127.0.0.1:17447");
/// let mut publisher = RemotePublisher::open(&config)?;
/// let gpu0 = publisher.ring("gpu0")?;
/// let (mut producer, mut consumer) = Buffer::new(1024)?.into_split();
/// producer.try_produce_kind(3, b"hello")?;
/// publisher.publish_from(gpu0, &mut consumer, 256)?; // or `publish(gpu0, message)` each
/// publisher.finish()?; // flushes, then each stream's END batch
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RemotePublisher {
    session: Session,
    node: String,
    policy: Policy,
    batch_bytes: usize,
    linger: Duration,
    rings: Vec<RingStreams>,
    tally: Arc<PublisherTally>,
}

impl core::fmt::Debug for RemotePublisher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RemotePublisher")
            .field("node", &self.node)
            .field("policy", &self.policy)
            .field("batch_bytes", &self.batch_bytes)
            .field("rings", &self.rings)
            .finish_non_exhaustive()
    }
}

impl RemotePublisher {
    /// Opens a zenoh session with `config`'s settings.
    ///
    /// # Errors
    ///
    /// As [`RemoteConfig::zenoh_config`]; [`RemoteError::Open`] when the session does not
    /// open (e.g. its listen endpoint is taken).
    pub fn open(config: &RemoteConfig) -> Result<Self, RemoteError> {
        let session = zenoh::open(config.zenoh_config()?)
            .wait()
            .map_err(RemoteError::Open)?;
        Ok(Self {
            session,
            node: config.node().to_owned(),
            policy: config.congestion(),
            batch_bytes: config.batch_target(),
            linger: config.linger_time(),
            rings: Vec::new(),
            tally: Arc::default(),
        })
    }

    /// The id of ring `name` (registered on first call; the same id after).
    ///
    /// # Errors
    ///
    /// [`RemoteError::InvalidName`] (see [`check_name`](super::check_name)).
    pub fn ring(&mut self, name: &str) -> Result<RingId, RemoteError> {
        if let Some(i) = self.rings.iter().position(|r| r.name == name) {
            return Ok(RingId(i as u32));
        }
        check_name(name)?;
        let id = u32::try_from(self.rings.len()).map_err(|_| RemoteError::InvalidName {
            name: name.to_owned(),
            reason: "too many rings",
        })?;
        self.rings.push(RingStreams {
            name: name.to_owned(),
            streams: Vec::new(),
            last: 0,
        });
        Ok(RingId(id))
    }

    /// Adds a message of ring `ring` to its stream's batch, sending the batch first when the
    /// message would take it past the target. A [`Message`](crate::Message) from a drain
    /// converts.
    ///
    /// # Errors
    ///
    /// [`RemoteError::Declare`] for a new kind's key; [`RemoteError::Put`] when a batch
    /// could not be handed to zenoh (its messages are counted lost by receivers).
    #[inline]
    pub fn publish<'a>(
        &mut self,
        ring: RingId,
        record: impl Into<Record<'a>>,
    ) -> Result<(), RemoteError> {
        let record = record.into();
        let stream = self.stream(ring, record.kind)?;
        if !stream.writer.fits(record.payload.len()) {
            send(stream, 0)?;
        }
        if stream.opened.is_none() {
            stream.writer.begin(stream.batch, stream.next_message);
            stream.opened = Some(Instant::now());
        }
        if stream.writer.push(record) {
            stream.next_message += 1;
        }
        Ok(())
    }

    /// Drains up to `max` messages of `consumer` (ring `ring`) into their batches; returns
    /// how many it took (0: the ring is empty).
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish) (the message that failed, and the rest of that drain,
    /// are not sent); [`RemoteError::Ring`] with the ring's reason when nothing was read
    /// ([`Error::Disconnected`](crate::Error::Disconnected) once its producer is gone and
    /// every message was read, or its fault).
    pub fn publish_from(
        &mut self,
        ring: RingId,
        consumer: &mut Consumer,
        max: usize,
    ) -> Result<usize, RemoteError> {
        let mut failed = None;
        let taken = consumer.drain_checked(max, |m| {
            if failed.is_none() {
                failed = self.publish(ring, m).err();
            }
        });
        match failed {
            Some(error) => Err(error),
            None => Ok(taken?),
        }
    }

    /// Sends every batch that has waited longer than the linger time; returns how many.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish).
    pub fn flush_due(&mut self) -> Result<usize, RemoteError> {
        let now = Instant::now();
        let linger = self.linger;
        self.flush_where(|opened| now.saturating_duration_since(opened) >= linger)
    }

    /// Sends every batch not yet sent; returns how many.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish).
    pub fn flush(&mut self) -> Result<usize, RemoteError> {
        self.flush_where(|_| true)
    }

    fn flush_where(&mut self, due: impl Fn(Instant) -> bool) -> Result<usize, RemoteError> {
        let mut sent = 0;
        for stream in self.rings.iter_mut().flat_map(|r| r.streams.iter_mut()) {
            if stream.opened.is_some_and(&due) {
                send(stream, 0)?;
                sent += 1;
            }
        }
        Ok(sent)
    }

    /// Flushes, then sends each stream's END batch (under `Block` whatever the policy, so
    /// it is not dropped): a receiver then knows the stream's full length, and counts a loss
    /// at its very end too. Later messages start the streams again from batch 0.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish).
    pub fn finish(&mut self) -> Result<(), RemoteError> {
        self.flush()?;
        for stream in self.rings.iter_mut().flat_map(|r| r.streams.iter_mut()) {
            if stream.batch == 0 {
                continue; // nothing sent since the last END
            }
            stream.writer.begin(stream.batch, stream.next_message);
            let bytes = {
                stream.writer.finish(FLAG_END, unix_ns());
                stream.writer.take()
            };
            let len = bytes.len();
            self.session
                .put(stream.key.as_str(), bytes)
                .congestion_control(CongestionControl::Block)
                .wait()
                .map_err(|source| RemoteError::Put {
                    key: stream.key.clone(),
                    source,
                })?;
            self.tally.add(0, len);
            stream.batch = 0;
            stream.next_message = 0;
        }
        Ok(())
    }

    /// Waits until a receiver subscribes to this node's streams, up to `timeout` (batches put
    /// while none does are discarded by zenoh at the source).
    ///
    /// # Errors
    ///
    /// [`RemoteError::NoReceiver`] when none came in time; [`RemoteError::Declare`].
    pub fn wait_for_receiver(&self, timeout: Duration) -> Result<(), RemoteError> {
        let key = format!("{PREFIX}/{}/_probe/0", self.node);
        let probe = self
            .session
            .declare_publisher(key.clone())
            .wait()
            .map_err(|source| RemoteError::Declare { key, source })?;
        let deadline = Instant::now() + timeout;
        loop {
            if probe.matching_status().wait().is_ok_and(|s| s.matching()) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(RemoteError::NoReceiver(timeout));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// What this publisher sent so far.
    #[must_use]
    pub fn counters(&self) -> PublisherCounters {
        self.tally.snapshot()
    }

    pub(crate) fn tally(&self) -> Arc<PublisherTally> {
        Arc::clone(&self.tally)
    }

    /// The node name.
    #[must_use]
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The stream of `(ring, kind)`, declared on first use.
    #[inline]
    fn stream(&mut self, ring: RingId, kind: u32) -> Result<&mut Stream, RemoteError> {
        let Some(r) = self.rings.get_mut(ring.0 as usize) else {
            return Err(RemoteError::InvalidName {
                name: format!("#{}", ring.0),
                reason: "no ring of this id in this publisher",
            });
        };
        let i = match r.streams.get(r.last) {
            Some(s) if s.kind == kind => r.last,
            _ => match r.streams.iter().position(|s| s.kind == kind) {
                Some(i) => i,
                None => {
                    let key = stream_key(&self.node, &r.name, kind);
                    let congestion = match self.policy {
                        Policy::Block => CongestionControl::Block,
                        Policy::DropNewest => CongestionControl::Drop,
                    };
                    let publisher = self
                        .session
                        .declare_publisher(key.clone())
                        .congestion_control(congestion)
                        .wait()
                        .map_err(|source| RemoteError::Declare {
                            key: key.clone(),
                            source,
                        })?;
                    r.streams.push(Stream {
                        kind,
                        key,
                        publisher,
                        writer: BatchWriter::new(self.batch_bytes),
                        batch: 0,
                        next_message: 0,
                        opened: None,
                        tally: Arc::clone(&self.tally),
                    });
                    r.streams.len() - 1
                }
            },
        };
        r.last = i;
        Ok(&mut r.streams[i])
    }
}

/// Sends `stream`'s batch (it has one: `opened` is set) and starts counting the next.
fn send(stream: &mut Stream, flags: u16) -> Result<(), RemoteError> {
    stream.opened = None;
    let count = stream.writer.count();
    stream.writer.finish(flags, unix_ns());
    let bytes = stream.writer.take();
    let len = bytes.len();
    stream.batch += 1;
    stream
        .publisher
        .put(bytes)
        .wait()
        .map_err(|source| RemoteError::Put {
            key: stream.key.clone(),
            source,
        })?;
    stream.tally.add(count, len);
    Ok(())
}

impl Drop for RemotePublisher {
    fn drop(&mut self) {
        let open = self
            .rings
            .iter()
            .flat_map(|r| &r.streams)
            .any(|s| s.opened.is_some() || s.batch > 0);
        if open {
            if let Err(error) = self.finish() {
                tracing::warn!(%error, node = %self.node, "perdix remote: publisher's last batches not sent");
            }
        }
    }
}

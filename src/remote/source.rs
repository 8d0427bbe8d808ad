//! [`RemoteSource`]: remote streams delivered as local rings of [`PerdixRings`], so every
//! delivery shape (`Messages<T>`, envelopes, slices, batches, raw) works unchanged.
//!
//! Each remote (node, ring) gets one host ring of the plugin, named `<node>/<ring>`, on the
//! first batch that comes from it (at most [`MAX_REMOTE_RINGS`]); the source's thread
//! produces each received message into it with its kind. Under `Block` it waits for room
//! (stoppably): a full local ring stops the receiver, then the link, then the publisher:
//! backpressure end to end. Under `DropNewest` a full local ring drops the message, counted in
//! [`RemoteSource::dropped`].
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use bevy_ecs::resource::Resource;
use crossbeam_utils::Backoff;

use super::receiver::CountersReader;
use super::{RemoteConfig, RemoteCounters, RemoteError, RemoteReceiver, StreamId};
use crate::bevy::PerdixRings;
use crate::{Error, Policy, Producer};

/// The most remote rings one source creates; batches of further streams are dropped and
/// counted in [`RemoteSource::dropped`].
pub const MAX_REMOTE_RINGS: usize = 64;
/// How long the source's thread waits for anything before it looks at its stop flag.
const POLL: Duration = Duration::from_millis(20);

/// Where a plugin ring of remote messages comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemoteOrigin {
    /// The publisher's node.
    pub node: String,
    /// The ring's name on that node.
    pub ring: String,
}

/// The source's thread asking the app for a ring.
struct Request {
    origin: RemoteOrigin,
    reply: SyncSender<Result<Producer, Error>>,
}

/// Remote messages, delivered through local rings of [`PerdixRings`] (a Bevy resource, added
/// by [`add_perdix_remote`](super::RemoteAppExt::add_perdix_remote)).
///
/// [`origin`](Self::origin) tells which node and ring a delivered message came from, by the
/// `ring` of its [`PerdixHeader`](crate::bevy::PerdixHeader) (and
/// [`PerdixRings::ring_name`] is `"<node>/<ring>"`). A delivered header's `kind` and
/// `producer` are the publisher's; its `seq` is the local ring's position and `stamp_ns` the
/// local producer's stamp (this host's clock); the publish-to-receive latency is in the
/// counters.
///
/// `Drop` stops the thread and joins it (within its poll time, 20 ms, of any wait).
#[derive(Resource)]
pub struct RemoteSource {
    requests: Mutex<Receiver<Request>>,
    origins: HashMap<u32, RemoteOrigin>,
    counters: CountersReader,
    dropped: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), RemoteError>>>,
    failed: Option<RemoteError>,
}

impl core::fmt::Debug for RemoteSource {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RemoteSource")
            .field("origins", &self.origins)
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl RemoteSource {
    /// Opens a [`RemoteReceiver`] with `config` and starts the thread that delivers what it
    /// receives (under `config`'s policy).
    ///
    /// # Errors
    ///
    /// As [`RemoteReceiver::open`]; [`RemoteError::Spawn`].
    pub fn start(config: &RemoteConfig) -> Result<Self, RemoteError> {
        let receiver = RemoteReceiver::open(config)?;
        let counters = receiver.counters_reader();
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let worker = Worker {
            receiver,
            requests: tx,
            stop: Arc::clone(&stop),
            dropped: Arc::clone(&dropped),
            policy: config.congestion(),
            producers: HashMap::new(),
        };
        let thread = std::thread::Builder::new()
            .name("perdix-remote-source".into())
            .spawn(move || worker.run())?;
        Ok(Self {
            requests: Mutex::new(rx),
            origins: HashMap::new(),
            counters,
            dropped,
            stop,
            thread: Some(thread),
            failed: None,
        })
    }

    /// Where plugin ring `ring` (a delivered header's `ring`) comes from; `None` for a local
    /// ring or an index out of range.
    #[must_use]
    pub fn origin(&self, ring: u32) -> Option<&RemoteOrigin> {
        self.origins.get(&ring)
    }

    /// The receiver's counts: per stream and in total.
    #[must_use]
    pub fn counters(&self) -> RemoteCounters {
        self.counters.read()
    }

    /// Per plugin ring of this source, the messages its streams lost on the way (gaps in
    /// their message indexes), from `counters` (this source's).
    pub(crate) fn lost_per_ring(&self, counters: &RemoteCounters) -> Vec<(u32, u64)> {
        self.origins
            .iter()
            .map(|(ring, origin)| {
                let of_ring = |id: &StreamId| id.node == origin.node && id.ring == origin.ring;
                (*ring, counters.sum_of(of_ring).lost_messages)
            })
            .collect()
    }

    /// Messages received but not delivered: a full local ring under `DropNewest`, a message
    /// larger than the local rings carry, a stream past [`MAX_REMOTE_RINGS`].
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Why the source's thread stopped, if it failed (seen by the frame's systems).
    #[must_use]
    pub fn failure(&self) -> Option<&RemoteError> {
        self.failed.as_ref()
    }

    /// Creates the rings the thread asked for (a system, before the drain).
    pub(crate) fn attach(&mut self, rings: &mut PerdixRings) {
        let requests = self
            .requests
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        while let Ok(Request { origin, reply }) = requests.try_recv() {
            let index = u32::try_from(rings.rings()).unwrap_or(u32::MAX);
            let name = format!("{}/{}", origin.node, origin.ring);
            let producer = rings.add_producer(&name);
            if producer.is_ok() {
                tracing::info!(ring = %name, index, "perdix remote: stream attached");
                self.origins.insert(index, origin);
            }
            // A thread that stopped meanwhile no longer listens: nothing to do.
            let _ = reply.send(producer);
        }
        if self.thread.as_ref().is_some_and(JoinHandle::is_finished) {
            if let Err(error) = self.join() {
                tracing::warn!(%error, "perdix remote: source stopped");
                self.failed = Some(error);
            }
        }
    }

    fn join(&mut self) -> Result<(), RemoteError> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(RemoteError::Ring(Error::Panicked(
                "the remote source thread".into(),
            ))),
            None => Ok(()),
        }
    }
}

impl Drop for RemoteSource {
    fn drop(&mut self) {
        if let Err(error) = self.join() {
            tracing::warn!(%error, "perdix remote: source failed");
        }
    }
}

/// The source's thread: receives, asks for rings, produces.
struct Worker {
    receiver: RemoteReceiver,
    requests: Sender<Request>,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    policy: Policy,
    /// The local ring of each remote `<node>/<ring>` (`None`: past the limit, dropped).
    producers: HashMap<String, Option<Producer>>,
}

impl Worker {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn run(mut self) -> Result<(), RemoteError> {
        while !self.stopping() {
            let Some(batch) = self.receiver.recv_timeout(POLL)? else {
                continue;
            };
            let stream = batch.stream();
            let name = format!("{}/{}", stream.node, stream.ring);
            if !self.producers.contains_key(&name) {
                let origin = RemoteOrigin {
                    node: stream.node.clone(),
                    ring: stream.ring.clone(),
                };
                let Some(producer) = self.ring_for(origin)? else {
                    return Ok(()); // stopped while waiting
                };
                self.producers.insert(name.clone(), producer);
            }
            let Some(Some(producer)) = self.producers.get_mut(&name) else {
                self.dropped
                    .fetch_add(u64::from(batch.header().count), Ordering::Relaxed);
                continue;
            };
            for record in batch.records() {
                // The publisher's producer id, kept in the delivered header.
                producer.set_id(record.producer);
                match deliver(
                    producer,
                    self.policy,
                    &self.stop,
                    record.kind,
                    record.payload,
                ) {
                    Ok(true) => {}
                    Ok(false) => {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(Error::Disconnected) => return Ok(()), // the app's rings are gone
                    Err(error) => return Err(error.into()),
                }
            }
        }
        Ok(())
    }

    /// A ring from the app for `origin` (`Some(None)` past [`MAX_REMOTE_RINGS`]); `None` when
    /// stopped, or the app is gone, before it came.
    fn ring_for(&mut self, origin: RemoteOrigin) -> Result<Option<Option<Producer>>, RemoteError> {
        if self.producers.len() >= MAX_REMOTE_RINGS {
            tracing::warn!(node = %origin.node, ring = %origin.ring, "perdix remote: too many remote rings, stream dropped");
            return Ok(Some(None));
        }
        let (reply, answer) = mpsc::sync_channel(1);
        if self.requests.send(Request { origin, reply }).is_err() {
            return Ok(None);
        }
        loop {
            match answer.recv_timeout(POLL) {
                Ok(producer) => return Ok(Some(Some(producer?))),
                Err(RecvTimeoutError::Timeout) if !self.stopping() => {}
                Err(_) => return Ok(None),
            }
        }
    }
}

/// Produces one message into the local ring: `Ok(false)` when it was dropped (a full ring
/// under `DropNewest`, or too large for the ring). Under `Block`, waits for room until the
/// stop flag is set (then `Ok(false)`).
fn deliver(
    producer: &mut Producer,
    policy: Policy,
    stop: &AtomicBool,
    kind: u32,
    payload: &[u8],
) -> Result<bool, Error> {
    let backoff = Backoff::new();
    loop {
        match producer.try_produce_kind(kind, payload) {
            Ok(()) => return Ok(true),
            Err(Error::Full) if policy == Policy::Block && !stop.load(Ordering::Acquire) => {
                if backoff.is_completed() {
                    std::thread::sleep(Duration::from_micros(50));
                } else {
                    backoff.snooze();
                }
            }
            Err(Error::Full | Error::MessageTooLarge { .. }) => return Ok(false),
            Err(error) => return Err(error),
        }
    }
}

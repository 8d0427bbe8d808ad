//! The `PerdixRing` resource, the drain (in-system or through a consumer thread), and routing
//! by kind into ECS messages.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use bevy_ecs::message::Message as BevyMessage;
use bevy_ecs::resource::Resource;
use bevy_tasks::ComputeTaskPool;
use crossbeam_utils::Backoff;

use super::plugin::DrainMode;
use super::producers::{Device, ProducerBackend};
use super::route::{RouteShare, RouteTable, Stage};
use crate::layout::{SlotHeader, PAYLOAD_MAX};
use crate::telemetry::{LatencyHistogram, Sample, Telemetry, TelemetrySnapshot, Totals};
use crate::{clock, Backend, Buffer, Consumer, Error, Message, Monitor, Policy, Producer};

/// Messages per batch a drain thread hands over (at most; less when the ring runs dry, and
/// never more than the frame budget).
const BATCH_MAX: usize = 4096;
/// Batches a drain thread may have handed over and not yet had back.
const BATCH_DEPTH: usize = 16;
/// Drain latency is sampled on one stamped message in this many (a clock read each).
const LATENCY_SAMPLE_EVERY: u64 = 64;
/// A frame that took at least this many messages makes the next one drain its rings in
/// parallel (one task per ring on Bevy's compute pool).
const PARALLEL_MIN: usize = 16_384;

/// The plugin's settings, as the resource keeps them.
#[derive(Debug, Clone)]
pub(crate) struct RingConfig {
    pub(crate) capacity: usize,
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) memory: Option<Backend>,
    pub(crate) policy: Policy,
    pub(crate) budget: usize,
    pub(crate) drain: DrainMode,
    pub(crate) route: bool,
    pub(crate) timestamps: bool,
    #[cfg(feature = "cuda")]
    pub(crate) devices: crate::cuda::GpuDevices,
}

/// Cumulative counts of the drain, over all rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DrainStats {
    /// Frames the drain ran.
    pub frames: u64,
    /// Messages taken out of the rings (routed, raw, unrouted, malformed or via
    /// [`PerdixRing::drain_with`]).
    pub messages: u64,
    /// Payload bytes taken out of the rings.
    pub bytes: u64,
    /// Messages of a kind nobody registered (delivered as raw [`PerdixMessage`]).
    pub unrouted: u64,
    /// Messages of a registered kind whose length did not match the type (dropped).
    pub malformed: u64,
    /// Frames that used their whole budget and left ready messages in the rings.
    pub deferred_frames: u64,
    /// Ready messages left behind at the end of the latest frame (0 unless the budget ran out).
    pub deferred: u64,
    /// Most messages taken in one frame.
    pub max_frame: u64,
}

/// What the drain took from one CUDA device's rings ([`PerdixRing::device_totals`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceTotals {
    /// Device ordinal.
    pub device: u32,
    /// Rings of this device.
    pub rings: usize,
    /// Messages taken out of them.
    pub messages: u64,
    /// Payload bytes taken out of them.
    pub bytes: u64,
}

/// The rings of a Bevy app, as a resource: one ring per producer, drained once a frame.
///
/// Producers are added with [`add_producer`](Self::add_producer) (a CPU producer on a new host
/// ring, for any thread), [`add_consumer`](Self::add_consumer) (the consumer of a ring someone
/// else produces into, e.g. a GPU producer), or by the plugin for registered GPU producers.
///
/// # Examples
///
/// Zero-copy reading in a system of one's own:
///
/// ```
/// use bevy_app::prelude::*;
/// use bevy_ecs::prelude::*;
/// use perdix_transport::bevy::{PerdixPlugin, PerdixRing};
///
/// fn count(mut ring: ResMut<PerdixRing>, mut total: Local<usize>) {
///     *total += ring.drain_with(1000, |msg| assert_eq!(&*msg, b"hi"));
/// }
///
/// let mut app = App::new();
/// app.add_plugins(PerdixPlugin::default().route(false))
///     .add_systems(Update, count);
/// let mut producer = app.world_mut().resource_mut::<PerdixRing>().add_producer("cpu")?;
/// producer.try_produce(b"hi")?;
/// app.update();
/// assert_eq!(app.world().resource::<PerdixRing>().stats().messages, 1);
/// // Errors are values: capacities must be powers of two.
/// let mut app = App::new();
/// app.add_plugins(PerdixPlugin::default().capacity(1000));
/// let err = app.world_mut().resource_mut::<PerdixRing>().add_producer("cpu").unwrap_err();
/// assert_eq!(err, perdix_transport::Error::InvalidCapacity(1000));
/// # Ok::<(), perdix_transport::Error>(())
/// ```
#[derive(Resource, Debug)]
pub struct PerdixRing {
    config: RingConfig,
    lanes: Vec<Lane>,
    /// Lane the next drain starts with (rotates, for fairness under a budget).
    cursor: usize,
    stats: DrainStats,
    /// Messages taken in the current frame (reset by the diagnostics system).
    frame_messages: u64,
    /// Latencies since the last diagnostics sample.
    window: LatencyHistogram,
    telemetry: Telemetry,
    /// The last drain took at least [`PARALLEL_MIN`] messages: drain rings in parallel.
    busy: bool,
    /// Where producers run, once decided.
    backend: Option<ProducerBackend>,
    /// The GPUs producers run on, when they do (one entry per device of the plugin's choice).
    devices: Vec<Device>,
    /// The routing table drain threads stage by ([`DrainMode::Thread`] with routing on).
    routes: Option<Arc<RouteShare>>,
}

impl PerdixRing {
    pub(crate) fn new(config: RingConfig, routes: Option<Arc<RouteShare>>) -> Self {
        Self {
            config,
            lanes: Vec::new(),
            cursor: 0,
            stats: DrainStats::default(),
            frame_messages: 0,
            window: LatencyHistogram::new(),
            telemetry: Telemetry::new("host", 600),
            busy: false,
            backend: None,
            devices: Vec::new(),
            routes,
        }
    }

    pub(crate) fn config(&self) -> &RingConfig {
        &self.config
    }

    /// A new host ring of the plugin's capacity, drained by this resource; returns its
    /// producer (policy and timestamps from the plugin, producer id = the ring's index).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCapacity`] or [`Error::Alloc`] from the ring.
    pub fn add_producer(&mut self, name: &str) -> Result<Producer, Error> {
        let id = u32::try_from(self.lanes.len()).unwrap_or(u32::MAX);
        self.add_producer_with_id(name, id)
    }

    /// [`add_producer`](Self::add_producer) with a chosen producer id.
    ///
    /// # Errors
    ///
    /// As [`add_producer`](Self::add_producer).
    pub fn add_producer_with_id(&mut self, name: &str, id: u32) -> Result<Producer, Error> {
        let (producer, consumer) = Buffer::builder(self.config.capacity)
            .policy(self.config.policy)
            .producer_id(id)
            .timestamps(self.config.timestamps)
            .build()?
            .into_split();
        self.add_consumer(name, consumer);
        Ok(producer)
    }

    /// Drains the ring of `consumer` from now on (in the plugin's [`DrainMode`]). A ring in
    /// CUDA memory counts toward its device's `perdix/gpu<N>/*` diagnostics.
    pub fn add_consumer(&mut self, name: &str, consumer: Consumer) {
        let device = consumer.device();
        self.add_device_consumer(name, consumer, device);
    }

    /// [`add_consumer`](Self::add_consumer) for a ring fed by CUDA device `device` whatever
    /// memory it lives in (e.g. host memory a device writes through a mapping of its own).
    ///
    /// # Examples
    ///
    /// ```
    /// use bevy_app::prelude::*;
    /// use perdix_transport::bevy::{PerdixPlugin, PerdixRing};
    /// use perdix_transport::Buffer;
    ///
    /// let mut app = App::new();
    /// app.add_plugins(PerdixPlugin::default());
    /// let (mut producer, consumer) = Buffer::new(64)?.into_split();
    /// let mut ring = app.world_mut().resource_mut::<PerdixRing>();
    /// ring.add_device_consumer("from-gpu1", consumer, Some(1));
    /// assert_eq!(ring.ring_device(0), Some(1));
    /// producer.try_produce(b"hi")?;
    /// app.update();
    /// let ring = app.world().resource::<PerdixRing>();
    /// assert_eq!(ring.device_totals()[0].messages, 1);
    /// # Ok::<(), perdix_transport::Error>(())
    /// ```
    pub fn add_device_consumer(&mut self, name: &str, consumer: Consumer, device: Option<u32>) {
        let monitor = consumer.monitor();
        let source = match self.config.drain {
            DrainMode::System => Source::Direct(consumer),
            DrainMode::Thread => Source::Thread(DrainThread::spawn(
                name,
                self.lanes.len(),
                consumer,
                self.routes.clone(),
                self.config.budget,
            )),
        };
        tracing::debug!(ring = name, drain = %self.config.drain, "perdix: ring added");
        self.lanes.push(Lane {
            name: name.to_owned(),
            monitor,
            source,
            finished: false,
            sampler: Sampler::default(),
            device,
            messages: 0,
            bytes: 0,
        });
    }

    /// Rings drained by this resource.
    #[must_use]
    pub fn rings(&self) -> usize {
        self.lanes.len()
    }

    /// The CUDA device that writes ring `ring` (the index [`PerdixMessage::ring`] and
    /// [`Envelope::ring`](super::Envelope) give), or `None` for a CPU producer's ring or an
    /// index out of range.
    #[must_use]
    pub fn ring_device(&self, ring: usize) -> Option<u32> {
        self.lanes.get(ring).and_then(|lane| lane.device)
    }

    /// Messages and bytes taken so far per CUDA device, ordered by device (rings of no device
    /// are left out).
    #[must_use]
    pub fn device_totals(&self) -> Vec<DeviceTotals> {
        let mut totals: Vec<DeviceTotals> = Vec::new();
        for lane in &self.lanes {
            let Some(device) = lane.device else { continue };
            let entry = match totals.iter().position(|t| t.device == device) {
                Some(idx) => &mut totals[idx],
                None => {
                    totals.push(DeviceTotals {
                        device,
                        ..DeviceTotals::default()
                    });
                    let last = totals.len() - 1;
                    &mut totals[last]
                }
            };
            entry.rings += 1;
            entry.messages += lane.messages;
            entry.bytes += lane.bytes;
        }
        totals.sort_by_key(|t| t.device);
        totals
    }

    /// Whether every ring's producer is gone and every message was taken (also true with no
    /// rings at all).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.lanes.iter().all(|lane| lane.finished)
    }

    /// Takes up to `max` ready messages without copying them into ECS messages, calling `f` on
    /// each, oldest first within each ring; returns how many. They count in
    /// [`stats`](Self::stats) and the diagnostics but are not routed.
    ///
    /// In [`DrainMode::System`] the views borrow the ring's slots. In [`DrainMode::Thread`] they
    /// are of the batches the drain threads copied; with routing on, those threads already
    /// staged the registered kinds for the drain system, so only the raw ones come here.
    pub fn drain_with<F>(&mut self, max: usize, mut f: F) -> usize
    where
        F: FnMut(Message<'_>),
    {
        self.drain_serial(max, |_, msg| f(msg))
    }

    /// Messages drain threads ([`DrainMode::Thread`]) have copied out of their rings and not yet
    /// delivered (0 in [`DrainMode::System`]).
    #[must_use]
    pub fn handed_over(&self) -> u64 {
        self.lanes.iter().map(Lane::queued).sum()
    }

    /// Cumulative drain counts (messages and bytes are the rings' own counts, summed).
    #[must_use]
    pub fn stats(&self) -> DrainStats {
        DrainStats {
            messages: self.lanes.iter().map(|lane| lane.messages).sum(),
            bytes: self.lanes.iter().map(|lane| lane.bytes).sum(),
            ..self.stats
        }
    }

    /// Totals over every ring now (for [`Telemetry`]).
    #[must_use]
    pub fn totals(&self) -> Totals {
        let stats = self.stats();
        let mut totals = Totals {
            messages: stats.messages,
            bytes: stats.bytes,
            unrouted: stats.unrouted,
            ..Totals::default()
        };
        for lane in &self.lanes {
            let ring = lane.monitor.stats();
            totals.stalls += ring.full_events;
            totals.drops += ring.drops;
            // The ring's own fill: batches a drain thread already holds are not in the ring (they
            // are backlog, reported as deferred), and counting them read as fills above 100 %.
            totals.occupancy += ring.occupancy().min(ring.capacity);
            totals.capacity += ring.capacity;
        }
        totals
    }

    /// Everything the diagnostics recorded, for a dashboard.
    #[must_use]
    pub fn snapshot(&self) -> TelemetrySnapshot {
        self.telemetry.snapshot()
    }

    /// Latencies (clock at drain minus producer stamp) of sampled messages since the start.
    #[must_use]
    pub fn latency(&self) -> &LatencyHistogram {
        self.telemetry.latency()
    }

    /// Takes totals now, folding the window's latencies into the run's; returns the rates and
    /// the window's latency histogram (then cleared).
    pub(crate) fn sample(&mut self, t_s: f64) -> (Sample, LatencyHistogram) {
        let totals = self.totals();
        let sample = self.telemetry.update(t_s, totals);
        let window = core::mem::take(&mut self.window);
        self.telemetry.latency_mut().merge(&window);
        (sample, window)
    }

    pub(crate) fn backend_choice(&self) -> Option<&ProducerBackend> {
        self.backend.as_ref()
    }

    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn devices(&self) -> &[Device] {
        &self.devices
    }

    pub(crate) fn set_backend_choice(&mut self, backend: ProducerBackend, devices: Vec<Device>) {
        self.devices = devices;
        match &backend {
            ProducerBackend::Gpu { device } => self.telemetry.set_device(device.as_str()),
            ProducerBackend::Cpu { .. } => self.telemetry.set_device("cpu"),
        }
        self.telemetry.set_backend(backend.name());
        self.backend = Some(backend);
    }

    /// The drain for one sink: up to `max` messages, each ring first offered an equal share,
    /// then the rest of the budget to whoever still has messages. Calls `f(ring index, message)`.
    fn drain_serial<F>(&mut self, max: usize, mut f: F) -> usize
    where
        F: FnMut(usize, Message<'_>),
    {
        let count = self.lanes.len();
        if count == 0 || max == 0 {
            return 0;
        }
        let share = (max / count).max(1);
        let start = self.cursor % count;
        let mut taken = Taken::default();
        for k in 0..count {
            let idx = (start + k) % count;
            let want = share.min(max - taken.count);
            take_lane(&mut self.lanes[idx], idx, want, &mut f, &mut taken);
        }
        self.drain_rest(max, start, &mut taken, core::slice::from_mut(&mut f));
        let full = taken.count >= max;
        self.close_drain(start, taken, full)
    }

    /// [`drain_serial`](Self::drain_serial) with one sink per ring (`sinks[i]` gets ring `i`'s
    /// messages): the equal shares are taken in parallel on Bevy's compute task pool when the
    /// previous frame was busy (a task per ring costs microseconds), the rest serially.
    pub(crate) fn drain_parallel<S>(&mut self, max: usize, sinks: &mut [S]) -> usize
    where
        S: FnMut(usize, Message<'_>) + Send,
    {
        let count = self.lanes.len();
        if count == 0 || max == 0 || sinks.len() != count {
            return 0;
        }
        let share = (max / count).max(1);
        let start = self.cursor % count;
        // The first `max` rings from `start` get a share (all of them unless max < rings).
        let want = |idx: usize| {
            if (idx + count - start) % count < max {
                share
            } else {
                0
            }
        };
        let mut taken = Taken::default();
        let pool = ComputeTaskPool::try_get().filter(|_| count > 1 && self.busy);
        match pool {
            Some(pool) => {
                let parts = pool.scope(|scope| {
                    for (idx, (lane, sink)) in
                        self.lanes.iter_mut().zip(sinks.iter_mut()).enumerate()
                    {
                        let want = want(idx);
                        scope.spawn(async move {
                            let mut part = Taken::default();
                            take_lane(lane, idx, want, sink, &mut part);
                            part
                        });
                    }
                });
                for part in parts {
                    taken.merge(part);
                }
            }
            None => {
                for (idx, (lane, sink)) in self.lanes.iter_mut().zip(sinks.iter_mut()).enumerate() {
                    take_lane(lane, idx, want(idx), sink, &mut taken);
                }
            }
        }
        self.drain_rest(max, start, &mut taken, sinks);
        let full = taken.count >= max;
        self.close_drain(start, taken, full)
    }

    /// The second pass: what is left of the budget, ring by ring from `start`; ring `i` goes to
    /// `sinks[i]`, or to the last sink when there are fewer.
    fn drain_rest<F>(&mut self, max: usize, start: usize, taken: &mut Taken, sinks: &mut [F])
    where
        F: FnMut(usize, Message<'_>),
    {
        let count = self.lanes.len();
        for k in 0..count {
            if taken.count >= max {
                break;
            }
            let idx = (start + k) % count;
            let left = max - taken.count;
            let last = sinks.len().saturating_sub(1);
            if let Some(sink) = sinks.get_mut(idx.min(last)) {
                take_lane(&mut self.lanes[idx], idx, left, sink, taken);
            }
        }
    }

    /// Folds a drain's counts into the stats and rotates the starting ring; `full`: the budget
    /// ran out (what is still waiting counts as deferred).
    fn close_drain(&mut self, start: usize, taken: Taken, full: bool) -> usize {
        let count = self.lanes.len();
        self.cursor = (start + 1) % count;
        for ns in &taken.latencies {
            self.window.record(*ns);
        }
        self.frame_messages += taken.count as u64;
        self.busy = taken.count >= PARALLEL_MIN;
        if full {
            let left: u64 = self.lanes.iter().map(Lane::backlog).sum();
            self.stats.deferred = left;
            if left > 0 {
                self.stats.deferred_frames += 1;
            }
        } else {
            self.stats.deferred = 0;
        }
        taken.count
    }

    /// [`DrainMode::Thread`]: up to `max` messages in whole batches the drain threads staged,
    /// into `out` as (ring index, batch); one batch per ring in turn from the rotating start, so
    /// rings share the budget. Hand the emptied batches back with
    /// [`give_back`](Self::give_back).
    pub(crate) fn take_batches(&mut self, max: usize, out: &mut Vec<(usize, Batch)>) -> usize {
        let count = self.lanes.len();
        if count == 0 || max == 0 {
            return 0;
        }
        let start = self.cursor % count;
        let mut taken = Taken::default();
        let (mut more, mut full) = (true, false);
        while more {
            more = false;
            for k in 0..count {
                let idx = (start + k) % count;
                let lane = &mut self.lanes[idx];
                let Source::Thread(thread) = &mut lane.source else {
                    continue;
                };
                let room = max - taken.count;
                if let Some(batch) = thread.take_batch(room) {
                    taken.count += batch.count;
                    taken.latencies.extend_from_slice(&batch.latencies);
                    lane.messages += batch.count as u64;
                    lane.bytes += batch.bytes;
                    out.push((idx, batch));
                    more = true;
                } else if thread.pending.is_some() {
                    // A batch is waiting that does not fit what is left of the budget.
                    full = true;
                }
                lane.finished = thread.is_done();
            }
        }
        let full = full || taken.count >= max;
        self.close_drain(start, taken, full)
    }

    /// Returns batches taken by [`take_batches`](Self::take_batches) (now flushed) to their
    /// drain threads.
    pub(crate) fn give_back(&mut self, batches: &mut Vec<(usize, Batch)>) {
        for (idx, batch) in batches.drain(..) {
            if let Some(Lane {
                source: Source::Thread(thread),
                ..
            }) = self.lanes.get_mut(idx)
            {
                thread.recycle(batch);
            }
        }
    }

    /// Adds the routing counts of a frame.
    pub(crate) fn count_routing(&mut self, unrouted: u64, malformed: u64) {
        self.stats.unrouted += unrouted;
        self.stats.malformed += malformed;
    }

    /// Closes a frame's accounting (the diagnostics system calls it in `Last`).
    pub(crate) fn end_frame(&mut self) {
        self.stats.frames += 1;
        self.stats.max_frame = self.stats.max_frame.max(self.frame_messages);
        self.frame_messages = 0;
    }
}

/// What a drain took from one or more rings.
#[derive(Debug, Default)]
struct Taken {
    count: usize,
    /// Sampled latencies (drain clock minus stamp), in ns.
    latencies: Vec<u64>,
}

impl Taken {
    fn merge(&mut self, other: Self) {
        self.count += other.count;
        self.latencies.extend(other.latencies);
    }
}

/// Up to `max` messages of ring `idx` into `sink`, counted in `taken` (and latency-sampled)
/// and in the lane's own totals.
fn take_lane<F>(lane: &mut Lane, idx: usize, max: usize, sink: &mut F, taken: &mut Taken)
where
    F: FnMut(usize, Message<'_>),
{
    if max == 0 {
        return;
    }
    let mut sampler = lane.sampler;
    let before = taken.count;
    let (mut bytes, latencies) = (0u64, &mut taken.latencies);
    taken.count += lane.drain(max, |msg| {
        bytes += msg.len() as u64;
        sampler.sample(msg.stamp_ns(), latencies);
        sink(idx, msg);
    });
    lane.sampler = sampler;
    lane.messages += (taken.count - before) as u64;
    lane.bytes += bytes;
}

/// Samples drain latency on one stamped message in [`LATENCY_SAMPLE_EVERY`].
#[derive(Debug, Clone, Copy, Default)]
struct Sampler {
    /// Stamped messages seen.
    tick: u64,
}

impl Sampler {
    #[inline]
    fn sample(&mut self, stamp_ns: u64, latencies: &mut Vec<u64>) {
        if stamp_ns != 0 {
            self.tick += 1;
            if self.tick.is_multiple_of(LATENCY_SAMPLE_EVERY) {
                latencies.push(clock::now_ns().saturating_sub(stamp_ns));
            }
        }
    }
}

/// One ring and how it is drained.
#[derive(Debug)]
struct Lane {
    name: String,
    monitor: Monitor,
    source: Source,
    /// The producer is gone and every message was taken (or the ring broke).
    finished: bool,
    /// Drain latency sampling.
    sampler: Sampler,
    /// The CUDA device that writes this ring, if any.
    device: Option<u32>,
    /// Messages and payload bytes taken from this ring so far.
    messages: u64,
    bytes: u64,
}

#[derive(Debug)]
enum Source {
    Direct(Consumer),
    Thread(DrainThread),
}

impl Lane {
    /// Up to `max` messages: `f(view)` on each (in [`DrainMode::Thread`], views of the raw
    /// messages the drain thread staged).
    fn drain<F>(&mut self, max: usize, mut f: F) -> usize
    where
        F: FnMut(Message<'_>),
    {
        if self.finished {
            return 0;
        }
        match &mut self.source {
            Source::Direct(consumer) => match consumer.drain_checked(max, &mut f) {
                Ok(count) => count,
                Err(Error::Disconnected) => {
                    self.finished = true;
                    0
                }
                Err(err) => {
                    tracing::warn!(ring = %self.name, %err, "perdix: ring stopped");
                    self.finished = true;
                    0
                }
            },
            Source::Thread(thread) => {
                let count = thread.take_raw(max, &mut f);
                self.finished = thread.is_done();
                count
            }
        }
    }

    /// Messages waiting in the ring plus those the drain thread holds.
    fn backlog(&self) -> u64 {
        self.monitor.stats().occupancy() + self.queued()
    }

    fn queued(&self) -> u64 {
        match &self.source {
            Source::Direct(_) => 0,
            Source::Thread(thread) => thread.queued.load(Ordering::Relaxed),
        }
    }
}

/// Messages a drain thread took out of its ring, staged by kind (registered types decoded, the
/// rest as [`PerdixMessage`]), with the counts the drain keeps.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    stage: Stage,
    /// Messages in the batch.
    count: usize,
    /// Their payload bytes.
    bytes: u64,
    /// Sampled drain latencies (ns).
    latencies: Vec<u64>,
    /// Raw messages already given to [`PerdixRing::drain_with`], and their bytes.
    raw_taken: usize,
    raw_taken_bytes: u64,
}

impl Batch {
    pub(crate) fn stage_mut(&mut self) -> &mut Stage {
        &mut self.stage
    }

    /// Messages not yet taken.
    fn left(&self) -> usize {
        self.count - self.raw_taken
    }

    /// Makes the stage ready for `table`'s types (nothing to do without a table: all raw).
    fn prepare(&mut self, table: Option<&RouteTable>) {
        if let Some(table) = table {
            self.stage.prepare(table);
        }
    }

    fn clear(&mut self) {
        self.stage.clear();
        self.latencies.clear();
        (self.count, self.bytes, self.raw_taken, self.raw_taken_bytes) = (0, 0, 0, 0);
    }

    /// Takes `msg` of ring `ring` into the batch by the routes of `table` (everything raw
    /// without one).
    #[inline]
    fn push(
        &mut self,
        table: Option<&RouteTable>,
        ring: usize,
        msg: &Message<'_>,
        sampler: &mut Sampler,
    ) {
        self.count += 1;
        self.bytes += msg.len() as u64;
        sampler.sample(msg.stamp_ns(), &mut self.latencies);
        match table {
            Some(table) => self.stage.route(table, ring, msg),
            None => self.stage.raw.push(PerdixMessage::new(ring, msg)),
        }
    }
}

/// A consumer thread that keeps its ring empty and hands staged batches to the drain system.
#[derive(Debug)]
struct DrainThread {
    /// Full batches from the thread (a `Mutex` only to make the resource `Sync`: one locker).
    full: Mutex<Receiver<Batch>>,
    /// Empty batches back to the thread, for reuse.
    free: SyncSender<Batch>,
    /// The oldest handed-over batch not yet taken: received but too big for what was left of
    /// a frame's budget, or partly taken by [`PerdixRing::drain_with`].
    pending: Option<Batch>,
    /// The thread is gone and every batch it sent was received.
    closed: bool,
    /// Messages handed over and not yet taken.
    queued: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl DrainThread {
    /// A thread draining `consumer` (ring index `ring`), staging by `routes` (all raw without),
    /// in batches that fit `budget`.
    fn spawn(
        name: &str,
        ring: usize,
        consumer: Consumer,
        routes: Option<Arc<RouteShare>>,
        budget: usize,
    ) -> Self {
        let (full_tx, full_rx) = mpsc::sync_channel(BATCH_DEPTH);
        let (free_tx, free_rx) = mpsc::sync_channel(BATCH_DEPTH + 2);
        let queued = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            ring,
            consumer,
            routes,
            // A batch is taken whole, so it must fit a frame's budget.
            batch_max: BATCH_MAX.min(budget).max(1),
            full: full_tx,
            free: free_rx,
            queued: Arc::clone(&queued),
            stop: Arc::clone(&stop),
        };
        let handle = thread::Builder::new()
            .name(format!("perdix-drain-{name}"))
            .spawn(move || worker.run());
        let handle = match handle {
            Ok(handle) => Some(handle),
            Err(err) => {
                // The worker (and with it the consumer) is gone: the lane reports finished.
                tracing::warn!(%err, "perdix: could not start a drain thread");
                None
            }
        };
        Self {
            full: Mutex::new(full_rx),
            free: free_tx,
            pending: None,
            closed: false,
            queued,
            stop,
            handle,
        }
    }

    /// The oldest batch not yet taken, if the thread handed one over.
    fn next_batch(&mut self) -> Option<&mut Batch> {
        if self.pending.is_none() && !self.closed {
            let receiver = self.full.get_mut().unwrap_or_else(PoisonError::into_inner);
            match receiver.try_recv() {
                Ok(batch) => self.pending = Some(batch),
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => self.closed = true,
            }
        }
        self.pending.as_mut()
    }

    /// Takes the next batch whole if it holds at most `room` messages.
    fn take_batch(&mut self, room: usize) -> Option<Batch> {
        let left = self.next_batch()?.left();
        if left > room {
            return None;
        }
        self.queued.fetch_sub(left as u64, Ordering::Relaxed);
        let mut batch = self.pending.take()?;
        // What `drain_with` already took is not the drain system's.
        batch.stage.raw.drain(..batch.raw_taken);
        batch.count -= batch.raw_taken;
        batch.bytes -= batch.raw_taken_bytes;
        (batch.raw_taken, batch.raw_taken_bytes) = (0, 0);
        Some(batch)
    }

    /// Returns an emptied batch to the thread for reuse.
    fn recycle(&mut self, mut batch: Batch) {
        batch.clear();
        // A full free queue only means the thread has spares: drop this one.
        let _ = self.free.try_send(batch);
    }

    /// Up to `max` raw messages of the handed-over batches, for [`PerdixRing::drain_with`];
    /// stops at a batch that still holds staged typed messages (the drain system takes those).
    fn take_raw<F>(&mut self, max: usize, f: &mut F) -> usize
    where
        F: FnMut(Message<'_>),
    {
        let mut count = 0;
        while count < max {
            let Some(batch) = self.next_batch() else {
                break;
            };
            let end = batch.stage.raw.len().min(batch.raw_taken + (max - count));
            for msg in batch
                .stage
                .raw
                .get(batch.raw_taken..end)
                .unwrap_or_default()
            {
                batch.raw_taken_bytes += u64::from(msg.len);
                f(msg.view());
            }
            count += end - batch.raw_taken;
            batch.raw_taken = end;
            if batch.left() > 0 {
                // Raw messages left (the budget ran out), or typed ones for the drain system.
                break;
            }
            if let Some(batch) = self.pending.take() {
                self.recycle(batch);
            }
        }
        self.queued.fetch_sub(count as u64, Ordering::Relaxed);
        count
    }

    /// The thread is gone and everything it handed over was taken.
    fn is_done(&self) -> bool {
        self.closed && self.pending.is_none()
    }
}

impl Drop for DrainThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            if handle.join().is_err() {
                tracing::warn!("perdix: a drain thread panicked");
            }
        }
    }
}

/// The drain thread's side.
struct Worker {
    /// Index of its ring in the resource (for [`PerdixMessage::ring`] and envelopes).
    ring: usize,
    consumer: Consumer,
    /// The plugin's routing table; `None` stages everything raw (routing off).
    routes: Option<Arc<RouteShare>>,
    /// Messages per batch (at most).
    batch_max: usize,
    full: SyncSender<Batch>,
    free: Receiver<Batch>,
    queued: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Worker {
    fn run(mut self) {
        let backoff = Backoff::new();
        let mut sampler = Sampler::default();
        // The route table and its generation; a batch is prepared for the table it is filled by.
        let mut routes = self.routes.as_ref().map(|share| share.load());
        let mut batch = Batch::default();
        batch.prepare(routes.as_ref().map(|(_, table)| &**table));
        let mut done = false;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            if let (Some(share), Some((generation, current))) = (&self.routes, &mut routes) {
                if share.generation() != *generation {
                    (*generation, *current) = share.load();
                    batch.stage.prepare(current);
                }
            }
            let current = routes.as_ref().map(|(_, table)| &**table);
            let room = self.batch_max - batch.count;
            if room > 0 && !done {
                let ring = self.ring;
                match self.consumer.drain_checked(room, |msg| {
                    batch.push(current, ring, &msg, &mut sampler);
                }) {
                    Ok(_) => {}
                    Err(Error::Disconnected) => done = true,
                    Err(err) => {
                        tracing::warn!(%err, "perdix: drain thread stopped");
                        done = true;
                    }
                }
            }
            if batch.count == 0 {
                if done {
                    return;
                }
                if backoff.is_completed() {
                    thread::sleep(Duration::from_micros(20));
                } else {
                    backoff.snooze();
                }
                continue;
            }
            let len = batch.count as u64;
            self.queued.fetch_add(len, Ordering::Relaxed);
            match self.full.try_send(batch) {
                Ok(()) => {
                    backoff.reset();
                    batch = self.free.try_recv().unwrap_or_default();
                    batch.prepare(current);
                }
                Err(TrySendError::Full(back)) => {
                    self.queued.fetch_sub(len, Ordering::Relaxed);
                    batch = back;
                    // Keep filling while there is room; wait only with a full batch.
                    if batch.count == self.batch_max || done {
                        backoff.snooze();
                    }
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }
}

/// A message of a kind with no typed route, copied out of its slot.
///
/// Unregistered kinds arrive as this (and count as unrouted); kinds registered with
/// [`add_perdix_raw`](super::PerdixAppExt::add_perdix_raw) too (not counted).
///
/// # Examples
///
/// ```
/// use bevy_app::prelude::*;
/// use bevy_ecs::prelude::*;
/// use perdix_transport::bevy::{PerdixMessage, PerdixPlugin, PerdixRing};
///
/// let mut app = App::new();
/// app.add_plugins(PerdixPlugin::default());
/// let mut producer = app.world_mut().resource_mut::<PerdixRing>().add_producer("cpu")?;
/// producer.try_produce_kind(42, b"who am I")?;
/// app.update();
/// let raw = app.world().resource::<Messages<PerdixMessage>>();
/// let msg = raw.get_cursor().read(raw).next().copied().unwrap();
/// assert_eq!((msg.kind(), msg.payload()), (42, &b"who am I"[..]));
/// assert_eq!(app.world().resource::<PerdixRing>().stats().unrouted, 1);
/// # Ok::<(), perdix_transport::Error>(())
/// ```
#[derive(BevyMessage, Clone, Copy)]
pub struct PerdixMessage {
    kind: u32,
    producer: u32,
    seq: u64,
    stamp_ns: u64,
    ring: u16,
    len: u16,
    flags: u32,
    payload: [u8; PAYLOAD_MAX],
}

impl PerdixMessage {
    pub(crate) fn new(ring: usize, msg: &Message<'_>) -> Self {
        let mut payload = [0u8; PAYLOAD_MAX];
        let len = msg.len().min(PAYLOAD_MAX);
        payload[..len].copy_from_slice(&msg.payload()[..len]);
        Self {
            kind: msg.kind(),
            producer: msg.producer(),
            seq: msg.seq(),
            stamp_ns: msg.stamp_ns(),
            ring: u16::try_from(ring).unwrap_or(u16::MAX),
            len: len as u16,
            flags: msg.flags(),
            payload,
        }
    }

    /// The message as the ring's borrowed view.
    fn view(&self) -> Message<'_> {
        let header = SlotHeader {
            len: u32::from(self.len),
            kind: self.kind,
            producer: self.producer,
            flags: self.flags,
            stamp_ns: self.stamp_ns,
        };
        Message::new(header, self.seq, self.payload())
    }

    /// Message kind.
    #[must_use]
    pub fn kind(&self) -> u32 {
        self.kind
    }

    /// Producer id (CPU thread, or GPU block / lane).
    #[must_use]
    pub fn producer(&self) -> u32 {
        self.producer
    }

    /// Position in its ring's stream, from 0.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Producer clock at publish in ns (0 when not stamped), on
    /// [`clock::now_ns`](crate::clock::now_ns)'s scale.
    #[must_use]
    pub fn stamp_ns(&self) -> u64 {
        self.stamp_ns
    }

    /// Index of the ring it came through (order of [`PerdixRing::add_consumer`] calls;
    /// saturates at 65,535).
    #[must_use]
    pub fn ring(&self) -> u32 {
        u32::from(self.ring)
    }

    /// Reserved flag bits of the slot.
    #[must_use]
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// The payload.
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        &self.payload[..self.len as usize]
    }
}

impl core::fmt::Debug for PerdixMessage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PerdixMessage")
            .field("kind", &self.kind)
            .field("producer", &self.producer)
            .field("seq", &self.seq)
            .field("ring", &self.ring)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

// One slot's worth: the header fields and the payload, no padding.
const _: () = assert!(core::mem::size_of::<PerdixMessage>() == crate::layout::SLOT_SIZE);

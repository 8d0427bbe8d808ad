//! The `PerdixRing` resource, the drain (in-system or through a consumer thread), and routing
//! by kind into ECS messages.
#![forbid(unsafe_code)]

use std::sync::Arc;

use bevy_ecs::resource::Resource;
use bevy_tasks::ComputeTaskPool;

use super::event::{Faults, PerdixEvent, RingState};
use super::lane::{take_lane, Lane, Source, Taken};
use super::plugin::DrainMode;
use super::producers::{Device, ProducerBackend};
use super::route::RouteShare;
use super::thread::{Batch, DrainThread};
use crate::telemetry::{LatencyHistogram, Sample, Telemetry, TelemetrySnapshot, Totals};
use crate::{Backend, Buffer, Consumer, Error, Message, Policy, Producer};

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
    /// Messages of a kind nobody registered (delivered as raw [`PerdixMessage`](super::PerdixMessage)).
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
/// // Errors are values: capacities must be powers of two, checked before the app runs
/// // (`build()` panics with this error's text).
/// let err = PerdixPlugin::default().capacity(1000).validate().unwrap_err();
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
    /// Why producers do not run on a GPU, once decided so.
    no_gpu: Option<Error>,
    /// The routing table drain threads stage by ([`DrainMode::Thread`] with routing on).
    routes: Option<Arc<RouteShare>>,
    /// Faults recorded, for [`PerdixEvent`]s and `perdix/errors`.
    faults: Faults,
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
            no_gpu: None,
            routes,
            faults: Faults::default(),
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
        self.lanes.push(Lane::new(name, monitor, source, device));
    }

    /// Rings drained by this resource.
    #[must_use]
    pub fn rings(&self) -> usize {
        self.lanes.len()
    }

    /// The CUDA device that writes ring `ring` (the index [`PerdixMessage::ring`](super::PerdixMessage::ring) and
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

    /// Where ring `ring` stands (`None` for an index out of range). A ring that failed is
    /// [`RingState::Failed`] from the drain that found the fault on (after every message
    /// published before it was taken), and stays so.
    #[must_use]
    pub fn ring_state(&self, ring: usize) -> Option<RingState> {
        self.lanes.get(ring).map(|lane| match &lane.fault {
            Some(err) => RingState::Failed(err.clone()),
            None if lane.finished => RingState::Finished,
            None => RingState::Running,
        })
    }

    /// Faults reported so far (as [`PerdixEvent`]s): failed rings and producers. The
    /// `perdix/errors` diagnostic.
    #[must_use]
    pub fn errors(&self) -> u64 {
        self.faults.count()
    }

    /// Rings `rings` fail with `err` (their producer stopped: a GPU kernel fault kills every
    /// kernel of its context), each once the messages already published into it are taken.
    pub(crate) fn fail_rings(&mut self, rings: core::ops::Range<usize>, err: &Error) {
        for lane in self.lanes.get_mut(rings).into_iter().flatten() {
            lane.producer_failed(err);
        }
    }

    pub(crate) fn faults_mut(&mut self) -> &mut Faults {
        &mut self.faults
    }

    /// Reports rings that failed since the last call (once each).
    fn report_failed_rings(&mut self) {
        for (idx, lane) in self.lanes.iter_mut().enumerate() {
            if lane.reported {
                continue;
            }
            let Some(error) = lane.fault.clone() else {
                continue;
            };
            lane.reported = true;
            self.faults.report(PerdixEvent::RingFailed {
                ring: idx,
                name: lane.name.clone(),
                device: lane.device,
                error,
            });
        }
    }

    /// Whether every ring's producer is gone and every message was taken, or the ring failed
    /// (also true with no rings at all).
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
    ///
    /// A ring that fails here (a corrupt slot, a failed head push) is reported as for the
    /// drain system: [`ring_state`](Self::ring_state) at once, a
    /// [`PerdixEvent`](super::PerdixEvent) in the next frame's drain.
    ///
    /// # Soundness
    ///
    /// `f` is called with a `Message<'_>` of a lifetime chosen anew for each call (`f` is
    /// higher-ranked: `for<'m> FnMut(Message<'m>)`), which ends before the slot is released
    /// (the consumer publishes its head only after `f` returns). So neither the view nor its
    /// payload can leave the call: keeping the view in a captured `Vec` does not compile,
    ///
    /// ```compile_fail,E0521
    /// # let mut ring: perdix_transport::bevy::PerdixRing = unimplemented!();
    /// let mut kept = Vec::new();
    /// ring.drain_with(10, |msg| kept.push(msg));
    /// ```
    ///
    /// nor does handing the payload out through a capture,
    ///
    /// ```compile_fail,E0521
    /// # let mut ring: perdix_transport::bevy::PerdixRing = unimplemented!();
    /// let mut last: Option<&[u8]> = None;
    /// ring.drain_with(1, |msg| last = Some(msg.payload()));
    /// ```
    ///
    /// and the closure returns nothing to return it through. Copy the bytes out instead
    /// (`payload().to_vec()`), or read them as a type (`bytemuck::pod_read_unaligned`).
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

    /// Why GPU producers cannot run here (the probe's error).
    pub(crate) fn no_gpu_error(&self) -> Error {
        self.no_gpu
            .clone()
            .unwrap_or(Error::NoDevice("producers run on the CPU"))
    }

    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn devices(&self) -> &[Device] {
        &self.devices
    }

    pub(crate) fn set_backend_choice(
        &mut self,
        backend: ProducerBackend,
        devices: Vec<Device>,
        no_gpu: Option<Error>,
    ) {
        self.devices = devices;
        self.no_gpu = no_gpu;
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
        self.report_failed_rings();
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
                } else if thread.has_pending() {
                    // A batch is waiting that does not fit what is left of the budget.
                    full = true;
                }
                // A thread that is done finishes (or fails) the lane now.
                lane.settle();
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

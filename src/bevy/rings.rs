//! The [`PerdixRings`] resource: the rings of an app (one per producer), what was taken from
//! them, their faults, and where producers run.
#![forbid(unsafe_code)]

use std::sync::Arc;

use bevy_ecs::resource::Resource;

use super::backend::{BackendChoice, ProducerBackend};
use super::config::{DrainMode, RingConfig};
use super::drain::{self, Batch, DrainThread, DrainedRing, Pass, Scheduler, Source};
use super::event::{Faults, RingState};
use super::header::ring_index;
use super::stage::RouteShare;
use super::stats::{CountersSink, Counts};
use super::status::Statuses;
use crate::telemetry::{AppCounters, CountersSnapshot, Telemetry, TelemetrySnapshot};
use crate::{Consumer, Error, Message};

// The producers' side of the resource: host rings for CPU producers, where producers run.
mod producers;

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
/// use perdix_transport::bevy::{PerdixPlugin, PerdixRings};
///
/// fn count(mut rings: ResMut<PerdixRings>, mut total: Local<usize>) {
///     *total += rings.drain_with(1000, |msg| assert_eq!(&*msg, b"hi"));
/// }
///
/// let mut app = App::new();
/// app.add_plugins(PerdixPlugin::default().route(false))
///     .add_systems(Update, count);
/// let mut producer = app.world_mut().resource_mut::<PerdixRings>().add_producer("cpu")?;
/// producer.try_produce(b"hi")?;
/// app.update();
/// assert_eq!(app.world().resource::<PerdixRings>().counters().total().messages, 1);
/// // Errors are values: capacities must be powers of two, checked before the app runs
/// // (`build()` panics with this error's text).
/// let err = PerdixPlugin::default().capacity(1000).validate().unwrap_err();
/// assert_eq!(err, perdix_transport::Error::InvalidCapacity(1000));
/// # Ok::<(), perdix_transport::Error>(())
/// ```
#[derive(Resource, Debug)]
pub struct PerdixRings {
    config: RingConfig,
    rings: Vec<DrainedRing>,
    /// Which ring the next drain starts with.
    scheduler: Scheduler,
    /// What the drain counted.
    counts: Counts,
    telemetry: Telemetry,
    /// Where producers run, and the devices opened for them, once decided.
    backend: BackendChoice,
    /// The routing table drain threads stage by ([`DrainMode::Thread`] with routing on).
    routes: Option<Arc<RouteShare>>,
    /// Faults and warnings recorded, for [`PerdixEvent`](super::PerdixEvent)s,
    /// `perdix/errors` and `perdix/warnings`.
    faults: Faults,
    /// The producers the plugin started: where each runs, the launches each skipped.
    statuses: Statuses,
    /// Also gets each snapshot the rate history samples (the Prometheus exporter's).
    sink: CountersSink,
}

impl PerdixRings {
    pub(crate) fn new(config: RingConfig, routes: Option<Arc<RouteShare>>) -> Self {
        Self {
            config,
            rings: Vec::new(),
            scheduler: Scheduler::default(),
            counts: Counts::new(),
            telemetry: Telemetry::new("host", 600),
            backend: BackendChoice::default(),
            routes,
            faults: Faults::default(),
            statuses: Statuses::default(),
            sink: CountersSink::default(),
        }
    }

    /// The plugin's settings.
    pub(crate) fn config(&self) -> &RingConfig {
        &self.config
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
    /// use perdix_transport::bevy::{PerdixPlugin, PerdixRings};
    /// use perdix_transport::Buffer;
    ///
    /// let mut app = App::new();
    /// app.add_plugins(PerdixPlugin::default());
    /// let (mut producer, consumer) = Buffer::new(64)?.into_split();
    /// let mut rings = app.world_mut().resource_mut::<PerdixRings>();
    /// rings.add_device_consumer("from-gpu1", consumer, Some(1));
    /// assert_eq!(rings.ring_device(0), Some(1));
    /// producer.try_produce(b"hi")?;
    /// app.update();
    /// let rings = app.world().resource::<PerdixRings>();
    /// assert_eq!(rings.counters().devices()[0].counters.messages, 1);
    /// # Ok::<(), perdix_transport::Error>(())
    /// ```
    pub fn add_device_consumer(&mut self, name: &str, consumer: Consumer, device: Option<u32>) {
        let monitor = consumer.monitor();
        let source = match self.config.drain {
            DrainMode::System => Source::Direct(consumer),
            DrainMode::Thread => Source::Thread(DrainThread::spawn(
                name,
                ring_index(self.rings.len()),
                consumer,
                self.routes.clone(),
                self.config.budget,
                self.config.max_held_bytes,
            )),
        };
        tracing::debug!(ring = name, drain = %self.config.drain, "perdix: ring added");
        self.rings
            .push(DrainedRing::new(name, monitor, source, device));
    }

    /// The largest message (payload bytes) the rings carry, as
    /// [`PerdixPlugin::max_message`](super::PerdixPlugin::max_message) (which has an example);
    /// producers refuse anything larger ([`Error::MessageTooLarge`]).
    #[must_use]
    pub fn max_message(&self) -> usize {
        crate::layout::max_message(self.config.capacity)
    }

    /// Rings drained by this resource.
    #[must_use]
    pub fn rings(&self) -> usize {
        self.rings.len()
    }

    /// The CUDA device that writes ring `ring` (the index
    /// [`PerdixMessage::ring`](super::PerdixMessage::ring) and
    /// [`Envelope::ring`](super::Envelope) give), or `None` for a CPU producer's ring or an
    /// index out of range.
    #[must_use]
    pub fn ring_device(&self, ring: u32) -> Option<u32> {
        self.rings.get(ring as usize).and_then(|ring| ring.device)
    }

    /// The name ring `ring` was added with (`None` for an index out of range).
    #[must_use]
    pub fn ring_name(&self, ring: u32) -> Option<&str> {
        self.rings.get(ring as usize).map(|ring| &*ring.name)
    }

    /// Where ring `ring` stands (`None` for an index out of range). A ring that failed is
    /// [`RingState::Failed`] from the drain that found the fault on (after every message
    /// published before it was taken), and stays so.
    #[must_use]
    pub fn ring_state(&self, ring: u32) -> Option<RingState> {
        self.rings.get(ring as usize).map(DrainedRing::state)
    }

    /// Faults reported so far (as [`PerdixEvent`](super::PerdixEvent)s): failed rings and
    /// producers, routes too large. The `perdix/errors` diagnostic.
    #[must_use]
    pub fn errors(&self) -> u64 {
        self.faults.count()
    }

    /// Warnings reported so far (as [`PerdixEvent`](super::PerdixEvent)s that are not
    /// [faults](super::PerdixEvent::is_fault)): GPU producers on their CPU fallbacks, unrouted
    /// kinds, stalled producers. The `perdix/warnings` diagnostic.
    #[must_use]
    pub fn warnings(&self) -> u64 {
        self.faults.warnings()
    }

    /// Rings `rings` fail with `err` (their producer stopped: a GPU kernel fault kills every
    /// kernel of its context), each once the messages already published into it are taken.
    pub(crate) fn fail_rings(&mut self, rings: core::ops::Range<usize>, err: &Error) {
        for ring in self.rings.get_mut(rings).into_iter().flatten() {
            ring.producer_failed(err);
        }
    }

    pub(crate) fn faults_mut(&mut self) -> &mut Faults {
        &mut self.faults
    }

    /// Reports rings that failed since the last call (once each).
    fn report_failed_rings(&mut self) {
        for (idx, ring) in self.rings.iter_mut().enumerate() {
            if let Some(event) = ring.unreported_failure(idx) {
                self.faults.report(event);
            }
        }
    }

    /// Whether every ring's producer is gone and every message was taken, or the ring failed
    /// (also true with no rings at all).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.rings.iter().all(|ring| ring.finished)
    }

    /// Takes up to `max` ready messages without copying them into ECS messages, calling `f` on
    /// each, oldest first within each ring; returns how many. They count in
    /// [`counters`](Self::counters) and the diagnostics but are not routed.
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
    /// # let mut rings: perdix_transport::bevy::PerdixRings = unimplemented!();
    /// let mut kept = Vec::new();
    /// rings.drain_with(10, |msg| kept.push(msg));
    /// ```
    ///
    /// nor does handing the payload out through a capture,
    ///
    /// ```compile_fail,E0521
    /// # let mut rings: perdix_transport::bevy::PerdixRings = unimplemented!();
    /// let mut last: Option<&[u8]> = None;
    /// rings.drain_with(1, |msg| last = Some(msg.payload()));
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
        self.rings.iter().map(DrainedRing::queued).sum()
    }

    /// Every ring's counters, the plugin's, and the latencies sampled so far, now: one
    /// snapshot in one vocabulary, monotonic, that any number of readers may take (nothing is
    /// consumed). The `perdix/*` diagnostics, [`snapshot`](Self::snapshot) and the exporters
    /// derive from it; rates come from two snapshots apart in time.
    ///
    /// Messages and bytes are what the frame took out of the rings (in [`DrainMode::Thread`],
    /// the batches the frame took from the drain threads; [`handed_over`](Self::handed_over)
    /// more wait in them).
    #[must_use]
    pub fn counters(&self) -> CountersSnapshot {
        let app = AppCounters {
            held_bytes: self.held_bytes(),
            errors: self.errors(),
            warnings: self.warnings(),
            launches_skipped: self.launches_skipped(),
            ..AppCounters::default()
        };
        self.counts.snapshot(&self.rings, app)
    }

    /// The rate history (sampled from [`counters`](Self::counters) every ~100 ms as frames
    /// close) and the latencies so far, for a dashboard, named by where producers run
    /// ([`producer_backend`](Self::producer_backend), once decided).
    #[must_use]
    pub fn snapshot(&self) -> TelemetrySnapshot {
        let mut snapshot = self.telemetry.snapshot();
        let latency = self.counts.latency();
        snapshot.latency = latency.summary();
        snapshot.latency_buckets = latency.buckets(10);
        if let Some(backend) = self.backend_so_far() {
            snapshot.backend = backend.name().to_owned();
            snapshot.device = match backend {
                ProducerBackend::Gpu { device } | ProducerBackend::Mixed { device, .. } => device,
                ProducerBackend::Cpu { .. } => "cpu".to_owned(),
            };
        }
        snapshot
    }

    /// Adds a sample of the counters to the rate history [`snapshot`](Self::snapshot) shows
    /// (`t_s`: seconds since the first).
    pub(crate) fn sample_history(&mut self, t_s: f64) {
        let counters = self.counters();
        self.telemetry.update(t_s, counters.total());
        self.sink.send(counters);
    }

    /// Hands each snapshot [`sample_history`](Self::sample_history) takes to `sink` too.
    #[cfg(feature = "prometheus")]
    pub(crate) fn set_counters_sink(
        &mut self,
        sink: impl Fn(CountersSnapshot) + Send + Sync + 'static,
    ) {
        self.sink = CountersSink::new(sink);
    }

    /// The drain for one sink ([`Scheduler::serial`]): calls `f(ring index, message)`.
    fn drain_serial<F>(&mut self, max: usize, f: F) -> usize
    where
        F: FnMut(usize, Message<'_>),
    {
        match self.scheduler.serial(&mut self.rings, max, u64::MAX, f) {
            Some(pass) => self.close_drain(pass),
            None => 0,
        }
    }

    /// The drain with one sink per ring, busy rings in parallel ([`Scheduler::parallel`]),
    /// taking at most the plugin's `max_held_bytes` of each ring.
    pub(crate) fn drain_parallel<S>(&mut self, max: usize, sinks: &mut [S]) -> usize
    where
        S: FnMut(usize, Message<'_>) + Send,
    {
        let (rings, bytes) = (&mut self.rings, self.config.max_held_bytes);
        match self.scheduler.parallel(rings, max, bytes, sinks) {
            Some(pass) => self.close_drain(pass),
            None => 0,
        }
    }

    /// [`DrainMode::Thread`]: up to `max` messages in whole batches the drain threads staged,
    /// into `out` as (ring index, batch) ([`Scheduler::batches`]). Hand the emptied batches
    /// back with [`give_back`](Self::give_back).
    pub(crate) fn take_batches(&mut self, max: usize, out: &mut Vec<(usize, Batch)>) -> usize {
        match self.scheduler.batches(&mut self.rings, max, out) {
            Some(pass) => self.close_drain(pass),
            None => 0,
        }
    }

    /// Returns batches taken by [`take_batches`](Self::take_batches) (now flushed) to their
    /// drain threads.
    pub(crate) fn give_back(&mut self, batches: &mut Vec<(usize, Batch)>) {
        drain::give_back(&mut self.rings, batches);
    }

    /// Reports the rings that failed in a drain and folds its counts into the stats (with the
    /// budget spent, what is still waiting counts as deferred).
    fn close_drain(&mut self, pass: Pass) -> usize {
        let Pass { taken, full } = pass;
        self.report_failed_rings();
        let rings = &self.rings;
        let backlog = || rings.iter().map(DrainedRing::backlog).sum();
        self.counts.close_drain(&taken, full, backlog);
        taken.count
    }

    /// Adds the routing counts of a frame's take from ring `ring`.
    pub(crate) fn count_routing(&mut self, ring: usize, unrouted: u64, malformed: u64) {
        if let Some(ring) = self.rings.get_mut(ring) {
            ring.unrouted += unrouted;
            ring.malformed += malformed;
        }
    }

    /// Closes a frame's accounting (the drain's `close_frame` system, in `Last`).
    pub(crate) fn end_frame(&mut self) {
        self.counts.end_frame();
    }
}

mod held;

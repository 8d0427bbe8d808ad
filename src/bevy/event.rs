//! Failures reach the app as values: [`PerdixEvent`] messages, each ring's [`RingState`], the
//! `perdix/errors` diagnostic, and (third, not only) the log.
//!
//! A headless `bevy_app` app has no tracing subscriber, so a log line alone would be silence:
//! every fault the plugin sees (something stopped or cannot work) and every warning (the app
//! runs, but not as configured: a GPU producer on its CPU fallback, a kind no route takes,
//! launches skipped behind a stalled producer) is recorded once here, counted (`perdix/errors`,
//! `perdix/warnings`), logged (`error!`, `warn!`), and written as a [`PerdixEvent`] in the next
//! [`PerdixSystems::Drain`](super::PerdixSystems::Drain).
#![forbid(unsafe_code)]

use bevy_ecs::message::Message as BevyMessage;

use crate::Error;

/// Something went wrong in a ring or a producer the plugin runs (a fault), or runs other than
/// configured (a warning: [`is_fault`](Self::is_fault) tells them apart); read it with a
/// [`MessageReader<PerdixEvent>`](bevy_ecs::message::MessageReader).
///
/// Each is reported once. Rings and producers that did not fail keep running.
///
/// # Examples
///
/// A GPU producer with no CPU fallback, in an app without a GPU (here: without the `cuda`
/// feature, or on a machine with no device), reports why it did not start:
///
/// ```
/// use bevy_app::prelude::*;
/// use bevy_ecs::prelude::*;
/// use perdix_transport::bevy::{
///     GpuProducerSpec, PerdixAppExt, PerdixEvent, PerdixPlugin, PerdixRings,
/// };
/// use perdix_transport::Error;
///
/// // SAFETY: the kernel takes only the producer pointer (`A = ()` adds no parameters) and
/// // touches no memory at all.
/// let spec = unsafe {
///     GpuProducerSpec::<()>::new(
///         "ticks",
///         "extern \"C\" __global__ void tick(const perdix_producer* p) {}",
///         "tick",
///     )
/// };
/// let mut app = App::new();
/// app.add_plugins(PerdixPlugin::default()).add_gpu_producer(spec);
/// app.update();
/// let backend = app.world().resource::<PerdixRings>().producer_backend();
/// if !backend.is_gpu() {
///     let rings = app.world().resource::<PerdixRings>();
///     let events = app.world().resource::<Messages<PerdixEvent>>();
///     let mut cursor = events.get_cursor();
///     let got: Vec<&PerdixEvent> = cursor.read(events).collect();
///     assert!(matches!(
///         got[..],
///         [PerdixEvent::ProducerFailed { name, error: Error::NoDevice(_) }] if name == "ticks"
///     ));
///     assert_eq!(rings.errors(), 1);
/// }
/// ```
#[derive(BevyMessage, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PerdixEvent {
    /// Ring `ring` stopped on a fault: a corrupt slot ([`Error::Corrupt`]), a failed head push
    /// to its device ([`Error::HeadPush`]), its GPU producer's fault, or a drain thread that
    /// could not start ([`Error::Spawn`]). Every message published before the fault was
    /// delivered first; the ring's consumer is dropped, which closes the ring for its
    /// producers (kernels waiting for room exit).
    /// [`PerdixRings::ring_state`](super::PerdixRings::ring_state) now says
    /// [`RingState::Failed`]. A fault.
    RingFailed {
        /// The ring's index (as [`PerdixHeader::ring`](super::PerdixHeader::ring)).
        ring: u32,
        /// The ring's name (the producer's, with the ring's number for GPU producers).
        name: String,
        /// The CUDA device that writes the ring, if any.
        device: Option<u32>,
        /// The ring's fault.
        error: Error,
    },
    /// A producer the plugin runs did not start (no GPU and no CPU fallback:
    /// [`Error::NoDevice`]; a thread that could not start: [`Error::Spawn`]; a kernel that
    /// does not compile, with no CPU fallback: [`Error::Compile`]), or stopped: its launch
    /// failed or its kernel faulted (`Error::KernelFault`, with the `cuda` feature). A fault.
    ProducerFailed {
        /// The producer's name.
        name: String,
        /// Why.
        error: Error,
    },
    /// A typed route ([`add_perdix_message`](super::PerdixAppExt::add_perdix_message),
    /// [`add_perdix_envelope`](super::PerdixAppExt::add_perdix_envelope), or
    /// [`add_perdix_slice`](super::PerdixAppExt::add_perdix_slice) for one element) whose type
    /// is larger than the largest message the plugin's rings carry
    /// ([`PerdixPlugin::max_message`](super::PerdixPlugin::max_message)):
    /// [`Error::MessageTooLarge`], with the type's size as `len`. The route stays registered,
    /// but no message of the kind can arrive whole: any that arrives counts as malformed.
    /// Reported when the route is registered (or, for one registered before the plugin, when
    /// the plugin is built), in the first frame's drain. A fault.
    RouteTooLarge {
        /// The kind routed.
        kind: u32,
        /// The type it was routed to.
        type_name: &'static str,
        /// [`Error::MessageTooLarge`].
        error: Error,
    },
    /// A GPU producer ([`GpuProducerSpec`](super::GpuProducerSpec)) could not start on the
    /// GPU the plugin chose, and runs its CPU fallback instead: its kernel does not compile
    /// ([`Error::Compile`]), `A` does not match the kernel's parameters
    /// ([`Error::InvalidConfig`]), its rings could not be made (managed memory refused:
    /// `Error::ManagedUnsupported`; [`Error::Alloc`]), or the clock calibration failed. Its
    /// [`ProducerStatus::backend`](super::ProducerStatus::backend) is then
    /// [`ProducerBackend::Cpu`](super::ProducerBackend::Cpu) with this error as the reason.
    ///
    /// Not raised when producers run on the CPU because there is no GPU to start on (no
    /// device, no `cuda` feature, a capacity below the GPU's minimum): that is the plugin's
    /// choice ([`PerdixRings::producer_backend`](super::PerdixRings::producer_backend)), not
    /// a failure. A warning.
    ProducerFellBack {
        /// The producer's name.
        name: String,
        /// Why it did not start on the GPU.
        error: Error,
    },
    /// The first message of kind `kind` on ring `ring` that no route takes: nothing was
    /// registered for the kind (a typo in a kind constant, a route not added), so it is
    /// delivered only as a raw [`PerdixMessage`](super::PerdixMessage) and counted in
    /// [`Counters::unrouted`](crate::telemetry::Counters::unrouted) and `perdix/unrouted_per_sec`.
    /// Reported once per kind and ring, then only counted; a ring remembers at most
    /// [`UNROUTED_KINDS_PER_RING`](super::UNROUTED_KINDS_PER_RING) kinds (kinds come from the
    /// producer, which may send any `u32`), later ones are only counted. Register kinds read
    /// raw on purpose with [`add_perdix_raw`](super::PerdixAppExt::add_perdix_raw). A
    /// warning.
    ///
    /// ```
    /// use bevy_app::prelude::*;
    /// use bevy_ecs::prelude::*;
    /// use perdix_transport::bevy::{PerdixEvent, PerdixPlugin, PerdixRings};
    ///
    /// let mut app = App::new();
    /// app.add_plugins(PerdixPlugin::default());
    /// let mut producer = app.world_mut().resource_mut::<PerdixRings>().add_producer("cpu")?;
    /// for _ in 0..1000 {
    ///     producer.try_produce_kind(9, b"no route takes kind 9")?;
    /// }
    /// app.update();
    /// let events = app.world().resource::<Messages<PerdixEvent>>();
    /// let got: Vec<PerdixEvent> = events.get_cursor().read(events).cloned().collect();
    /// assert!(matches!(got[..], [PerdixEvent::Unrouted { ring: 0, kind: 9, .. }]));
    /// let rings = app.world().resource::<PerdixRings>();
    /// assert_eq!((rings.counters().total().unrouted, rings.warnings()), (1000, 1));
    /// # Ok::<(), perdix_transport::Error>(())
    /// ```
    Unrouted {
        /// The ring's index (as [`PerdixHeader::ring`](super::PerdixHeader::ring)).
        ring: u32,
        /// The ring's name.
        name: String,
        /// The kind no route takes.
        kind: u32,
    },
    /// Producer `name` skipped `frames` launches in a row because its previous launch was
    /// still running (a GPU kernel that has not returned, perhaps hung or waiting for room;
    /// a CPU fallback two launches behind). Raised once per stall, when the run of skipped
    /// launches is [`STALL_FRAMES`](super::STALL_FRAMES) long and spans
    /// [`STALL_TIME`](super::STALL_TIME); a launch that runs ends the stall, and the next one
    /// is reported again. Every skipped launch is counted
    /// ([`ProducerStatus::launches_skipped`](super::ProducerStatus::launches_skipped),
    /// `perdix/launches_skipped`). A warning.
    LaunchesSkipped {
        /// The producer's name.
        name: String,
        /// Launches skipped in a row so far.
        frames: u64,
    },
}

impl PerdixEvent {
    /// The error the event carries (`None` for [`Unrouted`](Self::Unrouted) and
    /// [`LaunchesSkipped`](Self::LaunchesSkipped), which report a state, not an error).
    ///
    /// # Examples
    ///
    /// ```
    /// use perdix_transport::bevy::PerdixEvent;
    /// use perdix_transport::Error;
    ///
    /// let failed = PerdixEvent::ProducerFailed { name: "p".into(), error: Error::Disconnected };
    /// assert_eq!(failed.error(), Some(&Error::Disconnected));
    /// let stalled = PerdixEvent::LaunchesSkipped { name: "p".into(), frames: 120 };
    /// assert_eq!(stalled.error(), None);
    /// ```
    #[must_use]
    pub fn error(&self) -> Option<&Error> {
        match self {
            Self::RingFailed { error, .. }
            | Self::ProducerFailed { error, .. }
            | Self::RouteTooLarge { error, .. }
            | Self::ProducerFellBack { error, .. } => Some(error),
            Self::Unrouted { .. } | Self::LaunchesSkipped { .. } => None,
        }
    }

    /// Whether the event is a fault (something stopped or cannot work: counted in
    /// [`PerdixRings::errors`](super::PerdixRings::errors) and `perdix/errors`, logged at
    /// `error!`) rather than a warning (the app runs, not as configured: counted in
    /// [`PerdixRings::warnings`](super::PerdixRings::warnings) and `perdix/warnings`, logged
    /// at `warn!`).
    ///
    /// # Examples
    ///
    /// ```
    /// use perdix_transport::bevy::PerdixEvent;
    ///
    /// let unrouted = PerdixEvent::Unrouted { ring: 0, name: "cpu".into(), kind: 9 };
    /// assert!(!unrouted.is_fault());
    /// ```
    #[must_use]
    pub fn is_fault(&self) -> bool {
        match self {
            Self::RingFailed { .. } | Self::ProducerFailed { .. } | Self::RouteTooLarge { .. } => {
                true
            }
            Self::ProducerFellBack { .. }
            | Self::Unrouted { .. }
            | Self::LaunchesSkipped { .. } => false,
        }
    }
}

/// Where a ring stands ([`PerdixRings::ring_state`](super::PerdixRings::ring_state)).
///
/// # Examples
///
/// ```
/// use bevy_app::prelude::*;
/// use perdix_transport::bevy::{PerdixPlugin, PerdixRings, RingState};
///
/// let mut app = App::new();
/// app.add_plugins(PerdixPlugin::default());
/// let producer = app.world_mut().resource_mut::<PerdixRings>().add_producer("cpu")?;
/// app.update();
/// assert_eq!(app.world().resource::<PerdixRings>().ring_state(0), Some(RingState::Running));
/// drop(producer);
/// app.update();
/// assert_eq!(app.world().resource::<PerdixRings>().ring_state(0), Some(RingState::Finished));
/// assert_eq!(app.world().resource::<PerdixRings>().ring_state(1), None);
/// # Ok::<(), perdix_transport::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RingState {
    /// Being drained.
    Running,
    /// Its producer is gone and every message was taken.
    Finished,
    /// Stopped on this fault (reported once as [`PerdixEvent::RingFailed`]); its consumer is
    /// dropped.
    Failed(Error),
}

/// The events recorded and not yet written as [`PerdixEvent`]s, and how many faults and
/// warnings there were.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pending: Vec<PerdixEvent>,
    count: u64,
    warnings: u64,
}

impl Faults {
    /// Records `event`: logged (`error!` for a fault, `warn!` for a warning), counted, and
    /// queued for the next drain.
    pub(crate) fn report(&mut self, event: PerdixEvent) {
        log(&event);
        if event.is_fault() {
            self.count += 1;
        } else {
            self.warnings += 1;
        }
        self.pending.push(event);
    }

    /// Faults recorded so far.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Warnings recorded so far.
    pub(crate) fn warnings(&self) -> u64 {
        self.warnings
    }

    /// The events not yet written, emptied.
    pub(crate) fn take(&mut self) -> Vec<PerdixEvent> {
        core::mem::take(&mut self.pending)
    }
}

/// The log line of `event` (the third place it goes, after the message and the count).
fn log(event: &PerdixEvent) {
    match event {
        PerdixEvent::RingFailed {
            ring,
            name,
            device,
            error,
        } => {
            tracing::error!(ring, name = %name, device = ?device, %error, "perdix: ring failed");
        }
        PerdixEvent::ProducerFailed { name, error } => {
            tracing::error!(producer = %name, %error, "perdix: producer failed");
        }
        PerdixEvent::RouteTooLarge {
            kind,
            type_name,
            error,
        } => {
            tracing::error!(kind, type_name, %error, "perdix: routed type too large");
        }
        PerdixEvent::ProducerFellBack { name, error } => {
            tracing::warn!(
                producer = %name,
                %error,
                "perdix: GPU producer failed to start; running its CPU fallback"
            );
        }
        PerdixEvent::Unrouted { ring, name, kind } => {
            tracing::warn!(
                ring,
                name = %name,
                kind,
                "perdix: messages of a kind no route takes (delivered raw, counted as unrouted)"
            );
        }
        PerdixEvent::LaunchesSkipped { name, frames } => {
            tracing::warn!(
                producer = %name,
                frames,
                "perdix: producer's previous launch still runs; launches skipped"
            );
        }
    }
}

/// The error for a thread the plugin could not start.
pub(crate) fn spawn_error(err: &std::io::Error) -> Error {
    Error::Spawn(err.to_string())
}

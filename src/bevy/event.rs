//! Failures reach the app as values: [`PerdixEvent`] messages, each ring's [`RingState`], the
//! `perdix/errors` diagnostic, and (third, not only) the log.
//!
//! A headless `bevy_app` app has no tracing subscriber, so a log line alone would be silence:
//! every fault the plugin sees is recorded once here, counted, logged at `error!`, and written
//! as a [`PerdixEvent`] in the next [`PerdixSystems::Drain`](super::PerdixSystems::Drain).
#![forbid(unsafe_code)]

use bevy_ecs::message::Message as BevyMessage;

use crate::Error;

/// Something went wrong in a ring or a producer the plugin runs; read it with a
/// [`MessageReader<PerdixEvent>`](bevy_ecs::message::MessageReader).
///
/// Each fault is reported once. Rings and producers that did not fail keep running.
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
    /// [`RingState::Failed`].
    RingFailed {
        /// The ring's index (as [`PerdixMessage::ring`](super::PerdixMessage::ring)).
        ring: usize,
        /// The ring's name (the producer's, with the ring's number for GPU producers).
        name: String,
        /// The CUDA device that writes the ring, if any.
        device: Option<u32>,
        /// The ring's fault.
        error: Error,
    },
    /// A producer the plugin runs did not start (no GPU and no CPU fallback:
    /// [`Error::NoDevice`]; a thread that could not start: [`Error::Spawn`]; a kernel that
    /// does not compile: [`Error::Compile`]), or stopped: its launch failed or its kernel
    /// faulted (`Error::KernelFault`, with the `cuda` feature).
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
    /// the plugin is built), in the first frame's drain.
    RouteTooLarge {
        /// The kind routed.
        kind: u32,
        /// The type it was routed to.
        type_name: &'static str,
        /// [`Error::MessageTooLarge`].
        error: Error,
    },
}

impl PerdixEvent {
    /// The error the event carries.
    #[must_use]
    pub fn error(&self) -> &Error {
        match self {
            Self::RingFailed { error, .. }
            | Self::ProducerFailed { error, .. }
            | Self::RouteTooLarge { error, .. } => error,
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

/// The faults recorded and not yet written as [`PerdixEvent`]s, and how many there were.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pending: Vec<PerdixEvent>,
    count: u64,
}

impl Faults {
    /// Records `event`: logged (`error!`), counted, and queued for the next drain.
    pub(crate) fn report(&mut self, event: PerdixEvent) {
        match &event {
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
        }
        self.count += 1;
        self.pending.push(event);
    }

    /// Faults recorded so far.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// The faults not yet written, emptied.
    pub(crate) fn take(&mut self) -> Vec<PerdixEvent> {
        core::mem::take(&mut self.pending)
    }
}

/// The error for a thread the plugin could not start.
pub(crate) fn spawn_error(err: &std::io::Error) -> Error {
    Error::Spawn(err.to_string())
}

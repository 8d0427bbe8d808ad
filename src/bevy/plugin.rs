//! [`PerdixPlugin`]: its settings (documented fields, a builder, `validate`), the
//! [`PerdixSystems`] sets, and `build()`, which only registers.
#![forbid(unsafe_code)]

use bevy_app::{App, Last, Plugin, PreUpdate, Startup};
use bevy_ecs::schedule::{IntoScheduleConfigs, SystemSet};

use super::config::{self, DrainMode, RingConfig};
use super::diagnostics;
use super::drain;
use super::event::PerdixEvent;
use super::frame;
use super::limits;
use super::message::PerdixMessage;
use super::producers::{self, ProducerRegistry};
use super::rings::PerdixRings;
use super::route::{self, Routes};
use crate::MAX_CAPACITY;
use crate::{Backend, Error, Policy, RingMode};

/// The system sets of the plugin, in [`PreUpdate`], in this order.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PerdixSystems {
    /// Launches registered producers for the frame (asynchronously: never waits for them).
    Launch,
    /// Moves ready messages from the rings into Bevy messages, within the frame's budget.
    Drain,
}

/// Delivers messages from perdix rings into Bevy ECS messages, with `perdix/*` diagnostics.
///
/// `build()` only registers: the [`PerdixRings`] resource (one ring per producer, created when
/// a producer is added), the [`PerdixSystems`] sets, the launch, drain and diagnostics systems,
/// and the raw [`PerdixMessage`]. The `perdix/*` diagnostics are registered by the plugin itself
/// (which creates Bevy's `DiagnosticsStore` if the app has none), so they are collected with or
/// without [`DiagnosticsPlugin`](bevy_diagnostic::DiagnosticsPlugin), which only adds that same
/// store; add [`LogDiagnosticsPlugin`](bevy_diagnostic::LogDiagnosticsPlugin) with bevy_time's
/// `TimePlugin` to print them, or read them from the store.
///
/// # Examples
///
/// ```
/// use bevy_app::prelude::*;
/// use perdix_transport::bevy::{DrainMode, PerdixPlugin};
/// use perdix_transport::Policy;
///
/// let plugin = PerdixPlugin::default()
///     .capacity(65_536)
///     .policy(Policy::DropNewest)
///     .budget(100_000)
///     .drain(DrainMode::Thread);
/// assert_eq!(plugin.capacity, 65_536);
/// App::new().add_plugins(plugin).update();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerdixPlugin {
    /// Slots in each ring (every producer gets its own ring): a power of two from 2 to 2^31.
    /// Default 16,384 (4 MiB per ring). GPU rings need at least `cuda::MIN_CAPACITY` = 32:
    /// with a smaller capacity the
    /// plugin's producers run on the CPU (the backend says why; GPU producers run their CPU
    /// fallbacks, without a [`PerdixEvent::ProducerFellBack`]: no GPU was chosen), and
    /// [`validate`](Self::validate) refuses it with [`memory`](Self::memory) set to CUDA
    /// memory, which asks for the GPU.
    pub capacity: usize,
    /// Memory of GPU producers' rings; `None` (default) lets the CUDA backend pick. CPU
    /// producers always use [`Backend::Host`].
    pub memory: Option<Backend>,
    /// Backpressure policy of producers the plugin starts (default [`Policy::Block`]).
    pub policy: Policy,
    /// How the plugin's rings lay out messages (default [`RingMode::Throughput`]):
    /// [`RingMode::LowLatency`] rings carry messages of up to 104 bytes with no system-scope
    /// fence per GPU message (docs/PERFORMANCE.md, "Latency").
    pub ring_mode: RingMode,
    /// Most messages the drain moves into ECS messages per frame, over all rings (default
    /// 262,144). What is left stays in the rings and is counted as deferred.
    pub budget: usize,
    /// Most bytes the plugin holds outside each ring: the messages a
    /// [`DrainMode::Thread`] drain thread took and the frame has not yet written, or what a
    /// [`DrainMode::System`] drain takes of the ring in one frame. Each message counts as its
    /// payload plus the size of a [`PerdixMessage`] (about a slot). `None` (default): 4 times
    /// the ring's bytes (16 MiB for the default 16,384-slot ring); see
    /// [`held_limit`](Self::held_limit). At the limit the drain stops taking, before the
    /// message that does not fit: it stays in its ring (counted as deferred), the ring fills,
    /// and its producers wait ([`Policy::Block`]) or drop, counted ([`Policy::DropNewest`]).
    /// Must hold one message of the largest size ([`max_message`](Self::max_message) plus a
    /// `PerdixMessage`), checked by [`validate`](Self::validate).
    pub max_held_bytes: Option<usize>,
    /// Where messages are taken out of the rings (default [`DrainMode::System`]).
    pub drain: DrainMode,
    /// Whether the drain system routes messages into ECS messages (default `true`). Turn it off
    /// when systems take every message themselves with [`PerdixRings::drain_with`].
    pub route: bool,
    /// Whether CPU producers stamp every message with the clock, for latency (default `true`;
    /// a clock read per message, see `docs/PERFORMANCE.md`).
    pub timestamps: bool,
    /// The CUDA devices GPU producers run on (default one: device 0). Each registered GPU
    /// producer, and the stress producers, get their own ring(s) on each device listed, and a
    /// registered kernel runs on each: with [`GpuDevices::All`](crate::cuda::GpuDevices::All)
    /// on an N-GPU host, a kernel's sequence arrives N times, once per device (one ring per
    /// device, told apart by [`PerdixRings::ring_device`]).
    #[cfg(feature = "cuda")]
    pub devices: crate::cuda::GpuDevices,
}

impl Default for PerdixPlugin {
    fn default() -> Self {
        Self {
            capacity: 16_384,
            memory: None,
            policy: Policy::Block,
            ring_mode: RingMode::Throughput,
            budget: 262_144,
            max_held_bytes: None,
            drain: DrainMode::System,
            route: true,
            timestamps: true,
            #[cfg(feature = "cuda")]
            devices: crate::cuda::GpuDevices::one(0),
        }
    }
}

impl PerdixPlugin {
    /// Slots in each ring.
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Memory of GPU producers' rings.
    #[must_use]
    pub fn memory(mut self, memory: Backend) -> Self {
        self.memory = Some(memory);
        self
    }

    /// Backpressure policy of the producers the plugin starts.
    #[must_use]
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// How the plugin's rings lay out messages (see [`ring_mode`](Self::ring_mode)).
    #[must_use]
    pub fn ring_mode(mut self, mode: RingMode) -> Self {
        self.ring_mode = mode;
        self
    }

    /// Most messages moved into ECS messages per frame (at least 1).
    #[must_use]
    pub fn budget(mut self, budget: usize) -> Self {
        self.budget = budget.max(1);
        self
    }

    /// Most bytes the plugin holds outside each ring ([`max_held_bytes`](Self::max_held_bytes)).
    ///
    /// # Examples
    ///
    /// ```
    /// use perdix_transport::bevy::PerdixPlugin;
    /// use perdix_transport::Error;
    ///
    /// // The default: 4 rings' worth (a 1024-slot ring is 256 KiB).
    /// assert_eq!(PerdixPlugin::default().capacity(1024).held_limit(), 1 << 20);
    /// let plugin = PerdixPlugin::default().capacity(1024).max_held_bytes(512 << 10);
    /// assert_eq!((plugin.held_limit(), plugin.validate()), (512 << 10, Ok(())));
    /// // Too small for one message of the rings' largest size (128 KiB here).
    /// let err = plugin.max_held_bytes(64 << 10).validate().unwrap_err();
    /// assert!(matches!(err, Error::InvalidConfig(_)));
    /// ```
    #[must_use]
    pub fn max_held_bytes(mut self, bytes: usize) -> Self {
        self.max_held_bytes = Some(bytes);
        self
    }

    /// The bytes the plugin may hold outside each ring:
    /// [`max_held_bytes`](Self::max_held_bytes), or by default 4 times a ring's bytes
    /// ([`capacity`](Self::capacity) × 256). Example at
    /// [`max_held_bytes()`](Self::max_held_bytes()).
    #[must_use]
    pub fn held_limit(&self) -> usize {
        config::max_held_bytes(self.capacity, self.max_held_bytes)
    }

    /// Where messages are taken out of the rings.
    #[must_use]
    pub fn drain(mut self, drain: DrainMode) -> Self {
        self.drain = drain;
        self
    }

    /// Whether the drain system routes messages into ECS messages.
    #[must_use]
    pub fn route(mut self, route: bool) -> Self {
        self.route = route;
        self
    }

    /// Whether CPU producers stamp messages for latency.
    #[must_use]
    pub fn timestamps(mut self, on: bool) -> Self {
        self.timestamps = on;
        self
    }

    /// The CUDA devices GPU producers run on (default [`GpuDevices::one(0)`]; ask for every
    /// device with [`GpuDevices::All`]). Each device listed runs every registered kernel, so
    /// each device's rings carry their own copy of its sequence (a per-device sequence: on N
    /// devices a kernel's messages arrive N times, once from each). They arrive in the same
    /// ECS messages; [`PerdixRings::ring_device`], [`PerdixMessage::ring`] and the
    /// `perdix/gpu<N>/*` diagnostics tell them apart.
    ///
    /// [`GpuDevices::one(0)`]: crate::cuda::GpuDevices::one
    /// [`GpuDevices::All`]: crate::cuda::GpuDevices::All
    ///
    /// # Examples
    ///
    /// ```
    /// use perdix_transport::bevy::PerdixPlugin;
    /// use perdix_transport::cuda::GpuDevices;
    ///
    /// assert_eq!(PerdixPlugin::default().devices, GpuDevices::one(0));
    /// let plugin = PerdixPlugin::default().devices(GpuDevices::All);
    /// assert_eq!(plugin.devices.to_string(), "all");
    /// ```
    #[cfg(feature = "cuda")]
    #[must_use]
    pub fn devices(mut self, devices: crate::cuda::GpuDevices) -> Self {
        self.devices = devices;
        self
    }

    /// The largest message (payload bytes) the plugin's rings carry:
    /// [`max_message`](crate::layout::max_message) of [`capacity`](Self::capacity) (half the
    /// ring, less a header). A typed route whose type is larger is reported as
    /// [`PerdixEvent::RouteTooLarge`].
    ///
    /// # Examples
    ///
    /// ```
    /// use perdix_transport::bevy::PerdixPlugin;
    ///
    /// assert_eq!(PerdixPlugin::default().capacity(2).max_message(), 224);
    /// assert_eq!(PerdixPlugin::default().capacity(4096).max_message(), 524_256);
    /// ```
    #[must_use]
    pub fn max_message(&self) -> usize {
        crate::layout::max_message(self.capacity)
    }

    /// Checks the settings before anything runs: what [`build`](Plugin::build) calls.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCapacity`] for a capacity that is not a power of two from 2 to 2^31;
    /// [`Error::InvalidConfig`] for a budget of 0, a
    /// [`max_held_bytes`](Self::max_held_bytes) that cannot hold one message of the largest
    /// size, ring memory that GPU producers cannot write ([`Backend::Host`]), or (with the
    /// `cuda` feature) an empty device list, or CUDA ring memory with a capacity below
    /// `cuda::MIN_CAPACITY` (GPU rings asked for that no GPU ring can be; without
    /// [`memory`](Self::memory) such a capacity is valid: producers run on the CPU).
    ///
    /// # Examples
    ///
    /// ```
    /// use perdix_transport::bevy::PerdixPlugin;
    /// use perdix_transport::{Backend, Error};
    ///
    /// assert_eq!(PerdixPlugin::default().validate(), Ok(()));
    /// assert_eq!(
    ///     PerdixPlugin::default().capacity(1000).validate(),
    ///     Err(Error::InvalidCapacity(1000))
    /// );
    /// let err = PerdixPlugin::default().memory(Backend::Host).validate().unwrap_err();
    /// assert!(matches!(err, Error::InvalidConfig(_)));
    /// # #[cfg(feature = "cuda")] {
    /// // GPU rings of 16 slots: never; CPU rings of 16 slots: fine.
    /// let gpu_16 = PerdixPlugin::default().capacity(16).memory(Backend::CudaPinned);
    /// assert!(matches!(gpu_16.validate(), Err(Error::InvalidConfig(_))));
    /// assert_eq!(PerdixPlugin::default().capacity(16).validate(), Ok(()));
    /// # }
    /// ```
    pub fn validate(&self) -> Result<(), Error> {
        if self.capacity < 2 || !self.capacity.is_power_of_two() || self.capacity > MAX_CAPACITY {
            return Err(Error::InvalidCapacity(self.capacity));
        }
        if self.budget == 0 {
            return Err(Error::InvalidConfig(
                "a drain budget of 0 messages a frame would never deliver".into(),
            ));
        }
        drain::check_max_held(self.capacity, self.held_limit())?;
        if self.memory == Some(Backend::Host) {
            return Err(Error::InvalidConfig(
                "GPU producers cannot write host memory: choose cuda-pinned or cuda-managed".into(),
            ));
        }
        #[cfg(feature = "cuda")]
        if matches!(&self.devices, crate::cuda::GpuDevices::List(list) if list.is_empty()) {
            return Err(Error::InvalidConfig("an empty list of CUDA devices".into()));
        }
        #[cfg(feature = "cuda")]
        if self.memory.is_some() {
            super::backend::gpu_capacity(self.capacity)?;
        }
        Ok(())
    }

    fn config(&self) -> RingConfig {
        RingConfig {
            capacity: self.capacity,
            memory: self.memory,
            policy: self.policy,
            mode: self.ring_mode,
            budget: self.budget.max(1),
            max_held_bytes: self.held_limit() as u64,
            drain: self.drain,
            route: self.route,
            timestamps: self.timestamps,
            #[cfg(feature = "cuda")]
            devices: self.devices.clone(),
        }
    }
}

impl Plugin for PerdixPlugin {
    /// # Panics
    ///
    /// With the error's text, when [`validate`](PerdixPlugin::validate) refuses the settings
    /// (a bad plugin configuration fails the app at start-up, as Bevy's own plugins do).
    fn build(&self, app: &mut App) {
        if let Err(err) = self.validate() {
            panic!("PerdixPlugin: {err}");
        }
        let config = self.config();
        // Drain threads stage registered kinds themselves, by the routes' shared table.
        let routes = config
            .route
            .then(|| app.world_mut().get_resource_or_init::<Routes>().share());
        app.insert_resource(PerdixRings::new(config, routes));
        // Typed routes registered before the plugin, against its rings' largest message.
        limits::check_pending(app.world_mut());
        app.init_resource::<Routes>()
            .init_resource::<ProducerRegistry>()
            .add_message::<PerdixMessage>()
            .add_message::<PerdixEvent>()
            .configure_sets(
                PreUpdate,
                (PerdixSystems::Launch, PerdixSystems::Drain).chain(),
            )
            .add_systems(Startup, producers::start_producers)
            .add_systems(
                PreUpdate,
                (
                    producers::launch_producers.in_set(PerdixSystems::Launch),
                    route::route_messages
                        .in_set(PerdixSystems::Drain)
                        .run_if(route::routing_on),
                    route::write_events
                        .in_set(PerdixSystems::Drain)
                        .after(route::route_messages),
                ),
            )
            .add_systems(
                Last,
                (
                    frame::close_frame,
                    diagnostics::register_devices,
                    diagnostics::measure,
                )
                    .chain(),
            );
        diagnostics::register(app);
    }
}

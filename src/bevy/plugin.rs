//! `PerdixPlugin`: configuration, system sets, and the `App` extension trait.
#![forbid(unsafe_code)]

use bevy_app::{App, Last, Plugin, PreUpdate, Startup};
use bevy_ecs::message::Message;
use bevy_ecs::schedule::{IntoScheduleConfigs, SystemSet};
use bevy_ecs::system::Res;

use super::diagnostics;
use super::drain::{PerdixRing, RingConfig};
use super::envelope::Envelope;
use super::event::{self, PerdixEvent};
use super::message::PerdixMessage;
use super::producers::{self, ProducerRegistry};
use super::route::{self, Routes};
use super::spec::GpuProducerSpec;
use crate::layout::PAYLOAD_MAX;
use crate::MAX_CAPACITY;
use crate::{Backend, Error, Policy};

/// Where ready messages are taken out of the rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DrainMode {
    /// The drain system reads the rings itself, once a frame: nothing runs between frames, so a
    /// producer that fills its ring waits for the next frame.
    #[default]
    System,
    /// One consumer thread per ring keeps the ring empty between frames and stages what it
    /// takes by kind (registered types decoded on that thread), so producers are not held to
    /// the frame rate and the frame only writes staged batches into `Messages<T>`. Costs a
    /// thread per ring; the faster mode for busy GPU producers on a host with cores to spare
    /// (docs/PERFORMANCE.md: 50 M msgs/s into ECS on an H200 host, against 38 M in the frame).
    /// The budget is taken in whole batches of at most `min(4096, budget)` messages.
    Thread,
}

impl core::str::FromStr for DrainMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "system" => Ok(Self::System),
            "thread" => Ok(Self::Thread),
            other => Err(format!(
                "unknown drain mode {other:?}: expected system or thread"
            )),
        }
    }
}

impl core::fmt::Display for DrainMode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::System => "system",
            Self::Thread => "thread",
        })
    }
}

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
/// `build()` only registers: the [`PerdixRing`] resource (one ring per producer, created when
/// a producer is added), the [`PerdixSystems`] sets, the launch, drain and diagnostics systems,
/// and the raw [`PerdixMessage`]. Add
/// [`DiagnosticsPlugin`](bevy_diagnostic::DiagnosticsPlugin) to collect the diagnostics, and
/// [`LogDiagnosticsPlugin`](bevy_diagnostic::LogDiagnosticsPlugin) with bevy_time's
/// `TimePlugin` to print them.
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
    /// Default 16,384 (4 MiB per ring).
    pub capacity: usize,
    /// Memory of GPU producers' rings; `None` (default) lets the CUDA backend pick. CPU
    /// producers always use [`Backend::Host`].
    pub memory: Option<Backend>,
    /// Backpressure policy of producers the plugin starts (default [`Policy::Block`]).
    pub policy: Policy,
    /// Most messages the drain moves into ECS messages per frame, over all rings (default
    /// 262,144). What is left stays in the rings and is counted as deferred.
    pub budget: usize,
    /// Where messages are taken out of the rings (default [`DrainMode::System`]).
    pub drain: DrainMode,
    /// Whether the drain system routes messages into ECS messages (default `true`). Turn it off
    /// when systems take every message themselves with [`PerdixRing::drain_with`].
    pub route: bool,
    /// Whether CPU producers stamp every message with the clock, for latency (default `true`;
    /// a clock read costs ~20 ns a message).
    pub timestamps: bool,
    /// The CUDA devices GPU producers run on (default every device): each registered GPU
    /// producer, and the stress producers, get their own ring(s) on each.
    #[cfg(feature = "cuda")]
    pub devices: crate::cuda::GpuDevices,
}

impl Default for PerdixPlugin {
    fn default() -> Self {
        Self {
            capacity: 16_384,
            memory: None,
            policy: Policy::Block,
            budget: 262_144,
            drain: DrainMode::System,
            route: true,
            timestamps: true,
            #[cfg(feature = "cuda")]
            devices: crate::cuda::GpuDevices::All,
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

    /// Most messages moved into ECS messages per frame (at least 1).
    #[must_use]
    pub fn budget(mut self, budget: usize) -> Self {
        self.budget = budget.max(1);
        self
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

    /// The CUDA devices GPU producers run on (default all). Messages from every device arrive
    /// in the same ECS messages; [`PerdixRing::ring_device`] and the `perdix/gpu<N>/*`
    /// diagnostics tell them apart.
    ///
    /// # Examples
    ///
    /// ```
    /// use perdix_transport::bevy::PerdixPlugin;
    /// use perdix_transport::cuda::GpuDevices;
    ///
    /// let plugin = PerdixPlugin::default().devices(GpuDevices::List(vec![0, 1]));
    /// assert_eq!(plugin.devices.to_string(), "0,1");
    /// ```
    #[cfg(feature = "cuda")]
    #[must_use]
    pub fn devices(mut self, devices: crate::cuda::GpuDevices) -> Self {
        self.devices = devices;
        self
    }

    /// Checks the settings before anything runs: what [`build`](Plugin::build) calls.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCapacity`] for a capacity that is not a power of two from 2 to 2^31;
    /// [`Error::InvalidConfig`] for a budget of 0, ring memory that GPU producers cannot write
    /// ([`Backend::Host`]), or (with the `cuda` feature) an empty device list.
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
        if self.memory == Some(Backend::Host) {
            return Err(Error::InvalidConfig(
                "GPU producers cannot write host memory: choose cuda-pinned or cuda-managed".into(),
            ));
        }
        #[cfg(feature = "cuda")]
        if matches!(&self.devices, crate::cuda::GpuDevices::List(list) if list.is_empty()) {
            return Err(Error::InvalidConfig("an empty list of CUDA devices".into()));
        }
        Ok(())
    }

    fn config(&self) -> RingConfig {
        RingConfig {
            capacity: self.capacity,
            memory: self.memory,
            policy: self.policy,
            budget: self.budget.max(1),
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
        app.insert_resource(PerdixRing::new(config, routes))
            .init_resource::<Routes>()
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
                        .run_if(routing_on),
                    event::write_events
                        .in_set(PerdixSystems::Drain)
                        .after(route::route_messages),
                ),
            )
            .add_systems(
                Last,
                (diagnostics::register_devices, diagnostics::measure).chain(),
            );
        diagnostics::register(app);
    }
}

fn routing_on(ring: Option<Res<PerdixRing>>) -> bool {
    ring.is_some_and(|ring| ring.config().route)
}

/// Registers perdix message types and producers on an [`App`].
pub trait PerdixAppExt {
    /// Routes messages of `kind` into [`Messages<T>`](bevy_ecs::message::Messages) (and adds
    /// that message type). A message of `kind` whose length is not `size_of::<T>()` is counted
    /// as malformed and dropped.
    ///
    /// A type larger than a slot's payload (224 bytes) does not compile:
    ///
    /// ```compile_fail,E0080
    /// use bevy_app::App;
    /// use bevy_ecs::message::Message;
    /// use perdix_transport::bevy::{PerdixAppExt, PerdixPlugin};
    ///
    /// #[derive(Message, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    /// #[repr(C)]
    /// struct TooBig {
    ///     words: [u64; 28], // 224 bytes: fits alone
    ///     more: [u32; 2],   // 232 bytes in all: does not
    /// }
    ///
    /// App::new().add_plugins(PerdixPlugin::default()).add_perdix_message::<TooBig>(1);
    /// ```
    ///
    /// # Panics
    ///
    /// If `kind` is already routed to another type (an app misconfiguration).
    ///
    /// # Examples
    ///
    /// ```
    /// use bevy_app::App;
    /// use bevy_ecs::message::Message;
    /// use perdix_transport::bevy::{PerdixAppExt, PerdixPlugin};
    ///
    /// #[derive(Message, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    /// #[repr(C)]
    /// struct Fits([u64; 28]); // 224 bytes
    ///
    /// App::new().add_plugins(PerdixPlugin::default()).add_perdix_message::<Fits>(1);
    /// ```
    fn add_perdix_message<T: Message + bytemuck::Pod>(&mut self, kind: u32) -> &mut Self;

    /// Routes messages of `kind` into [`Messages<Envelope<T>>`](bevy_ecs::message::Messages):
    /// the payload read as `T` together with its producer, ring, position and stamp (see
    /// [`Envelope`]). Lengths are checked as for
    /// [`add_perdix_message`](Self::add_perdix_message), and a type larger than 224 bytes does
    /// not compile either.
    ///
    /// # Panics
    ///
    /// If `kind` is already routed to another type.
    ///
    /// # Examples
    ///
    /// ```
    /// use bevy_app::App;
    /// use perdix_transport::bevy::{PerdixAppExt, PerdixPlugin};
    ///
    /// App::new().add_plugins(PerdixPlugin::default()).add_perdix_envelope::<[u64; 4]>(3);
    /// ```
    fn add_perdix_envelope<T>(&mut self, kind: u32) -> &mut Self
    where
        T: bytemuck::Pod + Send + Sync;

    /// Routes messages of `kind` into the raw [`PerdixMessage`] without counting them as
    /// unrouted (for variable-length payloads).
    ///
    /// # Panics
    ///
    /// If `kind` is already routed to a type.
    ///
    /// # Examples
    ///
    /// ```
    /// use bevy_app::App;
    /// use perdix_transport::bevy::{PerdixAppExt, PerdixPlugin};
    ///
    /// App::new().add_plugins(PerdixPlugin::default()).add_perdix_raw(9);
    /// ```
    fn add_perdix_raw(&mut self, kind: u32) -> &mut Self;

    /// Registers a GPU producer: its kernel is launched every frame on a stream, asynchronously,
    /// with arguments read from the world. Without a CUDA device (or without the `cuda` feature)
    /// its CPU fallback runs instead, on a worker thread, once per frame.
    ///
    /// Each producer gets its own ring. Producers start at [`Startup`].
    ///
    /// # Examples
    ///
    /// ```
    /// use bevy_app::App;
    /// use perdix_transport::bevy::{GpuProducerSpec, PerdixAppExt, PerdixPlugin};
    ///
    /// const TICK_CU: &str = "extern \"C\" __global__ void tick(const perdix_producer* p, unsigned frame) {}";
    /// // SAFETY: `tick` takes the producer pointer, then one `unsigned` (`A = u32`), and
    /// // touches no memory at all.
    /// let spec = unsafe { GpuProducerSpec::new("ticks", TICK_CU, "tick") }
    ///     .args(|_world| 0u32)
    ///     .cpu_fallback(|frame: &u32, emit| {
    ///         let _ = emit.emit(7, frame);
    ///     });
    /// App::new().add_plugins(PerdixPlugin::default()).add_gpu_producer(spec);
    /// ```
    fn add_gpu_producer<A>(&mut self, spec: GpuProducerSpec<A>) -> &mut Self
    where
        A: bytemuck::Pod + Send + Sync;
}

impl PerdixAppExt for App {
    fn add_perdix_message<T: Message + bytemuck::Pod>(&mut self, kind: u32) -> &mut Self {
        const {
            assert!(
                core::mem::size_of::<T>() <= PAYLOAD_MAX,
                "a perdix message type must fit a slot's 224-byte payload"
            );
        }
        self.add_message::<T>();
        self.world_mut()
            .get_resource_or_init::<Routes>()
            .register_typed::<T>(kind);
        self
    }

    fn add_perdix_envelope<T>(&mut self, kind: u32) -> &mut Self
    where
        T: bytemuck::Pod + Send + Sync,
    {
        const {
            assert!(
                core::mem::size_of::<T>() <= PAYLOAD_MAX,
                "a perdix message type must fit a slot's 224-byte payload"
            );
        }
        self.add_message::<Envelope<T>>();
        self.world_mut()
            .get_resource_or_init::<Routes>()
            .register_envelope::<T>(kind);
        self
    }

    fn add_perdix_raw(&mut self, kind: u32) -> &mut Self {
        self.add_message::<PerdixMessage>();
        self.world_mut()
            .get_resource_or_init::<Routes>()
            .register_raw(kind);
        self
    }

    fn add_gpu_producer<A>(&mut self, spec: GpuProducerSpec<A>) -> &mut Self
    where
        A: bytemuck::Pod + Send + Sync,
    {
        self.world_mut()
            .get_resource_or_init::<ProducerRegistry>()
            .register(spec);
        self
    }
}

//! Producers the plugin runs: registered GPU kernels (or their CPU fallbacks) and stress
//! producers, and the one-time choice of backend.
#![deny(unsafe_code)]

use std::ops::Range;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use bevy_ecs::resource::Resource;
use bevy_ecs::world::{Mut, World};

use super::drain::PerdixRing;
use super::event::{spawn_error, PerdixEvent};
use super::spec::{ArgsFn, FallbackFn, GpuProducerSpec};
use crate::{Error, Producer};

pub(crate) use gpu::Device;

/// Frames of launches a CPU fallback may fall behind before launches are skipped (a GPU
/// stream's queue, in small).
const FALLBACK_QUEUE: usize = 2;

/// Where the plugin's producers run, chosen once per app and logged (`info!` for the GPU,
/// `warn!` for the CPU fallback).
///
/// # Examples
///
/// ```
/// use perdix_transport::bevy::ProducerBackend;
///
/// let cpu = ProducerBackend::Cpu { reason: "built without the `cuda` feature".into() };
/// assert_eq!(cpu.name(), "cpu");
/// assert_eq!(cpu.to_string(), "cpu (built without the `cuda` feature)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProducerBackend {
    /// CUDA kernels on this device.
    Gpu {
        /// The device's name.
        device: String,
    },
    /// CPU threads running the registered fallbacks.
    Cpu {
        /// Why not the GPU.
        reason: String,
    },
}

impl ProducerBackend {
    /// `"gpu"` or `"cpu"`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Gpu { .. } => "gpu",
            Self::Cpu { .. } => "cpu",
        }
    }

    /// Whether producers run on the GPU.
    #[must_use]
    pub fn is_gpu(&self) -> bool {
        matches!(self, Self::Gpu { .. })
    }

    /// Decides, once, and logs the choice; the opened devices (empty for the CPU) and, for
    /// the CPU, why there is no GPU.
    pub(crate) fn detect(ring: &PerdixRing) -> (Self, Vec<gpu::Device>, Option<Error>) {
        let (backend, devices, why) = match gpu::probe(ring) {
            Ok((name, devices)) => (Self::Gpu { device: name }, devices, None),
            Err(err) => (
                Self::Cpu {
                    reason: err.to_string(),
                },
                Vec::new(),
                Some(err),
            ),
        };
        match &backend {
            Self::Gpu { device } => tracing::info!(%device, "perdix: producers run on the GPU"),
            Self::Cpu { reason } => {
                tracing::warn!(%reason, "perdix: no GPU producers; running CPU fallback producers");
            }
        }
        (backend, devices, why)
    }
}

impl core::fmt::Display for ProducerBackend {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Gpu { device } => write!(f, "gpu ({device})"),
            Self::Cpu { reason } => write!(f, "cpu ({reason})"),
        }
    }
}

/// Writes messages into a fallback producer's ring, as the GPU kernel's `perdix_emit` would.
///
/// # Examples
///
/// ```
/// use perdix_transport::bevy::Emitter;
/// use perdix_transport::{Buffer, Error};
///
/// let (producer, mut consumer) = Buffer::new(2)?.into_split();
/// let mut emit = Emitter::new(producer);
/// emit.emit(5, &[1u32, 2])?;
/// emit.emit_bytes(6, b"raw")?;
/// assert_eq!(emit.emit_bytes(6, &[0; 300]), Err(Error::MessageTooLarge { len: 300, max: 224 }));
/// assert_eq!(consumer.try_consume().unwrap().kind(), 5);
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug)]
pub struct Emitter {
    producer: Producer,
    frame: u64,
}

impl Emitter {
    /// An emitter over `producer` (its policy decides what a full ring does).
    #[must_use]
    pub fn new(producer: Producer) -> Self {
        Self { producer, frame: 0 }
    }

    /// Sends `value`'s bytes as a message of `kind`: waits for room under
    /// [`Policy::Block`](crate::Policy::Block), counts a drop under
    /// [`Policy::DropNewest`](crate::Policy::DropNewest).
    ///
    /// # Errors
    ///
    /// As [`Producer::produce`]: [`Error::Disconnected`], [`Error::MessageTooLarge`], and
    /// [`Error::Full`] for a dropped message.
    pub fn emit<T: bytemuck::NoUninit>(&mut self, kind: u32, value: &T) -> Result<(), Error> {
        self.producer.produce_kind(kind, bytemuck::bytes_of(value))
    }

    /// Sends `bytes` as a message of `kind`.
    ///
    /// # Errors
    ///
    /// As [`emit`](Self::emit).
    pub fn emit_bytes(&mut self, kind: u32, bytes: &[u8]) -> Result<(), Error> {
        self.producer.produce_kind(kind, bytes)
    }

    /// Frames launched so far (0 in the first frame's launch).
    #[must_use]
    pub fn frame(&self) -> u64 {
        self.frame
    }

    /// The producer itself, for in-place writes.
    pub fn producer(&mut self) -> &mut Producer {
        &mut self.producer
    }
}

/// A registered producer, not started yet.
trait Registered: Send {
    /// The producer's name.
    fn name(&self) -> &str;
    /// Starts it on `backend` (its CPU fallback when the GPU cannot).
    fn start(
        self: Box<Self>,
        ring: &mut PerdixRing,
        backend: &ProducerBackend,
    ) -> Result<Box<dyn Running>, Error>;
}

/// A started producer: launched once a frame.
trait Running: Send + Sync {
    /// The producer's name.
    fn name(&self) -> &str;
    /// The indices of the rings it writes, failed with it when it stops on an error.
    fn rings(&self) -> Range<usize>;
    /// One launch; an error once, when the producer stops for good (it is not launched again).
    fn launch(&mut self, world: &World) -> Result<(), Error>;
}

impl<A: bytemuck::Pod + Send + Sync> Registered for GpuProducerSpec<A> {
    fn name(&self) -> &str {
        &self.name
    }

    /// Without a fallback, the GPU's error (or why there is no GPU) is the producer's.
    fn start(
        self: Box<Self>,
        ring: &mut PerdixRing,
        backend: &ProducerBackend,
    ) -> Result<Box<dyn Running>, Error> {
        let mut spec = *self;
        let gpu_error = if backend.is_gpu() {
            match gpu::start(&mut spec, ring) {
                Ok(running) => return Ok(running),
                Err(err) => err,
            }
        } else {
            ring.no_gpu_error()
        };
        let Some(fallback) = spec.fallback.take() else {
            return Err(gpu_error);
        };
        if backend.is_gpu() {
            tracing::warn!(
                producer = %spec.name,
                err = %gpu_error,
                "perdix: GPU producer failed to start; using its CPU fallback"
            );
        }
        let running = Fallback::start(&spec.name, fallback, spec.args.take(), ring)?;
        Ok(Box::new(running))
    }
}

/// A CPU fallback on its worker thread, fed one launch (the frame's arguments) a frame.
struct Fallback<A> {
    name: String,
    args: Option<ArgsFn<A>>,
    launches: SyncSender<A>,
    skipped: u64,
    /// Never joined: the thread ends when the launches stop (this is dropped) or its ring's
    /// consumer is gone.
    _thread: JoinHandle<()>,
}

impl<A: bytemuck::Pod + Send + Sync> Fallback<A> {
    fn start(
        name: &str,
        mut fallback: FallbackFn<A>,
        args: Option<ArgsFn<A>>,
        ring: &mut PerdixRing,
    ) -> Result<Self, Error> {
        let producer = ring.add_producer(name)?;
        let (launches, frames) = mpsc::sync_channel::<A>(FALLBACK_QUEUE);
        let thread = thread::Builder::new()
            .name(format!("perdix-cpu-{name}"))
            .spawn(move || {
                let mut emitter = Emitter::new(producer);
                for args in frames {
                    fallback(&args, &mut emitter);
                    emitter.frame += 1;
                    if emitter.producer.is_abandoned() {
                        break;
                    }
                }
            })
            .map_err(|err| spawn_error(&err))?;
        Ok(Self {
            name: name.to_owned(),
            args,
            launches,
            skipped: 0,
            _thread: thread,
        })
    }
}

impl<A: bytemuck::Pod + Send + Sync> Running for Fallback<A> {
    fn name(&self) -> &str {
        &self.name
    }

    /// None: a fallback never fails as a producer (its ring reports its own faults).
    fn rings(&self) -> Range<usize> {
        0..0
    }

    /// Never fails: the fallback's ring reports its own faults.
    fn launch(&mut self, world: &World) -> Result<(), Error> {
        let args = self
            .args
            .as_ref()
            .map_or_else(A::zeroed, |args| args(world));
        match self.launches.try_send(args) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.skipped += 1;
                if self.skipped == 1 {
                    tracing::warn!(
                        producer = %self.name,
                        "perdix: CPU fallback is {FALLBACK_QUEUE} frames behind; skipping launches"
                    );
                }
            }
        }
        Ok(())
    }
}

/// Registered and started producers, and the backend they run on.
#[derive(Resource, Default)]
pub(crate) struct ProducerRegistry {
    /// Registered, started at `Startup` (a `Mutex` only to make the resource `Sync`).
    pending: Mutex<Vec<Box<dyn Registered>>>,
    running: Vec<Box<dyn Running>>,
}

impl core::fmt::Debug for ProducerRegistry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ProducerRegistry")
            .field("running", &self.running.len())
            .finish_non_exhaustive()
    }
}

impl ProducerRegistry {
    pub(crate) fn register<A: bytemuck::Pod + Send + Sync>(&mut self, spec: GpuProducerSpec<A>) {
        self.pending
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(spec));
    }
}

/// `Startup`: chooses the backend (once, logged) and starts every registered producer.
pub(crate) fn start_producers(world: &mut World) {
    world.try_resource_scope(|world, mut registry: Mut<ProducerRegistry>| {
        let pending = core::mem::take(
            registry
                .pending
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if pending.is_empty() {
            return;
        }
        let Some(mut ring) = world.get_resource_mut::<PerdixRing>() else {
            return;
        };
        let backend = ring.producer_backend();
        for spec in pending {
            let name = spec.name().to_owned();
            match spec.start(&mut ring, &backend) {
                Ok(running) => registry.running.push(running),
                Err(error) => ring
                    .faults_mut()
                    .report(PerdixEvent::ProducerFailed { name, error }),
            }
        }
    });
}

/// [`PerdixSystems::Launch`](super::PerdixSystems::Launch): one asynchronous launch per
/// producer.
pub(crate) fn launch_producers(world: &mut World) {
    world.try_resource_scope(|world, mut registry: Mut<ProducerRegistry>| {
        for producer in &mut registry.running {
            if let Err(error) = producer.launch(world) {
                let name = producer.name().to_owned();
                if let Some(mut ring) = world.get_resource_mut::<PerdixRing>() {
                    // Its rings fail with it, once what it published before is drained.
                    ring.fail_rings(producer.rings(), &error);
                    ring.faults_mut()
                        .report(PerdixEvent::ProducerFailed { name, error });
                }
            }
        }
    });
}

impl PerdixRing {
    /// Where this app's producers run: decided (and logged) on first use.
    pub fn producer_backend(&mut self) -> ProducerBackend {
        if let Some(backend) = self.backend_choice() {
            return backend.clone();
        }
        let (backend, devices, why) = ProducerBackend::detect(self);
        self.set_backend_choice(backend.clone(), devices, why);
        backend
    }
}

/// The GPU side: present with the `cuda` feature, answering "no device" without it.
#[cfg(not(feature = "cuda"))]
mod gpu {
    use super::{GpuProducerSpec, PerdixRing, Running};
    use crate::Error;

    /// No device type without the `cuda` feature.
    pub(crate) type Device = ();

    pub(super) fn probe(_ring: &PerdixRing) -> Result<(String, Vec<Device>), Error> {
        Err(Error::NoDevice("built without the `cuda` feature"))
    }

    pub(super) fn start<A>(
        _spec: &mut GpuProducerSpec<A>,
        _ring: &mut PerdixRing,
    ) -> Result<Box<dyn Running>, Error> {
        Err(Error::NoDevice("built without the `cuda` feature"))
    }
}

// The kernel of a `GpuProducerSpec` is built with the `unsafe` `GpuKernel::from_source`, under
// the contract `GpuProducerSpec::new`'s caller accepted.
#[cfg(feature = "cuda")]
#[allow(unsafe_code)]
pub(crate) mod gpu {
    use bevy_ecs::world::World;
    use std::ops::Range;

    use super::{ArgsFn, GpuProducerSpec, PerdixRing, Running};
    use crate::cuda::{GpuContext, GpuKernel, GpuMemory, GpuProducerSet};
    use crate::{Backend, Error};

    /// Clock calibration rounds before a producer with timestamps starts.
    const CLOCK_ROUNDS: u32 = 100;

    /// The opened device, kept by the [`PerdixRing`] once the backend is chosen.
    pub(crate) type Device = GpuContext;

    /// Opens the plugin's devices; names them for the log (`NAME (sm_XY)`, with the ordinals
    /// when there is more than one).
    pub(super) fn probe(ring: &PerdixRing) -> Result<(String, Vec<Device>), Error> {
        let gpus = ring.config().devices.open()?;
        let first = gpus
            .first()
            .ok_or_else(|| Error::InvalidConfig("an empty list of CUDA devices".into()))?;
        let (major, minor) = first.compute_capability();
        let mut name = format!("{} (sm_{major}{minor})", first.name());
        if gpus.len() > 1 {
            let ordinals: Vec<String> = gpus.iter().map(|g| g.ordinal().to_string()).collect();
            name = format!("{} x {name}, devices {}", gpus.len(), ordinals.join(","));
        }
        Ok((name, gpus))
    }

    fn memory(choice: Option<Backend>) -> GpuMemory {
        match choice {
            Some(Backend::CudaManaged) => GpuMemory::Managed,
            _ => GpuMemory::default(),
        }
    }

    /// A producer of `rings` rings on each of the ring's devices, with the plugin's settings;
    /// its consumers are added to `ring` as `name-<idx>` (one device) or `name-gpu<N>-<idx>`.
    pub(crate) fn producer(
        ring: &mut PerdixRing,
        name: &str,
        rings: usize,
    ) -> Result<GpuProducerSet, Error> {
        let config = ring.config().clone();
        let (mut set, consumers) = GpuProducerSet::build_on(ring.devices(), |builder| {
            builder
                .capacity(config.capacity)
                .rings(rings)
                .memory(memory(config.memory))
                .policy(config.policy)
                .timestamps(config.timestamps)
        })?;
        if config.timestamps {
            for producer in set.producers_mut() {
                producer.calibrate_clock(CLOCK_ROUNDS)?;
            }
        }
        let several = consumers.len() > 1;
        for (entry, device_rings) in consumers.into_iter().enumerate() {
            for (idx, consumer) in device_rings.into_iter().enumerate() {
                let ring_name = if several {
                    let device = consumer.device().unwrap_or(0);
                    format!("{name}-gpu{device}.{entry}-{idx}")
                } else {
                    format!("{name}-{idx}")
                };
                ring.add_consumer(&ring_name, consumer);
            }
        }
        Ok(set)
    }

    /// The first of the ring's devices (every device of a choice has the same kernels).
    pub(crate) fn first_device(ring: &PerdixRing) -> Result<GpuContext, Error> {
        ring.devices()
            .first()
            .cloned()
            .ok_or(Error::NoDevice("no CUDA device was opened"))
    }

    pub(super) fn start<A: bytemuck::Pod + Send + Sync>(
        spec: &mut GpuProducerSpec<A>,
        ring: &mut PerdixRing,
    ) -> Result<Box<dyn Running>, Error> {
        let words = core::mem::size_of::<A>() / 4;
        // SAFETY: GpuProducerSpec::new's contract (the spec's source was given under it)
        let mut kernel = unsafe { GpuKernel::from_source(spec.source.clone(), spec.entry.clone()) }
            .name(format!("{}.cu", spec.name))
            .grid(spec.grid)
            .block(spec.block);
        for _ in 0..words {
            kernel = kernel.arg(0u32);
        }
        // Compile before any ring exists, so a compile error leaves nothing behind.
        let gpu = first_device(ring)?;
        kernel.compile(&gpu.arch())?;
        let first = ring.rings();
        let producer = producer(ring, &spec.name, 1)?;
        let rings = first..ring.rings();
        producer.prepare(&kernel)?;
        tracing::info!(producer = %spec.name, "perdix: GPU producer started");
        Ok(Box::new(Launcher {
            name: spec.name.clone(),
            rings,
            producer,
            kernel,
            args: spec.args.take(),
            skipped: 0,
            failed: false,
        }))
    }

    /// A GPU producer launched once a frame, never more than one launch in flight.
    struct Launcher<A> {
        name: String,
        /// Its rings' indices in the resource.
        rings: Range<usize>,
        producer: GpuProducerSet,
        kernel: GpuKernel,
        args: Option<ArgsFn<A>>,
        skipped: u64,
        failed: bool,
    }

    impl<A: bytemuck::Pod + Send + Sync> Running for Launcher<A> {
        fn name(&self) -> &str {
            &self.name
        }

        fn rings(&self) -> Range<usize> {
            self.rings.clone()
        }

        fn launch(&mut self, world: &World) -> Result<(), Error> {
            if self.failed {
                return Ok(());
            }
            // A stream query, not a sync: a kernel still running (e.g. waiting for room)
            // skips this frame's launch instead of queueing launches without bound.
            match self.producer.is_idle() {
                Ok(true) => {}
                Ok(false) => {
                    self.skipped += 1;
                    return Ok(());
                }
                Err(err) => return self.fail(err),
            }
            let args = self
                .args
                .as_ref()
                .map_or_else(A::zeroed, |args| args(world));
            let bytes = bytemuck::bytes_of(&args);
            for (idx, word) in bytes.chunks_exact(4).enumerate() {
                let mut raw = [0u8; 4];
                raw.copy_from_slice(word);
                self.kernel.set_arg(idx, u32::from_ne_bytes(raw));
            }
            self.producer
                .launch(&self.kernel)
                .or_else(|err| self.fail(err))
        }
    }

    impl<A> Launcher<A> {
        /// The producer stopped (its launch failed, or its kernel faulted): never launched
        /// again; `err` goes to the app as a `PerdixEvent::ProducerFailed` (and its rings
        /// report the fault once drained to it).
        fn fail(&mut self, err: Error) -> Result<(), Error> {
            self.failed = true;
            Err(err)
        }
    }
}

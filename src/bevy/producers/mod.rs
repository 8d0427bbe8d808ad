//! Producers the plugin runs: registered GPU kernels ([`GpuProducerSpec`], started on the GPU,
//! or as their CPU fallbacks with an [`Emitter`]), started at `Startup` and launched at most once
//! a frame.
//!
//! This file holds the registry (a resource) and its two systems; `spec.rs` is what a user
//! registers, `running.rs` what a started producer is, `gpu.rs` (with `cuda`) and
//! `fallback.rs` the two ways one runs, `launch.rs` the rule both follow for `args` (once for
//! each launch that runs, with its number), `emitter.rs` what a fallback writes with.
// Two files declare or call `unsafe` items (`spec.rs`: `GpuProducerSpec::new` and
// `GpuProducerSpec::args`; `gpu.rs`: the kernel built and launched under their contracts) and
// allow exactly those; the others forbid it.
#![deny(unsafe_code)]

mod emitter;
#[cfg(feature = "cuda")]
mod external;
mod fallback;
#[cfg(feature = "cuda")]
pub(crate) mod gpu;
mod launch;
mod running;
mod spec;

use std::sync::{Mutex, PoisonError};

use bevy_ecs::resource::Resource;
use bevy_ecs::world::{Mut, World};

pub use emitter::Emitter;
#[cfg(feature = "cuda")]
pub use external::ExternalGpuProducer;
use fallback::Fallback;
use running::Running;
pub use spec::GpuProducerSpec;

use super::backend::ProducerBackend;
use super::event::PerdixEvent;
use super::rings::PerdixRings;
use crate::Error;

/// A registered producer, not started yet.
trait Registered: Send {
    /// The producer's name.
    fn name(&self) -> &str;
    /// Starts it on `backend` (its CPU fallback when the GPU cannot).
    fn start(
        self: Box<Self>,
        rings: &mut PerdixRings,
        backend: &ProducerBackend,
    ) -> Result<Started, Error>;
}

/// A producer started, where it runs, and why not on the GPU the plugin chose when it could
/// not start there (its error: the app gets it as a [`PerdixEvent::ProducerFellBack`]).
struct Started {
    running: Box<dyn Running>,
    backend: ProducerBackend,
    fell_back: Option<Error>,
}

impl<A: bytemuck::Pod + Send + Sync> Registered for GpuProducerSpec<A> {
    fn name(&self) -> &str {
        &self.name
    }

    /// Without a fallback, the GPU's error (or why there is no GPU) is the producer's. A
    /// fallback run because producers run on the CPU is the plugin's choice; one run because
    /// the GPU start failed is a fall back, with the GPU's error.
    fn start(
        self: Box<Self>,
        rings: &mut PerdixRings,
        backend: &ProducerBackend,
    ) -> Result<Started, Error> {
        let mut spec = *self;
        let gpu_error = if backend.is_gpu() {
            match gpu::start(&mut spec, rings) {
                Ok(running) => {
                    return Ok(Started {
                        running,
                        backend: backend.clone(),
                        fell_back: None,
                    })
                }
                Err(err) => err,
            }
        } else {
            rings.backend().no_gpu_error()
        };
        let Some(fallback) = spec.fallback.take() else {
            return Err(gpu_error);
        };
        let running = Fallback::start(&spec.name, fallback, spec.args.take(), rings)?;
        let (backend, fell_back) = if backend.is_gpu() {
            let reason = gpu_error.to_string();
            (ProducerBackend::Cpu { reason }, Some(gpu_error))
        } else {
            (backend.clone(), None)
        };
        Ok(Started {
            running: Box::new(running),
            backend,
            fell_back,
        })
    }
}

/// Registered and started producers.
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
    /// Adds `spec`, to start at `Startup`.
    pub(crate) fn register<A: bytemuck::Pod + Send + Sync>(&mut self, spec: GpuProducerSpec<A>) {
        self.pending
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(spec));
    }
}

/// `Startup`: chooses the backend (once, logged) and starts every registered producer; each
/// that started is recorded where it runs (`PerdixRings::producers`).
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
        let Some(mut rings) = world.get_resource_mut::<PerdixRings>() else {
            return;
        };
        let backend = rings.chosen_backend().clone();
        for spec in pending {
            let name = spec.name().to_owned();
            match spec.start(&mut rings, &backend) {
                Ok(started) => {
                    registry.running.push(started.running);
                    rings.statuses_mut().started(&name, started.backend);
                    if let Some(error) = started.fell_back {
                        rings
                            .faults_mut()
                            .report(PerdixEvent::ProducerFellBack { name, error });
                    }
                }
                Err(error) => rings
                    .faults_mut()
                    .report(PerdixEvent::ProducerFailed { name, error }),
            }
        }
    });
}

/// [`PerdixSystems::Launch`](crate::bevy::PerdixSystems::Launch): one asynchronous launch per
/// producer; a launch skipped (the previous one still runs) is counted, and a run of
/// [`STALL_FRAMES`](crate::bevy::STALL_FRAMES) of them reported.
pub(crate) fn launch_producers(world: &mut World) {
    world.try_resource_scope(|world, mut registry: Mut<ProducerRegistry>| {
        let now = std::time::Instant::now();
        for (idx, producer) in registry.running.iter_mut().enumerate() {
            let launched = producer.launch(world);
            let Some(mut rings) = world.get_resource_mut::<PerdixRings>() else {
                continue;
            };
            // The registry's order is the statuses' (both pushed together at `Startup`).
            if let Some(stall) = rings.statuses_mut().launched(idx, producer.skipped(), now) {
                rings.faults_mut().report(stall);
            }
            if let Err(error) = launched {
                let name = producer.name().to_owned();
                // Its rings fail with it, once what it published before is drained.
                rings.fail_rings(producer.rings(), &error);
                rings
                    .faults_mut()
                    .report(PerdixEvent::ProducerFailed { name, error });
            }
        }
    });
}

/// No GPU producers without the `cuda` feature (the backend is never the GPU there).
#[cfg(not(feature = "cuda"))]
mod gpu {
    use super::{GpuProducerSpec, PerdixRings, Running};
    use crate::Error;

    pub(super) fn start<A>(
        _spec: &mut GpuProducerSpec<A>,
        _rings: &mut PerdixRings,
    ) -> Result<Box<dyn Running>, Error> {
        Err(Error::NoDevice("built without the `cuda` feature"))
    }
}

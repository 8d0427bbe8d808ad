//! Rings in the plugin for kernels the app launches itself (feature `cuda`):
//! [`PerdixRings::add_external_gpu_producer`] and the [`ExternalGpuProducer`] it returns.

use bevy_ecs::resource::Resource;

use super::gpu;
use crate::bevy::rings::PerdixRings;
use crate::bevy::ProducerBackend;
use crate::cuda::{GpuCounters, GpuProducer, GpuProducerSet};
use crate::Error;

/// GPU producers whose kernels the app launches itself, on its own streams, through cudarc's
/// launch builder; their rings are the plugin's, drained, routed and measured like any other.
///
/// One [`GpuProducer`] per device the plugin opened ([`producers`](Self::producers)): pass
/// [`handle`](GpuProducer::handle) to the kernel, then [`track`](GpuProducer::track) the stream
/// it went to (the contract is [`ProducerHandle`](crate::cuda::ProducerHandle)'s). Streams and
/// modules come from that producer's [`context`](GpuProducer::context)
/// ([`GpuContext::cudarc`](crate::cuda::GpuContext::cudarc)). A `Resource`: insert it, and
/// its kernels are waited for (boundedly, as any producer's teardown) when the app drops it.
/// Dropping it (or [`finish`](Self::finish)) ends its rings' streams.
///
/// # Examples
///
/// ```no_run
/// use bevy_app::{App, Startup};
/// use bevy_ecs::prelude::*;
/// use perdix_transport::bevy::{ExternalGpuProducer, PerdixPlugin, PerdixRings};
///
/// fn setup(mut commands: Commands, mut rings: ResMut<PerdixRings>) {
///     match rings.add_external_gpu_producer("sim", 1) {
///         // Launch with `producer.producers()[0].handle()` each frame, then `track` the stream.
///         Ok(producer) => commands.insert_resource(producer),
///         Err(err) => eprintln!("no GPU rings: {err}"),
///     }
/// }
///
/// App::new().add_plugins(PerdixPlugin::default()).add_systems(Startup, setup).run();
/// ```
#[derive(Debug, Resource)]
pub struct ExternalGpuProducer {
    set: GpuProducerSet,
}

impl ExternalGpuProducer {
    /// One producer per device of the plugin, in the plugin's device order.
    #[must_use]
    pub fn producers(&self) -> &[GpuProducer] {
        self.set.producers()
    }

    /// Waits for every tracked kernel, then ends the rings' streams; the final counters per
    /// device.
    ///
    /// # Errors
    ///
    /// As [`GpuProducer::finish`].
    pub fn finish(self) -> Result<Vec<GpuCounters>, Error> {
        self.set.finish()
    }
}

impl PerdixRings {
    /// `rings` rings on each of the plugin's CUDA devices, for kernels the app launches itself
    /// (see [`ExternalGpuProducer`]); their consumers join the plugin as `name-<idx>` (one
    /// device) or `name-gpu<N>.<entry>-<idx>`, as a [`GpuProducerSpec`](super::GpuProducerSpec)'s
    /// do, with the plugin's capacity, memory, policy and timestamps.
    ///
    /// # Errors
    ///
    /// Why the plugin has no CUDA device when its producers run on the CPU: the device probe's
    /// error ([`Error::NoDevice`] without a driver or device, [`Error::InvalidConfig`] for an
    /// empty device list, ...);
    /// the rings' or the clock calibration's errors.
    pub fn add_external_gpu_producer(
        &mut self,
        name: &str,
        rings: usize,
    ) -> Result<ExternalGpuProducer, Error> {
        // Opens the plugin's devices if nothing has yet.
        if let ProducerBackend::Cpu { reason } = self.chosen_backend() {
            tracing::warn!(producer = %name, %reason, "perdix: no CUDA device for an external GPU producer");
            return Err(self.backend().no_gpu_error());
        }
        let set = gpu::producer(self, name, rings)?;
        tracing::info!(producer = %name, "perdix: external GPU producer started");
        Ok(ExternalGpuProducer { set })
    }
}

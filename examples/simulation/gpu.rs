//! The GPU side the app owns (feature `cuda`): the particles' device buffer, and the second
//! launch style, `--launch app`, where the app launches `particles_step` itself each frame on
//! its own stream into rings the plugin drains.

use std::sync::Arc;

use bevy_ecs::prelude::*;
use perdix_transport::bevy::{ExternalGpuProducer, PerdixRings};
use perdix_transport::cuda::cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg,
};
use perdix_transport::cuda::cudarc::nvrtc::Ptx;
use perdix_transport::cuda::{compile_ptx, device_address};
use perdix_transport::Error;

use crate::run::Run;
use crate::step::{StepArgs, BLOCK, ENTRY, PARTICLES_CU};
use crate::systems::SimClock;

/// The kernel's `Particle`, in floats (x, y, vx, vy).
const FLOATS: usize = 4;

/// The particles of the plugin-launched style: a buffer on device 0 (the plugin's device, its
/// primary context), read by the `args` closure. `main` keeps a clone until the app (and so
/// the plugin's producer, which waits for its kernels) is gone.
#[derive(Resource, Clone)]
pub struct DeviceParticles(Arc<CudaSlice<f32>>);

impl DeviceParticles {
    /// `count` zeroed particles on device 0, or `None` without a CUDA device (the plugin then
    /// runs the CPU fallback, which ignores the address).
    pub fn on_device_0(count: u32) -> Result<Option<Self>, Error> {
        if !matches!(perdix_transport::cuda::device_count(), Ok(n) if n > 0) {
            return Ok(None);
        }
        let stream = CudaContext::new(0).map_err(Error::Driver)?.default_stream();
        let buffer = stream
            .alloc_zeros::<f32>(FLOATS * count as usize)
            .map_err(Error::Driver)?;
        stream.synchronize().map_err(Error::Driver)?;
        Ok(Some(Self(Arc::new(buffer))))
    }

    /// The buffer's address, the kernel's `Particle* particles`.
    pub fn address(world: &World) -> u64 {
        world
            .get_resource::<Self>()
            .map_or(0, |particles| device_address(&*particles.0))
    }
}

/// The app-launched style: the rings (from the plugin), the app's stream, the loaded kernel
/// and the particles' buffer, allocated on that stream. Fields drop in order: the rings wait
/// for the tracked kernels, then the buffer is freed on the stream they ran on.
#[derive(Resource)]
pub struct AppLaunch {
    rings: ExternalGpuProducer,
    stream: Arc<CudaStream>,
    step: CudaFunction,
    particles: CudaSlice<f32>,
    failed: bool,
}

impl AppLaunch {
    /// Rings on the plugin's device, a stream of the app's, the kernel compiled for the device
    /// and `count` particles.
    ///
    /// # Errors
    ///
    /// As `add_external_gpu_producer` (the plugin has no CUDA device, ...); driver and NVRTC
    /// errors.
    pub fn new(rings: &mut PerdixRings, count: u32) -> Result<Self, Error> {
        let rings = rings.add_external_gpu_producer("particles", 1)?;
        let producer = rings
            .producers()
            .first()
            .ok_or_else(|| Error::InvalidConfig("the plugin opened no device".into()))?;
        let gpu = producer.context();
        let ctx = gpu.cudarc();
        let stream = ctx.new_stream().map_err(Error::Driver)?;
        let ptx = compile_ptx(PARTICLES_CU, "particles.cu", &gpu.arch())?;
        let module = ctx.load_module(Ptx::from_src(ptx)).map_err(Error::Driver)?;
        let step = module.load_function(ENTRY).map_err(Error::Driver)?;
        let particles = stream
            .alloc_zeros::<f32>(FLOATS * count as usize)
            .map_err(Error::Driver)?;
        Ok(Self {
            rings,
            stream,
            step,
            particles,
            failed: false,
        })
    }

    /// One frame's launch of `particles_step` and its `track`; `false` (nothing launched)
    /// while the previous launch still runs, as the plugin skips a frame.
    fn launch(&mut self, args: &StepArgs) -> Result<bool, Error> {
        let Some(producer) = self.rings.producers().first() else {
            return Ok(false);
        };
        if !producer.is_idle()? {
            return Ok(false);
        }
        let handle = producer.handle();
        let mut launch = self.stream.launch_builder(&self.step);
        launch
            .arg(&handle)
            .arg(&mut self.particles)
            .arg(&args.dt)
            .arg(&args.frame)
            .arg(&args.count)
            .arg(&args.half);
        let config = LaunchConfig {
            grid_dim: (args.count.div_ceil(BLOCK), 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: `particles_step(const perdix_producer* p, Particle* particles, float dt,
        // unsigned frame, unsigned count, float half)` gets the producer's handle (it passes
        // it only to `perdix_emit`), `self.particles` (`count` particles of four floats,
        // freed only after the kernels on this stream) and four 4-byte scalars, in order; it
        // writes nothing but `particles[0..count]`; `track` below makes the producer wait for
        // it before its memory can go.
        unsafe { launch.launch(config) }.map_err(Error::Driver)?;
        producer.track(&self.stream)?;
        Ok(true)
    }
}

/// Launches the frame's step (the `args` the plugin-launched style would get), unless the
/// last one still runs; a failed launch is logged and ends the launches.
pub fn launch(mut app: ResMut<AppLaunch>, clock: Res<SimClock>, run: Res<Run>) {
    if app.failed {
        return;
    }
    // `particles`: the kernel gets `app.particles` itself.
    let args = run.step_args(clock.frame, 0);
    if let Err(err) = app.launch(&args) {
        tracing::error!(%err, "the app's launch failed; no more launches");
        app.failed = true;
    }
}

//! [`PerdixAppExt`]: registering message types and GPU producers on an [`App`].
#![forbid(unsafe_code)]

use bevy_app::App;
use bevy_ecs::message::Message;

use super::message::{Envelope, PerdixMessage};
use super::producers::{GpuProducerSpec, ProducerRegistry};
use super::route::Routes;
use crate::layout::SLOT_PAYLOAD;

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
    /// its CPU fallback runs instead, on a worker thread, at most once per frame.
    ///
    /// Either way a frame's launch is skipped while the producer is behind (the GPU's previous
    /// launch still runs; the fallback has 2 launches queued), and the spec's `args` closure
    /// is called exactly once for each launch that runs, with the launch's number (0, 1, 2,
    /// ... with no gaps; a skipped frame neither calls it nor takes a number), the number a
    /// fallback sees as [`Emitter::frame`](crate::bevy::Emitter::frame).
    ///
    /// Each producer gets its own ring. Producers start at [`Startup`](bevy_app::Startup).
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
    ///     .args(|_world, launch| launch as u32)
    ///     .cpu_fallback(|launch: &u32, emit| {
    ///         assert_eq!(u64::from(*launch), emit.frame());
    ///         let _ = emit.emit(7, launch);
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
                core::mem::size_of::<T>() <= SLOT_PAYLOAD,
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
                core::mem::size_of::<T>() <= SLOT_PAYLOAD,
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

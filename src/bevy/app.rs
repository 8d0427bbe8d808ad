//! [`PerdixAppExt`]: registering message types and GPU producers on an [`App`].
#![forbid(unsafe_code)]

use bevy_app::App;
use bevy_ecs::message::Message;

use super::batch::Batched;
use super::delivery::{Delivery, Enveloped, Plain, Raw, Sliced};
use super::limits::{self, RouteSize};
use super::producers::{GpuProducerSpec, ProducerRegistry};
use super::route::Routes;
#[cfg(doc)]
use super::{message::PerdixMessage, Envelope, PerdixBatch, PerdixHeader, PerdixSlice};

/// The compile-time bound of a routed type: a message's length is the header's `u32`.
const fn fits_header<T>() -> bool {
    // Lossless on every target with a usize of at least 32 bits.
    core::mem::size_of::<T>() as u64 <= u32::MAX as u64
}

/// Registers perdix message types and producers on an [`App`].
pub trait PerdixAppExt {
    /// Routes messages of `kind` into [`Messages<T>`](bevy_ecs::message::Messages) (and adds
    /// that message type). A message of `kind` whose length is not `size_of::<T>()` is counted
    /// as malformed and dropped.
    ///
    /// `T` may be as large as the largest message of the plugin's rings
    /// ([`PerdixPlugin::max_message`](super::PerdixPlugin::max_message): half a ring); a
    /// larger one is reported as [`PerdixEvent::RouteTooLarge`](super::PerdixEvent) (a value
    /// in `Messages<PerdixEvent>` and `perdix/errors`, checked when the route is registered,
    /// or when the plugin is built for a route registered before it). A type whose size does
    /// not fit the header's `u32` length does not compile:
    ///
    /// ```compile_fail,E0080
    /// use bevy_app::App;
    /// use perdix_transport::bevy::{PerdixAppExt, PerdixPlugin};
    ///
    /// type Huge = [[[[u8; 4096]; 4096]; 256]; 2]; // 8 GiB
    /// App::new().add_plugins(PerdixPlugin::default()).add_perdix_envelope::<Huge>(1);
    /// ```
    ///
    /// # Panics
    ///
    /// If `kind` is already routed to another type (an app misconfiguration).
    ///
    /// # Examples
    ///
    /// ```
    /// use bevy_app::prelude::*;
    /// use bevy_ecs::prelude::*;
    /// use perdix_transport::bevy::{PerdixAppExt, PerdixEvent, PerdixPlugin, PerdixRings};
    /// use perdix_transport::Error;
    ///
    /// #[derive(Message, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    /// #[repr(C)]
    /// struct Page([u64; 512]); // 4 KiB: 17 slots
    ///
    /// let mut app = App::new();
    /// app.add_plugins(PerdixPlugin::default().capacity(64)) // 8,160-byte messages at most
    ///     .add_perdix_message::<Page>(1);
    /// assert_eq!(app.world().resource::<PerdixRings>().errors(), 0);
    ///
    /// // A 4 KiB type on rings of 2 slots (224-byte messages) can never arrive: an error.
    /// let mut small = App::new();
    /// small.add_plugins(PerdixPlugin::default().capacity(2)).add_perdix_message::<Page>(1);
    /// small.update();
    /// let events = small.world().resource::<Messages<PerdixEvent>>();
    /// let mut cursor = events.get_cursor();
    /// let got: Vec<&PerdixEvent> = cursor.read(events).collect();
    /// assert!(matches!(
    ///     got[..],
    ///     [PerdixEvent::RouteTooLarge { kind: 1, error: Error::MessageTooLarge { len: 4096, max: 224 }, .. }]
    /// ));
    /// ```
    fn add_perdix_message<T: Message + bytemuck::Pod>(&mut self, kind: u32) -> &mut Self;

    /// Routes messages of `kind` into [`Messages<Envelope<T>>`](bevy_ecs::message::Messages):
    /// the payload read as `T` together with its producer, ring, position and stamp (see
    /// [`Envelope`]). Lengths and sizes are checked as for
    /// [`add_perdix_message`](Self::add_perdix_message).
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

    /// Routes messages of `kind` into
    /// [`Messages<PerdixSlice<T>>`](bevy_ecs::message::Messages): a payload of any number of
    /// `T`s (a histogram of N bins, a list of hits), as a `Vec<T>` with the message's header
    /// (see [`PerdixSlice`]). A length that is not a multiple of `size_of::<T>()` is counted
    /// as malformed and dropped; an empty payload is zero values.
    ///
    /// A `T` larger than the plugin's largest message is reported as for
    /// [`add_perdix_message`](Self::add_perdix_message); a zero-sized `T` does not compile:
    ///
    /// ```compile_fail,E0080
    /// use bevy_app::App;
    /// use perdix_transport::bevy::{PerdixAppExt, PerdixPlugin};
    ///
    /// App::new().add_plugins(PerdixPlugin::default()).add_perdix_slice::<()>(1);
    /// ```
    ///
    /// # Panics
    ///
    /// If `kind` is already routed to another type.
    ///
    /// # Examples
    ///
    /// A system reading histograms of any number of bins:
    ///
    /// ```
    /// use bevy_app::prelude::*;
    /// use bevy_ecs::prelude::*;
    /// use perdix_transport::bevy::{PerdixAppExt, PerdixPlugin, PerdixRings, PerdixSlice};
    ///
    /// const HISTOGRAM: u32 = 7;
    ///
    /// #[derive(Resource, Default)]
    /// struct Total(u64);
    ///
    /// fn count(mut histograms: MessageReader<PerdixSlice<u64>>, mut total: ResMut<Total>) {
    ///     for h in histograms.read() {
    ///         total.0 += h.values.iter().sum::<u64>();
    ///     }
    /// }
    ///
    /// let mut app = App::new();
    /// app.add_plugins(PerdixPlugin::default())
    ///     .add_perdix_slice::<u64>(HISTOGRAM)
    ///     .init_resource::<Total>()
    ///     .add_systems(Update, count);
    /// let mut producer = app.world_mut().resource_mut::<PerdixRings>().add_producer("cpu")?;
    /// producer.try_produce_kind(HISTOGRAM, bytemuck::cast_slice(&[1u64, 2, 3]))?;
    /// producer.try_produce_kind(HISTOGRAM, bytemuck::cast_slice(&[10u64; 20]))?;
    /// app.update();
    /// assert_eq!(app.world().resource::<Total>().0, 206);
    /// # Ok::<(), perdix_transport::Error>(())
    /// ```
    fn add_perdix_slice<T>(&mut self, kind: u32) -> &mut Self
    where
        T: bytemuck::Pod + Send + Sync;

    /// Routes messages of `kind` into
    /// [`Messages<PerdixBatch<T>>`](bevy_ecs::message::Messages): each ring's messages of
    /// `kind` from one drain as one contiguous `[T]` in pooled buffers (see [`PerdixBatch`],
    /// which has an example), so a system reads millions of `T` a frame with one
    /// `MessageReader` item per batch. Lengths and sizes are checked as for
    /// [`add_perdix_message`](Self::add_perdix_message); [`PerdixBatch::headers`] is `None`.
    ///
    /// # Panics
    ///
    /// If `kind` is already routed to another type.
    fn add_perdix_batch<T>(&mut self, kind: u32) -> &mut Self
    where
        T: bytemuck::Pod + Send + Sync;

    /// [`add_perdix_batch`](Self::add_perdix_batch) with each value's [`PerdixHeader`] in a
    /// parallel slice ([`PerdixBatch::headers`], the same length as the values).
    ///
    /// # Panics
    ///
    /// If `kind` is already routed to another type.
    ///
    /// # Examples
    ///
    /// ```
    /// use bevy_app::prelude::*;
    /// use bevy_ecs::prelude::*;
    /// use perdix_transport::bevy::{PerdixAppExt, PerdixBatch, PerdixPlugin, PerdixRings};
    ///
    /// let mut app = App::new();
    /// app.add_plugins(PerdixPlugin::default()).add_perdix_batch_envelope::<u64>(6);
    /// let mut producer = app.world_mut().resource_mut::<PerdixRings>().add_producer_with_id("cpu", 3)?;
    /// for v in [10u64, 20, 30] {
    ///     producer.try_produce_kind(6, &v.to_ne_bytes())?;
    /// }
    /// app.update();
    /// let batches = app.world().resource::<Messages<PerdixBatch<u64>>>();
    /// let mut cursor = batches.get_cursor();
    /// let batch = cursor.read(batches).next().unwrap();
    /// let headers = batch.headers().unwrap();
    /// assert_eq!(batch.values(), [10, 20, 30]);
    /// assert!(headers.iter().map(|h| (h.producer, h.seq)).eq([(3, 0), (3, 1), (3, 2)]));
    /// # Ok::<(), perdix_transport::Error>(())
    /// ```
    fn add_perdix_batch_envelope<T>(&mut self, kind: u32) -> &mut Self
    where
        T: bytemuck::Pod + Send + Sync;

    /// Routes messages of `kind` into the raw [`PerdixMessage`] without counting them as
    /// unrouted (any payload, of any length).
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
    /// // SAFETY: `new`'s contract: `tick` takes the producer pointer, then one `unsigned`
    /// // (`A = u32`), and touches no memory at all, under any grid and block.
    /// let spec = unsafe { GpuProducerSpec::new("ticks", TICK_CU, "tick") };
    /// // SAFETY: `args`' contract: each value is the kernel's `unsigned frame`, not an address.
    /// let spec = unsafe { spec.args(|_world, launch| launch as u32) }
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

/// The one registration every shape goes through: adds `Messages<D::Output>`, routes `kind` to
/// `D`, and checks what one message of `D` needs against the plugin's rings.
fn register<D: Delivery>(app: &mut App, kind: u32) -> &mut App {
    app.add_message::<D::Output>();
    let name = core::any::type_name::<D>();
    app.world_mut()
        .get_resource_or_init::<Routes>()
        .register::<D>(kind, name);
    if let Some(need) = D::NEED {
        let route = RouteSize {
            kind,
            type_name: core::any::type_name::<D::Output>(),
            need,
        };
        limits::check(app.world_mut(), route);
    }
    app
}

/// The compile-time checks of a typed shape's `T`.
const fn check_type<T>() {
    assert!(
        fits_header::<T>(),
        "a perdix message type must fit the header's u32 length"
    );
}

impl PerdixAppExt for App {
    fn add_perdix_message<T: Message + bytemuck::Pod>(&mut self, kind: u32) -> &mut Self {
        const { check_type::<T>() }
        register::<Plain<T>>(self, kind)
    }

    fn add_perdix_envelope<T>(&mut self, kind: u32) -> &mut Self
    where
        T: bytemuck::Pod + Send + Sync,
    {
        const { check_type::<T>() }
        register::<Enveloped<T>>(self, kind)
    }

    fn add_perdix_slice<T>(&mut self, kind: u32) -> &mut Self
    where
        T: bytemuck::Pod + Send + Sync,
    {
        const {
            assert!(
                core::mem::size_of::<T>() > 0,
                "a perdix slice element must not be zero-sized"
            );
            check_type::<T>();
        }
        register::<Sliced<T>>(self, kind)
    }

    fn add_perdix_batch<T>(&mut self, kind: u32) -> &mut Self
    where
        T: bytemuck::Pod + Send + Sync,
    {
        const { check_type::<T>() }
        register::<Batched<T, false>>(self, kind)
    }

    fn add_perdix_batch_envelope<T>(&mut self, kind: u32) -> &mut Self
    where
        T: bytemuck::Pod + Send + Sync,
    {
        const { check_type::<T>() }
        register::<Batched<T, true>>(self, kind)
    }

    fn add_perdix_raw(&mut self, kind: u32) -> &mut Self {
        register::<Raw>(self, kind)
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

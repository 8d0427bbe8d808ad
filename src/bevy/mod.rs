//! Bevy integration: [`PerdixPlugin`], typed ECS messages, `perdix/*` diagnostics.
//!
//! The plugin owns one ring per producer (the ring is single-producer): GPU kernels registered
//! with [`PerdixAppExt::add_gpu_producer`] (or their CPU fallbacks when there is no GPU or no
//! `cuda` feature), CPU threads started with [`PerdixRings::add_producer`], and any ring handed
//! over with [`PerdixRings::add_consumer`]. Each frame:
//!
//! 1. [`PerdixSystems::Launch`] launches the registered producers asynchronously (a GPU stream
//!    launch, or a message to the fallback's worker thread): nothing in the frame waits for them;
//! 2. [`PerdixSystems::Drain`] moves at most [`PerdixPlugin::budget`] ready messages out of the
//!    rings into Bevy messages: [`Messages<T>`](bevy_ecs::message::Messages) for every type
//!    registered with [`PerdixAppExt::add_perdix_message`], [`Envelope<T>`] (the payload with its
//!    header) for [`PerdixAppExt::add_perdix_envelope`], [`PerdixSlice<T>`] (a payload of any
//!    number of `T`s, with its header) for [`PerdixAppExt::add_perdix_slice`], and the raw
//!    [`PerdixMessage`] (a payload of any length) for
//!    every other kind (counted as unrouted unless registered with
//!    [`PerdixAppExt::add_perdix_raw`]). What the budget leaves behind stays in the rings and is
//!    counted as deferred ([`AppCounters::deferred`](crate::telemetry::AppCounters::deferred)).
//!
//! What the plugin holds outside a ring is bounded in bytes too ([`PerdixPlugin::max_held_bytes`],
//! by default four rings' worth): at the limit the drain stops taking, before the message that
//! does not fit, so the ring fills and its producers wait (`Block`) or drop, counted
//! (`DropNewest`); [`PerdixRings::held_bytes`] and `perdix/held_bytes` show what is held.
//!
//! With the `cuda` feature, GPU producers run on every device of `PerdixPlugin::devices`
//! (default device 0 alone; `GpuDevices::All` asks for every device, and each then runs every
//! registered kernel: one copy of its sequence per device), each with its own rings;
//! [`PerdixRings::ring_device`], [`PerdixRings::counters`] (`devices()`) and the `perdix/gpu<N>/*`
//! diagnostics tell the devices apart.
//!
//! Both sets run in [`PreUpdate`](bevy_app::PreUpdate), so `Update` systems read this frame's
//! messages with an ordinary [`MessageReader`](bevy_ecs::message::MessageReader). Systems that
//! want no copy at all call [`PerdixRings::drain_with`] instead (and may turn routing off with
//! [`PerdixPlugin::route`]).
//!
//! Failures reach the app as values, not only as log lines (a headless app has no tracing
//! subscriber): a [`PerdixEvent`] message for a ring that failed (corrupt slot, failed head
//! push, its GPU producer's fault) or a producer that did not start or stopped,
//! [`PerdixRings::ring_state`], and the `perdix/errors` diagnostic. A ring that failed is closed
//! for its producers; the others keep flowing. So do warnings, counted in `perdix/warnings`: a
//! GPU producer on its CPU fallback because it could not start on the GPU
//! ([`PerdixEvent::ProducerFellBack`]; [`PerdixRings::producers`] and
//! [`PerdixRings::producer_backend`] say where producers really run), the first message of a
//! kind no route takes on each ring ([`PerdixEvent::Unrouted`]), and a producer whose launches
//! are skipped behind a stalled one ([`PerdixEvent::LaunchesSkipped`],
//! `perdix/launches_skipped`). A configuration that cannot work fails [`PerdixPlugin`]'s
//! `build()` ([`PerdixPlugin::validate`]).
//!
//! Bevy keeps a message for two frames, then drops it unread: at tens of millions of messages a
//! second a frame sees millions, so the budget, per-frame summaries and counted deferral matter
//! more than raw copying (see `docs/PERFORMANCE.md` for measured figures).
//!
//! # Examples
//!
//! ```
//! use bevy_app::prelude::*;
//! use bevy_ecs::prelude::*;
//! use bytemuck::{Pod, Zeroable};
//! use perdix_transport::bevy::{PerdixAppExt, PerdixPlugin, PerdixRings};
//!
//! #[derive(Message, Clone, Copy, Pod, Zeroable)]
//! #[repr(C)]
//! struct Hit {
//!     particle: u32,
//!     wall: u32,
//! }
//!
//! let mut app = App::new();
//! app.add_plugins(PerdixPlugin::default().capacity(1024))
//!     .add_perdix_message::<Hit>(1);
//! // A CPU producer on its own ring (any thread may own it).
//! let mut producer = app.world_mut().resource_mut::<PerdixRings>().add_producer("cpu")?;
//! producer.try_produce_kind(1, bytemuck::bytes_of(&Hit { particle: 7, wall: 2 }))?;
//! app.update();
//! let hits = app.world().resource::<Messages<Hit>>();
//! let mut cursor = hits.get_cursor();
//! let got: Vec<u32> = cursor.read(hits).map(|hit| hit.particle).collect();
//! assert_eq!(got, [7]);
//! # Ok::<(), perdix_transport::Error>(())
//! ```
// No unsafe code in the plugin: every file but two forbids it. `producers/spec.rs` declares the
// two `unsafe fn`s (`GpuProducerSpec::new`: running user CUDA source; `GpuProducerSpec::args`:
// the values that are its argument list), and `producers/gpu.rs` calls the `unsafe` kernel
// constructor, argument list and launch under them; each allows exactly those items.
#![deny(unsafe_code)]

// The files, each using only files listed above it (no cycle):
//   config.rs       DrainMode, and the settings the rings resource keeps (RingConfig)
//   header.rs       PerdixHeader: the one header every delivered shape carries
//   message.rs      what arrives in Bevy untyped: PerdixMessage (inline payload, heap above)
//   envelope.rs     what arrives typed with its header: Envelope<T>, PerdixSlice<T>
//   pool.rs         Pool: the reused buffers batches are delivered in, bounded in bytes
//   delivery.rs     Delivery: the one seam of every shape (decode, bytes needed, output);
//                   the plain, envelope, slice and raw shapes
//   batch.rs        PerdixBatch<T> and its shapes (a ring's [T] a drain, pooled, held bytes)
//   event.rs        PerdixEvent, RingState, and the faults not yet written (Faults)
//   unrouted.rs     kinds no route takes: noted per stage, reported once per ring (bounded)
//   stage.rs        the route table (kind -> destination) and the per-kind stages
//   backend.rs      ProducerBackend, and the devices opened for it (BackendChoice)
//   status.rs       ProducerStatus: where each started producer runs, its skipped launches
//   drain/          the share scheduler (mod.rs), one ring as the drain sees it (ring.rs),
//                   drain threads (thread.rs, thread/, batch.rs), counts and latency samples
//                   (taken.rs), what is held outside a ring in bytes (held.rs)
//   stats.rs        the drain's own counts (frames, deferred, latency) and the counters snapshot
//   rings.rs        the PerdixRings resource (rings/producers.rs: its producers' side;
//                   rings/held.rs: its held_bytes gauge)
//   frame.rs        close_frame: the end of a frame's accounting, the rate history
//   limits.rs       typed routes against the rings' largest message (RouteTooLarge)
//   producers/      GpuProducerSpec, Emitter, CPU fallbacks, GPU launchers, the registry
//   route.rs        the Drain set's systems: routing into Messages<T>, writing PerdixEvents
//   diagnostics.rs  PerdixDiagnostics and its systems
//   app.rs          PerdixAppExt
//   plugin.rs       PerdixPlugin and PerdixSystems: build() only registers
//   stress.rs       StressProducers (feature `testing`)

mod app;
mod backend;
mod batch;
mod config;
mod delivery;
mod diagnostics;
mod drain;
mod envelope;
mod event;
mod frame;
mod header;
mod limits;
mod message;
mod plugin;
mod pool;
mod producers;
mod rings;
mod route;
mod stage;
mod stats;
mod status;
#[cfg(feature = "testing")]
pub(crate) mod stress;
mod unrouted;

pub use app::PerdixAppExt;
pub use backend::ProducerBackend;
pub use batch::PerdixBatch;
pub use config::DrainMode;
pub use diagnostics::PerdixDiagnostics;
pub use envelope::{Envelope, PerdixSlice};
pub use event::{PerdixEvent, RingState};
pub use header::PerdixHeader;
pub use message::PerdixMessage;
pub use plugin::{PerdixPlugin, PerdixSystems};
#[cfg(feature = "cuda")]
pub use producers::ExternalGpuProducer;
pub use producers::{Emitter, GpuProducerSpec};
pub use rings::PerdixRings;
pub use status::{ProducerStatus, STALL_FRAMES, STALL_TIME};
pub use unrouted::UNROUTED_KINDS_PER_RING;

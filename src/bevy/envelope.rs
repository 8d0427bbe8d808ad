//! Typed messages with the header they came in: [`Envelope<T>`], one `T` a message, and
//! [`PerdixSlice<T>`], a payload of any number of `T`s (a histogram of N bins, a particle
//! snapshot). Both are owned copies: they borrow nothing of the ring.
#![forbid(unsafe_code)]

use bevy_ecs::message::Message as BevyMessage;

use super::header::PerdixHeader;

/// A typed message with where it came from: what
/// [`add_perdix_envelope`](super::PerdixAppExt::add_perdix_envelope) routes a kind into.
///
/// Use it instead of a plain typed route when a system needs the producer, the stream position
/// or the stamp (to check order per producer, or measure latency), and instead of the raw
/// [`PerdixMessage`](super::PerdixMessage) when the payload has a fixed type: an envelope is
/// the type plus a [`PerdixHeader`] (32 bytes).
///
/// It is an owned copy: `value` was read out of the slot (`bytemuck::pod_read_unaligned`)
/// before the slot was released, and the type has no lifetime, so nothing in it can point
/// into the ring. A type that borrows cannot be routed at all (`T: Pod` is `'static` data):
///
/// ```compile_fail,E0277
/// use bevy_app::App;
/// use perdix_transport::bevy::{PerdixAppExt, PerdixPlugin};
///
/// App::new().add_plugins(PerdixPlugin::default()).add_perdix_envelope::<&'static [u8; 8]>(1);
/// ```
///
/// # Examples
///
/// ```
/// use bevy_app::prelude::*;
/// use bevy_ecs::prelude::*;
/// use perdix_transport::bevy::{Envelope, PerdixAppExt, PerdixPlugin, PerdixRings};
///
/// let mut app = App::new();
/// app.add_plugins(PerdixPlugin::default())
///     .add_perdix_envelope::<[u32; 2]>(5);
/// let mut rings = app.world_mut().resource_mut::<PerdixRings>();
/// let mut producer = rings.add_producer_with_id("cpu", 9)?;
/// producer.try_produce_kind(5, bytemuck::bytes_of(&[7u32, 8]))?;
/// app.update();
/// let got = app.world().resource::<Messages<Envelope<[u32; 2]>>>();
/// let msg = got.get_cursor().read(got).next().copied().unwrap();
/// assert_eq!((msg.value, msg.header.producer, msg.header.seq, msg.header.kind), ([7, 8], 9, 0, 5));
/// # Ok::<(), perdix_transport::Error>(())
/// ```
#[derive(BevyMessage, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<T: Send + Sync + 'static> {
    /// The payload, read as `T`.
    pub value: T,
    /// Where it came from: kind, producer, ring, position, stamp.
    pub header: PerdixHeader,
}

/// A payload of any number of `T`s with the header it came in: what
/// [`add_perdix_slice`](super::PerdixAppExt::add_perdix_slice) routes a kind into.
///
/// A message of `len` bytes arrives as `len / size_of::<T>()` values (none for an empty
/// payload); a length that is not a multiple of `size_of::<T>()` is malformed (dropped, and
/// counted in [`Counters::malformed`](crate::telemetry::Counters::malformed) and
/// `perdix/malformed`). The values were copied out of the ring before its slots were
/// released (one allocation a message, none for an empty one); nothing in it points into
/// the ring.
///
/// # Examples
///
/// A histogram of a varying number of bins:
///
/// ```
/// use bevy_app::prelude::*;
/// use bevy_ecs::prelude::*;
/// use perdix_transport::bevy::{PerdixAppExt, PerdixPlugin, PerdixRings, PerdixSlice};
///
/// const HISTOGRAM: u32 = 3;
/// let mut app = App::new();
/// app.add_plugins(PerdixPlugin::default()).add_perdix_slice::<u32>(HISTOGRAM);
/// let mut producer = app.world_mut().resource_mut::<PerdixRings>().add_producer("cpu")?;
/// producer.try_produce_kind(HISTOGRAM, bytemuck::cast_slice(&[4u32, 0, 9]))?;
/// producer.try_produce_kind(HISTOGRAM, &[])?;
/// producer.try_produce_kind(HISTOGRAM, &[1, 2, 3])?; // 3 bytes: not whole u32s
/// app.update();
/// let got = app.world().resource::<Messages<PerdixSlice<u32>>>();
/// let mut cursor = got.get_cursor();
/// let bins: Vec<&[u32]> = cursor.read(got).map(|h| &h.values[..]).collect();
/// assert_eq!(bins, [&[4, 0, 9][..], &[]]);
/// assert_eq!(app.world().resource::<PerdixRings>().counters().total().malformed, 1);
/// # Ok::<(), perdix_transport::Error>(())
/// ```
#[derive(BevyMessage, Debug, Clone, PartialEq, Eq)]
pub struct PerdixSlice<T: Send + Sync + 'static> {
    /// The payload, read as `T`s.
    pub values: Vec<T>,
    /// Where it came from: kind, producer, ring, position, stamp.
    pub header: PerdixHeader,
}

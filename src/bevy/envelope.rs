//! [`Envelope`]: a typed message together with the slot header it came in.
#![forbid(unsafe_code)]

use bevy_ecs::message::Message as BevyMessage;

/// A typed message with where it came from: what
/// [`add_perdix_envelope`](super::PerdixAppExt::add_perdix_envelope) routes a kind into.
///
/// Use it instead of a plain typed route when a system needs the producer, the stream position
/// or the stamp (to check order per producer, or measure latency), and instead of the raw
/// [`PerdixMessage`](super::PerdixMessage) when the payload has a fixed type: an envelope is the
/// type plus 28 bytes of header (and padding), a raw message always a whole 256-byte slot.
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
/// use perdix_transport::bevy::{Envelope, PerdixAppExt, PerdixPlugin, PerdixRing};
///
/// let mut app = App::new();
/// app.add_plugins(PerdixPlugin::default())
///     .add_perdix_envelope::<[u32; 2]>(5);
/// let mut producer = app.world_mut().resource_mut::<PerdixRing>().add_producer_with_id("cpu", 9)?;
/// producer.try_produce_kind(5, bytemuck::bytes_of(&[7u32, 8]))?;
/// app.update();
/// let got = app.world().resource::<Messages<Envelope<[u32; 2]>>>();
/// let msg = got.get_cursor().read(got).next().copied().unwrap();
/// assert_eq!((msg.value, msg.producer, msg.seq, msg.kind), ([7, 8], 9, 0, 5));
/// # Ok::<(), perdix_transport::Error>(())
/// ```
#[derive(BevyMessage, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<T: Send + Sync + 'static> {
    /// The payload, read as `T`.
    pub value: T,
    /// Message kind.
    pub kind: u32,
    /// Producer id (CPU producer, or GPU block / lane).
    pub producer: u32,
    /// Index of the ring it came through (order of
    /// [`PerdixRing::add_consumer`](super::PerdixRing::add_consumer) calls).
    pub ring: u32,
    /// Position in its ring's stream, from 0.
    pub seq: u64,
    /// Producer clock at publish in ns (0 when not stamped), on
    /// [`clock::now_ns`](crate::clock::now_ns)'s scale.
    pub stamp_ns: u64,
}

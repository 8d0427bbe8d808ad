//! What the drain delivers into Bevy: [`PerdixMessage`], a raw message copied out of its slot,
//! and [`Envelope`], a typed payload with the header it came in. Both are owned copies: they
//! borrow nothing of the ring.
#![forbid(unsafe_code)]

use bevy_ecs::message::Message as BevyMessage;

use crate::layout::{SlotHeader, SLOT_PAYLOAD};
use crate::Message;

/// A message of a kind with no typed route, copied out of its slot.
///
/// Unregistered kinds arrive as this (and count as unrouted); kinds registered with
/// [`add_perdix_raw`](super::PerdixAppExt::add_perdix_raw) too (not counted).
///
/// It is an owned copy (header fields and the payload bytes, a slot's worth) with no
/// lifetime: it borrows nothing of the ring, so it may outlive the slot it came from and the
/// ring itself. Its [`payload`](Self::payload) borrows the `PerdixMessage`, never the slot:
///
/// ```compile_fail,E0597
/// # fn get() -> perdix_transport::bevy::PerdixMessage { unimplemented!() }
/// let payload: &[u8] = {
///     let msg = get();
///     msg.payload()
/// }; // `msg` is dropped here while still borrowed
/// ```
///
/// # Examples
///
/// ```
/// use bevy_app::prelude::*;
/// use bevy_ecs::prelude::*;
/// use perdix_transport::bevy::{PerdixMessage, PerdixPlugin, PerdixRings};
///
/// let mut app = App::new();
/// app.add_plugins(PerdixPlugin::default());
/// let mut producer = app.world_mut().resource_mut::<PerdixRings>().add_producer("cpu")?;
/// producer.try_produce_kind(42, b"who am I")?;
/// app.update();
/// let raw = app.world().resource::<Messages<PerdixMessage>>();
/// let msg = raw.get_cursor().read(raw).next().copied().unwrap();
/// assert_eq!((msg.kind(), msg.payload()), (42, &b"who am I"[..]));
/// assert_eq!(app.world().resource::<PerdixRings>().stats().unrouted, 1);
/// # Ok::<(), perdix_transport::Error>(())
/// ```
#[derive(BevyMessage, Clone, Copy)]
pub struct PerdixMessage {
    kind: u32,
    producer: u32,
    seq: u64,
    stamp_ns: u64,
    ring: u16,
    len: u16,
    flags: u32,
    payload: [u8; SLOT_PAYLOAD],
}

impl PerdixMessage {
    pub(crate) fn new(ring: usize, msg: &Message<'_>) -> Self {
        let mut payload = [0u8; SLOT_PAYLOAD];
        let len = msg.len().min(SLOT_PAYLOAD);
        payload[..len].copy_from_slice(&msg.payload()[..len]);
        Self {
            kind: msg.kind(),
            producer: msg.producer(),
            seq: msg.seq(),
            stamp_ns: msg.stamp_ns(),
            ring: u16::try_from(ring).unwrap_or(u16::MAX),
            len: len as u16,
            flags: msg.flags(),
            payload,
        }
    }

    /// The message as the ring's borrowed view.
    pub(crate) fn view(&self) -> Message<'_> {
        let header = SlotHeader {
            len: u32::from(self.len),
            kind: self.kind,
            producer: self.producer,
            flags: self.flags,
            stamp_ns: self.stamp_ns,
        };
        Message::new(header, self.seq, self.payload())
    }

    /// Message kind.
    #[must_use]
    pub fn kind(&self) -> u32 {
        self.kind
    }

    /// Producer id (a CPU producer's, or the GPU block or thread that wrote it).
    #[must_use]
    pub fn producer(&self) -> u32 {
        self.producer
    }

    /// Position in its ring's stream, from 0.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Producer clock at publish in ns (0 when not stamped), on
    /// [`clock::now_ns`](crate::clock::now_ns)'s scale.
    #[must_use]
    pub fn stamp_ns(&self) -> u64 {
        self.stamp_ns
    }

    /// Index of the ring it came through (order of
    /// [`PerdixRings::add_consumer`](super::PerdixRings::add_consumer) calls; saturates at
    /// 65,535).
    #[must_use]
    pub fn ring(&self) -> u32 {
        u32::from(self.ring)
    }

    /// Reserved flag bits of the slot.
    #[must_use]
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// The payload.
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        &self.payload[..self.len as usize]
    }
}

impl core::fmt::Debug for PerdixMessage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PerdixMessage")
            .field("kind", &self.kind)
            .field("producer", &self.producer)
            .field("seq", &self.seq)
            .field("ring", &self.ring)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

// One slot's worth: the header fields and the payload, no padding.
const _: () = assert!(core::mem::size_of::<PerdixMessage>() == crate::layout::SLOT_SIZE);

/// A typed message with where it came from: what
/// [`add_perdix_envelope`](super::PerdixAppExt::add_perdix_envelope) routes a kind into.
///
/// Use it instead of a plain typed route when a system needs the producer, the stream position
/// or the stamp (to check order per producer, or measure latency), and instead of the raw
/// [`PerdixMessage`] when the payload has a fixed type: an envelope is the
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
/// assert_eq!((msg.value, msg.producer, msg.seq, msg.kind), ([7, 8], 9, 0, 5));
/// # Ok::<(), perdix_transport::Error>(())
/// ```
#[derive(BevyMessage, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<T: Send + Sync + 'static> {
    /// The payload, read as `T`.
    pub value: T,
    /// Message kind.
    pub kind: u32,
    /// Producer id (a CPU producer's, or the GPU block or thread that wrote it).
    pub producer: u32,
    /// Index of the ring it came through (order of
    /// [`PerdixRings::add_consumer`](super::PerdixRings::add_consumer) calls).
    pub ring: u32,
    /// Position in its ring's stream, from 0.
    pub seq: u64,
    /// Producer clock at publish in ns (0 when not stamped), on
    /// [`clock::now_ns`](crate::clock::now_ns)'s scale.
    pub stamp_ns: u64,
}

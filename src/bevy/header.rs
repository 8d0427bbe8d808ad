//! [`PerdixHeader`]: where a delivered message came from, one struct shared by every delivery
//! shape ([`Envelope`](super::Envelope), [`PerdixSlice`](super::PerdixSlice), the headers of
//! a [`PerdixBatch`](super::PerdixBatch), and [`PerdixMessage::header`](super::PerdixMessage::header)).
#![forbid(unsafe_code)]

use crate::Message;

/// The header a message came in with, as the plugin delivers it: its kind, producer, ring,
/// position and stamp. One type for every delivery shape, so code that checks order per
/// producer or measures latency reads the same fields whatever the shape.
///
/// # Examples
///
/// ```
/// use bevy_app::prelude::*;
/// use bevy_ecs::prelude::*;
/// use perdix_transport::bevy::{Envelope, PerdixAppExt, PerdixHeader, PerdixPlugin, PerdixRings};
///
/// let mut app = App::new();
/// app.add_plugins(PerdixPlugin::default()).add_perdix_envelope::<u64>(2);
/// let mut producer = app.world_mut().resource_mut::<PerdixRings>().add_producer_with_id("cpu", 5)?;
/// producer.try_produce_kind(2, &7u64.to_ne_bytes())?;
/// app.update();
/// let got = app.world().resource::<Messages<Envelope<u64>>>();
/// let env = got.get_cursor().read(got).next().copied().unwrap();
/// let PerdixHeader { kind, producer, ring, seq, .. } = env.header;
/// assert_eq!((env.value, kind, producer, ring, seq), (7, 2, 5, 0, 0));
/// # Ok::<(), perdix_transport::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PerdixHeader {
    /// Message kind.
    pub kind: u32,
    /// Producer id (a CPU producer's, or the GPU block or thread that wrote it).
    pub producer: u32,
    /// Index of the ring it came through (order of
    /// [`PerdixRings::add_consumer`](super::PerdixRings::add_consumer) calls).
    pub ring: u32,
    /// Position in its ring's stream, from 0 (of the message's first slot).
    pub seq: u64,
    /// Producer clock at publish in ns (0 when not stamped), on
    /// [`clock::now_ns`](crate::clock::now_ns)'s scale.
    pub stamp_ns: u64,
}

impl PerdixHeader {
    /// The header of `msg`, which came through ring `ring`.
    #[inline]
    pub(crate) fn of(ring: u32, msg: &Message<'_>) -> Self {
        Self {
            kind: msg.kind(),
            producer: msg.producer(),
            ring,
            seq: msg.seq(),
            stamp_ns: msg.stamp_ns(),
        }
    }
}

/// A ring's index as the public API carries it (`u32`; the resource never holds more rings).
#[inline]
pub(crate) fn ring_index(idx: usize) -> u32 {
    u32::try_from(idx).unwrap_or(u32::MAX)
}

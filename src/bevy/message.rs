//! What the drain delivers into Bevy for kinds with no typed route: [`PerdixMessage`], a raw
//! message of any length copied out of its slots. It borrows nothing of the ring.
//!
//! A payload that fits one slot ([`SLOT_PAYLOAD`] bytes) is kept inline, with no allocation
//! (the drain copies thousands of these a frame); only a multi-slot payload goes to the heap,
//! once, at its exact length.
#![forbid(unsafe_code)]

use bevy_ecs::message::Message as BevyMessage;

use super::header::PerdixHeader;
use crate::layout::{SlotHeader, SLOT_PAYLOAD};
use crate::Message;

/// A message of a kind with no typed route, copied out of its slots: a payload of any length,
/// intact.
///
/// Unregistered kinds arrive as this (and count as unrouted); kinds registered with
/// [`add_perdix_raw`](super::PerdixAppExt::add_perdix_raw) too (not counted).
///
/// It is an owned copy (header fields and the payload bytes) with no lifetime: it borrows
/// nothing of the ring, so it may outlive the slots it came from and the ring itself. A
/// payload of up to [`SLOT_PAYLOAD`](crate::layout::SLOT_PAYLOAD) bytes (a one-slot message)
/// is stored inline, with no allocation; a larger one on the heap. So it is `Clone`, not
/// `Copy`. Its [`payload`](Self::payload) borrows the `PerdixMessage`, never the slot:
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
/// let msg = raw.get_cursor().read(raw).next().cloned().unwrap();
/// assert_eq!((msg.kind(), msg.payload()), (42, &b"who am I"[..]));
/// assert_eq!(app.world().resource::<PerdixRings>().counters().total().unrouted, 1);
/// # Ok::<(), perdix_transport::Error>(())
/// ```
#[derive(BevyMessage, Clone)]
pub struct PerdixMessage {
    kind: u32,
    producer: u32,
    seq: u64,
    stamp_ns: u64,
    ring: u32,
    flags: u32,
    payload: Payload,
}

/// The payload bytes: inline up to one slot's payload, on the heap above.
// The inline variant is the large one on purpose: boxing it would allocate for every
// one-slot message, the common case.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Payload {
    /// `len <= SLOT_PAYLOAD` bytes at the start of `bytes`.
    Inline { len: u8, bytes: [u8; SLOT_PAYLOAD] },
    /// A multi-slot payload, at its exact length.
    Heap(Box<[u8]>),
}

// A one-slot length fits the inline `u8`.
const _: () = assert!(SLOT_PAYLOAD <= u8::MAX as usize);

impl Payload {
    #[inline]
    fn as_slice(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Heap(bytes) => bytes,
        }
    }
}

impl PerdixMessage {
    /// Copies `msg` of ring `ring` onto the end of `out`. A one-slot payload is written in
    /// place, into the pushed message (building it first and moving it in costs a copy of the
    /// whole message, measured by `benches/bevy_drain.rs`); a larger one is copied to the heap
    /// once ([`push_heap`](Self::push_heap), kept out of line so this stays small enough to
    /// inline into the drain's loop).
    #[inline]
    pub(crate) fn push(out: &mut Vec<Self>, ring: u32, msg: &Message<'_>) {
        let src = msg.payload();
        if src.len() > SLOT_PAYLOAD {
            Self::push_heap(out, ring, msg);
            return;
        }
        out.push(Self::with_payload(
            ring,
            msg,
            Payload::Inline {
                // At most SLOT_PAYLOAD (checked above), which fits a u8 (asserted below).
                len: src.len() as u8,
                bytes: [0; SLOT_PAYLOAD],
            },
        ));
        if let Some(Self {
            payload: Payload::Inline { bytes, .. },
            ..
        }) = out.last_mut()
        {
            bytes[..src.len()].copy_from_slice(src);
        }
    }

    /// [`push`](Self::push) of a multi-slot payload: one heap copy at its exact length.
    #[inline(never)]
    fn push_heap(out: &mut Vec<Self>, ring: u32, msg: &Message<'_>) {
        out.push(Self::with_payload(
            ring,
            msg,
            Payload::Heap(msg.payload().into()),
        ));
    }

    /// `msg`'s header fields with `payload`.
    #[inline]
    fn with_payload(ring: u32, msg: &Message<'_>, payload: Payload) -> Self {
        Self {
            kind: msg.kind(),
            producer: msg.producer(),
            seq: msg.seq(),
            stamp_ns: msg.stamp_ns(),
            ring,
            flags: msg.flags(),
            payload,
        }
    }

    /// The message as the ring's borrowed view.
    pub(crate) fn view(&self) -> Message<'_> {
        let payload = self.payload();
        let header = SlotHeader {
            // It came out of a ring, whose header holds the length as a u32.
            len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
            kind: self.kind,
            producer: self.producer,
            flags: self.flags,
            stamp_ns: self.stamp_ns,
        };
        Message::new(header, self.seq, payload)
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

    /// Position in its ring's stream, from 0: the position of the message's first slot (a
    /// multi-slot message takes several positions).
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
    /// [`PerdixRings::add_consumer`](super::PerdixRings::add_consumer) calls).
    #[must_use]
    pub fn ring(&self) -> u32 {
        self.ring
    }

    /// Kind, producer, ring, position and stamp as the [`PerdixHeader`] every typed shape
    /// carries.
    #[must_use]
    pub fn header(&self) -> PerdixHeader {
        PerdixHeader {
            kind: self.kind,
            producer: self.producer,
            ring: self.ring,
            seq: self.seq,
            stamp_ns: self.stamp_ns,
        }
    }

    /// Reserved flag bits of the slot.
    #[must_use]
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// The payload, all of it (any length up to the ring's
    /// [`max_message`](crate::layout::max_message)).
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        self.payload.as_slice()
    }

    /// Payload bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.payload().len()
    }

    /// Whether the payload is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl core::fmt::Debug for PerdixMessage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PerdixMessage")
            .field("kind", &self.kind)
            .field("producer", &self.producer)
            .field("seq", &self.seq)
            .field("ring", &self.ring)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

// About a slot's worth: the header fields and an inline payload, plus the tag that tells it
// from a heap one.
const _: () = assert!(core::mem::size_of::<PerdixMessage>() <= crate::layout::SLOT_SIZE + 8);

#[cfg(test)]
mod tests {
    use super::{Payload, PerdixMessage};
    use crate::layout::{SlotHeader, SLOT_PAYLOAD};
    use crate::Message;

    fn pushed(bytes: &[u8]) -> PerdixMessage {
        let header = SlotHeader {
            len: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
            kind: 4,
            ..SlotHeader::default()
        };
        let mut out = Vec::new();
        PerdixMessage::push(&mut out, 2, &Message::new(header, 9, bytes));
        assert_eq!(out.len(), 1);
        out.remove(0)
    }

    #[test]
    fn inline_up_to_one_slot_heap_above() {
        for len in [0, 1, SLOT_PAYLOAD - 1, SLOT_PAYLOAD] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let msg = pushed(&bytes);
            assert!(matches!(msg.payload, Payload::Inline { .. }), "{len} bytes");
            assert_eq!(msg.payload(), &bytes[..]);
            assert_eq!(msg.view().payload(), &bytes[..]);
        }
        for len in [SLOT_PAYLOAD + 1, 4096, 10_240] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let msg = pushed(&bytes);
            assert!(matches!(msg.payload, Payload::Heap(_)), "{len} bytes");
            assert_eq!((msg.payload(), msg.len()), (&bytes[..], len));
            assert_eq!((msg.kind(), msg.ring(), msg.seq()), (4, 2, 9));
            assert_eq!(msg.view().payload(), &bytes[..]);
        }
    }
}

//! How a payload becomes a typed message: a `T` of exactly `size_of::<T>()` bytes, an
//! [`Envelope<T>`], or a [`PerdixSlice<T>`] of whole `T`s. `None` is a malformed message (a
//! length the type does not allow); the stage counts it.
#![forbid(unsafe_code)]

use super::envelope::{Envelope, PerdixSlice};
use crate::Message;

/// The ring index as the typed messages carry it.
#[inline]
fn ring_u32(ring: usize) -> u32 {
    u32::try_from(ring).unwrap_or(u32::MAX)
}

/// The payload as a `T`, if it is exactly `T`'s size.
#[inline]
pub(crate) fn plain<T: bytemuck::Pod>(_ring: usize, msg: &Message<'_>) -> Option<T> {
    let payload = msg.payload();
    (payload.len() == core::mem::size_of::<T>()).then(|| bytemuck::pod_read_unaligned(payload))
}

/// The payload as a `T` with the slot's header, if it is exactly `T`'s size.
#[inline]
pub(crate) fn envelope<T: bytemuck::Pod + Send + Sync>(
    ring: usize,
    msg: &Message<'_>,
) -> Option<Envelope<T>> {
    plain::<T>(ring, msg).map(|value| Envelope {
        value,
        kind: msg.kind(),
        producer: msg.producer(),
        ring: ring_u32(ring),
        seq: msg.seq(),
        stamp_ns: msg.stamp_ns(),
    })
}

/// The payload as `T`s with the slot's header, if its length is a whole number of `T`s.
#[inline]
pub(crate) fn slice<T: bytemuck::Pod + Send + Sync>(
    ring: usize,
    msg: &Message<'_>,
) -> Option<PerdixSlice<T>> {
    let payload = msg.payload();
    // `T` is not zero-sized (`add_perdix_slice` refuses that at compile time).
    if !payload
        .len()
        .is_multiple_of(core::mem::size_of::<T>().max(1))
    {
        return None;
    }
    // Exactly `len / size_of::<T>()` values, aligned for `T` whatever the payload's alignment
    // (no allocation for an empty payload).
    let mut values = vec![T::zeroed(); payload.len() / core::mem::size_of::<T>().max(1)];
    bytemuck::cast_slice_mut::<T, u8>(&mut values).copy_from_slice(payload);
    Some(PerdixSlice {
        values,
        kind: msg.kind(),
        producer: msg.producer(),
        ring: ring_u32(ring),
        seq: msg.seq(),
        stamp_ns: msg.stamp_ns(),
    })
}

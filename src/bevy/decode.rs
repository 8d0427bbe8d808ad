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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::SlotHeader;

    fn message(kind: u32, payload: &[u8]) -> Message<'_> {
        let header = SlotHeader {
            len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
            kind,
            producer: 3,
            flags: 0,
            stamp_ns: 9,
        };
        Message::new(header, 17, payload)
    }

    #[test]
    fn slices_of_whole_values_of_any_length() {
        let values: Vec<u64> = (0..1_280).map(|i| i * 0x0101_0101).collect();
        let bytes: &[u8] = bytemuck::cast_slice(&values);
        for n in [0, 1, 28, 29, 512, 1_280] {
            let got = slice::<u64>(4, &message(5, &bytes[..n * 8]));
            let got = got.unwrap_or_else(|| panic!("{n} values"));
            assert_eq!(got.values, &values[..n]);
            assert_eq!((got.kind, got.producer, got.ring, got.seq), (5, 3, 4, 17));
            assert_eq!(got.stamp_ns, 9);
        }
        // Unaligned bytes read the same.
        let mut shifted = vec![0u8; 1];
        shifted.extend_from_slice(&bytes[..80]);
        let got = slice::<u64>(0, &message(5, &shifted[1..])).map(|s| s.values);
        assert_eq!(got.as_deref(), Some(&values[..10]));
    }

    #[test]
    fn partial_values_are_malformed() {
        let bytes = [0u8; 4_099];
        for len in [1, 7, 9, 4_095, 4_099] {
            assert!(
                slice::<u64>(0, &message(5, &bytes[..len])).is_none(),
                "{len}"
            );
        }
        assert!(plain::<[u8; 4_096]>(0, &message(5, &bytes[..4_095])).is_none());
        assert!(plain::<[u8; 4_096]>(0, &message(5, &bytes[..4_096])).is_some());
    }
}

//! [`Delivery`]: the one seam between a held message and what a system reads. Each delivery
//! shape (plain `T`, [`Envelope<T>`], [`PerdixSlice<T>`], the raw [`PerdixMessage`], and
//! [`PerdixBatch<T>`](super::PerdixBatch) in `batch.rs`) says what one message becomes in a
//! ring's staging buffer, how many bytes it needs, and how a staged buffer is written into its
//! `Messages<Output>`. The stages (`stage.rs`) hold one buffer per registered shape and call
//! only this trait; the one generic registration is `app.rs`'s `register::<D>`, under the
//! named `add_perdix_*` methods.
#![forbid(unsafe_code)]

use std::marker::PhantomData;
use std::sync::Arc;

use bevy_ecs::message::{Message as BevyMessage, Messages};

use super::drain::HeldBytes;
use super::envelope::{Envelope, PerdixSlice};
use super::header::PerdixHeader;
use super::message::PerdixMessage;
use crate::Message;

/// A delivery shape: how messages of a routed kind reach `Messages<Self::Output>`.
pub(crate) trait Delivery: Send + Sync + 'static {
    /// The ECS message the shape writes.
    type Output: BevyMessage;
    /// One ring's staged share of a frame (or of a drain thread's batch).
    type Buffer: Send + Sync + 'static;
    /// What every buffer of one route shares (the batch shapes' pools).
    type Shared: Clone + Default + Send + Sync + 'static;
    /// Payload bytes one message needs, checked against the rings' largest message when the
    /// route is registered (`None`: any length).
    const NEED: Option<usize>;
    /// Staged with the unrouted messages, where `drain_with` and the unrouted report read them
    /// (the raw shape), rather than in a buffer of its own.
    const RAW: bool = false;

    /// An empty buffer of a route whose buffers share `shared`.
    fn buffer(shared: &Self::Shared) -> Self::Buffer;

    /// Decodes `msg`, which came through ring `ring`, into `buf`; `false` if its length is not
    /// one the shape takes (malformed: the stage counts it).
    fn decode(buf: &mut Self::Buffer, ring: u32, msg: &Message<'_>) -> bool;

    /// Writes `buf` (ring `ring`'s) into `out` and empties it; returns the bytes the written
    /// messages keep counted in `held` until they are dropped (0 for a shape whose messages
    /// hold nothing the plugin accounts for past the frame).
    fn flush(
        buf: &mut Self::Buffer,
        ring: u32,
        held: &Arc<HeldBytes>,
        out: &mut Messages<Self::Output>,
    ) -> u64;

    /// Empties `buf` without writing it.
    fn clear(buf: &mut Self::Buffer);
}

/// A payload of exactly `size_of::<T>()` bytes as a `T`.
#[inline]
fn read<T: bytemuck::Pod>(msg: &Message<'_>) -> Option<T> {
    let payload = msg.payload();
    (payload.len() == core::mem::size_of::<T>()).then(|| bytemuck::pod_read_unaligned(payload))
}

/// The shapes whose buffer is a `Vec` of their output, written with one `write_batch`.
macro_rules! vec_flush {
    () => {
        fn flush(
            buf: &mut Self::Buffer,
            _ring: u32,
            _held: &Arc<HeldBytes>,
            out: &mut Messages<Self::Output>,
        ) -> u64 {
            if !buf.is_empty() {
                out.write_batch(buf.drain(..));
            }
            0
        }

        fn clear(buf: &mut Self::Buffer) {
            buf.clear();
        }

        fn buffer(_: &()) -> Self::Buffer {
            Vec::new()
        }
    };
}

/// `add_perdix_message::<T>`: the payload as a `T` in `Messages<T>`.
pub(crate) struct Plain<T>(PhantomData<fn() -> T>);

impl<T: BevyMessage + bytemuck::Pod> Delivery for Plain<T> {
    type Output = T;
    type Buffer = Vec<T>;
    type Shared = ();
    const NEED: Option<usize> = Some(core::mem::size_of::<T>());

    #[inline]
    fn decode(buf: &mut Vec<T>, _ring: u32, msg: &Message<'_>) -> bool {
        read::<T>(msg).map(|value| buf.push(value)).is_some()
    }

    vec_flush!();
}

/// `add_perdix_envelope::<T>`: a `T` with its header in `Messages<Envelope<T>>`.
pub(crate) struct Enveloped<T>(PhantomData<fn() -> T>);

impl<T: bytemuck::Pod + Send + Sync> Delivery for Enveloped<T> {
    type Output = Envelope<T>;
    type Buffer = Vec<Envelope<T>>;
    type Shared = ();
    const NEED: Option<usize> = Some(core::mem::size_of::<T>());

    #[inline]
    fn decode(buf: &mut Self::Buffer, ring: u32, msg: &Message<'_>) -> bool {
        read::<T>(msg)
            .map(|value| {
                buf.push(Envelope {
                    value,
                    header: PerdixHeader::of(ring, msg),
                });
            })
            .is_some()
    }

    vec_flush!();
}

/// `add_perdix_slice::<T>`: whole `T`s of any count with their header in
/// `Messages<PerdixSlice<T>>`.
pub(crate) struct Sliced<T>(PhantomData<fn() -> T>);

impl<T: bytemuck::Pod + Send + Sync> Delivery for Sliced<T> {
    type Output = PerdixSlice<T>;
    type Buffer = Vec<PerdixSlice<T>>;
    type Shared = ();
    const NEED: Option<usize> = Some(core::mem::size_of::<T>());

    #[inline]
    fn decode(buf: &mut Self::Buffer, ring: u32, msg: &Message<'_>) -> bool {
        let payload = msg.payload();
        // `T` is not zero-sized (`add_perdix_slice` refuses that at compile time).
        let size = core::mem::size_of::<T>().max(1);
        if !payload.len().is_multiple_of(size) {
            return false;
        }
        // Exactly `len / size_of::<T>()` values, aligned for `T` whatever the payload's
        // alignment (no allocation for an empty payload).
        let mut values = vec![T::zeroed(); payload.len() / size];
        bytemuck::cast_slice_mut::<T, u8>(&mut values).copy_from_slice(payload);
        buf.push(PerdixSlice {
            values,
            header: PerdixHeader::of(ring, msg),
        });
        true
    }

    vec_flush!();
}

/// `add_perdix_raw` (and every unrouted kind): the bytes as a [`PerdixMessage`].
pub(crate) struct Raw;

impl Delivery for Raw {
    type Output = PerdixMessage;
    type Buffer = Vec<PerdixMessage>;
    type Shared = ();
    const NEED: Option<usize> = None;
    const RAW: bool = true;

    #[inline]
    fn decode(buf: &mut Self::Buffer, ring: u32, msg: &Message<'_>) -> bool {
        PerdixMessage::push(buf, ring, msg);
        true
    }

    vec_flush!();
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
            let mut buf = Vec::new();
            assert!(
                Sliced::<u64>::decode(&mut buf, 4, &message(5, &bytes[..n * 8])),
                "{n}"
            );
            let got = &buf[0];
            assert_eq!(got.values, &values[..n]);
            let want = PerdixHeader {
                kind: 5,
                producer: 3,
                ring: 4,
                seq: 17,
                stamp_ns: 9,
            };
            assert_eq!(got.header, want);
        }
        // Unaligned bytes read the same.
        let mut shifted = vec![0u8; 1];
        shifted.extend_from_slice(&bytes[..80]);
        let mut buf = Vec::new();
        assert!(Sliced::<u64>::decode(
            &mut buf,
            0,
            &message(5, &shifted[1..])
        ));
        assert_eq!(buf[0].values, &values[..10]);
    }

    #[test]
    fn partial_values_are_malformed() {
        let bytes = [0u8; 4_099];
        for len in [1, 7, 9, 4_095, 4_099] {
            let mut buf = Vec::new();
            assert!(
                !Sliced::<u64>::decode(&mut buf, 0, &message(5, &bytes[..len])),
                "{len}"
            );
            assert!(buf.is_empty());
        }
        let mut buf = Vec::new();
        assert!(!Enveloped::<[u8; 4_096]>::decode(
            &mut buf,
            0,
            &message(5, &bytes[..4_095])
        ));
        assert!(Enveloped::<[u8; 4_096]>::decode(
            &mut buf,
            0,
            &message(5, &bytes[..4_096])
        ));
        assert_eq!(buf.len(), 1);
    }
}

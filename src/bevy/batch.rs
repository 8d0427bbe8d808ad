//! [`PerdixBatch<T>`]: a ring's messages of one kind delivered as one ECS message, a contiguous
//! `[T]` (and, for the envelope form, the headers as a parallel slice). The values are decoded
//! where the ring is read: by the ring's drain thread
//! ([`DrainMode::Thread`](super::DrainMode::Thread)) or the ring's task of the frame's drain
//! (busy rings in parallel), each into its own buffer, so the frame only moves buffers.
//!
//! The buffers come from a [`Pool`] shared by the route and go back to it when the batch is
//! dropped (Bevy drops a message two frames after it was written, or a system that took it
//! drops it). Until then the batch's messages count toward
//! [`PerdixPlugin::max_held_bytes`](super::PerdixPlugin::max_held_bytes) of their ring: a
//! reader that keeps batches makes the drain defer (counted), never lose.
#![forbid(unsafe_code)]

use std::marker::PhantomData;
use std::sync::Arc;

use bevy_ecs::message::{Message as BevyMessage, Messages};

use super::delivery::Delivery;
use super::drain::{held_cost, HeldBytes};
use super::header::PerdixHeader;
use super::pool::Pool;
use crate::Message;

/// A ring's messages of one kind from one drain, as one ECS message: what
/// [`add_perdix_batch`](super::PerdixAppExt::add_perdix_batch) and
/// [`add_perdix_batch_envelope`](super::PerdixAppExt::add_perdix_batch_envelope) route a kind
/// into.
///
/// A system reads millions of `T` a frame with one `MessageReader` item per batch: at most one
/// per ring and frame with the drain in the frame
/// ([`DrainMode::System`](super::DrainMode::System)), one per batch a drain thread handed over
/// with [`DrainMode::Thread`](super::DrainMode::Thread) (up to 4,096 messages each). Values are
/// in ring order. A message whose length is not `size_of::<T>()` is malformed: left out, and
/// counted in [`Counters::malformed`](crate::telemetry::Counters::malformed) and `perdix/malformed`.
/// The budget, deferral and diagnostics count the messages in a batch, not batches.
///
/// The buffers are pooled: dropping the batch gives them back for a later frame. While it
/// lives, its messages count toward its ring's `max_held_bytes` (each as
/// [`PerdixRings::held_bytes`](super::PerdixRings::held_bytes) counts a held message), so a
/// system that keeps batches holds back the drain of their ring, counted as deferred.
///
/// # Examples
///
/// ```
/// use bevy_app::prelude::*;
/// use bevy_ecs::prelude::*;
/// use perdix_transport::bevy::{PerdixAppExt, PerdixBatch, PerdixPlugin, PerdixRings};
///
/// const POSITIONS: u32 = 4;
///
/// #[derive(Resource, Default)]
/// struct Sum(u64);
///
/// fn sum(mut batches: MessageReader<PerdixBatch<[u32; 2]>>, mut total: ResMut<Sum>) {
///     for batch in batches.read() {
///         total.0 += batch.iter().map(|p| u64::from(p[0] + p[1])).sum::<u64>();
///     }
/// }
///
/// let mut app = App::new();
/// app.add_plugins(PerdixPlugin::default())
///     .add_perdix_batch::<[u32; 2]>(POSITIONS)
///     .init_resource::<Sum>()
///     .add_systems(Update, sum);
/// let mut producer = app.world_mut().resource_mut::<PerdixRings>().add_producer("cpu")?;
/// for i in 0..100u32 {
///     producer.try_produce_kind(POSITIONS, bytemuck::bytes_of(&[i, 1]))?;
/// }
/// producer.try_produce_kind(POSITIONS, &[1, 2, 3])?; // not a [u32; 2]: malformed
/// app.update();
/// assert_eq!(app.world().resource::<Sum>().0, 4950 + 100);
/// assert_eq!(app.world().resource::<PerdixRings>().counters().total().malformed, 1);
/// # Ok::<(), perdix_transport::Error>(())
/// ```
#[derive(BevyMessage)]
pub struct PerdixBatch<T: bytemuck::Pod + Send + Sync> {
    ring: u32,
    values: Vec<T>,
    /// Parallel to `values` (the envelope form).
    headers: Option<Vec<PerdixHeader>>,
    pools: Pools<T>,
    /// What the batch's messages count as in `held` until it is dropped.
    cost: u64,
    held: Arc<HeldBytes>,
}

impl<T: bytemuck::Pod + Send + Sync> PerdixBatch<T> {
    /// Index of the ring the values came through (order of
    /// [`PerdixRings::add_consumer`](super::PerdixRings::add_consumer) calls).
    #[must_use]
    pub fn ring(&self) -> u32 {
        self.ring
    }

    /// The values, in ring order.
    #[must_use]
    pub fn values(&self) -> &[T] {
        &self.values
    }

    /// The header of each value (same length as [`values`](Self::values)) for a batch of
    /// [`add_perdix_batch_envelope`](super::PerdixAppExt::add_perdix_batch_envelope); `None`
    /// for [`add_perdix_batch`](super::PerdixAppExt::add_perdix_batch).
    #[must_use]
    pub fn headers(&self) -> Option<&[PerdixHeader]> {
        self.headers.as_deref()
    }

    /// Number of values.
    #[must_use]
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no values (the plugin never writes an empty batch).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The values, in ring order.
    pub fn iter(&self) -> core::slice::Iter<'_, T> {
        self.values.iter()
    }
}

impl<'a, T: bytemuck::Pod + Send + Sync> IntoIterator for &'a PerdixBatch<T> {
    type Item = &'a T;
    type IntoIter = core::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T: bytemuck::Pod + Send + Sync> core::fmt::Debug for PerdixBatch<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PerdixBatch")
            .field("ring", &self.ring)
            .field("len", &self.len())
            .field("headers", &self.headers.is_some())
            .finish_non_exhaustive()
    }
}

impl<T: bytemuck::Pod + Send + Sync> Drop for PerdixBatch<T> {
    fn drop(&mut self) {
        self.held.sub(self.cost);
        self.pools.values.give(core::mem::take(&mut self.values));
        if let Some(headers) = self.headers.take() {
            self.pools.headers.give(headers);
        }
    }
}

/// The pools of one batch route: values and headers.
pub(crate) struct Pools<T> {
    values: Pool<T>,
    headers: Pool<PerdixHeader>,
}

impl<T> Clone for Pools<T> {
    fn clone(&self) -> Self {
        Self {
            values: self.values.clone(),
            headers: self.headers.clone(),
        }
    }
}

impl<T> Default for Pools<T> {
    fn default() -> Self {
        Self {
            values: Pool::default(),
            headers: Pool::default(),
        }
    }
}

/// One ring's staged batch: pooled buffers being filled, and what its messages cost held.
pub(crate) struct Staging<T> {
    values: Vec<T>,
    headers: Vec<PerdixHeader>,
    cost: u64,
    pools: Pools<T>,
}

/// `add_perdix_batch::<T>` (`ENVELOPE` false) and `add_perdix_batch_envelope::<T>` (true).
pub(crate) struct Batched<T, const ENVELOPE: bool>(PhantomData<fn() -> T>);

impl<T: bytemuck::Pod + Send + Sync, const ENVELOPE: bool> Delivery for Batched<T, ENVELOPE> {
    type Output = PerdixBatch<T>;
    type Buffer = Staging<T>;
    type Shared = Pools<T>;
    const NEED: Option<usize> = Some(core::mem::size_of::<T>());

    fn buffer(pools: &Pools<T>) -> Staging<T> {
        Staging {
            values: pools.values.take(),
            headers: if ENVELOPE {
                pools.headers.take()
            } else {
                Vec::new()
            },
            cost: 0,
            pools: pools.clone(),
        }
    }

    #[inline]
    fn decode(buf: &mut Staging<T>, ring: u32, msg: &Message<'_>) -> bool {
        let payload = msg.payload();
        if payload.len() != core::mem::size_of::<T>() {
            return false;
        }
        buf.values.push(bytemuck::pod_read_unaligned(payload));
        if ENVELOPE {
            buf.headers.push(PerdixHeader::of(ring, msg));
        }
        // The length is `size_of::<T>()`, which fits the header's u32 (`check_type`).
        buf.cost += held_cost(u32::try_from(payload.len()).unwrap_or(u32::MAX));
        true
    }

    fn flush(
        buf: &mut Staging<T>,
        ring: u32,
        held: &Arc<HeldBytes>,
        out: &mut Messages<PerdixBatch<T>>,
    ) -> u64 {
        if buf.values.is_empty() {
            return 0;
        }
        let cost = core::mem::take(&mut buf.cost);
        let headers =
            ENVELOPE.then(|| core::mem::replace(&mut buf.headers, buf.pools.headers.take()));
        out.write(PerdixBatch {
            ring,
            values: core::mem::replace(&mut buf.values, buf.pools.values.take()),
            headers,
            pools: buf.pools.clone(),
            cost,
            held: Arc::clone(held),
        });
        cost
    }

    fn clear(buf: &mut Staging<T>) {
        buf.values.clear();
        buf.headers.clear();
        buf.cost = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::SlotHeader;

    #[test]
    fn a_batch_counts_its_bytes_held_until_dropped_and_gives_its_buffers_back() {
        let pools = Pools::<u64>::default();
        let held = Arc::new(HeldBytes::default());
        let mut out = Messages::<PerdixBatch<u64>>::default();
        let mut buf = Batched::<u64, true>::buffer(&pools);
        for seq in 0..100u64 {
            let header = SlotHeader {
                len: 8,
                kind: 1,
                producer: 2,
                ..SlotHeader::default()
            };
            let bytes = seq.to_ne_bytes();
            assert!(Batched::<u64, true>::decode(
                &mut buf,
                3,
                &Message::new(header, seq, &bytes)
            ));
        }
        let bad = SlotHeader {
            len: 4,
            ..SlotHeader::default()
        };
        assert!(!Batched::<u64, true>::decode(
            &mut buf,
            3,
            &Message::new(bad, 0, &[0; 4])
        ));
        let kept = Batched::<u64, true>::flush(&mut buf, 3, &held, &mut out);
        held.add(kept);
        assert_eq!(kept, 100 * held_cost(8));
        let batch = out.drain().next().unwrap_or_else(|| panic!("one batch"));
        assert_eq!((batch.ring(), batch.len()), (3, 100));
        assert!(batch.iter().copied().eq(0..100));
        let headers = batch.headers().unwrap_or_default();
        assert!(headers.iter().map(|h| h.seq).eq(0..100));
        let ptr = batch.values().as_ptr();
        drop(batch);
        assert_eq!(held.get(), 0, "dropped: its bytes are let go");
        assert_eq!(pools.values.free_bytes(), 100u64.next_power_of_two() * 8);
        let again = pools.values.take();
        assert_eq!(again.as_ptr(), ptr, "the buffer is reused");
    }
}

//! The drain: how the rings of the resource share one budget a frame.
//!
//! Each drain offers every ring an equal share of the budget first (in parallel, one task per
//! ring on Bevy's compute pool, when the last drain was busy), then gives what is left to the
//! rings that still have messages, ring by ring; the first ring rotates every drain, so no ring
//! is always last. In [`DrainMode::Thread`](crate::bevy::DrainMode::Thread) the rings' drain
//! threads have staged whole batches already, and the budget is shared out in batches, one per
//! ring in turn.
//!
//! What the plugin holds outside a ring is bounded in bytes as well
//! ([`PerdixPlugin::max_held_bytes`](crate::bevy::PerdixPlugin::max_held_bytes), per ring): a
//! drain in the frame takes at most that much of each ring, and a drain thread holds at most
//! that much (`held.rs`). Both stop before the message that does not fit: it stays in its ring.
//!
//! The files below: [`DrainedRing`] is one ring as the drain sees it (`ring.rs`), a
//! [`DrainThread`] keeps one ring empty between frames (`thread.rs`) and hands over
//! [`Batch`]es (`batch.rs`); [`Taken`] counts what a drain took (`taken.rs`); `held.rs` counts
//! bytes. The accounting (stats, deferral, latency windows, faults) is the resource's.
#![forbid(unsafe_code)]

mod batch;
mod held;
mod ring;
mod taken;
mod thread;

use bevy_tasks::ComputeTaskPool;

pub(crate) use batch::Batch;
pub(crate) use held::{check_max_held, cost as held_cost, HeldBytes};
pub(crate) use ring::{DrainedRing, Source};
pub(crate) use taken::Taken;
pub(crate) use thread::DrainThread;

use crate::Message;

/// A drain that took at least this many messages makes the next one drain its rings in
/// parallel (one task per ring on Bevy's compute pool).
const PARALLEL_MIN: usize = 16_384;

/// What one drain took, and whether the budget ran out (what still waits counts as deferred).
#[derive(Debug)]
pub(crate) struct Pass {
    pub(crate) taken: Taken,
    pub(crate) full: bool,
}

/// Which ring the next drain starts with, and whether the last drain was busy.
#[derive(Debug, Default)]
pub(crate) struct Scheduler {
    /// Ring the next drain starts with (rotates, for fairness under a budget).
    cursor: usize,
    /// The last drain took at least [`PARALLEL_MIN`] messages: drain rings in parallel.
    busy: bool,
}

impl Scheduler {
    /// The drain for one sink: up to `max` messages and `max_bytes` of each ring read in the
    /// frame (`u64::MAX` for `drain_with`, whose views are of slots, or of batches already
    /// held: it holds nothing more), each ring first offered an equal share, then the rest of
    /// the budget to whoever still has messages. Calls `f(ring index, message)`. `None`
    /// (nothing ran) with no rings or a `max` of 0.
    pub(crate) fn serial<F>(
        &mut self,
        rings: &mut [DrainedRing],
        max: usize,
        max_bytes: u64,
        mut f: F,
    ) -> Option<Pass>
    where
        F: FnMut(usize, Message<'_>),
    {
        let count = rings.len();
        if count == 0 || max == 0 {
            return None;
        }
        open(rings, max_bytes);
        let share = (max / count).max(1);
        let start = self.cursor % count;
        let mut taken = Taken::default();
        for k in 0..count {
            let idx = (start + k) % count;
            let want = share.min(max - taken.count);
            rings[idx].take(idx, want, &mut f, &mut taken);
        }
        rest(rings, max, start, &mut taken, core::slice::from_mut(&mut f));
        let full = taken.count >= max || taken.limited;
        Some(self.finish(count, start, taken, full))
    }

    /// [`serial`](Self::serial) with one sink per ring (`sinks[i]` gets ring `i`'s messages):
    /// the equal shares are taken in parallel on Bevy's compute task pool when the previous
    /// drain was busy (a task per ring has a cost a quiet frame does not repay), the rest
    /// serially. `None` (nothing ran) also when there is not one sink per ring.
    pub(crate) fn parallel<S>(
        &mut self,
        rings: &mut [DrainedRing],
        max: usize,
        max_bytes: u64,
        sinks: &mut [S],
    ) -> Option<Pass>
    where
        S: FnMut(usize, Message<'_>) + Send,
    {
        let count = rings.len();
        if count == 0 || max == 0 || sinks.len() != count {
            return None;
        }
        open(rings, max_bytes);
        let share = (max / count).max(1);
        let start = self.cursor % count;
        // The first `max` rings from `start` get a share (all of them unless max < rings).
        let want = |idx: usize| {
            if (idx + count - start) % count < max {
                share
            } else {
                0
            }
        };
        let mut taken = Taken::default();
        let pool = ComputeTaskPool::try_get().filter(|_| count > 1 && self.busy);
        match pool {
            Some(pool) => {
                let parts = pool.scope(|scope| {
                    for (idx, (ring, sink)) in rings.iter_mut().zip(sinks.iter_mut()).enumerate() {
                        let want = want(idx);
                        scope.spawn(async move {
                            let mut part = Taken::default();
                            ring.take(idx, want, sink, &mut part);
                            part
                        });
                    }
                });
                for part in parts {
                    taken.merge(part);
                }
            }
            None => {
                for (idx, (ring, sink)) in rings.iter_mut().zip(sinks.iter_mut()).enumerate() {
                    ring.take(idx, want(idx), sink, &mut taken);
                }
            }
        }
        rest(rings, max, start, &mut taken, sinks);
        let full = taken.count >= max || taken.limited;
        Some(self.finish(count, start, taken, full))
    }

    /// [`DrainMode::Thread`](crate::bevy::DrainMode::Thread): up to `max` messages in whole
    /// batches the drain threads staged, into `out` as (ring index, batch); one batch per ring
    /// in turn from the rotating start, so rings share the budget. Hand the emptied batches
    /// back with [`give_back`]. `None` (nothing ran) with no rings or a `max` of 0.
    pub(crate) fn batches(
        &mut self,
        rings: &mut [DrainedRing],
        max: usize,
        out: &mut Vec<(usize, Batch)>,
    ) -> Option<Pass> {
        let count = rings.len();
        if count == 0 || max == 0 {
            return None;
        }
        let start = self.cursor % count;
        let mut taken = Taken::default();
        let (mut more, mut full) = (true, false);
        while more {
            more = false;
            for k in 0..count {
                let idx = (start + k) % count;
                let ring = &mut rings[idx];
                let Source::Thread(thread) = &mut ring.source else {
                    continue;
                };
                let room = max - taken.count;
                if let Some(batch) = thread.take_batch(room) {
                    taken.count += batch.count;
                    taken.largest = taken.largest.max(batch.largest);
                    taken.latencies.extend_from_slice(&batch.latencies);
                    ring.messages += batch.count as u64;
                    ring.bytes += batch.bytes;
                    out.push((idx, batch));
                    more = true;
                } else if thread.has_pending() {
                    // A batch is waiting that does not fit what is left of the budget.
                    full = true;
                }
                // A thread that is done finishes (or fails) the ring now.
                ring.settle();
            }
        }
        let full = full || taken.count >= max;
        Some(self.finish(count, start, taken, full))
    }

    /// Rotates the starting ring and notes whether the drain was busy.
    fn finish(&mut self, count: usize, start: usize, taken: Taken, full: bool) -> Pass {
        self.cursor = (start + 1) % count;
        self.busy = taken.count >= PARALLEL_MIN;
        Pass { taken, full }
    }
}

/// Starts a drain of `rings` that may take up to `max_bytes` of each ring read in the frame.
fn open(rings: &mut [DrainedRing], max_bytes: u64) {
    for ring in rings {
        ring.open(max_bytes);
    }
}

/// The second pass: what is left of the budget, ring by ring from `start`; ring `i` goes to
/// `sinks[i]`, or to the last sink when there are fewer.
fn rest<F>(rings: &mut [DrainedRing], max: usize, start: usize, taken: &mut Taken, sinks: &mut [F])
where
    F: FnMut(usize, Message<'_>),
{
    let count = rings.len();
    for k in 0..count {
        if taken.count >= max {
            break;
        }
        let idx = (start + k) % count;
        let left = max - taken.count;
        let last = sinks.len().saturating_sub(1);
        if let Some(sink) = sinks.get_mut(idx.min(last)) {
            rings[idx].take(idx, left, sink, taken);
        }
    }
}

/// Returns batches taken by [`Scheduler::batches`] (now flushed) to their drain threads.
pub(crate) fn give_back(rings: &mut [DrainedRing], batches: &mut Vec<(usize, Batch)>) {
    for (idx, batch) in batches.drain(..) {
        if let Some(DrainedRing {
            source: Source::Thread(thread),
            ..
        }) = rings.get_mut(idx)
        {
            thread.recycle(batch);
        }
    }
}

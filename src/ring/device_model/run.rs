//! A warp's multi-slot messages of one length, in runs of one reservation (perdix_run.cuh, and
//! the run branch of `perdix_emit_each`, perdix_span.cuh:298-337).

use super::{DeviceProducer, Emit};
use crate::ring::layout::slots_for;
use crate::sync::Ordering;

/// A run of messages of `k` slots reserved at once (`perdix_run`): `count` messages from
/// `base`, the pad (published already) after the first `before` of them.
struct Run {
    base: u64,
    count: u64,
    before: u64,
    pad: u64,
    status: Emit,
}

impl Run {
    /// `perdix_run_pos` (perdix_run.cuh:25): message `j`'s first slot.
    fn pos(&self, k: u64, j: u64) -> u64 {
        self.base + j * k + if j >= self.before { self.pad } else { 0 }
    }
}

impl DeviceProducer {
    /// The run branch of `perdix_emit_each` (perdix_span.cuh:298-337): the lanes' messages, all
    /// of one length, in runs of at most `perdix_run_max` messages, one reservation each; then
    /// each message's slots waited for (Block), its body written and published in turn.
    pub(super) fn emit_runs(&self, lanes: &[(u32, &[u8])]) -> Vec<Emit> {
        let len = lanes[0].1.len();
        // perdix_span.cuh:300-301.
        let k = slots_for(len) as u64;
        let most = self.run_max(k);
        // perdix_span.cuh:304: the leader's head, for the waits of perdix_run_claim.
        let mut head = self.load_head();
        let mut stalled = false;
        let mut mine = vec![Emit::Sent; lanes.len()];
        // perdix_span.cuh:307-309: the lowest `most` lanes not yet sent (perdix_pick_lanes).
        for (first, sel) in lanes.chunks(most as usize).enumerate() {
            let first = first * most as usize;
            // perdix_span.cuh:310, perdix_run_in: the leader reserves.
            let run = self.reserve_run(sel.len() as u64, k, &mut stalled);
            let mut done = 0;
            let mut status = run.status;
            // perdix_span.cuh:314-330.
            for (j, &(kind, data)) in sel.iter().enumerate().take(run.count as usize) {
                if status != Emit::Sent {
                    break;
                }
                // perdix_span.cuh:317, perdix_run_claim (perdix_run.cuh:140-145).
                let pos = run.pos(k, j as u64);
                if self.block() && !self.wait_room(pos + k - 1, &mut head, &mut stalled) {
                    status = Emit::Closed;
                    break;
                }
                // perdix_span.cuh:321-328.
                self.write_message(pos, kind, (first + j) as u32, data);
                self.claim_publish(pos, len);
                done = j + 1;
            }
            // perdix_span.cuh:331-334.
            for (at, lane) in mine[first..first + sel.len()].iter_mut().enumerate() {
                *lane = if at < done {
                    Emit::Sent
                } else if status == Emit::Closed {
                    Emit::Closed
                } else {
                    Emit::Dropped
                };
            }
        }
        mine
    }

    /// `perdix_run_max` (perdix_run.cuh:31-34): messages of `k` slots a run may hold.
    fn run_max(&self, k: u64) -> u64 {
        let n = (self.ring.capacity() / 2) / k;
        n.clamp(1, 32)
    }

    /// `perdix_reserve_run` (perdix_run.cuh:42-107), the leader's part: a run of `n` messages of
    /// `k` slots with one CAS on `tail`, laid out with at most one pad (published here as soon
    /// as its first slot is free). Block: all `n` (the caller waits for each message's slots);
    /// DropNewest: as many as fit (the head refreshed once), the rest counted dropped.
    fn reserve_run(&self, n: u64, k: u64, stalled: &mut bool) -> Run {
        let capacity = self.ring.capacity();
        let control = &self.control;
        // perdix_run.cuh:52-53: the head before the reservation, then the tail.
        let mut head = self.load_head();
        let mut tail = control.tail.load(Ordering::Relaxed);
        let mut refreshed = false;
        let (count, before, pad) = loop {
            // perdix_run.cuh:58-62.
            let idx = tail & (capacity - 1);
            let fit = (capacity - idx) / k;
            let before = fit.min(n);
            let mut pad = if fit < n { capacity - idx - fit * k } else { 0 };
            let mut count = n;
            if !self.block() {
                let room = (head + capacity).saturating_sub(tail);
                if room < n * k + pad {
                    if !refreshed {
                        // perdix_run.cuh:69.
                        head = self.load_head();
                        refreshed = true;
                        continue;
                    }
                    // perdix_run.cuh:73-82.
                    let head_room = before * k;
                    if pad == 0 || room < head_room + pad {
                        let c = room / k;
                        count = if c < before || pad == 0 {
                            c.min(n)
                        } else {
                            before
                        };
                        pad = 0;
                    } else {
                        let c = (room - head_room - pad) / k;
                        count = before + c.min(n - before);
                    }
                }
            }
            // perdix_run.cuh:85-89.
            let take = count * k + pad;
            if take == 0 {
                break (count, before, pad);
            }
            match control.tail.compare_exchange(
                tail,
                tail + take,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break (count, before, pad),
                Err(seen) => tail = seen,
            }
        };
        let mut run = Run {
            base: tail,
            count,
            before,
            pad,
            status: Emit::Sent,
        };
        if count < n {
            // perdix_run.cuh:95.
            control.dropped.fetch_add(n - count, Ordering::Relaxed);
        }
        if pad != 0 {
            // perdix_run.cuh:96-100: the pad's first slot only, then the pad.
            let pad_pos = tail + before * k;
            if !self.wait_room(pad_pos, &mut head, stalled) {
                run.status = Emit::Closed;
                return run;
            }
            self.publish_pad(pad_pos, pad);
        }
        if count == 0 {
            // perdix_run.cuh:102-105.
            run.status = if self.closed() {
                Emit::Closed
            } else {
                Emit::Dropped
            };
        }
        run
    }
}

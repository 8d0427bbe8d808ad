//! Multi-slot messages one at a time (perdix_span.cuh): the reservation of a message and the pad
//! before it with one CAS, the pad published as soon as its first slot is free, the wait for the
//! message's slots, and the publication.

use super::{DeviceProducer, Emit};
use crate::ring::layout::{slots_for, SlotHeader, FLAG_PAD, OFFSET_PAYLOAD, SLOT_SIZE};
use crate::sync::{fence, Ordering};

/// A reserved message (`perdix_span`): its first slot's position, or why there is none.
struct Span {
    pos: u64,
    status: Emit,
}

impl DeviceProducer {
    /// `perdix_emit_each` (perdix_span.cuh:288-358): the warp's messages when one needs more
    /// than a slot. All of one length (and more than one lane): in runs (`run.rs`); otherwise
    /// each lane's message in turn, reserved by `perdix_claim_in` and published whole.
    pub(super) fn emit_each(&self, lanes: &[(u32, &[u8])]) -> Vec<Emit> {
        // perdix_span.cuh:297-298.
        let len = lanes[0].1.len();
        if lanes.len() > 1 && lanes.iter().all(|(_, data)| data.len() == len) {
            return self.emit_runs(lanes);
        }
        // perdix_span.cuh:338-356.
        lanes
            .iter()
            .enumerate()
            .map(|(src, &(kind, data))| {
                // perdix_span.cuh:343, perdix_claim_in: the leader reserves (180).
                let span = self.reserve_span(slots_for(data.len()) as u64);
                if span.status == Emit::Sent {
                    // perdix_span.cuh:346-353: the body, then the publication.
                    self.write_message(span.pos, kind, src as u32, data);
                    self.claim_publish(span.pos, data.len());
                }
                span.status
            })
            .collect()
    }

    /// `perdix_reserve_span` (perdix_span.cuh:103-162): a message of `k > 1` slots and the pad
    /// before it where the message would wrap, with one CAS on `tail`. The pad is published as
    /// soon as its first slot is free, then the message's slots are waited for (Block);
    /// DropNewest reserves only what fits (the head refreshed once), publishing the pad alone
    /// when only it fits (the message dropped, the retry on the next lap).
    fn reserve_span(&self, k: u64) -> Span {
        let capacity = self.ring.capacity();
        let control = &self.control;
        let closed = Span {
            pos: 0,
            status: Emit::Closed,
        };
        // perdix_span.cuh:110-111: the head before the reservation, then the tail.
        let mut head = self.load_head();
        let mut tail = control.tail.load(Ordering::Relaxed);
        let mut refreshed = false;
        let pad = loop {
            let idx = tail & (capacity - 1);
            let pad = if idx + k > capacity {
                capacity - idx
            } else {
                0
            };
            let mut take = pad + k;
            let mut drop = false;
            if !self.block() {
                let room = (head + capacity).saturating_sub(tail);
                if room < take {
                    if !refreshed {
                        // perdix_span.cuh:125.
                        head = self.load_head();
                        refreshed = true;
                        continue;
                    }
                    if pad == 0 || room < pad {
                        // perdix_span.cuh:130-133.
                        control.dropped.fetch_add(1, Ordering::Relaxed);
                        let status = if self.closed() {
                            Emit::Closed
                        } else {
                            Emit::Dropped
                        };
                        return Span { pos: 0, status };
                    }
                    // perdix_span.cuh:135-136: the pad alone fits.
                    take = pad;
                    drop = true;
                }
            }
            // perdix_span.cuh:139.
            if let Err(seen) = control.tail.compare_exchange(
                tail,
                tail + take,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                tail = seen;
                continue;
            }
            if drop {
                // perdix_span.cuh:145-148.
                self.publish_pad(tail, pad);
                control.dropped.fetch_add(1, Ordering::Relaxed);
                return Span {
                    pos: 0,
                    status: Emit::Dropped,
                };
            }
            break pad;
        };
        let mut stalled = false;
        if pad != 0 {
            // perdix_span.cuh:154-156: the pad's first slot only, then the pad.
            if !self.wait_room(tail, &mut head, &mut stalled) {
                return closed;
            }
            self.publish_pad(tail, pad);
        }
        // perdix_span.cuh:158-160.
        let pos = tail + pad;
        if !self.wait_room(pos + k - 1, &mut head, &mut stalled) {
            return closed;
        }
        Span {
            pos,
            status: Emit::Sent,
        }
    }

    /// `perdix_wait_room` (perdix_span.cuh:71-86): waits until position `last` is inside the
    /// window of the pushed head (`head` is the one last seen, refreshed here), counting one
    /// stall per message; false (`PERDIX_CLOSED`) if the consumer leaves meanwhile.
    pub(super) fn wait_room(&self, last: u64, head: &mut u64, stalled: &mut bool) -> bool {
        let capacity = self.ring.capacity();
        if last < *head + capacity {
            return true;
        }
        if !*stalled {
            // perdix_span.cuh:75.
            self.control.stalls.fetch_add(1, Ordering::Relaxed);
            *stalled = true;
        }
        while last >= *head + capacity {
            // perdix_span.cuh:80.
            if self.closed() {
                return false;
            }
            // perdix_span.cuh:81: __nanosleep.
            loom::thread::yield_now();
            // perdix_span.cuh:83.
            *head = self.load_head();
        }
        true
    }

    /// `perdix_publish_pad` (perdix_span.cuh:58-67): the pad record of `pad` slots at `pos`, the
    /// leader alone: its header words, a system fence, its `seq`, then its slots counted in
    /// `extra`. Only its first slot is written, so only that one needs to be free.
    pub(super) fn publish_pad(&self, pos: u64, pad: u64) {
        // perdix_span.cuh:60-63.
        let header = SlotHeader {
            len: (pad as usize * SLOT_SIZE - OFFSET_PAYLOAD) as u32,
            flags: FLAG_PAD,
            ..SlotHeader::default()
        };
        self.ring.write_header(pos, header);
        // perdix_span.cuh:64: perdix_publish_fence (fence.acq_rel.sys).
        fence(Ordering::AcqRel); // perdix_publish_pad's fence
                                 // perdix_span.cuh:65: perdix_store_seq (st.relaxed.sys).
        self.ring.seq(pos).store(pos + 1, Ordering::Relaxed);
        // perdix_span.cuh:66.
        self.control.extra.fetch_add(pad, Ordering::Relaxed);
    }

    /// `perdix_claim_publish` (perdix_span.cuh:266-284) of the message of `len` bytes at `pos`
    /// whose body and header are written: after the `__syncwarp`, the leader's fence, `seq`, and
    /// the counters (one message, its slots beyond one in `extra`).
    pub(super) fn claim_publish(&self, pos: u64, len: usize) {
        // perdix_span.cuh:278: perdix_publish_fence (fence.acq_rel.sys).
        fence(Ordering::AcqRel); // perdix_claim_publish's fence
                                 // perdix_span.cuh:279: perdix_store_seq (st.relaxed.sys).
        self.ring.seq(pos).store(pos + 1, Ordering::Relaxed);
        // perdix_span.cuh:280-282.
        self.control.emitted.fetch_add(1, Ordering::Relaxed);
        let extra = slots_for(len) as u64 - 1;
        if extra != 0 {
            self.control.extra.fetch_add(extra, Ordering::Relaxed);
        }
    }
}

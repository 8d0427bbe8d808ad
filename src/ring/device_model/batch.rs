//! A warp's one-slot messages: one reservation for the batch (`perdix_warp_reserve`,
//! perdix.cuh:292), the slots written, then each published (`perdix_warp_publish`,
//! perdix.cuh:359).

use super::{DeviceProducer, Emit};
use crate::sync::{fence, Ordering};

/// A warp's reservation (`perdix_batch`): the first position, how many lanes got one, and
/// whether the ring closed meanwhile (nothing reserved is then valid).
struct Batch {
    base: u64,
    count: u64,
    status: Emit,
}

impl DeviceProducer {
    /// perdix_emit_policy's one-slot path (perdix.cuh:451-475): one reservation for the warp,
    /// the owner lanes' slots written, one publication each.
    pub(super) fn emit_batch(&self, lanes: &[(u32, &[u8])]) -> Vec<Emit> {
        let n = lanes.len() as u64;
        // perdix.cuh:451.
        let b = self.warp_reserve(n);
        if b.status != Emit::Sent {
            // perdix.cuh:453: every lane returns the status.
            return vec![b.status; lanes.len()];
        }
        // perdix.cuh:455-473: slot `base + j` carries lane j's message (the lanes in mask
        // order); word 0 (`seq`) is not written here.
        for (j, (kind, data)) in lanes.iter().enumerate().take(b.count as usize) {
            self.write_message(b.base + j as u64, *kind, j as u32, data);
        }
        // perdix.cuh:474.
        self.warp_publish(&b);
        // perdix.cuh:475.
        (0..n)
            .map(|rank| {
                if rank < b.count {
                    Emit::Sent
                } else {
                    Emit::Dropped
                }
            })
            .collect()
    }

    /// `perdix_warp_reserve` (perdix.cuh:292-354), the leader's part: `n` positions for the
    /// warp. Block: all `n`, waiting for room; DropNewest: as many as fit, the rest counted.
    fn warp_reserve(&self, n: u64) -> Batch {
        let capacity = self.ring.capacity();
        let control = &self.control;
        if self.block() {
            // perdix.cuh: the reservation, then the head (acquire), read after it.
            let base = control.tail.fetch_add(n, Ordering::Relaxed);
            let mut head = self.load_head();
            let last = base + n - 1;
            let mut status = Emit::Sent;
            if last >= head + capacity {
                // perdix.cuh:311.
                control.stalls.fetch_add(1, Ordering::Relaxed);
                while last >= head + capacity {
                    // perdix.cuh:314.
                    if self.closed() {
                        status = Emit::Closed;
                        break;
                    }
                    // perdix.cuh:318: __nanosleep.
                    loom::thread::yield_now();
                    // perdix.cuh:320.
                    head = self.load_head();
                }
            }
            return Batch {
                base,
                count: n,
                status,
            };
        }
        // perdix.cuh: DropNewest reads the head first, then the tail.
        let mut head = self.load_head();
        let mut tail = control.tail.load(Ordering::Relaxed);
        let mut refreshed = false;
        let count = loop {
            let limit = head + capacity;
            let room = limit.saturating_sub(tail);
            if room < n && !refreshed {
                // perdix.cuh:332: the pushed head may be stale; look once more.
                head = self.load_head();
                refreshed = true;
                continue;
            }
            let count = room.min(n);
            if count == 0 {
                break 0;
            }
            // perdix.cuh:338.
            match control.tail.compare_exchange(
                tail,
                tail + count,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break count,
                Err(seen) => tail = seen,
            }
        };
        let mut status = Emit::Sent;
        if count < n {
            // perdix.cuh:344-345.
            control.dropped.fetch_add(n - count, Ordering::Relaxed);
            if count == 0 && self.closed() {
                status = Emit::Closed;
            }
        }
        Batch {
            base: tail,
            count,
            status,
        }
    }

    /// `perdix_warp_publish` (perdix.cuh:359-368): after the `__syncwarp` that orders every
    /// lane's body stores before it, each lane of rank `< count` fences and stores its slot's
    /// `seq`; then rank 0 counts the batch.
    fn warp_publish(&self, b: &Batch) {
        for rank in 0..b.count {
            let pos = b.base + rank;
            // perdix.cuh:363: perdix_publish_fence (fence.acq_rel.sys).
            fence(Ordering::AcqRel); // perdix_warp_publish's fence
                                     // perdix.cuh:365: perdix_store_seq (st.relaxed.sys).
            self.ring.seq(pos).store(pos + 1, Ordering::Relaxed);
        }
        if b.count != 0 {
            // perdix.cuh:367.
            self.control.emitted.fetch_add(b.count, Ordering::Relaxed);
        }
    }
}

// perdix_run.cuh: runs of multi-slot messages of one size, reserved with one CAS (included by
// perdix_span.cuh, which has the claim, the pad publication and the wait this file uses).
//
// Under contention a CAS on `tail` succeeds about once per round trip to L2, so one CAS per
// message would cap a ring at a few million messages a second; a run reserves up to a warp's
// messages of one size at once, laid out with at most one pad, and the warp then writes and
// publishes them one after the other (perdix_run_claim waits for each message's slots under
// Block). Used by perdix_emit when every calling lane sends the same length and by the stress
// kernel (docs/DESIGN-NOTES.md, "Issue 13, the GPU side").
#pragma once

// A run of messages of one size, reserved at once (one CAS for up to a warp's messages, where one
// CAS per message would make the CAS the bottleneck: under contention a CAS succeeds about once
// per round trip). The messages lie one after another from `base`; if the run reaches the ring's
// end, the pad follows the first `before` messages and the rest start the next lap. Message `j`
// is at perdix_run_pos(run, k, j).
struct perdix_run {
    perdix_u64 base;   // first position of the run
    perdix_u32 count;  // messages reserved (the first `count` senders got one)
    perdix_u32 before; // messages before the ring's end (the pad, if any, comes after them)
    perdix_u32 pad;    // slots of the pad (published already; 0: none)
    int status;        // PERDIX_OK, PERDIX_DROPPED (count 0) or PERDIX_CLOSED
};

__device__ __forceinline__ perdix_u64 perdix_run_pos(const perdix_run& run, perdix_u64 k, perdix_u32 j) {
    return run.base + (perdix_u64)j * k + (j >= run.before ? run.pad : 0);
}

// Messages of `k` slots a run may hold: n * k at most half the ring (then the run with its pad
// never wraps twice, and each message alone fits any head less than half a ring behind).
__device__ __forceinline__ perdix_u32 perdix_run_max(const perdix_ring* r, perdix_u64 k) {
    const perdix_u64 n = (PERDIX_RING_CAPACITY(r) / 2) / k;
    return n == 0 ? 1 : (n < 32 ? (perdix_u32)n : 32);
}

// The leader's reservation of a run of `n` messages of `k` slots (`n` at most perdix_run_max):
// a CAS on `tail`. Block: all `n`; the pad is published once its first slot is free, the
// messages' slots are the caller's to wait for (perdix_wait_room), one message at a time.
// DropNewest: as many as fit (the head refreshed once when they look not to), the pad included
// whenever it fits (published alone if no message after it fits: the retry starts the next lap),
// the rest counted dropped.
__device__ __noinline__ perdix_run perdix_reserve_run(perdix_ring* r, perdix_u32 n, perdix_u64 k, int policy,
                                                      bool* stalled) {
    perdix_run run;
    run.base = 0;
    run.count = 0;
    run.before = 0;
    run.pad = 0;
    run.status = PERDIX_OK;
    const perdix_u64 cap = PERDIX_RING_CAPACITY(r);
    const perdix_u64 ring_mask = PERDIX_RING_MASK(r);
    perdix_u64 head = perdix_load_acquire(&PERDIX_W(r, PERDIX_CTRL_RING_HEAD));
    perdix_u64 tail = perdix_load_relaxed(&PERDIX_W(r, PERDIX_CTRL_RING_TAIL));
    bool refreshed = false;
    perdix_u32 count, before;
    perdix_u64 pad;
    for (;;) {
        const perdix_u64 idx = tail & ring_mask;
        const perdix_u64 fit = (cap - idx) / k;
        before = fit < n ? (perdix_u32)fit : n;
        pad = fit < n ? cap - idx - fit * k : 0;
        count = n;
        if (policy != PERDIX_POLICY_BLOCK) {
            const perdix_u64 limit = head + cap;
            const perdix_u64 room = limit > tail ? limit - tail : 0;
            if (room < (perdix_u64)n * k + pad) {
                if (!refreshed) {
                    // The pushed head may be stale by up to capacity/8: look once more.
                    head = perdix_load_acquire(&PERDIX_W(r, PERDIX_CTRL_RING_HEAD));
                    refreshed = true;
                    continue;
                }
                const perdix_u64 head_room = (perdix_u64)before * k;
                if (pad == 0 || room < head_room + pad) {
                    // No pad in what fits: whole messages only (positions j * k).
                    const perdix_u64 c = room / k;
                    count = c < before || pad == 0 ? (c < n ? (perdix_u32)c : n) : before;
                    pad = 0;
                } else {
                    const perdix_u64 c = (room - head_room - pad) / k;
                    count = before + (c < n - before ? (perdix_u32)c : n - before);
                }
            }
        }
        const perdix_u64 take = (perdix_u64)count * k + pad;
        if (take == 0) break;
        const perdix_u64 seen = atomicCAS(&PERDIX_W(r, PERDIX_CTRL_RING_TAIL), tail, tail + take);
        if (seen == tail) break;
        tail = seen;
    }
    run.base = tail;
    run.count = count;
    run.before = before;
    run.pad = (perdix_u32)pad;
    if (count < n) atomicAdd(&PERDIX_W(r, PERDIX_CTRL_RING_DROPPED), (perdix_u64)(n - count));
    if (pad) {
        const perdix_u64 pad_pos = tail + (perdix_u64)before * k;
        run.status = perdix_wait_room(r, pad_pos, &head, stalled);  // the pad's first slot
        if (run.status != PERDIX_OK) return run;
        perdix_publish_pad(r, pad_pos, pad);
    }
    if (count == 0) {
        const bool closed = perdix_load_relaxed(&PERDIX_W(r, PERDIX_CTRL_RING_CLOSED)) != 0;
        run.status = closed ? PERDIX_CLOSED : PERDIX_DROPPED;
    }
    return run;
}

// Every lane of `mask`: a run of `senders` messages of `k` slots (at most perdix_run_max),
// reserved by the first lane of `mask` (`stalled` is that lane's, for perdix_run_claim).
__device__ __forceinline__ perdix_run perdix_run_in(perdix_ring* r, perdix_u32 mask, perdix_u32 senders,
                                                    perdix_u64 k, int policy, bool* stalled) {
    const perdix_u32 leader = __ffs(mask) - 1;
    perdix_run run;
    run.base = 0;
    run.count = 0;
    run.before = 0;
    run.pad = 0;
    run.status = PERDIX_OK;
    if (perdix_lane() == leader) run = perdix_reserve_run(r, senders, k, policy, stalled);
    run.base = __shfl_sync(mask, run.base, leader);
    run.count = __shfl_sync(mask, run.count, leader);
    run.before = __shfl_sync(mask, run.before, leader);
    run.pad = __shfl_sync(mask, run.pad, leader);
    run.status = __shfl_sync(mask, run.status, leader);
    return run;
}

// Every lane of `mask`: the claim of message `j` of `run` (`len` bytes, `producer` its header's
// id), once its slots are free: under Block the first lane of `mask` waits for them (`head` and
// `stalled` are that lane's); status PERDIX_CLOSED if the consumer left meanwhile.
__device__ __forceinline__ perdix_claim perdix_run_claim(perdix_ring* r, perdix_u32 mask, const perdix_run& run,
                                                         perdix_u64 k, perdix_u32 j, perdix_u32 len,
                                                         perdix_u32 producer, int policy, perdix_u64* head,
                                                         bool* stalled) {
    const perdix_u32 leader = __ffs(mask) - 1;
    perdix_claim c;
    c.ring = r;
    c.len = len;
    c.pos = perdix_run_pos(run, k, j);
    c.pad = 0;
    c.producer = producer;
    c.payload = (unsigned char*)&PERDIX_RING_SLOTS(r)[c.pos & PERDIX_RING_MASK(r)] + PERDIX_OFFSET_PAYLOAD;
    int status = PERDIX_OK;
    if (policy == PERDIX_POLICY_BLOCK && perdix_lane() == leader) status = perdix_wait_room(r, c.pos + k - 1, head, stalled);
    c.status = __shfl_sync(mask, status, leader);
    return c;
}

// The lowest `count` lanes of `first`, then of `rest`, up to `count` lanes in all.
__device__ __forceinline__ perdix_u32 perdix_pick_lanes(perdix_u32 first, perdix_u32 rest, perdix_u32 count) {
    perdix_u32 sel = 0;
    for (perdix_u32 c = 0; c < count && (first | rest); c++) {
        perdix_u32& from = first ? first : rest;
        sel |= from & (0u - from);
        from &= from - 1;
    }
    return sel;
}

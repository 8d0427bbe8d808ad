// perdix_span.cuh: multi-slot messages, the device side (included by perdix.cuh, which has the
// layout, the control block and the helpers this file uses; supplied in memory beside it).
//
// A message of `len` bytes spans k = perdix_slots_for(len) slots; it is one reservation of pad + k
// positions (a CAS on `tail`: the pad depends on where the message lands), the pad published by
// the leader as soon as its first slot is free, a payload written in place, and one publication:
// the header by the leader, a `__syncwarp`, one system fence, then the `seq`
// (docs/DESIGN-NOTES.md, "Issue 13, the GPU side").
//
// A whole warp sending one big message (every active lane calls, converged, with the same
// arguments; `data` in global or shared memory, read with 16-byte loads where 16-byte aligned):
//   int perdix_warp_emit(p, kind, data, len);      // Block
//   int perdix_warp_try_emit(p, kind, data, len);  // DropNewest
//   int perdix_warp_send(p, kind, data, len);      // the producer's policy
// Zero copy, for kernels that generate a payload in place (same calling rule):
//   perdix_claim c = perdix_warp_claim(p, len);      // Block; perdix_warp_try_claim: DropNewest;
//                                                    // perdix_warp_claim_policy(p, len, policy)
//   if (c.status == PERDIX_OK) {
//       ... any lanes of the warp write c.payload[0 .. len) (16-byte aligned, in the ring) ...
//       perdix_warp_commit(p, c, kind);              // every lane that claimed; publishes
//   }
// A claim must be committed (a claimed, never committed message stalls the consumer for good);
// `c.producer` (the header's producer id, the claiming warp's first active thread) may be set
// before the commit. Nothing past `len` may be written, nor anything after the commit.
#pragma once

// ---------------------------------------------------------------------------------------------
// Multi-slot messages: sizes, reservation of pad + k, the body copy, the publication.

// Slots a message of `len` bytes spans (src/ring/layout.rs `slots_for`): header and payload
// rounded up to whole slots.
__device__ __forceinline__ perdix_u64 perdix_slots_for(perdix_u32 len) {
    return (PERDIX_OFFSET_PAYLOAD + (perdix_u64)len + PERDIX_SLOT_SIZE - 1) / PERDIX_SLOT_SIZE;
}

// The largest message the ring carries (src/ring/layout.rs `max_message`): half the ring less one
// header, so a message and the pad before it always fit together.
__device__ __forceinline__ perdix_u64 perdix_max_message(const perdix_ring* r) {
    const perdix_u64 bytes = (PERDIX_RING_CAPACITY(r) / 2) * PERDIX_SLOT_SIZE;
    const perdix_u64 max = bytes > PERDIX_OFFSET_PAYLOAD ? bytes - PERDIX_OFFSET_PAYLOAD : 0;
    return PERDIX_RING_LL(r) ? PERDIX_LL_MAX_PAYLOAD : (max < 0xFFFFFFFFull ? max : 0xFFFFFFFFull);
}

// A reserved message: its first slot's position, the pad before it, and where its payload goes.
struct perdix_claim {
    unsigned char* payload;  // `len` contiguous bytes in the ring, 16-byte aligned (status OK only)
    perdix_ring* ring;       // the ring the positions are on
    perdix_u64 pos;          // position of the message's first slot
    perdix_u32 len;          // payload bytes
    perdix_u32 pad;          // slots of the pad record at pos - pad (0: none; published already)
    perdix_u32 producer;     // the header's producer id (may be changed before the commit)
    int status;              // PERDIX_OK, PERDIX_DROPPED, PERDIX_CLOSED or PERDIX_TOO_LARGE
};

// Publishes the pad record of `pad` slots at `pos` (the leader alone: its header words, a system
// fence, its `seq`), counting its slots in `extra`. Only its first slot is written (a pad's
// payload bytes never are), so only that slot needs to be free; the consumer skips the rest.
__device__ __noinline__ void perdix_publish_pad(perdix_ring* r, perdix_u64 pos, perdix_u64 pad) {
    perdix_u64* slot = (perdix_u64*)&PERDIX_RING_SLOTS(r)[pos & PERDIX_RING_MASK(r)];
    perdix_store_word(slot + PERDIX_OFFSET_LEN / 8, pad * PERDIX_SLOT_SIZE - PERDIX_OFFSET_PAYLOAD);  // kind 0
    perdix_store_word(slot + PERDIX_OFFSET_PRODUCER / 8,
                      (perdix_u64)perdix_thread_linear() | ((perdix_u64)PERDIX_FLAG_PAD << 32));
    perdix_store_word(slot + PERDIX_OFFSET_STAMP_NS / 8, 0);
    perdix_publish_fence();
    perdix_store_seq(slot, pos + 1);
    atomicAdd(&PERDIX_W(r, PERDIX_CTRL_RING_EXTRA), pad);
}

// Waits (Block) until position `last` is inside the window of the pushed head: `head` is the
// head last seen, refreshed here. Returns PERDIX_CLOSED if the consumer leaves meanwhile.
__device__ __forceinline__ int perdix_wait_room(perdix_ring* r, perdix_u64 last, perdix_u64* head, bool* stalled) {
    const perdix_u64 cap = PERDIX_RING_CAPACITY(r);
    if (last < *head + cap) return PERDIX_OK;
    if (!*stalled) {
        atomicAdd(&PERDIX_W(r, PERDIX_CTRL_RING_STALLS), 1ull);  // once per message
        *stalled = true;
    }
    perdix_u32 ns = PERDIX_BACKOFF_MIN_NS;
    while (last >= *head + cap) {
        if (perdix_load_relaxed(&PERDIX_W(r, PERDIX_CTRL_RING_CLOSED)) != 0) return PERDIX_CLOSED;
        __nanosleep(ns);
        ns = ns < PERDIX_BACKOFF_MAX_NS ? ns * 2 : PERDIX_BACKOFF_MAX_NS;
        *head = perdix_load_acquire(&PERDIX_W(r, PERDIX_CTRL_RING_HEAD));
    }
    return PERDIX_OK;
}

// The leader's reservation of one message of `k` slots, with the pad its position needs: a CAS
// on `tail`, since the pad depends on where the message lands. The pad is published as soon as
// its first slot is free, before the message's slots are waited for: the consumer then skips it
// and pushes its head on the way (its push on an empty ring waits for a few slots of progress, so
// a pad and a message of nearly a whole ring, waited for together, could wait for a push that
// never comes). Block: reserve, publish the pad, wait for the message's slots (the stall
// counted once, as for a batch). DropNewest: reserve pad + k only if they fit (the head
// refreshed once when they look not to); else, if the pad alone fits, publish it alone (the
// retry starts at the next lap); count one drop.
struct perdix_span {
    perdix_u64 pos;  // the message's first slot
    perdix_u32 pad;  // slots of the pad record before it (published already)
    int status;      // PERDIX_OK, PERDIX_DROPPED or PERDIX_CLOSED
};

__device__ __noinline__ perdix_span perdix_reserve_span(perdix_ring* r, perdix_u64 k, int policy) {
    perdix_span span;
    span.pos = 0;
    span.pad = 0;
    span.status = PERDIX_OK;
    const perdix_u64 cap = PERDIX_RING_CAPACITY(r);
    const perdix_u64 ring_mask = PERDIX_RING_MASK(r);
    perdix_u64 head = perdix_load_acquire(&PERDIX_W(r, PERDIX_CTRL_RING_HEAD));
    perdix_u64 tail = perdix_load_relaxed(&PERDIX_W(r, PERDIX_CTRL_RING_TAIL));
    bool refreshed = false;
    perdix_u64 pad;
    for (;;) {
        const perdix_u64 idx = tail & ring_mask;
        pad = idx + k > cap ? cap - idx : 0;
        perdix_u64 take = pad + k;
        bool drop = false;
        if (policy != PERDIX_POLICY_BLOCK) {
            const perdix_u64 limit = head + cap;
            const perdix_u64 room = limit > tail ? limit - tail : 0;
            if (room < take) {
                if (!refreshed) {
                    // The pushed head may be stale by up to capacity/8: look once more.
                    head = perdix_load_acquire(&PERDIX_W(r, PERDIX_CTRL_RING_HEAD));
                    refreshed = true;
                    continue;
                }
                if (pad == 0 || room < pad) {
                    atomicAdd(&PERDIX_W(r, PERDIX_CTRL_RING_DROPPED), 1ull);
                    const bool closed = perdix_load_relaxed(&PERDIX_W(r, PERDIX_CTRL_RING_CLOSED)) != 0;
                    span.status = closed ? PERDIX_CLOSED : PERDIX_DROPPED;
                    return span;
                }
                take = pad;  // the pad alone fits: publish it, drop the message
                drop = true;
            }
        }
        const perdix_u64 seen = atomicCAS(&PERDIX_W(r, PERDIX_CTRL_RING_TAIL), tail, tail + take);
        if (seen != tail) {
            tail = seen;
            continue;
        }
        if (drop) {
            perdix_publish_pad(r, tail, pad);
            atomicAdd(&PERDIX_W(r, PERDIX_CTRL_RING_DROPPED), 1ull);
            span.status = PERDIX_DROPPED;
            return span;
        }
        break;
    }
    bool stalled = false;
    if (pad) {
        span.status = perdix_wait_room(r, tail, &head, &stalled);  // the pad's first slot
        if (span.status != PERDIX_OK) return span;
        perdix_publish_pad(r, tail, pad);
    }
    span.pos = tail + pad;
    span.pad = (perdix_u32)pad;
    span.status = perdix_wait_room(r, span.pos + k - 1, &head, &stalled);
    return span;
}

// Runs of messages of one size, one CAS for a warp's messages (perdix_run.cuh, supplied in memory
// beside this file).
#include "perdix_run.cuh"

// Reserves one message of `len` bytes for the lanes in `mask` (all of them call this with the
// same `mask`, `len` and `policy`); the first lane of `mask` reserves, every lane gets the claim.
__device__ __forceinline__ perdix_claim perdix_claim_in(perdix_ring* r, perdix_u32 mask, perdix_u32 len,
                                                        int policy) {
    const perdix_u32 leader = __ffs(mask) - 1;
    perdix_span span;
    span.pos = 0;
    span.pad = 0;
    span.status = PERDIX_OK;
    if ((perdix_u64)len > perdix_max_message(r) || PERDIX_RING_LL(r)) {  // claims write the throughput layout
        span.status = PERDIX_TOO_LARGE;
    } else if (perdix_lane() == leader) {
        span = perdix_reserve_span(r, perdix_slots_for(len), policy);
    }
    perdix_claim c;
    c.ring = r;
    c.len = len;
    c.status = __shfl_sync(mask, span.status, leader);
    c.pos = __shfl_sync(mask, span.pos, leader);
    c.pad = __shfl_sync(mask, span.pad, leader);
    c.producer = __shfl_sync(mask, perdix_thread_linear(), leader);
    c.payload = (unsigned char*)&PERDIX_RING_SLOTS(r)[c.pos & PERDIX_RING_MASK(r)] + PERDIX_OFFSET_PAYLOAD;
    return c;
}

__device__ __forceinline__ void perdix_store_pair(void* addr, perdix_u64 a, perdix_u64 b) {
    asm volatile("st.global.v2.u64 [%0], {%1, %2};" ::"l"(addr), "l"(a), "l"(b) : "memory");
}

// Up to 8 bytes of `src` (n of them, 0..8) as a little-endian word, one byte load each.
__device__ __forceinline__ perdix_u64 perdix_load_tail(const unsigned char* src, perdix_u32 n) {
    perdix_u64 v = 0;
    for (perdix_u32 i = 0; i < n && i < 8; i++) v |= (perdix_u64)src[i] << (8 * i);
    return v;
}

// Bytes 16c .. 16c + 16 of `src` (`len` bytes long) as two words, reading nothing past `len`.
__device__ __forceinline__ void perdix_load_chunk(const unsigned char* src, perdix_u32 len, perdix_u32 c,
                                                  perdix_u64* a, perdix_u64* b) {
    const perdix_u32 off = c * 16;
    const unsigned char* s = src + off;
    const perdix_u32 avail = len - off;
    if (avail >= 16 && ((size_t)s & 15) == 0) {
        const ulonglong2 v = *(const ulonglong2*)s;
        *a = v.x;
        *b = v.y;
    } else if (avail >= 16 && ((size_t)s & 7) == 0) {
        *a = ((const perdix_u64*)s)[0];
        *b = ((const perdix_u64*)s)[1];
    } else {
        *a = perdix_load_tail(s, avail);
        *b = avail > 8 ? perdix_load_tail(s + 8, avail - 8) : 0;
    }
}

// The payload copy when every lane can read `src` (global or shared memory): lane of rank `rank`
// of `n` copies 16-byte chunks rank, rank + n, ...: one 512-byte store instruction per full warp.
// The last chunk is stored whole (its bytes past `len` are inside the message's last slot).
__device__ __forceinline__ void perdix_copy_body(unsigned char* dst, const unsigned char* src, perdix_u32 len,
                                                 perdix_u32 n, perdix_u32 rank) {
    const perdix_u32 chunks = (len + 15) / 16;
    for (perdix_u32 c = rank; c < chunks; c += n) {
        perdix_u64 a, b;
        perdix_load_chunk(src, len, c, &a, &b);
        perdix_store_pair(dst + c * 16, a, b);
    }
}

// The payload copy when `src` is the local memory of lane `owner` (no other lane can read it):
// the owner loads each 8-byte word and shuffles it to the lane that stores it.
__device__ __noinline__ void perdix_copy_body_local(unsigned char* dst, const unsigned char* src, perdix_u32 len,
                                                    perdix_u32 mask, perdix_u32 owner) {
    const perdix_u32 n = __popc(mask);
    const perdix_u32 rank = __popc(mask & perdix_lanemask_lt());
    const bool mine = perdix_lane() == owner;
    const perdix_u32 words = (len + 7) / 8;
    for (perdix_u32 c = 0; c < words; c += n) {
        const perdix_u32 chunk = words - c < n ? words - c : n;
        perdix_u64 keep = 0;
        for (perdix_u32 k = 0; k < chunk; k++) {
            const perdix_u32 off = (c + k) * 8;
            perdix_u64 v = 0;
            if (mine) {
                const unsigned char* s = src + off;
                v = (off + 8 <= len && ((size_t)s & 7) == 0) ? *(const perdix_u64*)s : perdix_load_tail(s, len - off);
            }
            v = __shfl_sync(mask, v, owner);
            if (rank == k) keep = v;
        }
        if (rank < chunk) perdix_store_word((perdix_u64*)(dst + (c + rank) * 8), keep);
    }
}

// Publishes a claim whose payload is written (every lane of `mask` calls this after its payload
// stores): the leader writes the header, the `__syncwarp` orders the lanes' payload stores
// before its system fence, then the `seq`. `emitted` grows by one message and `extra` by the
// message's slots beyond one (its pad counted them when it was published), so emitted + extra
// stays the positions published.
__device__ __forceinline__ void perdix_claim_publish(perdix_u32 mask, const perdix_claim& c, perdix_u32 kind,
                                                     perdix_u64 stamp) {
    perdix_ring* r = c.ring;
    const bool leader = perdix_lane() == (perdix_u32)(__ffs(mask) - 1);
    perdix_u64* first = (perdix_u64*)&PERDIX_RING_SLOTS(r)[c.pos & PERDIX_RING_MASK(r)];
    if (leader) {
        perdix_store_word(first + PERDIX_OFFSET_LEN / 8, (perdix_u64)c.len | ((perdix_u64)kind << 32));
        perdix_store_word(first + PERDIX_OFFSET_PRODUCER / 8, (perdix_u64)c.producer);  // flags 0
        perdix_store_word(first + PERDIX_OFFSET_STAMP_NS / 8, stamp);
    }
    __syncwarp(mask);
    if (leader) {
        perdix_publish_fence();
        perdix_store_seq(first, c.pos + 1);
        atomicAdd(&PERDIX_W(r, PERDIX_CTRL_RING_EMITTED), 1ull);
        const perdix_u64 extra = perdix_slots_for(c.len) - 1;
        if (extra) atomicAdd(&PERDIX_W(r, PERDIX_CTRL_RING_EXTRA), extra);
    }
}

// Every calling lane's message in turn, the lanes of `mask` writing each one together (the
// general emit's path when some lane's message needs more than one slot).
__device__ __noinline__ int perdix_emit_each(const perdix_producer* p, perdix_ring* r, perdix_u32 mask,
                                             perdix_u32 kind, const void* data, perdix_u32 len, int policy) {
    const perdix_clock clock = perdix_clock_load(p);
    const perdix_u32 n = __popc(mask);
    const perdix_u32 rank = __popc(mask & perdix_lanemask_lt());
    const int local = __isLocal(data) ? 1 : 0;
    const perdix_u32 producer = perdix_thread_linear();
    int mine = PERDIX_OK;
    int same = 0;
    __match_all_sync(mask, len, &same);
    if (same && n > 1) {
        // One length: the messages go in runs, one CAS per run (perdix_reserve_run).
        const perdix_u64 k = perdix_slots_for(len);
        const perdix_u32 most = perdix_run_max(r, k);
        const perdix_u32 lane = perdix_lane();
        const perdix_u32 leader = __ffs(mask) - 1;
        perdix_u64 head = lane == leader ? perdix_load_acquire(&PERDIX_W(r, PERDIX_CTRL_RING_HEAD)) : 0;
        bool stalled = false;
        perdix_u32 todo = mask;
        while (todo) {
            const perdix_u32 sel = perdix_pick_lanes(todo, 0, most);
            todo &= ~sel;
            const perdix_run run = perdix_run_in(r, mask, __popc(sel), k, policy, &stalled);
            perdix_u32 done = 0;
            int status = run.status;
            perdix_u32 src_mask = sel;
            for (perdix_u32 j = 0; j < run.count && status == PERDIX_OK; j++) {
                const perdix_u32 src = __ffs(src_mask) - 1;
                src_mask &= src_mask - 1;
                perdix_claim c = perdix_run_claim(r, mask, run, k, j, len, __shfl_sync(mask, producer, src), policy,
                                                  &head, &stalled);
                status = c.status;
                if (status != PERDIX_OK) break;
                const perdix_u64 stamp = perdix_stamp_with(clock);
                if (__shfl_sync(mask, local, src)) {
                    perdix_copy_body_local(c.payload, (const unsigned char*)data, len, mask, src);
                } else {
                    const unsigned char* src_j = (const unsigned char*)__shfl_sync(mask, (perdix_u64)data, src);
                    perdix_copy_body(c.payload, src_j, len, n, rank);
                }
                perdix_claim_publish(mask, c, __shfl_sync(mask, kind, src), stamp);
                done = j + 1;
            }
            if ((sel >> lane) & 1u) {
                const perdix_u32 at = __popc(sel & perdix_lanemask_lt());
                mine = at < done ? PERDIX_OK : (status == PERDIX_CLOSED ? PERDIX_CLOSED : PERDIX_DROPPED);
            }
        }
        return mine;
    }
    perdix_u32 todo = mask;
    while (todo) {
        const perdix_u32 src = __ffs(todo) - 1;
        todo &= todo - 1;
        const perdix_u32 len_j = __shfl_sync(mask, len, src);
        perdix_claim c = perdix_claim_in(r, mask, len_j, policy);
        if (c.status == PERDIX_OK) {
            const perdix_u64 stamp = perdix_stamp_with(clock);
            if (__shfl_sync(mask, local, src)) {
                perdix_copy_body_local(c.payload, (const unsigned char*)data, len_j, mask, src);
            } else {
                const unsigned char* src_j = (const unsigned char*)__shfl_sync(mask, (perdix_u64)data, src);
                perdix_copy_body(c.payload, src_j, len_j, n, rank);
            }
            c.producer = __shfl_sync(mask, producer, src);
            perdix_claim_publish(mask, c, __shfl_sync(mask, kind, src), stamp);
        }
        if (perdix_lane() == src) mine = c.status;
    }
    return mine;
}

// ---------------------------------------------------------------------------------------------
// The warp's own big messages (see the top of this file for the contracts).

__device__ __forceinline__ perdix_claim perdix_warp_claim_policy(const perdix_producer* p, perdix_u32 len,
                                                                 int policy) {
    return perdix_claim_in(perdix_ring_of_block(p), __activemask(), len, policy);
}

__device__ __forceinline__ perdix_claim perdix_warp_claim(const perdix_producer* p, perdix_u32 len) {
    return perdix_warp_claim_policy(p, len, PERDIX_POLICY_BLOCK);
}

__device__ __forceinline__ perdix_claim perdix_warp_try_claim(const perdix_producer* p, perdix_u32 len) {
    return perdix_warp_claim_policy(p, len, PERDIX_POLICY_DROP_NEWEST);
}

// Publishes a claim (status PERDIX_OK) once its payload is written; every lane that claimed calls it.
__device__ __forceinline__ int perdix_warp_commit(const perdix_producer* p, const perdix_claim& c, perdix_u32 kind) {
    if (c.status != PERDIX_OK) return c.status;
    perdix_claim_publish(__activemask(), c, kind, perdix_stamp(p));
    return PERDIX_OK;
}

__device__ __noinline__ int perdix_warp_emit_policy(const perdix_producer* p, perdix_u32 kind, const void* data,
                                                    perdix_u32 len, int policy) {
    const perdix_u32 mask = __activemask();
    const perdix_clock clock = perdix_clock_load(p);
    perdix_claim c = perdix_claim_in(perdix_ring_of_block(p), mask, len, policy);
    if (c.status != PERDIX_OK) return c.status;
    const perdix_u64 stamp = perdix_stamp_with(clock);
    perdix_copy_body(c.payload, (const unsigned char*)data, len, __popc(mask), __popc(mask & perdix_lanemask_lt()));
    perdix_claim_publish(mask, c, kind, stamp);
    return PERDIX_OK;
}

__device__ __forceinline__ int perdix_warp_emit(const perdix_producer* p, perdix_u32 kind, const void* data,
                                                perdix_u32 len) {
    return perdix_warp_emit_policy(p, kind, data, len, PERDIX_POLICY_BLOCK);
}

__device__ __forceinline__ int perdix_warp_try_emit(const perdix_producer* p, perdix_u32 kind, const void* data,
                                                    perdix_u32 len) {
    return perdix_warp_emit_policy(p, kind, data, len, PERDIX_POLICY_DROP_NEWEST);
}

__device__ __forceinline__ int perdix_warp_send(const perdix_producer* p, perdix_u32 kind, const void* data,
                                                perdix_u32 len) {
    return perdix_warp_emit_policy(p, kind, data, len, perdix_policy(p));
}


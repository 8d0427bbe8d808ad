// stress.cu: the stress producer. Every thread is one producer stream (id = global thread index)
// whose messages are exactly `perdix_transport::stress::fill(buf, id, seq)`, so the CPU
// `stress::Verifier` checks them word for word (sequence, tag, tail words).
//
// One-slot sizes: the warp writes each slot with one 8-byte store per lane, computing the words
// itself (no staging): lane k of the warp stores word k of message j for every j in the batch.
// One multi-slot size: the warp reserves its lanes' messages as one run (one CAS) and writes them
// in turn in place with 16-byte stores; mixed sizes: each lane's message claimed in turn (one
// CAS each; PERDIX_STRESS_EACH sends one size that way too). Either way every thread stays one
// stream.
#include "perdix.cuh"

// The generic kernel's stack buffer (bigger messages come from the host's scratch buffer).
#define STRESS_LOCAL_MAX 1024

// crate::stress::tag: splitmix64's finaliser over (producer, seq).
__device__ __forceinline__ perdix_u64 stress_tag(perdix_u32 producer, perdix_u64 seq) {
    perdix_u64 z = seq ^ ((perdix_u64)producer << 40) ^ 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// crate::stress::word: word `w` of an `n`-word message.
__device__ __forceinline__ perdix_u64 stress_word(perdix_u64 seq, perdix_u64 tag, perdix_u32 w, perdix_u32 n) {
    if (w == 0) return seq;
    if (w == 1) return tag;
    if (n >= 4 && w == n - 1) return ~seq;
    if (n >= 4 && w == n - 2) return tag;
    return tag ^ ((perdix_u64)w * 0x9E3779B97F4A7C15ull);
}

// crate::stress::size_of: the size of a message with tag `tag` in a run of sizes lo..=hi (multiples
// of 8; lo == hi: every message that size).
__device__ __forceinline__ perdix_u32 stress_size(perdix_u64 tag, perdix_u32 lo, perdix_u32 hi) {
    if (hi <= lo) return lo;
    return lo + 8 * (perdix_u32)(tag % (perdix_u64)((hi - lo) / 8 + 1));
}

// A paced thread's first due time (interval_ns > 0; 0 unpaced): its warp's share of one
// interval after now, so the grid's warps take turns through each interval. Every warp starting
// at once sent the whole grid's messages in one burst per interval, and a "light" load queued
// behind a burst of tens of thousands of messages (1-2.5 ms stamp to reader on the H100).
__device__ __forceinline__ perdix_u64 stress_first_due(perdix_u64 interval_ns) {
    if (!interval_ns) return 0;
    const perdix_u64 threads =
        (perdix_u64)gridDim.x * gridDim.y * gridDim.z * blockDim.x * blockDim.y * blockDim.z;
    const perdix_u64 warps = (threads + 31) / 32;
    const perdix_u64 warp = perdix_thread_linear() / 32;
    return perdix_globaltimer() + interval_ns / warps * warp;
}

// Whether lo..=hi is a run of stress sizes the ring `r` carries.
__device__ __forceinline__ bool stress_sizes_ok(const perdix_ring* r, perdix_u32 lo, perdix_u32 hi) {
    return lo >= 16 && lo % 8 == 0 && hi % 8 == 0 && lo <= hi && (perdix_u64)hi <= perdix_max_message(r);
}

// perdix_stress for one multi-slot size: each round the warp reserves a run of its lanes' next
// messages with one CAS (perdix_reserve_run), then writes and publishes them one after the
// other in place (16-byte stores, as stress_each), each with its sending lane's producer id.
// Under Block the leader waits for each message's slots before the warp writes it. The counting
// and the DropNewest retry rule are perdix_stress's.
__device__ __noinline__ void stress_run(const perdix_producer* p, perdix_u64 per_producer, perdix_u32 size,
                                        perdix_u32 kind, perdix_u64 interval_ns, perdix_u64* sent,
                                        perdix_u64* attempts) {
    const perdix_u32 id = perdix_thread_linear();
    perdix_ring* r = perdix_ring_of_block(p);
    const int policy = perdix_policy(p);
    const perdix_u32 entry = __activemask();
    const perdix_u32 lane = perdix_lane();
    const perdix_u64 k = perdix_slots_for(size);
    const perdix_u32 most = perdix_run_max(r, k);
    const perdix_u32 words = size / 8;
    perdix_u64 seq = 0;
    perdix_u64 tries = 0;
    bool live = stress_sizes_ok(r, size, size);
    perdix_u64 next = stress_first_due(interval_ns);
    bool skipped = false;  // left out of the last round's run: goes first in the next
    for (;;) {
        bool want = live && seq < per_producer;
        if (want && perdix_load_relaxed(&PERDIX_W(p, PERDIX_CTRL_HDR_STOP)) != 0) {
            live = false;
            want = false;
        }
        const perdix_u32 mask = __ballot_sync(entry, want);
        if (mask == 0) break;
        if (!want) continue;
        if (interval_ns) {
            while (perdix_globaltimer() < next) __nanosleep(interval_ns > 1000 ? 1000 : (perdix_u32)interval_ns);
            next += interval_ns;
        }
        const perdix_u32 n = __popc(mask);
        const perdix_u32 rank = __popc(mask & perdix_lanemask_lt());
        // At most `most` lanes send this round (a run holds at most half the ring), those left
        // out last round first; the others help write and send later.
        const perdix_u32 senders = n < most ? n : most;
        const perdix_u32 first = __ballot_sync(mask, skipped);
        const perdix_u32 sel = perdix_pick_lanes(first, mask & ~first, senders);
        const bool sending = (sel >> lane) & 1u;
        const perdix_u32 mine = __popc(sel & perdix_lanemask_lt());  // this lane's message in the run
        skipped = !sending;
        const perdix_clock clock = perdix_clock_load(p);
        const perdix_u64 tag = stress_tag(id, seq);
        bool stalled = false;
        const perdix_run run = perdix_run_in(r, mask, senders, k, policy, &stalled);
        const perdix_u32 leader = __ffs(mask) - 1;
        perdix_u64 head = lane == leader ? perdix_load_acquire(&PERDIX_W(r, PERDIX_CTRL_RING_HEAD)) : 0;
        perdix_u32 done = 0;  // messages of the run published
        int status = run.status;
        perdix_u32 src_mask = sel;
        for (perdix_u32 j = 0; j < run.count && status == PERDIX_OK; j++) {
            const perdix_u32 src = __ffs(src_mask) - 1;
            src_mask &= src_mask - 1;
            const perdix_claim c =
                perdix_run_claim(r, mask, run, k, j, size, __shfl_sync(mask, id, src), policy, &head, &stalled);
            status = c.status;
            if (status != PERDIX_OK) break;
            const perdix_u64 seq_j = __shfl_sync(mask, seq, src);
            const perdix_u64 tag_j = __shfl_sync(mask, tag, src);
            const perdix_u64 stamp = perdix_stamp_with(clock);
            for (perdix_u32 w = 2 * rank; w < words; w += 2 * n) {
                const perdix_u64 a = stress_word(seq_j, tag_j, w, words);
                if (w + 1 < words) {
                    perdix_store_pair(c.payload + 8 * w, a, stress_word(seq_j, tag_j, w + 1, words));
                } else {
                    perdix_store_word((perdix_u64*)(c.payload + 8 * w), a);
                }
            }
            perdix_claim_publish(mask, c, kind, stamp);
            done = j + 1;
        }
        if (status == PERDIX_CLOSED) live = false;
        // This lane's place among the senders: published (the sequence advances), dropped (the
        // run had no room for it: retried next round), or not sending this round.
        if (sending) {
            if (mine < done) {
                tries++;
                seq++;
            } else if (mine >= run.count && status != PERDIX_CLOSED) {
                tries++;
                __nanosleep(256);  // dropped: let the consumer catch up before retrying
            }
        }
    }
    if (sent) sent[id] = seq;
    if (attempts) atomicAdd(attempts, tries);
}

// perdix_stress for multi-slot or mixed sizes: each round the warp sends its lanes' next messages
// one after the other, each claimed in the ring and written in place (lane k stores words 2k and
// 2k + 1 of every 64: 16-byte stores), then committed with the sending lane's producer id. The
// counting and the DropNewest retry rule are perdix_stress's.
__device__ __noinline__ void stress_each(const perdix_producer* p, perdix_u64 per_producer, perdix_u32 lo,
                                         perdix_u32 hi, perdix_u32 kind, perdix_u64 interval_ns, perdix_u64* sent,
                                         perdix_u64* attempts) {
    const perdix_u32 id = perdix_thread_linear();
    perdix_ring* r = perdix_ring_of_block(p);
    const int policy = perdix_policy(p);
    const perdix_u32 entry = __activemask();
    const perdix_u32 lane = perdix_lane();
    perdix_u64 seq = 0;
    perdix_u64 tries = 0;
    bool live = stress_sizes_ok(r, lo, hi);
    perdix_u64 next = stress_first_due(interval_ns);
    for (;;) {
        bool want = live && seq < per_producer;
        if (want && perdix_load_relaxed(&PERDIX_W(p, PERDIX_CTRL_HDR_STOP)) != 0) {
            live = false;
            want = false;
        }
        const perdix_u32 mask = __ballot_sync(entry, want);
        if (mask == 0) break;
        if (!want) continue;
        if (interval_ns) {
            while (perdix_globaltimer() < next) __nanosleep(interval_ns > 1000 ? 1000 : (perdix_u32)interval_ns);
            next += interval_ns;
        }
        const perdix_u32 n = __popc(mask);
        const perdix_u32 rank = __popc(mask & perdix_lanemask_lt());
        const perdix_clock clock = perdix_clock_load(p);
        const perdix_u64 tag = stress_tag(id, seq);
        const perdix_u32 size = stress_size(tag, lo, hi);
        bool dropped = false;
        bool closed = false;
        perdix_u32 todo = mask;
        while (todo) {
            const perdix_u32 src = __ffs(todo) - 1;
            todo &= todo - 1;
            const perdix_u64 seq_j = __shfl_sync(mask, seq, src);
            const perdix_u64 tag_j = __shfl_sync(mask, tag, src);
            const perdix_u32 size_j = __shfl_sync(mask, size, src);
            perdix_claim c = perdix_claim_in(r, mask, size_j, policy);
            if (c.status == PERDIX_OK) {
                const perdix_u64 stamp = perdix_stamp_with(clock);
                const perdix_u32 words = size_j / 8;
                for (perdix_u32 w = 2 * rank; w < words; w += 2 * n) {
                    const perdix_u64 a = stress_word(seq_j, tag_j, w, words);
                    if (w + 1 < words) {
                        perdix_store_pair(c.payload + 8 * w, a, stress_word(seq_j, tag_j, w + 1, words));
                    } else {
                        perdix_store_word((perdix_u64*)(c.payload + 8 * w), a);
                    }
                }
                c.producer = __shfl_sync(mask, id, src);
                perdix_claim_publish(mask, c, kind, stamp);
            } else if (c.status == PERDIX_CLOSED) {
                closed = true;
            }
            if (lane == src) {
                if (c.status == PERDIX_OK) {
                    tries++;
                    seq++;
                } else if (c.status == PERDIX_DROPPED) {
                    tries++;
                    dropped = true;
                }
            }
        }
        if (closed) live = false;
        if (dropped) __nanosleep(256);  // let the consumer catch up before retrying this sequence
    }
    if (sent) sent[id] = seq;
    if (attempts) atomicAdd(attempts, tries);
}

// perdix_stress on a low-latency ring (sizes up to PERDIX_LL_MAX_PAYLOAD): each thread builds its
// message in a stack buffer and sends it with the general perdix_emit_policy, which batches the
// warp's calling lanes into one reservation and writes flagged words with no system fence. The
// counting, pacing and the DropNewest retry rule are perdix_stress's.
__device__ __noinline__ void stress_ll(const perdix_producer* p, perdix_u64 per_producer, perdix_u32 size,
                                       perdix_u32 kind, perdix_u64 interval_ns, perdix_u64* sent,
                                       perdix_u64* attempts) {
    const perdix_u32 id = perdix_thread_linear();
    const int policy = perdix_policy(p);
    const perdix_u32 words = size / 8;
    perdix_u64 buf[PERDIX_LL_MAX_PAYLOAD / 8];
    perdix_u64 seq = 0;
    perdix_u64 tries = 0;
    bool live = size >= 16 && size % 8 == 0 && size <= PERDIX_LL_MAX_PAYLOAD;
    perdix_u64 next = stress_first_due(interval_ns);
    while (live && seq < per_producer) {
        if (perdix_load_relaxed(&PERDIX_W(p, PERDIX_CTRL_HDR_STOP)) != 0) break;
        if (interval_ns) {
            while (perdix_globaltimer() < next) __nanosleep(interval_ns > 1000 ? 1000 : (perdix_u32)interval_ns);
            next += interval_ns;
        }
        const perdix_u64 tag = stress_tag(id, seq);
        for (perdix_u32 w = 0; w < words; w++) buf[w] = stress_word(seq, tag, w, words);
        const int status = perdix_emit_policy(p, kind, buf, size, policy);
        tries++;
        if (status == PERDIX_OK) {
            seq++;
        } else if (status == PERDIX_DROPPED) {
            __nanosleep(256);  // let the consumer catch up before retrying this sequence
        } else {
            live = false;
        }
    }
    if (sent) sent[id] = seq;
    if (attempts) atomicAdd(attempts, tries);
}

// Each thread sends messages 0, 1, 2, ... of `size` bytes (a multiple of 8, at least 16; with
// `size_max` > `size`, each message's size is stress_size(tag, size, size_max)) until it has sent
// `per_producer`, the host asks it to stop, or its ring's consumer is gone. Under
// DropNewest a dropped message is retried (same sequence) after a short sleep, so every
// producer's stream stays gap-free and emitted + dropped == attempts exactly.
//
// `interval_ns` > 0 paces each thread (one message per interval: light-load latency runs).
// At exit, `sent[id]` = messages this producer emitted (when `sent` is not null), and
// `*attempts` grows by its attempts.
extern "C" __global__ void perdix_stress(const perdix_producer* p, perdix_u64 per_producer, perdix_u32 size,
                                         perdix_u32 size_max, perdix_u32 kind, perdix_u64 interval_ns,
                                         perdix_u64* sent, perdix_u64* attempts) {
    if (PERDIX_RING_LL(perdix_ring_of_block(p))) {
        stress_ll(p, per_producer, size, kind, interval_ns, sent, attempts);
        return;
    }
#ifndef PERDIX_STRESS_EACH
    if (size_max == size && size > PERDIX_SLOT_PAYLOAD) {
        stress_run(p, per_producer, size, kind, interval_ns, sent, attempts);
        return;
    }
#endif
    if (size_max != size || size > PERDIX_SLOT_PAYLOAD) {
        stress_each(p, per_producer, size, size_max, kind, interval_ns, sent, attempts);
        return;
    }
    const perdix_u32 id = perdix_thread_linear();
    perdix_ring* r = perdix_ring_of_block(p);
    const int policy = perdix_policy(p);
    const perdix_u32 entry = __activemask();
    const perdix_u32 payload_words = size / 8;
    const perdix_u32 words = PERDIX_HEADER_WORDS + payload_words;
    const perdix_u64 len_kind = (perdix_u64)size | ((perdix_u64)kind << 32);
    perdix_u64 seq = 0;
    perdix_u64 tries = 0;
    bool live = size >= 16 && size <= PERDIX_SLOT_PAYLOAD && (size % 8) == 0;
    perdix_u64 next = stress_first_due(interval_ns);
    for (;;) {
        bool want = live && seq < per_producer;
        if (want && perdix_load_relaxed(&PERDIX_W(p, PERDIX_CTRL_HDR_STOP)) != 0) {
            live = false;
            want = false;
        }
        const perdix_u32 mask = __ballot_sync(entry, want);
        if (mask == 0) break;
        if (!want) continue;
        if (interval_ns) {
            while (perdix_globaltimer() < next) __nanosleep(interval_ns > 1000 ? 1000 : (perdix_u32)interval_ns);
            next += interval_ns;
        }
        const perdix_u32 n = __popc(mask);
        const perdix_u32 rank = __popc(mask & perdix_lanemask_lt());
        const perdix_clock clock = perdix_clock_load(p);
        const perdix_batch b = perdix_warp_reserve(r, mask, n, policy);
        if (b.status == PERDIX_CLOSED) {
            live = false;
            continue;
        }
        tries++;
        const perdix_u64 tag = stress_tag(id, seq);
        const perdix_u64 stamp = perdix_stamp_with(clock);
        perdix_u32 src_mask = mask;
        for (perdix_u32 j = 0; j < b.count; j++) {
            const perdix_u32 src = __ffs(src_mask) - 1;
            src_mask &= src_mask - 1;
            const perdix_u64 seq_j = __shfl_sync(mask, seq, src);
            const perdix_u64 tag_j = __shfl_sync(mask, tag, src);
            const perdix_u32 id_j = __shfl_sync(mask, id, src);
            const perdix_u64 stamp_j = __shfl_sync(mask, stamp, src);
            perdix_u64* slot = (perdix_u64*)&PERDIX_RING_SLOTS(r)[(b.base + j) & PERDIX_RING_MASK(r)];
            for (perdix_u32 w = rank; w < words; w += n) {
                perdix_u64 v;
                if (w == 0) continue;  // seq: published last
                else if (w == PERDIX_OFFSET_LEN / 8) v = len_kind;
                else if (w == PERDIX_OFFSET_PRODUCER / 8) v = (perdix_u64)id_j;
                else if (w == PERDIX_OFFSET_STAMP_NS / 8) v = stamp_j;
                else v = stress_word(seq_j, tag_j, w - PERDIX_HEADER_WORDS, payload_words);
                perdix_store_word(slot + w, v);
            }
        }
        perdix_warp_publish(r, mask, b, rank);
        if (rank < b.count) {
            seq++;
        } else {
            __nanosleep(256);  // dropped: let the consumer catch up before retrying this sequence
        }
    }
    if (sent) sent[id] = seq;
    if (attempts) atomicAdd(attempts, tries);
}

// The message buffer of thread `id`: its stack buffer `local` (scratch 0), or its part of the
// host's scratch buffer (`stride` bytes a thread, 16-byte aligned).
__device__ __forceinline__ perdix_u64* stress_buffer(perdix_u64* local, perdix_u64* scratch, perdix_u32 id,
                                                     perdix_u32 hi) {
    if (!scratch) return local;
    const perdix_u64 stride_words = ((perdix_u64)hi + 15) / 16 * 2;
    return scratch + (perdix_u64)id * stride_words;
}

// A producer kernel through the general API: each thread sends `per_producer` stress messages
// (sizes as perdix_stress) with perdix_send (the producer's policy), from a local buffer (sizes
// up to STRESS_LOCAL_MAX, with `scratch` 0) or from its part of the global `scratch` buffer
// (((size_max + 15) / 16) * 16 bytes per thread). Used by tests of the general path (both address
// spaces, one-slot batches and messages in turn) and as the example for kernel authors.
extern "C" __global__ void perdix_stress_generic(const perdix_producer* p, perdix_u64 per_producer, perdix_u32 size,
                                                 perdix_u32 size_max, perdix_u32 kind, perdix_u64* sent,
                                                 perdix_u64* scratch) {
    const perdix_u32 id = perdix_thread_linear();
    perdix_u64 local[STRESS_LOCAL_MAX / 8];
    perdix_u64* buf = stress_buffer(local, scratch, id, size_max);
    perdix_u64 seq = 0;
    bool live = stress_sizes_ok(perdix_ring_of_block(p), size, size_max) && (scratch || size_max <= STRESS_LOCAL_MAX);
    while (live && seq < per_producer) {
        if (perdix_should_stop(p)) break;
        const perdix_u64 tag = stress_tag(id, seq);
        const perdix_u32 len = stress_size(tag, size, size_max);
        const perdix_u32 n = len / 8;
        for (perdix_u32 w = 0; w < n; w++) buf[w] = stress_word(seq, tag, w, n);
        int status = perdix_send(p, kind, buf, len);
        if (status == PERDIX_OK) {
            seq++;
        } else if (status == PERDIX_DROPPED) {
            __nanosleep(256);
        } else {
            break;
        }
    }
    if (sent) sent[id] = seq;
}

// The whole-warp API: each thread writes its next message into its part of `scratch` (global,
// as perdix_stress_generic's), then the warp sends its lanes' messages in turn with
// perdix_warp_send (the first lane's) or its claim/commit steps (the others'), every lane of the warp calling (converged: the loop runs until no lane has
// anything left, lanes that are done still help). Sizes and counting as perdix_stress_generic.
extern "C" __global__ void perdix_stress_warp_emit(const perdix_producer* p, perdix_u64 per_producer,
                                                   perdix_u32 size, perdix_u32 size_max, perdix_u32 kind,
                                                   perdix_u64* sent, perdix_u64* scratch) {
    const perdix_u32 id = perdix_thread_linear();
    const perdix_u32 entry = __activemask();
    const perdix_u32 lane = perdix_lane();
    perdix_u64* buf = stress_buffer(0, scratch, id, size_max);
    perdix_u64 seq = 0;
    bool live = scratch && stress_sizes_ok(perdix_ring_of_block(p), size, size_max);
    bool filled = false;
    perdix_u32 len = 0;
    for (;;) {
        if (live && perdix_should_stop(p)) live = false;
        const bool want = live && seq < per_producer;
        const perdix_u32 mask = __ballot_sync(entry, want);
        if (mask == 0) break;
        if (want && !filled) {
            const perdix_u64 tag = stress_tag(id, seq);
            len = stress_size(tag, size, size_max);
            const perdix_u32 n = len / 8;
            for (perdix_u32 w = 0; w < n; w++) buf[w] = stress_word(seq, tag, w, n);
            filled = true;
        }
        __syncwarp(entry);
        bool dropped = false;
        perdix_u32 todo = mask;
        while (todo) {
            const perdix_u32 src = __ffs(todo) - 1;
            todo &= todo - 1;
            const perdix_u32 len_j = __shfl_sync(entry, len, src);
            const perdix_u64* buf_j = (const perdix_u64*)__shfl_sync(entry, (perdix_u64)buf, src);
            // The warp's first lane's messages go through perdix_warp_send itself (its header
            // names the warp's first thread: that lane's own stream). The other lanes' go through
            // its three steps (claim, 16-byte body copy, commit) with the header's producer set to
            // lane `src`'s stream, so the verifier's per-thread checks hold for every lane.
            const bool first = src == (perdix_u32)(__ffs(entry) - 1);
            perdix_claim c;
            c.status = PERDIX_OK;
            int status = PERDIX_OK;
            if (first) {
                status = perdix_warp_send(p, kind, buf_j, len_j);
            } else {
                c = perdix_warp_claim_policy(p, len_j, perdix_policy(p));
                status = c.status;
            }
            if (!first && status == PERDIX_OK) {
                c.producer = __shfl_sync(entry, id, src);
                perdix_copy_body(c.payload, (const unsigned char*)buf_j, len_j, __popc(entry),
                                 __popc(entry & perdix_lanemask_lt()));
                status = perdix_warp_commit(p, c, kind);
            }
            if (lane == src) {
                if (status == PERDIX_OK) {
                    seq++;
                    filled = false;
                } else if (status == PERDIX_DROPPED) {
                    dropped = true;
                } else {
                    live = false;
                }
            }
        }
        if (dropped) __nanosleep(256);
    }
    if (sent) sent[id] = seq;
}

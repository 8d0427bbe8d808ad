// stress.cu: the stress producer. Every thread is one producer stream (id = global thread index)
// whose messages are exactly `perdix_transport::stress::fill(buf, id, seq)`, so the CPU
// `stress::Verifier` checks them word for word (sequence, tag, tail words).
//
// The warp writes each slot with one 8-byte store per lane, computing the words itself (no
// staging): lane k of the warp stores word k of message j for every j in the batch.
#include "perdix.cuh"

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

// Each thread sends messages 0, 1, 2, ... of `size` bytes (a multiple of 8 in 16..=224) until it
// has sent `per_producer`, the host asks it to stop, or its ring's consumer is gone. Under
// DropNewest a dropped message is retried (same sequence) after a short sleep, so every
// producer's stream stays gap-free and emitted + dropped == attempts exactly.
//
// `interval_ns` > 0 paces each thread (one message per interval: light-load latency runs).
// At exit, `sent[id]` = messages this producer emitted (when `sent` is not null), and
// `*attempts` grows by its attempts.
extern "C" __global__ void perdix_stress(const perdix_producer* p, perdix_u64 per_producer, perdix_u32 size,
                                         perdix_u32 kind, perdix_u64 interval_ns, perdix_u64* sent,
                                         perdix_u64* attempts) {
    const perdix_u32 id = perdix_thread_linear();
    perdix_ring* r = perdix_ring_of_block(p);
    const int policy = perdix_policy(p);
    const perdix_u32 entry = __activemask();
    const perdix_u32 payload_words = size / 8;
    const perdix_u32 words = PERDIX_HEADER_WORDS + payload_words;
    const perdix_u64 len_kind = (perdix_u64)size | ((perdix_u64)kind << 32);
    perdix_u64 seq = 0;
    perdix_u64 tries = 0;
    bool live = size >= 16 && size <= PERDIX_PAYLOAD_MAX && (size % 8) == 0;
    perdix_u64 next = interval_ns ? perdix_globaltimer() : 0;
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

// A producer kernel through the general API: each thread sends `per_producer` stress messages
// with perdix_send (the producer's policy), from a local buffer. Used by tests of the general
// path and as the example for kernel authors.
extern "C" __global__ void perdix_stress_generic(const perdix_producer* p, perdix_u64 per_producer, perdix_u32 size,
                                                 perdix_u32 kind, perdix_u64* sent) {
    const perdix_u32 id = perdix_thread_linear();
    const perdix_u32 n = size / 8;
    perdix_u64 buf[PERDIX_PAYLOAD_MAX / 8];
    perdix_u64 seq = 0;
    while (seq < per_producer) {
        if (perdix_should_stop(p)) break;
        const perdix_u64 tag = stress_tag(id, seq);
        for (perdix_u32 w = 0; w < n; w++) buf[w] = stress_word(seq, tag, w, n);
        int status = perdix_send(p, kind, buf, size);
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

// perdix_ll.cuh: low-latency rings (RingMode::LowLatency), supplied in memory beside perdix.cuh.
//
// The slot (src/ring/ll.rs has the table): 32 words of 8 bytes; word w of the message at
// position `pos` holds 32 bits of data in its low half and the flag ((pos << 1) | 1) in its high
// half. Data words: len, kind, producer, flags (0), stamp_ns low, stamp_ns high, then the payload
// 4 bytes a word (little-endian, zero past len). A message of len <= PERDIX_LL_MAX_PAYLOAD (104)
// bytes uses PERDIX_LL_HEADER_WORDS + ceil(len / 4) words; each is one st.relaxed.sys 8-byte
// store, single-copy atomic, so the consumer takes the message once every word it uses carries
// the flag, whatever order they land in. No system fence, no separate publication store: the
// warp's stores leave as soon as they issue (NCCL's LL protocol). The consumer zeroes the words
// before it releases the slot, so a word is either 0 or written for this lap.
#pragma once

static_assert(PERDIX_LL_MAX_PAYLOAD == (PERDIX_SLOT_WORDS - PERDIX_LL_HEADER_WORDS) * 4,
              "a low-latency message fills at most one slot's words");

// The flag of every word of the message at `pos` (src/ring/ll.rs `flag`).
__device__ __forceinline__ perdix_u32 perdix_ll_flag(perdix_u64 pos) {
    return ((perdix_u32)pos << 1) | 1u;
}

// Data half of word `w` of this lane's message, as its owner computes it.
__device__ __forceinline__ perdix_u32 perdix_ll_data(perdix_u32 w, perdix_u32 kind, const void* data, perdix_u32 len,
                                                     perdix_u32 producer, perdix_u64 stamp) {
    switch (w) {
        case 0: return len;
        case 1: return kind;
        case 2: return producer;
        case 3: return 0;
        case 4: return (perdix_u32)stamp;
        case 5: return (perdix_u32)(stamp >> 32);
        default: break;
    }
    const perdix_u32 off = (w - PERDIX_LL_HEADER_WORDS) * 4;
    const unsigned char* bytes = (const unsigned char*)data + off;
    if (off + 4 <= len && ((size_t)bytes & 3) == 0) return *(const perdix_u32*)bytes;
    const perdix_u32 avail = off < len ? len - off : 0;
    return (perdix_u32)perdix_load_tail(bytes, avail < 4 ? avail : 4);
}

__device__ __forceinline__ void perdix_ll_store(perdix_u64* addr, perdix_u32 data, perdix_u32 flag) {
    const perdix_u64 v = (perdix_u64)data | ((perdix_u64)flag << 32);
    asm volatile("st.relaxed.sys.global.u64 [%0], %1;" ::"l"(addr), "l"(v) : "memory");
}

// perdix_emit_policy on a low-latency ring: the calling lanes' messages (each at most
// PERDIX_LL_MAX_PAYLOAD bytes, else PERDIX_TOO_LARGE for that lane) reserved with one atomic, then
// each written by the warp, lane k storing word k (one store instruction a message when 32 lanes
// call); the owner lane reads its `data` and shuffles each word to the lane that stores it.
__device__ __noinline__ int perdix_emit_ll(const perdix_producer* p, perdix_ring* r, perdix_u32 kind, const void* data,
                                           perdix_u32 len, int policy) {
    if (len > PERDIX_LL_MAX_PAYLOAD) return PERDIX_TOO_LARGE;
    const perdix_lanes l = perdix_calling_lanes();
    const perdix_u32 mask = l.mask, n = l.n, rank = l.rank;
    perdix_u64 stamp;
    const perdix_batch b = perdix_reserve_lanes(r, l, perdix_clock_load(p), policy, &stamp);
    if (b.status != PERDIX_OK) return b.status;
    for (perdix_u32 j = 0, left = mask; j < b.count; j++) {
        const perdix_u32 src = perdix_next_lane(&left);
        const perdix_u32 len_j = __shfl_sync(mask, len, src);
        const perdix_u32 words = PERDIX_LL_HEADER_WORDS + (len_j + 3) / 4;
        const perdix_u64 pos = b.base + j;
        const perdix_u32 flag = perdix_ll_flag(pos);
        perdix_u64* slot = (perdix_u64*)&PERDIX_RING_SLOTS(r)[pos & PERDIX_RING_MASK(r)];
        if (n == 1) {
            // One calling lane: it stores its own words (no shuffles).
            for (perdix_u32 w = 0; w < words; w++)
                perdix_ll_store(slot + w, perdix_ll_data(w, kind, data, len, l.producer, stamp), flag);
            continue;
        }
        for (perdix_u32 c = 0; c < words; c += n) {
            perdix_u32 mine = 0;
            const perdix_u32 chunk = words - c < n ? words - c : n;
            for (perdix_u32 k = 0; k < chunk; k++) {
                perdix_u32 v = 0;
                if (l.lane == src) v = perdix_ll_data(c + k, kind, data, len, l.producer, stamp);
                v = __shfl_sync(mask, v, src);
                if (rank == k) mine = v;
            }
            if (rank < chunk) perdix_ll_store(slot + c + rank, mine, flag);
        }
    }
    if (rank == 0 && b.count) atomicAdd(&PERDIX_W(r, PERDIX_CTRL_RING_EMITTED), (perdix_u64)b.count);
    return rank < b.count ? PERDIX_OK : PERDIX_DROPPED;
}

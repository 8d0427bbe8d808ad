// perdix.cuh: the device side of the perdix-transport ring protocol.
//
// Supplied in memory to NVRTC by `perdix_transport::cuda` (kernels `#include "perdix.cuh"`), with
// the slot layout of `src/ring/layout.rs` and the control-block layout of `src/cuda/control.rs`
// passed as `-D` defines; the static asserts below stop a build whose structs disagree with them.
//
// The protocol (docs/ARCHITECTURE.md, "The slot protocol"; decisions in docs/DESIGN-NOTES.md):
// - a ring is `capacity` slots of PERDIX_SLOT_SIZE bytes; positions count slots. A message of
//   `len` bytes spans k = perdix_slots_for(len) slots from its position `pos`: a 32-byte header in
//   the first, the payload from byte 32 of that slot on through the next slots' full bytes (one
//   contiguous range, never wrapping: at the ring's end a pad record, flags PERDIX_FLAG_PAD,
//   fills the rest of the lap first). The message is complete when the first slot's `seq` holds
//   `pos + 1`, written last, after a system-scope release fence;
// - positions are reserved per warp on the ring's `tail`, in device memory: one atomicAdd for a
//   batch of one-slot messages, a CAS loop for a multi-slot message (pad + k at once);
// - the consumer's head lives in device memory too (the host pushes it with
//   cuStreamWriteValue64), so no GPU thread reads host memory for backpressure; a warp whose
//   positions are a lap ahead of that head waits with `__nanosleep` backoff, polling the head and
//   the ring's `closed` word (set when the consumer is dropped);
// - the warp writes each message cooperatively (one-slot: lane k stores 8-byte word k, one slot
//   per store instruction; multi-slot: 16-byte stores, 512 bytes per store instruction), and only
//   the cache lines the message uses.
//
// Kernel authors call, from any thread of any block (divergent calls are fine):
//   int perdix_emit(p, kind, data, len);      // waits for room (Block)
//   int perdix_try_emit(p, kind, data, len);  // drops when full, counted (DropNewest)
//   int perdix_send(p, kind, data, len);      // the policy the host chose for the producer
//   bool perdix_should_stop(p);               // the host asked the kernel to stop, or the consumer left
// `len` is anything up to perdix_max_message(ring) = (capacity / 2) * PERDIX_SLOT_SIZE - 32 bytes.
// Lanes whose messages all fit one slot (len <= PERDIX_SLOT_PAYLOAD) are batched: one atomic, one
// store instruction per slot. Otherwise each calling lane's message goes in turn, the whole group
// of calling lanes writing it; `data` in local memory (a stack array) is read by its own lane and
// shuffled to the others, `data` in global or shared memory is loaded by every lane directly.
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
//
// Each returns PERDIX_OK, PERDIX_DROPPED, PERDIX_CLOSED (the consumer is gone: stop producing) or
// PERDIX_TOO_LARGE (nothing sent, nothing counted). `p` is the kernel's first parameter,
// `const perdix_producer*`.
#pragma once

#ifndef PERDIX_SLOT_SIZE
#error "perdix.cuh needs the layout defines from perdix_transport::layout::cuda_defines()"
#endif
#ifndef PERDIX_CTRL_HEADER_SIZE
#error "perdix.cuh needs the control-block defines from perdix_transport::cuda"
#endif

typedef unsigned int perdix_u32;
typedef unsigned long long perdix_u64;
typedef long long perdix_i64;

// ---------------------------------------------------------------------------------------------
// The slot (src/ring/layout.rs).

struct __align__(PERDIX_SLOT_ALIGN) perdix_slot {
    perdix_u64 seq;        // pos + 1 once complete
    perdix_u32 len;        // payload bytes
    perdix_u32 kind;       // message type
    perdix_u32 producer;   // producer id
    perdix_u32 flags;      // PERDIX_FLAG_PAD on a pad record, otherwise 0 (the rest reserved)
    perdix_u64 stamp_ns;   // producer clock, mapped onto the CPU clock
    unsigned char payload[PERDIX_SLOT_PAYLOAD];  // a multi-slot message runs on into the next slots
};

// NVRTC has no `offsetof` (nor `__builtin_offsetof`). Each offset is checked instead as the size
// of a packed struct of the fields before it, plus the field's alignment dividing that offset (so
// the unpacked struct has no padding there either, and its offsets are the same).
#define PERDIX_PACKED __attribute__((packed))
struct PERDIX_PACKED perdix_prefix_len { perdix_u64 seq; };
struct PERDIX_PACKED perdix_prefix_kind { perdix_u64 seq; perdix_u32 len; };
struct PERDIX_PACKED perdix_prefix_producer { perdix_u64 seq; perdix_u32 len, kind; };
struct PERDIX_PACKED perdix_prefix_flags { perdix_u64 seq; perdix_u32 len, kind, producer; };
struct PERDIX_PACKED perdix_prefix_stamp { perdix_u64 seq; perdix_u32 len, kind, producer, flags; };
struct PERDIX_PACKED perdix_prefix_payload { perdix_u64 seq; perdix_u32 len, kind, producer, flags; perdix_u64 stamp_ns; };
static_assert(PERDIX_OFFSET_SEQ == 0, "slot: seq opens the slot");
static_assert(sizeof(perdix_prefix_len) == PERDIX_OFFSET_LEN && PERDIX_OFFSET_LEN % 4 == 0, "slot: len offset");
static_assert(sizeof(perdix_prefix_kind) == PERDIX_OFFSET_KIND && PERDIX_OFFSET_KIND % 4 == 0, "slot: kind offset");
static_assert(sizeof(perdix_prefix_producer) == PERDIX_OFFSET_PRODUCER && PERDIX_OFFSET_PRODUCER % 4 == 0,
              "slot: producer offset");
static_assert(sizeof(perdix_prefix_flags) == PERDIX_OFFSET_FLAGS && PERDIX_OFFSET_FLAGS % 4 == 0, "slot: flags offset");
static_assert(sizeof(perdix_prefix_stamp) == PERDIX_OFFSET_STAMP_NS && PERDIX_OFFSET_STAMP_NS % 8 == 0,
              "slot: stamp_ns offset");
static_assert(sizeof(perdix_prefix_payload) == PERDIX_OFFSET_PAYLOAD, "slot: payload offset");
static_assert(sizeof(perdix_slot) == PERDIX_SLOT_SIZE, "slot size");
static_assert(alignof(perdix_slot) == PERDIX_SLOT_ALIGN, "slot alignment");
static_assert(PERDIX_OFFSET_PAYLOAD + PERDIX_SLOT_PAYLOAD == PERDIX_SLOT_SIZE, "payload fills the slot");
static_assert(PERDIX_OFFSET_PAYLOAD % 16 == 0 && PERDIX_SLOT_ALIGN % 16 == 0, "the payload starts 16-byte aligned");
static_assert(PERDIX_FLAG_PAD == 1, "pad records carry flags bit 0");
static_assert(PERDIX_SLOT_SIZE == 32 * 8, "a warp writes one slot with one 8-byte store per lane");
static_assert(PERDIX_OFFSET_PAYLOAD % 8 == 0, "header is whole 8-byte words");

#define PERDIX_SLOT_WORDS (PERDIX_SLOT_SIZE / 8)
#define PERDIX_HEADER_WORDS (PERDIX_OFFSET_PAYLOAD / 8)
#define PERDIX_LINE_WORDS (PERDIX_CACHE_LINE / 8)

// ---------------------------------------------------------------------------------------------
// The control block (src/cuda/control.rs): one device allocation per producer, a header and then
// one record per ring. Both are arrays of 64-bit words at the offsets the host passes as
// PERDIX_CTRL_* defines, so there is no second struct layout to keep in step. Every word the host
// writes while kernels run (head, closed, stop, clock) is one aligned 64-bit word.
//
// Ring record: line 0 (read-only on the device): slots (device address of slot 0), mask
// (capacity - 1), capacity, index; line 1: tail (the reservation counter); line 2: head (the
// consumer's, pushed by the host) and closed (the consumer is gone); line 3: the exact counters
// emitted (messages), dropped (messages, DropNewest), stalls (times a warp found the ring full and
// waited) and extra (slots published beyond one per message: continuation and pad slots, so
// emitted + extra is the positions published).
// Header: nrings | policy << 32, flags, stop, then the clock mapping
// cpu_ns = g + offset + (((g - g0) * slope) >> 32).

struct __align__(PERDIX_CTRL_LINE) perdix_ring {
    perdix_u64 w[PERDIX_CTRL_RING_SIZE / 8];
};

struct __align__(PERDIX_CTRL_LINE) perdix_producer {
    perdix_u64 w[PERDIX_CTRL_HEADER_SIZE / 8];
};

static_assert(sizeof(perdix_ring) == PERDIX_CTRL_RING_SIZE, "ring record size");
static_assert(sizeof(perdix_producer) == PERDIX_CTRL_HEADER_SIZE, "producer header size");
static_assert(PERDIX_CTRL_RING_TAIL % PERDIX_CTRL_LINE == 0 && PERDIX_CTRL_RING_HEAD % PERDIX_CTRL_LINE == 0 &&
                  PERDIX_CTRL_RING_EMITTED % PERDIX_CTRL_LINE == 0,
              "tail, head and counters each open their own line");
static_assert(PERDIX_CTRL_HDR_POLICY == PERDIX_CTRL_HDR_NRINGS + 4, "policy is the upper half of the nrings word");
static_assert(PERDIX_CTRL_RING_SLOTS + 8 <= PERDIX_CTRL_RING_TAIL && PERDIX_CTRL_RING_MASK + 8 <= PERDIX_CTRL_RING_TAIL &&
                  PERDIX_CTRL_RING_CAPACITY + 8 <= PERDIX_CTRL_RING_TAIL && PERDIX_CTRL_RING_INDEX + 8 <= PERDIX_CTRL_RING_TAIL,
              "ring: line 0 words");
static_assert(PERDIX_CTRL_RING_TAIL + 8 <= PERDIX_CTRL_RING_HEAD && PERDIX_CTRL_RING_CLOSED + 8 <= PERDIX_CTRL_RING_EMITTED &&
                  PERDIX_CTRL_RING_STALLS + 8 <= PERDIX_CTRL_RING_SIZE && PERDIX_CTRL_RING_DROPPED + 8 <= PERDIX_CTRL_RING_SIZE &&
                  PERDIX_CTRL_RING_EXTRA + 8 <= PERDIX_CTRL_RING_SIZE,
              "ring: every word inside the record");
static_assert(PERDIX_CTRL_HDR_CLOCK_SLOPE + 8 <= PERDIX_CTRL_HEADER_SIZE && PERDIX_CTRL_HDR_CLOCK_G0 + 8 <= PERDIX_CTRL_HEADER_SIZE &&
                  PERDIX_CTRL_HDR_CLOCK_OFFSET + 8 <= PERDIX_CTRL_HEADER_SIZE && PERDIX_CTRL_HDR_STOP + 8 <= PERDIX_CTRL_HEADER_SIZE,
              "header: every word inside the header");

#define PERDIX_W(rec, OFF) ((rec)->w[(OFF) / 8])
#define PERDIX_RING_SLOTS(r) ((perdix_slot*)PERDIX_W(r, PERDIX_CTRL_RING_SLOTS))
#define PERDIX_RING_MASK(r) PERDIX_W(r, PERDIX_CTRL_RING_MASK)
#define PERDIX_RING_CAPACITY(r) PERDIX_W(r, PERDIX_CTRL_RING_CAPACITY)

#define PERDIX_OK 0
#define PERDIX_DROPPED 1
#define PERDIX_CLOSED 2
#define PERDIX_TOO_LARGE 3

#define PERDIX_POLICY_BLOCK 0
#define PERDIX_POLICY_DROP_NEWEST 1

#define PERDIX_FLAG_TIMESTAMPS ((perdix_u64)PERDIX_FLAG_TIMESTAMPS_BIT)

#ifndef PERDIX_BACKOFF_MIN_NS
#define PERDIX_BACKOFF_MIN_NS 64
#endif
#ifndef PERDIX_BACKOFF_MAX_NS
#define PERDIX_BACKOFF_MAX_NS 2048
#endif

// ---------------------------------------------------------------------------------------------
// Small helpers.

__device__ __forceinline__ perdix_u64 perdix_globaltimer() {
    perdix_u64 t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

__device__ __forceinline__ perdix_u32 perdix_lane() {
    perdix_u32 lane;
    asm("mov.u32 %0, %%laneid;" : "=r"(lane));
    return lane;
}

__device__ __forceinline__ perdix_u32 perdix_lanemask_lt() {
    perdix_u32 m;
    asm("mov.u32 %0, %%lanemask_lt;" : "=r"(m));
    return m;
}

// A word the host writes while kernels run (head, closed, stop): read from L2, never a stale L1 line.
__device__ __forceinline__ perdix_u64 perdix_load_acquire(const perdix_u64* addr) {
    perdix_u64 v;
    asm volatile("ld.acquire.sys.global.u64 %0, [%1];" : "=l"(v) : "l"(addr) : "memory");
    return v;
}

__device__ __forceinline__ perdix_u64 perdix_load_relaxed(const perdix_u64* addr) {
    perdix_u64 v;
    asm volatile("ld.relaxed.sys.global.u64 %0, [%1];" : "=l"(v) : "l"(addr) : "memory");
    return v;
}

__device__ __forceinline__ void perdix_store_word(perdix_u64* addr, perdix_u64 v) {
    asm volatile("st.global.u64 [%0], %1;" ::"l"(addr), "l"(v) : "memory");
}

// The fence between a slot's body and its `seq`: a release fence at system scope (the CPU's
// acquire load of `seq` pairs with it). `__threadfence_system()` (fence.sc.sys) is stronger than
// needed; define PERDIX_FENCE_SC to use it instead.
__device__ __forceinline__ void perdix_publish_fence() {
#ifdef PERDIX_FENCE_SC
    __threadfence_system();
#else
    asm volatile("fence.acq_rel.sys;" ::: "memory");
#endif
}

// The publication store: after the system fence, so every body word is visible before it.
__device__ __forceinline__ void perdix_store_seq(perdix_u64* addr, perdix_u64 v) {
    asm volatile("st.relaxed.sys.global.u64 [%0], %1;" ::"l"(addr), "l"(v) : "memory");
}

__device__ __forceinline__ perdix_u32 perdix_block_linear() {
    return blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
}

__device__ __forceinline__ perdix_u32 perdix_thread_linear() {
    perdix_u32 in_block = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    return perdix_block_linear() * (blockDim.x * blockDim.y * blockDim.z) + in_block;
}

__device__ __forceinline__ perdix_u32 perdix_nrings(const perdix_producer* p) {
    return (perdix_u32)PERDIX_W(p, PERDIX_CTRL_HDR_NRINGS);
}

__device__ __forceinline__ int perdix_policy(const perdix_producer* p) {
    return (int)(PERDIX_W(p, PERDIX_CTRL_HDR_NRINGS) >> 32);
}

// The ring this block writes into.
__device__ __forceinline__ perdix_ring* perdix_ring_of_block(const perdix_producer* p) {
    perdix_ring* rings = (perdix_ring*)((char*)p + PERDIX_CTRL_HEADER_SIZE);
    return rings + (perdix_block_linear() % perdix_nrings(p));
}

// The GPU->CPU clock mapping, loaded ahead of the stamp (the loads take an L2 round trip, which
// must not land between the stamp and the publication).
struct perdix_clock {
    perdix_i64 offset;
    perdix_u64 g0;
    perdix_i64 slope;
    bool on;
};

__device__ __forceinline__ perdix_clock perdix_clock_load(const perdix_producer* p) {
    perdix_clock c;
    c.on = (PERDIX_W(p, PERDIX_CTRL_HDR_FLAGS) & PERDIX_FLAG_TIMESTAMPS) != 0;
    c.offset = c.on ? (perdix_i64)perdix_load_relaxed(&PERDIX_W(p, PERDIX_CTRL_HDR_CLOCK_OFFSET)) : 0;
    c.g0 = c.on ? perdix_load_relaxed(&PERDIX_W(p, PERDIX_CTRL_HDR_CLOCK_G0)) : 0;
    c.slope = c.on ? (perdix_i64)perdix_load_relaxed(&PERDIX_W(p, PERDIX_CTRL_HDR_CLOCK_SLOPE)) : 0;
    return c;
}

// %globaltimer now, mapped onto the CPU clock (crate::clock::now_ns); 0 without timestamps:
// cpu_ns = g + offset + (((g - g0) * slope) >> 32).
__device__ __forceinline__ perdix_u64 perdix_stamp_with(const perdix_clock& c) {
    if (!c.on) return 0;
    const perdix_u64 g = perdix_globaltimer();
    const perdix_i64 dg = (perdix_i64)(g - c.g0);
    const perdix_i64 corr =
        (perdix_i64)(__mul64hi(dg, c.slope) << 32) + (perdix_i64)(((perdix_u64)(dg * c.slope)) >> 32);
    return g + (perdix_u64)c.offset + (perdix_u64)corr;
}

__device__ __forceinline__ perdix_u64 perdix_stamp(const perdix_producer* p) {
    return perdix_stamp_with(perdix_clock_load(p));
}

__device__ __forceinline__ bool perdix_should_stop(const perdix_producer* p) {
    if (perdix_load_relaxed(&PERDIX_W(p, PERDIX_CTRL_HDR_STOP)) != 0) return true;
    perdix_ring* r = perdix_ring_of_block(p);
    return perdix_load_relaxed(&PERDIX_W(r, PERDIX_CTRL_RING_CLOSED)) != 0;
}

// ---------------------------------------------------------------------------------------------
// Reservation: one atomic per warp, room checked against the device-memory head.

struct perdix_batch {
    perdix_u64 base;   // first reserved position
    perdix_u32 count;  // positions reserved (lanes of rank < count got one)
    int status;        // PERDIX_OK, or PERDIX_CLOSED (nothing reserved is valid)
};

// Reserves `n` positions for the lanes in `mask` (all of them call this, with the same `mask`
// and `policy`). Block: all `n`, waiting for room. DropNewest: as many as fit, the rest counted
// as dropped.
__device__ __forceinline__ perdix_batch perdix_warp_reserve(perdix_ring* r, perdix_u32 mask, perdix_u32 n,
                                                            int policy) {
    const perdix_u32 lane = perdix_lane();
    const perdix_u32 leader = __ffs(mask) - 1;
    perdix_u64 base = 0;
    perdix_u32 count = 0;
    int status = PERDIX_OK;
    if (lane == leader) {
        const perdix_u64 cap = PERDIX_RING_CAPACITY(r);
        perdix_u64 head = perdix_load_acquire(&PERDIX_W(r, PERDIX_CTRL_RING_HEAD));
        if (policy == PERDIX_POLICY_BLOCK) {
            base = atomicAdd(&PERDIX_W(r, PERDIX_CTRL_RING_TAIL), (perdix_u64)n);
            count = n;
            const perdix_u64 last = base + n - 1;
            if (last >= head + cap) {
                atomicAdd(&PERDIX_W(r, PERDIX_CTRL_RING_STALLS), 1ull);
                perdix_u32 ns = PERDIX_BACKOFF_MIN_NS;
                while (last >= head + cap) {
                    if (perdix_load_relaxed(&PERDIX_W(r, PERDIX_CTRL_RING_CLOSED)) != 0) {
                        status = PERDIX_CLOSED;
                        break;
                    }
                    __nanosleep(ns);
                    ns = ns < PERDIX_BACKOFF_MAX_NS ? ns * 2 : PERDIX_BACKOFF_MAX_NS;
                    head = perdix_load_acquire(&PERDIX_W(r, PERDIX_CTRL_RING_HEAD));
                }
            }
        } else {
            perdix_u64 tail = perdix_load_relaxed(&PERDIX_W(r, PERDIX_CTRL_RING_TAIL));
            bool refreshed = false;
            for (;;) {
                perdix_u64 limit = head + cap;
                perdix_u64 room = limit > tail ? limit - tail : 0;
                if (room < n && !refreshed) {
                    // The pushed head may be stale by up to capacity/8: look once more.
                    head = perdix_load_acquire(&PERDIX_W(r, PERDIX_CTRL_RING_HEAD));
                    refreshed = true;
                    continue;
                }
                count = room < n ? (perdix_u32)room : n;
                if (count == 0) break;
                perdix_u64 seen = atomicCAS(&PERDIX_W(r, PERDIX_CTRL_RING_TAIL), tail, tail + count);
                if (seen == tail) break;
                tail = seen;
            }
            base = tail;
            if (count < n) {
                atomicAdd(&PERDIX_W(r, PERDIX_CTRL_RING_DROPPED), (perdix_u64)(n - count));
                if (count == 0 && perdix_load_relaxed(&PERDIX_W(r, PERDIX_CTRL_RING_CLOSED)) != 0) status = PERDIX_CLOSED;
            }
        }
    }
    perdix_batch b;
    b.base = __shfl_sync(mask, base, leader);
    b.count = __shfl_sync(mask, count, leader);
    b.status = __shfl_sync(mask, status, leader);
    return b;
}

// Publishes the slots of a batch once their bodies are written: each lane of rank < count
// fences and stores `seq` of its slot. The `__syncwarp` orders the other lanes' body stores
// (cooperative writes) before this lane's fence.
__device__ __forceinline__ void perdix_warp_publish(perdix_ring* r, perdix_u32 mask, perdix_batch b,
                                                    perdix_u32 rank) {
    __syncwarp(mask);
    if (rank < b.count) {
        perdix_publish_fence();
        perdix_u64 pos = b.base + rank;
        perdix_store_seq(&PERDIX_RING_SLOTS(r)[pos & PERDIX_RING_MASK(r)].seq, pos + 1);
    }
    if (rank == 0 && b.count) atomicAdd(&PERDIX_W(r, PERDIX_CTRL_RING_EMITTED), (perdix_u64)b.count);
}

// Word `w` (1..PERDIX_SLOT_WORDS) of the slot for this lane's message, as the owner computes it.
__device__ __forceinline__ perdix_u64 perdix_owner_word(perdix_u32 w, perdix_u32 kind, const void* data,
                                                        perdix_u32 len, perdix_u32 producer, perdix_u64 stamp) {
    if (w == PERDIX_OFFSET_LEN / 8) return (perdix_u64)len | ((perdix_u64)kind << 32);
    if (w == PERDIX_OFFSET_PRODUCER / 8) return (perdix_u64)producer;  // flags 0
    if (w == PERDIX_OFFSET_STAMP_NS / 8) return stamp;
    perdix_u32 off = (w - PERDIX_HEADER_WORDS) * 8;
    const unsigned char* bytes = (const unsigned char*)data + off;
    if (off + 8 <= len && ((size_t)bytes & 7) == 0) return *(const perdix_u64*)bytes;
    perdix_u64 v = 0;
    for (perdix_u32 i = 0; i < 8 && off + i < len; i++) v |= (perdix_u64)bytes[i] << (8 * i);
    return v;
}

// Number of 8-byte words of a slot a message of `len` bytes uses (header included): nothing past
// them is written, so a message touches only ceil((32 + len) / 64) cache lines.
__device__ __forceinline__ perdix_u32 perdix_words_for(perdix_u32 len) {
    return PERDIX_HEADER_WORDS + (len + 7) / 8;
}

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
    return max < 0xFFFFFFFFull ? max : 0xFFFFFFFFull;
}

// A reserved message: its first slot's position, the pad before it, and where its payload goes.
struct perdix_claim {
    unsigned char* payload;  // `len` contiguous bytes in the ring, 16-byte aligned (status OK only)
    perdix_ring* ring;       // the ring the positions are on
    perdix_u64 pos;          // position of the message's first slot
    perdix_u32 len;          // payload bytes
    perdix_u32 pad;          // slots of the pad record at pos - pad (0: none)
    perdix_u32 producer;     // the header's producer id (may be changed before the commit)
    int status;              // PERDIX_OK, PERDIX_DROPPED, PERDIX_CLOSED or PERDIX_TOO_LARGE
};

// The leader's reservation of one message of `k` slots, with the pad its position needs: a CAS
// on `tail`, since the pad depends on where the message lands. Block: reserve, then wait for the
// pushed head (the stall counted once, as for a batch). DropNewest: reserve only if pad + k fit
// (the head refreshed once when they look not to), else count one drop.
struct perdix_span {
    perdix_u64 pos;  // the message's first slot
    perdix_u32 pad;  // slots of the pad record before it
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
    perdix_u64 need;
    for (;;) {
        const perdix_u64 idx = tail & ring_mask;
        const perdix_u64 pad = idx + k > cap ? cap - idx : 0;
        need = pad + k;
        if (policy != PERDIX_POLICY_BLOCK) {
            const perdix_u64 limit = head + cap;
            const perdix_u64 room = limit > tail ? limit - tail : 0;
            if (room < need) {
                if (!refreshed) {
                    // The pushed head may be stale by up to capacity/8: look once more.
                    head = perdix_load_acquire(&PERDIX_W(r, PERDIX_CTRL_RING_HEAD));
                    refreshed = true;
                    continue;
                }
                atomicAdd(&PERDIX_W(r, PERDIX_CTRL_RING_DROPPED), 1ull);
                const bool closed = perdix_load_relaxed(&PERDIX_W(r, PERDIX_CTRL_RING_CLOSED)) != 0;
                span.status = closed ? PERDIX_CLOSED : PERDIX_DROPPED;
                return span;
            }
        }
        const perdix_u64 seen = atomicCAS(&PERDIX_W(r, PERDIX_CTRL_RING_TAIL), tail, tail + need);
        if (seen == tail) {
            span.pos = tail + pad;
            span.pad = (perdix_u32)pad;
            break;
        }
        tail = seen;
    }
    const perdix_u64 last = tail + need - 1;
    if (last >= head + cap) {
        atomicAdd(&PERDIX_W(r, PERDIX_CTRL_RING_STALLS), 1ull);
        perdix_u32 ns = PERDIX_BACKOFF_MIN_NS;
        while (last >= head + cap) {
            if (perdix_load_relaxed(&PERDIX_W(r, PERDIX_CTRL_RING_CLOSED)) != 0) {
                span.status = PERDIX_CLOSED;
                break;
            }
            __nanosleep(ns);
            ns = ns < PERDIX_BACKOFF_MAX_NS ? ns * 2 : PERDIX_BACKOFF_MAX_NS;
            head = perdix_load_acquire(&PERDIX_W(r, PERDIX_CTRL_RING_HEAD));
        }
    }
    return span;
}

// Reserves one message of `len` bytes for the lanes in `mask` (all of them call this with the
// same `mask`, `len` and `policy`); the first lane of `mask` reserves, every lane gets the claim.
__device__ __forceinline__ perdix_claim perdix_claim_in(perdix_ring* r, perdix_u32 mask, perdix_u32 len,
                                                        int policy) {
    const perdix_u32 leader = __ffs(mask) - 1;
    perdix_span span;
    span.pos = 0;
    span.pad = 0;
    span.status = PERDIX_OK;
    if ((perdix_u64)len > perdix_max_message(r)) {
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
// stores): the leader writes the header (and the pad record's), the `__syncwarp` orders the
// lanes' payload stores before its system fence, then the pad's `seq` and the message's `seq`.
// `emitted` grows by one message, `extra` by the slots beyond one (pad included), so
// emitted + extra stays the positions published.
__device__ __forceinline__ void perdix_claim_publish(perdix_u32 mask, const perdix_claim& c, perdix_u32 kind,
                                                     perdix_u64 stamp) {
    perdix_ring* r = c.ring;
    const bool leader = perdix_lane() == (perdix_u32)(__ffs(mask) - 1);
    perdix_slot* slots = PERDIX_RING_SLOTS(r);
    const perdix_u64 ring_mask = PERDIX_RING_MASK(r);
    perdix_u64* first = (perdix_u64*)&slots[c.pos & ring_mask];
    perdix_u64* pad = (perdix_u64*)&slots[(c.pos - c.pad) & ring_mask];
    if (leader) {
        perdix_store_word(first + PERDIX_OFFSET_LEN / 8, (perdix_u64)c.len | ((perdix_u64)kind << 32));
        perdix_store_word(first + PERDIX_OFFSET_PRODUCER / 8, (perdix_u64)c.producer);  // flags 0
        perdix_store_word(first + PERDIX_OFFSET_STAMP_NS / 8, stamp);
        if (c.pad) {
            const perdix_u64 pad_len = (perdix_u64)c.pad * PERDIX_SLOT_SIZE - PERDIX_OFFSET_PAYLOAD;
            perdix_store_word(pad + PERDIX_OFFSET_LEN / 8, pad_len);  // kind 0
            perdix_store_word(pad + PERDIX_OFFSET_PRODUCER / 8,
                              (perdix_u64)c.producer | ((perdix_u64)PERDIX_FLAG_PAD << 32));
            perdix_store_word(pad + PERDIX_OFFSET_STAMP_NS / 8, stamp);
        }
    }
    __syncwarp(mask);
    if (leader) {
        perdix_publish_fence();
        if (c.pad) perdix_store_seq(pad, c.pos - c.pad + 1);
        perdix_store_seq(first, c.pos + 1);
        atomicAdd(&PERDIX_W(r, PERDIX_CTRL_RING_EMITTED), 1ull);
        const perdix_u64 extra = perdix_slots_for(c.len) - 1 + c.pad;
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

// The general emit: any thread, any address space for `data` (local arrays included). Lanes
// calling together whose messages all fit one slot are batched: one reservation, then the warp
// writes each slot cooperatively (the owner lane reads its words and shuffles them to the lanes
// that store them). If any calling lane's message needs more slots, perdix_emit_each sends them
// one at a time.
__device__ __noinline__ int perdix_emit_policy(const perdix_producer* p, perdix_u32 kind, const void* data,
                                               perdix_u32 len, int policy) {
    if (len > PERDIX_SLOT_PAYLOAD && (perdix_u64)len > perdix_max_message(perdix_ring_of_block(p)))
        return PERDIX_TOO_LARGE;
    const perdix_u32 mask = __activemask();
    const perdix_u32 n = __popc(mask);
    const perdix_u32 rank = __popc(mask & perdix_lanemask_lt());
    perdix_ring* r = perdix_ring_of_block(p);
    const perdix_clock clock = perdix_clock_load(p);
    // The warp vote: any calling lane's message more than one slot, and every message goes in turn.
    if (__ballot_sync(mask, len > PERDIX_SLOT_PAYLOAD) != 0)
        return perdix_emit_each(p, r, mask, kind, data, len, policy);
    perdix_batch b = perdix_warp_reserve(r, mask, n, policy);
    if (b.status != PERDIX_OK) return b.status;
    const perdix_u32 producer = perdix_thread_linear();
    const perdix_u64 stamp = perdix_stamp_with(clock);
    const perdix_u32 lane = perdix_lane();
    perdix_u32 src_mask = mask;
    for (perdix_u32 j = 0; j < b.count; j++) {
        const perdix_u32 src = __ffs(src_mask) - 1;
        src_mask &= src_mask - 1;
        const perdix_u32 len_j = __shfl_sync(mask, len, src);
        const perdix_u32 words = perdix_words_for(len_j);
        perdix_u64* slot = (perdix_u64*)&PERDIX_RING_SLOTS(r)[(b.base + j) & PERDIX_RING_MASK(r)];
        for (perdix_u32 c = 0; c < words; c += n) {
            perdix_u64 mine = 0;
            const perdix_u32 chunk = words - c < n ? words - c : n;
            for (perdix_u32 k = 0; k < chunk; k++) {
                const perdix_u32 w = c + k;
                perdix_u64 v = 0;
                if (lane == src && w != 0) v = perdix_owner_word(w, kind, data, len, producer, stamp);
                v = __shfl_sync(mask, v, src);
                if (rank == k) mine = v;
            }
            const perdix_u32 w = c + rank;
            if (rank < chunk && w != 0) perdix_store_word(slot + w, mine);
        }
    }
    perdix_warp_publish(r, mask, b, rank);
    return rank < b.count ? PERDIX_OK : PERDIX_DROPPED;
}

__device__ __forceinline__ int perdix_emit(const perdix_producer* p, perdix_u32 kind, const void* data, perdix_u32 len) {
    return perdix_emit_policy(p, kind, data, len, PERDIX_POLICY_BLOCK);
}

__device__ __forceinline__ int perdix_try_emit(const perdix_producer* p, perdix_u32 kind, const void* data,
                                               perdix_u32 len) {
    return perdix_emit_policy(p, kind, data, len, PERDIX_POLICY_DROP_NEWEST);
}

__device__ __forceinline__ int perdix_send(const perdix_producer* p, perdix_u32 kind, const void* data, perdix_u32 len) {
    return perdix_emit_policy(p, kind, data, len, perdix_policy(p));
}

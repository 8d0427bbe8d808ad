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
// `len` is anything up to perdix_max_message(ring) = (capacity / 2) * PERDIX_SLOT_SIZE - 32 bytes
// (PERDIX_LL_MAX_PAYLOAD = 104 on a low-latency ring: perdix_ll.cuh, no system fence per message).
// Lanes whose messages all fit one slot (len <= PERDIX_SLOT_PAYLOAD) are batched: one atomic, one
// store instruction per slot. Otherwise each calling lane's message goes in turn, the whole group
// of calling lanes writing it; `data` in local memory (a stack array) is read by its own lane and
// shuffled to the others, `data` in global or shared memory is loaded by every lane directly.
//
// A whole warp sending one big message (perdix_warp_emit, perdix_warp_try_emit,
// perdix_warp_send) and the zero-copy perdix_warp_claim / perdix_warp_commit: perdix_span.cuh.
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
static_assert(PERDIX_CTRL_RING_MODE + 8 <= PERDIX_CTRL_RING_TAIL, "ring: the mode word is on line 0");
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
// A low-latency ring (perdix_ll.cuh): flagged words, messages of up to PERDIX_LL_MAX_PAYLOAD bytes.
#define PERDIX_RING_LL(r) (PERDIX_W(r, PERDIX_CTRL_RING_MODE) != 0)

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
        perdix_u64 head;
        if (policy == PERDIX_POLICY_BLOCK) {
            // The reservation first, then the head: the acquire orders what comes after it, not
            // the atomic before it, so both are in flight at once (one L2 round trip, not two),
            // and a head read later is only fresher.
            base = atomicAdd(&PERDIX_W(r, PERDIX_CTRL_RING_TAIL), (perdix_u64)n);
            head = perdix_load_acquire(&PERDIX_W(r, PERDIX_CTRL_RING_HEAD));
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
            head = perdix_load_acquire(&PERDIX_W(r, PERDIX_CTRL_RING_HEAD));
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

// Multi-slot messages and the whole-warp API (perdix_span.cuh, supplied in memory beside this
// file): perdix_emit_each below sends the messages a one-slot batch cannot carry.
#include "perdix_span.cuh"

// The calling lanes of a one-slot emit: where every one-slot emit path (throughput and
// low-latency) starts.
struct perdix_lanes {
    perdix_u32 mask;      // the lanes calling together
    perdix_u32 n;         // how many
    perdix_u32 rank;      // this lane's place among them
    perdix_u32 lane;      // this lane's index in the warp
    perdix_u32 producer;  // this thread's producer id
};

__device__ __forceinline__ perdix_lanes perdix_calling_lanes() {
    perdix_lanes l;
    l.mask = __activemask();
    l.n = __popc(l.mask);
    l.rank = __popc(l.mask & perdix_lanemask_lt());
    l.lane = perdix_lane();
    l.producer = perdix_thread_linear();
    return l;
}

// One reservation for the calling lanes' messages, then the stamp they all carry (taken after
// the reservation: a wait for room is backpressure, not transport latency).
__device__ __forceinline__ perdix_batch perdix_reserve_lanes(perdix_ring* r, const perdix_lanes& l,
                                                             const perdix_clock& clock, int policy, perdix_u64* stamp) {
    const perdix_batch b = perdix_warp_reserve(r, l.mask, l.n, policy);
    *stamp = b.status == PERDIX_OK ? perdix_stamp_with(clock) : 0;
    return b;
}

// The next sending lane of a batch: the lowest lane left in `*left`, taken off it.
__device__ __forceinline__ perdix_u32 perdix_next_lane(perdix_u32* left) {
    const perdix_u32 src = __ffs(*left) - 1;
    *left &= *left - 1;
    return src;
}

// Low-latency rings (perdix_ll.cuh, supplied in memory beside this file): perdix_emit_policy
// below sends into them with perdix_emit_ll.
#include "perdix_ll.cuh"

// The general emit: any thread, any address space for `data` (local arrays included). Lanes
// calling together whose messages all fit one slot are batched: one reservation, then the warp
// writes each slot cooperatively (the owner lane reads its words and shuffles them to the lanes
// that store them). If any calling lane's message needs more slots, perdix_emit_each sends them
// one at a time.
__device__ __noinline__ int perdix_emit_policy(const perdix_producer* p, perdix_u32 kind, const void* data,
                                               perdix_u32 len, int policy) {
    if (PERDIX_RING_LL(perdix_ring_of_block(p))) return perdix_emit_ll(p, perdix_ring_of_block(p), kind, data, len, policy);
    if (len > PERDIX_SLOT_PAYLOAD && (perdix_u64)len > perdix_max_message(perdix_ring_of_block(p)))
        return PERDIX_TOO_LARGE;
    const perdix_lanes l = perdix_calling_lanes();
    const perdix_u32 mask = l.mask, n = l.n, rank = l.rank, lane = l.lane, producer = l.producer;
    perdix_ring* r = perdix_ring_of_block(p);
    const perdix_clock clock = perdix_clock_load(p);
    // The warp vote: any calling lane's message more than one slot, and every message goes in turn.
    if (__ballot_sync(mask, len > PERDIX_SLOT_PAYLOAD) != 0)
        return perdix_emit_each(p, r, mask, kind, data, len, policy);
    perdix_u64 stamp;
    const perdix_batch b = perdix_reserve_lanes(r, l, clock, policy, &stamp);
    if (b.status != PERDIX_OK) return b.status;
    perdix_u32 src_mask = mask;
    for (perdix_u32 j = 0; j < b.count; j++) {
        const perdix_u32 src = perdix_next_lane(&src_mask);
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

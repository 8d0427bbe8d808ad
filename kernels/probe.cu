// probe.cu: small kernels the host uses to check the layout, calibrate the clock and test faults.
#include "perdix.cuh"

// Writes the device compiler's view of every slot offset into `out` (address differences on a
// real slot pointer), reads back control words the host wrote, and the multi-slot sizes as
// perdix.cuh computes them, so the host can check all of it against `layout` and `cuda::control`.
extern "C" __global__ void perdix_layout_probe(const perdix_producer* p, perdix_u64* out) {
    perdix_ring* r = (perdix_ring*)((char*)p + PERDIX_CTRL_HEADER_SIZE);
    perdix_slot* s = PERDIX_RING_SLOTS(r);
    const char* b = (const char*)s;
    out[0] = (const char*)&s->seq - b;
    out[1] = (const char*)&s->len - b;
    out[2] = (const char*)&s->kind - b;
    out[3] = (const char*)&s->producer - b;
    out[4] = (const char*)&s->flags - b;
    out[5] = (const char*)&s->stamp_ns - b;
    out[6] = (const char*)&s->payload[0] - b;
    out[7] = (const char*)(s + 1) - b;
    out[8] = alignof(perdix_slot);
    out[9] = PERDIX_RING_CAPACITY(r);
    out[10] = PERDIX_RING_MASK(r);
    out[11] = perdix_nrings(p);
    out[12] = (perdix_u64)perdix_policy(p);
    out[13] = PERDIX_W(p, PERDIX_CTRL_HDR_FLAGS);
    out[14] = PERDIX_W(r, PERDIX_CTRL_RING_INDEX);
    // Multi-slot messages: a slot's payload, the ring's largest message, the slots of 4 KiB, the pad flag.
    out[15] = sizeof(s->payload);
    out[16] = perdix_max_message(r);
    out[17] = perdix_slots_for(4096);
    out[18] = PERDIX_FLAG_PAD;
}

// Clock probe and ping-pong: for round i = 1..rounds, waits until the host writes i into
// `cells[0]`, then writes %globaltimer into `cells[2]` and, after a system fence, i into
// `cells[1]`. The host timestamps its write and the moment it sees the answer. Gives up after
// `timeout_ns` without a request (the host is gone).
extern "C" __global__ void perdix_clock_probe(perdix_u64* cells, perdix_u32 rounds, perdix_u64 timeout_ns) {
    for (perdix_u32 i = 1; i <= rounds; i++) {
        const perdix_u64 start = perdix_globaltimer();
        while (perdix_load_relaxed(&cells[0]) != i) {
            if (perdix_globaltimer() - start > timeout_ns) return;
        }
        const perdix_u64 g = perdix_globaltimer();
        asm volatile("st.relaxed.sys.global.u64 [%0], %1;" ::"l"(&cells[2]), "l"(g) : "memory");
        __threadfence_system();
        perdix_store_seq(&cells[1], (perdix_u64)i);
    }
}

// Faults on purpose (tests: a kernel fault surfaces as Error::KernelFault). Launched through a
// GpuProducer like any producer kernel, so `p` comes first.
extern "C" __global__ void perdix_trap(const perdix_producer* p, perdix_u32 really) {
    if (really) __trap();
}

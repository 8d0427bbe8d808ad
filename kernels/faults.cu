// faults.cu: kernels that break the protocol on purpose, for tests/gpu_faults.rs (fault
// injection). Not shipped as a producer kernel: each one writes a slot the way no kernel built on
// perdix.cuh would, to prove the host turns it into a typed error and never hangs.
#include "perdix.cuh"

#define PERDIX_FAULT_LEN 0        // len one byte above the ring's largest message
#define PERDIX_FAULT_LAP_AHEAD 1  // seq = pos + 1 + capacity (a lap ahead of the consumer)
#define PERDIX_FAULT_SEQ_MAX 2    // seq = u64::MAX

// One thread (lane 0 of block 0; the rest return) sends `good` valid messages (kind 1, payload
// the message number), then reserves the next position like perdix_emit does and publishes a
// slot with the corrupt header `mode` asks for, then keeps sending valid messages (kind 2) with
// perdix_emit until the ring is closed (PERDIX_CLOSED): a kernel that only exits once the host
// closes the ring after finding the corrupt slot.
extern "C" __global__ void perdix_fault_header(const perdix_producer* p, perdix_u32 mode, perdix_u32 good) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    perdix_ring* r = perdix_ring_of_block(p);
    for (perdix_u32 i = 0; i < good; i++) {
        if (perdix_emit(p, 1, &i, sizeof i) != PERDIX_OK) return;
    }
    // The ring holds more than `good + 1` slots (the test makes it so): no wait for room.
    const perdix_u64 pos = atomicAdd(&PERDIX_W(r, PERDIX_CTRL_RING_TAIL), 1ull);
    perdix_slot* s = &PERDIX_RING_SLOTS(r)[pos & PERDIX_RING_MASK(r)];
    perdix_u64 seq = pos + 1;
    perdix_u32 len = 4;
    if (mode == PERDIX_FAULT_LEN) len = (perdix_u32)(perdix_max_message(r) + 1);
    if (mode == PERDIX_FAULT_LAP_AHEAD) seq = pos + 1 + PERDIX_RING_CAPACITY(r);
    if (mode == PERDIX_FAULT_SEQ_MAX) seq = ~0ull;
    perdix_store_word((perdix_u64*)s + PERDIX_OFFSET_LEN / 8, (perdix_u64)len | (7ull << 32));
    perdix_store_word((perdix_u64*)s + PERDIX_OFFSET_PRODUCER / 8, 0);
    perdix_store_word((perdix_u64*)s + PERDIX_OFFSET_STAMP_NS / 8, 0);
    perdix_store_word((perdix_u64*)s + PERDIX_OFFSET_PAYLOAD / 8, 0xdeadbeefull);
    perdix_publish_fence();
    perdix_store_seq(&s->seq, seq);
    atomicAdd(&PERDIX_W(r, PERDIX_CTRL_RING_EMITTED), 1ull);
    for (perdix_u32 i = 0;; i++) {
        if (perdix_emit(p, 2, &i, sizeof i) == PERDIX_CLOSED) return;
    }
}

// Every thread sends `per_thread` messages of 4 bytes (its message number) with perdix_try_emit
// (drops and counts when the ring looks full), then returns. For the DropNewest head-staleness
// measurement: the host controls when the consumer's head reaches the device.
extern "C" __global__ void perdix_fault_try_burst(const perdix_producer* p, perdix_u32 per_thread) {
    for (perdix_u32 i = 0; i < per_thread; i++) perdix_try_emit(p, 3, &i, sizeof i);
}

// Lane 0 of block 0 sends `n` messages (kind 4, payload the message number, 4 bytes) with
// perdix_emit, then traps: a kernel fault right after `n` published messages, for a consumer
// that makes no call on the producer (the fault watch, issue 20 item 5).
extern "C" __global__ void perdix_fault_emit_then_trap(const perdix_producer* p, perdix_u32 n) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    for (perdix_u32 i = 0; i < n; i++) {
        if (perdix_emit(p, 4, &i, sizeof i) != PERDIX_OK) return;
    }
    __trap();
}

// readings.cu: the producer kernel of the `02_gpu_producer` example.
//
// Every thread of the grid sends `per_thread` readings, one message each, in order. The kernel
// touches the ring only through perdix.cuh (supplied in memory at compile time): `perdix_emit`
// waits for room, and returns PERDIX_CLOSED once the consumer is gone, which ends the loop.
#include "perdix.cuh"

#define KIND_READING 7

// The Rust side parses the same three 4-byte words (`Reading` in main.rs).
struct Reading { perdix_u32 thread, n; float value; };
static_assert(sizeof(Reading) == 12, "Reading layout");

extern "C" __global__ void readings(const perdix_producer* p, perdix_u32 per_thread) {
    const perdix_u32 thread = blockIdx.x * blockDim.x + threadIdx.x;
    for (perdix_u32 n = 0; n < per_thread; n++) {
        Reading r = { thread, n, sinf(0.01f * thread + n) };
        if (perdix_emit(p, KIND_READING, &r, sizeof r) == PERDIX_CLOSED) return;
    }
}

// echo.cu: the ring round trip (docs/DESIGN-NOTES.md, "Latency (issue 23)"). The host rings `bell`,
// a word in pinned host memory, with round numbers 1, 2, ...; lane 0 of every warp of the one block
// polls it, so several polls of host memory are in flight at once, staggered by their phases (one
// poll is a PCIe read of about 1.2 µs). The first warp to see round i claims it in shared memory
// and emits one message through the ring with perdix_emit (kind 1, the round number as its 8-byte
// payload), timing the call with %globaltimer into cost[i - 1] (pinned host memory, written after
// the message). Returns after `rounds`, on the host's stop or a closed ring, or after `timeout_ns`
// without a new round.
#include "perdix.cuh"

extern "C" __global__ void perdix_echo(const perdix_producer* p, const perdix_u64* bell, perdix_u32 rounds,
                                       perdix_u64* cost, perdix_u64 timeout_ns) {
    __shared__ unsigned int answered;
    if (threadIdx.x == 0) answered = 0;
    __syncthreads();
    if (perdix_lane() != 0) return;
    volatile unsigned int* done = &answered;
    perdix_u64 last = perdix_globaltimer();
    for (perdix_u32 polls = 0;; polls++) {
        const perdix_u64 round = perdix_load_relaxed(bell);
        if (round > *done && round <= rounds &&
            atomicCAS(&answered, (unsigned int)(round - 1), (unsigned int)round) == (unsigned int)(round - 1)) {
            const perdix_u64 payload = round;
            const perdix_u64 g0 = perdix_globaltimer();
            const int status = perdix_emit(p, 1, &payload, 8);
            const perdix_u64 g1 = perdix_globaltimer();
            if (status != PERDIX_OK) return;
            cost[round - 1] = g1 - g0;
            last = g1;
        }
        if (*done >= rounds) return;
        if ((polls & 63) == 0 && (perdix_should_stop(p) || perdix_globaltimer() - last > timeout_ns)) return;
    }
}
